"""Equal core budgets for the single machine and the emulated cluster of ``04-recsys-memory-tiers``.

"One big-memory machine beats distributed training" is a statement about the same hardware: a
comparison in which the emulated cluster gets more cores than the single machine partly measures
core counts. Both sides therefore run on one set of cores per *core budget*: the single machine in
this process, every one of its threads pinned (:func:`pinned`) and as many torch threads as cores;
the cluster's servers and trainers (their samplers run inside the trainers) pinned by the launcher
(:class:`studylib.distributed.ClusterSpec` ``cpus``). Every row records the cores each side used
(``cores``: the core ids, ``core_count``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

import torch


def available_cores() -> tuple[int, ...]:
    """The core ids this process may run on (``os.sched_getaffinity``), sorted."""
    return tuple(sorted(os.sched_getaffinity(0)))


def core_sets(budgets: Iterable[int], available: Iterable[int] | None = None) -> tuple[dict[int, tuple[int, ...]], list[str]]:
    """The core set of each budget: the first ``b`` of the ``available`` cores (default this
    process's), so that a smaller budget is a subset of a larger one.

    Returns ``({budget: core ids}, notes)``; a budget above the available cores is left out and
    named in ``notes`` (e.g. ``"core budget 4 skipped: this process may use 2 cores"``). Raises
    ``ValueError`` for a budget < 1.
    """
    cores = tuple(sorted(available)) if available is not None else available_cores()
    out, notes = {}, []
    for b in dict.fromkeys(int(x) for x in budgets):
        if b < 1:
            raise ValueError(f"core_budgets: every budget must be >= 1 (got {b})")
        if b > len(cores):
            notes.append(f"core budget {b} skipped: this process may use {len(cores)} core(s) {list(cores)}")
            continue
        out[b] = cores[:b]
    return out, notes


def cores_text(cores: Iterable[int]) -> str:
    """Core ids as the tables record them: ``"0,1"``."""
    return ",".join(str(int(c)) for c in sorted(cores))


def _set_all_threads(cores: set[int]) -> None:
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.sched_setaffinity(int(tid), cores)


@contextlib.contextmanager
def pinned(cores: Iterable[int]) -> Iterator[tuple[int, ...]]:
    """Run the body with every thread of this process pinned to ``cores`` and
    ``torch.set_num_threads(len(cores))`` (threads started inside inherit the pinning); restore
    the previous affinity and thread count afterwards. Yields the cores the process may use inside
    (read back from the kernel, so a row records what was in force). Raises ``ValueError`` when
    ``cores`` is empty or not a subset of this process's cores."""
    want = {int(c) for c in cores}
    before = set(os.sched_getaffinity(0))
    if not want or not want <= before:
        raise ValueError(f"cannot pin to cores {sorted(want)}: this process may use {sorted(before)}")
    threads = torch.get_num_threads()
    _set_all_threads(want)
    torch.set_num_threads(len(want))
    try:
        yield tuple(sorted(os.sched_getaffinity(0)))
    finally:
        torch.set_num_threads(threads)
        _set_all_threads(before)
