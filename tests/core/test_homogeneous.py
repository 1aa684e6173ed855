"""Homogeneous graphs (studylib.data.homogeneous) and models (studylib.models.homogeneous)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import mirror_path

from studylib import paths
from studylib.data.homogeneous import (
    HomogeneousGraph,
    degree_statistics,
    load_cora,
    random_split,
    synthetic_homogeneous,
)
from studylib.models.homogeneous import FRAMEWORKS, MODELS, build_homogeneous_model

# --------------------------------------------------------------------------------- graphs

def test_synthetic_structure_and_determinism():
    g = synthetic_homogeneous(1000, 6, 12, num_classes=5, degree_skew=2.0, seed=3)
    assert (g.n, g.m, g.feature_dim, g.num_classes) == (1000, 6000, 12, 5)
    assert g.src.dtype == g.dst.dtype == torch.int64 and g.features.dtype == torch.float32
    assert g.is_symmetric() and g.num_self_loops() == 0
    assert int((g.in_degrees() == 0).sum()) == 0
    keys = g.src * g.n + g.dst
    assert keys.unique().numel() == g.m  # no duplicate edges
    # sorted by destination, then source
    order = np.lexsort((g.src.numpy(), g.dst.numpy()))
    assert np.array_equal(order, np.arange(g.m))
    assert set(g.labels.unique().tolist()) <= set(range(5)) and g.labels.unique().numel() >= 3
    parts = [set(g.train_idx.tolist()), set(g.val_idx.tolist()), set(g.test_idx.tolist())]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == 1000
    assert len(parts[0]) == 600
    h = synthetic_homogeneous(1000, 6, 12, num_classes=5, degree_skew=2.0, seed=3)
    assert torch.equal(g.src, h.src) and torch.equal(g.features, h.features) and torch.equal(g.labels, h.labels)
    assert not torch.equal(g.src, synthetic_homogeneous(1000, 6, 12, 5, 2.0, seed=4).src)


def test_synthetic_degree_skew():
    heavy = synthetic_homogeneous(4000, 8, 4, 3, degree_skew=1.5, seed=0).statistics()
    flat = synthetic_homogeneous(4000, 8, 4, 3, degree_skew=float("inf"), seed=0).statistics()
    assert heavy["m"] == flat["m"] == 32000
    assert heavy["max_in_degree"] > 5 * flat["max_in_degree"]
    assert heavy["degree_gini"] > flat["degree_gini"] + 0.2


@pytest.mark.parametrize("kwargs,match", [
    ({"n": 1}, "n must be"), ({"avg_degree": 0}, "avg_degree"), ({"feature_dim": 0}, "feature_dim"),
    ({"num_classes": 1}, "num_classes"), ({"degree_skew": 0}, "degree_skew"), ({"split": (0.5, 0.6, 0.1)}, "split"),
])
def test_synthetic_rejects_bad_arguments(kwargs, match):
    args = {"n": 100, "avg_degree": 4, "feature_dim": 8, "num_classes": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        synthetic_homogeneous(**args)


def test_graph_validation_and_conversions():
    src, dst = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])
    base = dict(name="t", num_nodes=3, src=src, dst=dst, features=torch.zeros(3, 2), labels=torch.zeros(3, dtype=torch.long),
                num_classes=2, train_idx=torch.tensor([0]), val_idx=torch.tensor([1]), test_idx=torch.tensor([2]))
    g = HomogeneousGraph(**base)
    with pytest.raises(ValueError, match="endpoints"):
        HomogeneousGraph(**(base | {"dst": torch.tensor([1, 2, 3])}))
    with pytest.raises(ValueError, match="int64"):
        HomogeneousGraph(**(base | {"src": src.int()}))
    with pytest.raises(ValueError, match="features"):
        HomogeneousGraph(**(base | {"features": torch.zeros(2, 2)}))
    assert not g.is_symmetric()
    loops = g.with_self_loops()
    assert loops.m == 6 and loops.num_self_loops() == 3 and loops.with_self_loops().m == 6
    dg = g.to_dgl()
    assert dg.num_nodes() == 3 and dg.num_edges() == 3
    assert torch.equal(torch.stack(dg.edges()), g.edge_index())
    assert g.to_dgl(self_loops=True).num_edges() == 6
    assert int(dg.ndata["train_mask"].sum()) == 1
    data = g.to_pyg()
    assert torch.equal(data.edge_index, g.edge_index()) and data.num_nodes == 3 and bool(data.test_mask[2])


def test_random_split_is_seeded_disjoint_and_keeps_to_labelled_vertices():
    n = 50
    empty = torch.zeros(0, dtype=torch.int64)
    g = HomogeneousGraph("g", n, torch.arange(n - 1), torch.arange(1, n), torch.ones(n, 3), torch.arange(n) % 2, 2,
                         empty, empty, empty)
    a, b = random_split(g, seed=1), random_split(g, seed=1)
    assert (len(a.train_idx), len(a.val_idx), len(a.test_idx)) == (30, 10, 10)
    assert torch.equal(a.train_idx, b.train_idx) and not torch.equal(a.train_idx, random_split(g, seed=2).train_idx)
    ids = torch.cat([a.train_idx, a.val_idx, a.test_idx])
    assert ids.unique().numel() == n  # disjoint, every vertex once
    assert "random" in a.info["split"] and g.train_idx.numel() == 0  # the graph is not modified
    # only the labelled vertices (as ogbn-papers100M's) are drawn, by default and when given
    labelled = torch.arange(0, n, 5)
    part = random_split(HomogeneousGraph("p", n, g.src, g.dst, g.features, g.labels, 2, empty, empty, empty,
                                         labelled=labelled), seed=3)
    drawn = torch.cat([part.train_idx, part.val_idx, part.test_idx])
    assert drawn.numel() == labelled.numel() and set(drawn.tolist()) == set(labelled.tolist())
    assert set(random_split(g, seed=3, eligible=labelled).train_idx.tolist()) <= set(labelled.tolist())
    with pytest.raises(ValueError, match="three fractions"):
        random_split(g, (0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match="labelled"):
        HomogeneousGraph("p", n, g.src, g.dst, g.features, g.labels, 2, empty, empty, empty, labelled=torch.tensor([n]))


def test_degree_statistics_hand_example():
    # star: 1, 2, 3 -> 0 and 0 -> 1
    st = degree_statistics([1, 2, 3, 0], [0, 0, 0, 1], 4)
    assert (st["n"], st["m"], st["avg_degree"], st["max_in_degree"], st["max_out_degree"]) == (4, 4, 1.0, 3, 1)
    assert st["isolated"] == 2 and st["self_loops"] == 0
    # in-degrees (3, 1, 0, 0): sum over ordered pairs |x_i - x_j| = 20, Gini = 20 / (2 n^2 mean) = 20 / 32
    assert st["degree_gini"] == pytest.approx(0.625)


def test_load_cora_from_mirror(tmp_path, monkeypatch):
    mirror = mirror_path()
    if mirror is None or not (mirror / "planetoid" / "Cora" / "raw").is_dir():
        pytest.skip("no dataset mirror with planetoid/Cora")
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(mirror))
    g = load_cora(download=False)
    assert (g.n, g.m, g.feature_dim, g.num_classes) == (2708, 10556, 1433, 7)
    assert (len(g.train_idx), len(g.val_idx), len(g.test_idx)) == (140, 500, 1000)
    assert g.is_symmetric()
    assert (tmp_path / "cache" / "planetoid" / "Cora" / "raw").is_dir()


# --------------------------------------------------------------------------------- models

@pytest.fixture(scope="module")
def small_graph():
    return synthetic_homogeneous(300, 6, 16, num_classes=4, degree_skew=2.5, seed=0)


@pytest.mark.parametrize("name", MODELS)
def test_models_agree_across_frameworks_and_learn(name, small_graph):
    g = small_graph
    params = {}
    for fw in FRAMEWORKS:
        model = build_homogeneous_model(name, fw, 16, 16, 4, 2, num_heads=4, seed=0)
        s = model.prepare_graph(g)
        out = model(s, g.features)
        assert out.shape == (g.n, 4) and out.dtype == torch.float32
        params[fw] = model.num_parameters()
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        losses = []
        for _ in range(25):
            loss = F.cross_entropy(model(s, g.features)[g.train_idx], g.labels[g.train_idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        assert losses[-1] < 0.8 * losses[0], (name, fw, losses[0], losses[-1])
    assert params["dgl"] == params["pyg"]
    assert model.dims == [16, 16, 4] and model.self_loops == (name in ("gcn", "gat"))


def test_dgl_models_run_on_sampled_blocks(small_graph):
    import dgl

    g = small_graph
    sampler = dgl.dataloading.NeighborSampler([3, 3])
    for name in MODELS:
        model = build_homogeneous_model(name, "dgl", 16, 8, 4, 2, num_heads=2)
        dg = g.to_dgl(self_loops=model.self_loops)
        input_nodes, output_nodes, blocks = sampler.sample_blocks(dg, torch.arange(10))
        out = model(blocks, g.features[input_nodes])
        assert out.shape == (len(output_nodes), 4)
    with pytest.raises(ValueError, match="blocks"):
        model(blocks[:1], g.features[input_nodes])


def test_builder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="model"):
        build_homogeneous_model("gcnn", "dgl", 4, 4, 2, 2)
    with pytest.raises(ValueError, match="framework"):
        build_homogeneous_model("gcn", "jax", 4, 4, 2, 2)
    with pytest.raises(ValueError, match="divisible"):
        build_homogeneous_model("gat", "pyg", 4, 6, 2, 2, num_heads=4)
    with pytest.raises(ValueError, match="num_layers"):
        build_homogeneous_model("gin", "pyg", 4, 4, 2, 0)
    a = build_homogeneous_model("gat", "pyg", 8, 8, 2, 2, num_heads=2, seed=5)
    b = build_homogeneous_model("gat", "pyg", 8, 8, 2, 2, num_heads=2, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
