"""Tidy result tables with provenance: atomic writes and resumable sweeps.

A :class:`ResultTable` is one measurement table of one notebook: one row per repeat (raw sample),
configuration columns + metric columns (units in their names, e.g. ``seconds``, ``bytes``) +
``run_id``. It lives at ``results/<notebook>/<name>.parquet`` with a CSV copy and a JSON sidecar
holding its provenance. Each :meth:`ResultTable.add` rewrites the three copies as one unit
(:func:`studylib.atomic.atomic_paths`: temporary files, ``fsync``, a commit record, renames), so an
interrupted or failed write (a full disk) leaves either all old or all new copies, never half of
one nor copies that disagree, and a rerun with the same parameters measures only the
configurations that are missing. The sidecar and the parquet file carry the same ``generation``
marker (and the sidecar the SHA-256 of the parquet and CSV copies), so a reader can tell copies
of one write apart from a mix. Files get the user's umask (0644 under 022).

A configuration whose rows go to several tables (one cluster run: epochs, batches, ...) is written
through a :class:`ResultGroup`: it counts as measured only once *all* its tables are written, which a
completion marker records after the last one; a run killed between two tables is measured again,
and the rows its first attempt left are replaced, not duplicated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psutil

from studylib import atomic, machine, memory, paths


def new_run_id() -> str:
    """A fresh run id: UTC time plus 4 random hex digits, e.g. ``20261121T081500Z-3f2a``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def current_run_id(run_id: str | None = None) -> str:
    """``run_id`` if given, else ``$STUDYLIB_RUN_ID`` (set by the runner), else a fresh id."""
    return run_id or os.environ.get("STUDYLIB_RUN_ID") or new_run_id()


def utc_now() -> str:
    """The current UTC time in ISO 8601 (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically
    (mode as by ``open()`` under the umask, contents ``fsync``-ed), on an exception it is deleted
    and ``target`` is left as it was. See :func:`studylib.atomic.atomic_path`."""
    with atomic.atomic_path(target) as tmp:
        yield tmp


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON atomically (non-JSON values are stringified)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(_json_text(obj))


def _json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


#: Key of the write marker in a table's parquet schema metadata (the sidecar's ``generation``).
GENERATION_KEY = b"studylib.generation"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _write_parquet(df: pd.DataFrame, path: Path, generation: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), GENERATION_KEY: generation.encode()})
    pq.write_table(table, path)


def _generations(path: Path) -> tuple[str | None, str | None]:
    """(generation in the parquet file, generation in the sidecar); None where absent."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    in_parquet = meta.get(GENERATION_KEY)
    try:
        in_sidecar = json.loads(path.with_suffix(".json").read_text()).get("generation")
    except (OSError, ValueError, AttributeError):
        in_sidecar = None
    return (in_parquet.decode() if in_parquet else None), in_sidecar


def _read_copies(path: Path) -> pd.DataFrame | None:
    """Read a table's parquet copy after finishing an interrupted write of its copies
    (:func:`studylib.atomic.recover`). When the parquet and sidecar markers differ (a write of
    another process between its renames), finish that write and read again; a mismatch that
    stays (copies changed by hand) is warned about and the parquet copy is used."""
    import time
    import warnings

    for _ in range(5):
        atomic.recover(path)
        if not path.is_file():
            return None
        df = pd.read_parquet(path)
        in_parquet, in_sidecar = _generations(path)
        if in_parquet is None or in_sidecar is None or in_parquet == in_sidecar:
            return df
        time.sleep(0.02)
    warnings.warn(f"{path}: parquet copy (write {in_parquet}) and sidecar (write {in_sidecar}) disagree; "
                  f"using the parquet copy", stacklevel=3)
    return df


def fingerprint(parameters: dict, machine: dict | None = None, code: str | None = None) -> str:
    """A short hash of the parameters that define a measurement, the machine it ran on and the
    version of the code that measured (``code``, see :func:`code_version`; left out of the key when
    ``None``); rows with another fingerprint belong to another experiment and are not resumed from."""
    machine = machine or {}
    key = {"parameters": {k: v for k, v in sorted(parameters.items()) if k not in ("run_id",)},
           "machine": {k: machine.get(k) for k in ("hostname", "cpu_model", "logical_cores", "gpus")}}
    if code is not None:
        key["code"] = code
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


class ResultTable:
    """One tidy table of one notebook, persisted after every added batch of rows.

    Args:
        notebook: notebook name, e.g. ``"01-hgnn-training"`` (folder under ``results/``).
        name: table name, e.g. ``"stage_times"`` (file stem).
        config_columns: the columns that identify a configuration (used by :meth:`has` to resume).
        parameters: the notebook parameters (stored in the sidecar and hashed into the fingerprint).
        run_id: this run's id (default :func:`current_run_id`).

    Rows already on disk with the same fingerprint are kept and count as done; rows of another
    fingerprint (other parameters, machine or code version, see :func:`code_version`) are dropped
    when this table is first written.
    """

    def __init__(self, notebook: str, name: str, config_columns: Iterable[str], parameters: dict | None = None,
                 run_id: str | None = None):
        self.notebook, self.name = notebook, name
        self.config_columns = list(config_columns)
        self.parameters = dict(parameters or {})
        self.run_id = current_run_id(run_id or self.parameters.get("run_id"))
        self.machine = machine.probe()
        self.fingerprint = fingerprint(self.parameters, self.machine, code_version(notebook))
        self.path = paths.results_dir(notebook) / f"{name}.parquet"
        atomic.recover(self.path)  # finish an interrupted write first: its temporaries are needed
        remove_stale_temporaries(self.path.parent, [self.path.name, self.path.with_suffix(".csv").name,
                                                    self.path.with_suffix(".json").name])
        self._frame = self._load()

    def _load(self) -> pd.DataFrame:
        df = _read_copies(self.path)
        if df is None:
            return pd.DataFrame()
        if "fingerprint" in df.columns:
            df = df[df["fingerprint"] == self.fingerprint]
        else:
            df = df.iloc[0:0]
        return df.reset_index(drop=True)

    @staticmethod
    def _key(values: dict | pd.Series, columns: list[str]) -> tuple:
        return tuple(str(values[c]) for c in columns)

    def done(self) -> set[tuple]:
        """Configuration keys (tuples of the config columns, as strings) already measured."""
        if self._frame.empty:
            return set()
        return {self._key(r, self.config_columns) for _, r in self._frame[self.config_columns].iterrows()}

    def has(self, config: dict) -> bool:
        """Whether ``config`` (a dict holding every config column) is already in the table."""
        return self._key(config, self.config_columns) in self.done()

    def add(self, rows: list[dict]) -> None:
        """Append rows (each holding every config column) and rewrite the table atomically.

        Raises ``KeyError`` naming a missing config column, and what the write raised (e.g.
        ``OSError`` for a full disk), the table then holding its old rows on disk and here.
        """
        if not rows:
            return
        for r in rows:
            missing = [c for c in self.config_columns if c not in r]
            if missing:
                raise KeyError(f"{self.notebook}/{self.name}: row lacks config column(s) {missing}")
        new = pd.DataFrame(rows)
        new["run_id"] = self.run_id
        new["fingerprint"] = self.fingerprint
        before = self._frame
        self._frame = pd.concat([self._frame, new], ignore_index=True) if not self._frame.empty else new
        try:
            self._write()
        except BaseException:
            self._frame = before  # the files still hold the old rows; so does the table
            raise

    def _write(self) -> None:
        """Write the parquet, CSV and JSON copies as one unit (all or none). The parquet file (what
        a rerun resumes from) is renamed last: a reader that does not finish an interrupted set
        first (:func:`studylib.atomic.recover`) still never sees a parquet row without its copies."""
        csv, sidecar = self.path.with_suffix(".csv"), self.path.with_suffix(".json")
        generation = new_run_id()
        with atomic.atomic_paths([csv, sidecar, self.path]) as tmp:
            _write_parquet(self._frame, tmp[self.path], generation)
            self._frame.to_csv(tmp[csv], index=False)
            tmp[sidecar].write_text(_json_text({
                "notebook": self.notebook, "table": self.name, "config_columns": self.config_columns,
                "run_ids": sorted(self._frame["run_id"].astype(str).unique()), "updated_utc": utc_now(),
                "fingerprint": self.fingerprint, "parameters": self.parameters,
                "hardware": self.machine, "git_sha": self.machine.get("git_sha"),
                "generation": generation, "rows": len(self._frame),
                "copies": {"parquet": {"file": self.path.name, "sha256": _sha256(tmp[self.path])},
                           "csv": {"file": csv.name, "sha256": _sha256(tmp[csv])}},
            }))

    def discard(self, config: dict) -> int:
        """Remove the rows of configuration ``config`` (matched on the config columns, as strings)
        and rewrite the table when any were removed. Returns the number of rows removed."""
        if self._frame.empty:
            return 0
        key = self._key(config, self.config_columns)
        keep = [self._key(r, self.config_columns) != key for _, r in self._frame[self.config_columns].iterrows()]
        removed = len(keep) - sum(keep)
        if removed:
            self._frame = self._frame[keep].reset_index(drop=True)
            self._write()
        return removed

    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame (a copy)."""
        return self._frame.copy()

    def sweep(self, configs: Iterable[dict], measure: Callable[[dict], list[dict]], desc: str | None = None,
              oom_metric_columns: Iterable[str] = ()) -> pd.DataFrame:
        """Run ``measure(config)`` for every config not yet in the table, adding its rows.

        ``measure`` returns a list of row dicts (config columns are filled from ``config`` when
        absent). A configuration that runs out of memory (``MemoryError`` or
        ``torch.cuda.OutOfMemoryError``) is recorded as one row with ``status="oom"``, one refused
        by its memory estimate (:class:`studylib.memory.Refused`) as one row with
        ``status="refused"``, ``memory_estimate_bytes`` and ``memory_available_bytes``; the sweep
        goes on. Other exceptions propagate. Shows a tqdm progress bar. Returns the table.
        """
        import torch
        from tqdm.auto import tqdm

        configs = list(configs)
        todo = [c for c in configs if not self.has(c)]
        skipped = len(configs) - len(todo)
        bar = tqdm(todo, desc=desc or f"{self.notebook}/{self.name}", unit="config")
        if skipped:
            bar.write(f"{self.name}: {skipped} of {len(configs)} configurations already measured; resuming")
        for config in bar:
            bar.set_postfix_str(", ".join(f"{k}={config[k]}" for k in self.config_columns), refresh=False)
            try:
                rows = measure(config)
                rows = [{**config, "status": "ok", **r} for r in rows]
            except memory.Refused as err:  # estimated not to fit: recorded with the numbers, not run
                rows = [memory.refused_row(config, err.decision, oom_metric_columns)]
            except (MemoryError, torch.cuda.OutOfMemoryError) as err:
                rows = [{**config, "status": "oom", "error": str(err)[:200],
                         **{c: float("nan") for c in oom_metric_columns}}]
            self.add(rows)
        return self.frame()


def remove_stale_temporaries(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` made for the files ``names`` in
    ``folder`` (``.<name>.<pid>.*.tmp``) and whose writing process ``<pid>`` no longer runs (it was
    killed mid-write). Returns the removed paths."""
    removed = []
    for name in names:
        for p in Path(folder).glob(f".{name}.*.tmp"):
            pid = p.name[len(name) + 2:].split(".", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid() or psutil.pid_exists(int(pid)):
                continue
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


class ResultGroup:
    """Tables written together, configuration by configuration: a configuration counts as
    measured only when every table of the group holds its rows.

    :meth:`write` first removes any rows of the configuration that an interrupted earlier attempt
    left in the tables, then adds each table's rows in order, and last records the configuration
    in the completion marker ``results/<notebook>/<name>.complete.json`` (atomically; one list of
    configuration keys per fingerprint). :meth:`complete` reads that marker. For a fingerprint the
    marker does not know yet (tables written before markers existed, or a kill after the last
    table but before the marker), a configuration is complete when the *last* table holds rows of
    it: tables are written in order, so its rows imply all the others.

    Args:
        notebook: notebook name (folder under ``results/``).
        name: name of the group (the marker's file stem).
        table_names: the tables, in the order they are written.
        config_columns, parameters, run_id: as for :class:`ResultTable` (shared by all tables).

    Attributes:
        tables: table name -> :class:`ResultTable`.
    """

    def __init__(self, notebook: str, name: str, table_names: Iterable[str], config_columns: Iterable[str],
                 parameters: dict | None = None, run_id: str | None = None):
        names = list(table_names)
        if not names:
            raise ValueError(f"{notebook}/{name}: a result group needs at least one table")
        self.notebook, self.name = notebook, name
        self.config_columns = list(config_columns)
        self.tables = {n: ResultTable(notebook, n, self.config_columns, parameters, run_id) for n in names}
        self.fingerprint = self.tables[names[-1]].fingerprint
        self.marker = paths.results_dir(notebook) / f"{name}.complete.json"
        remove_stale_temporaries(self.marker.parent, [self.marker.name])
        self._complete = self._load_marker()

    def _load_marker(self) -> set[tuple]:
        try:
            known = json.loads(self.marker.read_text()).get("complete", {})
        except (OSError, ValueError, AttributeError):
            known = {}
        if isinstance(known, dict) and self.fingerprint in known:
            return {tuple(str(v) for v in key) for key in known[self.fingerprint]}
        return set(self.tables[list(self.tables)[-1]].done())

    def complete(self, config: dict) -> bool:
        """Whether every table of the group was written for ``config`` (a dict holding the config
        columns)."""
        return ResultTable._key(config, self.config_columns) in self._complete

    def write(self, config: dict, rows: dict[str, list[dict]]) -> None:
        """Write the rows of one configuration to every table, then mark it complete.

        Args:
            config: the configuration (its config columns identify it).
            rows: table name -> rows (each holding the config columns); a table without an entry
                gets no rows.

        Raises:
            KeyError: a table name that is not in the group, or a row lacking a config column.
        """
        unknown = sorted(set(rows) - set(self.tables))
        if unknown:
            raise KeyError(f"{self.notebook}/{self.name}: no table(s) {unknown} in this group")
        for table in self.tables.values():
            table.discard(config)
        for name, table in self.tables.items():
            table.add(rows.get(name) or [])
        self._complete.add(ResultTable._key(config, self.config_columns))
        write_json(self.marker, {"notebook": self.notebook, "group": self.name, "tables": list(self.tables),
                                 "config_columns": self.config_columns,
                                 "complete": {self.fingerprint: sorted(list(k) for k in self._complete)},
                                 "updated_utc": utc_now()})


def read_table(notebook: str, name: str) -> pd.DataFrame | None:
    """Read ``results/<notebook>/<name>.parquet`` (any run), or ``None`` when it does not exist."""
    return _read_copies(paths.results_dir(notebook) / f"{name}.parquet")


# --------------------------------------------------------------------------------------------
# The version of the code that measured
# --------------------------------------------------------------------------------------------

#: Modules of ``studylib/`` that do not take part in measuring (running notebooks, the report,
#: drawing, judging findings): editing them does not make a result table measure again.
NON_MEASURING_MODULES = ("runner.py", "__main__.py", "report.py", "plotting.py", "findings.py")
#: Core packages of ``studylib/`` whose every file counts towards the code version.
MEASURING_PACKAGES = ("data", "models", "distributed")

_STUDY_IMPORTS = (
    re.compile(r"^\s*from\s+studylib\.studies\.(\w+)", re.M),
    re.compile(r"^\s*import\s+studylib\.studies\.(\w+)", re.M),
)
_STUDIES_FROM = re.compile(r"^\s*from\s+studylib\.studies\s+import\s+\(?([^\n#)]+)", re.M)


def study_slug(notebook: str) -> str:
    """A notebook's study package name: the stem without its number, ``-`` as ``_``
    (``05-parallelism-analysis`` -> ``parallelism_analysis``)."""
    return re.sub(r"^\d+-", "", notebook).replace("-", "_")


def _notebook_sources(path: Path) -> str:
    """The notebook's cell types and sources only (outputs, counts, ids and metadata stripped);
    the raw text when it is not a readable notebook."""
    text = path.read_text(errors="replace")
    try:
        cells = json.loads(text)["cells"]
        return json.dumps([[c.get("cell_type"), "".join(c.get("source") or "")] for c in cells])
    except (ValueError, KeyError, TypeError, AttributeError):
        return text


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            and p.suffix not in (".pyc", ".pyo")}


def code_files(notebook: str) -> list[Path]:
    """The files whose content makes up :func:`code_version` of ``notebook``, sorted.

    Resolved by rule from the project root: the study package ``studylib/studies/<slug>/`` when it
    exists (:func:`study_slug`); every study module or package the notebook imports
    (``from studylib.studies import x``, ``from studylib.studies.x import ...``:
    ``studylib/studies/x/`` or ``studylib/studies/x.py``); the core modules ``studylib/*.py``
    except :data:`NON_MEASURING_MODULES`; the packages :data:`MEASURING_PACKAGES`; and the notebook
    ``notebooks/<notebook>.ipynb`` itself. A README, a test or a figure never counts.
    """
    root = paths.project_root()
    lib = root / "studylib"
    studies = lib / "studies"
    files: set[Path] = set()
    nb = paths.notebooks_dir() / f"{notebook}.ipynb"
    names = {study_slug(notebook)}
    if nb.is_file():
        files.add(nb)
        try:
            src = "\n".join("".join(c.get("source") or "") for c in json.loads(nb.read_text())["cells"]
                            if c.get("cell_type") == "code")
        except (ValueError, KeyError, TypeError, AttributeError):
            src = nb.read_text(errors="replace")
        for pattern in _STUDY_IMPORTS:
            names.update(pattern.findall(src))
        for group in _STUDIES_FROM.findall(src):
            names.update(part.split()[0] for part in group.split(",") if part.split())
    for name in sorted(names):
        if (studies / name).is_dir():
            files |= _files_under(studies / name)
        elif (studies / f"{name}.py").is_file():
            files.add(studies / f"{name}.py")
    if (studies / "__init__.py").is_file():
        files.add(studies / "__init__.py")
    files |= {p for p in lib.glob("*.py") if p.name not in NON_MEASURING_MODULES}
    for pkg in MEASURING_PACKAGES:
        if (lib / pkg).is_dir():
            files |= _files_under(lib / pkg)
    return sorted(files)


def code_version(notebook: str) -> str:
    """A short hash (12 hex digits) of the code that measures ``notebook``: every file of
    :func:`code_files` by its path relative to the project root and its content (a notebook by its
    cell sources only, so running it does not change its version). A change in the study's code, a
    measuring core module or the notebook's cells changes it; a README edit does not."""
    root = paths.project_root()
    h = hashlib.sha256()
    for f in code_files(notebook):
        rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else f.as_posix()
        data = _notebook_sources(f).encode() if f.suffix == ".ipynb" else f.read_bytes()
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:12]
