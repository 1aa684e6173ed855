"""The findings of ``03-op-microbenchmarks``: the paper's claims this notebook tests and their verdicts
computed from this run's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib.studies.op_microbenchmarks.measure import (
    GAIN_THRESHOLD,
    _reference_slice,
    is_primary,
    ok_rows,
    ratio_table,
    sparsity_gain,
    summary,
)

#: Native counts as "as fast or faster" when PyG time / native time >= 1 / (1 + this) (finding 2).
RATIO_TOLERANCE = 0.05


#: Sparsities up to this value are "low to moderate" (finding 2); at or above HIGH_SPARSITY "high".
MODERATE_SPARSITY = 0.5


HIGH_SPARSITY = 0.9


def _verdict(share: float, full: float, part: float) -> str:
    return "reproduced" if share >= full else ("partly" if share >= part else "not reproduced")


def evaluate_findings(times: pd.DataFrame | None, limits=None) -> pd.DataFrame:
    """The paper's three findings checked against this run's table ``op_times``.

    1. *Memory inefficiency dominates runtime more than sparsity*: for each primary (op,
       implementation) at its largest size and first reduce factor, the roofline gap at the lowest
       sparsity (``median_s / bound_s``, needs ``limits``) is compared with the largest change
       sparsity causes (``max(t(s) / t(s0), t(s0) / t(s))``); reproduced when the gap is larger for
       at least 2/3 of them, partly for at least 1/3.
    2. *Native is often as fast or faster than PyG, especially at low to moderate sparsity*: share of
       (op, sparsity) cells whose primary PyG / native ratio is >= ``1 / (1 + RATIO_TOLERANCE)``;
       reproduced when that share is >= 1/2 overall and not lower at sparsity <=
       ``MODERATE_SPARSITY`` than at >= ``HIGH_SPARSITY``; partly when one of the two holds.
    3. *Many central operations gain little or nothing from sparsity*: share of operations whose
       best implementation gains less than ``GAIN_THRESHOLD`` from the lowest to the highest
       sparsity; reproduced at >= 1/2, partly at >= 1/4.

    Returns rows ``finding``, ``verdict`` (``reproduced``, ``partly``, ``not reproduced``, ``not
    measured``), ``evidence``; the verdicts come from the numbers only.
    """
    out = []

    def add(f, v, e):
        out.append({"finding": f, "verdict": v, "evidence": e})

    f1 = "Memory inefficiency dominates runtime more than sparsity does"
    f2 = "Native PyTorch operations are often as fast as or faster than PyG's, especially at low to moderate sparsity"
    f3 = "Many central operations get little or nothing from sparsity"
    t = ok_rows(times) if times is not None else pd.DataFrame()
    if t.empty:
        for f in (f1, f2, f3):
            add(f, "not measured", "no successful timings")
        return pd.DataFrame(out)
    if limits is None or not limits.memory_bandwidth:
        add(f1, "not measured", "no machine limits from 00-hardware (run it first): the roofline gap cannot be computed")
    else:
        s = _reference_slice(summary(t, limits))
        s = s[is_primary(s, t)]
        held, ev = [], []
        for (op, impl), g in s.groupby(["op", "impl"], sort=False):
            g = g.sort_values("sparsity")
            if len(g) < 2:
                continue
            t0 = g["median_s"].iloc[0]
            gap = t0 / g["bound_s"].iloc[0]
            change = float(np.max(np.maximum(g["median_s"] / t0, t0 / g["median_s"])))
            held.append(gap > change)
            ev.append((op, impl, gap, change))
        if not held:
            add(f1, "not measured", "fewer than two sparsity levels measured")
        else:
            share = float(np.mean(held))
            gaps = np.array([e[2] for e in ev])
            changes = np.array([e[3] for e in ev])
            worst = sorted(ev, key=lambda e: -e[2])[:3]
            add(f1, _verdict(share, 2 / 3, 1 / 3),
                f"roofline gap exceeds the sparsity effect for {sum(held)} of {len(held)} primary implementations; "
                f"gap (time / roofline bound at sparsity {s['sparsity'].min():g}) median {np.median(gaps):.1f}x "
                f"(range {gaps.min():.1f}-{gaps.max():.1f}x), largest sparsity effect median {np.median(changes):.2f}x "
                f"(range {changes.min():.2f}-{changes.max():.2f}x); furthest from the roofline: "
                + ", ".join(f"{o} [{i}] {g:.0f}x" for o, i, g, _ in worst))
    r = ratio_table(t)
    if r.empty:
        add(f2, "not measured", "no operation with both a PyG and a native implementation measured")
    else:
        r = _reference_slice(r)
        fast = r["ratio"] >= 1 / (1 + RATIO_TOLERANCE)
        share = float(fast.mean())
        low = r["sparsity"] <= MODERATE_SPARSITY
        high = r["sparsity"] >= HIGH_SPARSITY
        s_low = float(fast[low].mean()) if low.any() else float("nan")
        s_high = float(fast[high].mean()) if high.any() else float("nan")
        often = share >= 0.5
        especially = bool(low.any() and high.any() and s_low >= s_high)
        verdict = "reproduced" if often and especially else ("partly" if often or especially else "not reproduced")
        slower = r[~fast].groupby("op")["ratio"].median().sort_values()
        add(f2, verdict,
            f"native as fast or faster (PyG/native >= {1 / (1 + RATIO_TOLERANCE):.2f}) in {int(fast.sum())} of {len(r)} "
            f"(op, sparsity) cells ({share:.0%}); at sparsity <= {MODERATE_SPARSITY:g}: {s_low:.0%}, at >= "
            f"{HIGH_SPARSITY:g}: {s_high:.0%}; PyG/native ratio median {r['ratio'].median():.2f} (range "
            f"{r['ratio'].min():.2f}-{r['ratio'].max():.2f}); PyG faster in: "
            + (", ".join(f"{o} ({v:.2f})" for o, v in slower.items()) or "none"))
    g = sparsity_gain(t)
    if g.empty:
        add(f3, "not measured", "fewer than two sparsity levels measured")
    else:
        best = g.groupby("op")["gain"].max()
        none = best[best < GAIN_THRESHOLD].sort_values()
        share = len(none) / len(best)
        add(f3, _verdict(share, 1 / 2, 1 / 4),
            f"{len(none)} of {len(best)} operations gain less than {GAIN_THRESHOLD:.2f}x from sparsity "
            f"{g['s_low'].min():g} to {g['s_high'].max():g} with any implementation: "
            + (", ".join(f"{o} ({v:.2f}x)" for o, v in none.items()) or "none")
            + "; gaining: " + (", ".join(f"{o} ({v:.1f}x)" for o, v in best[best >= GAIN_THRESHOLD].sort_values(
                ascending=False).items()) or "none"))
    return pd.DataFrame(out)
