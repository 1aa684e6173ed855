"""05-parallelism-analysis estimates each configuration's memory before measuring it: a grid graph
or a training step that would not fit is refused before any work, and the sweep records it."""

from __future__ import annotations

import pytest

from studylib import memory, params
from studylib.studies.parallelism_analysis import measure as par


def _params(**kw):
    return params.validate("05-parallelism-analysis", kw)


def test_graph_estimate_counts_structure_and_features():
    est = par.graph_estimate(1000, 4.0, 16)
    assert est.parts["features"] == 1000 * 16 * 4
    assert est.parts["structure"] == 8 * (2 * 4000 + 2 * (1001 + 2 * 4000))


def test_step_estimate_grows_with_heads_edges_and_width():
    p = _params()
    gcn = par.step_estimate("gcn", 1000, 4000, 32, 32, 2, p)
    gat = par.step_estimate("gat", 1000, 4000, 32, 32, 2, p)
    assert gat.total > gcn.total > par.graph_estimate(1000, 4.0, 32).total
    assert par.step_estimate("gcn", 1000, 16000, 32, 32, 2, p).total > gcn.total


def test_a_grid_graph_too_large_is_refused_before_it_is_generated(monkeypatch):
    def must_not_run(*a, **k):
        raise AssertionError("the graph was generated although its estimate does not fit")

    monkeypatch.setattr(par, "synthetic_homogeneous", must_not_run)
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2**30)
    name = par.synthetic_name(10**9, 16.0, 128)
    with pytest.raises(memory.Refused, match="does not fit") as err:
        par.load_graph(name, _params())
    assert name in str(err.value) and "1 GiB available" in str(err.value)


def test_a_refused_graph_is_recorded_by_the_sweep(monkeypatch, output_dirs):
    monkeypatch.setattr(par, "synthetic_homogeneous", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2**20)
    p = _params(synthetic_nodes=[100000], synthetic_degrees=[16.0], feature_dims=[128], datasets=[],
                partition_graphs=["largest"])
    import torch

    table = par.run_measurement("graphs", p, torch.device("cpu"))
    assert list(table["status"]) == ["refused"]
    assert table["memory_estimate_bytes"].iloc[0] > table["memory_available_bytes"].iloc[0] == 2**20
    with pytest.raises(memory.AllRefused):
        memory.end_if_all_refused(table, "05-parallelism-analysis: graphs")
    assert (output_dirs / "results" / "05-parallelism-analysis" / "graphs.parquet").is_file()
