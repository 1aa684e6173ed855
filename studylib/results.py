"""Tidy result tables with provenance: atomic writes and resumable sweeps.

A :class:`ResultTable` is one measurement table of one notebook: one row per repeat (raw sample),
configuration columns + metric columns (units in their names, e.g. ``seconds``, ``bytes``) +
``run_id``. It lives at ``results/<notebook>/<name>.parquet`` with a CSV copy and a JSON sidecar
holding its provenance. Each :meth:`ResultTable.add` rewrites the files atomically (temporary file
+ ``os.replace``), so an interrupted sweep leaves either the old or the new table, never half of
one, and a rerun with the same parameters measures only the configurations that are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from studylib import machine, paths


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
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically,
    on an exception it is deleted and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON atomically (non-JSON values are stringified)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def fingerprint(parameters: dict, machine: dict | None = None) -> str:
    """A short hash of the parameters that define a measurement (and the machine it ran on);
    rows with another fingerprint belong to another experiment and are not resumed from."""
    machine = machine or {}
    key = {"parameters": {k: v for k, v in sorted(parameters.items()) if k not in ("run_id",)},
           "machine": {k: machine.get(k) for k in ("hostname", "cpu_model", "logical_cores", "gpus")}}
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
    fingerprint (other parameters or machine) are dropped when this table is first written.
    """

    def __init__(self, notebook: str, name: str, config_columns: Iterable[str], parameters: dict | None = None,
                 run_id: str | None = None):
        self.notebook, self.name = notebook, name
        self.config_columns = list(config_columns)
        self.parameters = dict(parameters or {})
        self.run_id = current_run_id(run_id or self.parameters.get("run_id"))
        self.machine = machine.probe()
        self.fingerprint = fingerprint(self.parameters, self.machine)
        self.path = paths.results_dir(notebook) / f"{name}.parquet"
        self._frame = self._load()

    def _load(self) -> pd.DataFrame:
        if not self.path.is_file():
            return pd.DataFrame()
        df = pd.read_parquet(self.path)
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

        Raises ``KeyError`` naming a missing config column.
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
        self._frame = pd.concat([self._frame, new], ignore_index=True) if not self._frame.empty else new
        self._write()

    def _write(self) -> None:
        with atomic_path(self.path) as tmp:
            self._frame.to_parquet(tmp, index=False)
        with atomic_path(self.path.with_suffix(".csv")) as tmp:
            self._frame.to_csv(tmp, index=False)
        write_json(self.path.with_suffix(".json"), {
            "notebook": self.notebook, "table": self.name, "config_columns": self.config_columns,
            "run_ids": sorted(self._frame["run_id"].astype(str).unique()), "updated_utc": utc_now(),
            "fingerprint": self.fingerprint, "parameters": self.parameters,
            "hardware": self.machine, "git_sha": self.machine.get("git_sha"),
        })

    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame (a copy)."""
        return self._frame.copy()

    def sweep(self, configs: Iterable[dict], measure: Callable[[dict], list[dict]], desc: str | None = None,
              oom_metric_columns: Iterable[str] = ()) -> pd.DataFrame:
        """Run ``measure(config)`` for every config not yet in the table, adding its rows.

        ``measure`` returns a list of row dicts (config columns are filled from ``config`` when
        absent). A configuration that runs out of memory (``MemoryError`` or
        ``torch.cuda.OutOfMemoryError``) is recorded as one row with ``status="oom"`` and the
        sweep goes on; other exceptions propagate. Shows a tqdm progress bar. Returns the table.
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
            except (MemoryError, torch.cuda.OutOfMemoryError) as err:
                rows = [{**config, "status": "oom", "error": str(err)[:200],
                         **{c: float("nan") for c in oom_metric_columns}}]
            self.add(rows)
        return self.frame()


def read_table(notebook: str, name: str) -> pd.DataFrame | None:
    """Read ``results/<notebook>/<name>.parquet`` (any run), or ``None`` when it does not exist."""
    path = paths.results_dir(notebook) / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else None
