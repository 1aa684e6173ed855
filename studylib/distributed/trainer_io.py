"""The trainer side of the launcher's output contract (see :func:`studylib.distributed.run_cluster`)."""

from __future__ import annotations

import os

import pandas as pd


def write_rank_rows(rows: list[dict], rank: int, columns: dict) -> str | None:
    """Write a trainer's result rows to ``$STUDYLIB_TRAINER_OUT/rank<rank>.parquet`` atomically
    (temporary file + ``os.replace``), with every ``columns`` item (name -> value) added to each
    row; ``ClusterResult.rows()`` reads these files back. Returns the path, or ``None`` when the
    variable is unset (a trainer started by hand writes nothing)."""

    out = os.environ.get("STUDYLIB_TRAINER_OUT")
    if not out:
        return None
    df = pd.DataFrame(rows)
    for name, value in columns.items():
        df[name] = value
    path = os.path.join(out, f"rank{rank}.parquet")
    df.to_parquet(path + ".tmp", index=False)
    os.replace(path + ".tmp", path)
    return path
