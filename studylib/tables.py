"""Small helpers over the tidy result tables that every study reads."""

from __future__ import annotations

import pandas as pd


def ok_rows(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows of a measurement table whose ``status`` is ``"ok"``.

    ``None`` stays ``None``, and a table without a ``status`` column is returned whole (tables of
    computed values, not measurements). The index is kept; nothing is copied beyond what pandas'
    boolean selection copies.
    """
    if df is None or "status" not in df:
        return df
    return df[df["status"] == "ok"]
