"""Shared test set-up: every test writes into a temporary project tree, never into the real
data/, results/, figures/ or reports/ folders, and never into the dataset mirror."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def mirror_path() -> Path | None:
    """The dataset mirror for tests: ``$STUDYLIB_DATA_MIRROR`` or ``../shared/data`` beside the
    project, when it exists."""
    env = os.environ.get("STUDYLIB_DATA_MIRROR")
    if env:
        return Path(env) if Path(env).is_dir() else None
    default = PROJECT_ROOT.parent / "shared" / "data"
    return default if default.is_dir() else None


@pytest.fixture
def output_dirs(tmp_path, monkeypatch):
    """Point results/, figures/ and reports/ at a temporary folder."""
    for name in ("RESULTS", "FIGURES", "REPORTS"):
        d = tmp_path / name.lower()
        d.mkdir()
        monkeypatch.setenv(f"STUDYLIB_{name}_DIR", str(d))
    return tmp_path
