"""Measurements of notebook ``00-hardware``: this machine's limits, measured.

* Memory bandwidth with STREAM's four kernels (McCalpin, *Memory Bandwidth and Machine Balance in
  Current High Performance Computers*, IEEE TCCA Newsletter 1995; https://www.cs.virginia.edu/stream/)
  written with torch ops on arrays well beyond the last-level cache, bytes counted as STREAM counts
  them (no write-allocate traffic):

  =====  ==================================  =======================
  copy   ``b.copy_(a)``                      2 words per element
  scale  ``torch.mul(a, s, out=b)``          2 words per element
  add    ``torch.add(a, b, out=c)``          3 words per element
  triad  ``torch.add(b, c, alpha=s, out=a)`` 3 words per element
  =====  ==================================  =======================

  plus a read-only kernel (``a.sum()``, 1 word) and a write-only kernel (``b.fill_(s)``, 1 word),
  the like-for-like counterparts of ``sysbench memory --memory-oper=read|write``.
* GEMM throughput: ``torch.mm`` of square ``n x n`` matrices, ``2 n^3`` FLOP per call, fp32 (and
  fp16/bf16 on GPUs).
* Host/device copy bandwidth on GPUs (pinned and pageable host memory, both directions).

Every timing goes through :func:`studylib.timing.benchmark` (``torch.utils.benchmark``,
explicit thread count, warm-up, raw blocks kept). The derived ``limits`` table is what the other
notebooks read through :func:`machine_limits` to draw rooflines and %-of-peak figures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pandas as pd
import torch

from studylib import machine, paths, timing
from studylib.limits import (  # noqa: F401  (the limits of this machine live in the core: 03, 04 and 05 read them)
    EXTRA_WORDS,
    KERNELS,
    STREAM_SCALAR,
    STREAM_WORDS,
    MachineLimits,
    last_level_cache_bytes,
    machine_limits,
    stream_kernels,
)
from studylib.results import ResultTable
from studylib.studies.hardware.params import NOTEBOOK

#: Minimum bytes per STREAM array.
MIN_ARRAY_BYTES = 128 * 2**20


#: Accepted gap between this notebook's bandwidth and the standard tool's (the issue's 20%).
REFERENCE_TOLERANCE = 0.20


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def dtype_of(name: str) -> torch.dtype:
    """``"float32"`` -> ``torch.float32`` (also float16, bfloat16, float64); ``ValueError`` otherwise."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(_DTYPES)}") from None



def stream_array_bytes(requested_mib: float = 0.0, device: torch.device | str = "cpu") -> int:
    """Bytes per STREAM array: ``requested_mib`` MiB when > 0, else STREAM's rule (each array at
    least 4x the last-level cache) with at least 128 MiB; on a GPU at least 4x its L2 cache (taken as
    the CPU rule when the L2 size is not known) and 512 MiB."""
    if requested_mib > 0:
        return int(requested_mib * 2**20)
    device = torch.device(device)
    if device.type == "cuda":
        l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 0
        return max(512 * 2**20, 4 * l2)
    llc = last_level_cache_bytes() or 0
    return max(MIN_ARRAY_BYTES, 4 * llc)


def resolve_threads(thread_counts: list[int]) -> list[int]:
    """Map thread counts (0 = every core available to this process) to distinct positive counts,
    in the given order."""

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    out = []
    for t in thread_counts:
        t = cores if t == 0 else t
        if t not in out:
            out.append(t)
    return out


def measure_bandwidth(array_bytes: int, threads: int, *, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32, kernels=KERNELS, rounds: int = 3,
                      min_run_time: float = 0.3) -> list[dict]:
    """STREAM-style bandwidth of each kernel with ``threads`` CPU threads.

    The kernels alternate for ``rounds`` rounds; each round is one ``blocked_autorange`` of
    ``min_run_time`` seconds per kernel. Returns one row per timed block: ``kernel``, ``threads``,
    ``array_bytes`` (per array), ``dtype``, ``round``, ``block``, ``seconds`` (per call),
    ``bytes`` (moved per call, STREAM counting), ``bytes_per_s``. Raises ``MemoryError`` when the
    three arrays cannot be allocated.
    """
    device = torch.device(device)
    n = max(1, array_bytes // torch.empty((), dtype=dtype).element_size())
    a = torch.full((n,), 1.0, dtype=dtype, device=device)
    b = torch.full((n,), 2.0, dtype=dtype, device=device)
    c = torch.zeros(n, dtype=dtype, device=device)
    w = a.element_size()
    ks = stream_kernels(a, b, c)
    unknown = [k for k in kernels if k not in ks]
    if unknown:
        raise ValueError(f"unknown STREAM kernel(s) {unknown}; known: {list(ks)}")
    rows = []
    for r in range(rounds):
        order = list(kernels) if r % 2 == 0 else list(reversed(kernels))
        for k in order:
            fn, words = ks[k]
            res = timing.benchmark(fn, num_threads=threads, min_run_time=min_run_time, device=device,
                                   warmup=1, check_inputs=(r == 0), measure_memory=False)
            for i, t in enumerate(res["times"]):
                moved = words * n * w
                rows.append({"kernel": k, "threads": threads, "array_bytes": n * w, "dtype": str(dtype).split(".")[-1],
                             "round": r, "block": i, "seconds": t, "bytes": moved, "bytes_per_s": moved / t,
                             "number_per_run": res["number_per_run"]})
    return rows


def measure_gemm(n: int, dtype: torch.dtype, threads: int, *, device: torch.device | str = "cpu",
                 rounds: int = 3, min_run_time: float = 0.3, seed: int = 0) -> list[dict]:
    """Throughput of ``torch.mm(a, b, out=c)`` for square ``n x n`` matrices (``2 n^3`` FLOP per
    call). Rows per timed block: ``n``, ``dtype``, ``threads``, ``round``, ``block``, ``seconds``,
    ``flops``, ``flops_per_s``."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    a = torch.rand((n, n), generator=g, device=device).to(dtype)
    b = torch.rand((n, n), generator=g, device=device).to(dtype)
    c = torch.empty((n, n), dtype=dtype, device=device)
    flops = 2.0 * n**3
    rows = []
    for r in range(rounds):
        res = timing.benchmark(lambda: torch.mm(a, b, out=c), num_threads=threads, min_run_time=min_run_time,
                               device=device, warmup=1, check_inputs=(r == 0), measure_memory=False)
        for i, t in enumerate(res["times"]):
            rows.append({"n": n, "dtype": str(dtype).split(".")[-1], "threads": threads, "round": r, "block": i,
                         "seconds": t, "flops": flops, "flops_per_s": flops / t, "number_per_run": res["number_per_run"]})
    return rows


def measure_transfer(nbytes: int, *, device: torch.device | str = "cuda", rounds: int = 3,
                     min_run_time: float = 0.3) -> list[dict]:
    """Host-to-device and device-to-host copy bandwidth (``Tensor.copy_``) of ``nbytes``, from
    pinned and from pageable host memory. Rows per timed block: ``direction`` (``h2d``/``d2h``),
    ``pinned``, ``bytes``, ``round``, ``block``, ``seconds``, ``bytes_per_s``. Raises
    ``RuntimeError`` on a device without CUDA."""
    device = torch.device(device)
    if device.type != "cuda":
        raise RuntimeError("host/device transfer bandwidth needs a CUDA device")
    n = nbytes // 4
    dev = torch.ones(n, device=device)
    rows = []
    for pinned in (True, False):
        host = torch.ones(n, pin_memory=pinned)
        for direction, fn in (("h2d", lambda h=host: dev.copy_(h)), ("d2h", lambda h=host: h.copy_(dev))):
            for r in range(rounds):
                res = timing.benchmark(fn, num_threads=1, min_run_time=min_run_time, device=device, warmup=1,
                                       check_inputs=(r == 0), measure_memory=False)
                for i, t in enumerate(res["times"]):
                    rows.append({"direction": direction, "pinned": pinned, "bytes": n * 4, "round": r, "block": i,
                                 "seconds": t, "bytes_per_s": n * 4 / t})
    return rows


def sysbench_path() -> str | None:
    """Path of the ``sysbench`` executable (Debian package ``sysbench``), or ``None``."""
    return shutil.which("sysbench")


_SYSBENCH_RATE = re.compile(r"transferred \(([\d.]+) MiB/sec\)")


def parse_sysbench(output: str) -> float:
    """Bytes per second from ``sysbench memory run`` output (its ``(... MiB/sec)``, MiB = 2**20 B).
    Raises ``ValueError`` when the rate is missing."""
    m = _SYSBENCH_RATE.search(output)
    if not m:
        raise ValueError("no 'transferred (... MiB/sec)' line in sysbench output")
    return float(m.group(1)) * 2**20


def run_sysbench(oper: str, threads: int, block_bytes: int, *, total_bytes: int = 32 * 2**30,
                 time_limit_s: int = 10) -> dict:
    """One run of ``sysbench memory`` (sequential access, ``oper`` = ``read`` or ``write``, each
    thread streaming over a ``block_bytes`` buffer). Returns ``{"tool", "oper", "threads",
    "block_bytes", "bytes_per_s", "command"}``. Raises ``FileNotFoundError`` without sysbench and
    ``RuntimeError`` when it fails."""
    exe = sysbench_path()
    if exe is None:
        raise FileNotFoundError("sysbench is not installed (Debian: apt-get install sysbench)")
    if oper not in ("read", "write"):
        raise ValueError(f"oper must be 'read' or 'write' (got {oper!r})")
    cmd = [exe, "memory", f"--threads={threads}", f"--memory-block-size={block_bytes // 2**20}M",
           f"--memory-total-size={total_bytes // 2**20}M", f"--memory-oper={oper}", "--memory-access-mode=seq",
           f"--time={time_limit_s}", "run"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:300]}")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    return {"tool": version or "sysbench", "oper": oper, "threads": threads, "block_bytes": block_bytes,
            "bytes_per_s": parse_sysbench(proc.stdout), "command": " ".join(cmd[1:])}


def measure_sysbench(threads_list: list[int], block_bytes: int, repeats: int = 3,
                     total_bytes: int = 32 * 2**30) -> list[dict]:
    """``repeats`` alternated read and write runs of ``sysbench memory`` per thread count; one row
    per run with its ``repeat`` number (see :func:`run_sysbench`)."""
    rows = []
    for rep in range(repeats):
        for t in threads_list:
            for oper in ("read", "write"):
                rows.append({**run_sysbench(oper, t, block_bytes, total_bytes=total_bytes), "repeat": rep})
    return rows


#: Reads and writes per element of each kernel (STREAM's counting: copy/scale 1+1, add/triad 2+1).
READS_WRITES = {"copy": (1, 1), "scale": (1, 1), "add": (2, 1), "triad": (2, 1), "read": (1, 0), "write": (0, 1)}


def reference_rate(kernel: str, read_bps: float, write_bps: float) -> float:
    """The rate a kernel would reach if its reads streamed at ``read_bps`` and its writes at
    ``write_bps`` one after the other: with ``r`` reads and ``w`` writes per element,
    ``(r + w) / (r / read_bps + w / write_bps)`` (the traffic-weighted harmonic mean; for ``read``
    and ``write`` simply the read or write rate)."""
    r, w = READS_WRITES[kernel]
    return (r + w) / ((r / read_bps if r else 0.0) + (w / write_bps if w else 0.0))


def compare_with_reference(bandwidth: pd.DataFrame, reference: pd.DataFrame | None) -> pd.DataFrame:
    """Compare this notebook's kernels with ``sysbench memory`` at the same thread counts.

    One row per (thread count, kernel): median GB/s of the torch kernel (1 GB = 1e9 B) and its best
    block (``torch_best_gb_s``, STREAM's own convention), the
    sysbench reference for the same traffic (:func:`reference_rate` of the sysbench read and write
    medians: sysbench read for ``read``, write for ``write``, the traffic-weighted combination for
    the STREAM kernels), ``ratio`` = torch / reference, ``within_tolerance`` (``|ratio - 1| <=``
    :data:`REFERENCE_TOLERANCE`) and ``like_for_like`` (True for read and write, which do exactly
    what sysbench does). A last row per thread count, ``peak (<kernel>)``, sets the headline
    bandwidth of this notebook (the best STREAM kernel) against the best rate sysbench reports (read
    or write). Empty when no reference was measured."""
    if reference is None or reference.empty:
        return pd.DataFrame()
    bw = bandwidth.groupby(["threads", "kernel"])["bytes_per_s"].median()
    best = bandwidth.groupby(["threads", "kernel"])["bytes_per_s"].max()
    ref = reference.groupby(["threads", "oper"])["bytes_per_s"].median()
    rows = []
    for t in sorted(set(bandwidth["threads"]) & set(reference["threads"])):
        if (t, "read") not in ref.index or (t, "write") not in ref.index:
            continue
        read, write = float(ref[(t, "read")]), float(ref[(t, "write")])
        for k in KERNELS:
            if (t, k) not in bw.index:
                continue
            r = reference_rate(k, read, write)
            ours = float(bw[(t, k)])
            rows.append({"threads": int(t), "kernel": k, "torch_gb_s": ours / 1e9,
                         "torch_best_gb_s": float(best[(t, k)]) / 1e9, "sysbench_gb_s": r / 1e9,
                         "reference": {"read": "sysbench read", "write": "sysbench write"}.get(
                             k, "sysbench read/write, traffic-weighted"),
                         "ratio": ours / r, "within_tolerance": abs(ours / r - 1) <= REFERENCE_TOLERANCE,
                         "like_for_like": k in EXTRA_WORDS})
        stream = bw.loc[t].reindex(list(STREAM_WORDS)).dropna()
        if not stream.empty:
            ours, top = float(stream.max()), max(read, write)
            rows.append({"threads": int(t), "kernel": f"peak ({stream.idxmax()})", "torch_gb_s": ours / 1e9,
                         "torch_best_gb_s": float(best[(t, stream.idxmax())]) / 1e9, "sysbench_gb_s": top / 1e9,
                         "reference": f"sysbench best ({'read' if read >= write else 'write'})",
                         "ratio": ours / top, "within_tolerance": abs(ours / top - 1) <= REFERENCE_TOLERANCE,
                         "like_for_like": False})
    return pd.DataFrame(rows)


def summarize_limits(bandwidth: pd.DataFrame | None, gemm: pd.DataFrame | None,
                     transfer: pd.DataFrame | None, device: str) -> list[dict]:
    """The machine's limits from the raw tables, one row per (limit, threads):

    * ``memory_bandwidth`` -- the highest per-kernel median over the four STREAM kernels (B/s);
      ``detail`` names the kernel; also ``stream_<kernel>`` per kernel;
    * ``gemm_<dtype>`` -- the highest per-size median FLOP/s of ``torch.mm`` (``detail``: n);
    * ``h2d_pinned``, ``d2h_pinned``, ``h2d_pageable``, ``d2h_pageable`` -- median B/s (GPU only).

    Each row: ``limit``, ``threads``, ``value``, ``unit``, ``q1``, ``q3``, ``best``, ``n``,
    ``detail``, ``device``. ``value`` is the median over raw blocks (what the other notebooks use, so
    that medians are compared with medians); ``best`` is the highest block rate, which is what STREAM
    itself reports ("Best Rate"), for comparison with published STREAM figures.
    """
    rows = []

    def add(limit, threads, samples, unit, detail):
        s = timing.summarize(samples)
        rows.append({"limit": limit, "threads": int(threads), "value": s["median"], "unit": unit, "q1": s["q1"],
                     "q3": s["q3"], "best": s["max"], "n": s["n"], "detail": str(detail), "device": device})

    if bandwidth is not None and not bandwidth.empty:
        for t, g in bandwidth.groupby("threads"):
            med = g.groupby("kernel")["bytes_per_s"].median()
            for k in med.index:
                add(f"stream_{k}", t, g[g["kernel"] == k]["bytes_per_s"], "B/s", f"{k}, {g['array_bytes'].iloc[0]} B arrays")
            stream = med.reindex(list(STREAM_WORDS)).dropna()
            if not stream.empty:
                k = stream.idxmax()
                add("memory_bandwidth", t, g[g["kernel"] == k]["bytes_per_s"], "B/s", k)
    if gemm is not None and not gemm.empty:
        for (t, dt), g in gemm.groupby(["threads", "dtype"]):
            med = g.groupby("n")["flops_per_s"].median()
            n = med.idxmax()
            add(f"gemm_{dt}", t, g[g["n"] == n]["flops_per_s"], "FLOP/s", f"n={n}")
    if transfer is not None and not transfer.empty:
        for (d, p), g in transfer.groupby(["direction", "pinned"]):
            add(f"{d}_{'pinned' if p else 'pageable'}", 1, g["bytes_per_s"], "B/s", f"{g['bytes'].iloc[0]} B")
    return rows


def run_measurement(name: str, params, device: torch.device) -> pd.DataFrame:
    """Run (or resume) one measurement of ``00-hardware`` into ``results/00-hardware/<name>`` and
    return the table: ``bandwidth``, ``gemm``, ``transfer`` (GPU only; empty on CPU) or
    ``sysbench`` (empty when sysbench is not installed, ``params.sysbench`` is off, or the device is a
    GPU: sysbench measures host memory). On a GPU, CPU thread counts do not matter and each
    measurement runs once. ``ValueError`` for an unknown name."""

    threads = resolve_threads(params.thread_counts)
    if device.type == "cuda":  # CPU threads do not change what a GPU kernel does: measure once
        threads = [max(threads)]
    if name == "bandwidth":
        nbytes = stream_array_bytes(params.stream_array_mib, device)
        configs = [{"threads": t, "array_bytes": nbytes, "dtype": "float32"} for t in threads]
        cols = ["threads", "array_bytes", "dtype"]

        def measure(c):
            return measure_bandwidth(c["array_bytes"], c["threads"], device=device, rounds=params.rounds,
                                     min_run_time=params.min_run_time)
    elif name == "gemm":
        dtypes = [d for d in params.gemm_dtypes if d == "float32" or device.type == "cuda" or params.cpu_low_precision]
        configs = [{"threads": t, "n": n, "dtype": d} for t in threads for d in dtypes for n in params.gemm_sizes]
        cols = ["threads", "n", "dtype"]

        def measure(c):
            return measure_gemm(c["n"], dtype_of(c["dtype"]), c["threads"], device=device, rounds=params.rounds,
                                min_run_time=params.min_run_time, seed=params.seed)
    elif name == "transfer":
        if device.type != "cuda":
            return pd.DataFrame()
        configs = [{"bytes": int(params.transfer_mib * 2**20)}]
        cols = ["bytes"]

        def measure(c):
            return measure_transfer(c["bytes"], device=device, rounds=params.rounds, min_run_time=params.min_run_time)
    elif name == "sysbench":
        if not params.sysbench or sysbench_path() is None or device.type == "cuda":
            return pd.DataFrame()  # sysbench measures host memory: no comparison for a GPU's bandwidth
        block = stream_array_bytes(params.stream_array_mib, "cpu")
        configs = [{"threads": t, "block_bytes": block} for t in threads]
        cols = ["threads", "block_bytes"]

        def measure(c):
            return measure_sysbench([c["threads"]], c["block_bytes"], repeats=params.sysbench_repeats,
                                    total_bytes=int(params.sysbench_total_gib * 2**30))
    else:
        raise ValueError(f"unknown measurement {name!r} of {NOTEBOOK}")
    table = ResultTable(NOTEBOOK, name, cols, params.model_dump())
    return table.sweep(configs, lambda c: [{**r, "device": device.type} for r in measure(c)], desc=name,
                       oom_metric_columns=["seconds"])


def write_limits(params, device: torch.device, bandwidth, gemm, transfer) -> pd.DataFrame:
    """Derive the limits (:func:`summarize_limits`) from the raw tables of this run and write them to
    ``results/00-hardware/limits`` (replacing the limits of an earlier run with other parameters)."""

    def ok(df):
        return df[df["status"] == "ok"] if df is not None and not df.empty and "status" in df else df

    rows = summarize_limits(ok(bandwidth), ok(gemm), ok(transfer), device.type)
    # derived, not measured: always rewritten from this run's raw tables, never resumed
    for ext in ("parquet", "csv", "json"):
        (paths.results_dir(NOTEBOOK) / f"limits.{ext}").unlink(missing_ok=True)
    table = ResultTable(NOTEBOOK, "limits", ["device", "limit", "threads"], params.model_dump())
    table.add(rows)
    return table.frame()


def describe_machine() -> pd.DataFrame:
    """The hardware probe (:func:`studylib.machine.probe`) as a two-column table for display."""
    info = machine.probe()
    rows = []
    for k, v in info.items():
        if k == "versions":
            v = ", ".join(f"{a} {b}" for a, b in v.items() if b)
        elif k == "gpus":
            v = "; ".join(f"{g['name']} ({g['memory_bytes'] / 2**30:.0f} GiB, cc {g['capability']}, driver "
                          f"{g['driver']})" for g in v) or "none"
        elif k.endswith("_bytes"):
            v = f"{v / 2**30:.1f} GiB"
        rows.append({"property": k, "value": str(v)})
    llc = last_level_cache_bytes()
    rows.append({"property": "last_level_cache", "value": f"{llc / 2**20:.0f} MiB" if llc else "unknown"})
    return pd.DataFrame(rows)
