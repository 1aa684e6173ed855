"""One figure style for the suite, and ``save_figure`` with its provenance sidecar.

Figures are drawn only from result tables (see :mod:`studylib.results`), so they can be redrawn
without measuring again. :func:`save_figure` writes ``figures/<notebook>/<name>.png`` and ``.pdf``
atomically, stamps a one-line footer naming the machine and run, and writes
``figures/<notebook>/<name>.json`` with the full provenance.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from studylib import machine, paths, results

#: Colours of the HGNN stages and phases, fixed across all figures.
STAGE_PALETTE = {
    "semantic_graph_build": "#8c564b",
    "feature_projection": "#1f77b4",
    "neighbor_aggregation": "#d62728",
    "semantic_fusion": "#2ca02c",
    "loss": "#7f7f7f",
    "backward": "#9467bd",
    "optimizer_update": "#ff7f0e",
    "sampling": "#e377c2",
    "data_preparation": "#bcbd22",
    "gradient_allreduce": "#17becf",
    "forward": "#1f77b4",
    "other": "#c7c7c7",
}


def set_theme() -> None:
    """Apply the suite's seaborn theme (white grid, colour-blind palette, readable sizes)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind",
                  rc={"figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": 11, "axes.labelsize": 10,
                      "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
                      "figure.constrained_layout.use": True})


def save_figure(fig: plt.Figure, notebook: str, name: str, *, title: str | None = None, caption: str = "",
                parameters: dict | None = None, tables: list[str] | None = None, run_id: str | None = None,
                footer: bool = True) -> dict[str, Path]:
    """Write ``fig`` as PNG and PDF under ``figures/<notebook>/`` with a JSON provenance sidecar.

    Args:
        fig: the matplotlib figure.
        notebook: notebook name (folder).
        name: file stem, e.g. ``"stage_shares"``.
        title: human title (sidecar and HTML index); the figure's own suptitle is left as is.
        caption: what is measured, how, units.
        parameters: notebook parameters (sidecar).
        tables: result tables the figure was drawn from (sidecar).
        run_id: run id (default :func:`studylib.results.current_run_id`).
        footer: stamp a footer line with machine, run id and git SHA onto the figure.

    Returns ``{"png": path, "pdf": path, "json": path}``. Files are replaced atomically.
    """
    info = machine.probe()
    run_id = results.current_run_id(run_id or (parameters or {}).get("run_id"))
    out = paths.figures_dir(notebook)
    out.mkdir(parents=True, exist_ok=True)
    if footer:
        sha = (info.get("git_sha") or "no-git")[:12]
        # below the figure's lower edge: savefig(bbox_inches="tight") grows the canvas to include it
        fig.text(0.005, -0.01, f"{machine.describe(info)} · run {run_id} · git {sha}", fontsize=6,
                 color="0.4", ha="left", va="top")
    files = {"png": out / f"{name}.png", "pdf": out / f"{name}.pdf", "json": out / f"{name}.json"}
    for ext in ("png", "pdf"):
        with results.atomic_path(files[ext]) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight")
    results.write_json(files["json"], {
        "notebook": notebook, "name": name, "title": title or name, "caption": caption, "run_id": run_id,
        "created_utc": results.utc_now(), "git_sha": info.get("git_sha"),
        "profile": os.environ.get("STUDYLIB_PROFILE"),
        "parameters": parameters or {}, "hardware": info, "versions": info.get("versions"),
        "tables": list(tables or []), "files": {k: str(v.relative_to(paths.project_root())) if
                                                 v.is_relative_to(paths.project_root()) else str(v)
                                                 for k, v in files.items() if k != "json"},
    })
    return files
