"""Dataset specs: each format parsed and loaded from small fixtures, each bad input stopped with an
error naming the spec before any work, user files read in place, the statistics table."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest
import torch
from graph_fixtures import write_heco, write_lightgcn, write_planetoid, write_ratings

from studylib import memory, params
from studylib.data import specs
from studylib.data.hetero import HeteroGraph


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(d))
    return d


# ------------------------------------------------------------------ parsing
def test_parse_kinds_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(specs.CWD_VARIABLE, str(tmp_path))
    s = specs.parse("heco:graphs/mine")
    assert (s.scheme, s.kind, s.paths, s.name) == ("heco", specs.HETEROGENEOUS, (tmp_path / "graphs/mine",), "mine")
    r = specs.parse("ratings:a.csv,b.csv")
    assert r.kind == specs.BIPARTITE and r.paths == (tmp_path / "a.csv", tmp_path / "b.csv")
    assert specs.parse("lightgcn:/abs/lg").paths == (Path("/abs/lg"),)
    assert specs.parse("planetoid:pubmed").arg == "PubMed"
    assert specs.parse("planetoid:Cora,roots/c").root == tmp_path / "roots/c"
    assert specs.parse("ogb:ogbn-mag").kind == specs.HETEROGENEOUS
    assert specs.parse("ogb:ogbn-arxiv").kind == specs.HOMOGENEOUS
    assert specs.parse("pyg:Amazon/Computers").arg == "Amazon/Computers"
    assert specs.parse("acm").scheme == "builtin" and specs.parse("synthetic").scheme == "synthetic"
    assert specs.parse("dblp", specs.HOMOGENEOUS).kind == specs.HOMOGENEOUS
    assert specs.parse("synthetic-gowalla").kind == specs.BIPARTITE
    assert specs.parse("movielens-100k").kind == specs.BIPARTITE


@pytest.mark.parametrize("text, match", [
    ("nope", "unknown name"),
    ("foo:bar", "unknown scheme 'foo'"),
    ("heco:", "nothing after 'heco:'"),
    ("planetoid:Reddit", "Planetoid has Cora, CiteSeer, PubMed"),
    ("ratings:a,b,c", "ratings:<file>"),
    ("ogb:arxiv", "ogb:<node property dataset>"),
    ("pyg:lower", "pyg:<class"),
])
def test_parse_errors_name_the_spec(text, match):
    with pytest.raises(specs.DataSpecError, match=match) as err:
        specs.parse(text)
    assert repr(text) in str(err.value)


def test_check_all_refuses_a_graph_named_twice_under_two_spellings(tmp_path, monkeypatch):
    write_ratings(tmp_path / "r.csv")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    assert specs.check_all(["ratings:r.csv", "movielens-100k"], specs.BIPARTITE) == ["ratings:r.csv", "movielens-100k"]
    for twice in (["ratings:r.csv", "ratings:./r.csv"], ["ratings:r.csv", "ratings:sub/../r.csv"], ["cora", "cora"]):
        with pytest.raises(ValueError, match=f"tier_datasets lists a graph twice: {twice[0]!r} and"):
            specs.check_all(twice, specs.BIPARTITE if "r.csv" in twice[0] else specs.HOMOGENEOUS, "tier_datasets")
    with pytest.raises(specs.DataSpecError, match="'heco:nowhere'"):
        specs.check_all(["cora", "heco:nowhere"], specs.HOMOGENEOUS)
    with pytest.raises(specs.DataSpecError, match="stricter"):
        def strict(text):
            raise specs.DataSpecError("stricter")
        specs.check_all(["cora"], specs.HOMOGENEOUS, check_one=strict)


def test_a_kind_that_does_not_fit_is_refused():
    for text in ("ratings:x.csv", "lightgcn:x", "movielens-100k", "planetoid:Cora", "cora"):
        with pytest.raises(specs.DataSpecError, match="this study needs a heterogeneous graph"):
            specs.parse(text, specs.HETEROGENEOUS)
    with pytest.raises(specs.DataSpecError, match="needs a bipartite graph"):
        specs.parse("heco:x", specs.BIPARTITE)


# ------------------------------------------------------------------ loading each format
def test_heco_folder_loads_in_place_with_inferred_target_and_metapaths(tmp_path):
    folder = write_heco(tmp_path / "mine")
    before = _digest(folder)
    g = specs.load(f"heco:{folder}", specs.HETEROGENEOUS)
    assert isinstance(g, HeteroGraph) and g.target == "p" and g.num_classes == 3
    assert g.num_nodes == {"a": 20, "p": 40, "s": 4}
    assert set(g.metapaths) == {"PAP", "PSP"} and len(g.train_idx) == 13
    assert g.feature_dims() == {"a": 6, "p": 8, "s": None}
    assert _digest(folder) == before  # read in place, nothing written


def test_heco_options_target_split_metapaths(tmp_path):
    folder = write_heco(tmp_path / "mine")
    g = specs.load(f"heco:{folder}", options={"type_names": {"p": "paper", "a": "author", "s": "subject"},
                                               "target": "paper", "split": 5,
                                               "metapaths": {"PAP": ["paper_author", "author_paper"]}})
    assert g.target == "paper" and list(g.metapaths) == ["PAP"]
    assert g.metapaths["PAP"] == [("paper", "paper_author", "author"), ("author", "author_paper", "paper")]
    with pytest.raises(specs.DataSpecError, match="no complete split train_9"):
        specs.load(f"heco:{folder}", options={"split": 9})


def test_ratings_and_lightgcn_load(tmp_path):
    f = write_ratings(tmp_path / "r.csv")
    g = specs.load(f"ratings:{f}", specs.BIPARTITE)
    assert (g.num_users, g.num_items) == (12, 9) and g.num_train + g.num_test == 48
    t = write_ratings(tmp_path / "t.csv", seed=1)
    g2 = specs.load(f"ratings:{f},{t}")
    assert g2.num_test > 0 and g2.info["test_file"] == str(t)
    lg = specs.load(f"lightgcn:{write_lightgcn(tmp_path / 'lg')}", specs.BIPARTITE)
    assert (lg.num_users, lg.num_items, lg.num_train, lg.num_test) == (10, 8, 30, 10)


def test_planetoid_raw_folder_is_read_without_writing(tmp_path):
    root = tmp_path / "pl"
    write_planetoid(root / "Cora" / "raw")
    before = _digest(root)
    g = specs.load(f"planetoid:Cora,{root}", specs.HOMOGENEOUS)
    assert g.n == 530 and g.num_classes <= 3 and g.feature_dim == 8
    assert (len(g.train_idx), len(g.val_idx), len(g.test_idx)) == (10, 500, 20)
    assert _digest(root) == before


def test_unlabelled_nodes_stay_out_of_splits_and_labelled():
    import numpy as np

    spec = specs.parse("ogb:ogbn-arxiv")
    y = np.array([[0.0], [np.nan], [2.0], [1.0], [np.nan]])  # ogb marks unlabelled nodes NaN (papers100M)
    g = specs._homogeneous_from_arrays(spec, 5, np.array([[0, 1, 2, 3], [1, 2, 3, 4]]), np.ones((5, 2)), y,
                                       {"train": [0, 2], "valid": [3], "test": []}, {"source": "test"})
    assert g.labelled.tolist() == [0, 2, 3] and g.labels.tolist() == [0, 0, 2, 1, 0]
    assert g.m == 8 and "3 of 5 nodes labelled" in g.info["labels"]
    full = specs._homogeneous_from_arrays(spec, 5, np.array([[0], [1]]), None, np.arange(5) % 2, {}, {})
    assert full.labelled is None and full.feature_dim == 0


def test_library_datasets_never_download_outside_the_download_step(data_dir):
    with pytest.raises(FileNotFoundError, match="python -m studylib data planetoid:PubMed"):
        specs.load("planetoid:PubMed")
    with pytest.raises(specs.DataSpecError, match="no dataset class 'KarateClubX'"):
        specs.load("pyg:KarateClubX")
    with pytest.raises(FileNotFoundError, match="python -m studylib data pyg:Amazon/Computers"):
        specs.load("pyg:Amazon/Computers")
    with pytest.raises(FileNotFoundError, match="downloading is disabled"):
        specs.load("ogb:ogbn-arxiv")


# ------------------------------------------------------------------ bad input
def test_missing_path_and_other_format(tmp_path):
    with pytest.raises(specs.DataSpecError, match=r"'heco:.*nothere'.*does not exist"):
        specs.check(f"heco:{tmp_path / 'nothere'}")
    lg = write_lightgcn(tmp_path / "lg")
    with pytest.raises(specs.DataSpecError, match="not in the HeCo format.*looks like a LightGCN folder"):
        specs.check(f"heco:{lg}")
    with pytest.raises(specs.DataSpecError, match="is a folder; ratings: takes a file"):
        specs.check(f"ratings:{lg}")
    with pytest.raises(specs.DataSpecError, match="is not a LightGCN folder: train.txt, test.txt missing"):
        specs.check(f"lightgcn:{write_heco(tmp_path / 'h')}")
    with pytest.raises(specs.DataSpecError, match="holds no Planetoid raw files"):
        specs.check(f"planetoid:Cora,{lg}")


def test_graph_without_labels_is_refused(tmp_path):
    folder = write_heco(tmp_path / "nolabels", labels=False)
    with pytest.raises(specs.DataSpecError, match="has no labels.npy"):
        specs.load(f"heco:{folder}")
    nosplit = write_heco(tmp_path / "nosplit", split=False)
    with pytest.raises(specs.DataSpecError, match="no training nodes"):
        specs.load(f"heco:{nosplit}")
    one = write_heco(tmp_path / "oneclass", classes=1)
    with pytest.raises(specs.DataSpecError, match="needs at least 2"):
        specs.load(f"heco:{one}")


def test_metapath_through_a_missing_relation(tmp_path):
    folder = write_heco(tmp_path / "mine")
    with pytest.raises(specs.DataSpecError, match=r"metapath through relation 'p_t', which the graph does not "
                                                  r"have; its relations: a_p, p_a, p_s, s_p"):
        specs.load(f"heco:{folder}", options={"metapaths": {"PTP": ["p_t", "t_p"]}})
    with pytest.raises(specs.DataSpecError, match="must start and end at the target"):
        specs.load(f"heco:{folder}", options={"metapaths": {"AP": ["a_p", "p_a"]}})
    with pytest.raises(specs.DataSpecError, match="ends at 'a' but"):
        specs.load(f"heco:{folder}", options={"metapaths": {"X": ["p_a", "p_s"]}})


def test_too_large_for_memory_is_refused_before_reading(tmp_path, monkeypatch):
    folder = write_heco(tmp_path / "mine")
    from studylib.data import hgnn_datasets

    def never(*a, **k):
        raise AssertionError("the graph was read although it cannot fit")

    monkeypatch.setattr(hgnn_datasets, "load_heco", never)
    with pytest.raises(memory.Refused, match=r"dataset 'heco:.*mine'.*does not fit"):
        specs.load(f"heco:{folder}", available=1000)
    est = specs.estimate(f"heco:{folder}")
    assert est.parts["structure"] == memory.graph_bytes(64, 2 * 120)  # 80 + 40 lines, both directions
    assert est.parts["features"] == memory.feature_bytes(40, 8) + memory.feature_bytes(20, 6)
    with pytest.raises(memory.Refused, match="ratings"):
        specs.load(f"ratings:{write_ratings(tmp_path / 'r.csv')}", available=100)
    root = write_planetoid(tmp_path / "pm", prefix="pubmed")
    est = specs.estimate(f"planetoid:PubMed,{root}")  # a fixed set: its published size
    assert est.parts["features"] == memory.feature_bytes(19717, 500)
    with pytest.raises(memory.Refused, match="planetoid:PubMed"):
        specs.load(f"planetoid:PubMed,{root}", available=10**6)


def test_dataset_keys_are_safe_and_never_shared():
    texts = ["movielens-100k", "synthetic-gowalla", "synthetic_gowalla", "ratings:a/x.csv", "ratings:b/x.csv",
             "ratings:a_x.csv", "ratings:a/x.csv,a/y.csv", "ratings:/abs/a/x.csv", "lightgcn:a/x.csv",
             "lightgcn:" + "d" * 200, "lightgcn:" + "d" * 199 + "e", "ratings:x y.csv", "ratings:x:y.csv"]
    texts += ["planetoid:Cora,a/x", "planetoid:Cora,b/x", "pyg:Amazon/Computers", "cora", "heco:g"]
    texts += [f"ratings:{a}/{b}.csv" for a, b in itertools.product("ab/:,._-", repeat=2)]
    keys = [specs.dataset_key(t) for t in texts]
    assert len(set(keys)) == len(set(texts))
    for t, k in zip(texts, keys):
        assert 0 < len(k) <= specs.KEY_NAME_CHARS + 1 + specs.KEY_HASH_CHARS, k
        assert all(c.isalnum() or c in "-_" for c in k), k  # a file name and a DistDGL graph name
        assert k == specs.dataset_key(t)  # deterministic: worker processes get the same key
    assert specs.dataset_key("ratings:data/my ratings.csv").startswith("my_ratings-")
    for builtin in ("movielens-100k", "synthetic-gowalla", "cora", "ogbn-papers100M"):
        assert specs.dataset_key(builtin) == builtin  # a built-in keeps its name (and its cached partitions)
    assert specs.dataset_key("pyg:Amazon/Computers").startswith("Amazon_Computers-")
    with pytest.raises(ValueError):
        specs.dataset_key("")


# ------------------------------------------------------------------ statistics table
def test_statistics_table_counts(tmp_path):
    folder = write_heco(tmp_path / "mine")
    (folder / "pa.txt").write_text((folder / "pa.txt").read_text() + "0 0\n0 0\n")  # two duplicate edges
    het = specs.load(f"heco:{folder}")
    lg = specs.load(f"lightgcn:{write_lightgcn(tmp_path / 'lg', users=10, items=14)}")
    t = specs.statistics_table({"h": het, "l": lg}).set_index(["dataset", "name"])
    assert t.loc[("h", "p"), "nodes"] == 40 and t.loc[("h", "p"), "classes"] == 3
    assert t.loc[("h", "p"), "feature_width"] == 8 and pd_isna(t.loc[("h", "s"), "feature_width"])
    assert t.loc[("h", "p-p_a-a"), "edges"] == 82 and t.loc[("h", "p-p_a-a"), "duplicate_edges"] >= 1
    assert t.loc[("l", "item"), "isolated_nodes"] == 2  # items 12, 13 are only in test interactions
    from studylib.data.homogeneous import HomogeneousGraph

    z = torch.zeros(0, dtype=torch.int64)
    h = HomogeneousGraph("tiny", 4, torch.tensor([0, 0, 1, 2]), torch.tensor([1, 1, 1, 0]),
                         torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]), 2, z, z, z)
    row = specs.statistics(h)[1]
    assert (row["edges"], row["duplicate_edges"], row["self_loops"]) == (4, 1, 1)
    assert specs.statistics(h)[0]["isolated_nodes"] == 1


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


# ------------------------------------------------------------------ 01's parameters
def test_hgnn_training_datasets_take_specs(tmp_path):
    folder = write_heco(tmp_path / "mine")
    p = params.validate("01-hgnn-training", {"datasets": [f"heco:{folder}"]})
    assert p.datasets == [f"heco:{folder}"]
    with pytest.raises(ValueError, match="does not exist"):
        params.validate("01-hgnn-training", {"datasets": [f"heco:{tmp_path / 'gone'}"]})
    with pytest.raises(ValueError, match="needs a heterogeneous graph"):
        params.validate("01-hgnn-training", {"datasets": ["cora"]})
    with pytest.warns(UserWarning, match="han_sweep_datasets.*not in datasets"):
        p = params.validate("01-hgnn-training", {"datasets": [f"heco:{folder}"], "han_sweep_datasets": ["acm"],
                                                 "accuracy_datasets": ["acm"], "benchmark_datasets": ["imdb"]})
    assert (p.han_sweep_datasets, p.accuracy_datasets, p.benchmark_datasets) == (None, None, None)
    with pytest.raises(ValueError, match="unknown option"):
        params.validate("01-hgnn-training", {"datasets": [f"heco:{folder}"],
                                             "dataset_options": {f"heco:{folder}": {"colour": 1}}})


def test_hgnn_load_graph_takes_options(tmp_path):
    from studylib.data.hgnn_graphs import load_graph

    folder = write_heco(tmp_path / "mine")
    g = load_graph(f"heco:{folder}", options={"metapaths": {"PSP": ["p_s", "s_p"]}})
    assert list(g.metapaths) == ["PSP"]


def test_runner_passes_the_callers_folder(monkeypatch, tmp_path):
    from studylib import runner

    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    assert runner.kernel_environment("smoke", "r1")[specs.CWD_VARIABLE] == str(tmp_path)


def test_metapaths_inferred_for_heterodata(tmp_path):
    from torch_geometric.data import HeteroData

    d = HeteroData()
    d["paper"].x, d["paper"].y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1])
    d["paper"].train_mask = torch.tensor([True, True, False, False, False, False])
    d["author"].num_nodes = 3
    d["paper", "written_by", "author"].edge_index = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2]])
    g = specs._from_pyg_data(specs.parse("pyg:Fake", specs.HETEROGENEOUS), d, None)
    assert g.metapaths == {"paper_author_paper": [("paper", "paper_author", "author"),
                                                  ("author", "author_paper", "paper")]}
