"""Measurements of notebook ``03-op-microbenchmarks``: PyG operations vs their native PyTorch
counterparts across input sparsity, index reduce factor and size, placed against the machine's
measured limits.

Reproduces and extends Hosseini, Simini, Vishwanath, *Operation-Level Performance Benchmarking of
Graph Neural Networks for Scientific Applications* (arXiv 2207.09955). Their findings (abstract
and Sec. V), on NVIDIA A100 GPUs:

1. memory inefficiency dominates runtime more than data sparsity does;
2. native PyTorch operations are often as fast as or faster than their PyG equivalents,
   especially at low to moderate sparsity;
3. many operations central to GNNs get little or no benefit from sparsity.

The operations and their inputs are in :mod:`studylib.studies.op_microbenchmarks.ops`. Every timing goes through
:func:`studylib.timing.benchmark` (``torch.utils.benchmark`` ``blocked_autorange``, explicit
thread count, inputs built beforehand, device synchronised, raw blocks kept). The implementations of
one configuration alternate over ``rounds`` rounds so that drifting machine load hits them alike;
ratios are taken within a round. Times are seconds per call, memory is bytes.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pandas as pd
import torch

from studylib import timing
from studylib.studies.op_microbenchmarks import ops

NOTEBOOK = "03-op-microbenchmarks"

#: Columns that identify a configuration of table ``op_times``.
CONFIG = ["op", "dtype", "size", "sparsity", "reduce_factor", "index_distribution"]
#: A sweep item: the configurations of one operation, dtype, size and index distribution.
GROUP = ["op", "dtype", "size", "index_distribution"]
#: A speed-up from sparsity below this factor counts as "little or no gain" (finding 3).
GAIN_THRESHOLD = 1.10
#: Native counts as "as fast or faster" when PyG time / native time >= 1 / (1 + this) (finding 2).
RATIO_TOLERANCE = 0.05
#: Sparsities up to this value are "low to moderate" (finding 2); at or above HIGH_SPARSITY "high".
MODERATE_SPARSITY = 0.5
HIGH_SPARSITY = 0.9

#: Colours of the two roles in every figure.
ROLE_COLORS = {ops.PYG: "#ff7f0e", ops.NATIVE: "#1f77b4"}

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------

def selected_operations(params) -> list[str]:
    """The operations of this run (``params.operations`` or every registered one)."""
    return list(params.operations) if params.operations else ops.operation_names()


def selected_impls(op: ops.Operation, params) -> list[ops.Impl]:
    """The implementations measured for ``op``: every available one, or with
    ``implementations="primary"`` the primary PyG and primary native one plus those of the optional
    extensions (``torch_scatter``, ``torch_sparse``) when they are installed."""
    impls = op.implementations()
    if params.implementations == "primary":
        keep = {i.name for i in (op.primary(ops.PYG), op.primary(ops.NATIVE)) if i is not None}
        impls = [i for i in impls if i.name in keep or i.requires is not None]
    return impls


def sizes_for(op: ops.Operation, params, device: torch.device, dtype: torch.dtype) -> list[int]:
    """Nominal sizes of ``op``: ``params.sizes`` plus, per ``params.memory_fractions``, the size
    whose estimated footprint fills that fraction of the free device memory."""
    out = list(params.sizes)
    for frac in params.memory_fractions:
        s = ops.size_for_memory(op, frac, device=device, dtype=dtype, feature_dim=params.feature_dim)
        if s not in out:
            out.append(s)
    return sorted(out)


def configs(params, device: torch.device) -> tuple[list[dict], list[str]]:
    """The configurations to measure and notes on what is skipped.

    ``grid="slices"``: every size x sparsity with the first reduce factor, plus every reduce factor at
    the largest size with the lowest and the highest sparsity; ``grid="full"``: the whole product. Operations without an index use reduce factor
    1 only. fp16/bf16 run on GPUs only (CPU kernels for them are not what the paper measured), and only
    for operations that support them. Returns ``(configs, notes)``.
    """
    notes, out = [], []
    low = [d for d in params.dtypes if d != "float32"]
    if device.type != "cuda" and low:
        notes.append(f"{', '.join(low)} skipped: half precision is measured on GPUs only")
    for name in selected_operations(params):
        op = ops.get(name)
        for dname in params.dtypes:
            if dname != "float32" and device.type != "cuda":
                continue
            dtype = _DTYPES[dname]
            if dtype not in op.dtypes:
                notes.append(f"{name}: {dname} not supported by its sparse kernels, skipped")
                continue
            sizes = sizes_for(op, params, device, dtype)
            rfs = list(params.reduce_factors) if op.uses_reduce_factor else [1]
            seen = set()
            ends = sorted({min(params.sparsities), max(params.sparsities)})
            combos = [(z, s, r) for z in sizes for s in params.sparsities for r in rfs] if params.grid == "full" else (
                [(z, s, rfs[0]) for z in sizes for s in params.sparsities]
                + [(max(sizes), s, r) for s in ends for r in rfs[1:]])
            for z, s, r in combos:
                if (z, s, r) in seen:
                    continue
                seen.add((z, s, r))
                out.append({"op": name, "dtype": dname, "size": int(z), "sparsity": float(s), "reduce_factor": int(r),
                            "index_distribution": params.index_distribution})
    return out, notes


# --------------------------------------------------------------------------------------------
# Measuring one configuration
# --------------------------------------------------------------------------------------------

_OOM_TEXT = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate", "bad_alloc")
_UNSUPPORTED_TEXT = ("not implemented", "not supported", "unsupported", "does not support")


def _classify(err: BaseException) -> str | None:
    """``"oom"`` / ``"unsupported"`` for errors a sweep records and moves past, else None."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return "oom"
    if isinstance(err, NotImplementedError | ops.UnsupportedError):
        return "unsupported"
    if isinstance(err, RuntimeError):
        text = str(err).lower()
        if any(t in text for t in _OOM_TEXT):
            return "oom"
        if any(t in text for t in _UNSUPPORTED_TEXT):
            return "unsupported"
    return None


def _release(device: torch.device, collect: bool = False) -> None:
    """Return cached device memory (CUDA); ``collect`` also runs the cyclic garbage collector (slow with
    many live objects, so only after an out-of-memory error)."""
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_config(config: dict, params, device: torch.device, num_threads: int,
                   backend_cache: dict | None = None) -> list[dict]:
    """Build the inputs of one configuration and time every selected implementation.

    Implementations alternate over ``params.rounds`` rounds (order reversed every other round); each
    round is one :func:`studylib.timing.benchmark` call (``blocked_autorange`` of
    ``params.min_run_time`` s). The first round also checks that the call draws no random numbers
    and measures the peak memory of one call. Returns one row per timed block: ``impl``, ``role``,
    ``backend`` (declared), ``kernels`` and ``torch_scatter`` / ``torch_sparse`` / ``pyg_lib`` (what
    ran, from the profiler), ``round``, ``block``, ``seconds`` (per call), ``number_per_run``,
    ``peak_memory_bytes``, plus the inputs' ``numel``, ``effective_size``, ``density``, ``bytes``,
    ``flops`` and ``nnz`` (sparse operations). An implementation that runs out of memory or does not
    support the configuration gets one row with ``status`` ``"oom"`` / ``"unsupported"`` and the
    error; the others go on. Raises ``MemoryError`` when the inputs themselves do not fit.
    """
    op = ops.get(config["op"])
    dtype = _DTYPES[config["dtype"]]
    try:
        inp = ops.build_inputs(op, config["size"], config["sparsity"], reduce_factor=config["reduce_factor"],
                               dtype=dtype, device=device, index_distribution=config["index_distribution"],
                               feature_dim=params.feature_dim, heads=params.gat_heads, seed=params.seed,
                               max_memory_fraction=params.max_memory_fraction)
    except RuntimeError as err:
        if _classify(err) == "oom":
            _release(device, collect=True)
            raise MemoryError(f"building inputs of {op.name} at size {config['size']}: {err}") from err
        raise
    base = {"numel": inp.numel, "effective_size": ops.effective_size(op, config["size"]), "density": inp.density,
            "bytes": float(inp.bytes), "flops": float(inp.flops), "nnz": inp.meta.get("nnz", np.nan),
            "device": device.type, "num_threads": num_threads}
    cache = backend_cache if backend_cache is not None else {}
    impls = selected_impls(op, params)
    states, info, rows = {}, {}, []

    def fail(im, err, status):
        rows.append({**base, "impl": im.name, "role": im.role, "backend": im.backend, "status": status,
                     "error": f"{type(err).__name__}: {str(err)[:300]}", "seconds": np.nan})
        states.pop(im.name, None)
        _release(device, collect=True)

    for im in impls:
        try:
            states[im.name] = im.state(inp)
            key = (op.name, im.name, device.type, config["dtype"])
            if key not in cache:
                cache[key] = ops.detect_backend(im.run, states[im.name])
            info[im.name] = {"peak_memory_bytes": np.nan, **cache[key]}
        except Exception as err:  # noqa: BLE001 -- classified, else re-raised
            status = _classify(err)
            if status is None:
                raise
            fail(im, err, status)
    for r in range(params.rounds):
        order = [i for i in impls if i.name in states]
        if r % 2:
            order.reverse()
        for im in order:
            if im.name not in states:
                continue
            try:
                res = timing.benchmark(im.run, args=(states[im.name],), num_threads=num_threads,
                                       min_run_time=params.min_run_time, device=device, warmup=1 if r == 0 else 0,
                                       check_inputs=(r == 0), measure_memory=(r == 0 and params.peak_memory))
            except Exception as err:  # noqa: BLE001
                status = _classify(err)
                if status is None:
                    raise
                fail(im, err, status)
                continue
            if r == 0 and res["peak_memory_bytes"] is not None:
                info[im.name]["peak_memory_bytes"] = res["peak_memory_bytes"]
            for b, t in enumerate(res["times"]):
                rows.append({**base, "impl": im.name, "role": im.role, "backend": im.backend, **info[im.name],
                             "round": r, "block": b, "seconds": t, "number_per_run": res["number_per_run"],
                             "status": "ok"})
    states.clear()
    del inp
    _release(device)
    return rows


def measure_group(configs_of_group: list[dict], params, device: torch.device, num_threads: int,
                  backend_cache: dict | None = None) -> list[dict]:
    """:func:`measure_config` for each configuration of one group (same operation, dtype, size and
    index distribution). A configuration whose inputs do not fit in memory becomes one row with
    ``status="oom"`` and its error, and the group goes on."""
    rows = []
    for c in configs_of_group:
        try:
            rows += [{**c, **r} for r in measure_config(c, params, device, num_threads, backend_cache)]
        except MemoryError as err:
            rows.append({**c, "status": "oom", "error": f"{type(err).__name__}: {str(err)[:300]}", "seconds": np.nan})
            _release(device, collect=True)
    return rows


def run_measurement(name: str, params, device: torch.device, num_threads: int | None = None) -> pd.DataFrame:
    """Run (or resume) measurement ``name`` of this notebook into ``results/03-op-microbenchmarks/``
    and return the table. ``op_times``: every configuration of :func:`configs`, swept in groups of
    one operation, dtype, size and index distribution (:data:`GROUP`; the table is rewritten after each
    group, and a rerun with the same parameters measures only the groups that are missing). A
    configuration whose inputs do not fit is recorded with ``status="oom"`` and the sweep goes on.
    Raises ``ValueError`` for an unknown name."""
    from studylib.results import ResultTable

    if name != "op_times":
        raise ValueError(f"unknown measurement {name!r} of {NOTEBOOK}")
    threads = num_threads or torch.get_num_threads()
    todo, notes = configs(params, device)
    for n in dict.fromkeys(notes):
        print(n)
    groups: dict[tuple, list[dict]] = {}
    for c in todo:
        groups.setdefault(tuple(c[k] for k in GROUP), []).append(c)
    table = ResultTable(NOTEBOOK, name, GROUP, params.model_dump())
    cache: dict = {}
    items = [dict(zip(GROUP, k)) for k in groups]
    return table.sweep(items, lambda g: measure_group(groups[tuple(g[k] for k in GROUP)], params, device, threads,
                                                      cache), desc=name, oom_metric_columns=["seconds"])


def implementations_table(params, device: torch.device) -> pd.DataFrame:
    """Every registered implementation of the selected operations: role, whether it is available
    (its extension imports), whether it is measured in this run, whether it is the primary of its
    role (the pair of the ratio figure), and its declared backend."""
    rows = []
    for name in selected_operations(params):
        op = ops.get(name)
        measured = {i.name for i in selected_impls(op, params)}
        prim = {i.name for i in (op.primary(ops.PYG), op.primary(ops.NATIVE)) if i is not None}
        for im in op.impls:
            rows.append({"op": name, "impl": im.name, "role": im.role, "available": im.available(),
                         "measured": im.name in measured, "primary": im.name in prim,
                         "requires": im.requires or "", "backend": im.backend})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------

def ok_rows(times: pd.DataFrame) -> pd.DataFrame:
    """Rows of successful timings only."""
    if times is None or times.empty:
        return pd.DataFrame(columns=[*CONFIG, "impl", "role", "seconds"])
    t = times[times["status"] == "ok"] if "status" in times else times
    return t.dropna(subset=["seconds"])


def primary_impls(times: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(op, role) -> the primary implementation among those measured: the first in registry order."""
    out = {}
    measured = set(zip(times["op"], times["impl"]))
    for name in times["op"].unique():
        for im in ops.get(name).impls:
            if (name, im.name) in measured and (name, im.role) not in out:
                out[(name, im.role)] = im.name
    return out


def is_primary(df: pd.DataFrame, times: pd.DataFrame | None = None) -> pd.Series:
    """Boolean mask of the rows of ``df`` (columns ``op``, ``impl``) that belong to a primary
    implementation (see :func:`primary_impls`, computed from ``times``, default ``df``)."""
    prim = primary_impls(df if times is None else times)
    pairs = {(op, impl) for (op, _role), impl in prim.items()}
    return pd.Series([(o, i) in pairs for o, i in zip(df["op"], df["impl"])], index=df.index, dtype=bool)


def summary(times: pd.DataFrame, limits=None) -> pd.DataFrame:
    """One row per configuration and implementation: ``median_s``, ``q1_s``, ``q3_s``, ``iqr_s``,
    ``blocks`` (over raw blocks of all rounds), the inputs' ``numel``, ``density``, ``bytes``,
    ``flops``, ``peak_memory_bytes``, ``kernels``, achieved ``bandwidth_Bps`` (bytes / median) and
    ``flops_per_s``, and with ``limits`` (:class:`studylib.studies.hardware.measure.MachineLimits`):
    ``bw_fraction`` (achieved / peak bandwidth), ``bound_s`` (roofline time: max of bytes / peak
    bandwidth and FLOP / peak FLOP/s, Williams et al., CACM 2009) and ``roofline_fraction``
    (``bound_s / median_s``, 1 = at the roofline)."""
    t = ok_rows(times)
    keys = CONFIG + ["impl", "role"]
    g = t.groupby(keys, sort=False)
    out = g["seconds"].quantile([0.25, 0.5, 0.75]).unstack()
    out.columns = ["q1_s", "median_s", "q3_s"]
    out["iqr_s"] = out["q3_s"] - out["q1_s"]
    out["blocks"] = g["seconds"].size()
    firsts = ["numel", "effective_size", "density", "bytes", "flops", "nnz", "kernels", "torch_scatter", "torch_sparse",
              "backend", "num_threads", "device"]
    out = out.join(g[[c for c in firsts if c in t]].first())
    if "peak_memory_bytes" in t:
        out["peak_memory_bytes"] = g["peak_memory_bytes"].max()
    out = out.reset_index()
    out["bandwidth_Bps"] = out["bytes"] / out["median_s"]
    out["flops_per_s"] = out["flops"] / out["median_s"]
    if limits is not None and limits.memory_bandwidth:
        peak_f = np.array([limits.peak_flops(d) or np.inf for d in out["dtype"]])
        out["bw_fraction"] = out["bandwidth_Bps"] / limits.memory_bandwidth
        out["bound_s"] = np.maximum(out["bytes"] / limits.memory_bandwidth, out["flops"] / peak_f)
        out["roofline_fraction"] = out["bound_s"] / out["median_s"]
    return out


def ratio_table(times: pd.DataFrame) -> pd.DataFrame:
    """PyG / native time ratio of the primary pair per configuration, from alternated rounds.

    Per round, each implementation's median over its blocks; the ratio of the two medians per
    round; then ``ratio`` (median over rounds), ``ratio_q1``, ``ratio_q3`` and ``rounds``. Also
    ``pyg_impl``, ``native_impl``, ``pyg_ms`` and ``native_ms`` (median over all blocks). Operations
    without a PyG implementation are absent. > 1: native is faster."""
    t = ok_rows(times)
    if t.empty:
        return pd.DataFrame()
    prim = primary_impls(t)
    rows = []
    for key, g in t.groupby(CONFIG, sort=False):
        op = key[0]
        p, n = prim.get((op, ops.PYG)), prim.get((op, ops.NATIVE))
        if p is None or n is None:
            continue
        per = g[g["impl"].isin([p, n])].groupby(["round", "impl"])["seconds"].median().unstack("impl")
        if p not in per or n not in per:
            continue
        per = per.dropna()
        r = per[p] / per[n]
        if r.empty:
            continue
        rows.append({**dict(zip(CONFIG, key)), "pyg_impl": p, "native_impl": n, "ratio": float(r.median()),
                     "ratio_q1": float(r.quantile(0.25)), "ratio_q3": float(r.quantile(0.75)), "rounds": int(r.size),
                     "pyg_ms": float(g[g["impl"] == p]["seconds"].median() * 1e3),
                     "native_ms": float(g[g["impl"] == n]["seconds"].median() * 1e3)})
    return pd.DataFrame(rows)


def _reference_slice(df: pd.DataFrame) -> pd.DataFrame:
    """Per operation and dtype: its largest size and its first (smallest) reduce factor."""
    if df.empty:
        return df
    mx = df.groupby(["op", "dtype"])["size"].transform("max")
    rf = df.groupby(["op", "dtype"])["reduce_factor"].transform("min")
    return df[(df["size"] == mx) & (df["reduce_factor"] == rf)]


def sparsity_gain(times: pd.DataFrame) -> pd.DataFrame:
    """Speed-up from sparsity per operation and implementation at the largest size and the first
    reduce factor: ``gain`` = median time at the lowest sparsity / median time at the highest
    (``s_low``, ``s_high``); ``gains`` = ``gain >= GAIN_THRESHOLD``; also ``max_gain`` over all
    measured sparsities."""
    s = _reference_slice(summary(times))
    rows = []
    for (op, dt, impl, role), g in s.groupby(["op", "dtype", "impl", "role"], sort=False):
        g = g.sort_values("sparsity")
        if len(g) < 2:
            continue
        t0 = g["median_s"].iloc[0]
        rows.append({"op": op, "dtype": dt, "impl": impl, "role": role, "s_low": g["sparsity"].iloc[0],
                     "s_high": g["sparsity"].iloc[-1], "gain": t0 / g["median_s"].iloc[-1],
                     "max_gain": float((t0 / g["median_s"]).max()),
                     "gains": bool(t0 / g["median_s"].iloc[-1] >= GAIN_THRESHOLD)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Figures (drawn from the table only)
# --------------------------------------------------------------------------------------------

def _grid(n: int, cols: int = 5, w: float = 3.0, h: float = 2.4):
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(n / cols))
    cols = min(cols, max(1, n))
    # a fixed layout: the constrained layout of the suite's theme costs seconds per save with 20 panels
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows + 0.6), squeeze=False, layout="none")
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.07 if rows < 3 else 0.04, top=1 - 0.6 / (h * rows + 0.6),
                        wspace=0.35, hspace=0.55)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


#: Colours of the implementations of one role, in registry order (the primary one first).
_ROLE_PALETTES = {ops.PYG: ("#ff7f0e", "#d62728", "#e377c2", "#8c564b"),
                  ops.NATIVE: ("#1f77b4", "#2ca02c", "#17becf", "#9467bd")}


def _impl_colors(d: pd.DataFrame) -> dict[str, str]:
    """Colours of the implementations of one operation: warm for PyG, cool for native, the
    primary implementation of each role in :data:`ROLE_COLORS`."""
    out = {}
    for op in d["op"].unique():
        measured = set(d[d["op"] == op]["impl"])
        counts = {ops.PYG: 0, ops.NATIVE: 0}
        for im in ops.get(op).impls:
            if im.name in measured and im.name not in out:
                pal = _ROLE_PALETTES[im.role]
                out[im.name] = pal[counts[im.role] % len(pal)]
                counts[im.role] += 1
    return out


def plot_ratio_heatmap(times: pd.DataFrame):
    """Heat map of the PyG / native time ratio of the primary pair, operation x sparsity, at each
    operation's largest size and first reduce factor; cells annotated ``median [q1-q3]`` over the
    alternated rounds. Colour: log2 of the ratio (red: PyG slower, blue: PyG faster)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    r = _reference_slice(ratio_table(times))
    dts = sorted(r["dtype"].unique()) if not r.empty else ["float32"]
    fig, axes = plt.subplots(1, len(dts), figsize=(6.5 * len(dts), 0.42 * max(4, r["op"].nunique() if not r.empty
                                                                                  else 4) + 1.6), squeeze=False)
    for ax, dt in zip(axes[0], dts):
        d = r[r["dtype"] == dt] if not r.empty else r
        if d.empty:
            ax.text(0.5, 0.5, "no operation with both implementations measured", ha="center", transform=ax.transAxes)
            continue
        order = [o for o in ops.operation_names() if o in set(d["op"])]
        piv = d.pivot_table(index="op", columns="sparsity", values="ratio").reindex(order)
        q1 = d.pivot_table(index="op", columns="sparsity", values="ratio_q1").reindex(order)
        q3 = d.pivot_table(index="op", columns="sparsity", values="ratio_q3").reindex(order)
        val = np.log2(piv.to_numpy(dtype=float))
        lim = max(0.5, float(np.nanmax(np.abs(val))) if np.isfinite(val).any() else 1.0)
        im = ax.imshow(val, cmap="RdBu_r", norm=TwoSlopeNorm(0, -lim, lim), aspect="auto")
        ax.grid(False)
        for i in range(piv.shape[0]):
            for j in range(piv.shape[1]):
                v = piv.iat[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}\n[{q1.iat[i, j]:.2f}-{q3.iat[i, j]:.2f}]", ha="center", va="center",
                            fontsize=6.5, color="white" if abs(val[i, j]) > 0.6 * lim else "black")
        labels = [f"{o}\n{d[d['op'] == o]['pyg_impl'].iloc[0]} / {d[d['op'] == o]['native_impl'].iloc[0]}"
                  for o in order]
        ax.set_yticks(range(len(order)), labels, fontsize=6.5)
        ax.set_xticks(range(piv.shape[1]), [f"{c:g}" for c in piv.columns])
        ax.set_xlabel("sparsity (fraction of zeroed entries)")
        rounds = int(d["rounds"].min())
        ax.set_title(f"{dt}: PyG time / native time (median [IQR] of {rounds}+ rounds)", fontsize=9)
        fig.colorbar(im, ax=ax, label="log2(PyG / native)  > 0: native faster")
    fig.suptitle("PyG vs native PyTorch, per operation and sparsity (largest size, first reduce factor)")
    return fig


def plot_time_vs_sparsity(times: pd.DataFrame):
    """One panel per operation: median time per call vs sparsity for every implementation (IQR
    whiskers over raw blocks), at the operation's largest size and first reduce factor."""
    s = _reference_slice(summary(times))
    s = s[s["dtype"] == "float32"] if (s["dtype"] == "float32").any() else s
    order = [o for o in ops.operation_names() if o in set(s["op"])]
    fig, axes = _grid(len(order))
    for ax, op in zip(axes, order):
        d = s[s["op"] == op]
        colors = _impl_colors(d)
        for impl, g in d.groupby("impl", sort=False):
            g = g.sort_values("sparsity")
            x = np.arange(len(g))
            ls = "-" if g["role"].iloc[0] == ops.NATIVE else "--"
            ax.errorbar(x, g["median_s"] * 1e3, yerr=[(g["median_s"] - g["q1_s"]) * 1e3, (g["q3_s"] - g["median_s"]) * 1e3],
                        ls=ls, marker="o", ms=3, capsize=2, color=colors[impl], label=f"{g['role'].iloc[0]}: {impl}")
            ax.set_xticks(x, [f"{v:g}" for v in g["sparsity"]])
        ax.set_ylim(bottom=0)  # linear from zero: a flat line is "no gain from sparsity"
        ax.set_title(f"{op} (n={int(d['numel'].iloc[0]):,})", fontsize=8)
        ax.set_xlabel("sparsity", fontsize=7)
        ax.set_ylabel("ms per call", fontsize=7)
        ax.legend(fontsize=5, loc="best")
    fig.suptitle("Time vs input sparsity (dashed: PyG, solid: native); largest size, first reduce factor")
    return fig


def plot_scaling(times: pd.DataFrame):
    """One panel per operation, log-log: median time per call vs elements of the main input
    (``numel``) for every implementation at the lowest sparsity and first reduce factor; the grey
    line has slope 1 (time proportional to size)."""
    s = summary(times)
    if s.empty:
        return _grid(1)[0]
    s = s[s["dtype"] == "float32"] if (s["dtype"] == "float32").any() else s
    s = s[(s["sparsity"] == s.groupby("op")["sparsity"].transform("min"))
          & (s["reduce_factor"] == s.groupby("op")["reduce_factor"].transform("min"))]
    order = [o for o in ops.operation_names() if o in set(s["op"])]
    fig, axes = _grid(len(order))
    for ax, op in zip(axes, order):
        d = s[s["op"] == op]
        colors = _impl_colors(d)
        for impl, g in d.groupby("impl", sort=False):
            g = g.sort_values("numel")
            ls = "-" if g["role"].iloc[0] == ops.NATIVE else "--"
            ax.errorbar(g["numel"], g["median_s"], yerr=[g["median_s"] - g["q1_s"], g["q3_s"] - g["median_s"]], ls=ls,
                        marker="o", ms=3, capsize=2, color=colors[impl], label=f"{g['role'].iloc[0]}: {impl}")
        lo, hi = d["numel"].min(), d["numel"].max()
        if hi > lo:
            y0 = d[d["numel"] == hi]["median_s"].min()
            ax.plot([lo, hi], [y0 * lo / hi, y0], color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()  # minor log ticks on 20 panels cost seconds per save
        ax.set_title(op, fontsize=8)
        ax.set_xlabel("elements of the main input", fontsize=7)
        ax.set_ylabel("seconds per call", fontsize=7)
        ax.legend(fontsize=5, loc="upper left")
    fig.suptitle("Scaling with size (log-log; dotted: slope 1); lowest sparsity, first reduce factor")
    return fig


def plot_roofline(times: pd.DataFrame, limits=None):
    """Left: roofline -- achieved GFLOP/s vs arithmetic intensity (FLOP per compulsory byte) of each
    operation's primary implementations at its largest size, lowest sparsity and first reduce factor,
    under the ceilings measured by ``00-hardware`` (Williams et al., CACM 2009). Right: achieved
    bandwidth (compulsory bytes / time) as a percentage of the measured STREAM peak, per operation
    and primary implementation (absolute GB/s when no limits were measured)."""
    import matplotlib.pyplot as plt

    s = _reference_slice(summary(times, limits))
    s = s[s["sparsity"] == s.groupby("op")["sparsity"].transform("min")]
    s = s[s["dtype"] == "float32"] if (s["dtype"] == "float32").any() else s
    s = s[is_primary(s, ok_rows(times))] if not s.empty else s
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 0.3 * max(14, s["op"].nunique()) + 2),
                                 gridspec_kw={"width_ratios": [1, 1.1]})
    d = s[s["flops"] > 0]
    markers = {ops.PYG: "^", ops.NATIVE: "o"}
    if not d.empty:
        ai = d["flops"] / d["bytes"]
        for role, g in d.groupby("role"):
            x = g["flops"] / g["bytes"]
            ax.scatter(x, g["flops_per_s"] / 1e9, marker=markers.get(role, "o"), label=role, zorder=3,
                       color=ROLE_COLORS[role])
            for xi, yi, op in zip(x, g["flops_per_s"] / 1e9, g["op"]):
                ax.annotate(op, (xi, yi), fontsize=6, xytext=(3, 2), textcoords="offset points")
        if limits is not None and limits.memory_bandwidth:
            xs = np.logspace(np.log10(max(ai.min() / 4, 1e-3)), np.log10(max(ai.max() * 8, 10)), 100)
            ax.plot(xs, limits.attainable_flops(xs, "float32") / 1e9, color="k", lw=1,
                    label=f"roofline: {limits.memory_bandwidth / 1e9:.1f} GB/s, "
                          f"{(limits.peak_flops('float32') or 0) / 1e9:.0f} GFLOP/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("arithmetic intensity (FLOP / compulsory byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title("operations with floating-point work", fontsize=9)
    order = [o for o in ops.operation_names() if o in set(s["op"])]
    y = np.arange(len(order))
    use_frac = limits is not None and limits.memory_bandwidth and "bw_fraction" in s
    for k, role in enumerate((ops.PYG, ops.NATIVE)):
        g = s[s["role"] == role].set_index("op").reindex(order)
        v = g["bw_fraction"] * 100 if use_frac else g["bandwidth_Bps"] / 1e9
        bx.barh(y + (k - 0.5) * 0.4, v, height=0.4, label=role, color=ROLE_COLORS[role])
    bx.set_yticks(y, order, fontsize=7)
    bx.invert_yaxis()
    if use_frac:
        bx.axvline(100, color="k", lw=0.8)
        bx.set_xlabel(f"achieved bandwidth, % of STREAM peak ({limits.memory_bandwidth / 1e9:.1f} GB/s, "
                      f"{limits.bandwidth_kernel}, {limits.threads} threads)")
    else:
        bx.set_xlabel("achieved bandwidth (GB/s; no 00-hardware limits to compare with)")
    bx.legend(fontsize=7)
    bx.set_title("compulsory bytes / time", fontsize=9)
    fig.suptitle("Operations against the machine's measured limits (largest size, lowest sparsity)")
    return fig
