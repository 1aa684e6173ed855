"""Result tables: atomic writes, provenance, resume; figures with sidecars."""

import json

import pandas as pd
import pytest

from studylib import plotting, results


def test_table_is_written_with_provenance_and_resumes(output_dirs):
    params = {"x": 1, "run_id": "r1"}
    t = results.ResultTable("nb", "times", ["model", "size"], params)
    calls = []

    def measure(c):
        calls.append(c["size"])
        return [{"sample": i, "seconds": 0.1 * c["size"]} for i in range(3)]

    configs = [{"model": "a", "size": s} for s in (1, 2, 3)]
    df = t.sweep(configs[:2], measure)
    assert len(df) == 6 and set(df["status"]) == {"ok"}
    assert (output_dirs / "results" / "nb" / "times.parquet").is_file()
    assert (output_dirs / "results" / "nb" / "times.csv").is_file()
    side = json.loads((output_dirs / "results" / "nb" / "times.json").read_text())
    assert side["parameters"]["x"] == 1 and "hardware" in side and side["run_ids"] == ["r1"]

    # a new run with the same parameters measures only the missing configuration
    t2 = results.ResultTable("nb", "times", ["model", "size"], {"x": 1, "run_id": "r2"})
    df2 = t2.sweep(configs, measure)
    assert calls == [1, 2, 3]
    assert len(df2) == 9 and set(df2["run_id"]) == {"r1", "r2"}

    # other parameters: a different experiment, nothing is resumed from the old rows
    t3 = results.ResultTable("nb", "times", ["model", "size"], {"x": 2})
    assert t3.done() == set()


def test_interrupted_sweep_keeps_finished_configurations(output_dirs):
    t = results.ResultTable("nb", "t", ["k"], {})

    def measure(c):
        if c["k"] == 2:
            raise KeyboardInterrupt
        return [{"v": c["k"]}]

    with pytest.raises(KeyboardInterrupt):
        t.sweep([{"k": 1}, {"k": 2}, {"k": 3}], measure)
    on_disk = pd.read_parquet(output_dirs / "results" / "nb" / "t.parquet")
    assert list(on_disk["k"]) == [1]
    leftovers = [p for p in (output_dirs / "results" / "nb").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_out_of_memory_is_recorded_and_the_sweep_goes_on(output_dirs):
    t = results.ResultTable("nb", "t", ["k"], {})

    def measure(c):
        if c["k"] == 1:
            raise MemoryError("too big")
        return [{"seconds": 1.0}]

    df = t.sweep([{"k": 1}, {"k": 2}], measure, oom_metric_columns=["seconds"])
    assert list(df["status"]) == ["oom", "ok"]


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with results.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_missing_config_column_is_an_error(output_dirs):
    t = results.ResultTable("nb", "t", ["k"], {})
    with pytest.raises(KeyError, match="k"):
        t.add([{"v": 1}])


def test_save_figure_writes_png_pdf_and_sidecar(output_dirs):
    import matplotlib.pyplot as plt

    plotting.set_theme()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    files = plotting.save_figure(fig, "nb", "line", title="A line", caption="seconds vs size",
                                 parameters={"x": 1}, tables=["results/nb/t.parquet"], run_id="r9")
    assert files["png"].stat().st_size > 1000 and files["pdf"].is_file()
    side = json.loads(files["json"].read_text())
    assert side["run_id"] == "r9" and side["parameters"] == {"x": 1} and side["title"] == "A line"
    assert {"hardware", "versions", "git_sha", "created_utc", "tables"} <= set(side)
