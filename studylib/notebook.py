"""The set-up every notebook runs after its parameters cell, in one call.

    ctx = notebook.setup("01-hgnn-training", globals())
    P, DEVICE, THREADS = ctx.params, ctx.device, ctx.threads
    ...
    ctx.save(fig, "stage_shares", "Stage shares of a training step", "caption ...", ["stage_times"])

:func:`setup` validates the parameters found in the notebook's namespace (a clear message naming
the notebook and the parameter on a bad value), fixes the run id, picks the device, sets the torch
thread count and the seed, and applies the figure theme. :meth:`Context.save` writes a figure
through :func:`studylib.plotting.save_figure` with the parameters and the tables it was drawn from
as provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from studylib import machine, params, paths, plotting, results


@dataclass
class Context:
    """What a notebook's cells share after :func:`setup`.

    Attributes:
        notebook: the notebook's name (``"01-hgnn-training"``).
        params: its validated parameters (the study's parameter model; ``run_id`` filled in).
        device: the torch device of the run (``device: auto`` resolved).
        threads: torch's CPU thread count as set.
        default_tables: tables named by :meth:`save` when a call names none.
    """

    notebook: str
    params: params.NotebookParams
    device: torch.device
    threads: int
    default_tables: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        """The run id every table and figure of this run carries."""
        return self.params.run_id

    @property
    def parameters(self) -> dict:
        """The parameters as a plain dict (what the provenance sidecars record)."""
        return self.params.model_dump()

    @property
    def results_dir(self) -> Path:
        """``results/<notebook>/``."""
        return paths.results_dir(self.notebook)

    @property
    def figures_dir(self) -> Path:
        """``figures/<notebook>/``."""
        return paths.figures_dir(self.notebook)

    def table_path(self, table: str) -> str:
        """A table's path relative to the project: a bare name is this notebook's
        ``results/<notebook>/<name>.parquet``; a path (holding ``/``) is kept as given."""
        return table if "/" in table else f"results/{self.notebook}/{table}.parquet"

    def save(self, fig, name: str, title: str, caption: str, tables: list[str] | None = None) -> dict[str, Path]:
        """Write ``fig`` as ``figures/<notebook>/<name>.png`` (+ PDF and JSON sidecar) with this run's
        parameters and the tables it was drawn from (names or paths, see :meth:`table_path`;
        default :attr:`default_tables`). Returns the written paths."""
        names = self.default_tables if tables is None else tables
        return plotting.save_figure(fig, self.notebook, name, title=title, caption=caption,
                                    parameters=self.parameters, tables=[self.table_path(t) for t in names])


def setup(notebook: str, namespace: dict) -> Context:
    """Validate the parameters of ``notebook`` found in ``namespace`` (the notebook's ``globals()``
    after its parameters cell), fill in the run id (``$STUDYLIB_RUN_ID`` from the runner, else a
    fresh one), resolve the device, set torch's thread count and seed, apply the figure theme.

    Raises ``ValueError`` naming the notebook and each bad parameter
    (``01-hgnn-training: batch_size must be > 0 (got -3)``).
    """
    p = params.from_namespace(notebook, namespace)
    p.run_id = results.current_run_id(p.run_id)
    device = machine.resolve_device(p.device)
    threads = machine.set_threads(p.num_threads)
    torch.manual_seed(p.seed)
    plotting.set_theme()
    return Context(notebook=notebook, params=p, device=device, threads=threads)
