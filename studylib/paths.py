"""Where things live: the project root and its data, figures, results and reports folders.

Every folder can be moved with an environment variable, so that a user can keep the data cache
on a scratch file system or run the suite from an installed copy of the package:

==========================  ==================================================================
``STUDYLIB_ROOT``            project root (default: the folder holding ``pyproject.toml``)
``STUDYLIB_DATA_DIR``        dataset cache (default ``<root>/data``)
``STUDYLIB_DATA_MIRROR``     read-only mirror of raw dataset files (no default)
``STUDYLIB_FIGURES_DIR``     figures (default ``<root>/figures``)
``STUDYLIB_RESULTS_DIR``     result tables (default ``<root>/results``)
``STUDYLIB_REPORTS_DIR``     executed notebooks and the HTML index (default ``<root>/reports``)
==========================  ==================================================================
"""

from __future__ import annotations

import os
from pathlib import Path

MIRROR_VARIABLE = "STUDYLIB_DATA_MIRROR"


def project_root() -> Path:
    """Return the project root: ``$STUDYLIB_ROOT`` or the nearest parent with ``pyproject.toml``.

    Falls back to the current working directory when the package is installed outside a checkout.
    """
    env = os.environ.get("STUDYLIB_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent
    for parent in (here, *here.parents):
        if (parent / "pyproject.toml").is_file() and (parent / "studylib").is_dir():
            return parent
    return Path.cwd().resolve()


def _dir(variable: str, default: str) -> Path:
    env = os.environ.get(variable)
    return Path(env).resolve() if env else project_root() / default


def data_dir() -> Path:
    """The dataset cache (``$STUDYLIB_DATA_DIR`` or ``<root>/data``); created on demand by loaders."""
    return _dir("STUDYLIB_DATA_DIR", "data")


def mirror_dir() -> Path | None:
    """The read-only dataset mirror named by ``$STUDYLIB_DATA_MIRROR``, or ``None`` when unset."""
    env = os.environ.get(MIRROR_VARIABLE)
    return Path(env).resolve() if env else None


def figures_dir(notebook: str | None = None) -> Path:
    """``figures/`` or, given a notebook name, ``figures/<notebook>/``."""
    base = _dir("STUDYLIB_FIGURES_DIR", "figures")
    return base / notebook if notebook else base


def results_dir(notebook: str | None = None) -> Path:
    """``results/`` or, given a notebook name, ``results/<notebook>/``."""
    base = _dir("STUDYLIB_RESULTS_DIR", "results")
    return base / notebook if notebook else base


def reports_dir() -> Path:
    """``reports/``: executed notebooks and the HTML index."""
    return _dir("STUDYLIB_REPORTS_DIR", "reports")


def notebooks_dir() -> Path:
    """``notebooks/``: the study notebooks and ``params/<profile>/<notebook>.yaml``."""
    return project_root() / "notebooks"
