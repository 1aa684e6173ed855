"""The device check: one short run that exercises every GPU path of the suite and says pass, fail or skip.

``python -m studylib device-check --out DIR`` (also ``make device-check``) runs, in this order:

==========================  =====================================================================
``device_probe``            versions, the device, a small computation on it checked against the CPU
``stage_timer_vs_events``   :class:`studylib.timing.StageTimer` (device-synchronised ``perf_counter``)
                            against CUDA events around the same GEMM workload (CUDA only)
``peak_memory``             :func:`studylib.timing.peak_memory_bytes` on a known allocation pattern
                            (CUDA allocator statistics; on CPU the resident-set peak)
``gemm_flops``              00-hardware's ``measure_gemm`` (fp32; fp16 on CUDA), results checked against
                            float64, its timing against CUDA events
``stream_bandwidth``        00-hardware's ``measure_bandwidth`` (STREAM copy and triad), the triad's
                            result checked, its timing against CUDA events
``host_device_copies``      00-hardware's ``measure_transfer`` (pinned/pageable, both directions; CUDA only)
``op_microbenchmarks``      03's operation registry, every operation in fp32 and fp16 (CPU: fp32) at one small size:
                            each implementation timed by 03's ``measure_config``, PyG vs native outputs compared
``hgnn_stage_timing``       01's PyG RGCN, RGAT and HAN on a synthetic ACM-like graph: stage and phase times
``hgnn_kernel_classes``     the same models under ``torch.profiler``: :func:`studylib.timing.kernel_class_breakdown`
                            against the profiler's own kernel total
``instrumentation_overhead``  01's ``measure_overhead``: training step with and without an active StageTimer
==========================  =====================================================================

Every check records ``status`` (``pass``/``fail``/``skip``), a one-line ``reason`` and its ``numbers``. A
check's criterion is fixed in this module (the constants below) before anything is measured. Results are
written to ``DIR/device_check.json`` after every check (a crash or a kill leaves the checks done so far, and
the one that was running marked ``running``) and a one-line-per-check ``DIR/device_check.txt`` at the end.
Without a GPU the same checks run on the CPU at smaller sizes and the summary says so.

What it needs besides torch, torch_geometric and numpy: pandas (kernel-class tables, the study modules),
psutil, pydantic and PyYAML (imported by the command line and the study modules); no DGL, papermill or
plotting library.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import torch

PASS, FAIL, SKIP, RUNNING = "pass", "fail", "skip", "running"
JSON_NAME = "device_check.json"
TEXT_NAME = "device_check.txt"

#: A synchronised stage timer encloses the GPU work between the CUDA events recorded inside it, so it may
#: exceed the events' time only by launch and wake-up latency: the median excess must stay within
#: ``max(TIMER_REL_TOL * event time, TIMER_ABS_TOL_S)``; and no sample may be shorter than its events'
#: time by more than the events' resolution (:data:`EVENT_RESOLUTION_S`).
TIMER_REL_TOL = 0.05
TIMER_ABS_TOL_S = 5e-4
EVENT_RESOLUTION_S = 2e-6
#: ``torch.utils.benchmark`` times (GEMM, triad) against CUDA events over the same call: relative gap allowed.
BENCHMARK_VS_EVENTS_TOL = 0.15
#: CUDA peak memory: allocator statistics are exact up to 512-byte rounding; allowed relative gap.
CUDA_PEAK_TOL = 0.01
#: CPU peak memory (resident-set high-water mark, page granular, other threads allocate too): the measured
#: peak must lie in ``[CPU_PEAK_LOW * expected, CPU_PEAK_HIGH * expected + CPU_PEAK_SLACK]``.
CPU_PEAK_LOW, CPU_PEAK_HIGH, CPU_PEAK_SLACK = 0.9, 1.1, 16 * 2**20
#: Plausible ranges (SI units per second) outside which a throughput means a broken timer or kernel.
GEMM_FLOPS_RANGE = {"cuda": (1e11, 1e16), "cpu": (1e7, 1e14)}
BANDWIDTH_RANGE = {"cuda": (1e10, 3e13), "cpu": (1e8, 5e12)}
COPY_RANGE = (1e8, 2e12)
#: Output agreement of a PyG implementation with the primary native one: ``|a - b| <= atol * scale + rtol * |b|``
#: with ``scale = max(1, max |b|)``.
OP_TOLERANCE = {torch.float32: (1e-3, 1e-3), torch.float16: (5e-2, 5e-2)}
#: Kernel classes: the breakdown's device total against the profiler's kernel total (CUDA), or its CPU self
#: time against the wall time of the profiled steps (CPU).
KERNEL_TOTAL_TOL = 0.05
#: At most this share of the profiled time may fall in kernel class ``other`` (unclassified ops).
MAX_OTHER_SHARE = 0.5
#: The regions of a step (stages, loss, backward, update) are disjoint parts of it: in every step their sum may
#: exceed the step by at most ``STEP_COVER_SLACK`` (clock reads), and the median over steps must cover at least
#: ``MIN_STEP_COVER`` of it (the rest is untimed Python between regions, and on a busy machine, preemption).
MIN_STEP_COVER, STEP_COVER_SLACK = 0.25, 0.05
#: Instrumented / plain step time. Synchronising at region boundaries can at most remove the overlap of
#: host and device work, which bounds the slowdown by 2x; above that the instrumentation itself is at fault.
#: The study's goal (<= 5%) is reported, not required, at these small sizes.
MAX_OVERHEAD_RATIO = 2.0
OVERHEAD_GOAL = 0.05
#: Default wall-clock limit of the whole run, seconds (``--time-limit``).
DEFAULT_TIME_LIMIT_S = 420.0


@dataclass(frozen=True)
class Budget:
    """Sizes of one run. ``cuda`` fits about three minutes on one GPU; ``cpu`` about two minutes on two
    cores; ``tiny`` is what the test suite runs."""

    name: str
    timer_n: int            # GEMM size of the stage-timer workload
    timer_mms: int          # GEMMs per timed region
    timer_repeats: int
    peak_bytes: int         # the known allocation of the peak-memory check
    gemm_n: int
    gemm_dtypes: tuple[str, ...]
    stream_mib: float       # per STREAM array; 0 = the study's rule (4x the last-level cache, >= 512 MiB on GPUs)
    transfer_mib: int
    rounds: int
    min_run_time: float
    op_size: int
    op_dtypes: tuple[str, ...]
    graph_scale: float      # synthetic ACM-like graph: node counts x this
    hidden_dim: int
    warmup_steps: int
    repeat_steps: int
    profile_steps: int
    overhead_models: tuple[str, ...]
    overhead_rounds: int
    overhead_min_run_time: float


BUDGETS = {
    "cuda": Budget("cuda", timer_n=4096, timer_mms=4, timer_repeats=10, peak_bytes=256 * 2**20, gemm_n=4096,
                   gemm_dtypes=("float32", "float16"), stream_mib=0, transfer_mib=256, rounds=2, min_run_time=0.2,
                   op_size=2**20, op_dtypes=("float32", "float16"), graph_scale=2.0, hidden_dim=64, warmup_steps=2,
                   repeat_steps=5, profile_steps=2, overhead_models=("rgcn", "rgat", "han"), overhead_rounds=3,
                   overhead_min_run_time=0.3),
    "cpu": Budget("cpu", timer_n=512, timer_mms=2, timer_repeats=5, peak_bytes=64 * 2**20, gemm_n=512,
                  gemm_dtypes=("float32",), stream_mib=32, transfer_mib=16, rounds=1, min_run_time=0.05,
                  op_size=2**12, op_dtypes=("float32",), graph_scale=0.05, hidden_dim=16, warmup_steps=1,
                  repeat_steps=3, profile_steps=1, overhead_models=("rgcn",), overhead_rounds=3,
                  overhead_min_run_time=0.1),
    "tiny": Budget("tiny", timer_n=128, timer_mms=1, timer_repeats=3, peak_bytes=32 * 2**20, gemm_n=128,
                   gemm_dtypes=("float32",), stream_mib=8, transfer_mib=8, rounds=1, min_run_time=0.01,
                   op_size=2**10, op_dtypes=("float32",), graph_scale=0.02, hidden_dim=8, warmup_steps=1,
                   repeat_steps=2, profile_steps=1, overhead_models=("rgcn",), overhead_rounds=3,
                   overhead_min_run_time=0.02),
}


@dataclass
class Context:
    """What every check sees: the device, the budget, and the outcome of the device probe."""

    device: torch.device
    budget: Budget
    threads: int
    probe_ok: bool = True

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


class Result(dict):
    """One check's outcome: ``{"status", "reason", "numbers"}``."""


def _result(status: str, reason: str, numbers: dict | None = None) -> Result:
    return Result(status=status, reason=reason, numbers=numbers or {})


def _verdict(failures: list[str], numbers: dict, ok: str) -> Result:
    """``fail`` with the failures joined when there are any, else ``pass`` with ``ok``."""
    if failures:
        return _result(FAIL, "; ".join(failures), numbers)
    return _result(PASS, ok, numbers)


# --------------------------------------------------------------------------------------------
# The study code the checks run (imported when a check runs: each check reports its own failure)
# --------------------------------------------------------------------------------------------

def machine_limits_module():
    """00-hardware's measurement module."""
    return importlib.import_module("studylib.studies.hardware.measure")


def ops_module():
    """03's operation registry."""
    return importlib.import_module("studylib.studies.op_microbenchmarks.ops")


def op_study_module():
    """03's measurement module."""
    return importlib.import_module("studylib.studies.op_microbenchmarks.measure")


def hgnn_study_module():
    """01's measurement module."""
    return importlib.import_module("studylib.studies.hgnn_training.measure")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def event_seconds(fn: Callable[[], object], device: torch.device, reps: int = 10) -> float:
    """Seconds per call of ``fn`` between two CUDA events around ``reps`` back-to-back calls (after one
    untimed call). Raises ``RuntimeError`` on a non-CUDA device."""
    if device.type != "cuda":
        raise RuntimeError("CUDA events need a CUDA device")
    fn()
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / reps


def _median(xs) -> float:
    xs = [float(x) for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def _in_range(value: float, lo: float, hi: float) -> bool:
    return math.isfinite(value) and lo <= value <= hi


def _fmt_si(x: float, unit: str) -> str:
    if not math.isfinite(x):
        return f"nan {unit}"
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _version(module: str) -> str | None:
    try:
        from importlib import metadata

        return metadata.version(module)
    except Exception:  # noqa: BLE001 -- not installed, or no metadata
        return None


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------

def check_device_probe(ctx: Context) -> Result:
    """Versions and the device; a 64x64 fp32 product on the device must match the CPU's."""
    import numpy as np

    numbers = {
        "python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "numpy": np.__version__, "torch_geometric": _version("torch_geometric"),
        "dgl_installed": importlib.util.find_spec("dgl") is not None, "cuda_available": torch.cuda.is_available(),
        "device": ctx.device.type, "cpu_count": os.cpu_count(), "torch_threads": ctx.threads,
        "machine": platform.machine(), "platform": platform.platform(),
    }
    if ctx.cuda:
        if not torch.cuda.is_available():
            return _result(FAIL, "device cuda asked for, but torch sees no CUDA device", numbers)
        p = torch.cuda.get_device_properties(ctx.device)
        numbers.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}", gpu_memory_bytes=int(p.total_memory),
                       multiprocessors=p.multi_processor_count, gpu_count=torch.cuda.device_count(),
                       cudnn=torch.backends.cudnn.version(),
                       l2_cache_bytes=int(getattr(p, "L2_cache_size", 0) or 0))
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(64, 64, generator=g), torch.rand(64, 64, generator=g)
    ref = (a.double() @ b.double())
    got = (a.to(ctx.device) @ b.to(ctx.device)).cpu().double()
    _sync(ctx.device)
    err = float((got - ref).abs().max())
    numbers["max_abs_error_64x64"] = err
    where = numbers.get("gpu", f"CPU ({ctx.threads} threads)")
    if not err <= 1e-4:
        return _result(FAIL, f"a 64x64 product on {where} differs from float64 by {err:.2e}", numbers)
    dgl = "DGL installed" if numbers["dgl_installed"] else "no DGL"
    return _result(PASS, f"{where}; torch {torch.__version__}, PyG {numbers['torch_geometric']}, "
                         f"numpy {np.__version__}, {dgl}", numbers)


def check_stage_timer_vs_events(ctx: Context) -> Result:
    """StageTimer regions around a GEMM workload against CUDA events recorded inside the same regions."""
    if not ctx.cuda:
        return _result(SKIP, "no CUDA device: CUDA events exist only on GPUs (the timers' CPU path is "
                             "exercised by hgnn_stage_timing)")
    from studylib.timing import StageTimer, stage

    dev, b = ctx.device, ctx.budget
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(b.timer_n, b.timer_n, device=dev, generator=g)
    y = torch.rand(b.timer_n, b.timer_n, device=dev, generator=g)
    out = torch.empty_like(x)

    def work():
        for _ in range(b.timer_mms):
            torch.mm(x, y, out=out)

    work()
    _sync(dev)

    def timed(sync: bool) -> tuple[list[float], list[float]]:
        timer, events = StageTimer(device=dev, sync=sync), []
        with timer.activate():
            for i in range(b.timer_repeats):
                with timer.step(i), stage("device_check_workload"):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    work()
                    e.record()
                    events.append((s, e))
        _sync(dev)
        t = [r["seconds"] for r in timer.records if r["kind"] == "stage"]
        return t, [s.elapsed_time(e) / 1e3 for s, e in events]

    timer_s, event_s = timed(sync=True)
    unsync_s, unsync_event_s = timed(sync=False)
    excess = [t - e for t, e in zip(timer_s, event_s)]
    med_event, med_excess = _median(event_s), _median(excess)
    allowed = max(TIMER_REL_TOL * med_event, TIMER_ABS_TOL_S)
    numbers = {"workload": f"{b.timer_mms} x mm {b.timer_n}x{b.timer_n} fp32", "timer_s": timer_s,
               "event_s": event_s, "median_event_s": med_event, "median_excess_s": med_excess,
               "allowed_excess_s": allowed, "min_excess_s": min(excess),
               "unsynchronised_timer_s": unsync_s, "unsynchronised_over_events": _median(unsync_s) / _median(unsync_event_s)}
    failures = []
    if len(timer_s) != b.timer_repeats:
        failures.append(f"StageTimer recorded {len(timer_s)} regions for {b.timer_repeats} entered")
    if min(excess, default=0.0) < -EVENT_RESOLUTION_S:
        failures.append(f"a synchronised region ({min(timer_s) * 1e3:.3f} ms) was shorter than the GPU work inside "
                        f"it (events: {max(event_s) * 1e3:.3f} ms): the timer does not wait for the device")
    if not abs(med_excess) <= allowed:
        failures.append(f"median timer - events = {med_excess * 1e3:.3f} ms, over the allowed {allowed * 1e3:.3f} ms")
    return _verdict(failures, numbers, f"timer - events = {med_excess * 1e6:.0f} us on {med_event * 1e3:.2f} ms "
                                       f"regions (allowed {allowed * 1e6:.0f} us); unsynchronised timer reads "
                                       f"{numbers['unsynchronised_over_events']:.2f}x the events")


def check_peak_memory(ctx: Context) -> Result:
    """timing.peak_memory_bytes on: allocate N, allocate N, free the first, allocate N/2 -> peak 2N."""
    from studylib import timing

    dev, n = ctx.device, ctx.budget.peak_bytes

    def pattern():
        a = torch.empty(n, dtype=torch.uint8, device=dev).fill_(1)
        b = torch.empty(n, dtype=torch.uint8, device=dev).fill_(2)
        del a
        c = torch.empty(n // 2, dtype=torch.uint8, device=dev)
        return b, c

    expected = 2 * n
    if ctx.cuda:
        _sync(dev)
        before = torch.cuda.memory_allocated(dev)
    peak = timing.peak_memory_bytes(pattern, (), dev)
    numbers = {"expected_bytes": expected, "peak_bytes": peak, "mechanism":
               "torch.cuda.max_memory_allocated" if ctx.cuda else "VmHWM via /proc/self/clear_refs"}
    if peak is None:
        return _result(SKIP, "this kernel offers no resettable resident-set peak (/proc/self/clear_refs)", numbers)
    failures = []
    if ctx.cuda:
        _sync(dev)
        after = torch.cuda.memory_allocated(dev)
        numbers["leaked_bytes"] = int(after - before)
        if after != before:
            failures.append(f"{after - before} bytes still allocated after the call's outputs were dropped")
        if abs(peak - expected) > CUDA_PEAK_TOL * expected:
            failures.append(f"peak {peak:,} B, expected {expected:,} B (within {CUDA_PEAK_TOL:.0%})")
    else:
        lo, hi = CPU_PEAK_LOW * expected, CPU_PEAK_HIGH * expected + CPU_PEAK_SLACK
        if not lo <= peak <= hi:
            failures.append(f"peak {peak / 2**20:.1f} MiB outside [{lo / 2**20:.1f}, {hi / 2**20:.1f}] MiB")
    return _verdict(failures, numbers, f"peak {peak / 2**20:.1f} MiB for an expected {expected / 2**20:.0f} MiB "
                                       f"({numbers['mechanism']})")


def check_gemm_flops(ctx: Context) -> Result:
    """00-hardware's GEMM throughput per dtype; results against float64; timing against CUDA events."""
    ml = machine_limits_module()
    dev, b = ctx.device, ctx.budget
    lo, hi = GEMM_FLOPS_RANGE[dev.type]
    numbers, failures, parts = {}, [], []
    for name in b.gemm_dtypes:
        dt = _dtype(name)
        rows = ml.measure_gemm(b.gemm_n, dt, ctx.threads, device=dev, rounds=b.rounds, min_run_time=b.min_run_time)
        med_s = _median(r["seconds"] for r in rows)
        flops = 2.0 * b.gemm_n**3 / med_s
        g = torch.Generator().manual_seed(1)
        x, y = torch.rand(256, 256, generator=g), torch.rand(256, 256, generator=g)
        got = (x.to(dev, dt) @ y.to(dev, dt)).double().cpu()
        ref = x.to(dt).double() @ y.to(dt).double()
        rel = float(((got - ref).abs() / ref.abs().clamp_min(1e-3)).max())
        tol = 1e-4 if dt == torch.float32 else 1e-2
        entry = {"n": b.gemm_n, "blocks": len(rows), "median_s": med_s, "flops_per_s": flops,
                 "max_rel_error_256": rel}
        if ctx.cuda:
            xa = torch.rand(b.gemm_n, b.gemm_n, device=dev).to(dt)
            ya = torch.rand(b.gemm_n, b.gemm_n, device=dev).to(dt)
            c = torch.empty_like(xa)
            ev = event_seconds(lambda xa=xa, ya=ya, c=c: torch.mm(xa, ya, out=c), dev)
            entry["event_s"] = ev
            gap = abs(med_s - ev) / ev
            entry["benchmark_vs_events"] = gap
            if gap > BENCHMARK_VS_EVENTS_TOL:
                failures.append(f"{name}: benchmark {med_s * 1e3:.3f} ms vs events {ev * 1e3:.3f} ms per call")
            del xa, ya, c
        numbers[name] = entry
        if not _in_range(flops, lo, hi):
            failures.append(f"{name}: {_fmt_si(flops, 'FLOP/s')} outside the plausible [{_fmt_si(lo, '')}, "
                            f"{_fmt_si(hi, '')}]")
        if not rel <= tol:
            failures.append(f"{name}: 256x256 product off by {rel:.1e} relative (tolerance {tol:g})")
        parts.append(f"{name} {_fmt_si(flops, 'FLOP/s')}")
    return _verdict(failures, numbers, f"n={b.gemm_n}: " + ", ".join(parts))


def check_stream_bandwidth(ctx: Context) -> Result:
    """00-hardware's STREAM copy and triad; the triad's result checked; its timing against CUDA events."""
    ml = machine_limits_module()
    dev, b = ctx.device, ctx.budget
    nbytes = ml.stream_array_bytes(b.stream_mib, dev)
    rows = ml.measure_bandwidth(nbytes, ctx.threads, device=dev, kernels=("copy", "triad"), rounds=b.rounds,
                                min_run_time=b.min_run_time)
    numbers = {"array_bytes": nbytes, "threads": ctx.threads}
    failures = []
    lo, hi = BANDWIDTH_RANGE[dev.type]
    for k in ("copy", "triad"):
        bw = _median(r["bytes_per_s"] for r in rows if r["kernel"] == k)
        numbers[f"{k}_bytes_per_s"] = bw
        if not _in_range(bw, lo, hi):
            failures.append(f"{k}: {_fmt_si(bw, 'B/s')} outside the plausible [{_fmt_si(lo, '')}, {_fmt_si(hi, '')}]")
    n = nbytes // 4
    a = torch.zeros(n, device=dev)
    bb = torch.full((n,), 2.0, device=dev)
    c = torch.ones(n, device=dev)
    triad = ml.stream_kernels(a, bb, c)["triad"][0]
    triad()
    _sync(dev)
    expected = 2.0 + ml.STREAM_SCALAR * 1.0
    wrong = int((a != expected).sum())
    numbers["triad_wrong_elements"] = wrong
    if wrong:
        failures.append(f"triad wrote {wrong} wrong elements (expected {expected} everywhere)")
    if ctx.cuda:
        ev = event_seconds(triad, dev)
        bench_s = _median(r["seconds"] for r in rows if r["kernel"] == "triad")
        gap = abs(bench_s - ev) / ev
        numbers.update(triad_event_s=ev, triad_benchmark_s=bench_s, benchmark_vs_events=gap)
        if gap > BENCHMARK_VS_EVENTS_TOL:
            failures.append(f"triad: benchmark {bench_s * 1e3:.3f} ms vs events {ev * 1e3:.3f} ms per call")
    del a, bb, c
    return _verdict(failures, numbers, f"{nbytes / 2**20:.0f} MiB arrays: copy "
                                       f"{_fmt_si(numbers['copy_bytes_per_s'], 'B/s')}, triad "
                                       f"{_fmt_si(numbers['triad_bytes_per_s'], 'B/s')}")


def check_host_device_copies(ctx: Context) -> Result:
    """00-hardware's host/device copies (pinned and pageable, both directions); a round trip keeps the data."""
    if not ctx.cuda:
        return _result(SKIP, "no CUDA device: host/device copies need a GPU")
    ml = machine_limits_module()
    dev, b = ctx.device, ctx.budget
    rows = ml.measure_transfer(b.transfer_mib * 2**20, device=dev, rounds=b.rounds, min_run_time=b.min_run_time)
    numbers, failures, parts = {"bytes": b.transfer_mib * 2**20}, [], []
    for direction in ("h2d", "d2h"):
        for pinned in (True, False):
            key = f"{direction}_{'pinned' if pinned else 'pageable'}_bytes_per_s"
            bw = _median(r["bytes_per_s"] for r in rows if r["direction"] == direction and r["pinned"] == pinned)
            numbers[key] = bw
            if not _in_range(bw, *COPY_RANGE):
                failures.append(f"{key}: {_fmt_si(bw, 'B/s')} outside the plausible range")
            if pinned:
                parts.append(f"{direction} pinned {_fmt_si(bw, 'B/s')}")
    host = torch.randint(0, 2**31 - 1, (2**20,), dtype=torch.int32).pin_memory()
    back = torch.empty_like(host).pin_memory()
    back.copy_(host.to(dev, non_blocking=True), non_blocking=True)
    _sync(dev)
    if not torch.equal(host, back):
        failures.append("a pinned host -> device -> host round trip changed the data")
    return _verdict(failures, numbers, f"{b.transfer_mib} MiB: " + ", ".join(parts))


def _agreement(ops, op, inp, dtype) -> tuple[bool, float, str]:
    """Whether every available implementation's output matches the primary native one (see
    :data:`OP_TOLERANCE`); the worst normalised error and the implementation it came from."""
    native = op.primary(ops.NATIVE)
    ref = ops.canonical(native.run(native.state(inp)), inp, op)
    rtol, atol = OP_TOLERANCE.get(dtype, (5e-2, 5e-2))
    worst, who, ok = 0.0, "", True

    def flat(x):
        return [t for t in (x if isinstance(x, tuple) else (x,))]

    for im in op.implementations():
        if im is native:
            continue
        out = ops.canonical(im.run(im.state(inp)), inp, op)
        for r, o in zip(flat(ref), flat(out)):
            if r.shape != o.shape:
                return False, float("inf"), f"{im.name} shape {tuple(o.shape)} vs {tuple(r.shape)}"
            if not r.is_floating_point():
                if not torch.equal(r, o):
                    return False, float("inf"), f"{im.name} (integer output differs)"
                continue
            scale = max(1.0, float(r.abs().max())) if r.numel() else 1.0
            err = float(((o - r).abs() / (atol * scale + rtol * r.abs())).max()) if r.numel() else 0.0
            if err > worst:
                worst, who = err, im.name
            ok = ok and err <= 1.0
    return ok, worst, who


def check_op_microbenchmarks(ctx: Context) -> Result:
    """Every operation of 03's registry in each dtype at one small size and sparsity 0.5: each
    implementation timed through 03's ``measure_config``; PyG outputs against the native one."""
    ops, om = ops_module(), op_study_module()
    dev, b = ctx.device, ctx.budget
    params = SimpleNamespace(feature_dim=32, gat_heads=4, seed=0, max_memory_fraction=0.8, rounds=1,
                             min_run_time=b.min_run_time, peak_memory=True, implementations="all")
    numbers: dict = {"size": b.op_size, "sparsity": 0.5, "ops": {}}
    failures, counts = [], {"ok": 0, "unsupported": 0, "oom": 0, "error": 0, "disagree": 0}
    for dname in b.op_dtypes:
        dt = _dtype(dname)
        for name in ops.operation_names():
            op = ops.get(name)
            key = f"{name}/{dname}"
            if dt not in op.dtypes:
                numbers["ops"][key] = {"status": "unsupported", "error": f"registry lists no {dname} for {name}"}
                counts["unsupported"] += 1
                continue
            config = {"op": name, "dtype": dname, "size": b.op_size, "sparsity": 0.5, "reduce_factor": 4,
                      "index_distribution": "uniform"}
            try:
                rows = om.measure_config(config, params, dev, ctx.threads)
            except Exception as err:  # noqa: BLE001 -- recorded: the check reports every operation
                numbers["ops"][key] = {"status": "error", "error": f"{type(err).__name__}: {str(err)[:300]}"}
                counts["error"] += 1
                failures.append(f"{key}: {type(err).__name__}")
                continue
            impls = {}
            for r in rows:
                e = impls.setdefault(r["impl"], {"role": r["role"], "status": r["status"], "times": []})
                if r["status"] == "ok":
                    e["times"].append(r["seconds"])
                else:
                    e["error"] = r.get("error")
            for e in impls.values():
                e["median_s"] = _median(e.pop("times")) if e["status"] == "ok" else None
            entry = {"impls": impls}
            statuses = {e["status"] for e in impls.values()}
            if "oom" in statuses:
                counts["oom"] += 1
                failures.append(f"{key}: out of memory at size {b.op_size}")
            native = op.primary(ops.NATIVE)
            if native is None or impls.get(native.name, {}).get("status") != "ok":
                if dt == torch.float32:
                    failures.append(f"{key}: the native implementation did not run")
                entry["status"] = "unsupported"
                counts["unsupported"] += 1
                numbers["ops"][key] = entry
                continue
            try:
                inp = ops.build_inputs(op, b.op_size, 0.5, reduce_factor=4, dtype=dt, device=dev, feature_dim=32,
                                       heads=4, seed=0)
                agree, worst, who = _agreement(ops, op, inp, dt)
                del inp
            except Exception as err:  # noqa: BLE001 -- an implementation that cannot run is "unsupported" above
                agree, worst, who = None, float("nan"), f"{type(err).__name__}: {str(err)[:200]}"
            entry.update(agree=agree, worst_error=worst, worst_impl=who)
            nat = native
            for role in (ops.PYG, ops.PYG_UTILS):  # PyG's extension kernels, else its torch-only utilities
                pyg = op.primary(role)
                if pyg is not None and impls.get(pyg.name, {}).get("median_s") and impls[nat.name]["median_s"]:
                    entry[f"{role.replace('-', '_')}_over_native"] = impls[pyg.name]["median_s"] / impls[nat.name]["median_s"]
            if agree is False:
                counts["disagree"] += 1
                failures.append(f"{key}: {who} differs from {nat.name} (normalised error {worst:.2g})")
            entry["status"] = "ok"
            counts["ok"] += 1
            numbers["ops"][key] = entry
    numbers["counts"] = counts
    unsupported = sorted(k for k, v in numbers["ops"].items() if v.get("status") == "unsupported")
    numbers["unsupported"] = unsupported
    total = len(numbers["ops"])
    return _verdict(failures, numbers, f"{counts['ok']}/{total} operation-dtype pairs ran and agree "
                                       f"({', '.join(b.op_dtypes)}); {counts['unsupported']} unsupported")


def _hgnn_params(b: Budget) -> SimpleNamespace:
    """01's parameters at this budget's sizes; the learning rate is 01's default."""
    model = importlib.import_module("studylib.studies.hgnn_training.params").HgnnTrainingParams
    lr = model.model_fields["lr"].default
    return SimpleNamespace(hidden_dim=b.hidden_dim, num_layers=2, num_heads=4, seed=0, lr=lr,
                           warmup_steps=b.warmup_steps, repeat_steps=b.repeat_steps, profile_steps=b.profile_steps,
                           han_max_metapath_edges=0)


_GRAPHS: dict = {}


def _graph(b: Budget):
    """The synthetic ACM-like graph of this budget (built once per run)."""
    if b.name not in _GRAPHS:
        from studylib.data.synthetic import synthetic_hetero

        _GRAPHS[b.name] = synthetic_hetero("acm", scale=b.graph_scale, seed=0)
    return _GRAPHS[b.name]


MODELS = ("rgcn", "rgat", "han")


def check_hgnn_stage_timing(ctx: Context) -> Result:
    """01's ``measure_stage_times`` for PyG RGCN, RGAT and HAN: every stage timed, the step's regions
    cover the step, the loss finite and falling."""
    from studylib import timing

    ht = hgnn_study_module()
    graph, params = _graph(ctx.budget), _hgnn_params(ctx.budget)
    numbers: dict = {"graph": {t: int(n) for t, n in graph.num_nodes.items()},
                     "edges": int(sum(s.numel() for s, _ in graph.edges.values()))}
    failures, parts = [], []
    regions = ht.STEP_REGIONS
    for model in MODELS:
        rows = ht.measure_stage_times(model, "pyg", "synthetic", graph, params, ctx.device)
        steps: dict[int, dict[str, float]] = {}
        for r in rows:
            if r["kind"] in ("stage", "phase", "step"):
                d = steps.setdefault(r["step"], {})
                d[r["region"]] = d.get(r["region"], 0.0) + r["seconds"]
        build = [r["seconds"] for r in rows if r["kind"] == "build"]
        losses = [r["loss"] for r in rows if r["kind"] == "loss"]
        cover = [sum(s.get(k, 0.0) for k in regions) / s[timing.STEP_TOTAL] for s in steps.values()]
        med = {k: _median(s.get(k, float("nan")) for s in steps.values()) for k in (*regions, timing.STEP_TOTAL)}
        mem = {r["region"]: (r["peak_bytes"], r["baseline_bytes"]) for r in rows if r["kind"] == "memory"}
        numbers[model] = {"median_s": med, "build_median_s": _median(build), "cover": cover, "losses": losses,
                          "memory": {k: {"peak_bytes": p, "baseline_bytes": bl} for k, (p, bl) in mem.items()}}
        for k in (timing.FEATURE_PROJECTION, timing.NEIGHBOR_AGGREGATION, timing.SEMANTIC_FUSION):
            if not med[k] > 0:
                failures.append(f"{model}: stage {k} not timed")
        if not _median(build) > 0:
            failures.append(f"{model}: semantic graph build not timed")
        if not (cover and max(cover) <= 1 + STEP_COVER_SLACK and _median(cover) >= MIN_STEP_COVER):
            failures.append(f"{model}: step regions cover {min(cover, default=0):.2f}-{max(cover, default=0):.2f} of "
                            f"the step (median at least {MIN_STEP_COVER}, each at most {1 + STEP_COVER_SLACK})")
        if not (losses and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]):
            failures.append(f"{model}: loss not finite or not falling over the timed steps ({losses})")
        if ctx.cuda and FORWARD_PEAK_KEY in mem and not mem[FORWARD_PEAK_KEY][0] > mem[FORWARD_PEAK_KEY][1]:
            failures.append(f"{model}: forward peak memory {mem[FORWARD_PEAK_KEY][0]} B not above its baseline")
        parts.append(f"{model} {med[timing.STEP_TOTAL] * 1e3:.1f} ms/step (aggregation "
                     f"{med[timing.NEIGHBOR_AGGREGATION] / med[timing.STEP_TOTAL]:.0%})")
    return _verdict(failures, numbers, "PyG " + ", ".join(parts))


FORWARD_PEAK_KEY = "forward"


#: Name prefixes of ``record_function`` ranges: on CUDA the profiler also draws them on the device
#: timeline (``gpu_user_annotation`` events spanning the kernels launched inside them), which are not
#: device work of their own.
ANNOTATION_PREFIXES = ("stage::", "phase::", "ProfilerStep")


def _device_kernel_us(prof) -> tuple[float, float]:
    """``(work_us, annotation_us)`` of a finished profile's device-side events: microseconds of
    device work (kernels, memcpy, memset), and of user-annotation ranges drawn on the device
    timeline (left out of the work: they span kernels that are counted already)."""
    from torch.autograd import DeviceType

    work = annotations = 0.0
    for e in prof.events():
        if getattr(e, "device_type", DeviceType.CPU) == DeviceType.CPU:
            continue
        us = float(e.time_range.elapsed_us())
        if getattr(e, "is_user_annotation", False) or e.name.startswith(ANNOTATION_PREFIXES):
            annotations += us
        else:
            work += us
    return work, annotations


def check_hgnn_kernel_classes(ctx: Context) -> Result:
    """``timing.kernel_class_breakdown`` of profiled PyG training steps: its total against the profiler's
    device-kernel total (CUDA) or the steps' wall time (CPU); GEMM and aggregation present; few
    unclassified ops."""
    from torch.profiler import ProfilerActivity, profile

    from studylib import timing

    ht = hgnn_study_module()
    graph, params, dev = _graph(ctx.budget), _hgnn_params(ctx.budget), ctx.device
    numbers, failures, parts = {}, [], []
    for model in MODELS:
        s = ht.build_setup(model, "pyg", graph, params, dev)
        for _ in range(max(1, params.warmup_steps)):
            ht.train_step(s)
        _sync(dev)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.cuda else [])
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            for _ in range(params.profile_steps):
                ht.train_step(s)
            _sync(dev)
            wall_us = (time.perf_counter() - t0) * 1e6
        df = timing.kernel_class_breakdown(prof, dev)
        total = float(df["self_us"].sum())
        by_class = {k: float(v) for k, v in df.groupby("kernel_class")["self_us"].sum().items()}
        by_stage = {k: float(v) for k, v in df.groupby("stage")["self_us"].sum().items()}
        entry = {"total_us": total, "wall_us": wall_us, "by_class_us": by_class, "by_stage_us": by_stage,
                 "top_ops": df.head(8)[["stage", "kernel_class", "op", "self_us"]].to_dict("records")}
        if ctx.cuda:
            ref, annotation_us = _device_kernel_us(prof)
            entry["profiler_device_us"] = ref
            entry["profiler_annotation_us"] = annotation_us
            if not (ref > 0 and abs(total - ref) <= KERNEL_TOTAL_TOL * ref):
                failures.append(f"{model}: breakdown {total:.0f} us vs the profiler's device total {ref:.0f} us "
                                f"(ratio {total / ref if ref else float('inf'):.2f})")
        elif not 0 < total <= (1 + KERNEL_TOTAL_TOL) * wall_us:
            failures.append(f"{model}: breakdown {total:.0f} us of CPU self time in {wall_us:.0f} us of wall time")
        other = by_class.get(timing.OTHER, 0.0) / total if total else 1.0
        entry["other_share"] = other
        if other > MAX_OTHER_SHARE:
            failures.append(f"{model}: {other:.0%} of the time unclassified")
        if not by_class.get(timing.GEMM, 0) > 0:
            failures.append(f"{model}: no GEMM time")
        for st in (timing.FEATURE_PROJECTION, timing.NEIGHBOR_AGGREGATION):
            if not by_stage.get(st, 0) > 0:
                failures.append(f"{model}: no time attributed to stage {st}")
        numbers[model] = entry
        top = max(by_class, key=by_class.get) if by_class else "-"
        parts.append(f"{model} top {top} {by_class.get(top, 0) / total if total else 0:.0%}")
        del s, prof
    return _verdict(failures, numbers, ("device kernels" if ctx.cuda else "CPU self time") + ": " + ", ".join(parts))


def check_instrumentation_overhead(ctx: Context) -> Result:
    """01's ``measure_overhead``: training step with an active StageTimer over the plain step (median of
    the per-round ratios of medians)."""
    ht = hgnn_study_module()
    b = ctx.budget
    graph, params = _graph(b), _hgnn_params(b)
    numbers, failures, parts = {"goal": OVERHEAD_GOAL, "max_ratio": MAX_OVERHEAD_RATIO}, [], []
    for model in b.overhead_models:
        rows = ht.measure_overhead(model, "pyg", "synthetic", graph, params, ctx.device, rounds=b.overhead_rounds,
                                   min_run_time=b.overhead_min_run_time)
        ratios = []
        for r in range(b.overhead_rounds):
            plain = _median(x["seconds"] for x in rows if x["round"] == r and x["variant"] == "plain")
            inst = _median(x["seconds"] for x in rows if x["round"] == r and x["variant"] == "instrumented")
            ratios.append(inst / plain)
        ratio = _median(ratios)
        numbers[model] = {"ratios": ratios, "ratio": ratio, "goal_met": ratio - 1 <= OVERHEAD_GOAL,
                          "plain_median_s": _median(x["seconds"] for x in rows if x["variant"] == "plain")}
        if not (math.isfinite(ratio) and ratio <= MAX_OVERHEAD_RATIO):
            failures.append(f"{model}: instrumented step {ratio:.2f}x the plain one (limit {MAX_OVERHEAD_RATIO}x)")
        parts.append(f"{model} {ratio - 1:+.1%}")
    met = all(numbers[m]["goal_met"] for m in b.overhead_models)
    return _verdict(failures, numbers, "overhead " + ", ".join(parts) +
                    (f" (goal <= {OVERHEAD_GOAL:.0%} met)" if met else f" (goal <= {OVERHEAD_GOAL:.0%} not met at this size)"))


#: The checks in run order: name -> function.
CHECKS: dict[str, Callable[[Context], Result]] = {
    "device_probe": check_device_probe,
    "stage_timer_vs_events": check_stage_timer_vs_events,
    "peak_memory": check_peak_memory,
    "gemm_flops": check_gemm_flops,
    "stream_bandwidth": check_stream_bandwidth,
    "host_device_copies": check_host_device_copies,
    "op_microbenchmarks": check_op_microbenchmarks,
    "hgnn_stage_timing": check_hgnn_stage_timing,
    "hgnn_kernel_classes": check_hgnn_kernel_classes,
    "instrumentation_overhead": check_instrumentation_overhead,
}


# --------------------------------------------------------------------------------------------
# Running, recording, summarising
# --------------------------------------------------------------------------------------------

def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, bool | int | float | str) or x is None:
        return x
    if hasattr(x, "item"):
        return _jsonable(x.item())
    return str(x)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu``/``cuda``/``cuda:N`` as given.
    Raises ``ValueError`` for another device type."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N] (got {device!r})")
    return dev


def summary_lines(report: dict) -> list[str]:
    """The text summary: a header naming the device, one line per check, a closing count line."""
    probe = next((c for c in report["checks"] if c["name"] == "device_probe"), {})
    nums = probe.get("numbers", {})
    if report["device"] == "cuda":
        head = f"device check on CUDA: {nums.get('gpu', '?')}"
    else:
        head = ("device check on CPU: no CUDA device, the checks ran on the CPU" if not report["cuda_available"]
                else "device check on CPU (asked for), the checks ran on the CPU")
    v = report["versions"]
    head += (f" (budget {report['budget']['name']}; python {v['python']}, torch {v['torch']}, PyG "
             f"{v['torch_geometric']}, numpy {v['numpy']}, {'DGL ' + v['dgl'] if v['dgl'] else 'no DGL'})")
    lines = [head]
    for c in report["checks"]:
        lines.append(f"{c['status'].upper():7s} {c['name']:26s} {c.get('seconds', 0):6.1f}s  {c['reason']}")
    s = report["counts"]
    lines.append(f"{s['pass']} passed, {s['fail']} failed, {s['skip']} skipped")
    return lines


class _Recorder:
    """Holds the report and rewrites the JSON after every change (so a crash leaves what was done)."""

    def __init__(self, out: Path, report: dict):
        self.out, self.report, self.lock = out, report, threading.Lock()

    def _counts(self) -> dict:
        counts = {PASS: 0, FAIL: 0, SKIP: 0}
        for c in self.report["checks"]:
            if c["status"] in counts:
                counts[c["status"]] += 1
            elif c["status"] == RUNNING:
                counts[FAIL] += 1
        return counts

    def save(self, final: bool = False) -> None:
        with self.lock:
            self.report["counts"] = self._counts()
            self.report["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
            self.report["complete"] = final
            self.report["exit_status"] = 1 if self.report["counts"][FAIL] else 0
            _write_atomic(self.out / JSON_NAME, json.dumps(_jsonable(self.report), indent=1))
            if final:
                _write_atomic(self.out / TEXT_NAME, "\n".join(summary_lines(self.report)) + "\n")


def run(out_dir: str | os.PathLike, *, device: str = "auto", budget: str | None = None,
        checks: list[str] | None = None, time_limit_s: float = DEFAULT_TIME_LIMIT_S, echo: bool = True) -> int:
    """Run the device check and write ``device_check.json`` and ``device_check.txt`` into ``out_dir``.

    Args:
        out_dir: folder for the two files (created).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        budget: ``cuda``, ``cpu`` or ``tiny`` (see :data:`BUDGETS`); default by device type.
        checks: names of :data:`CHECKS` to run (default all, in order).
        time_limit_s: wall-clock limit of the whole run; past it the running check is recorded as failed,
            both files are written and the process exits with status 3 (``os._exit``: a stuck device call
            cannot be interrupted otherwise). 0 = no limit.
        echo: print each check's line as it finishes.

    Returns the exit status: 0 when no check failed, 1 otherwise. Raises ``ValueError`` for an unknown
    check, budget or device.
    """
    dev = resolve_device(device)
    names = list(CHECKS) if not checks else list(checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(CHECKS)}")
    bname = budget or ("cuda" if dev.type == "cuda" else "cpu")
    if bname not in BUDGETS:
        raise ValueError(f"unknown budget {bname!r}; choose one of {', '.join(BUDGETS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import numpy as np

    ctx = Context(device=dev, budget=BUDGETS[bname], threads=torch.get_num_threads())
    report = {
        "schema": 1, "started_utc": datetime.now(UTC).isoformat(timespec="seconds"), "device": dev.type,
        "cuda_available": torch.cuda.is_available(), "budget": asdict(ctx.budget), "time_limit_s": time_limit_s,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torch_cuda": torch.version.cuda, "torch_geometric": _version("torch_geometric"),
                     "numpy": np.__version__, "dgl": _version("dgl") if importlib.util.find_spec("dgl") else None},
        "note": ("the checks ran on the GPU" if dev.type == "cuda" else
                 "no CUDA device: the checks ran on the CPU" if not torch.cuda.is_available()
                 else "device cpu asked for: the checks ran on the CPU"),
        "checks": [],
    }
    rec = _Recorder(out, report)
    rec.save()
    t_start = time.perf_counter()

    def on_time_limit():
        with contextlib.suppress(Exception):
            for c in report["checks"]:
                if c["status"] == RUNNING:
                    c.update(status=FAIL, reason=f"still running when the {time_limit_s:g} s time limit of the "
                                                 f"whole check was reached", seconds=time.perf_counter() - c["_t0"])
            for name in names:
                if not any(c["name"] == name for c in report["checks"]):
                    report["checks"].append({"name": name, "status": SKIP, "reason": "not reached before the time limit",
                                             "numbers": {}, "seconds": 0.0})
            rec.save(final=True)
            if echo:
                print("\n".join(summary_lines(report)[-2:]), flush=True)
        os._exit(3)

    watchdog = threading.Timer(time_limit_s, on_time_limit) if time_limit_s and time_limit_s > 0 else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    try:
        for name in names:
            entry = {"name": name, "status": RUNNING, "reason": "", "numbers": {}, "_t0": time.perf_counter()}
            report["checks"].append(entry)
            rec.save()
            if not ctx.probe_ok and name != "device_probe":
                res = _result(SKIP, "the device probe failed")
            else:
                try:
                    res = CHECKS[name](ctx)
                except Exception as err:  # noqa: BLE001 -- every failure is recorded, the next check runs
                    tb = traceback.format_exc(limit=8)
                    res = _result(FAIL, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:400],
                                  {"traceback": tb})
                finally:
                    with contextlib.suppress(Exception):
                        _sync(dev)
                    if dev.type == "cuda":
                        with contextlib.suppress(Exception):
                            torch.cuda.empty_cache()
            if name == "device_probe" and res["status"] == FAIL:
                ctx.probe_ok = False
            with rec.lock:
                entry.update(res, seconds=round(time.perf_counter() - entry.pop("_t0"), 3))
            rec.save()
            if echo:
                print(summary_lines({**report, "counts": rec._counts()})[-2], flush=True)
        report["seconds"] = round(time.perf_counter() - t_start, 3)
        rec.save(final=True)
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if echo:
        print(summary_lines(report)[-1])
        print(f"wrote {out / JSON_NAME} and {out / TEXT_NAME}")
    return report["exit_status"]


def main(argv: list[str] | None = None) -> int:
    """``python -m studylib.device_check`` (the same as ``python -m studylib device-check``)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m studylib.device_check", description=__doc__.splitlines()[0])
    add_arguments(p)
    a = p.parse_args(argv)
    return run_from_args(a)


def add_arguments(p) -> None:
    """The command line options of the device check, added to parser ``p``."""
    p.add_argument("--out", required=True, metavar="DIR", help=f"folder for {JSON_NAME} and {TEXT_NAME}")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--budget", choices=sorted(BUDGETS), default=None,
                   help="sizes: cuda (a few minutes on one GPU), cpu (about two minutes on two cores), tiny (tests); "
                        "default: by device")
    p.add_argument("--check", dest="checks", action="append", choices=list(CHECKS), default=None, metavar="NAME",
                   help=f"run only this check (repeatable): {', '.join(CHECKS)}")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, metavar="SECONDS",
                   help="wall-clock limit of the whole run; past it the running check fails, the files are written "
                        "and the exit status is 3; 0 = none (default: %(default)g)")


def run_from_args(a) -> int:
    """Run with parsed arguments (see :func:`add_arguments`); usage errors print and return 2."""
    try:
        return run(a.out, device=a.device, budget=a.budget, checks=a.checks, time_limit_s=a.time_limit)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
