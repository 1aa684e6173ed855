"""Optional heavy dependencies, asked for by the step that needs them.

studylib imports and runs its torch- and PyG-only paths without DGL (a GPU machine with a current
PyTorch, for which the index has no DGL build). A step that needs DGL (a DGL model, DGL's sampler,
METIS partitioning, DistDGL) calls :func:`require_dgl` first, so that it stops with a sentence that
names the step instead of a bare ``ModuleNotFoundError`` deep inside.
"""

from __future__ import annotations

import importlib
import importlib.util

#: How to get DGL: the pinned environment (DGL's index wheel is built for torch <= 2.2.1).
DGL_INSTALL = ("the pinned environment has it (make setup: dgl 2.1.0 with torch 2.2.1); DGL's own wheel "
               "index has CUDA builds")


class DglRequiredError(ModuleNotFoundError):
    """A step that needs DGL was asked for where DGL is not installed."""


def dgl_available() -> bool:
    """Whether ``import dgl`` can find DGL (without importing it)."""
    return importlib.util.find_spec("dgl") is not None


def require_dgl(step: str):
    """Import and return the ``dgl`` module for ``step`` (e.g. ``"METIS partitioning"``).

    Raises :class:`DglRequiredError` (a ``ModuleNotFoundError``) naming the step and how to get
    DGL when it is not installed.
    """
    if not dgl_available():
        raise DglRequiredError(f"{step} needs DGL, which is not installed here ({DGL_INSTALL}); the torch- and "
                               "PyG-only paths run without it", name="dgl")
    return importlib.import_module("dgl")
