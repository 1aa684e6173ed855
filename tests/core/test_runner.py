"""Tests of ``studylib.runner`` and ``python -m studylib`` on a throw-away project.

Each test builds a tiny project under ``tmp_path`` (``STUDYLIB_ROOT``) with three small notebooks
and a one-off parameter model, so that real kernels start but nothing heavy runs. Executions are
few (about five kernel starts in all) to keep the file well under a minute.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from pydantic import Field

from studylib import params, runner
from studylib.__main__ import main
from studylib.params import NotebookParams


class TinyParams(NotebookParams):
    """Parameters of the test notebooks."""

    x: int = Field(1, gt=0, description="a positive number")
    fail: bool = Field(False, description="raise ValueError in the third cell")
    sleep_s: float = Field(0.0, ge=0, description="seconds to sleep in the last cell")


NAMES = ("01-fail", "02-good", "03-sleep")


def _notebook(name: str) -> nbformat.NotebookNode:
    """Cells: 0 parameters, 1 write a record of the kernel, 2 raise if fail, 3 sleep."""
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(
        "x = 1  # a number\nfail = False  # raise?\nsleep_s = 0.0  # seconds\n"
        "run_id = None  # run id\ndevice = 'auto'  # device\nnum_threads = 0  # threads\nseed = 0  # seed")
    p.metadata["tags"] = ["parameters"]
    record = nbformat.v4.new_code_cell(
        "import json, os, sys\n"
        f"rec = dict(name={name!r}, x=x, run_id=run_id, executable=sys.executable, cwd=os.getcwd(), pid=os.getpid(),\n"
        "           env={k: os.environ.get(k) for k in ('STUDYLIB_PROFILE', 'STUDYLIB_RUN_ID', 'MPLBACKEND', 'STUDYLIB_ROOT')})\n"
        f"open(os.path.join(os.environ['STUDYLIB_ROOT'], 'results', {name + '.json'!r}), 'w').write(json.dumps(rec))")
    boom = nbformat.v4.new_code_cell("if fail:\n    raise ValueError(f'boom with x={x}')")
    nap = nbformat.v4.new_code_cell("import time\ntime.sleep(sleep_s)\nprint('slept')")
    nb.cells = [p, record, boom, nap]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away project root with three notebooks and their smoke-profile parameters."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    for var in ("STUDYLIB_REPORTS_DIR", "STUDYLIB_FIGURES_DIR", "STUDYLIB_RESULTS_DIR", "JUPYTER_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STUDYLIB_ROOT", str(tmp_path))
    monkeypatch.setattr(params, "NOTEBOOK_PARAMS", {n: TinyParams for n in NAMES})
    nb_dir = tmp_path / "notebooks"
    (nb_dir / "params" / "smoke").mkdir(parents=True)
    (tmp_path / "results").mkdir()
    yamls = {"01-fail": "fail: true\nx: 7\n", "02-good": "x: 2\n", "03-sleep": "sleep_s: 120\n"}
    for name in NAMES:
        nbformat.write(_notebook(name), nb_dir / f"{name}.ipynb")
        (nb_dir / "params" / "smoke" / f"{name}.yaml").write_text(yamls[name])
    return tmp_path


def _record(project: Path, name: str) -> dict:
    return json.loads((project / "results" / f"{name}.json").read_text())


def test_failure_is_kept_and_the_next_notebook_runs(project: Path) -> None:
    results = runner.run_notebooks(["01-fail", "02-good"], "smoke", progress=False)
    fail, good = results
    assert [r.notebook for r in results] == ["01-fail", "02-good"]
    assert (fail.status, good.status) == ("failed", "ok")
    assert not fail.ok and good.ok
    # the failing cell: index 2 in the source notebook, 3 in papermill's (after the injected cell)
    assert (fail.source_cell_index, fail.cell_index) == (2, 3)
    assert fail.ename == "ValueError" and "boom with x=7" in fail.evalue
    assert "cell 2" in fail.message and "ValueError: boom with x=7" in fail.message
    assert fail.output == project / "reports" / "smoke" / "01-fail.ipynb" and fail.output.is_file()

    out = nbformat.read(good.output, as_version=4)
    injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 2" in injected[0].source
    run_id = good.run_id
    assert fail.run_id == run_id and f'run_id = "{run_id}"' in injected[0].source
    assert "profile" not in good.parameters and good.parameters["run_id"] == run_id

    rec = _record(project, "02-good")
    assert rec["x"] == 2 and rec["run_id"] == run_id
    assert rec["executable"] == sys.executable  # the kernel is this interpreter
    assert rec["cwd"] == str(project / "notebooks")
    assert rec["env"] == {"STUDYLIB_PROFILE": "smoke", "STUDYLIB_RUN_ID": run_id, "MPLBACKEND": "Agg",
                          "STUDYLIB_ROOT": str(project)}

    runs = json.loads((project / "reports" / "runs.json").read_text())["profiles"]["smoke"]
    assert runs["01-fail"]["status"] == "failed" and runs["02-good"]["status"] == "ok"
    index = (project / "reports" / "index.html").read_text()
    assert "01-fail" in index and "02-good" in index and 'class="failed"' in index
    summary = runner.format_summary(results)
    assert "failed" in summary and "reports/smoke/02-good.ipynb" in summary and "1 of 2" in summary


def test_stop_on_failure_via_cli(project: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "01-fail", "02-good", "--profile", "smoke", "--stop-on-failure",
                 "--no-progress", "--no-report", "--set", "01-fail:x=5"])
    assert code == 1
    out = capsys.readouterr().out
    assert "skipped" in out and "boom with x=5" in out
    assert not (project / "reports" / "smoke" / "02-good.ipynb").exists()
    assert not (project / "results" / "02-good.json").exists()


@pytest.mark.parametrize("setting, expected", [
    ("x=-3", "01-fail: x must be > 0 (got -3)"),
    ("nope=1", "unknown parameter 'nope'"),
    ("02-good:x=0", "02-good: x must be > 0 (got 0)"),
])
def test_bad_parameters_are_rejected_before_anything_runs(project: Path, capsys, setting, expected) -> None:
    code = main(["run", "--profile", "smoke", "--no-progress", "--set", setting])
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not list((project / "reports").glob("**/*.ipynb")) and not list((project / "results").iterdir())


def test_parameter_errors_of_all_notebooks_together(project: Path) -> None:
    with pytest.raises(ValueError) as err:
        runner.run_notebooks(["01-fail", "02-good"], "smoke", {"x": -3}, progress=False)
    assert "01-fail: x must be > 0 (got -3)" in str(err.value)
    assert "02-good: x must be > 0 (got -3)" in str(err.value)
    assert not (project / "reports" / "smoke").exists()


def test_unknown_notebook(project: Path, capsys) -> None:
    with pytest.raises(ValueError, match="unknown notebook 'nope'; known notebooks: 01-fail, 02-good, 03-sleep"):
        runner.run_notebooks(["nope"], "smoke", progress=False)
    assert main(["run", "02-good", "nope", "--profile", "smoke"]) == 2
    assert "known notebooks" in capsys.readouterr().err
    assert runner.known_notebooks() == list(NAMES)
    with pytest.raises(ValueError, match="unknown profile"):
        runner.run_notebooks(["02-good"], "huge", progress=False)


def test_timeout_stops_the_notebook_and_its_kernel(project: Path) -> None:
    start = time.monotonic()
    (res,) = runner.run_notebooks(["03-sleep"], "smoke", timeout=10, progress=False, write_report=False)
    assert time.monotonic() - start < 40
    assert res.status == "timed out" and not res.ok and "timed out after 10 s" in res.message
    assert res.source_cell_index == 3 and "in cell 3" in res.message  # the kernel was interrupted there
    assert res.output.is_file()  # the partial output is kept
    nb = nbformat.read(res.output, as_version=4)
    assert nb.metadata["studylib"]["status"] == "timed out"
    assert nb.cells[-1].outputs[-1]["ename"] == "KeyboardInterrupt"
    kernel_pid = _record(project, "03-sleep")["pid"]  # written by the cell before the sleep
    deadline = time.monotonic() + 5
    while psutil.pid_exists(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    gone = not psutil.pid_exists(kernel_pid) or psutil.Process(kernel_pid).status() == psutil.STATUS_ZOMBIE
    assert gone, "the kernel outlived the time-out"


def test_write_index_lists_figures_with_provenance(project: Path) -> None:
    fig = project / "figures" / "02-good"
    fig.mkdir(parents=True)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    (fig / "speed.png").write_bytes(png)
    (fig / "speed.json").write_text(json.dumps({
        "notebook": "02-good", "name": "speed", "title": "Epoch time <by model>", "caption": "lower is better",
        "run_id": "20261121T081500Z-3f2a", "profile": "smoke", "parameters": {"x": 2},
        "hardware": {"cpu": "Test CPU"}, "tables": ["results/02-good/speed.parquet"]}))  # keys missing: fine
    (fig / "bare.png").write_bytes(png)  # no sidecar
    (fig / "broken.png").write_bytes(png)
    (fig / "broken.json").write_text("{not json")
    page = runner.write_index()
    assert page == project / "reports" / "index.html"
    text = page.read_text()
    assert 'src="../figures/02-good/speed.png"' in text
    assert "Epoch time &lt;by model&gt;" in text and "lower is better" in text
    assert "20261121T081500Z-3f2a" in text and "Test CPU" in text and "<details>" in text
    assert "results/02-good/speed.parquet" in text
    assert "no provenance sidecar" in text and "unreadable sidecar" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_list_and_help(project: Path, capsys) -> None:
    text = runner.format_listing()
    assert "02-good" in text and "x=2" in text
    assert "a positive number" in text and "int" in text
    assert main(["list", "03-sleep"]) == 0
    out = capsys.readouterr().out
    assert "sleep_s" in out and "seconds to sleep" in out and "01-fail" not in out
    for argv in (["--help"], ["run", "--help"], ["report", "--help"], ["list", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    assert "--stop-on-failure" in capsys.readouterr().out


def test_parse_overrides_and_run_id() -> None:
    common, scoped = runner.parse_overrides(["batch_size=-3", "fanouts=[5, 5]", "device=cpu", "run_id=007",
                                             "01-hgnn-training:lr=1e-3", "flag=true"])
    assert common == {"batch_size": -3, "fanouts": [5, 5], "device": "cpu", "run_id": "007", "flag": True}
    assert scoped == {"01-hgnn-training": {"lr": 1e-3}}
    with pytest.raises(ValueError, match="expected name=value"):
        runner.parse_overrides(["batch_size"])
    rid = runner.new_run_id()
    assert len(rid) == len("20261121T081500Z-3f2a") and rid[8] == "T" and rid[15:17] == "Z-"


def test_kernel_spec_pointing_elsewhere_is_replaced(tmp_path: Path) -> None:
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": ["/opt/other/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "other", "language": "python"}))
    extra, tmp, line = runner.kernel_setup({"JUPYTER_PATH": str(tmp_path)})
    try:
        assert tmp is not None and extra["JUPYTER_PATH"].split(os.pathsep) == [str(tmp), str(tmp_path)]
        written = json.loads((tmp / "kernels" / "python3" / "kernel.json").read_text())
        assert written["argv"][0] == sys.executable and "private spec" in line
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp)
