"""01-hgnn-training runs through the runner on a HeCo-format folder it has never seen, named by a
relative spec in ``--set datasets=...`` (resolved against the caller's folder, not notebooks/)."""

import json

import pandas as pd
import pytest
from graph_fixtures import write_heco

from studylib import runner
from studylib.data import specs

pytestmark = pytest.mark.slow


def test_smoke_profile_on_a_user_heco_folder(output_dirs, tmp_path, monkeypatch):
    folder = write_heco(tmp_path / "work" / "my_graph", papers=60, authors=30, subjects=5)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv(specs.CWD_VARIABLE, raising=False)
    spec = "heco:my_graph"
    before = sorted(p.name for p in folder.iterdir())
    overrides, scoped = runner.parse_overrides([f'datasets=["{spec}"]', "ddp_world_sizes=[1]",  # as --set gives them
                                                "reference_comparison=false", "overhead_check=false"])
    assert overrides["datasets"] == [spec] and not scoped
    with pytest.warns(UserWarning, match="han_sweep_datasets"):  # the smoke profile's sweep graph falls back
        res = runner.run_notebooks(["01-hgnn-training"], "smoke", overrides, timeout=900, progress=False,
                                   write_report=False)
    assert [r.status for r in res] == ["ok"], res
    out = output_dirs / "results" / "01-hgnn-training"
    st = pd.read_parquet(out / "stage_times.parquet")
    assert set(st["dataset"]) == {spec} and (st["status"] == "ok").all()
    han = pd.read_parquet(out / "han_metapaths.parquet")
    assert set(han["dataset"]) == {spec}
    assert set(pd.read_parquet(out / "data_parallel.parquet")["dataset"]) == {spec}  # worker processes too
    nb = json.loads((output_dirs / "reports" / "smoke" / "01-hgnn-training.ipynb").read_text())
    text = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "p-p_a-a" in text and "isolated_nodes" in text  # the statistics table of the user's graph
    assert sorted(p.name for p in folder.iterdir()) == before  # read in place, nothing written there
