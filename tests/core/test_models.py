"""Tests of studylib.models (HGNNs in DGL and PyG with stage marking).

Everything runs on a tiny hand-built heterogeneous graph except the training test, which uses the
real ACM graph from the dataset mirror (skipped when the loader or the mirror is unavailable).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from studylib.data.hetero import HeteroGraph
from studylib.models import (
    FRAMEWORKS,
    MODELS,
    block_input_nodes,
    build_model,
    build_reference_model,
    sample_dgl_blocks,
)
from studylib.timing import (
    FEATURE_PROJECTION,
    NEIGHBOR_AGGREGATION,
    SEMANTIC_FUSION,
    SEMANTIC_GRAPH_BUILD,
    STAGES,
    StageTimer,
)

torch.set_num_threads(1)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def tiny_graph(seed: int = 0) -> HeteroGraph:
    """40 papers (target, 8-d features, 3 classes), 30 authors (6-d), 5 subjects (featureless);
    paper-author and paper-subject relations in both directions; author 29 has no papers and
    subject 4 has no papers (zero in-degree nodes); metapaths PAP and PSP."""
    g = torch.Generator().manual_seed(seed)
    n = {"paper": 40, "author": 30, "subject": 5}
    pa_p = torch.randint(0, 40, (90,), generator=g)
    pa_a = torch.randint(0, 29, (90,), generator=g)
    ps_p = torch.arange(40)
    ps_s = torch.randint(0, 4, (40,), generator=g)
    edges = {
        ("paper", "pa", "author"): (pa_p, pa_a),
        ("author", "ap", "paper"): (pa_a, pa_p),
        ("paper", "ps", "subject"): (ps_p, ps_s),
        ("subject", "sp", "paper"): (ps_s, ps_p),
    }
    perm = torch.randperm(40, generator=g)
    return HeteroGraph(
        name="tiny",
        num_nodes=n,
        edges=edges,
        features={"paper": torch.randn(40, 8, generator=g), "author": torch.randn(30, 6, generator=g)},
        target="paper",
        labels=torch.randint(0, 3, (40,), generator=g),
        num_classes=3,
        train_idx=perm[:20],
        val_idx=perm[20:30],
        test_idx=perm[30:],
        metapaths={
            "PAP": [("paper", "pa", "author"), ("author", "ap", "paper")],
            "PSP": [("paper", "ps", "subject"), ("subject", "sp", "paper")],
        },
    )


@pytest.fixture(scope="module")
def graph():
    return tiny_graph()


KW = dict(hidden_dim=16, num_layers=2, num_heads=4, seed=3)


def _run(model, graph):
    sem = model.build_semantic_graphs(graph)
    return model(sem, model.input_features(graph))


# ------------------------------------------------------------------ API and errors


def test_constants():
    assert MODELS == ("rgcn", "rgat", "han")
    assert FRAMEWORKS == ("dgl", "pyg")


def test_unknown_model_and_framework(graph):
    with pytest.raises(ValueError, match="rgcn.*rgat.*han"):
        build_model("gcn", "dgl", graph)
    with pytest.raises(ValueError, match="dgl.*pyg"):
        build_model("rgcn", "jax", graph)
    with pytest.raises(ValueError, match="rgcn.*rgat.*han"):
        build_reference_model("gcn", "pyg", graph)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_han_without_metapaths(graph, framework):
    with pytest.raises(ValueError, match="metapath"):
        build_model("han", framework, graph, metapaths={})
    bare = tiny_graph()
    bare.metapaths = {}
    with pytest.raises(ValueError, match="metapath"):
        build_model("han", framework, bare)
    with pytest.raises(ValueError, match="target"):
        build_model("han", framework, graph, metapaths={"PA": [("paper", "pa", "author")]})


def test_heads_must_divide_hidden(graph):
    with pytest.raises(ValueError, match="divisible"):
        build_model("rgat", "dgl", graph, hidden_dim=10, num_heads=4)


def test_dgl_on_cuda_gives_clear_error(graph):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU-build check needs the CPU-only DGL wheel")
    model = build_model("rgcn", "dgl", graph)
    with pytest.raises(RuntimeError, match="cuda"):
        model.build_semantic_graphs(graph, device="cuda")


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights_and_state_dict_portable(graph, name):
    a = build_model(name, "dgl", graph, **KW)
    b = build_model(name, "pyg", graph, **KW)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = build_model(name, "pyg", graph, **{**KW, "seed": 4})
    assert not all(torch.equal(sa[k], c.state_dict()[k]) for k in sa)
    c.load_state_dict(a.state_dict())
    assert a.name == name and a.framework == "dgl" and b.framework == "pyg"


# ------------------------------------------------------------------ semantic graphs


def test_metapath_graphs_same_edges_in_both_frameworks(graph):
    dgl_model = build_model("han", "dgl", graph)
    pyg_model = build_model("han", "pyg", graph)
    gd = dgl_model.build_semantic_graphs(graph)
    gp = pyg_model.build_semantic_graphs(graph)
    assert sorted(gd.canonical_etypes) == sorted(gp.edge_types)
    for et in gp.edge_types:
        s, d = gd.edges(etype=et)
        dgl_set = set(zip(s.tolist(), d.tolist()))
        ei = gp.edge_index[et]
        pyg_list = list(zip(ei[0].tolist(), ei[1].tolist()))
        assert len(pyg_list) == len(set(pyg_list)), "duplicate metapath edges"
        assert len(dgl_set) == gd.num_edges(et)
        assert dgl_set == set(pyg_list)
        # brute force: u -> v iff they share an author (PAP) / a subject (PSP)
        mid = [et2 for et2 in graph.metapaths[et[1]]][0]
        ps, pm = graph.edges[mid]
        nbrs = {}
        for p, m in zip(ps.tolist(), pm.tolist()):
            nbrs.setdefault(m, set()).add(p)
        expected = {(u, v) for group in nbrs.values() for u in group for v in group}
        assert dgl_set == expected


def test_relation_graphs(graph):
    gd = build_model("rgcn", "dgl", graph).build_semantic_graphs(graph)
    gp = build_model("rgcn", "pyg", graph).build_semantic_graphs(graph)
    assert sorted(gd.canonical_etypes) == sorted(graph.edges) == sorted(gp.edge_types)
    for et in graph.edges:
        assert gd.num_edges(et) == graph.num_edges(et) == gp.edge_index[et].shape[1]
    assert gp.num_nodes == graph.num_nodes


# ------------------------------------------------------------------ DGL == PyG


@pytest.mark.parametrize("name", MODELS)
def test_dgl_and_pyg_give_same_logits_and_gradients(graph, name):
    dgl_model = build_model(name, "dgl", graph, **{**KW, "seed": 1})
    pyg_model = build_model(name, "pyg", graph, **{**KW, "seed": 2})
    pyg_model.load_state_dict(dgl_model.state_dict())
    out_d, out_p = _run(dgl_model, graph), _run(pyg_model, graph)
    assert out_d.shape == (graph.num_nodes["paper"], graph.num_classes)
    assert torch.allclose(out_d, out_p, atol=1e-5), (out_d - out_p).abs().max()
    for out in (out_d, out_p):
        F.cross_entropy(out[graph.train_idx], graph.labels[graph.train_idx]).backward()
    grads_d = dict(dgl_model.named_parameters())
    grads_p = dict(pyg_model.named_parameters())
    checked = 0
    for k, p in grads_d.items():
        if p.grad is None:
            assert grads_p[k].grad is None, k
            continue
        assert torch.allclose(p.grad, grads_p[k].grad, atol=1e-5), k
        checked += 1
    assert checked >= 4


# ------------------------------------------------------------------ mini-batch == full batch


@pytest.mark.parametrize("name", MODELS)
def test_dgl_blocks_with_full_fanout_equal_full_batch(graph, name):
    model = build_model(name, "dgl", graph, **KW).eval()
    sem = model.build_semantic_graphs(graph)
    full = model(sem, model.input_features(graph))
    seeds = torch.arange(graph.num_nodes["paper"])
    _, output_nodes, blocks = sample_dgl_blocks(sem, {"paper": seeds}, [-1] * KW["num_layers"])
    assert len(blocks) == KW["num_layers"]
    inputs = model.input_features(graph, nodes=block_input_nodes(blocks))
    out = model(blocks, inputs)
    out_ids = output_nodes["paper"] if isinstance(output_nodes, dict) else output_nodes
    assert torch.allclose(out, full[out_ids], atol=1e-5)
    # a small batch too: a subset of the papers, still exact with full fan-out for RGCN/RGAT (HAN's
    # semantic attention averages over the batch's target nodes, so it differs on a subset)
    if name == "han":
        return
    sub = seeds[::7]
    _, output_nodes, blocks = sample_dgl_blocks(sem, {"paper": sub}, [-1] * KW["num_layers"])
    out = model(blocks, model.input_features(graph, nodes=block_input_nodes(blocks)))
    out_ids = output_nodes["paper"] if isinstance(output_nodes, dict) else output_nodes
    assert torch.equal(out_ids, sub)
    assert torch.allclose(out, full[sub], atol=1e-5)


def test_pyg_rejects_blocks(graph):
    model = build_model("rgcn", "pyg", graph)
    sem = model.build_semantic_graphs(graph)
    with pytest.raises(TypeError, match="DGL"):
        model([sem, sem], model.input_features(graph))


# ------------------------------------------------------------------ stages


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", MODELS)
def test_stages_recorded_and_sum_to_forward(graph, name, framework):
    model = build_model(name, framework, graph, **KW)
    timer = StageTimer()
    with timer.activate():
        sem = model.build_semantic_graphs(graph)
        inputs = model.input_features(graph)
        model(sem, inputs)  # warm-up
        timer.clear()
        totals = []
        for _ in range(3):
            n0 = len(timer.records)
            t0 = time.perf_counter()
            model(sem, inputs)
            totals.append((time.perf_counter() - t0, sum(r["seconds"] for r in timer.records[n0:])))
        model.build_semantic_graphs(graph)
    names = [r["name"] for r in timer.records]
    assert set(names) == set(STAGES)
    # per forward: input projection, then (FP, NA, SF) per layer, then the classifier
    per_forward = [r["name"] for r in timer.records if r["name"] != SEMANTIC_GRAPH_BUILD][: 3 * 2 + 2]
    layer = [FEATURE_PROJECTION, NEIGHBOR_AGGREGATION, SEMANTIC_FUSION]
    assert per_forward == [FEATURE_PROJECTION] + layer * 2 + [FEATURE_PROJECTION]
    whole, staged = min(totals, key=lambda x: x[0])
    assert abs(whole - staged) <= max(0.05 * whole, 0.002), (whole, staged)


# ------------------------------------------------------------------ references


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", MODELS)
def test_reference_matches_staged_and_trains(graph, name, framework):
    ref = build_reference_model(name, framework, graph, **KW)
    if name == "han" and framework == "dgl":
        assert ref is None
        return
    staged = build_model(name, framework, graph, **{**KW, "seed": 7})
    ref.load_from_staged(staged)
    out_s = _run(staged, graph)
    sem = ref.build_semantic_graphs(graph)
    inputs = ref.input_features(graph)
    out_r = ref(sem, inputs)
    assert out_r.shape == (graph.num_nodes["paper"], graph.num_classes)
    assert torch.allclose(out_s, out_r, atol=1e-5), (out_s - out_r).abs().max()
    opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    before = [p.detach().clone() for p in ref.parameters()]
    loss = F.cross_entropy(out_r[graph.train_idx], graph.labels[graph.train_idx])
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, ref.parameters()))


@pytest.mark.parametrize("name", ["rgcn", "rgat"])
def test_dgl_reference_on_blocks(graph, name):
    ref = build_reference_model(name, "dgl", graph, **KW)
    staged = build_model(name, "dgl", graph, **KW)
    ref.load_from_staged(staged)
    sem = ref.build_semantic_graphs(graph)
    sub = torch.arange(0, graph.num_nodes["paper"], 3)
    _, _, blocks = sample_dgl_blocks(sem, {"paper": sub}, [-1, -1])
    inputs = ref.input_features(graph, nodes=block_input_nodes(blocks))
    assert torch.allclose(ref(blocks, inputs), staged(blocks, inputs), atol=1e-5)


# ------------------------------------------------------------------ training on ACM


@pytest.fixture(scope="module")
def acm(tmp_path_factory):
    mirror = PROJECT_ROOT.parent / "shared" / "data"
    old = {k: os.environ.get(k) for k in ("STUDYLIB_DATA_MIRROR", "STUDYLIB_DATA_DIR")}
    if not os.environ.get("STUDYLIB_DATA_MIRROR") and mirror.is_dir():
        os.environ["STUDYLIB_DATA_MIRROR"] = str(mirror)
    os.environ["STUDYLIB_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    try:
        try:
            from studylib.data import load_hetero
        except ImportError as exc:
            pytest.skip(f"studylib.data.load_hetero unavailable: {exc}")
        try:
            yield load_hetero("acm")
        except Exception as exc:  # mirror missing, offline, ...
            pytest.skip(f"ACM unavailable: {type(exc).__name__}: {exc}")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", MODELS)
def test_trains_on_acm(acm, name, framework):
    g = acm
    kw = {}
    if name == "han":
        # ACM's PSP metapath graph has ~4.3M edges (60 subjects): a step takes seconds on one CPU
        # thread. Train on the sparsest metapath (fewest paths through its first hop) to stay fast.
        def paths(mp):
            return int((torch.bincount(g.edges[mp[0]][1]).double() ** 2).sum())

        sparsest = min(g.metapaths, key=lambda k: paths(g.metapaths[k]))
        kw["metapaths"] = {sparsest: g.metapaths[sparsest]}
    model = build_model(name, framework, g, hidden_dim=32, num_layers=2, seed=0, **kw)
    sem = model.build_semantic_graphs(g)
    inputs = model.input_features(g)
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    losses = []
    for _ in range(40):
        model.train()
        opt.zero_grad()
        out = model(sem, inputs)
        loss = F.cross_entropy(out[g.train_idx], g.labels[g.train_idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        pred = model(sem, inputs).argmax(1)
    acc = (pred[g.test_idx] == g.labels[g.test_idx]).float().mean().item()
    assert losses[-1] < 0.7 * losses[0], losses
    assert acc > 1 / g.num_classes + 0.1, acc
