"""ogb's node property datasets, opened without prompts or surprise network access.

ogb's loaders call ``builtins.input`` before large downloads and dataset version updates, and its import
starts a background PyPI version check. A batch run must never wait on a prompt, and nothing but the
explicit download step may reach the network: :func:`open_node_dataset` turns both into
:class:`studylib.data.errors.DatasetUnavailableError`.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
from pathlib import Path

from studylib import paths
from studylib.data.errors import DatasetUnavailableError


@contextlib.contextmanager
def no_outdated_check():
    """Import ogb without its background PyPI version check (a network access at import time)."""
    if "ogb" in sys.modules or "outdated" in sys.modules:
        yield
        return
    sys.modules["outdated"] = None  # makes ``from outdated import ...`` raise ImportError
    try:
        yield
    finally:
        if sys.modules.get("outdated", 0) is None:
            del sys.modules["outdated"]


@contextlib.contextmanager
def ogb_guard(name: str, root: Path, download: bool, source_url: str | None = None):
    """Make ogb's prompts fail loudly: ``builtins.input`` and (when ``download`` is false) its download
    decision raise :class:`DatasetUnavailableError`. ``source_url`` is given for a dataset of the
    registry (its errors then name the URL and the mirror variable)."""
    with no_outdated_check():
        import ogb.nodeproppred.dataset as ogb_dataset

    folder = name.replace("-", "_")  # ogb's layout: root/<name with '_' for '-'>
    url = source_url or "ogb's server"
    fetch = (f"set {paths.MIRROR_VARIABLE} to a folder holding {folder}/ or allow the download" if source_url
             else f"fetch it with `python -m studylib data ogb:{name}`")

    def no_input(prompt: str = ""):
        raise DatasetUnavailableError(
            f"ogb asked an interactive question while loading {name!r} from {root}: {prompt.strip()!r}. "
            f"studylib never answers prompts. If the dataset was updated, delete {root / folder} and "
            f"download it again; for a large download, fetch {url} yourself and unpack it as "
            f"{root / folder}, or set {paths.MIRROR_VARIABLE} to a folder holding {folder}/."
        )

    original_decide = ogb_dataset.decide_download

    def decide(url: str) -> bool:
        if not download:
            raise DatasetUnavailableError(
                f"{name!r} is not in {root / folder} and downloading is disabled; source URL: {url}; {fetch}"
            )
        return original_decide(url)  # its prompt for downloads > 1 GB is patched below

    old_input = builtins.input
    builtins.input = no_input
    ogb_dataset.decide_download = decide
    try:
        yield ogb_dataset
    finally:
        builtins.input = old_input
        ogb_dataset.decide_download = original_decide


def open_node_dataset(name: str, root: Path | str | None = None, download: bool = False,
                      source_url: str | None = None):
    """Open ``ogb.nodeproppred.NodePropPredDataset(name, root)`` without ever prompting.

    Args:
        name: an ogb node property prediction dataset (``"ogbn-mag"``).
        root: ogb's root folder (default ``paths.data_dir()``); the dataset lives in
            ``root/<name with '_' for '-'>``.
        download: let ogb download when the files are missing (network).
        source_url: the registry's URL of a registered dataset (named in the errors).

    Raises:
        DatasetUnavailableError: ogb would prompt (large download, dataset version update) or
            would download while ``download`` is false.
    """
    root = Path(root) if root is not None else paths.data_dir()
    root.mkdir(parents=True, exist_ok=True)
    with ogb_guard(name, root, download, source_url) as ogb_dataset:
        return ogb_dataset.NodePropPredDataset(name=name, root=str(root))
