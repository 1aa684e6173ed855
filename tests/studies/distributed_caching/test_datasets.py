"""02's ``datasets`` takes built-in names and homogeneous dataset specs: bad specs stop at parameter
validation naming the spec, ``sweep_graph`` falls back to the given datasets, spec graphs get keys
that never collide, their split follows ``real_split``, and a graph that cannot be used is refused
when it is loaded, before any cluster run."""

from __future__ import annotations

import re
import warnings
from types import SimpleNamespace

import pytest
import torch
from graph_fixtures import write_planetoid

from studylib import params as sp
from studylib.data import specs
from studylib.studies.distributed_caching import measure as dc
from studylib.studies.distributed_caching.params import BUILTIN_GRAPHS, NOTEBOOK


@pytest.fixture
def planetoid_root(tmp_path):
    write_planetoid(tmp_path / "mine" / "raw", train=10, rest=500, test=20)
    return tmp_path / "mine"


def test_graphs_is_now_datasets():
    p = sp.validate(NOTEBOOK, {"datasets": ["cora"], "sweep_graph": "cora"})
    assert p.datasets == ["cora"] and p.sweep_graph == "cora"
    with pytest.raises(ValueError, match="graphs"):  # the old name is unknown now
        sp.validate(NOTEBOOK, {"graphs": ["cora"]})


def test_a_user_spec_is_accepted(planetoid_root):
    spec = f"planetoid:Cora,{planetoid_root}"
    p = sp.validate(NOTEBOOK, {"datasets": [spec, "synthetic"], "sweep_graph": spec})
    assert p.datasets == [spec, "synthetic"] and p.sweep_graph == spec


@pytest.mark.parametrize("text, message", [
    ("planetoid:Cora,{tmp}/nothere", "does not exist"),  # missing path
    ("heco:{tmp}", "yields a heterogeneous graph, but this study needs a homogeneous graph"),
    ("csv:{tmp}/edges.csv", "unknown scheme 'csv'"),
    ("acm", "yields a heterogeneous graph"),  # a heterogeneous built-in
    ("pubmed", "unknown name; use a built-in name (cora, dblp, ogbn-papers100M, ogbn-products, synthetic)"),
    ("planetoid:Cora,{tmp}", "holds no Planetoid raw files"),  # a folder in another format
])
def test_bad_specs_stop_at_validation_naming_the_spec(tmp_path, text, message):
    text = text.format(tmp=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fall-back note for datasets that are refused anyway
        with pytest.raises(ValueError, match=re.escape(repr(text))) as err:
            sp.validate(NOTEBOOK, {"datasets": [text]})
    assert message in str(err.value)


def test_a_graph_listed_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        sp.validate(NOTEBOOK, {"datasets": ["cora", "synthetic", "cora"]})


def test_sweep_graph_falls_back_to_the_first_dataset_with_a_note(planetoid_root):
    spec = f"planetoid:Cora,{planetoid_root}"
    with pytest.warns(UserWarning, match=r"sweep_graph='synthetic' is not in datasets"):
        p = sp.validate(NOTEBOOK, {"datasets": [spec]})  # the default sweep_graph is synthetic
    assert p.sweep_graph == spec
    with pytest.warns(UserWarning, match="sweep_graph='ogbn-products'"):
        assert sp.validate(NOTEBOOK, {"datasets": ["cora", "dblp"], "sweep_graph": "ogbn-products"}).sweep_graph == "cora"


def test_sweep_graph_naming_something_else_is_an_error(planetoid_root):
    with pytest.raises(ValueError, match=r"sweep_graph must be one of datasets .*'planetoid:Cora'"):
        sp.validate(NOTEBOOK, {"datasets": ["cora"], "sweep_graph": "planetoid:Cora"})


def test_keys_are_safe_and_never_shared(tmp_path):
    texts = ["planetoid:Cora,a/x", "planetoid:Cora,b/x", "planetoid:Cora, a/x", "planetoid:Cora", "ogb:ogbn-arxiv",
             "pyg:Amazon/Computers", "pyg:Amazon/Computers,data/am", "planetoid:" + "Cora," + "d" * 80]
    keys = [specs.dataset_key(t) for t in texts]
    assert len(set(keys)) == len(keys), keys
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,43}", k) for k in keys), keys
    assert not set(keys) & set(BUILTIN_GRAPHS)
    assert [specs.dataset_key(b) for b in BUILTIN_GRAPHS] == list(BUILTIN_GRAPHS)  # built-ins keep their folders
    assert specs.dataset_key("pyg:Amazon/Computers").startswith("Amazon_Computers-")
    g = SimpleNamespace(name="synthetic-n100-d4-k8")
    assert dc.graph_key("synthetic", g) == "synthetic-n100-d4-k8"
    assert dc.graph_key("planetoid:Cora,a/x", g) == keys[0]
    run = {"run": "main", "graph": texts[0], "machines": 2, "network": "1g-200us"}
    assert dc.access_dir(run).name == f"main-{keys[0]}-2m-1g-200us"


def test_a_spec_graph_is_read_in_place_and_split_as_real_split_says(planetoid_root):
    spec = f"planetoid:Cora,{planetoid_root}"
    before = sorted(p.name for p in planetoid_root.rglob("*"))
    rand = dc.load_graph(spec, sp.validate(NOTEBOOK, {"datasets": [spec], "sweep_graph": spec}))
    assert rand.n == 530 and len(rand.train_idx) == 318 and len(rand.val_idx) == 106 and len(rand.test_idx) == 106
    assert "random" in rand.info["split"]
    std = dc.load_graph(spec, sp.validate(NOTEBOOK, {"datasets": [spec], "sweep_graph": spec,
                                                     "real_split": "standard"}))
    assert (len(std.train_idx), len(std.val_idx), len(std.test_idx)) == (10, 500, 20)  # Planetoid's own split
    assert sorted(p.name for p in planetoid_root.rglob("*")) == before


def test_a_spec_graph_without_a_split_is_split_at_random(planetoid_root, monkeypatch):
    spec = f"planetoid:Cora,{planetoid_root}"
    real = specs.load

    def no_split(*a, **k):
        g = real(*a, **k)
        g.train_idx = g.val_idx = g.test_idx = torch.zeros(0, dtype=torch.int64)
        return g

    monkeypatch.setattr(dc.specs, "load", no_split)
    g = dc.load_graph(spec, sp.validate(NOTEBOOK, {"datasets": [spec], "sweep_graph": spec, "real_split": "standard"}))
    assert len(g.train_idx) == 318


def test_a_featureless_graph_is_refused_naming_the_spec(planetoid_root, monkeypatch):
    spec = f"planetoid:Cora,{planetoid_root}"
    real = specs.load

    def featureless(*a, **k):
        g = real(*a, **k)
        g.features = torch.zeros((g.n, 0))
        return g

    monkeypatch.setattr(dc.specs, "load", featureless)
    with pytest.raises(specs.DataSpecError, match=re.escape(repr(spec)) + ".*no node features"):
        dc.load_graph(spec, sp.validate(NOTEBOOK, {"datasets": [spec], "sweep_graph": spec}))


def _forbid_work(monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(dc, "cluster_mode", lambda: ("netns", ""))
    monkeypatch.setattr(dc, "trainer_device", lambda params: ("cpu", ""))
    monkeypatch.setattr(dc, "execute_run", forbidden)
    monkeypatch.setattr(dc, "partition", forbidden)


def test_a_graph_without_two_classes_is_refused_before_any_run(tmp_path, output_dirs, monkeypatch):
    write_planetoid(tmp_path / "one" / "raw", classes=1)
    spec = f"planetoid:Cora,{tmp_path / 'one'}"
    p = sp.validate(NOTEBOOK, {"datasets": [spec], "sweep_graph": spec})  # the files are there: loading finds it
    _forbid_work(monkeypatch)
    with pytest.raises(specs.DataSpecError, match=re.escape(repr(spec)) + ".*at least 2"):
        dc.run_measurement(p, log=lambda line: None)


def test_a_spec_graph_too_large_is_refused_from_its_loaded_shape(planetoid_root, output_dirs, monkeypatch):
    spec = f"planetoid:Cora,{planetoid_root}"
    p = sp.validate(NOTEBOOK, {"datasets": [spec], "sweep_graph": spec, "network_sweep": ["1g-200us"]})
    huge = SimpleNamespace(n=10**11, src=SimpleNamespace(numel=lambda: 10**12), feature_dim=100)
    assert dc.graph_shape(spec, p, {spec: huge}) == (10**11, 10**12, 100)
    with pytest.raises(KeyError, match="pass graphs"):
        dc.graph_shape(spec, p)
    _forbid_work(monkeypatch)
    out = dc.run_measurement(p, graphs={spec: huge}, log=lambda line: None)
    ep = out["epochs"]
    assert (ep["status"] == "refused").all() and set(ep["graph"]) == {spec}
