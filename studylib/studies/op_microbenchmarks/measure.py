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

import numpy as np
import pandas as pd
import torch

from studylib import memory, tables, timing
from studylib.results import ResultTable
from studylib.studies.op_microbenchmarks import ops
from studylib.studies.op_microbenchmarks.params import NOTEBOOK

#: Columns that identify a configuration of table ``op_times``.
CONFIG = ["op", "dtype", "size", "sparsity", "reduce_factor", "index_distribution"]


#: A sweep item: the configurations of one operation, dtype, size and index distribution.
GROUP = ["op", "dtype", "size", "index_distribution"]


#: A speed-up from sparsity below this factor counts as "little or no gain" (finding 3).
GAIN_THRESHOLD = 1.10


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def selected_operations(params) -> list[str]:
    """The operations of this run (``params.operations`` or every registered one)."""
    return list(params.operations) if params.operations else ops.operation_names()


def selected_impls(op: ops.Operation, params) -> list[ops.Impl]:
    """The implementations measured for ``op``: every available one, or with
    ``implementations="primary"`` the primary (first available) implementation of each role of
    :data:`ops.ROLES`: PyG's extension kernel (when its extension is installed), PyG's utility,
    native."""
    impls = op.implementations()
    if params.implementations == "primary":
        keep = {i.name for i in (op.primary(r) for r in ops.ROLES) if i is not None}
        impls = [i for i in impls if i.name in keep]
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
    ``backend`` (declared), ``kernels``, ``kernel_library`` and ``torch_scatter`` / ``torch_sparse`` /
    ``pyg_lib`` (what ran, from the profiler: :func:`ops.detect_backend`), ``round``, ``block``,
    ``seconds`` (per call), ``number_per_run``,
    ``peak_memory_bytes``, plus the inputs' ``numel``, ``effective_size``, ``density``, ``bytes``,
    ``flops`` and ``nnz`` (sparse operations). An implementation that runs out of memory or does not
    support the configuration gets one row with ``status`` ``"oom"`` / ``"unsupported"`` and the
    error; the others go on. Raises :class:`ops.InputTooLargeError` (a
    :class:`studylib.memory.Refused`) before building anything when the estimated inputs do not fit,
    and ``MemoryError`` when building them runs out of memory.
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
    index distribution). A configuration refused by its memory estimate becomes one row with
    ``status="refused"``, the estimate and the memory available (:func:`studylib.memory.refused_row`);
    one whose inputs run out of memory while being built, one row with ``status="oom"``; the group
    goes on."""
    rows = []
    for c in configs_of_group:
        try:
            rows += [{**c, **r} for r in measure_config(c, params, device, num_threads, backend_cache)]
        except memory.Refused as err:
            rows.append(memory.refused_row(c, err.decision, ["seconds"]))
        except MemoryError as err:
            rows.append({**c, "status": "oom", "error": f"{type(err).__name__}: {str(err)[:300]}", "seconds": np.nan})
            _release(device, collect=True)
    return rows


def freeze_import_objects() -> None:
    """Import PyG and its extensions, then move every object alive now (modules, classes, the
    registry) into the garbage collector's permanent generation (``gc.freeze``).

    Each CPU peak-memory measurement (:func:`studylib.timing.peak_memory_bytes`) runs
    ``gc.collect()``, which otherwise walks the ~250,000 objects that importing PyG creates: about
    0.5 s per call on two cores, most of a small configuration's time. Objects created later
    (inputs, outputs) are collected as usual."""
    ops.extensions()
    try:
        import torch_geometric.nn  # noqa: F401 -- imported before freezing, see above
    except Exception:  # noqa: BLE001 -- PyG missing or broken: its implementations fail on their own
        pass
    gc.collect()
    gc.freeze()


def run_measurement(name: str, params, device: torch.device, num_threads: int | None = None) -> pd.DataFrame:
    """Run (or resume) measurement ``name`` of this notebook into ``results/03-op-microbenchmarks/``
    and return the table. ``op_times``: every configuration of :func:`configs`, swept in groups of
    one operation, dtype, size and index distribution (:data:`GROUP`; the table is rewritten after each
    group, and a rerun with the same parameters measures only the groups that are missing). A
    configuration whose estimated inputs do not fit is recorded with ``status="refused"`` (one that
    runs out of memory with ``"oom"``) and the sweep goes on.
    Raises ``ValueError`` for an unknown name."""

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
    freeze_import_objects()
    items = [dict(zip(GROUP, k)) for k in groups]
    return table.sweep(items, lambda g: measure_group(groups[tuple(g[k] for k in GROUP)], params, device, threads,
                                                      cache), desc=name, oom_metric_columns=["seconds"])


def implementations_table(params, device: torch.device) -> pd.DataFrame:
    """Every registered implementation of the selected operations: role, whether it is available
    (its extension imports), whether it is measured in this run, whether it is the primary of its
    role (the PyG-kernel / native pair of the ratio figure), and its declared backend."""
    rows = []
    for name in selected_operations(params):
        op = ops.get(name)
        measured = {i.name for i in selected_impls(op, params)}
        prim = {i.name for i in (op.primary(r) for r in ops.ROLES) if i is not None}
        for im in op.impls:
            rows.append({"op": name, "impl": im.name, "role": im.role, "available": im.available(),
                         "measured": im.name in measured, "primary": im.name in prim,
                         "requires": im.requires or "", "backend": im.backend})
    return pd.DataFrame(rows)


def ok_rows(times: pd.DataFrame) -> pd.DataFrame:
    """Rows of successful timings only (:func:`studylib.tables.ok_rows`, rows without a time dropped)."""
    if times is None or times.empty:
        return pd.DataFrame(columns=[*CONFIG, "impl", "role", "seconds"])
    return tables.ok_rows(times).dropna(subset=["seconds"])

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
    ``flops_per_s``, and with ``limits`` (:class:`studylib.limits.MachineLimits`):
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
    firsts = ["numel", "effective_size", "density", "bytes", "flops", "nnz", "kernels", "kernel_library",
              "torch_scatter", "torch_sparse", "backend", "num_threads", "device"]
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


def ratio_table(times: pd.DataFrame, role: str = ops.PYG) -> pd.DataFrame:
    """Time ratio of the primary implementation of ``role`` (default: PyG's extension kernel) to the
    primary native one, per configuration, from alternated rounds.

    Per round, each implementation's median over its blocks; the ratio of the two medians per
    round; then ``ratio`` (median over rounds), ``ratio_q1``, ``ratio_q3`` and ``rounds``. Also
    ``pyg_impl``, ``native_impl``, ``pyg_ms`` and ``native_ms`` (median over all blocks),
    ``pyg_library`` (the kernel library the ``role`` side ran, :func:`ops.detect_backend`) and
    ``same_kernel``: True when that side ran no kernel of PyG's extension libraries, native PyTorch
    operators only (``pyg_library == "torch"``), so that the cell compares native PyTorch with itself
    (``torch_scatter``'s sum and mean are ``Tensor.scatter_add_``; ``torch_sparse`` 0.6.18's
    sparse-sparse product is ``torch.sparse.mm``, its ``coalesce`` and ``transpose`` are Python
    compositions of native sorts and gathers); such cells are left out of the PyG-vs-native
    comparison and counted in its evidence. Operations
    without an implementation of ``role`` among the measured ones are absent (without PyG's
    extensions the default table is empty). > 1: native is faster."""
    t = ok_rows(times)
    if t.empty:
        return pd.DataFrame()
    prim = primary_impls(t)
    rows = []
    for key, g in t.groupby(CONFIG, sort=False):
        op = key[0]
        p, n = prim.get((op, role)), prim.get((op, ops.NATIVE))
        if p is None or n is None or p == n:
            continue
        per = g[g["impl"].isin([p, n])].groupby(["round", "impl"])["seconds"].median().unstack("impl")
        if p not in per or n not in per:
            continue
        per = per.dropna()
        r = per[p] / per[n]
        if r.empty:
            continue
        plib = (str(g.loc[g["impl"] == p, "kernel_library"].dropna().iloc[0])
                if "kernel_library" in g and g.loc[g["impl"] == p, "kernel_library"].notna().any() else "unknown")
        rows.append({**dict(zip(CONFIG, key)), "pyg_impl": p, "native_impl": n, "pyg_library": plib,
                     "same_kernel": plib == "torch", "ratio": float(r.median()),
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
