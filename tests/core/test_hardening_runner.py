"""Runner hardening: a run's status is true in ``runs.json``, the HTML index and the executed
notebook after a Ctrl-C (SIGINT), a SIGTERM or a SIGKILL of the runner, with the cell named; the
runner's temporary folders are removed; ``--set run_id=X`` is the recorded run id.

Uses the throw-away project of ``test_runner.py`` (tiny notebooks, a one-off parameter model). The
signal tests run ``python -m studylib run`` in a process of their own (a driver script that
installs the same parameter model), wait until the kernel sits in the sleeping cell, signal the
runner and check what it left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from core.test_runner import TinyParams, project  # noqa: F401  (the fixture)

from studylib import runner

SLEEP_CELL = 3  # 0-based index of the sleeping cell in the source notebook


def _runs(root: Path) -> dict:
    return json.loads((root / "reports" / "runs.json").read_text())["profiles"]["smoke"]


def _no_runner_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir()
                  if p.name.startswith((runner.RUN_TMP_PREFIX, runner.KERNEL_TMP_PREFIX)))


def test_run_id_override_reaches_runs_json_and_the_time_out_banner(project: Path) -> None:  # noqa: F811
    (res,) = runner.run_notebooks(["03-sleep"], "smoke", {"run_id": "my-run-7"}, timeout=15, progress=False,
                                  write_report=False)
    assert res.status == "timed out" and res.run_id == "my-run-7"
    assert _runs(project)["03-sleep"]["run_id"] == "my-run-7"
    nb = nbformat.read(res.output, as_version=4)
    assert "(run my-run-7)" in nb.cells[0].source and nb.metadata["studylib"]["run_id"] == "my-run-7"
    assert nb.metadata["studylib"]["source_cell_index"] == SLEEP_CELL and f"in cell {SLEEP_CELL}" in nb.cells[0].source
    rec = json.loads((project / "results" / "03-sleep.json").read_text())
    assert rec["run_id"] == "my-run-7" and rec["env"]["STUDYLIB_RUN_ID"] == "my-run-7"


def test_stale_runner_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = psutil.Process().pid
    while psutil.pid_exists(dead):
        dead += 7919
    stale = [tmp_path / f"{runner.RUN_TMP_PREFIX}{dead}-abc", tmp_path / f"{runner.KERNEL_TMP_PREFIX}{dead}-def"]
    alive = [tmp_path / f"{runner.RUN_TMP_PREFIX}{os.getpid()}-ghi", tmp_path / f"{runner.RUN_TMP_PREFIX}{os.getppid()}-x"]
    other = tmp_path / "studylib-running-notes"
    for d in [*stale, *alive, other]:
        (d / "tmp").mkdir(parents=True)
    removed = runner.remove_stale_temporary_folders(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert all(d.is_dir() for d in [*alive, other]) and not any(d.exists() for d in stale)


_DRIVER = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    sys.path.insert(0, {tests!r})
    from studylib import params
    from studylib.__main__ import main
    from core.test_runner import NAMES, TinyParams
    params.NOTEBOOK_PARAMS = {{n: TinyParams for n in NAMES}}
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_status_is_true_after_the_runner_is_signalled(project: Path, tmp_path: Path, signum) -> None:  # noqa: F811
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.format(tests=str(Path(__file__).parents[1])))
    # the previous run of this notebook was fine: that record must not survive
    (project / "reports").mkdir()
    (project / "reports" / "runs.json").write_text(json.dumps({"format": 1, "profiles": {"smoke": {
        "03-sleep": {"notebook": "03-sleep", "status": "ok", "run_id": "earlier"}}}}))
    env = {**os.environ, "TMPDIR": str(tmp), "STUDYLIB_ROOT": str(project)}
    proc = subprocess.Popen([sys.executable, str(driver), "run", "03-sleep", "--profile", "smoke", "--no-progress",
                             "--timeout", "300"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    started = project / "results" / "03-sleep.json"
    try:
        deadline = time.monotonic() + 120
        while not started.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.is_file(), f"the notebook did not start: {proc.communicate(timeout=5)[0].decode()[-2000:]}"
        time.sleep(1.5)  # the kernel is now in the sleeping cell
        assert _runs(project)["03-sleep"]["status"] == "interrupted"  # no end recorded yet
        proc.send_signal(signum)
        out = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    if signum != signal.SIGKILL:
        assert proc.returncode == 128 + signum, out
    kernel = json.loads(started.read_text())["pid"]
    deadline = time.monotonic() + 45  # after a SIGKILL the orphaned child does the recording
    while time.monotonic() < deadline:
        rec = _runs(project)["03-sleep"]
        if rec.get("source_cell_index") is not None and not psutil.pid_exists(kernel) \
                and not _no_runner_folders(tmp):
            break
        time.sleep(0.5)
    rec = _runs(project)["03-sleep"]
    assert rec["status"] == "interrupted" and rec["run_id"] != "earlier", (rec, out)
    assert rec["source_cell_index"] == SLEEP_CELL and f"cell {SLEEP_CELL}" in rec["message"], rec
    nb = nbformat.read(project / "reports" / "smoke" / "03-sleep.ipynb", as_version=4)
    assert nb.metadata["studylib"]["status"] == "interrupted"
    assert f"in cell {SLEEP_CELL}" in nb.cells[0].source
    assert nb.cells[-1].outputs[-1]["ename"] == "KeyboardInterrupt"
    index = (project / "reports" / "index.html").read_text()
    assert 'class="interrupted"' in index and 'class="ok"' not in index
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE
    assert _no_runner_folders(tmp) == []
