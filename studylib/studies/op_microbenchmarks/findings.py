"""The findings of ``03-op-microbenchmarks``, declared as data (:mod:`studylib.findings`): the
paper's three claims (Hosseini, Simini, Vishwanath, arXiv 2207.09955, abstract and Sec. V), the
quantity each is decided on, and the criteria, fixed before measuring.

Tables (:func:`tables`): ``op_times`` (the raw timing blocks of
:func:`studylib.studies.op_microbenchmarks.measure.run_measurement`) and ``roofline`` (its
:func:`~studylib.studies.op_microbenchmarks.measure.summary` against the ``00-hardware`` limits;
missing when ``00-hardware`` has not run).

The PyG side of the PyG-vs-native claim is the kernel of PyG's extension libraries
(``torch_scatter``, ``torch_sparse``, ``pyg-lib``; role ``pyg`` of the registry); a cell where that
side ran native PyTorch only ("same kernel", e.g. ``torch_scatter``'s sum, which is
``Tensor.scatter_add_``) is left out and counted in the evidence; without the extensions the claim is
*not measured*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib import findings as fd
from studylib.studies.op_microbenchmarks import ops
from studylib.studies.op_microbenchmarks.measure import (
    CONFIG,
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

#: Finding 2: native "often" as fast or faster = in at least this share of the compared cells.
OFTEN_SHARE = 0.5

#: Finding 1: share of primary implementations whose roofline gap exceeds the sparsity effect.
F1_REPRODUCED, F1_PARTLY = 2 / 3, 1 / 3

#: Finding 3: share of operations gaining less than GAIN_THRESHOLD from sparsity.
F3_REPRODUCED, F3_PARTLY = 1 / 2, 1 / 4


def tables(times: pd.DataFrame | None, limits=None) -> dict[str, pd.DataFrame | None]:
    """The findings' tables from table ``op_times`` and the ``00-hardware`` limits
    (:class:`studylib.limits.MachineLimits` or None): ``op_times``, and ``roofline`` (None without
    limits, so finding 1 is *not measured*)."""
    roof = None
    if times is not None and limits is not None and getattr(limits, "memory_bandwidth", None):
        ok = ok_rows(times)
        roof = summary(ok, limits) if not ok.empty else None
    return {"op_times": times, "roofline": roof}


def _noisy_cells(times: pd.DataFrame, keep: pd.DataFrame) -> int:
    """Timing summaries (one per configuration and implementation of ``keep``'s rows) flagged
    noisy by :func:`studylib.timing.summarize`."""
    t = ok_rows(times)
    pairs = keep[[*CONFIG, "impl"]].drop_duplicates()
    t = t.merge(pairs, on=[*CONFIG, "impl"], how="inner")
    return fd.count_noisy(fd.summarize_by(t, [*CONFIG, "impl"])) if not t.empty else 0


# --------------------------------------------------------------------------------------------
# 1. Memory inefficiency dominates runtime more than sparsity
# --------------------------------------------------------------------------------------------

def _memory_dominates(t: fd.Tables) -> fd.Measured:
    times = t.ok("op_times")
    s = t["roofline"]
    if "bound_s" not in s:
        raise fd.NotMeasured("no roofline bound (run 00-hardware first: its limits give each operation's bound)")
    s = _reference_slice(s)
    s = s[is_primary(s, times)]
    flags, ev = [], []
    for (op, impl), g in s.groupby(["op", "impl"], sort=False):
        g = g.sort_values("sparsity")
        if len(g) < 2 or not np.isfinite(g["bound_s"].iloc[0]) or g["bound_s"].iloc[0] <= 0:
            continue
        t0 = g["median_s"].iloc[0]
        gap = float(t0 / g["bound_s"].iloc[0])
        change = float(np.max(np.maximum(g["median_s"] / t0, t0 / g["median_s"])))
        flags.append(gap > change)
        ev.append((op, impl, gap, change))
    if not flags:
        raise fd.NotMeasured("fewer than two sparsity levels measured for every primary implementation")
    gaps = np.array([e[2] for e in ev])
    changes = np.array([e[3] for e in ev])
    worst = sorted(ev, key=lambda e: -e[2])[:3]
    evidence = (f"roofline gap exceeds the sparsity effect for {sum(flags)} of {len(flags)} primary implementations; "
                f"gap (time / roofline bound at sparsity {s['sparsity'].min():g}) median {np.median(gaps):.1f}x "
                f"(range {gaps.min():.1f}-{gaps.max():.1f}x), largest sparsity effect median {np.median(changes):.2f}x "
                f"(range {changes.min():.2f}-{changes.max():.2f}x); furthest from the roofline: "
                + ", ".join(f"{o} [{i}] {g:.0f}x" for o, i, g, _ in worst))
    return fd.Measured(flags, evidence, ours=f"{sum(flags)} of {len(flags)}", noisy=_noisy_cells(times, s))


MEMORY_DOMINATES = fd.Finding(
    id="memory-dominates",
    claim="Memory inefficiency dominates runtime more than data sparsity does",
    where="Abstract; Sec. V", paper="finding (1), A100",
    tables=("op_times", "roofline"), measure=_memory_dominates,
    criterion=fd.fraction_of("primary implementations whose roofline gap (time / roofline bound at the lowest "
                             "sparsity) exceeds the largest change sparsity causes", F1_REPRODUCED, F1_PARTLY))


# --------------------------------------------------------------------------------------------
# 2. Native PyTorch as fast or faster than PyG's kernels, especially at low to moderate sparsity
# --------------------------------------------------------------------------------------------

def _extensions_text() -> str:
    ext = ops.extensions()
    return ", ".join(f"{k} {'not installed' if not ext.get(k) else ext[k]}" for k in ("torch_scatter", "torch_sparse"))


def _native_as_fast(t: fd.Tables) -> fd.Measured:
    times = t.ok("op_times")
    r = ratio_table(times, ops.PYG)
    if r.empty:
        raise fd.NotMeasured("no configuration pairs a kernel of PyG's extension libraries with native PyTorch "
                             f"(PyG kernels measured: none; {_extensions_text()})")
    r = _reference_slice(r)
    same = r[r["same_kernel"]]
    r = r[~r["same_kernel"]]
    same_ops = sorted(set(same["op"]))
    same_text = (f"{len(same)} cell(s) left out as same kernel (the PyG side ran native PyTorch only): "
                 + (", ".join(same_ops) or "none"))
    if r.empty:
        raise fd.NotMeasured("every PyG-vs-native cell compares a kernel with itself; " + same_text)
    fast = r["ratio"] >= 1 / (1 + RATIO_TOLERANCE)
    low = r["sparsity"] <= MODERATE_SPARSITY
    high = r["sparsity"] >= HIGH_SPARSITY
    share = float(fast.mean())
    s_low = float(fast[low].mean()) if low.any() else float("nan")
    s_high = float(fast[high].mean()) if high.any() else float("nan")
    slower = r[~fast].groupby("op")["ratio"].median().sort_values()
    libs = ", ".join(f"{k} {v}" for k, v in r.groupby("pyg_library")["op"].nunique().items())
    evidence = (f"native as fast or faster (PyG/native >= {1 / (1 + RATIO_TOLERANCE):.2f}) in {int(fast.sum())} of "
                f"{len(r)} (op, sparsity) cells with a PyG kernel ({share:.0%}); at sparsity <= {MODERATE_SPARSITY:g}: "
                f"{s_low:.0%}, at >= {HIGH_SPARSITY:g}: {s_high:.0%}; PyG/native ratio median {r['ratio'].median():.2f} "
                f"(range {r['ratio'].min():.2f}-{r['ratio'].max():.2f}); PyG kernel libraries (operations): {libs}; "
                "PyG faster in: " + (", ".join(f"{o} ({v:.2f})" for o, v in slower.items()) or "none")
                + "; " + same_text)
    value = {"share": share, "low": s_low, "high": s_high}
    return fd.Measured(value, evidence, ours=f"{share:.0%} of {len(r)} cells (low {s_low:.0%}, high {s_high:.0%})",
                       noisy=_noisy_cells(times, pd.concat([r.assign(impl=r["pyg_impl"]),
                                                            r.assign(impl=r["native_impl"])])))


def _often_especially(value: dict, th: dict) -> str:
    """reproduced: native as fast in >= ``often`` of the cells and, at low sparsity, in no smaller a
    share than at high sparsity; partly: one of the two; else not reproduced."""
    often = value["share"] >= th["often"]
    especially = bool(np.isfinite(value["low"]) and np.isfinite(value["high"]) and value["low"] >= value["high"])
    if often and especially:
        return fd.REPRODUCED
    return fd.PARTLY if often or especially else fd.NOT_REPRODUCED


NATIVE_AS_FAST = fd.Finding(
    id="native-as-fast",
    claim="Native PyTorch operations are often as fast as or faster than PyG's, especially at low to moderate sparsity",
    where="Abstract; Sec. V", paper="finding (2), A100",
    tables=("op_times",), measure=_native_as_fast,
    criterion=fd.custom(
        "share of (operation, sparsity) cells, PyG extension kernel vs native, where native is as fast or faster "
        f"(PyG/native >= 1/(1+{RATIO_TOLERANCE:g})); same-kernel cells left out",
        f"reproduced if the share >= {OFTEN_SHARE:g} and the share at sparsity <= {MODERATE_SPARSITY:g} is at least "
        f"the share at >= {HIGH_SPARSITY:g}; partly if one of the two holds; else not reproduced",
        _often_especially, fd.MEASURED_VERDICTS, often=OFTEN_SHARE, tolerance=RATIO_TOLERANCE,
        moderate=MODERATE_SPARSITY, high=HIGH_SPARSITY))


# --------------------------------------------------------------------------------------------
# 3. Many central operations get little or nothing from sparsity
# --------------------------------------------------------------------------------------------

def _little_gain(t: fd.Tables) -> fd.Measured:
    times = t.ok("op_times")
    g = sparsity_gain(times)
    if g.empty:
        raise fd.NotMeasured("fewer than two sparsity levels measured")
    best = g.groupby("op")["gain"].max()
    none = best[best < GAIN_THRESHOLD].sort_values()
    flags = [bool(v < GAIN_THRESHOLD) for v in best]
    evidence = (f"{len(none)} of {len(best)} operations gain less than {GAIN_THRESHOLD:.2f}x from sparsity "
                f"{g['s_low'].min():g} to {g['s_high'].max():g} with any implementation: "
                + (", ".join(f"{o} ({v:.2f}x)" for o, v in none.items()) or "none")
                + "; gaining: " + (", ".join(f"{o} ({v:.1f}x)" for o, v in best[best >= GAIN_THRESHOLD].sort_values(
                    ascending=False).items()) or "none"))
    keep = _reference_slice(times)
    return fd.Measured(flags, evidence, ours=f"{len(none)} of {len(best)}", noisy=_noisy_cells(times, keep))


LITTLE_SPARSITY_GAIN = fd.Finding(
    id="little-sparsity-gain",
    claim="Many operations central to GNNs get little or nothing from sparsity",
    where="Abstract; Sec. V", paper="finding (3), A100",
    tables=("op_times",), measure=_little_gain,
    criterion=fd.fraction_of(f"operations whose best implementation gains < {GAIN_THRESHOLD:g}x from the lowest to "
                             "the highest sparsity (largest size, first reduce factor)", F3_REPRODUCED, F3_PARTLY))


#: The study's findings, in the order the notebook shows them.
FINDINGS = (MEMORY_DOMINATES, NATIVE_AS_FAST, LITTLE_SPARSITY_GAIN)
