"""Timing: device-synchronised stage timers, summaries of raw samples, kernel-class breakdowns.

Stages are marked in model code with :func:`stage`::

    from studylib.timing import stage
    with stage("neighbor_aggregation"):
        h = aggregate(graph, z)

``stage`` costs one global read when nothing listens. Inside ``StageTimer.activate()`` it
synchronises the device and reads ``time.perf_counter`` at both ends of the region; under
``torch.profiler`` it also opens a ``record_function("stage::<name>")`` range, so that the
profiler's kernels can be attributed to stages (:func:`kernel_class_breakdown`).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import re as _re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psutil
import torch
from torch.autograd import DeviceType
from torch.utils import benchmark as tb

#: The four HGNN training stages of Han et al. (ACM TACO 2025, Sec. 2.2), in execution order.
SEMANTIC_GRAPH_BUILD = "semantic_graph_build"
FEATURE_PROJECTION = "feature_projection"
NEIGHBOR_AGGREGATION = "neighbor_aggregation"
SEMANTIC_FUSION = "semantic_fusion"
STAGES = (SEMANTIC_GRAPH_BUILD, FEATURE_PROJECTION, NEIGHBOR_AGGREGATION, SEMANTIC_FUSION)

#: Other regions of a training step that the studies time.
LOSS = "loss"
SAMPLING = "sampling"
DATA_PREPARATION = "data_preparation"
GRADIENT_ALLREDUCE = "gradient_allreduce"
#: The name of a whole training step's time, measured around the step (:meth:`StageTimer.step`).
STEP_TOTAL = "step_total"

#: Phases of one training step.
FORWARD = "forward"
BACKWARD = "backward"
OPTIMIZER_UPDATE = "optimizer_update"
PHASES = (FORWARD, BACKWARD, OPTIMIZER_UPDATE)

#: A measurement whose interquartile range exceeds this fraction of its median is flagged noisy.
NOISY_IQR_FRACTION = 0.10

_ACTIVE: StageTimer | None = None
_NULL = contextlib.nullcontext()


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for all queued work on ``device`` (no-op on CPU); call before reading a clock."""
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profiler_enabled() -> bool:
    return bool(torch.autograd.profiler._is_profiler_enabled)


def stage(name: str):
    """Context manager marking a region of model or training code as the stage ``name``.

    Nothing is recorded unless a :class:`StageTimer` is active (``with timer.activate():``) or a
    ``torch.profiler`` session is running; then the region is timed (device-synchronised) and/or
    named ``stage::<name>`` in the profiler trace. Regions may nest; each is recorded on its own.
    """
    timer = _ACTIVE
    if timer is None and not _profiler_enabled():
        return _NULL
    return _Region(name, timer)


def phase(name: str):
    """Like :func:`stage` for a phase of the step (``forward``, ``backward``, ``optimizer_update``);
    profiler ranges are named ``phase::<name>``."""
    timer = _ACTIVE
    if timer is None and not _profiler_enabled():
        return _NULL
    return _Region(name, timer, kind="phase")


class _Region:
    __slots__ = ("name", "timer", "kind", "_t0", "_rf")

    def __init__(self, name: str, timer: StageTimer | None, kind: str = "stage"):
        self.name, self.timer, self.kind = name, timer, kind
        self._rf = None

    def __enter__(self):
        if _profiler_enabled():
            self._rf = torch.autograd.profiler.record_function(f"{self.kind}::{self.name}")
            self._rf.__enter__()
        if self.timer is not None:
            if self.timer.sync:
                synchronize(self.timer.device)
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.timer is not None:
            if self.timer.sync:
                synchronize(self.timer.device)
            self.timer._record(self.kind, self.name, time.perf_counter() - self._t0)
        if self._rf is not None:
            self._rf.__exit__(*exc)
        return False


@dataclass
class StageTimer:
    """Collects device-synchronised wall times (seconds) of named stages and phases, per step.

    Args:
        device: the device whose queue is synchronised before each clock read.
        sync: synchronise (default ``True``; turning it off measures only launch time on GPUs).

    Every region exit appends one raw sample ``{"step", "kind", "name", "seconds"}`` to
    :attr:`records`; nothing is averaged away. Use :meth:`step` to number training steps and
    :meth:`activate` to make :func:`stage` calls report here.
    """

    device: torch.device | str = "cpu"
    sync: bool = True
    records: list[dict] = field(default_factory=list)
    current_step: int = -1

    def _record(self, kind: str, name: str, seconds: float) -> None:
        self.records.append({"step": self.current_step, "kind": kind, "name": name, "seconds": seconds})

    @contextlib.contextmanager
    def activate(self) -> Iterator[StageTimer]:
        """Make :func:`stage` / :func:`phase` report to this timer inside the ``with`` block."""
        global _ACTIVE
        previous, _ACTIVE = _ACTIVE, self
        try:
            yield self
        finally:
            _ACTIVE = previous

    @contextlib.contextmanager
    def step(self, index: int) -> Iterator[None]:
        """Number the samples recorded inside as step ``index`` and time the whole step
        (recorded as kind ``"step"``, name :data:`STEP_TOTAL`)."""
        self.current_step = index
        if self.sync:
            synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                synchronize(self.device)
            self._record("step", STEP_TOTAL, time.perf_counter() - t0)

    def clear(self) -> None:
        """Drop all samples (e.g. after warm-up steps)."""
        self.records.clear()

    def to_frame(self):
        """Raw samples as a ``pandas.DataFrame`` with columns step, kind, name, seconds."""

        return pd.DataFrame(self.records, columns=["step", "kind", "name", "seconds"])

    def per_step(self):
        """Seconds per step and region name, summed within a step (regions entered several times
        per step, e.g. one per layer, add up): a DataFrame indexed by step, one column per name."""
        df = self.to_frame()
        if df.empty:
            return df
        return df.pivot_table(index="step", columns="name", values="seconds", aggfunc="sum")


def endless_batches(loader) -> Iterator:
    """The mini-batches of ``loader``, epoch after epoch: a new pass over the loader (reshuffled,
    if it shuffles) starts when one ends, so each ``next`` is one sampling step and a timed loop of
    warm-up + measured steps never runs short on a graph whose epoch holds fewer batches.

    Raises ``ValueError`` (instead of looping forever) when a pass yields no batch."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yields no mini-batch (no seed nodes or edges?)")


def summarize(samples: Sequence[float]) -> dict:
    """Median, quartiles, IQR, mean, min, max and count of raw samples, plus a ``noisy`` flag.

    ``noisy`` is ``True`` when IQR / median > :data:`NOISY_IQR_FRACTION` or when fewer than 3
    samples were taken. Raises ``ValueError`` on an empty sequence.
    """
    x = np.asarray(list(samples), dtype=float)
    if x.size == 0:
        raise ValueError("summarize() needs at least one sample (got none)")
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    iqr = q3 - q1
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(iqr),
        "mean": float(x.mean()),
        "min": float(x.min()),
        "max": float(x.max()),
        "n": int(x.size),
        "noisy": bool(x.size < 3 or (med > 0 and iqr / med > NOISY_IQR_FRACTION) or math.isnan(med)),
    }


# --------------------------------------------------------------------------------------------
# Kernel-class breakdown from torch.profiler
# --------------------------------------------------------------------------------------------

GEMM = "gemm"
SPMM = "spmm_gather_scatter"
SDDMM = "sddmm_edgewise"
INDEXING = "indexing_gather"
ELEMENTWISE = "elementwise"
REDUCTION = "reduction_softmax"
MEMORY = "memory_copy"
COMMUNICATION = "communication"
OVERHEAD = "framework_overhead"
OTHER = "other"
#: Kernel classes in plotting order (after Han et al., TACO 2025, Fig. 4's kernel types, with
#: indexing and memory traffic split out because they dominate on CPUs). ``framework_overhead`` is
#: time spent in Python and in the frameworks' dispatch rather than in a kernel: the self time of
#: the stage/phase ranges, the optimizer's Python loop, tensor views and gradient accumulation.
KERNEL_CLASSES = (GEMM, SPMM, SDDMM, INDEXING, ELEMENTWISE, REDUCTION, MEMORY, COMMUNICATION, OVERHEAD, OTHER)

#: Op name -> kernel class: the first rule whose regular expression matches the op name (after
#: the ``aten::`` prefix and a ``Backward<N>`` suffix are stripped) wins. CPU op names come from
#: ATen and from DGL's autograd functions (``GSpMM``, ``GSDDMM``, ``EdgeSoftmax`` ...); CUDA kernel
#: names are classified by the op that launched them.
KERNEL_CLASS_RULES: tuple[tuple[str, str], ...] = (
    (COMMUNICATION, r"gloo|nccl|c10d|all_?reduce|all_?gather|reduce_scatter|broadcast|barrier|^send$|^recv$"),
    (SDDMM, r"^GSDDMM|^EdgeSoftmax|sddmm|^_?edge_softmax"),
    (SPMM, r"^GSpMM|^ScatterAdd|^SegmentReduce|^CSRMM|^CSRSum|^scatter|^index_add|^index_reduce|segment_reduce|"
           r"sparse_mm|^_sparse|^sparse|spmm|^_segment|^bincount"),
    (GEMM, r"^(mm|addmm|bmm|baddbmm|addbmm|matmul|linear|addmv|mv|dot|einsum|_addmm_activation)$|^GatherMM|"
           r"^SEGMENTMM|^SegmentMM|gemm"),
    (INDEXING, r"^(index|index_select|gather|take|take_along_dim|masked_select|masked_scatter|nonzero|"
               r"embedding|embedding_dense|embedding_backward|_embedding_bag|_index_put_impl_|index_put_?|"
               r"index_fill_?|index_copy_?|unique|_unique2|searchsorted|sort|argsort|masked_fill_?|where|"
               r"index_select_backward|embedding_dense_backward|gather_backward)$"),
    (REDUCTION, r"^(sum|mean|max|min|amax|amin|argmax|argmin|softmax|_softmax|log_softmax|_log_softmax|"
                r"_softmax_backward_data|_log_softmax_backward_data|nll_loss|nll_loss_forward|nll_loss_backward|"
                r"nll_loss_nd|cross_entropy_loss|logsumexp|norm|linalg_vector_norm|std|var|cumsum|prod|all|any|"
                r"count_nonzero)$"),
    (MEMORY, r"^(copy_|to|_to_copy|clone|contiguous|cat|stack|empty|empty_like|empty_strided|zeros|zeros_like|ones|"
             r"ones_like|new_zeros|new_empty|new_ones|new_full|full|full_like|resize_|arange|_cat|"
             r"Memcpy.*|Memset.*|pin_memory|_pin_memory|item|_local_scalar_dense|slice_backward)$|^Memcpy|^Memset"),
    (ELEMENTWISE, r"^(add|add_|sub|sub_|mul|mul_|div|div_|neg|exp|exp_|log|pow|sqrt|rsqrt|relu|relu_|elu|elu_|"
                  r"leaky_relu|leaky_relu_|gelu|tanh|sigmoid|threshold|threshold_backward|elu_backward|"
                  r"leaky_relu_backward|tanh_backward|sigmoid_backward|gelu_backward|dropout|native_dropout|"
                  r"native_dropout_backward|feature_dropout|clamp|clamp_|clamp_min|clamp_min_|clamp_max|fill_|"
                  r"zero_|addcmul_|addcdiv_|lerp_|maximum|minimum|abs|sign|reciprocal|square|_foreach_.*|"
                  r"mul_scalar|rsub|bernoulli_|eq|ne|lt|le|gt|ge|logical_and|logical_or|logical_not|bitwise_.*|"
                  r"copysign|floor_divide|remainder|fmod|isnan|isinf|nan_to_num)$"),
    (OVERHEAD, r"^(view|_unsafe_view|reshape|t|transpose|expand|expand_as|slice|select|as_strided|detach|detach_|"
               r"unsqueeze|squeeze|unbind|permute|alias|split|split_with_sizes|chunk|narrow|flatten|unflatten|"
               r"numpy_T|lift_fresh|AccumulateGrad|torch::autograd::AccumulateGrad|\(python and framework overhead\))$|"
               r"^Optimizer\.|^stage::|^phase::"),
)

_COMPILED_RULES = tuple((cls, _re.compile(rx)) for cls, rx in KERNEL_CLASS_RULES)
_BACKWARD_SUFFIX = _re.compile(r"Backward\d*$")


def kernel_class(op_name: str) -> str:
    """The kernel class of a profiler op name (see :data:`KERNEL_CLASS_RULES`), e.g.
    ``aten::addmm`` -> ``gemm``, ``GSpMM`` -> ``spmm_gather_scatter``, ``aten::index_select`` ->
    ``indexing_gather``, ``IndexAddBackward0`` -> ``spmm_gather_scatter``, ``aten::view`` and the
    Python time of a ``stage::`` range -> ``framework_overhead``; unknown names -> ``other``."""
    name = op_name.split("::", 1)[1] if op_name.startswith(("aten::", "c10d::", "dgl::", "pyg::")) else op_name
    if name.startswith("autograd::engine::evaluate_function: "):
        name = name.split(": ", 1)[1]
    if _BACKWARD_SUFFIX.search(name):
        name = _BACKWARD_SUFFIX.sub("", name)
        # autograd node names are CamelCase (IndexAddBackward0): map to snake_case op names
        name = _re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", name).lower() if not name.startswith(("GS", "Edge", "CSR", "Scatter", "Segment", "Gather")) else name
    for cls, rx in _COMPILED_RULES:
        if rx.search(name):
            return cls
    return OTHER


def kernel_class_breakdown(prof, device: torch.device | str = "cpu"):
    """Attribute every microsecond a ``torch.profiler`` session saw to (phase, stage, kernel class).

    Args:
        prof: a finished ``torch.profiler.profile`` whose steps used :func:`stage` / :func:`phase`.
        device: where the model ran; on CUDA the device (kernel) self time of each op is used
            (each kernel counted once, under the op that launched it; the profiler also lists the
            kernels as events of their own, which are skipped), on CPU its self CPU time.

    Each op's *self* time (time not spent in child ops) is attributed, so nothing is counted
    twice. Its stage is the innermost enclosing ``stage::`` range; for backward ops (under an
    ``autograd::engine::evaluate_function`` node) it is the stage of the forward op with the same
    autograd sequence number, so backward time lands in the stage whose forward created it. Its
    phase is the enclosing ``phase::`` range. Returns a DataFrame with columns
    ``phase, stage, kernel_class, op, self_us`` (one row per op name and context, summed over
    calls), in microseconds.
    """

    device = torch.device(device)
    events = list(prof.events())
    info: dict[int, tuple[str | None, str | None, int | None]] = {}

    def context(e):
        key = id(e)
        if key in info:
            return info[key]
        stg = phs = None
        bwd_seq = None
        p = e
        chain = []
        while p is not None:
            k = id(p)
            if k in info and p is not e:
                s2, p2, b2 = info[k]
                stg = stg or s2
                phs = phs or p2
                bwd_seq = bwd_seq if bwd_seq is not None else b2
                break
            chain.append(p)
            if stg is None and p.name.startswith("stage::"):
                stg = p.name[7:]
            elif phs is None and p.name.startswith("phase::"):
                phs = p.name[7:]
            elif bwd_seq is None and p.name.startswith("autograd::engine::evaluate_function: "):
                bwd_seq = p.sequence_nr
            p = p.cpu_parent
        info[key] = (stg, phs, bwd_seq)
        return info[key]

    seq_stage: dict[int, str] = {}
    for e in events:
        stg, _, bwd = context(e)
        if stg is not None and bwd is None and e.sequence_nr >= 0:
            seq_stage.setdefault(e.sequence_nr, stg)

    rows: dict[tuple[str, str, str, str], float] = {}
    for e in events:
        if device.type == "cuda":
            if getattr(e, "device_type", DeviceType.CPU) != DeviceType.CPU:
                continue  # a kernel's own event: its time is already the launching op's self device time
            self_us = float(getattr(e, "self_device_time_total", 0) or getattr(e, "self_cuda_time_total", 0) or 0)
        else:
            self_us = float(e.self_cpu_time_total)
        if self_us <= 0:
            continue
        stg, phs, bwd = context(e)
        if stg is None and bwd is not None:
            stg = seq_stage.get(bwd)
        op = "(python and framework overhead)" if e.name.startswith(("stage::", "phase::")) else e.name
        cls = kernel_class(op)
        key = (phs or "other", stg or "other", cls, op)
        rows[key] = rows.get(key, 0.0) + self_us
    df = pd.DataFrame([(*k, v) for k, v in rows.items()], columns=["phase", "stage", "kernel_class", "op", "self_us"])
    return df.sort_values("self_us", ascending=False, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Microbenchmark harness (notebooks 00-hardware and 03-op-microbenchmarks)
# --------------------------------------------------------------------------------------------

#: More one-call blocks than this in one ``blocked_autorange`` means its block size was mis-estimated.
MAX_SINGLE_CALL_BLOCKS = 100


class InputsInTimedRegionError(ValueError):
    """The timed function builds (random) inputs inside the timed region; build them in ``setup``."""


def _rng_states(device: torch.device) -> list[torch.Tensor]:
    states = [torch.random.get_rng_state()]
    if device.type == "cuda" and torch.cuda.is_initialized():
        states.append(torch.cuda.get_rng_state(device))
    return states


def check_inputs_outside(fn, args: tuple = (), device: torch.device | str = "cpu") -> None:
    """Call ``fn(*args)`` once and raise :class:`InputsInTimedRegionError` if the call drew random
    numbers from torch's global generators (CPU, and CUDA on a GPU).

    A benchmark's inputs are random tensors; a timed function that draws random numbers is
    building (part of) its inputs inside the timed region, or runs a stochastic op such as active
    dropout, and its time is not the operation's. What cannot be detected: inputs built from
    deterministic factories (``torch.ones``, ``torch.arange``), from numpy, or with a private
    ``torch.Generator`` -- keep input construction in ``setup``, as :func:`benchmark` does.
    """
    device = torch.device(device)
    before = _rng_states(device)
    fn(*args)
    synchronize(device)
    after = _rng_states(device)
    if any(not torch.equal(a, b) for a, b in zip(before, after)):
        name = getattr(fn, "__qualname__", repr(fn))
        raise InputsInTimedRegionError(
            f"{name} drew random numbers from torch's global generator inside the timed region: its inputs "
            f"(or a stochastic op such as dropout in training mode) are built per call. Build the inputs in "
            f"setup() and pass them as arguments, or put the module in eval() mode.")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _page_size()


def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``) so that the resident
    set size reflects live memory again; ``False`` where glibc is not available."""
    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def peak_memory_bytes(fn, args: tuple = (), device: torch.device | str = "cpu") -> int | None:
    """Memory a single call of ``fn(*args)`` adds at its peak, in bytes.

    On CUDA: ``torch.cuda.max_memory_allocated`` during the call minus the memory allocated before
    it (exact, allocator level). On Linux CPUs: the process's peak resident set size during the call
    (``VmHWM`` after resetting it through ``/proc/self/clear_refs``) minus the resident set before
    it, after returning freed heap pages to the OS (``malloc_trim``); page-granular and blind to
    memory the C allocator reuses, so it is a lower bound. ``None`` where neither is available.
    """
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn(*args)
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return int(peak)
    trim_heap()
    if not _reset_hwm():
        return None
    base = _rss_bytes()
    out = fn(*args)
    peak = _hwm_bytes()
    del out
    return None if peak is None else max(0, int(peak - base))


def benchmark(fn, *, setup=None, args: tuple = (), num_threads: int, min_run_time: float = 0.2,
              min_blocks: int = 1, device: torch.device | str = "cpu", warmup: int = 1,
              check_inputs: bool = True, measure_memory: bool = True) -> dict:
    """Time ``fn(*args)`` with ``torch.utils.benchmark.Timer.blocked_autorange``.

    Args:
        fn: the operation; called as ``fn(*args)``. It must not build its inputs.
        setup: optional callable returning the argument tuple; it runs once, before and outside the
            timed region (give either ``setup`` or ``args``).
        args: the arguments, built beforehand.
        num_threads: CPU threads for the measurement (``Timer(num_threads=...)``; recorded).
        min_run_time: seconds of timed calls per ``blocked_autorange``.
        min_blocks: measure further blocks of the same size until at least this many exist.
        device: the device whose queue is synchronised around every block (the Timer synchronises
            CUDA before reading its clock) and whose memory is measured.
        warmup: untimed calls before measuring, the input check's call included (``blocked_autorange``
            warms up as well while it sizes its blocks, so 0 is acceptable for slow operations).
        check_inputs: reject a ``fn`` that draws random numbers (see :func:`check_inputs_outside`).
        measure_memory: also measure the peak memory of one call (:func:`peak_memory_bytes`).

    A ``blocked_autorange`` that timed more than :data:`MAX_SINGLE_CALL_BLOCKS` one-call blocks
    (its block size was sized from a stalled first call) is repeated, at most twice.

    Returns ``{"times": [seconds per call of each block], "number_per_run": calls per block,
    "num_threads", "device", "peak_memory_bytes", "retries"}`` plus :func:`summarize` of the times
    (``median``, ``q1``, ``q3``, ``iqr``, ``n``, ``noisy``...). Raises
    :class:`InputsInTimedRegionError` (see above) and ``ValueError`` for bad arguments.
    """

    if setup is not None and args:
        raise ValueError("give either setup (a callable returning the arguments) or args, not both")
    if num_threads is None or int(num_threads) < 1:
        raise ValueError(f"num_threads must be >= 1 (got {num_threads!r}); it is recorded with every timing")
    if min_run_time <= 0 or min_blocks < 1:
        raise ValueError(f"min_run_time must be > 0 and min_blocks >= 1 (got {min_run_time}, {min_blocks})")
    device = torch.device(device)
    num_threads = int(num_threads)
    if setup is not None:
        args = setup()
        if not isinstance(args, tuple):
            args = (args,)
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        if check_inputs:
            check_inputs_outside(fn, args, device)
        for _ in range(max(0, warmup - int(check_inputs))):
            fn(*args)
        synchronize(device)
        peak = peak_memory_bytes(fn, args, device) if measure_memory else None
    finally:
        torch.set_num_threads(previous)
    timer = tb.Timer(stmt="fn(*args)", globals={"fn": fn, "args": args}, num_threads=num_threads)
    synchronize(device)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    retries = 0
    while m.number_per_run == 1 and len(m.times) > MAX_SINGLE_CALL_BLOCKS and retries < 2:
        # blocked_autorange sizes its blocks from its first calls; a stall there (a descheduled thread
        # on a busy machine) makes it time hundreds of one-call blocks, each biased by the timer's own
        # overhead. Measure again rather than keep a mis-sized measurement.
        retries += 1
        m = timer.blocked_autorange(min_run_time=min_run_time)
    times = list(m.times)
    while len(times) < min_blocks:
        times.extend(timer.timeit(m.number_per_run).times)
    synchronize(device)
    return {"times": times, "number_per_run": int(m.number_per_run), "num_threads": num_threads,
            "device": device.type, "peak_memory_bytes": peak, "retries": retries, **summarize(times)}

class PeakMemory:
    """Peak memory of regions of code: device memory on CUDA (``max_memory_allocated``), the
    process's resident set size on CPU, sampled every ``interval_s`` seconds by a thread.

    Use ``with pm.region("forward"): ...``; :attr:`peaks` maps region name -> peak bytes and
    :attr:`baselines` region name -> bytes in use when the region started. On CPU, call
    :func:`trim_heap` before the first region so that memory freed earlier but kept by the C
    allocator does not hide new allocations. (:func:`peak_memory_bytes` is the one-call form.)
    """

    def __init__(self, device: torch.device, interval_s: float = 0.0005):
        self.device, self.interval_s = device, interval_s
        self.peaks: dict[str, int] = {}
        self.baselines: dict[str, int] = {}
        self._proc = psutil.Process()

    def rss_bytes(self) -> int:
        """The resident set size of this process now, in bytes."""
        return int(self._proc.memory_info().rss)

    @contextlib.contextmanager
    def region(self, name: str):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baselines[name] = torch.cuda.memory_allocated(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.peaks[name] = max(self.peaks.get(name, 0), torch.cuda.max_memory_allocated(self.device))
            return
        peak = [self._proc.memory_info().rss]
        self.baselines[name] = peak[0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], self._proc.memory_info().rss)
                time.sleep(self.interval_s)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()
            peak[0] = max(peak[0], self._proc.memory_info().rss)
            self.peaks[name] = max(self.peaks.get(name, 0), peak[0])
