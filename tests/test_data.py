"""Tests of studylib.data: registry, resolve(), the HeCo/PyG/ogb loaders, synthetic graphs.

Real datasets are read from the mirror named by ``$STUDYLIB_DATA_MIRROR`` or, when unset, from
``<project root>/../shared/data`` if it exists; those tests are skipped otherwise. The cache is
always a temporary folder (``STUDYLIB_DATA_DIR``), so nothing is written into the project's
``data/`` nor into the mirror.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from studylib import paths
from studylib.data import (
    REGISTRY,
    ChecksumMismatchError,
    DatasetSpec,
    DatasetStatistics,
    DatasetUnavailableError,
    HeteroGraph,
    load_heco,
    load_hetero,
    resolve,
    resolve_details,
    synthetic_hetero,
)
from studylib.data import registry as registry_module
from studylib.data.hgnn_datasets import hetero_from_ogb, load_ogbn_mag, open_ogb_node_dataset
from studylib.data.registry import reverse_edge_type

REAL = ["acm", "imdb", "dblp"]


# ------------------------------------------------------------------------------------ fixtures
def _mirror_root() -> Path | None:
    env = os.environ.get(paths.MIRROR_VARIABLE)
    if env:
        return Path(env).resolve()
    candidate = paths.project_root().parent / "shared" / "data"
    return candidate.resolve() if candidate.is_dir() else None


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder and no mirror."""
    d = tmp_path / "cache"
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(d))
    monkeypatch.delenv(paths.MIRROR_VARIABLE, raising=False)
    return d


@pytest.fixture(scope="module")
def real_graphs(tmp_path_factory):
    """Loads each mirrored real dataset once (lazily) through a temporary cache."""
    mirror = _mirror_root()
    loaded: dict[str, HeteroGraph] = {}

    def get(name: str) -> HeteroGraph:
        spec = REGISTRY[name]
        if mirror is None:
            pytest.skip(f"no dataset mirror: set {paths.MIRROR_VARIABLE} (or provide ../shared/data)")
        if not (mirror / spec.folder / "raw").is_dir():
            pytest.skip(f"the mirror {mirror} has no {spec.folder}/raw/")
        if name not in loaded:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("STUDYLIB_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
                mp.setenv(paths.MIRROR_VARIABLE, str(mirror))
                loaded[name] = load_hetero(name)
        return loaded[name]

    return get


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TOY_FILES = {"a.txt": b"hello\n", "b.bin": b"\x00\x01\x02"}


@pytest.fixture
def toy(monkeypatch):
    """Registers a tiny dataset 'toy' (two raw files) for resolve() tests."""

    def register(download=None, files=TOY_FILES) -> DatasetSpec:
        spec = DatasetSpec(
            name="toy",
            url="https://example.org/toy.zip",
            folder="toy",
            raw_files={k: _sha(v) for k, v in files.items()},
            loader=None,
            statistics=DatasetStatistics(num_nodes={"n": 1}, num_edges={}, feature_dims={"n": None}),
            download=download,
        )
        monkeypatch.setitem(registry_module.REGISTRY, "toy", spec)
        return spec

    return register


def _write_raw(folder: Path, files: dict[str, bytes]) -> None:
    (folder / "raw").mkdir(parents=True, exist_ok=True)
    for k, v in files.items():
        (folder / "raw" / k).write_bytes(v)


# ------------------------------------------------------------------------------------ registry
def test_registry_entries():
    for name in ["acm", "imdb", "dblp", "ogbn-mag", "movielens-100k", "cora"]:
        spec = REGISTRY[name]
        assert spec.name == name and spec.url.startswith("http")
        assert all(len(h) == 64 for h in spec.raw_files.values())
        assert spec.citation
    assert REGISTRY["ogbn-mag"].raw_files == {}
    assert REGISTRY["cora"].folder == "planetoid/Cora"
    assert "u1.base" in REGISTRY["movielens-100k"].raw_files
    assert REGISTRY["acm"].statistics.num_nodes == {"paper": 4019, "author": 7167, "subject": 60}
    # every metapath walks from the target back to it
    for name in ["acm", "imdb", "dblp", "ogbn-mag"]:
        spec = REGISTRY[name]
        for path in spec.metapaths.values():
            assert path[0][0] == spec.statistics.target == path[-1][2]
            assert all(a[2] == b[0] for a, b in zip(path, path[1:]))


def test_registry_checksums_match_mirror_list():
    mirror = _mirror_root()
    sums = mirror / "SHA256SUMS" if mirror else None
    if sums is None or not sums.is_file():
        pytest.skip("no mirror SHA256SUMS")
    listed = {}
    for line in sums.read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        listed[rel.removeprefix("./")] = digest
    for spec in REGISTRY.values():
        for f, h in spec.raw_files.items():
            assert listed[f"{spec.folder}/raw/{f}"] == h, (spec.name, f)


# ------------------------------------------------------------------------------------ resolve()
def test_resolve_unknown_name(cache):
    with pytest.raises(ValueError, match="acm"):
        resolve("no-such-dataset")
    with pytest.raises(ValueError, match="imdb"):
        load_hetero("no-such-dataset")
    with pytest.raises(ValueError):
        load_hetero("cora")  # registered, but not a heterogeneous dataset


def test_resolve_cache_hit(cache, toy):
    toy()
    _write_raw(cache / "toy", TOY_FILES)
    res = resolve_details("toy", download=False)
    assert res.origin == "cache" and res.checksums_verified and res.folder == cache / "toy"
    assert resolve("toy", download=False) == cache / "toy"


def test_resolve_mirror_copy(cache, toy, tmp_path, monkeypatch):
    toy()
    mirror = tmp_path / "mirror"
    _write_raw(mirror / "toy", TOY_FILES)
    before = sorted(p.relative_to(mirror) for p in mirror.rglob("*"))
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(mirror))
    res = resolve_details("toy", download=False)
    assert res.origin == "mirror" and res.checksums_verified and res.mirror == mirror / "toy"
    for k, v in TOY_FILES.items():
        assert (cache / "toy" / "raw" / k).read_bytes() == v
    assert sorted(p.relative_to(mirror) for p in mirror.rglob("*")) == before  # mirror untouched
    # second time: a cache hit that remembers the mirror
    again = resolve_details("toy", download=False)
    assert again.origin == "cache" and again.checksums_verified and again.mirror == mirror / "toy"


def test_resolve_mirror_checksum_mismatch(cache, toy, tmp_path, monkeypatch):
    toy()
    mirror = tmp_path / "mirror"
    _write_raw(mirror / "toy", {**TOY_FILES, "b.bin": b"corrupted"})
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(mirror))
    with pytest.raises(ChecksumMismatchError, match="b.bin"):
        resolve("toy", download=False)
    assert not (cache / "toy" / "raw" / "b.bin").exists()


def test_resolve_cache_checksum_mismatch(cache, toy):
    toy()
    _write_raw(cache / "toy", {**TOY_FILES, "a.txt": b"changed"})
    with pytest.raises(ChecksumMismatchError, match="a.txt"):
        resolve("toy", download=False)


def test_resolve_missing_dataset_message(cache):
    with pytest.raises(DatasetUnavailableError) as err:
        resolve("acm", download=False)
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "acm" in msg and REGISTRY["acm"].url in msg and "pa.txt" in msg
    assert paths.MIRROR_VARIABLE in msg


def test_resolve_wrong_mirror_path(cache, monkeypatch, tmp_path):
    bad = tmp_path / "does-not-exist"
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(bad))
    with pytest.raises(DatasetUnavailableError) as err:
        resolve("imdb", download=False)
    msg = str(err.value)
    assert str(bad) in msg and "not an existing folder" in msg and paths.MIRROR_VARIABLE in msg
    assert "adjM.npz" in msg and REGISTRY["imdb"].url in msg
    # a mirror that exists but lacks the dataset
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(empty))
    with pytest.raises(DatasetUnavailableError, match="looked at"):
        resolve("imdb", download=False)


def test_resolve_download_step(cache, toy):
    calls = []

    def fake_download(folder: Path) -> None:
        calls.append(folder)
        _write_raw(folder, TOY_FILES)

    toy(download=fake_download)
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        resolve("toy", download=False)
    assert not calls
    res = resolve_details("toy", download=True)
    assert calls == [cache / "toy"] and res.origin == "download" and res.checksums_verified


def test_resolve_download_failure_and_mismatch(cache, toy):
    def failing(folder: Path) -> None:
        raise OSError("network is unreachable")

    toy(download=failing)
    with pytest.raises(DatasetUnavailableError, match="network is unreachable") as err:
        resolve("toy", download=True)
    assert "https://example.org/toy.zip" in str(err.value)

    def different(folder: Path) -> None:
        _write_raw(folder, {**TOY_FILES, "a.txt": b"upstream changed"})

    toy(download=different)
    with pytest.warns(UserWarning, match="a.txt"):
        res = resolve_details("toy", download=True)
    assert res.origin == "download" and not res.checksums_verified
    # the recorded download is accepted on the next (cache) resolution
    again = resolve_details("toy", download=True)
    assert again.origin == "cache" and not again.checksums_verified


# ------------------------------------------------------------------------------------ real data
@pytest.mark.parametrize("name", REAL)
def test_real_dataset_statistics(real_graphs, name):
    g = real_graphs(name)
    spec = REGISTRY[name]
    st = spec.statistics
    assert g.num_nodes == st.num_nodes
    assert g.target == st.target and g.num_classes == st.num_classes
    assert (len(g.train_idx), len(g.val_idx), len(g.test_idx)) == st.split
    assert g.feature_dims() == st.feature_dims
    assert len(g.edges) == 2 * len(st.num_edges)
    for et, count in st.num_edges.items():
        rev = reverse_edge_type(et)
        assert g.num_edges(et) == count, et
        assert g.num_edges(rev) == count, rev
        s, d = g.edges[et]
        rs, rd = g.edges[rev]
        assert s.dtype == torch.int64 and int(s.max()) < g.num_nodes[et[0]] and int(d.max()) < g.num_nodes[et[2]]
        fwd = torch.sort(s * g.num_nodes[et[2]] + d).values
        back = torch.sort(rd * g.num_nodes[et[2]] + rs).values
        assert torch.equal(fwd, back)
    assert g.metapaths == spec.metapaths
    for path in g.metapaths.values():
        assert all(et in g.edges for et in path)
    assert g.labels.dtype == torch.int64 and len(g.labels) == g.num_nodes[g.target]
    assert int(g.labels.max()) == st.num_classes - 1
    for t, x in g.features.items():
        assert x.dtype == torch.float32 and x.shape[0] == g.num_nodes[t]
    assert g.info["checksums_verified"] is True and g.info["url"] == spec.url
    assert g.info["origin"] == "mirror"


@pytest.mark.parametrize("name", REAL)
def test_dgl_and_pyg_agree(real_graphs, name):
    g = real_graphs(name)
    dg = g.to_dgl()
    pg = g.to_pyg()
    for t in g.node_types:
        assert dg.num_nodes(t) == pg[t].num_nodes == g.num_nodes[t]
    for et in g.edge_types:
        assert dg.num_edges(et) == pg[et].edge_index.shape[1] == g.num_edges(et)
    assert int(dg.nodes[g.target].data["train_mask"].sum()) == int(pg[g.target].train_mask.sum()) == len(g.train_idx)


@pytest.mark.parametrize("name", REAL)
def test_synthetic_schema_matches_real(real_graphs, name):
    g = real_graphs(name)
    s = synthetic_hetero(name, scale=0.02, seed=3)
    assert s.node_types == g.node_types and s.edge_types == g.edge_types
    assert s.feature_dims() == g.feature_dims()
    assert s.metapaths == g.metapaths and s.target == g.target and s.num_classes == g.num_classes
    # and a schema copied from the loaded graph itself
    s2 = synthetic_hetero(g, scale=0.02, feature_dim=8, seed=3)
    assert s2.edge_types == g.edge_types and s2.metapaths == g.metapaths
    assert set(s2.features) == set(g.features)


# ------------------------------------------------------------------------------------ HeCo format
def _write_heco(folder: Path, with_split: bool = True) -> dict:
    """A small HeCo folder: target 'm' (6 nodes, 5-d features), relations mu.txt and mt.txt."""
    folder.mkdir(parents=True)
    mu = np.array([[0, 0], [0, 3], [1, 1], [2, 4], [3, 4], [4, 2], [5, 0]])
    mt = np.array([[0, 1], [1, 1], [2, 0], [5, 2]])
    np.savetxt(folder / "mu.txt", mu, fmt="%d")
    np.savetxt(folder / "mt.txt", mt, fmt="%d")
    x = sp.random(6, 5, density=0.5, format="csr", random_state=0)
    sp.save_npz(folder / "m_feat.npz", x)
    np.save(folder / "labels.npy", np.array([0, 1, 0, 1, 2, 2], dtype=np.float64))
    if with_split:
        for k, (tr, va, te) in {5: ([0, 1], [2], [3, 4, 5]), 10: ([0, 1, 2], [3], [4, 5])}.items():
            np.save(folder / f"train_{k}.npy", np.array(tr))
            np.save(folder / f"val_{k}.npy", np.array(va))
            np.save(folder / f"test_{k}.npy", np.array(te))
    return {"mu": mu, "mt": mt, "x": x.toarray()}


def test_heco_generic_loader(tmp_path):
    raw = _write_heco(tmp_path / "toyheco" / "raw")
    g = load_heco(tmp_path / "toyheco", "toyheco", type_names={"m": "movie", "u": "user"})
    assert g.target == "movie"
    assert g.num_nodes == {"movie": 6, "user": 5, "t": 3}
    assert set(g.edges) == {
        ("movie", "movie_user", "user"),
        ("user", "user_movie", "movie"),
        ("movie", "movie_t", "t"),
        ("t", "t_movie", "movie"),
    }
    s, d = g.edges[("movie", "movie_user", "user")]
    assert s.tolist() == raw["mu"][:, 0].tolist() and d.tolist() == raw["mu"][:, 1].tolist()
    rs, rd = g.edges[("user", "user_movie", "movie")]
    assert rs.tolist() == raw["mu"][:, 1].tolist() and rd.tolist() == raw["mu"][:, 0].tolist()
    assert g.num_edges(("t", "t_movie", "movie")) == len(raw["mt"])
    assert set(g.features) == {"movie"} and g.features["movie"].dtype == torch.float32
    assert np.allclose(g.features["movie"].numpy(), raw["x"])
    assert g.labels.tolist() == [0, 1, 0, 1, 2, 2] and g.labels.dtype == torch.int64 and g.num_classes == 3
    assert g.train_idx.tolist() == [0, 1] and g.info["split_k"] == 5  # smallest k
    assert set(g.metapaths) == {"MUM", "MTM"}
    assert g.metapaths["MUM"] == [("movie", "movie_user", "user"), ("user", "user_movie", "movie")]
    g10 = load_heco(tmp_path / "toyheco", "toyheco", split=10)
    assert g10.target == "m" and g10.train_idx.tolist() == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="available"):
        load_heco(tmp_path / "toyheco", "toyheco", split=7)
    dg = g.to_dgl()
    assert dg.num_nodes("user") == 5 and dg.num_edges(("t", "t_movie", "movie")) == 4


def test_heco_target_not_first_letter(tmp_path):
    """HeCo's DBLP style: target 'a' appears only as the second letter (pa.txt, pc.txt)."""
    folder = tmp_path / "h"
    folder.mkdir()
    np.savetxt(folder / "pa.txt", np.array([[0, 0], [1, 1], [2, 2], [3, 3], [4, 0]]), fmt="%d")
    np.savetxt(folder / "pc.txt", np.array([[0, 0], [1, 1], [2, 0], [3, 1], [4, 1]]), fmt="%d")
    np.save(folder / "labels.npy", np.array([0, 1, 1, 0]))
    with pytest.warns(UserWarning, match="split"):
        g = load_heco(folder, "h")
    assert g.target == "a" and g.num_nodes == {"a": 4, "c": 2, "p": 5}
    assert set(g.metapaths) == {"APA", "APCPA"}
    assert g.metapaths["APCPA"] == [("a", "a_p", "p"), ("p", "p_c", "c"), ("c", "c_p", "p"), ("p", "p_a", "a")]
    assert len(g.train_idx) == 0


# ------------------------------------------------------------------------------------ ogbn-mag (offline parts)
def test_ogb_conversion():
    graph = {
        "edge_index_dict": {
            ("author", "writes", "paper"): np.array([[0, 1, 1], [0, 0, 2]]),
            ("paper", "cites", "paper"): np.array([[0, 2], [1, 1]]),
            ("paper", "has_topic", "field_of_study"): np.array([[0, 1, 2], [0, 0, 1]]),
            ("author", "affiliated_with", "institution"): np.array([[0, 1], [0, 0]]),
        },
        "num_nodes_dict": {"author": 2, "paper": 3, "field_of_study": 2, "institution": 1},
        "node_feat_dict": {"paper": np.ones((3, 128), dtype=np.float32)},
    }
    labels = {"paper": np.array([[0], [2], [1]])}
    split = {"train": {"paper": np.array([0])}, "valid": {"paper": np.array([1])}, "test": {"paper": np.array([2])}}
    g = hetero_from_ogb(graph, labels, split)
    assert g.num_edges(("paper", "rev_writes", "author")) == 3 and g.num_edges(("paper", "rev_cites", "paper")) == 2
    assert g.feature_dims() == {"author": None, "field_of_study": None, "institution": None, "paper": 128}
    assert g.labels.tolist() == [0, 2, 1] and g.num_classes == 3
    for path in REGISTRY["ogbn-mag"].metapaths.values():
        assert all(et in g.edges for et in path)


def test_ogbn_mag_mirror_is_linked(cache, monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    raw = mirror / "ogbn_mag" / "raw"
    raw.mkdir(parents=True)
    (raw / "triplet-type-list.csv.gz").write_bytes(b"x")
    (mirror / "ogbn_mag" / "RELEASE_v2.txt").write_text("")
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(mirror))
    res = resolve_details("ogbn-mag", download=False)
    assert res.origin == "mirror" and res.folder == cache / "ogbn_mag"
    linked = cache / "ogbn_mag" / "raw" / "triplet-type-list.csv.gz"
    assert linked.is_symlink() and linked.read_bytes() == b"x"
    assert sorted(p.name for p in (mirror / "ogbn_mag").rglob("*")) == [
        "RELEASE_v2.txt",
        "raw",
        "triplet-type-list.csv.gz",
    ]
    assert resolve_details("ogbn-mag", download=False).origin == "cache"


def test_ogbn_mag_unavailable_without_prompt(cache, monkeypatch, tmp_path):
    def no_prompt(*args):
        raise AssertionError("input() was called")

    monkeypatch.setattr(builtins, "input", no_prompt)
    with pytest.raises(DatasetUnavailableError, match="ogbn-mag"):
        load_ogbn_mag(download=False)
    # ogb's own download decision and its version-update question are turned into errors
    with pytest.raises(DatasetUnavailableError, match="downloading is disabled"):
        open_ogb_node_dataset("ogbn-mag", root=tmp_path / "r1", download=False)
    stale = tmp_path / "r2" / "ogbn_mag" / "raw"
    stale.mkdir(parents=True)  # an existing folder without its RELEASE file makes ogb ask
    with pytest.raises(DatasetUnavailableError, match="interactive question"):
        open_ogb_node_dataset("ogbn-mag", root=tmp_path / "r2", download=False)
    assert builtins.input is no_prompt


# ------------------------------------------------------------------------------------ synthetic
@pytest.mark.parametrize("name", REAL + ["ogbn-mag"])
def test_synthetic_schema_without_files(cache, name):
    spec = REGISTRY[name]
    scale = 0.002 if name == "ogbn-mag" else 0.05
    g = synthetic_hetero(name, scale=scale)
    style = "rev" if name == "ogbn-mag" else "src_dst"
    expected = sorted([*spec.statistics.num_edges, *(reverse_edge_type(e, style) for e in spec.statistics.num_edges)])
    assert g.edge_types == expected
    assert g.feature_dims() == spec.statistics.feature_dims
    assert g.metapaths == spec.metapaths and g.target == spec.statistics.target
    assert g.num_classes == spec.statistics.num_classes
    for t, c in spec.statistics.num_nodes.items():
        assert g.num_nodes[t] == max(2, round(c * scale))
    for et, (s, d) in g.edges.items():
        assert s.dtype == d.dtype == torch.int64
        assert int(s.max()) < g.num_nodes[et[0]] and int(d.max()) < g.num_nodes[et[2]]
        keys = s * g.num_nodes[et[2]] + d
        assert len(torch.unique(keys)) == len(keys)  # no duplicate edges
    for et in spec.statistics.num_edges:
        rev = reverse_edge_type(et, style)
        s, d = g.edges[et]
        rs, rd = g.edges[rev]
        n = g.num_nodes[et[2]]
        assert torch.equal(torch.sort(s * n + d).values, torch.sort(rd * n + rs).values)
    split = torch.cat([g.train_idx, g.val_idx, g.test_idx])
    assert len(torch.unique(split)) == len(split) and len(g.val_idx) > 0 and len(g.test_idx) > 0
    assert g.labels.dtype == torch.int64 and len(g.labels) == g.num_nodes[g.target]
    g.to_pyg()


def test_synthetic_deterministic_and_scaled():
    a = synthetic_hetero("acm", scale=0.05, seed=7)
    b = synthetic_hetero("acm", scale=0.05, seed=7)
    c = synthetic_hetero("acm", scale=0.05, seed=8)
    for et in a.edges:
        assert torch.equal(a.edges[et][0], b.edges[et][0]) and torch.equal(a.edges[et][1], b.edges[et][1])
    assert all(torch.equal(a.features[t], b.features[t]) for t in a.features)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.train_idx, b.train_idx)
    assert not torch.equal(a.features["paper"], c.features["paper"])
    big = synthetic_hetero("acm", scale=0.2, seed=7)
    assert all(big.num_nodes[t] > a.num_nodes[t] for t in a.num_nodes)
    assert big.num_edges() > a.num_edges()
    et = ("paper", "paper_author", "author")
    # edges scale with the node counts: about the real average degree (13407 / 4019)
    assert abs(big.num_edges(et) / big.num_nodes["paper"] - 13407 / 4019) < 0.1
    dense = synthetic_hetero("acm", scale=0.05, avg_degree=10.0, seed=7)
    assert dense.num_edges(et) == round(10.0 * dense.num_nodes["paper"])


def test_synthetic_options():
    t0 = time.perf_counter()
    g = synthetic_hetero("acm", scale=0.05)
    assert time.perf_counter() - t0 < 1.0
    f = synthetic_hetero("dblp", scale=0.05, feature_dim=16)
    assert f.feature_dims() == {"author": 16, "conference": None, "paper": 16, "term": 16}
    f2 = synthetic_hetero("dblp", scale=0.05, feature_dim={"conference": 4, "paper": None})
    assert f2.feature_dims() == {"author": 334, "conference": 4, "paper": None, "term": 50}
    k = synthetic_hetero("imdb", scale=0.05, num_classes=5)
    assert k.num_classes == 5 and int(k.labels.max()) < 5
    # degree skew: a heavier tail (smaller exponent) gives bigger hubs on the source side
    et = ("paper", "paper_author", "author")
    skewed = synthetic_hetero("acm", scale=0.5, degree_skew=1.1, feature_dim=4)
    flat = synthetic_hetero("acm", scale=0.5, degree_skew=float("inf"), feature_dim=4)
    assert skewed.num_edges(et) == flat.num_edges(et)
    assert np.bincount(skewed.edges[et][0].numpy()).max() > 3 * np.bincount(flat.edges[et][0].numpy()).max()
    assert g.info["synthetic"] and g.name == "synthetic-acm"
    with pytest.raises(ValueError, match="scale"):
        synthetic_hetero("acm", scale=0)
    with pytest.raises(ValueError, match="cora"):
        synthetic_hetero("cora")


def test_synthetic_labels_learnable():
    """A least-squares readout of [own features, metapath-mean features] beats chance clearly."""
    g = synthetic_hetero("acm", scale=0.25, feature_dim=64, seed=1)
    x = g.features["paper"].numpy().astype(np.float64)
    parts = [x]
    for path in g.metapaths.values():
        h = x
        for et in path:
            s, d = (t.numpy() for t in g.edges[et])
            n_d = g.num_nodes[et[2]]
            deg = np.maximum(np.bincount(d, minlength=n_d), 1)
            h = sp.csr_matrix((1.0 / deg[d], (d, s)), shape=(n_d, g.num_nodes[et[0]])) @ h
        parts.append(h)
    feats = np.hstack(parts)
    y = g.labels.numpy()
    idx = np.random.default_rng(0).permutation(len(y))
    tr, te = idx[: len(y) // 2], idx[len(y) // 2 :]
    onehot = np.eye(g.num_classes)[y[tr]]
    w = np.linalg.solve(feats[tr].T @ feats[tr] + 10.0 * np.eye(feats.shape[1]), feats[tr].T @ onehot)
    acc = float(((feats[te] @ w).argmax(1) == y[te]).mean())
    chance = np.bincount(y).max() / len(y)
    assert acc > chance + 0.15, (acc, chance)


def test_no_input_calls_in_package():
    import ast

    root = Path(__file__).resolve().parents[1] / "studylib" / "data"
    for f in root.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "input", f"{f}:{node.lineno} calls input()"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(synthetic_hetero("imdb", scale=0.01), HeteroGraph)
