"""A DGL-only step asked for without DGL says that it needs DGL; the torch- and PyG-only paths
(metapath edge counts, PyG models) run without it."""

from __future__ import annotations

import importlib.util

import pytest

from studylib import optional
from studylib.data import synthetic_hetero
from studylib.data.hgnn_graphs import metapath_edges
from studylib.models import build_model


@pytest.fixture
def no_dgl(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "dgl" or name.startswith("dgl.") else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_require_dgl_names_the_step(no_dgl):
    assert not optional.dgl_available()
    with pytest.raises(optional.DglRequiredError, match="METIS partitioning needs DGL"):
        optional.require_dgl("METIS partitioning")


def test_dgl_models_say_they_need_dgl(no_dgl):
    g = synthetic_hetero("acm", scale=0.02, seed=0)
    with pytest.raises(ModuleNotFoundError, match="the DGL .* model needs DGL"):
        build_model("rgcn", "dgl", g)
    build_model("rgcn", "pyg", g)  # the PyG build needs no DGL


def test_metapath_edges_without_dgl_equal_dgls_count(no_dgl):
    g = synthetic_hetero("acm", scale=0.03, seed=1)
    counted = {name: metapath_edges(g, path) for name, path in g.metapaths.items()}
    import dgl  # the real DGL, for the reference count

    dg = g.to_dgl()
    for name, path in g.metapaths.items():
        assert counted[name] == dgl.metapath_reachable_graph(dg, [tuple(et) for et in path]).num_edges()
    assert all(n > 0 for n in counted.values())
