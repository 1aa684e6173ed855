"""02-distributed-caching runs through the runner on a Planetoid raw folder it has never seen, named by a
relative spec in ``--set datasets=...`` (resolved against the caller's folder, not notebooks/)."""

import json

import pandas as pd
import pytest
from graph_fixtures import write_planetoid

from studylib import runner
from studylib.data import specs

pytestmark = pytest.mark.slow


def test_smoke_profile_on_a_user_planetoid_folder(output_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(tmp_path / "data"))  # partitions go to a temporary cache
    root = tmp_path / "work" / "my_citations"
    write_planetoid(root / "raw", train=10, rest=500, test=20)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    spec = "planetoid:Cora,my_citations"
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    # as --set gives them; the fewest runs the smoke profile allows: one model, the main run covers
    # the only network (no network run), one prefetch fraction
    overrides, scoped = runner.parse_overrides([f'datasets=["{spec}"]', "models=[sage]", "policies=[prefetch,massivegnn]",
                                                "network_sweep=[1g-200us]", "fraction_sweep=[0.25]"])
    assert overrides["datasets"] == [spec] and not scoped
    with pytest.warns(UserWarning, match="sweep_graph='synthetic'"):  # the smoke profile's sweep graph falls back
        res = runner.run_notebooks(["02-distributed-caching"], "smoke", overrides, timeout=900, progress=False,
                                   write_report=False)
    assert [r.status for r in res] == ["ok"], res
    out = output_dirs / "results" / "02-distributed-caching"
    ep = pd.read_parquet(out / "epochs.parquet")
    assert set(ep["graph"]) == {spec} and (ep["status"] == "ok").all() and (ep["epoch_s"] > 0).all()
    if ep["cluster_mode"].iloc[0] == "netns":
        assert set(ep["run"]) == {"main", "sweeps"} and set(ep["machines"]) == {2}
        key = specs.dataset_key(spec)
        assert (out / "access" / f"sweeps-{key}-2m-1g-200us").is_dir()  # recorded under the safe key
        assert set(pd.read_parquet(out / "replay.parquet")["graph"]) == {spec}
    else:
        assert set(ep["run"]) == {"standalone"}
    assert set(pd.read_parquet(out / "partitions.parquet")["graph"]) == {spec}
    links = pd.read_parquet(out / "links.parquet")
    assert links["part_config"].str.contains(specs.dataset_key(spec)).all()  # the collision-safe DistDGL name
    nb = json.loads((output_dirs / "reports" / "smoke" / "02-distributed-caching.ipynb").read_text())
    text = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "isolated_nodes" in text and "planetoid:Cora,my_citations" in text  # the statistics table names the spec
    assert "530" in text  # its node count (10 + 500 + 20)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before  # read in place, nothing written
