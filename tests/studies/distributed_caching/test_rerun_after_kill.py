"""A run of 02 interrupted between its tables is measured again; a complete one is not."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from studylib import results
from studylib.studies.distributed_caching import measure as dc


def test_notebook_02_reruns_a_run_interrupted_between_its_tables(output_dirs, monkeypatch):
    """02 used to decide from its epochs table alone that a run was measured."""

    run = {"graph": "cora", "machines": 2, "network": "loopback", "run": "main", "variants": []}
    calls = []

    def execute_run(run, graph, params, device, workdir, mode):
        calls.append(run["run"])
        key = {k: run[k] for k in dc.RUN_KEY}
        frame = lambda **cols: pd.DataFrame([{**key, **cols}])  # noqa: E731
        got = {"epoch": frame(variant="distdgl", epoch=0, epoch_s=1.0), "batch": frame(variant="distdgl", batch=0),
               "setup": frame(variant="distdgl", warm_s=0.1), "accuracy": frame(variant="distdgl", test_accuracy=0.5)}
        return got, {**key, "cluster_s": 1.0}

    monkeypatch.setattr(dc, "cluster_mode", lambda: ("netns", ""))
    monkeypatch.setattr(dc, "trainer_device", lambda params: ("cpu", ""))
    monkeypatch.setattr(dc, "plan_runs", lambda params: [run])
    monkeypatch.setattr(dc, "execute_run", execute_run)
    monkeypatch.setattr(dc, "partition", lambda *a, **k: None)
    monkeypatch.setattr(dc, "partition_statistics", lambda cfg: [{"part": 0, "inner_nodes": 1}])
    params = SimpleNamespace(model_dump=lambda: {"datasets": ["cora"]}, epochs=1, partition_method="metis",
                             trainers_per_machine=1,
                             cluster_mode="namespaces", cluster_spec_kwargs=lambda: {})

    class Killed(BaseException):
        pass

    original = results.ResultTable.add

    def dies_at_batches(self, rows):
        if self.name == "batches":
            raise Killed()
        original(self, rows)

    monkeypatch.setattr(results.ResultTable, "add", dies_at_batches)
    with pytest.raises(Killed):
        dc.run_measurement(params, graphs={"cora": object()}, log=lambda line: None)
    monkeypatch.setattr(results.ResultTable, "add", original)
    out = dc.run_measurement(params, graphs={"cora": object()}, log=lambda line: None)
    assert calls == ["main", "main"], "the interrupted run was not measured again"
    for name in ("epochs", "batches", "setup", "accuracy", "links"):
        assert len(out[name]) == 1, (name, out[name])
    dc.run_measurement(params, graphs={"cora": object()}, log=lambda line: None)
    assert calls == ["main", "main"], "a complete run was measured again"
