"""04-recsys-memory-tiers on the user's own graph: ``datasets`` and ``tier_datasets`` take bipartite
specs (``ratings:``, ``lightgcn:``), bad specs stop at parameter validation or when the graphs are
loaded (before any measurement), the file and DistDGL keys of two specs never collide, and the smoke
profile runs through the runner on a rating file named by a relative spec in ``--set``."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from graph_fixtures import write_heco, write_lightgcn, write_rating_log, write_ratings

from studylib import memory, params, runner
from studylib.data import recsys, specs
from studylib.studies.recsys_memory_tiers import graphs as gr
from studylib.studies.recsys_memory_tiers import measure as rs

NB = "04-recsys-memory-tiers"


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A user's folder with a rating file and a LightGCN folder; relative specs resolve against it."""
    folder = tmp_path / "work"
    write_ratings(folder / "ratings.csv")
    write_lightgcn(folder / "lg")
    monkeypatch.chdir(folder)
    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    return folder


def _validate(values: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fall-back note unless a test expects one
        return params.validate(NB, values)


# --------------------------------------------------------------------------- parameters
def test_datasets_take_bipartite_specs(work):
    p = _validate({"datasets": ["ratings:ratings.csv", "lightgcn:lg", "movielens-100k"],
                   "tier_datasets": ["lightgcn:lg"]})
    assert p.datasets == ["ratings:ratings.csv", "lightgcn:lg", "movielens-100k"]
    assert p.tier_datasets == ["lightgcn:lg"]
    # a tier graph outside datasets is the caller's choice when it is the user's own
    p = _validate({"datasets": ["movielens-100k"], "tier_datasets": ["ratings:ratings.csv"]})
    assert p.tier_datasets == ["ratings:ratings.csv"]


@pytest.mark.parametrize("field", ["datasets", "tier_datasets"])
@pytest.mark.parametrize("spec,match", [
    ("ratings:gone.csv", r"dataset 'ratings:gone.csv': .*gone.csv does not exist"),
    ("ratings:lg", r"dataset 'ratings:lg': .*lg is a folder; ratings: takes a file"),
    ("lightgcn:no_test", r"dataset 'lightgcn:no_test': .*not a LightGCN folder: test.txt missing"),
    ("heco:acm_like", r"dataset 'heco:acm_like': yields a heterogeneous graph, but this study needs a bipartite"),
    ("yelp", r"dataset 'yelp': unknown name"),
    ("synthetic-yelp", r"dataset 'synthetic-yelp': yields a homogeneous graph"),
    ("acm", r"dataset 'acm': yields a heterogeneous graph"),
])
def test_bad_specs_are_named_at_validation(work, field, spec, match):
    (work / "no_test").mkdir()
    (work / "no_test" / "train.txt").write_text("0 1 2\n")
    write_heco(work / "acm_like")
    with pytest.raises(ValueError, match=match) as err:
        params.validate(NB, {"datasets": [spec], "tier_datasets": [spec]} if field == "datasets"
                        else {"datasets": ["ratings:ratings.csv"], "tier_datasets": [spec]})
    assert field in str(err.value)


def test_a_graph_named_twice_is_refused(work):
    with pytest.raises(ValueError, match="datasets lists a graph twice: 'ratings:ratings.csv' and 'ratings:./ratings.csv'"):
        params.validate(NB, {"datasets": ["ratings:ratings.csv", "ratings:./ratings.csv"],
                             "tier_datasets": ["lightgcn:lg"]})
    with pytest.raises(ValueError, match="datasets lists a graph twice"):
        params.validate(NB, {"datasets": ["movielens-100k", "movielens-100k"]})


def test_tier_datasets_fall_back_to_the_users_graphs(work):
    with pytest.warns(UserWarning, match=r"tier_datasets=\['movielens-100k'\] names graphs not in datasets"):
        p = params.validate(NB, {"datasets": ["ratings:ratings.csv"]})  # the default tier graph
    assert p.tier_datasets == ["ratings:ratings.csv"]
    with pytest.warns(UserWarning, match="tier_datasets"):  # the smoke profile's generated tier graph
        p = params.validate(NB, {"datasets": ["lightgcn:lg", "ratings:ratings.csv"],
                                 "tier_datasets": ["synthetic-movielens-100k"]})
    assert p.tier_datasets == ["lightgcn:lg", "ratings:ratings.csv"]
    with pytest.warns(UserWarning, match="tier_datasets"):  # the ones in datasets are kept
        p = params.validate(NB, {"datasets": ["lightgcn:lg"], "tier_datasets": ["lightgcn:lg", "gowalla"]})
    assert p.tier_datasets == ["lightgcn:lg"]
    with pytest.warns(UserWarning, match="tier_datasets"):  # a registered graph left out by datasets
        p = params.validate(NB, {"datasets": ["synthetic-gowalla"]})
    assert p.tier_datasets == ["synthetic-gowalla"]
    # every profile as written, and the small profile's own choice: a larger generated tier graph
    for profile in params.PROFILES:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            params.load_profile(NB, profile)
    assert _validate({"datasets": ["movielens-100k"], "tier_datasets": ["synthetic-gowalla"]}).tier_datasets == [
        "synthetic-gowalla"]
    with pytest.raises(ValueError, match="tier_datasets: dataset 'bogus'"):  # no fall-back for a bad spec
        params.validate(NB, {"datasets": ["ratings:ratings.csv"], "tier_datasets": ["bogus"]})


# --------------------------------------------------------------------------- keys
def test_graph_names_are_the_core_dataset_keys():
    for text in ("movielens-100k", "ratings:a/x.csv", "lightgcn:" + "d" * 200):
        assert rs._graph_name(text) == specs.dataset_key(text)  # deterministic: workers get the same key


def test_tier_unit_names_split_from_the_right():
    from studylib.studies.recsys_memory_tiers.tier_worker import tier_unit

    cfg = {"dataset": "ratings:data/r.csv,data/t.csv", "model": "ngcf"}
    assert rs.unit_fields(tier_unit(cfg, "mmap_cgroup")) == {"dataset": cfg["dataset"], "model": "ngcf",
                                                             "tier": "mmap_cgroup"}
    assert rs.unit_fields("bandwidth/dram") == {"tier": "dram"}


# --------------------------------------------------------------------------- loading
def test_user_graphs_load_in_place(work):
    before = {p: p.stat().st_mtime_ns for p in work.rglob("*")}
    g = gr.load_graph("ratings:ratings.csv")
    assert (g.num_users, g.num_items) == (12, 9) and g.num_train + g.num_test == 48  # one duplicate merged
    lg = gr.load_graph("lightgcn:lg")
    assert (lg.num_users, lg.num_items, lg.num_train, lg.num_test) == (10, 8, 30, 10)
    assert {p: p.stat().st_mtime_ns for p in work.rglob("*")} == before  # nothing written or touched
    table = specs.statistics_table({"ratings:ratings.csv": g, "lightgcn:lg": lg})
    assert set(table["dataset"]) == {"ratings:ratings.csv", "lightgcn:lg"}
    assert table.set_index(["dataset", "name"]).loc[("ratings:ratings.csv", "user-train-item"),
                                                     "duplicate_edges"] == 1


def test_bad_files_stop_when_loaded(work):
    (work / "bad.csv").write_text("1,2,5\n3,x,4\n")
    with pytest.raises(specs.DataSpecError, match=r"dataset 'ratings:bad.csv': .*bad.csv:2: item id must be an integer"):
        gr.load_graph("ratings:bad.csv")
    with pytest.raises(specs.DataSpecError, match="yields a heterogeneous graph"):
        gr.load_graph("heco:somewhere")


def test_a_graph_too_large_is_refused_before_it_is_read(work, monkeypatch):
    def never(*a, **k):
        raise AssertionError("read or generated although refused")

    monkeypatch.setattr(recsys, "read_rating_file", never)
    monkeypatch.setattr(gr, "load_recsys", never)
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1000)
    with pytest.raises(memory.Refused, match="ratings:ratings.csv"):
        gr.load_graph("ratings:ratings.csv")
    with pytest.raises(memory.Refused, match=r"synthetic-gowalla.*synthetic_scale=0.5"):
        gr.load_graph("synthetic-gowalla", synthetic_scale=0.5)
    with pytest.raises(memory.Refused, match="gowalla"):
        gr.load_graph("gowalla")


def test_load_estimates():
    small, large = gr.load_estimate("synthetic-gowalla", 0.1), gr.load_estimate("synthetic-gowalla", 0.3)
    assert 2.5 * small.total < large.total < 3.5 * small.total  # linear in the scale
    users, items, inter = recsys.PAPER_DATASETS["amazon-book"].statistics
    assert gr.load_estimate("amazon-book").total >= 100 * inter
    assert gr.load_estimate("ratings:x.csv") is None  # the core sizes user files from their bytes


def test_graph_cache_refuses_a_graph_without_test_interactions_for_the_accuracy_check(work):
    (work / "few.csv").write_text("".join(f"{u},{i},5\n" for u in range(4) for i in range(2)))
    p = params.validate(NB, {"datasets": ["ratings:few.csv"], "tier_datasets": ["ratings:few.csv"]})
    with pytest.raises(specs.DataSpecError, match=r"dataset 'ratings:few.csv': no test interactions.*accuracy_epochs=0"):
        rs.GraphCache(p)["ratings:few.csv"]
    p0 = params.validate(NB, {"datasets": ["ratings:few.csv"], "tier_datasets": ["ratings:few.csv"],
                              "accuracy_epochs": 0})
    assert rs.GraphCache(p0)["ratings:few.csv"].num_test == 0


def test_dataset_table_names_graphs_by_spec(work):
    p = _validate({"datasets": ["lightgcn:lg"], "tier_datasets": ["lightgcn:lg"]})
    assert list(rs.dataset_table(rs.GraphCache(p), p.datasets)["dataset"]) == ["lightgcn:lg"]


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_smoke_profile_on_a_user_rating_file(output_dirs, tmp_path, monkeypatch):
    folder = tmp_path / "work"
    write_rating_log(folder / "data" / "my ratings.tsv", users=60, items=40, per_user=10)
    monkeypatch.chdir(folder)
    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(output_dirs / "data"))
    spec = "ratings:data/my ratings.tsv"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    # as --set gives them; the smoke profile's batch of 1024 exceeds the 480 training interactions: each
    # DistDGL epoch is one step, so the timed steps come from later epochs
    overrides, scoped = runner.parse_overrides([f"datasets=[\"{spec}\"]", "footprint_scales=[]"])
    assert overrides["datasets"] == [spec] and not scoped
    with pytest.warns(UserWarning, match="tier_datasets"):  # the smoke profile's tier graph falls back
        res = runner.run_notebooks([NB], "smoke", overrides, timeout=900, progress=False, write_report=False)
    assert [r.status for r in res] == ["ok"], res
    out = output_dirs / "results" / NB
    for name in ("accuracy", "single_machine", "redundancy"):
        df = pd.read_parquet(out / f"{name}.parquet")
        assert set(df["dataset"]) == {spec} and (df["status"] == "ok").all(), name
    tiers = pd.read_parquet(out / "tiers.parquet")
    assert set(tiers.loc[tiers["kind"] == "step", "dataset"]) == {spec}  # the DRAM tier runs anywhere
    assert not (output_dirs / "results" / NB / "footprint.parquet").exists()
    if rs.distributed_available()[0]:
        dist = pd.read_parquet(out / "distributed.parquet")
        assert set(dist["dataset"]) == {spec}
        steps = dist[dist["kind"] == "step"]
        assert (steps["steps_per_epoch"] == 1).all() and steps["step"].nunique() == 2  # repeat_steps timed
    nb = json.loads((output_dirs / "reports" / "smoke" / f"{NB}.ipynb").read_text())
    text = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "user-train-item" in text and "isolated_nodes" in text  # the statistics table of the user's graph
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # read in place, nothing written there


@pytest.mark.slow
def test_a_malformed_file_stops_the_notebook_before_any_measurement(output_dirs, tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "bad.csv").write_text("1,2,5\n1,3,4\n2,oops,1\n")
    monkeypatch.chdir(folder)
    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    overrides, _ = runner.parse_overrides(['datasets=["ratings:bad.csv"]'])
    with pytest.warns(UserWarning, match="tier_datasets"):
        res = runner.run_notebooks([NB], "smoke", overrides, timeout=600, progress=False, write_report=False)
    assert [r.status for r in res] == ["failed"], res
    assert res[0].ename == "DataSpecError" and "ratings:bad.csv" in res[0].evalue and "bad.csv:3" in res[0].evalue
    assert res[0].source_cell_index == 2  # the statistics cell, right after set-up
    assert not list((output_dirs / "results").rglob("*.parquet"))  # nothing was measured
