"""05-parallelism-analysis on the user's own homogeneous graph: ``datasets`` takes specs (checked at
parameter validation), ``partition_graphs`` falls back to the given datasets, the graphs are
loaded before any measurement, and the smoke profile runs through the runner on a Planetoid raw
folder named by a relative spec in ``--set datasets=...``."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from graph_fixtures import write_heco, write_planetoid

from studylib import memory, params, paths, runner, timing
from studylib.data import hgnn_graphs, specs
from studylib.data.homogeneous import HomogeneousGraph
from studylib.studies.parallelism_analysis import measure as par

NB = "05-parallelism-analysis"


def _params(**kw):
    return params.validate(NB, kw)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def planetoid_root(tmp_path):
    root = tmp_path / "pl"
    write_planetoid(root / "Cora" / "raw")
    return root


# ------------------------------------------------------------------ parameters
def test_real_datasets_is_now_datasets():
    assert _params().datasets == ["cora"]
    with pytest.raises(ValueError, match="real_datasets"):
        _params(real_datasets=["cora"])
    for profile in params.PROFILES:
        assert "datasets" in params.load_profile(NB, profile)


def test_datasets_take_homogeneous_specs(planetoid_root):
    spec = f"planetoid:Cora,{planetoid_root}"
    p = _params(datasets=["cora", spec, "ogb:ogbn-arxiv", "pyg:Amazon/Computers"], partition_graphs=[spec, "largest"])
    assert p.datasets[1] == spec and p.partition_graphs == [spec, "largest"]
    assert par.graph_names(p)[-4:] == p.datasets  # the grid first, then the real graphs by their spec text


@pytest.mark.parametrize("text,match", [
    ("synthetic", r"dataset 'synthetic': 05-parallelism-analysis has no loader for it; its synthetic graphs are "
                  r"the grid"),
    ("dblp", r"dataset 'dblp': 05-parallelism-analysis has no loader"),
    ("synthetic-small", r"dataset 'synthetic-small': 05-parallelism-analysis has no loader"),
    ("acm", r"dataset 'acm': unknown name; .* a real graph is cora, ogbn-products, ogbn-papers100M or a spec"),
    ("ratings:x.csv", r"dataset 'ratings:x.csv': yields a bipartite graph, but this study needs a homogeneous"),
])
def test_graphs_05_cannot_use_are_refused_naming_the_spec(text, match):
    with pytest.raises(ValueError, match=match) as err:
        _params(datasets=[text])
    assert str(err.value).startswith(f"{NB}: datasets: ")


def test_bad_specs_are_refused_at_validation(tmp_path, planetoid_root):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=rf"datasets: dataset 'planetoid:Cora,{missing}': {missing} does not exist"):
        _params(datasets=[f"planetoid:Cora,{missing}"])
    heco = write_heco(tmp_path / "h")
    with pytest.raises(ValueError, match=rf"dataset 'heco:{heco}': yields a heterogeneous graph, but this study "
                                         r"needs a homogeneous graph"):
        _params(datasets=[f"heco:{heco}"])
    with pytest.raises(ValueError, match=rf"dataset 'planetoid:CiteSeer,{planetoid_root}': .* holds no Planetoid raw "
                                         r"files ind.citeseer"):
        _params(datasets=[f"planetoid:CiteSeer,{planetoid_root}"])
    with pytest.raises(ValueError, match="datasets lists a graph twice"):
        _params(datasets=["cora", "cora"])


def test_partition_graphs_fall_back_to_the_given_datasets(planetoid_root):
    spec = f"planetoid:Cora,{planetoid_root}"
    with pytest.warns(UserWarning, match=r"partition_graphs=\['cora', 'largest'\] names graphs not in datasets=.*"
                                         r"partitioning \['planetoid:Cora,.*', 'largest'\] instead"):
        p = _params(datasets=[spec])  # the default partition_graphs name cora
    assert p.partition_graphs == [spec, "largest"]
    with pytest.warns(UserWarning, match=r"partitioning \['largest'\] instead"):
        assert _params(datasets=[], partition_graphs=["largest", "cora"]).partition_graphs == ["largest"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to fall back from: no note
        assert _params(datasets=["cora", spec]).partition_graphs == ["cora", "largest"]
        assert _params(datasets=[spec], partition_graphs=["largest"]).partition_graphs == ["largest"]


def test_partition_graphs_outside_datasets_are_refused(planetoid_root):
    spec = f"planetoid:Cora,{planetoid_root}"
    with pytest.raises(ValueError, match=rf"partition_graphs must be 'largest' or among datasets \['cora'\] "
                                         rf"\(got '{spec}'\)"):
        _params(partition_graphs=[spec])
    with pytest.raises(ValueError, match=r"partition_graphs must be 'largest' or among datasets .* \(got 'bogus'\)"):
        _params(datasets=[spec], partition_graphs=["bogus"])
    with pytest.raises(ValueError, match="partition_graphs lists a graph twice"):
        _params(partition_graphs=["largest", "largest"])


# ------------------------------------------------------------------ loading
def test_a_user_graph_loads_in_place_under_its_spec(planetoid_root):
    spec = f"planetoid:Cora,{planetoid_root}"
    before = _digest(planetoid_root)
    p = _params(datasets=[spec], partition_graphs=["largest", spec])
    graphs = par.GraphCache(p)
    g = graphs[spec]
    assert (g.n, g.feature_dim) == (530, 8) and len(g.train_idx) == 10  # its own split is kept
    assert par.hidden_dim_for(spec, g, p) == p.hidden_dim
    row = par.graph_rows(spec, g, p)[0]
    assert row["kind"] == "real" and row["num_train"] == 10
    assert par.resolve_partition_graphs(p) == [par.largest_synthetic(p), spec]
    assert _digest(planetoid_root) == before


def test_a_graph_without_a_split_gets_a_seeded_one(monkeypatch):
    n = 50
    g = HomogeneousGraph("g", n, torch.arange(n - 1), torch.arange(1, n), torch.ones(n, 3), torch.arange(n) % 2, 2,
                         *(torch.zeros(0, dtype=torch.int64),) * 3)
    monkeypatch.setattr(specs, "load", lambda *a, **k: g)
    p = _params(datasets=["pyg:KarateClub"], partition_graphs=["largest"])
    a, b = par.load_graph("pyg:KarateClub", p), par.load_graph("pyg:KarateClub", p)
    assert (len(a.train_idx), len(a.val_idx), len(a.test_idx)) == (30, 10, 10)
    assert torch.equal(a.train_idx, b.train_idx) and "random" in a.info["split"]
    assert g.train_idx.numel() == 0  # the loaded graph is not modified
    split = a
    monkeypatch.setattr(specs, "load", lambda *args, **kwargs: split)
    assert par.load_graph("pyg:KarateClub", p) is split  # a graph with a split keeps it


def test_a_featureless_graph_is_refused_naming_the_spec(monkeypatch):
    n = 6
    bare = HomogeneousGraph("x", n, torch.arange(n), torch.arange(n).roll(1), torch.zeros(n, 0), torch.arange(n) % 2,
                            2, torch.arange(3), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    monkeypatch.setattr(specs, "load", lambda *a, **k: bare)
    with pytest.raises(specs.DataSpecError, match="dataset 'pyg:KarateClub': the graph has no vertex features"):
        par.load_graph("pyg:KarateClub", _params(datasets=["pyg:KarateClub"], partition_graphs=["largest"]))


def test_a_graph_too_large_is_refused_before_it_is_read(monkeypatch):
    from studylib.data import homogeneous

    def never(*a, **k):
        raise AssertionError("cora was read although its estimate does not fit")

    monkeypatch.setattr(homogeneous, "load_cora", never)
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2**20)
    with pytest.raises(memory.Refused, match=r"dataset 'cora' \(loaded\).*does not fit"):
        par.load_graph("cora", _params())


def test_the_notebook_loads_its_graphs_before_the_first_measurement():
    nb = json.loads((paths.notebooks_dir() / f"{NB}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    stats = next(i for i, s in enumerate(code) if "specs.statistics_table({d: graphs[d] for d in P.datasets})" in s)
    first = next(i for i, s in enumerate(code) if "run_measurement(" in s)
    assert 1 < stats < first  # right after the set-up cell, before any measurement


# ------------------------------------------------------------------ 01's graphs
def _hgnn_results(monkeypatch, dataset: str, parameters: dict) -> None:
    rows = [{"model": "rgcn", "framework": "pyg", "dataset": dataset, "region": region, "step": s, "seconds": 0.01,
             "kind": kind, "status": "ok"}
            for s in range(3) for region, kind in ((timing.FEATURE_PROJECTION, "stage"), (timing.STEP_TOTAL, "step"))]
    monkeypatch.setattr(par.results, "read_table",
                        lambda nb, name: pd.DataFrame(rows) if (nb, name) == ("01-hgnn-training", "stage_times")
                        else None)
    side = paths.results_dir("01-hgnn-training")
    side.mkdir(parents=True, exist_ok=True)
    (side / "stage_times.json").write_text(json.dumps({"parameters": parameters}))


def test_hgnn_check_rebuilds_a_user_graph_of_01_with_its_options(output_dirs, monkeypatch, tmp_path):
    heco = write_heco(tmp_path / "h")
    spec = f"heco:{heco}"
    opts = {"metapaths": {"PAP": ["p_a", "a_p"]}}
    _hgnn_results(monkeypatch, spec, {"hidden_dim": 8, "num_layers": 2, "num_heads": 2, "seed": 0,
                                      "dataset_options": {spec: opts}})
    seen = []
    original = hgnn_graphs.load_graph
    monkeypatch.setattr(hgnn_graphs, "load_graph",
                        lambda ds, *a, options=None: seen.append((ds, options)) or original(ds, *a, options=options))
    frame, note = par.hgnn_check()
    assert seen == [(spec, opts)]
    assert frame is not None and set(frame["dataset"]) == {spec} and (frame["predicted_flops"] > 0).all()


def test_hgnn_check_says_which_user_graph_it_cannot_find(output_dirs, monkeypatch, tmp_path):
    spec = f"heco:{tmp_path / 'elsewhere'}"
    _hgnn_results(monkeypatch, spec, {"hidden_dim": 8, "num_layers": 2, "num_heads": 2})
    frame, note = par.hgnn_check()
    assert frame is None
    assert f"could not be rebuilt here: {spec} (DataSpecError: {tmp_path / 'elsewhere'} does not exist)" in note


# ------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_smoke_profile_on_a_user_planetoid_folder(output_dirs, tmp_path, monkeypatch):
    work = tmp_path / "work"
    write_planetoid(work / "pl" / "Cora" / "raw")
    monkeypatch.chdir(work)
    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    spec = "planetoid:Cora,pl"  # relative: resolved against this folder, not notebooks/
    before = _digest(work / "pl")
    overrides, scoped = runner.parse_overrides([f'datasets=["{spec}"]', f'partition_graphs=["{spec}"]',
                                                'models=["gcn"]', "thread_scaling=false", "minibatch=false"])
    assert overrides["datasets"] == [spec] and not scoped
    res = runner.run_notebooks([NB], "smoke", overrides, timeout=900, progress=False, write_report=False)
    assert [r.status for r in res] == ["ok"], res
    out = output_dirs / "results" / NB
    graphs = pd.read_parquet(out / "graphs.parquet")
    assert spec in set(graphs["graph"]) and (graphs["status"] == "ok").all()
    st = pd.read_parquet(out / "step_times.parquet")
    mine = st[st["graph"] == spec]
    assert not mine.empty and (mine["status"] == "ok").all() and set(mine["framework"]) == {"dgl", "pyg"}
    assert spec in set(pd.read_parquet(out / "predictions.parquet")["graph"])
    assert spec in set(pd.read_parquet(out / "kernel_profile.parquet")["graph"])
    parts = pd.read_parquet(out / "partitions.parquet")
    assert set(parts["graph"]) == {spec} and set(parts["num_parts"]) == {2, 4}
    assert set(pd.read_parquet(out / "communication.parquet")["graph"]) == {spec}
    nb = json.loads((output_dirs / "reports" / "smoke" / f"{NB}.ipynb").read_text())
    stats = next(c for c in nb["cells"] if "specs.statistics_table({d: graphs[d]" in "".join(c["source"]))
    text = json.dumps(stats["outputs"])
    assert spec in text and "isolated_nodes" in text and "530" in text  # the user's graph, 530 vertices
    assert _digest(work / "pl") == before  # read in place, nothing written there
