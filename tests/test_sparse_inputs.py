"""Sparse kernels receive only valid, coalesced input (sorted, each pair once), on any CPU.

torch 2.2.1's CSR product through PyG's ``EdgeIndex.matmul`` returns wrong entries, then crashes,
on some CPUs when an operand repeats a pair; on others it happens to pass. So these tests check
the *input* handed to the sparse product (which fails on every CPU when it is not coalesced) and
the result against a dense ground truth, on a graph with duplicate edges and self-loops.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import mirror_path
from torch_geometric import EdgeIndex

from studylib.data import HeteroGraph, synthetic_hetero
from studylib.data.edges import coalesce_edges, edge_statistics, is_coalesced, require_coalesced
from studylib.data.homogeneous import synthetic_homogeneous
from studylib.data.recsys import BipartiteGraph, synthetic_bipartite
from studylib.models.hgnn import (
    build_dgl_metapath_graph,
    build_dgl_relation_graph,
    build_pyg_metapath_graph,
    build_pyg_relation_graph,
    compose_metapath_pyg,
)

PA = ("paper", "pa", "author")
AP = ("author", "ap", "paper")
PP = ("paper", "cites", "paper")


def multigraph() -> HeteroGraph:
    """12 papers, 7 authors; paper-author pairs with repeats (paper 0 - author 1 three times,
    papers 3 and 4 - author 3 twice),
    their reverse, and a paper-cites-paper relation with self-loops (3 -> 3 twice, 5 -> 5) and a
    repeated edge (1 -> 2 twice). Author 6 has no paper; paper 11 has no author."""
    p = torch.tensor([0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 4])
    a = torch.tensor([1, 1, 1, 0, 1, 2, 3, 3, 4, 5, 5, 0, 2, 4, 3, 3])
    cs = torch.tensor([1, 1, 3, 3, 5, 0, 2, 7, 9])
    cd = torch.tensor([2, 2, 3, 3, 5, 4, 0, 8, 11])
    g = torch.Generator().manual_seed(0)
    return HeteroGraph(
        name="multigraph",
        num_nodes={"paper": 12, "author": 7},
        edges={PA: (p, a), AP: (a, p), PP: (cs, cd)},
        features={"paper": torch.randn(12, 4, generator=g), "author": torch.randn(7, 3, generator=g)},
        target="paper",
        labels=torch.arange(12) % 2,
        num_classes=2,
        train_idx=torch.arange(6),
        val_idx=torch.arange(6, 9),
        test_idx=torch.arange(9, 12),
        metapaths={"PAP": [PA, AP], "PP": [PP], "PPAP": [PP, PA, AP], "PAPP": [PA, AP, PP]},
    )


def dense_reachable(graph: HeteroGraph, path) -> set[tuple[int, int]]:
    """Ground truth: ``u -> v`` iff the boolean product of the relations' dense adjacency
    matrices along ``path`` is nonzero at ``(u, v)``."""
    acc = None
    for et in path:
        s, d = graph.edges[et]
        a = torch.zeros(graph.num_nodes[et[0]], graph.num_nodes[et[2]], dtype=torch.float64)
        a[s, d] = 1.0
        acc = a if acc is None else (acc @ a > 0).double()
    return {(int(u), int(v)) for u, v in acc.nonzero().tolist()}


def test_fixture_has_duplicates_and_self_loops():
    g = multigraph()
    st = edge_statistics(*g.edges[PP], (12, 12))
    assert st["duplicate_edges"] == 2 and st["self_loops"] == 3
    assert edge_statistics(*g.edges[PA], (12, 7))["duplicate_edges"] == 4


@pytest.mark.parametrize("name", ["PAP", "PP", "PPAP", "PAPP"])
def test_metapath_graphs_equal_dense_ground_truth(name):
    g = multigraph()
    path = g.metapaths[name]
    truth = dense_reachable(g, path)
    et = ("paper", name, "paper")
    pyg = build_pyg_metapath_graph(g, {name: path}).edge_index[et]
    pyg_pairs = list(zip(pyg[0].tolist(), pyg[1].tolist()))
    assert len(pyg_pairs) == len(set(pyg_pairs)), "duplicate edges in PyG's metapath graph"
    assert set(pyg_pairs) == truth
    dg = build_dgl_metapath_graph(g, {name: path})
    s, d = dg.edges(etype=et)
    assert dg.num_edges(et) == len(truth)
    assert set(zip(s.tolist(), d.tolist())) == truth


def test_sparse_product_receives_coalesced_operands(monkeypatch):
    """Every operand that reaches ``EdgeIndex.matmul`` while the PyG metapath graphs are built is
    coalesced (sorted by row then column, each pair once)."""
    seen = []
    original = EdgeIndex.matmul

    def spy(self, other, *args, **kwargs):
        for operand in (self, other):
            if isinstance(operand, EdgeIndex):
                size = tuple(operand.get_sparse_size())
                seen.append(is_coalesced(operand.as_tensor(), size))
        return original(self, other, *args, **kwargs)

    monkeypatch.setattr(EdgeIndex, "matmul", spy)
    g = multigraph()
    build_pyg_metapath_graph(g, g.metapaths)
    assert len(seen) == 2 * (1 + 2 + 2)  # one product for PAP, two each for PPAP and PAPP
    assert all(seen), f"{seen.count(False)} of {len(seen)} operands were not coalesced"


def test_relation_graphs_keep_duplicate_edges():
    g = multigraph()
    gd = build_dgl_relation_graph(g)
    gp = build_pyg_relation_graph(g)
    for et in g.edge_types:
        assert gd.num_edges(et) == g.num_edges(et) == gp.edge_index[et].shape[1]


def test_compose_rejects_out_of_range_ids_naming_the_relation():
    g = multigraph()
    s, d = g.edges[PA]
    g.edges[PA] = (s, torch.cat([d[:-1], torch.tensor([9])]))  # author 9 does not exist
    with pytest.raises(ValueError, match=r"relation \('paper', 'pa', 'author'\).*\[0, 7\)"):
        compose_metapath_pyg(g, [PA, AP])


def test_coalesce_helpers():
    ei = torch.tensor([[2, 0, 2, 0, 1], [1, 3, 1, 3, 0]])
    out = coalesce_edges(ei, (3, 4))
    assert out.tolist() == [[0, 1, 2], [3, 0, 1]]
    assert is_coalesced(out, (3, 4)) and not is_coalesced(ei, (3, 4))
    assert not is_coalesced(torch.tensor([[0, 0], [1, 1]]), (1, 2))  # repeated pair
    assert not is_coalesced(torch.tensor([[0], [4]]), (1, 4))  # out of range
    with pytest.raises(ValueError, match="operand X.*2 duplicate"):
        require_coalesced(ei, (3, 4), "operand X")
    assert require_coalesced(out, (3, 4), "ok") is out


def test_op_registry_sparse_operands_are_coalesced():
    from studylib import ops

    for name in ("spmm", "spspmm"):
        inputs = ops.build_inputs(name, 4096, 0.9, seed=0)
        coo = inputs.t["coo"]
        assert coo.is_coalesced()
        assert is_coalesced(coo.indices(), tuple(coo.shape))


def test_recsys_graph_merges_duplicate_interactions():
    g = BipartiteGraph("dups", 3, 4, torch.tensor([0, 0, 2, 1, 0]), torch.tensor([1, 1, 3, 0, 1]),
                       torch.tensor([2]), torch.tensor([2]))
    assert g.num_train == 3
    assert g.info["duplicate_train_interactions"] == 2 and g.info["duplicate_test_interactions"] == 0
    src, dst = g.homogeneous_edges()
    assert edge_statistics(src, dst, (g.num_nodes, g.num_nodes))["duplicate_edges"] == 0


def test_synthetic_generators_never_repeat_an_edge():
    het = synthetic_hetero("dblp", scale=0.05, seed=1)
    for et, (s, d) in het.edges.items():
        assert edge_statistics(s, d, (het.num_nodes[et[0]], het.num_nodes[et[2]]))["duplicate_edges"] == 0, et
    hom = synthetic_homogeneous(500, 8.0, 4, seed=1)
    st = edge_statistics(hom.src, hom.dst, (hom.n, hom.n))
    assert st["duplicate_edges"] == 0 and st["self_loops"] == 0
    bip = synthetic_bipartite(50, 80, 600, seed=1)
    assert bip.info["duplicate_train_interactions"] == 0
    keys = np.unique(bip.train_users.numpy() * bip.num_items + bip.train_items.numpy())
    assert keys.size == bip.num_train


def _mirror_hetero_names() -> list[str]:
    mirror = mirror_path()
    if mirror is None:
        return []
    from studylib.data import HETERO_DATASETS, REGISTRY

    return [n for n in HETERO_DATASETS if n in REGISTRY and (mirror / REGISTRY[n].folder / "raw").is_dir()]


@pytest.mark.slow
@pytest.mark.parametrize("name", _mirror_hetero_names() or [pytest.param("none", marks=pytest.mark.skip(
    reason="no dataset mirror (STUDYLIB_DATA_MIRROR or ../shared/data)"))])
def test_mirror_metapath_graphs_equal_in_both_frameworks(name, tmp_path, monkeypatch):
    """On every heterogeneous dataset of the mirror, PyG's and DGL's metapath graphs hold the same
    edges (compared as sorted pair keys, so millions of edges compare quickly)."""
    from studylib.data import load_hetero

    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STUDYLIB_DATA_MIRROR", str(mirror_path()))
    g = load_hetero(name)
    n = g.num_nodes[g.target]
    for mp_name, path in g.metapaths.items():
        et = (g.target, mp_name, g.target)
        pyg = build_pyg_metapath_graph(g, {mp_name: path}).edge_index[et]
        s, d = build_dgl_metapath_graph(g, {mp_name: path}).edges(etype=et)
        pk = torch.sort(pyg[0] * n + pyg[1]).values
        dk = torch.sort(s.long() * n + d.long()).values
        assert pk.numel() == torch.unique(pk).numel(), f"{name} {mp_name}: duplicate edges"
        assert torch.equal(pk, dk), f"{name} {mp_name}: {pk.numel()} PyG vs {dk.numel()} DGL edges"
