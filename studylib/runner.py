"""Run the study notebooks through papermill, keep every executed copy, and write the HTML index.

``python -m studylib run`` (see :mod:`studylib.__main__`) is a thin shell around the functions here:

* :func:`known_notebooks` -- the notebooks under ``notebooks/`` (``NN-topic.ipynb``).
* :func:`new_run_id` -- a fresh run id, ``<UTC timestamp>-<4 hex>`` (``20261121T081500Z-3f2a``).
* :func:`prepare_runs` -- select notebooks and validate *all* their parameters before anything runs.
* :func:`run_notebooks` -- execute them, one child process per notebook, each under a wall-clock
  timeout; returns one :class:`RunResult` per notebook and records them in ``reports/runs.json``.
* :func:`write_index` -- ``reports/index.html``: every figure with its provenance sidecar, and every
  executed notebook (converted to HTML next to its ``.ipynb``) with its status.

How a notebook is executed
--------------------------
Each notebook runs in a child process (``sys.executable -c`` calling :func:`_child_entry`; not
``multiprocessing``, whose *spawn* re-imports the caller's main script) that calls
``papermill.execute_notebook(..., kernel_name="python3", cwd=notebooks/,
request_save_on_cell_execute=True)`` and writes ``reports/<profile>/<notebook>.ipynb`` -- after every
cell, and also when a cell fails. The parent waits at most ``timeout`` seconds; past it, it
interrupts the kernel (SIGINT, like Jupyter's interrupt button: the cell raises KeyboardInterrupt,
papermill records it and saves the notebook), then, if need be, SIGTERMs the child and kills
whatever is left of the process tree (see :func:`_stop_tree`), and marks the output notebook as
timed out. A Ctrl-C at the terminal, or a SIGTERM to the runner, stops the running notebook the
same way and marks it *interrupted* (in ``runs.json``, the HTML index and the executed notebook, with
the cell it stopped in). When the runner itself is killed (SIGKILL), its child notices within two
seconds, interrupts the kernel the same way and records the notebook as interrupted itself; and
before a notebook starts, its ``runs.json`` entry already says *interrupted* (no end recorded), so
that no earlier "ok" survives a run that never ended.

Every notebook gets a private temporary folder (``studylib-run-<pid>-*``, also the kernel's
``TMPDIR``) that is removed when it ends, however it ends; folders of runners that died without
removing theirs (``studylib-run-*``, ``studylib-kernel-*`` of a process that no longer exists) are
removed when the next run starts.

The kernel is the current interpreter: the child's ``PATH`` starts with ``sys.executable``'s folder,
and :func:`kernel_setup` checks that the ``python3`` kernel spec resolves to ``sys.executable``
(jupyter_client replaces a bare ``python`` in a spec by the launching interpreter, which is the
child, i.e. ``sys.executable``). When it does not -- a user-level ``python3`` spec pointing at another
Python -- a private spec with ``argv[0] = sys.executable`` is written to a temporary folder put first
on the child's ``JUPYTER_PATH``.

The kernels see ``STUDYLIB_PROFILE``, ``STUDYLIB_RUN_ID``, ``STUDYLIB_ROOT`` (the runner's project
root), ``MPLBACKEND=Agg`` and every other variable of the caller (``STUDYLIB_DATA_MIRROR`` ...);
the folder holding this ``studylib`` package is put first on ``PYTHONPATH`` so that the notebooks
import the same ``studylib`` as the runner. A prompt (``builtins.input``) in a notebook raises instead of waiting:
papermill runs kernels without stdin.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from studylib import params as params_mod
from studylib import paths
from studylib.results import new_run_id  # noqa: F401  (re-exported: the runner makes run ids)

#: per-notebook wall-clock limit in seconds when none is given (``--timeout``); 0/None = no limit.
DEFAULT_TIMEOUT = 1800.0
#: profile-specific defaults (the smoke profile must finish quickly or it is broken).
PROFILE_TIMEOUTS = {"smoke": 600.0, "small": 1800.0, "paper": 1800.0}
#: the kernel every notebook runs on (checked to resolve to ``sys.executable``).
KERNEL_NAME = "python3"
#: seconds a timed-out notebook gets after its kernel is interrupted (SIGINT) before the child is SIGTERMed.
TERM_GRACE_S = 10.0

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_TIMED_OUT = "timed out"
STATUS_INTERRUPTED = "interrupted"
STATUS_SKIPPED = "skipped"

#: prefixes of the runner's temporary folders (followed by the owning process id and a dash).
RUN_TMP_PREFIX = "studylib-run-"
KERNEL_TMP_PREFIX = "studylib-kernel-"

_RUNS_FILE = "runs.json"
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_INJECTED_TAG = "injected-parameters"
_PM_ERROR_TAG = "papermill-error-cell-tag"


# --------------------------------------------------------------------------------------------
# results


@dataclass
class RunResult:
    """The outcome of one notebook of one run.

    Attributes:
        notebook: notebook name (``01-hgnn-training``).
        profile: parameter profile it ran with.
        run_id: run id injected as parameter ``run_id``.
        status: ``"ok"``, ``"failed"``, ``"timed out"``, ``"interrupted"`` (Ctrl-C, SIGTERM or a
            killed runner) or ``"skipped"`` (not run after an earlier failure with
            ``keep_going=False``).
        seconds: wall-clock seconds of the execution (child start to end), 0 when skipped.
        output: the executed notebook ``reports/<profile>/<notebook>.ipynb`` (may not exist when the
            notebook failed before papermill wrote anything, or was skipped).
        parameters: the validated parameters injected into the notebook.
        cell_index: papermill's index of the failing cell in the *executed* notebook (which has the
            injected-parameters cell added after the ``parameters`` cell); None unless failed in a cell.
        source_cell_index: the failing cell's 0-based index in the source notebook under
            ``notebooks/`` (what you see when you open it); None unless failed in a cell.
        exec_count: the failing cell's execution count (``In [n]``).
        ename, evalue: exception class name and message (the exception line).
        message: one human-readable line about a failure or time-out; empty when ok.
    """

    notebook: str
    profile: str
    run_id: str
    status: str
    seconds: float
    output: Path
    parameters: dict = field(default_factory=dict)
    cell_index: int | None = None
    source_cell_index: int | None = None
    exec_count: int | None = None
    ename: str | None = None
    evalue: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the notebook ran to its end without an exception."""
        return self.status == STATUS_OK

    def to_json(self) -> dict:
        """A JSON-serialisable dict of this result (``output`` as a string)."""
        d = asdict(self)
        d["output"] = str(self.output)
        return d


class RunInterrupted(KeyboardInterrupt):
    """Raised by :func:`run_notebooks` after a Ctrl-C (SIGINT) or a SIGTERM stopped a notebook;
    ``signum`` is the signal, ``results`` the results so far (the interrupted notebook included)."""

    def __init__(self, signum: int = signal.SIGINT, results: list | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.results = list(results or [])


@dataclass
class PreparedRun:
    """A notebook selected for a run, with its validated parameters (see :func:`prepare_runs`)."""

    notebook: str
    input_path: Path
    output_path: Path
    parameters: dict


# --------------------------------------------------------------------------------------------
# selection and validation


def known_notebooks() -> list[str]:
    """Names (file stems) of the notebooks in ``notebooks/``, sorted; hidden files excluded."""
    nb_dir = paths.notebooks_dir()
    if not nb_dir.is_dir():
        return []
    return sorted(p.stem for p in nb_dir.glob("*.ipynb") if not p.name.startswith((".", "_")))


def profile_notebooks(profile: str) -> list[str]:
    """Names of the notebooks with a parameter file ``notebooks/params/<profile>/<name>.yaml``.

    Raises:
        ValueError: ``profile`` is not one of :data:`studylib.params.PROFILES`.
    """
    _check_profile(profile)
    folder = paths.notebooks_dir() / "params" / profile
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith("."))


def _check_profile(profile: str) -> None:
    if profile not in params_mod.PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(params_mod.PROFILES)}")


def _normalise_name(name: str) -> str:
    """Accept ``01-x``, ``01-x.ipynb`` and ``notebooks/01-x.ipynb`` alike."""
    name = Path(name).name
    return name[: -len(".ipynb")] if name.endswith(".ipynb") else name


def parse_overrides(items: Iterable[str]) -> tuple[dict, dict[str, dict]]:
    """Parse ``--set`` items ``name=value`` or ``NOTEBOOK:name=value``; values are YAML scalars.

    ``batch_size=-3`` gives ``{"batch_size": -3}``, ``fanouts=[5,5]`` a list, ``device=cpu`` a
    string, ``lr=1e-3`` a float (PyYAML alone would read it as a string); ``run_id`` always
    stays a string.

    Returns:
        ``(common, per_notebook)``: overrides for every selected notebook, and per notebook name.

    Raises:
        ValueError: an item has no ``=``, an empty name, or a value that is not valid YAML.
    """
    common: dict = {}
    scoped: dict[str, dict] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected name=value (or NOTEBOOK:name=value)")
        key, raw = item.split("=", 1)
        key = key.strip()
        notebook = None
        if ":" in key:
            notebook, key = (s.strip() for s in key.split(":", 1))
            notebook = _normalise_name(notebook)
        if not key or (notebook is not None and not notebook):
            raise ValueError(f"--set {item!r}: empty notebook or parameter name")
        if key == "run_id":
            value: Any = raw
        else:
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError as err:
                raise ValueError(f"--set {item!r}: value is not valid YAML ({err.__class__.__name__})") from None
            if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
                value = float(value)  # YAML 1.1 reads 1e-3 as a string
        (scoped.setdefault(notebook, {}) if notebook else common)[key] = value
    return common, scoped


def prepare_runs(
    names: Iterable[str] | None,
    profile: str,
    overrides: dict | None = None,
    run_id: str | None = None,
    notebook_overrides: dict[str, dict] | None = None,
) -> tuple[str, list[PreparedRun]]:
    """Select notebooks and load and validate the parameters of *every* one of them.

    Args:
        names: notebook names; empty or None = every notebook with a YAML file in ``profile``.
        profile: one of :data:`studylib.params.PROFILES`.
        overrides: parameter values applied to every selected notebook (over the profile's YAML).
        run_id: the run id to inject when the parameters do not set ``run_id``; None = a fresh one.
        notebook_overrides: notebook name -> overrides for that notebook only.

    Returns:
        ``(run_id, prepared)`` in execution order.

    Raises:
        ValueError: unknown profile or notebook (the message lists the known ones), no notebook
            selected, a notebook without parameter model or YAML file, or invalid parameters. All
            problems of all notebooks are collected into one message, one line each, e.g.
            ``01-hgnn-training: batch_size must be > 0 (got -3)``.
    """
    _check_profile(profile)
    known = known_notebooks()
    if names:
        selected = list(dict.fromkeys(_normalise_name(n) for n in names))
        unknown = [n for n in selected if n not in known]
        if unknown:
            listing = ", ".join(known) if known else f"none (no .ipynb in {paths.notebooks_dir()})"
            raise ValueError(f"unknown notebook{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}; known notebooks: {listing}")
    else:
        selected = profile_notebooks(profile)
        if not selected:
            raise ValueError(f"no notebook has parameters for profile {profile!r} "
                             f"({paths.notebooks_dir() / 'params' / profile} has no .yaml files)")
        orphans = [n for n in selected if n not in known]
        if orphans:
            raise ValueError(f"profile {profile!r} has parameters for {', '.join(orphans)} but no such "
                             f"notebook in {paths.notebooks_dir()}; known notebooks: {', '.join(known)}")
    notebook_overrides = {_normalise_name(k): v for k, v in (notebook_overrides or {}).items()}
    stray = [n for n in notebook_overrides if n not in selected]
    if stray:
        raise ValueError(f"--set for notebook(s) not selected in this run: {', '.join(stray)}")

    # a run id given with --set run_id=X (for all notebooks) is the run's id
    run_id = run_id or (overrides or {}).get("run_id") or new_run_id()
    problems: list[str] = []
    prepared: list[PreparedRun] = []
    out_dir = paths.reports_dir() / profile
    for name in selected:
        values = dict(overrides or {})
        values.update(notebook_overrides.get(name, {}))
        try:
            loaded = params_mod.load_profile(name, profile, values)
        except (ValueError, FileNotFoundError) as err:
            text = str(err)
            if overrides and "unknown parameter" in text:
                text += f" (to set a parameter of one notebook only: --set {name}:NAME=VALUE)"
            problems.append(text)
            continue
        if loaded.get("run_id") is None:
            loaded["run_id"] = run_id
        prepared.append(PreparedRun(name, paths.notebooks_dir() / f"{name}.ipynb",
                                    out_dir / f"{name}.ipynb", loaded))
    if problems:
        raise ValueError("\n".join(problems))
    return run_id, prepared


# --------------------------------------------------------------------------------------------
# kernel and environment


def kernel_setup(env: dict[str, str]) -> tuple[dict[str, str], Path | None, str]:
    """Make sure the ``python3`` kernel of the child runs ``sys.executable``.

    Looks the spec up as the child would (``JUPYTER_PATH`` of ``env``). A spec whose ``argv[0]`` is
    a bare ``python``/``python3``/``python3.X`` is fine (jupyter_client substitutes the launching
    interpreter, the child's ``sys.executable``), as is one naming ``sys.executable`` itself (same
    path, symlinks *not* resolved: a venv's python links to the base interpreter). Otherwise, or
    when no such spec exists, a private spec is written to a temporary folder which is put first on
    the child's ``JUPYTER_PATH``.

    Args:
        env: the environment the child will get (not modified).

    Returns:
        ``(extra_env, tmpdir, description)``: variables to add to the child's environment, a
        temporary folder to delete after the run (or None), and a line saying which kernel is used.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    saved = os.environ.get("JUPYTER_PATH")
    try:
        if env.get("JUPYTER_PATH") is not None:
            os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
        try:
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
            argv0, language = spec.argv[0], (spec.language or "").lower()
        except NoSuchKernel:
            argv0, language = None, ""
    finally:
        if saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved
    bare = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if argv0 is not None and language == "python" and (
            argv0 in bare or os.path.abspath(argv0) == os.path.abspath(sys.executable)):
        return {}, None, f"kernel {KERNEL_NAME} -> {sys.executable}"
    tmp = Path(tempfile.mkdtemp(prefix=f"{KERNEL_TMP_PREFIX}{os.getpid()}-"))
    spec_dir = tmp / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info[0]}.{sys.version_info[1]} (studylib runner)",
        "language": "python",
        "metadata": {"debugger": True},
    }, indent=1))
    jp = env.get("JUPYTER_PATH")
    extra = {"JUPYTER_PATH": str(tmp) + (os.pathsep + jp if jp else "")}
    found = f"it resolved to {argv0!r}" if argv0 else "none was found"
    return extra, tmp, f"kernel {KERNEL_NAME} -> {sys.executable} (private spec; {found})"


def kernel_environment(profile: str, run_id: str) -> dict[str, str]:
    """The environment of the child and its kernel: the caller's, plus ``STUDYLIB_PROFILE``,
    ``STUDYLIB_RUN_ID``, ``STUDYLIB_ROOT``, ``STUDYLIB_CALLER_CWD`` (the caller's working folder:
    relative paths in dataset specs resolve against it, since papermill starts kernels in
    ``notebooks/``), ``MPLBACKEND=Agg``, this interpreter's folder first on ``PATH`` and this
    ``studylib``'s parent folder first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["STUDYLIB_CALLER_CWD"] = os.environ.get("STUDYLIB_CALLER_CWD") or os.getcwd()
    env["STUDYLIB_PROFILE"] = profile
    env["STUDYLIB_RUN_ID"] = run_id
    env["STUDYLIB_ROOT"] = str(paths.project_root())
    env["MPLBACKEND"] = "Agg"
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    env["PATH"] = bindir + (os.pathsep + env["PATH"] if env.get("PATH") else "")
    pkg_parent = str(Path(__file__).resolve().parent.parent)
    pp = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != pkg_parent]
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent, *pp])
    return env


# --------------------------------------------------------------------------------------------
# the child process


class _Terminated(BaseException):
    """Raised in the child by SIGTERM (time-out): unwinds papermill so it saves the notebook."""


def _signal_children(pid: int, signum: int) -> None:
    """Send ``signum`` to the direct children of process ``pid`` (the kernels of a runner child)."""
    import psutil

    try:
        kids = psutil.Process(pid).children()
    except psutil.Error:
        return
    for k in kids:
        try:
            k.send_signal(signum)
        except psutil.Error:
            pass


def _child_entry(job_file: str) -> None:
    """Body of the child process ``python -c 'from studylib.runner import _child_entry; ...'``.

    Reads the job (input, output, cwd, parameters, progress bar, and what a killed runner would
    have recorded) from ``job_file``, runs papermill, and writes the outcome as JSON to the job's
    ``result`` path. SIGTERM makes papermill save the notebook and the child exit with status 3
    without a result. When the runner disappears (killed), the child interrupts its kernel (SIGINT,
    so the running cell is recorded), records the notebook as interrupted in ``runs.json``, the
    executed notebook and the index, and removes the runner's temporary folders (see
    :func:`_finish_orphan`). Not meant to be called otherwise.
    """
    def on_term(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise _Terminated()

    signal.signal(signal.SIGTERM, on_term)
    parent = os.getppid()
    orphaned, finishing = threading.Event(), threading.Event()

    def watch_parent():  # the runner was killed hard: interrupt the kernel; stop if that does not end it
        while os.getppid() == parent:
            time.sleep(2.0)
        orphaned.set()
        _signal_children(os.getpid(), signal.SIGINT)
        if not finishing.wait(TERM_GRACE_S):
            os.kill(os.getpid(), signal.SIGTERM)

    job: dict = {}
    result: dict = {}
    try:
        threading.Thread(target=watch_parent, daemon=True).start()
        job = json.loads(Path(job_file).read_text())
        import papermill
        from papermill.exceptions import PapermillExecutionError

        result = {"status": STATUS_OK}
        try:
            papermill.execute_notebook(
                job["input"], job["output"], parameters=job["parameters"], kernel_name=KERNEL_NAME,
                cwd=job["cwd"], request_save_on_cell_execute=True, progress_bar=job["progress_bar"],
                log_output=False)
        except PapermillExecutionError as err:
            result = {"status": STATUS_FAILED, "cell_index": err.cell_index, "exec_count": err.exec_count,
                      "ename": err.ename, "evalue": err.evalue,
                      "source_cell_index": _source_cell_index(job["output"], err.cell_index)}
        except Exception as err:  # kernel died or did not start, unreadable notebook ...
            result = {"status": STATUS_FAILED, "ename": type(err).__name__, "evalue": str(err)}
        finishing.set()
        _atomic_write(Path(job["result"]), json.dumps(result, default=str))
    except _Terminated:
        finishing.set()
        if orphaned.is_set() and job:
            _signal_children(os.getpid(), signal.SIGKILL)  # no runner is left to stop the kernel
            _finish_orphan(job_file, job, {})
        sys.stderr.flush()
        os._exit(3)  # no interpreter teardown: the kernel is the parent's to stop
    if orphaned.is_set() and job:
        _finish_orphan(job_file, job, result)


def _finish_orphan(job_file: str, job: dict, payload: dict) -> None:
    """What the runner would have done after a notebook, done by a child whose runner was killed:
    record the outcome (``interrupted`` unless the notebook had already ended by itself) in
    ``runs.json``, the executed notebook and (``job["write_report"]``) the index, then remove the
    runner's temporary folders. Best effort: nothing here may raise."""
    try:
        res = RunResult(job["notebook"], job["profile"], job["run_id"], STATUS_INTERRUPTED,
                        max(0.0, time.time() - float(job.get("started_unix", time.time()))), Path(job["output"]),
                        parameters=job.get("parameters") or {})
        _apply_payload(res, payload)
        if res.status == STATUS_FAILED and res.ename == "KeyboardInterrupt" or not payload:
            res.status = STATUS_INTERRUPTED
            res.message = f"interrupted: the runner was killed{_where(res)}; stopped, partial output kept"
        if res.status == STATUS_INTERRUPTED and res.output.is_file():
            _mark_stopped(res, "the runner was killed")
        _record_runs([res])
        if job.get("write_report"):
            write_index(convert=False)
    except Exception:
        pass
    for folder in [Path(job_file).parent, *(Path(p) for p in job.get("cleanup") or [])]:
        shutil.rmtree(folder, ignore_errors=True)


def _source_cell_index(output: str, cell_index: int | None) -> int | None:
    """Map papermill's cell index (executed notebook, with injected cell) to the source notebook."""
    if cell_index is None:
        return None
    try:
        import nbformat

        nb = nbformat.read(output, as_version=4)
        cells = [c for c in nb.cells if _PM_ERROR_TAG not in c.get("metadata", {}).get("tags", [])]
        injected = [i for i, c in enumerate(cells) if _INJECTED_TAG in c.get("metadata", {}).get("tags", [])]
        return cell_index - sum(1 for i in injected if i < cell_index)
    except Exception:
        return None


def _stop_tree(proc: subprocess.Popen, grace: float = TERM_GRACE_S, interrupt: bool = True) -> None:
    """Stop the child ``proc`` and every process below it.

    First (``interrupt``) the kernels -- the child's own children -- get SIGINT, as Jupyter's
    "interrupt" does: the running cell raises KeyboardInterrupt (its ``finally`` blocks run), papermill
    records the error in the notebook, saves it and shuts the kernel down, and the child exits. A
    child still running after ``grace`` seconds gets SIGTERM (it saves the notebook and exits), then
    SIGKILL. The kernel runs in a session of its own, so the process tree is recorded *before* the
    child is signalled; whatever of it is still alive at the end gets SIGTERM, then SIGKILL.
    """
    import psutil

    try:
        me = psutil.Process(proc.pid)
        kernels = me.children()
        below = me.children(recursive=True)
    except psutil.Error:
        kernels, below = [], []
    if interrupt and proc.poll() is None:
        for k in kernels:
            try:
                k.send_signal(signal.SIGINT)
            except psutil.Error:
                pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        except ProcessLookupError:
            pass
    below = [p for p in below if p.is_running()]
    for p in below:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(below, timeout=3)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=3)


def _where(res: RunResult) -> str:
    """`` in cell N (0-based; In [n])`` for a result that names its cell, else ``""``."""
    if res.cell_index is None:
        return ""
    shown = res.source_cell_index if res.source_cell_index is not None else res.cell_index
    return f" in cell {shown} (0-based; In [{res.exec_count}])"


def _apply_payload(res: RunResult, payload: dict) -> None:
    """Copy a child's result (status, failing cell, exception) into ``res``."""
    if payload.get("status"):
        res.status = payload["status"]
    for key in ("cell_index", "source_cell_index", "exec_count", "ename", "evalue"):
        setattr(res, key, payload.get(key))
    if res.status == STATUS_FAILED:
        evalue = (res.evalue or "").strip().splitlines()
        res.message = f"failed{_where(res)}: {res.ename}: {evalue[0] if evalue else ''}".rstrip(": ")


def _mark_stopped(res: RunResult, why: str, extra: dict | None = None) -> None:
    """Add a banner cell and ``metadata.studylib`` (status, run id, the cell it stopped in) to the
    executed notebook of a timed-out or interrupted run (quietly best-effort)."""
    try:
        import nbformat

        nb = nbformat.read(res.output, as_version=4)
        cell = nbformat.v4.new_markdown_cell(
            f'<span style="color:red;font-family:Helvetica Neue, Helvetica, Arial, sans-serif;font-size:2em;">'
            f"Stopped by the studylib runner: {html.escape(why)}{html.escape(_where(res))} (run "
            f"{html.escape(res.run_id)}). Outputs below are those saved before it was stopped.</span>")
        cell.metadata["tags"] = ["studylib-timeout" if res.status == STATUS_TIMED_OUT else "studylib-interrupted"]
        nb.cells.insert(0, cell)
        nb.metadata["studylib"] = {"status": res.status, "run_id": res.run_id, "reason": why,
                                   "cell_index": res.cell_index, "source_cell_index": res.source_cell_index,
                                   "exec_count": res.exec_count, **(extra or {})}
        _atomic_write(res.output, nbformat.writes(nb))
    except Exception:
        pass


def _mark_timed_out(output: Path, timeout: float, run_id: str) -> None:
    """Add a banner cell and ``metadata.studylib`` to a timed-out notebook (quietly best-effort)."""
    res = RunResult(output.stem, "", run_id, STATUS_TIMED_OUT, 0.0, output)
    _mark_stopped(res, f"time-out after {timeout:g} s", {"timeout_s": timeout})


def _read_payload(result_file: Path) -> dict | None:
    try:
        payload = json.loads(result_file.read_text())
        return payload if isinstance(payload, dict) else None
    except (OSError, ValueError):
        return None


def _pid_of(folder: Path, prefix: str) -> int | None:
    head = folder.name[len(prefix):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def remove_stale_temporary_folders(base: Path | str | None = None) -> list[Path]:
    """Remove ``studylib-run-<pid>-*`` and ``studylib-kernel-<pid>-*`` folders under ``base``
    (default: the system temporary folder) whose process ``<pid>`` no longer exists -- left by a
    runner that was killed together with its child. Returns the removed folders."""
    import psutil

    base = Path(base or tempfile.gettempdir())
    removed = []
    for prefix in (RUN_TMP_PREFIX, KERNEL_TMP_PREFIX):
        for folder in base.glob(f"{prefix}*"):
            pid = _pid_of(folder, prefix)
            if pid is None or pid == os.getpid() or psutil.pid_exists(pid) or not folder.is_dir():
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _execute_one(prep: PreparedRun, profile: str, run_id: str, env: dict, timeout: float | None,
                 progress_bar: Any, write_report: bool = False, cleanup: Iterable[Path] = ()) -> RunResult:
    """Run one prepared notebook in a child process under ``timeout``; never raises for a notebook
    failure. A KeyboardInterrupt (Ctrl-C) or :class:`RunInterrupted` (SIGTERM) stops the child and
    its kernel, marks the notebook interrupted, and is re-raised as :class:`RunInterrupted` holding
    the result. ``run_id`` is the notebook's own (``prep.parameters["run_id"]``) when set."""
    run_id = str(prep.parameters.get("run_id") or run_id)
    env = {**env, "STUDYLIB_RUN_ID": run_id}
    prep.output_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (prep.output_path, prep.output_path.with_suffix(".html")):
        stale.unlink(missing_ok=True)
    base = RunResult(prep.notebook, profile, run_id, STATUS_FAILED, 0.0, prep.output_path,
                     parameters=prep.parameters)
    # until the notebook ends, its record says that no end was recorded (true also after a SIGKILL)
    pending = RunResult(prep.notebook, profile, run_id, STATUS_INTERRUPTED, 0.0, prep.output_path,
                        message=f"started {datetime.now(UTC).isoformat(timespec='seconds')}; no end was recorded "
                                "(the runner was stopped before the notebook ended, or it is still running)")
    _record_runs([pending])
    if write_report:
        with _suppress_all():
            write_index(convert=False)
    with tempfile.TemporaryDirectory(prefix=f"{RUN_TMP_PREFIX}{os.getpid()}-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        (Path(tmp) / "tmp").mkdir()
        env["TMPDIR"] = str(Path(tmp) / "tmp")  # the kernel's temporary files go with this folder
        job_file.write_text(json.dumps({
            "input": str(prep.input_path), "output": str(prep.output_path), "cwd": str(paths.notebooks_dir()),
            "parameters": prep.parameters, "progress_bar": progress_bar, "result": str(result_file),
            "notebook": prep.notebook, "profile": profile, "run_id": run_id, "started_unix": time.time(),
            "write_report": write_report, "cleanup": [str(c) for c in cleanup]}, default=str))
        code = f"from studylib.runner import _child_entry; _child_entry({str(job_file)!r})"
        start = time.monotonic()
        proc = None
        try:
            # own process group: a Ctrl-C at the terminal reaches the runner only, which stops the child
            proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL, process_group=0)
            proc.wait(timeout or None)
        except subprocess.TimeoutExpired:
            _stop_tree(proc)
            base.seconds = time.monotonic() - start
            _apply_payload(base, _read_payload(result_file) or {})
            base.status = STATUS_TIMED_OUT  # the interrupted cell, when papermill recorded the KeyboardInterrupt
            base.message = f"timed out after {timeout:g} s{_where(base)}; stopped, partial output kept"
            if prep.output_path.is_file():
                _mark_stopped(base, f"time-out after {timeout:g} s", {"timeout_s": timeout})
            return base
        except BaseException as err:  # Ctrl-C or SIGTERM: stop the notebook as a time-out would
            signum = err.signum if isinstance(err, RunInterrupted) else signal.SIGINT
            if proc is not None:
                _stop_tree(proc, grace=5)
            base.seconds = time.monotonic() - start
            _apply_payload(base, _read_payload(result_file) or {})
            name = signal.Signals(signum).name
            if base.status != STATUS_OK:
                base.status = STATUS_INTERRUPTED
                base.message = f"interrupted by {name}{_where(base)}; stopped, partial output kept"
                if prep.output_path.is_file():
                    _mark_stopped(base, f"interrupted by {name}", {"signal": name})
            raise RunInterrupted(signum, [base]) from None
        base.seconds = time.monotonic() - start
        payload = _read_payload(result_file)
    if payload is None:
        base.message = f"runner child exited with status {proc.returncode} without a result (see stderr above)"
        return base
    _apply_payload(base, payload)
    return base


class _suppress_all:
    """``with _suppress_all():`` -- ignore any ``Exception`` (not KeyboardInterrupt) of the body."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, Exception)

# --------------------------------------------------------------------------------------------
# running


def resolve_timeout(profile: str, timeout: float | None) -> float | None:
    """The per-notebook time-out: ``timeout`` if given (0 or less = no limit), else the profile's
    default from :data:`PROFILE_TIMEOUTS` (else :data:`DEFAULT_TIMEOUT`)."""
    if timeout is None:
        return PROFILE_TIMEOUTS.get(profile, DEFAULT_TIMEOUT)
    return float(timeout) if timeout > 0 else None


def run_notebooks(
    names: Iterable[str] | None,
    profile: str,
    overrides: dict | None = None,
    timeout: float | None = None,
    keep_going: bool = True,
    *,
    notebook_overrides: dict[str, dict] | None = None,
    run_id: str | None = None,
    progress: bool = True,
    write_report: bool = True,
    log=None,
) -> list[RunResult]:
    """Execute notebooks with a profile's parameters through papermill and keep every output.

    All parameters are validated first (see :func:`prepare_runs`); nothing runs if any is invalid.
    Each notebook then runs in a child process with kernel ``python3`` (checked to be this
    interpreter), cwd ``notebooks/``, and output ``reports/<profile>/<notebook>.ipynb`` (kept also on
    failure or time-out). The run id is injected as parameter ``run_id`` unless set, the same for all
    notebooks of the call; the kernels see ``STUDYLIB_PROFILE``, ``STUDYLIB_RUN_ID`` and
    ``MPLBACKEND=Agg``. Results are merged into ``reports/runs.json``; then ``reports/index.html``
    is rewritten (``write_report``) -- also after a Ctrl-C or a SIGTERM, which stop the running
    notebook, record it as interrupted (naming the cell) and then raise :class:`RunInterrupted`.
    A ``run_id`` set with ``--set run_id=X`` is the id recorded for the notebooks it applies to.

    Args:
        names: notebook names (``01-hgnn-training``); empty/None = all with a YAML in ``profile``.
        profile: ``smoke``, ``small`` or ``paper``.
        overrides: parameter values for every selected notebook, over the profile's YAML.
        timeout: wall-clock seconds per notebook; None = the profile's default, 0 = no limit.
        keep_going: after a failure or time-out, run the next notebook (True) or mark the rest
            ``skipped`` (False).
        notebook_overrides: notebook name -> overrides for that notebook only.
        run_id: run id to inject; None = :func:`new_run_id`.
        progress: show a tqdm bar over notebooks (and papermill's per-cell bar on a terminal).
        write_report: rewrite ``reports/index.html`` at the end.
        log: callable taking one line of progress text (default: ``tqdm.write`` to stderr).

    Returns:
        One :class:`RunResult` per selected notebook, in execution order.

    Raises:
        ValueError: unknown profile/notebook or invalid parameters -- before anything runs.
        RunInterrupted: (a KeyboardInterrupt) after a Ctrl-C or SIGTERM, once the running notebook's
            processes are stopped and its status recorded; ``.results`` holds the results so far.
    """
    from tqdm.auto import tqdm

    run_id, prepared = prepare_runs(names, profile, overrides, run_id, notebook_overrides)
    remove_stale_temporary_folders()
    limit = resolve_timeout(profile, timeout)
    env = kernel_environment(profile, run_id)
    extra, tmpdir, kernel_line = kernel_setup(env)
    env.update(extra)
    tty = progress and sys.stderr.isatty()
    bar = tqdm(prepared, desc=f"{profile} {run_id}", unit="notebook", disable=not progress or None,
               file=sys.stderr, position=0, leave=True, dynamic_ncols=True)
    say = log or (lambda line: tqdm.write(line, file=sys.stderr))
    say(f"run {run_id}: profile {profile}, {len(prepared)} notebook(s), "
        f"time-out {'none' if limit is None else f'{limit:g} s'} each; {kernel_line}")
    results: list[RunResult] = []
    stop = False
    interrupted: RunInterrupted | None = None
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):  # SIGTERM is handled like a Ctrl-C
            raise RunInterrupted(signum)

        old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        for prep in bar:
            if stop:
                results.append(RunResult(prep.notebook, profile, run_id, STATUS_SKIPPED, 0.0,
                                         prep.output_path, parameters=prep.parameters,
                                         message="skipped after an earlier failure"))
                continue
            bar.set_postfix_str(prep.notebook)
            cell_bar: Any = {"desc": prep.notebook, "position": 1, "leave": False} if tty else False
            res = _execute_one(prep, profile, run_id, env, limit, cell_bar, write_report,
                               [tmpdir] if tmpdir is not None else [])
            results.append(res)
            line = f"{res.notebook}: {res.status} ({res.seconds:.1f} s)"
            say(line + (f" -- {res.message}" if res.message else "") + f" -> {display_path(res.output)}")
            if not res.ok and not keep_going:
                stop = True
    except KeyboardInterrupt as err:
        interrupted = err if isinstance(err, RunInterrupted) else RunInterrupted(signal.SIGINT)
        results.extend(interrupted.results)
        interrupted.results = results
        for res in interrupted.results[-1:]:
            say(f"{res.notebook}: {res.status} ({res.seconds:.1f} s) -- {res.message} -> {display_path(res.output)}")
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        bar.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        if results:
            _record_runs(results)
    if write_report:
        try:
            write_index()
        except Exception as err:  # a broken figure sidecar must not turn a good run into a crash
            say(f"warning: could not write the HTML index: {type(err).__name__}: {err}")
    if interrupted is not None:
        raise interrupted
    return results


def display_path(path: Path) -> str:
    """``path`` relative to the project root when below it, else as is."""
    try:
        return str(path.relative_to(paths.project_root()))
    except ValueError:
        return str(path)


def format_summary(results: list[RunResult]) -> str:
    """A plain-text table of results: notebook, status, seconds, output path (and failure lines)."""
    rows = [("notebook", "status", "seconds", "output")]
    rows += [(r.notebook, r.status, f"{r.seconds:.1f}", display_path(r.output) if r.status != STATUS_SKIPPED else "-")
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    bad = [r for r in results if r.status in (STATUS_FAILED, STATUS_TIMED_OUT, STATUS_INTERRUPTED)]
    if bad:
        lines.append("")
        lines += [f"{r.notebook}: {r.message}" for r in bad]
    ok = sum(r.ok for r in results)
    lines.append(f"{ok} of {len(results)} notebook(s) ok")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# runs.json


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_runs() -> dict:
    """``reports/runs.json`` as ``{profile: {notebook: record}}`` ({} when missing or unreadable)."""
    try:
        data = json.loads((paths.reports_dir() / _RUNS_FILE).read_text())
        runs = data.get("profiles", {})
        return runs if isinstance(runs, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _record_runs(results: list[RunResult]) -> None:
    """Merge ``results`` (skipped ones apart) into ``reports/runs.json`` atomically."""
    runs = read_runs()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for r in results:
        if r.status == STATUS_SKIPPED:
            continue
        rec = r.to_json()
        rec.pop("parameters", None)
        rec["finished_utc"] = now
        runs.setdefault(r.profile, {})[r.notebook] = rec
    _atomic_write(paths.reports_dir() / _RUNS_FILE,
                  json.dumps({"format": 1, "updated_utc": now, "profiles": runs}, indent=1, default=str))


# --------------------------------------------------------------------------------------------
# the HTML index

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{border:1px solid #ddd;border-radius:6px;padding:1em;margin:1em 0}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{margin-top:.5em}.muted{color:#777}.warn{color:#a40}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;
vertical-align:top;font-size:.9em}th{background:#f4f4f4}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.85em}
details{margin-top:.5em}summary{cursor:pointer;color:#245}
.ok{color:#070;font-weight:bold}.failed,.timed-out,.interrupted{color:#b00;font-weight:bold}.unknown{color:#777}
"""


def _rel(target: Path, start: Path) -> str:
    """A relative URL from folder ``start`` to ``target`` (posix separators, %-escaped)."""
    from urllib.parse import quote

    try:
        rel = os.path.relpath(target, start)
    except ValueError:  # another drive (Windows)
        return Path(target).resolve().as_uri()
    return quote(rel.replace(os.sep, "/"))


def _value_html(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"<code>{html.escape(json.dumps(value, default=str))}</code>"
    return f"<code>{html.escape(str(value))}</code>"


def _dict_table(d: dict) -> str:
    if not d:
        return '<span class="muted">none recorded</span>'
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value_html(v)}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _path_link(p: Any, base_dirs: list[Path], index_dir: Path) -> str:
    text = html.escape(str(p))
    cand = Path(str(p))
    tries = [cand] if cand.is_absolute() else [d / cand for d in base_dirs]
    for t in tries:
        if t.exists():
            return f'<a href="{_rel(t, index_dir)}">{text}</a>'
    return f"<code>{text}</code>"


def _figure_html(png: Path | None, sidecar: Path | None, index_dir: Path) -> str:
    meta: dict = {}
    problem = ""
    if sidecar is not None:
        try:
            loaded = json.loads(sidecar.read_text())
            meta = loaded if isinstance(loaded, dict) else {}
            if not isinstance(loaded, dict):
                problem = "sidecar is not a JSON object"
        except (OSError, ValueError) as err:
            problem = f"unreadable sidecar: {type(err).__name__}: {err}"
    stem = (png or sidecar).stem
    title = str(meta.get("title") or meta.get("name") or stem)
    parts = [f'<figure id="{html.escape((png or sidecar).parent.name + "-" + stem)}">']
    if png is not None:
        parts.append(f'<a href="{_rel(png, index_dir)}"><img src="{_rel(png, index_dir)}" alt="{html.escape(title)}" '
                     f'loading="lazy"></a>')
    else:
        parts.append('<p class="warn">no PNG next to this sidecar</p>')
    cap = f"<strong>{html.escape(title)}</strong>"
    if meta.get("caption"):
        cap += f" &mdash; {html.escape(str(meta['caption']))}"
    short = [f"{k}: {html.escape(str(meta[k]))}" for k in ("run_id", "profile", "created_utc") if meta.get(k)]
    if short:
        cap += f'<br><span class="muted">{" &middot; ".join(short)}</span>'
    parts.append(f"<figcaption>{cap}</figcaption>")
    if sidecar is None:
        parts.append('<p class="warn">no provenance sidecar (.json) for this figure</p>')
    elif problem:
        parts.append(f'<p class="warn">{html.escape(problem)}</p>')
    else:
        base_dirs = [sidecar.parent, paths.project_root()]
        files = meta.get("files") if isinstance(meta.get("files"), dict) else {}
        pdf = sidecar.with_suffix(".pdf")
        links = [f'<a href="{_rel(pdf, index_dir)}">pdf</a>'] if pdf.is_file() else []
        links += [f"{html.escape(str(k))}: {_path_link(v, base_dirs, index_dir)}" for k, v in files.items()
                  if not (k == "pdf" and pdf.is_file())]
        links.append(f'<a href="{_rel(sidecar, index_dir)}">sidecar json</a>')
        tables = meta.get("tables") or []
        if not isinstance(tables, list):
            tables = [tables]
        body = [
            _dict_table({k: meta.get(k) for k in ("notebook", "name", "run_id", "created_utc", "git_sha", "profile")
                         if k in meta}),
            "<p>files: " + " &middot; ".join(links) + "</p>",
            "<p>drawn from tables:</p>" + ("<ul>" + "".join(f"<li>{_path_link(t, base_dirs, index_dir)}</li>"
                                                             for t in tables) + "</ul>"
                                           if tables else ' <span class="muted">none recorded</span>'),
            "<details><summary>parameters</summary>" + _dict_table(meta.get("parameters") or {}) + "</details>",
            "<details><summary>hardware</summary><pre>"
            + html.escape(json.dumps(meta.get("hardware") or {}, indent=1, default=str)) + "</pre></details>",
            "<details><summary>library versions</summary>" + _dict_table(meta.get("versions") or {}) + "</details>",
        ]
        known = {"notebook", "name", "title", "caption", "run_id", "created_utc", "git_sha", "profile",
                 "parameters", "hardware", "versions", "tables", "files"}
        other = {k: v for k, v in meta.items() if k not in known}
        if other:
            body.append("<details><summary>other</summary>" + _dict_table(other) + "</details>")
        parts.append("<details><summary>provenance</summary>" + "".join(body) + "</details>")
    parts.append("</figure>")
    return "\n".join(parts)


def _notebook_status(profile: str, name: str, ipynb: Path, runs: dict) -> tuple[str, dict]:
    rec = (runs.get(profile) or {}).get(name) or {}
    if rec.get("status"):
        return str(rec["status"]), rec
    try:  # not run by this runner (or runs.json lost): ask the notebook's metadata
        meta = json.loads(ipynb.read_text()).get("metadata", {})
        if (meta.get("studylib") or {}).get("status"):
            return str(meta["studylib"]["status"]), rec
        exc = (meta.get("papermill") or {}).get("exception")
        if exc is not None:
            return (STATUS_FAILED if exc else STATUS_OK), rec
    except (OSError, ValueError, AttributeError):
        pass
    return "unknown", rec


def _convert_to_html(ipynb: Path) -> Path | None:
    """``<notebook>.html`` next to ``ipynb`` via nbconvert's HTMLExporter (only when stale);
    None when the conversion fails for any reason."""
    target = ipynb.with_suffix(".html")
    try:
        if target.is_file() and target.stat().st_mtime >= ipynb.stat().st_mtime:
            return target
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(ipynb))
        _atomic_write(target, body)
        return target
    except Exception:
        return None


def write_index(convert: bool = True) -> Path:
    """Write ``reports/index.html``: every figure, its provenance, and every executed notebook.

    Figures are ``figures/<notebook>/<name>.png`` with sidecars ``<name>.json`` (written by
    ``studylib.plotting.save_figure``; missing keys are tolerated, a missing or broken sidecar is
    shown as such). Images and files are linked relatively, the page has no scripts and loads
    nothing from the network. Executed notebooks are ``reports/<profile>/*.ipynb`` with their status
    from ``reports/runs.json`` (or the notebook's own metadata); each is converted to HTML next to
    it when ``convert`` and nbconvert can do so (skipped quietly otherwise).

    Returns:
        The path of the index.

    Raises:
        OSError: the index cannot be written.
    """
    reports = paths.reports_dir()
    reports.mkdir(parents=True, exist_ok=True)
    index = reports / "index.html"
    now = datetime.now(UTC).isoformat(timespec="seconds")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>GNN systems study: figures and runs</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>GNN systems study: figures and runs</h1>",
           f'<p class="muted">generated {html.escape(now)} from {html.escape(str(paths.project_root()))}</p>']

    # executed notebooks
    runs = read_runs()
    profiles = [p for p in params_mod.PROFILES if (reports / p).is_dir()]
    profiles += sorted(p.name for p in reports.iterdir()
                       if p.is_dir() and p.name not in profiles and not p.name.startswith(".")
                       and any(p.glob("*.ipynb")))
    out.append("<h2>Executed notebooks</h2>")
    any_nb = False
    for profile in profiles:
        nbs = sorted((reports / profile).glob("*.ipynb"))
        if not nbs:
            continue
        any_nb = True
        rows = []
        for ipynb in nbs:
            status, rec = _notebook_status(profile, ipynb.stem, ipynb, runs)
            page = _convert_to_html(ipynb) if convert else None
            if page is None and ipynb.with_suffix(".html").is_file():
                page = ipynb.with_suffix(".html")
            links = (f'<a href="{_rel(page, reports)}">html</a> &middot; ' if page else "") + \
                f'<a href="{_rel(ipynb, reports)}">ipynb</a>'
            secs = rec.get("seconds")
            detail = html.escape(str(rec.get("message") or ""))
            rows.append(
                f"<tr><td>{html.escape(ipynb.stem)}</td>"
                f'<td class="{html.escape(status.replace(" ", "-"))}">{html.escape(status)}</td>'
                f"<td>{html.escape(str(rec.get('run_id') or ''))}</td>"
                f"<td>{'' if secs is None else f'{float(secs):.1f}'}</td>"
                f"<td>{html.escape(str(rec.get('finished_utc') or ''))}</td><td>{links}</td><td>{detail}</td></tr>")
        out.append(f"<h3>profile {html.escape(profile)}</h3><table><tr><th>notebook</th><th>status</th>"
                   "<th>run id</th><th>seconds</th><th>finished (UTC)</th><th>open</th><th>note</th></tr>"
                   + "".join(rows) + "</table>")
    if not any_nb:
        out.append('<p class="muted">no executed notebooks yet: <code>python -m studylib run --profile smoke</code></p>')

    # the papers' findings: one scoreboard from figures/<notebook>/findings.json
    from studylib import findings

    out.append(findings.report_section(reports))

    # figures
    out.append("<h2>Figures</h2>")
    fig_root = paths.figures_dir()
    folders = sorted(d for d in fig_root.iterdir() if d.is_dir() and not d.name.startswith(".")) \
        if fig_root.is_dir() else []
    toc, sections = [], []
    for folder in folders:
        stems = sorted(({p.stem for p in folder.glob("*.png")} | {p.stem for p in folder.glob("*.json")})
                       - {findings.FINDINGS_NAME})
        if not stems:
            continue
        figs = []
        for stem in stems:
            png, side = folder / f"{stem}.png", folder / f"{stem}.json"
            figs.append(_figure_html(png if png.is_file() else None, side if side.is_file() else None, reports))
        anchor = html.escape(f"fig-{folder.name}")
        toc.append(f'<li><a href="#{anchor}">{html.escape(folder.name)}</a> ({len(stems)})</li>')
        sections.append(f'<h3 id="{anchor}">{html.escape(folder.name)}</h3>' + "\n".join(figs))
    if sections:
        out.append("<ul>" + "".join(toc) + "</ul>")
        out += sections
    else:
        out.append(f'<p class="muted">no figures yet in {html.escape(str(fig_root))}</p>')
    out.append("</body></html>")
    _atomic_write(index, "\n".join(out) + "\n")
    return index


# --------------------------------------------------------------------------------------------
# list


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe_parameters(notebook: str) -> list[dict]:
    """The declared parameters of ``notebook``: dicts with ``name``, ``type``, ``default``,
    ``description`` (from the pydantic model's fields).

    Raises:
        ValueError: the notebook has no parameter model.
    """
    from pydantic_core import PydanticUndefined

    model = params_mod.model_for(notebook)
    rows = []
    for name, info in model.model_fields.items():
        if info.default is not PydanticUndefined:
            default = repr(info.default)
        elif info.default_factory is not None:
            try:
                default = repr(info.default_factory())
            except TypeError:
                default = "(computed)"
        else:
            default = "(required)"
        rows.append({"name": name, "type": _type_name(info.annotation), "default": default,
                     "description": info.description or ""})
    return rows


def format_listing(names: Iterable[str] | None = None) -> str:
    """Text for ``python -m studylib list``: each notebook, the profiles that have parameters for
    it (and the values each profile's YAML sets), and its declared parameters.

    Raises:
        ValueError: a requested notebook is neither a notebook file nor has a parameter model.
    """
    files = set(known_notebooks())
    everything = sorted(files | set(params_mod.NOTEBOOK_PARAMS))
    if names:
        wanted = [_normalise_name(n) for n in names]
        unknown = [n for n in wanted if n not in everything]
        if unknown:
            raise ValueError(f"unknown notebook(s) {', '.join(map(repr, unknown))}; known: {', '.join(everything)}")
        everything = wanted
    if not everything:
        return f"no notebooks in {paths.notebooks_dir()}"
    blocks = []
    for name in everything:
        head = [name + ("" if name in files else "   [no notebook file yet]")]
        for profile in params_mod.PROFILES:
            try:
                path = params_mod.profile_path(name, profile)
            except ValueError:
                continue
            if not path.is_file():
                head.append(f"  {profile:<6} -")
                continue
            try:
                values = yaml.safe_load(path.read_text()) or {}
                sets = ", ".join(f"{k}={v!r}" for k, v in values.items()) if isinstance(values, dict) else "?"
            except (OSError, yaml.YAMLError) as err:
                sets = f"unreadable: {err.__class__.__name__}"
            head.append(f"  {profile:<6} {display_path(path)}" + (f": {sets}" if sets else ""))
        try:
            rows = describe_parameters(name)
        except ValueError:
            head.append("  (no parameter model in studylib.params.NOTEBOOK_PARAMS)")
            blocks.append("\n".join(head))
            continue
        w = [max(len(r[k]) for r in rows + [{"name": "parameter", "type": "type", "default": "default"}])
             for k in ("name", "type", "default")]
        w = [min(x, 40) for x in w]
        head.append("  " + "  ".join(h.ljust(x) for h, x in zip(("parameter", "type", "default"), w)) + "  description")
        for r in rows:
            head.append("  " + "  ".join(r[k].ljust(x) for k, x in zip(("name", "type", "default"), w))
                        + "  " + r["description"])
        blocks.append("\n".join(head))
    return "\n\n".join(blocks)
