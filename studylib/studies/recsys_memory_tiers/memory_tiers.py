"""Memory tiers for embedding tables: placement, the memory cgroup that keeps the page cache from
hiding a slow tier, tier bandwidth, and the worker process that trains in a tier.

Hu, Li, Yu, Zhang (arXiv 2207.11918) train GNN recommenders with their embeddings in Intel Optane
persistent memory, a large tier slower than DRAM. Without such hardware, this module *emulates* a
slower tier with what a Linux machine has, and labels every emulation:

==================  =============================================================================
``dram``            ordinary (anonymous) memory
``mmap_cached``     a file-backed mapping (``torch.from_file(shared=True)``) with no memory limit:
                    after the first touch the page cache holds every page, so this is DRAM behind
                    a page table -- the control that shows what a cgroup limit is needed for
``mmap_cgroup``     the same mapping, with the process in a memory cgroup whose limit leaves only
                    ``cache_fraction`` of the tier's files room in the page cache: the rest is read
                    from (and written back to) the block device on demand. *Emulates* a slow,
                    large tier; it is far slower than Optane (storage, not memory)
``hot_cold``        the highest-degree rows in DRAM, the others in ``mmap_cgroup``: the analogue
                    of a DRAM cache in front of persistent memory; the hit rate is reported
``numa_remote``     memory bound to another NUMA node (``numactl --membind``), where one exists
==================  =============================================================================

A tier that the machine cannot provide (no memory cgroup that can be created, a page cache on
tmpfs, a single NUMA node, no ``numactl``) is skipped with the reason (:func:`tier_status`).

Public API::

    TIERS; TIER_LABELS; TierStatus; tier_status(tiers, workdir) -> list[TierStatus]
    cgroup_support() -> CgroupSupport; MemoryCgroup(limit_bytes) (context manager); cleanup_stale()
    file_tensor(path, shape, init=None) -> torch.Tensor;  is_file_backed(t, path=None) -> bool
    mapping_of(t) -> str | None;  resident_fraction(path) -> float;  drop_file_cache(path)
    advise(t, "random"|"normal");  evict(t, path);  prefault_heap(nbytes)
    place_table(init, tier, workdir, hot_ids=None) -> EmbeddingTable;  tier_optimizer(...) -> Adam
    tier_arrays(tier, nbytes, workdir);  measure_tier_bandwidth(a, b, dim, idx, out, threads=...) -> rows
    run_worker(job, *, workdir, timeout_s) -> (rows, info)   # python -m studylib.studies.recsys_memory_tiers.memory_tiers JOB
    WorkerError (rows of the finished units, the unit that failed, the reason)

How the slow tier is kept honest: the tier's files are written, synced and evicted before the
worker joins the cgroup; the worker runs with :data:`WORKER_MALLOC_ENV` and touches a heap reserve
first (:func:`prefault_heap`), so that its anonymous memory is not charged to the cgroup and the
limit bounds the tier's page cache only; a :class:`Flusher` writes dirty tier pages back so that
the kernel can reclaim them. The worker reports major page faults and bytes read from and written
to storage per step (:class:`IOCounter`), the evidence that the tier was really read from storage.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import mmap
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

from studylib import timing
from studylib.limits import stream_kernels
from studylib.models.recsys import DenseTable, SplitTable

__all__ = [
    "CGROUP_PREFIX",
    "TIERS",
    "TIER_LABELS",
    "WORKER_MALLOC_ENV",
    "CgroupSupport",
    "Flusher",
    "IOCounter",
    "MemoryCgroup",
    "TierStatus",
    "WorkerError",
    "advise",
    "cgroup_support",
    "cleanup_stale",
    "drop_file_cache",
    "evict",
    "file_tensor",
    "hot_rows",
    "is_file_backed",
    "mapping_of",
    "measure_tier_bandwidth",
    "new_work_folder",
    "remove_stale_work_folders",
    "numa_nodes",
    "place_table",
    "prefault_heap",
    "resident_fraction",
    "run_worker",
    "tier_arrays",
    "tier_optimizer",
    "tier_status",
]

TIERS = ("dram", "mmap_cached", "mmap_cgroup", "hot_cold", "numa_remote")
#: Tiers that need the memory cgroup.
CGROUP_TIERS = ("mmap_cgroup", "hot_cold")
#: Name prefix of the cgroups this module creates (a stale one is removed by :func:`cleanup_stale`).
CGROUP_PREFIX = "studylib-tier-"
#: Labels used in figures: every emulation says what it is.
TIER_LABELS = {
    "dram": "DRAM",
    "mmap_cached": "file mmap, page cache unlimited (control)",
    "mmap_cgroup": "file mmap under cgroup limit (emulated slow tier: block device)",
    "hot_cold": "hot rows DRAM + cold rows emulated slow tier",
    "numa_remote": "remote NUMA node (numactl --membind)",
}
_TMPFS_TYPES = {"tmpfs", "ramfs", "devtmpfs", "overlay-tmpfs"}


# ---------------------------------------------------------------------------------------------
# What the machine can provide
# ---------------------------------------------------------------------------------------------
@dataclass
class CgroupSupport:
    """How memory cgroups can be used here: ``version`` ``"v2"``, ``"v1"`` or ``None`` (with the
    ``reason``), and ``parent``: the cgroup folder under which children are created (this
    process's own memory cgroup)."""

    version: str | None
    parent: Path | None
    reason: str = ""


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) from /proc/self/mountinfo."""
    out = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields, rf = left.split(), right.split()
                if len(fields) >= 5 and len(rf) >= 3:
                    out.append((fields[4].replace("\\040", " "), rf[0], rf[2]))
    except OSError:
        pass
    return out


def _own_cgroups() -> dict[str, str]:
    """controller list (``"memory"``, ``""`` for v2) -> this process's cgroup path."""
    out = {}
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                hid, ctrls, path = line.rstrip("\n").split(":", 2)
                out[ctrls] = path
    except OSError:
        pass
    return out


def _writable_child(parent: Path, limit_file: str) -> str:
    """Try to create (and remove) a child cgroup with a memory limit; '' or the reason it failed."""
    probe = parent / f"{CGROUP_PREFIX}probe-{os.getpid()}-{secrets.token_hex(2)}"
    try:
        probe.mkdir()
    except OSError as e:
        return f"cannot create a child cgroup under {parent} ({e.strerror}; root is needed)"
    try:
        if not (probe / limit_file).exists():
            return f"{probe / limit_file} does not exist (memory controller not enabled for children)"
        (probe / limit_file).write_text(str(256 * 2**20))
        return ""
    except OSError as e:
        return f"cannot set {limit_file} in {probe} ({e.strerror})"
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def cgroup_support() -> CgroupSupport:
    """Find a memory cgroup hierarchy in which this process can create a child with a limit.

    cgroup v2 first (``memory`` in the unified hierarchy's ``cgroup.controllers``; the controller
    is enabled for children through ``cgroup.subtree_control``; limit ``memory.max``), then the v1
    ``memory`` controller (limit ``memory.limit_in_bytes``). Returns a :class:`CgroupSupport`
    whose ``reason`` says why neither works when ``version`` is ``None``.
    """
    mounts, own = _mounts(), _own_cgroups()
    reasons = []
    v2 = next((m for m, t, _ in mounts if t == "cgroup2"), None)
    if v2 is not None and "" in own:
        parent = Path(v2) / own[""].lstrip("/")
        ctrl = Path(v2) / "cgroup.controllers"
        ctrls = ctrl.read_text().split() if ctrl.is_file() else []
        if "memory" not in ctrls:
            reasons.append(f"cgroup v2 at {v2} has no memory controller (controllers: {' '.join(ctrls) or 'none'}; "
                           f"it is bound to a v1 hierarchy)")
        else:
            sub = parent / "cgroup.subtree_control"
            try:
                if "memory" not in sub.read_text().split():
                    sub.write_text("+memory")
            except OSError as e:
                reasons.append(f"cannot enable the v2 memory controller for children of {parent} ({e.strerror})")
            else:
                why = _writable_child(parent, "memory.max")
                if not why:
                    return CgroupSupport("v2", parent)
                reasons.append(why)
    elif v2 is None:
        reasons.append("no cgroup v2 hierarchy is mounted")
    v1 = next((m for m, t, opts in mounts if t == "cgroup" and "memory" in opts.split(",")), None)
    key = next((k for k in own if "memory" in k.split(",")), None)
    if v1 is not None and key is not None:
        parent = Path(v1) / own[key].lstrip("/")
        why = _writable_child(parent, "memory.limit_in_bytes")
        if not why:
            return CgroupSupport("v1", parent)
        reasons.append(why)
    else:
        reasons.append("no cgroup v1 memory controller is mounted")
    return CgroupSupport(None, None, "; ".join(reasons))


def numa_nodes() -> int:
    """NUMA nodes of this machine (``/sys/devices/system/node/node*``; 1 when not exposed)."""
    base = Path("/sys/devices/system/node")
    try:
        return sum(1 for d in base.iterdir() if d.name.startswith("node") and d.name[4:].isdigit()) or 1
    except OSError:
        return 1


def filesystem_type(path: Path | str) -> str:
    """File-system type of the mount holding ``path`` (longest matching mount point)."""
    p = str(Path(path).resolve())
    best, kind = "", "unknown"
    for mount, fstype, _ in _mounts():
        if (p == mount or p.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


@dataclass
class TierStatus:
    """Whether ``tier`` can run here (``available``), why not (``reason``), and what backs it
    (``detail``: cgroup version, backing file system)."""

    tier: str
    available: bool
    reason: str
    detail: str = ""


def tier_status(tiers=TIERS, workdir: Path | str | None = None) -> list[TierStatus]:
    """Availability of each tier of ``tiers`` on this machine, with the reason for every one that
    is skipped. ``workdir`` is where tier files would live (default: the system temp folder); a
    page cache on tmpfs cannot be evicted without swap, so file tiers there are refused.
    Raises ``ValueError`` for an unknown tier name."""

    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise ValueError(f"unknown memory tier {bad[0]!r}; choose from {TIERS}")
    workdir = Path(workdir or tempfile.gettempdir())
    fs = filesystem_type(workdir)
    cg = cgroup_support() if any(t in CGROUP_TIERS for t in tiers) else None
    out = []
    for t in tiers:
        if t == "dram":
            out.append(TierStatus(t, True, "", "anonymous memory"))
        elif t == "mmap_cached":
            out.append(TierStatus(t, True, "", f"file on {fs} ({workdir}), page cache unlimited"))
        elif t in CGROUP_TIERS:
            if fs in _TMPFS_TYPES:
                out.append(TierStatus(t, False, f"{workdir} is on {fs}: its pages live in memory and cannot be "
                                                f"evicted, so a file there is no slower tier", fs))
            elif cg.version is None:
                out.append(TierStatus(t, False, f"no usable memory cgroup: {cg.reason}", ""))
            else:
                out.append(TierStatus(t, True, "", f"cgroup {cg.version} under {cg.parent}; file on {fs} ({workdir})"))
        elif t == "numa_remote":
            n = numa_nodes()
            if n < 2:
                out.append(TierStatus(t, False, f"this machine has {n} NUMA node: there is no remote node", ""))
            elif shutil.which("numactl") is None:
                out.append(TierStatus(t, False, f"{n} NUMA nodes, but numactl is not installed", ""))
            else:
                out.append(TierStatus(t, True, "", f"{n} NUMA nodes; worker runs with numactl --cpunodebind=0 "
                                                   f"--membind={n - 1}"))
    return out


# ---------------------------------------------------------------------------------------------
# Memory cgroups
# ---------------------------------------------------------------------------------------------
_LIVE_CGROUPS: set[Path] = set()


def _remove_cgroup_dir(path: Path, timeout_s: float = 5.0) -> bool:
    """Move any task left in ``path`` to its parent, then ``rmdir`` it (retrying while busy)."""
    deadline = time.monotonic() + timeout_s
    while path.exists():
        with contextlib.suppress(OSError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (path.parent / "cgroup.procs").write_text(pid)
        try:
            path.rmdir()
        except FileNotFoundError:
            break
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    _LIVE_CGROUPS.discard(path)
    return True


@atexit.register
def _cleanup_at_exit() -> None:
    for p in list(_LIVE_CGROUPS):
        _remove_cgroup_dir(p, timeout_s=1.0)
    for p in list(_LIVE_WORK_FOLDERS):
        shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Work folders of the tier files
# ---------------------------------------------------------------------------------------------
#: prefix of the folders holding tier files and graph copies: ``recsys-tiers-<pid>-<random>``.
WORK_PREFIX = "recsys-tiers-"
_LIVE_WORK_FOLDERS: set[Path] = set()


def remove_stale_work_folders(base: Path | str) -> list[Path]:
    """Remove ``recsys-tiers-<pid>-*`` folders under ``base`` whose process ``<pid>`` no longer
    runs (left by a run that was killed: its ``finally`` and ``atexit`` clean-up never ran).
    Folders of running processes and names without a pid are left alone. Returns the removed ones."""
    removed = []
    for d in Path(base).glob(f"{WORK_PREFIX}*"):
        pid = d.name[len(WORK_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or psutil.pid_exists(int(pid)) or not d.is_dir():
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def new_work_folder(base: Path | str) -> Path:
    """A fresh folder ``base/recsys-tiers-<pid>-<random>`` for tier files, after removing stale
    ones of killed runs (:func:`remove_stale_work_folders`). The caller removes it when done; it is
    also removed at interpreter exit if still there."""
    import tempfile

    base = Path(base)
    remove_stale_work_folders(base)
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=base))
    _LIVE_WORK_FOLDERS.add(work)
    return work


def cleanup_stale(parent: Path | None = None) -> list[Path]:
    """Remove child cgroups named :data:`CGROUP_PREFIX` ``*`` under ``parent`` (default: this
    process's memory cgroup) that hold no process -- left by a run that was killed. Returns the
    removed folders."""
    if parent is None:
        parent = cgroup_support().parent
    removed = []
    if parent is None or not parent.is_dir():
        return removed
    for d in parent.glob(f"{CGROUP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if not (d / "cgroup.procs").read_text().split() and _remove_cgroup_dir(d, 1.0):
                removed.append(d)
    return removed


class MemoryCgroup:
    """A child memory cgroup with a limit, removed on exit (also after an exception or Ctrl-C).

    Args:
        limit_bytes: memory limit (anonymous memory plus page cache charged to the group); ``None``
            = unlimited for now (see :meth:`set_limit`).
        support: from :func:`cgroup_support` (detected when omitted).

    Use as a context manager; :meth:`add` moves a process in, :meth:`set_limit` changes the limit
    (lowering it makes the kernel reclaim page cache down to it), :meth:`stats` reads usage.
    Raises ``RuntimeError`` with the reason when no memory cgroup can be created here.
    """

    def __init__(self, limit_bytes: int | None = None, support: CgroupSupport | None = None):
        self.support = support or cgroup_support()
        if self.support.version is None:
            raise RuntimeError(f"no usable memory cgroup: {self.support.reason}")
        self.path = self.support.parent / f"{CGROUP_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.path.mkdir()
        _LIVE_CGROUPS.add(self.path)
        self.set_limit(limit_bytes)

    @property
    def version(self) -> str:
        return self.support.version

    def set_limit(self, limit_bytes: int | None) -> None:
        """Set the limit in bytes (``None`` = unlimited). Raises ``OSError`` when the kernel cannot
        reclaim down to a lower limit (anonymous memory above it and no swap)."""
        if self.version == "v2":
            (self.path / "memory.max").write_text("max" if limit_bytes is None else str(int(limit_bytes)))
            if (self.path / "memory.swap.max").exists():
                with contextlib.suppress(OSError):
                    (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text("-1" if limit_bytes is None else str(int(limit_bytes)))
        self.limit_bytes = limit_bytes

    def set_limit_at_least(self, limit_bytes: int) -> int:
        """Set the limit to ``limit_bytes``, or, when the kernel cannot reclaim down to it (EBUSY:
        anonymous memory above it and no swap), to the current usage plus 1 MiB. Returns the limit
        that was set."""
        try:
            self.set_limit(limit_bytes)
            return int(limit_bytes)
        except OSError:
            actual = self.stats()["usage"] + 2**20
            self.set_limit(actual)
            return int(actual)

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup."""
        (self.path / "cgroup.procs").write_text(str(int(pid)))

    def leave(self, pid: int) -> None:
        """Move process ``pid`` back to the parent cgroup."""
        (self.path.parent / "cgroup.procs").write_text(str(int(pid)))

    def pids(self) -> list[int]:
        """Processes in the cgroup."""
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def stats(self) -> dict:
        """Usage in bytes: ``usage``, ``anon`` (anonymous memory), ``file`` (page cache), and
        ``limit_hits`` (v1 ``memory.failcnt``; v2 ``memory.events`` max), from the kernel's files."""
        stat = {}
        with contextlib.suppress(OSError):
            for line in (self.path / "memory.stat").read_text().splitlines():
                k, _, v = line.partition(" ")
                stat[k] = int(v)
        if self.version == "v2":
            usage = int((self.path / "memory.current").read_text())
            events = {}
            with contextlib.suppress(OSError):
                events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
            return {"usage": usage, "anon": stat.get("anon", 0), "file": stat.get("file", 0),
                    "limit_hits": int(events.get("max", 0))}
        usage = int((self.path / "memory.usage_in_bytes").read_text())
        return {"usage": usage, "anon": stat.get("rss", 0), "file": stat.get("cache", 0),
                "limit_hits": int((self.path / "memory.failcnt").read_text())}

    def remove(self) -> bool:
        """Move remaining processes to the parent and delete the cgroup; True when it is gone."""
        return _remove_cgroup_dir(self.path)

    def __enter__(self) -> MemoryCgroup:
        return self

    def __exit__(self, *exc) -> bool:
        self.remove()
        return False


# ---------------------------------------------------------------------------------------------
# Placement
# ---------------------------------------------------------------------------------------------
def file_tensor(path: Path | str, shape: tuple[int, ...], init: torch.Tensor | None = None) -> torch.Tensor:
    """A float32 tensor of ``shape`` whose memory is a shared mapping of the file ``path``
    (``torch.from_file(shared=True)``): reads fault pages in from the file, writes go back to it.

    ``init`` (same shape) is written to the file first (zeros otherwise: a sparse file), the file is
    synced and its pages dropped from the page cache, so the first touch reads the file. The file is
    created or overwritten. Returns the tensor (a view of the mapping; no copy in memory).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(np.prod(shape))
    with open(path, "wb") as fh:
        if init is not None:
            arr = init.detach().to(torch.float32).contiguous().numpy().reshape(-1)
            if arr.size != n:
                raise ValueError(f"init has {arr.size} elements, shape {shape} needs {n}")
            arr.tofile(fh)
        else:
            fh.truncate(n * 4)
        fh.flush()
        os.fsync(fh.fileno())
    drop_file_cache(path)
    return torch.from_file(str(path), shared=True, size=n, dtype=torch.float32).view(*shape)


def drop_file_cache(path: Path | str) -> None:
    """Write back and evict the clean, unmapped pages of ``path`` from the page cache
    (``fsync`` + ``posix_fadvise(POSIX_FADV_DONTNEED)``); pages mapped by a process stay."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _page_range(t: torch.Tensor) -> tuple[int, int]:
    page = os.sysconf("SC_PAGE_SIZE")
    start = t.data_ptr() // page * page
    return start, t.data_ptr() + t.numel() * t.element_size() - start


def advise(t: torch.Tensor, advice: str) -> None:
    """``madvise`` the pages of ``t``: ``"random"`` (no readahead when a fault reads the file: the
    access pattern of embedding gathers), ``"sequential"`` or ``"normal"`` (the kernel's readahead)."""
    code = {"normal": 0, "random": 1, "sequential": 2}[advice]
    start, length = _page_range(t)
    _libc().madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), code)


def evict(t: torch.Tensor, path: Path | str) -> None:
    """Drop the pages of the file-backed tensor ``t`` (a mapping of ``path``) from memory: unmap them
    from this process (``madvise(MADV_DONTNEED)``; the data stays in the file and page cache), write
    dirty pages back (``fsync``) and evict the file's pages from the page cache
    (``posix_fadvise(DONTNEED)``). The next access reads the file again."""
    start, length = _page_range(t)
    _libc().madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), 4)  # MADV_DONTNEED
    drop_file_cache(path)


#: Environment of the worker: glibc serves every allocation from its heap (no ``mmap`` per large
#: block) and never returns freed heap to the system, so memory faulted in before the worker joins
#: the cgroup is reused afterwards instead of being charged to it again.
#: The worker process, started as ``python -m WORKER_MODULE JOB`` (see :mod:`.tier_worker`).
WORKER_MODULE = "studylib.studies.recsys_memory_tiers.tier_worker"

WORKER_MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**60), "MALLOC_ARENA_MAX": "1"}


def prefault_heap(nbytes: int, block: int = 16 * 2**20) -> int:
    """Add ``nbytes`` of touched, then freed, memory to the C heap: blocks of ``block`` bytes are
    allocated and written until the resident set has grown by ``nbytes`` (free heap space is used
    up first), then freed together. Under :data:`WORKER_MALLOC_ENV` glibc keeps the freed space,
    so later allocations reuse pages already charged to the current cgroup instead of faulting in
    new ones inside a cgroup joined afterwards. Returns the bytes the resident set grew by."""

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    held = []
    while proc.memory_info().rss - rss0 < nbytes and len(held) < 4 * (nbytes // block + 1):
        t = torch.empty(block, dtype=torch.uint8)
        t.fill_(1)
        held.append(t)
    grown = proc.memory_info().rss - rss0
    del held
    return int(grown)


def mapping_of(t: torch.Tensor) -> str | None:
    """The path of the file whose mapping holds ``t``'s first byte (from ``/proc/self/maps``), or
    ``None`` for anonymous memory (heap, anonymous ``mmap``)."""
    addr = t.data_ptr()
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                name = parts[5].strip() if len(parts) > 5 else ""
                return name if name.startswith("/") else None
    return None


def is_file_backed(t: torch.Tensor, path: Path | str | None = None) -> bool:
    """Whether ``t``'s memory is a mapping of a file (of ``path``, when given)."""
    m = mapping_of(t)
    if m is None:
        return False
    return path is None or os.path.realpath(m.removesuffix(" (deleted)")) == os.path.realpath(path)


def resident_fraction(path: Path | str) -> float:
    """Share of ``path``'s pages that are in the page cache now (``mincore`` over a fresh read-only
    mapping); NaN for an empty file or where ``mincore`` is unavailable."""

    size = os.path.getsize(path)
    if size == 0:
        return float("nan")
    page = os.sysconf("SC_PAGE_SIZE")
    pages = (size + page - 1) // page
    libc = ctypes.CDLL(None, use_errno=True)
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            vec = (ctypes.c_ubyte * pages)()
            if libc.mincore(ctypes.c_void_p(_mmap_address(mm)), ctypes.c_size_t(size), vec) != 0:
                return float("nan")
            return float((np.frombuffer(bytes(vec), np.uint8) & 1).mean())
        finally:
            mm.close()


def _mmap_address(mm) -> int:
    """Start address of a Python ``mmap`` object (through a zero-copy ctypes view)."""
    view = (ctypes.c_char * 1).from_buffer(mm)
    addr = ctypes.addressof(view)
    del view
    return addr


def hot_rows(degrees: torch.Tensor, fraction: float) -> torch.Tensor:
    """Ids of the ``ceil(fraction * N)`` highest-degree rows (ties broken by id), int64 sorted."""
    k = int(np.ceil(fraction * len(degrees)))
    order = torch.argsort(-degrees.to(torch.float64) + torch.arange(len(degrees)) * 1e-12)
    return torch.sort(order[:k]).values


def place_table(init: torch.Tensor, tier: str, workdir: Path | str, *, hot_ids: torch.Tensor | None = None,
                name: str = "table"):
    """The ego-embedding table ``init`` [N, d] placed in ``tier`` as a trainable
    :class:`studylib.models.recsys.EmbeddingTable`.

    ``dram`` and ``numa_remote`` (the process's memory policy decides the node): a copy in ordinary
    memory. ``mmap_cached`` / ``mmap_cgroup``: a :func:`file_tensor` at ``workdir/<name>.f32`` (the
    cgroup is the caller's business). ``hot_cold``: the rows ``hot_ids`` in ordinary memory, the
    others in a file tensor (a :class:`SplitTable`). Raises ``ValueError`` for an unknown tier or a
    missing ``hot_ids``.
    """

    workdir = Path(workdir)
    if tier in ("dram", "numa_remote"):
        return DenseTable(init.detach().clone())
    if tier in ("mmap_cached", "mmap_cgroup"):
        return DenseTable(file_tensor(workdir / f"{name}.f32", tuple(init.shape), init))
    if tier == "hot_cold":
        if hot_ids is None:
            raise ValueError("tier hot_cold needs hot_ids (the rows kept in DRAM)")
        is_hot = torch.zeros(init.shape[0], dtype=torch.bool)
        is_hot[hot_ids] = True
        cold_init = init[~is_hot]
        cold = file_tensor(workdir / f"{name}.cold.f32", tuple(cold_init.shape), cold_init)
        return SplitTable(init[hot_ids].detach().clone(), cold, hot_ids)
    raise ValueError(f"unknown memory tier {tier!r}; choose from {TIERS}")


def tier_optimizer(model: torch.nn.Module, table, tier: str, workdir: Path | str, lr: float) -> torch.optim.Adam:
    """Adam over ``model``'s parameters with the moment estimates (``exp_avg``, ``exp_avg_sq``) of
    every file-backed table parameter placed in files beside it, so that the whole embedding state
    lives in the tier (as with embeddings in persistent memory)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
    for i, p in enumerate(table.parameters()):
        if is_file_backed(p.data):
            opt.state[p] = {
                "step": torch.tensor(0.0),
                "exp_avg": file_tensor(Path(workdir) / f"adam{i}.m.f32", tuple(p.shape)),
                "exp_avg_sq": file_tensor(Path(workdir) / f"adam{i}.v.f32", tuple(p.shape)),
            }
    return opt


# ---------------------------------------------------------------------------------------------
# Bandwidth of a tier
# ---------------------------------------------------------------------------------------------
def tier_arrays(tier: str, nbytes: int, workdir: Path | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float32 arrays of ``nbytes`` each, in ``tier`` (``hot_cold`` has no arrays of its own)."""
    n = max(1, nbytes // 4)
    if tier in ("dram", "numa_remote"):
        return torch.full((n,), 1.0), torch.full((n,), 2.0)
    if tier in ("mmap_cached", "mmap_cgroup"):
        a = file_tensor(Path(workdir) / "bw_a.f32", (n,), torch.full((n,), 1.0))
        b = file_tensor(Path(workdir) / "bw_b.f32", (n,), torch.full((n,), 2.0))
        return a, b
    raise ValueError(f"tier {tier!r} has no arrays of its own")


def measure_tier_bandwidth(a: torch.Tensor, b: torch.Tensor, dim: int, idx: torch.Tensor, out: torch.Tensor, *,
                           threads: int, rounds: int = 2, min_run_time: float = 0.1) -> list[dict]:
    """Read, write, copy and row-gather bandwidth of the memory holding ``a`` and ``b`` (two
    float32 arrays of one size, e.g. from :func:`tier_arrays`), with the ``00-hardware`` harness:
    the STREAM kernels of :func:`studylib.limits.stream_kernels` timed by
    :func:`studylib.timing.benchmark` (explicit thread count, warm-up, raw blocks kept).

    Kernels: ``read`` (``a.sum()``, one word per element), ``write`` (``b.fill_``, one word),
    ``copy`` (``b.copy_(a)``, two words; STREAM's byte counting) and ``gather``
    (``index_select`` of the rows ``idx`` of ``a`` seen as ``[-1, dim]`` into ``out``: the
    embedding-gather access pattern; bytes = rows read + rows written). The kernels alternate in
    order over ``rounds`` rounds. Storage traffic during each kernel is counted
    (:class:`IOCounter`). Returns rows ``{kernel, round, block, seconds, bytes, bytes_per_s,
    array_bytes, threads, number_per_run, storage_read_bytes_per_call}``.
    """

    table = a.view(-1, dim)
    kernels = {k: (fn, words * a.numel() * a.element_size())
               for k, (fn, words) in stream_kernels(a, b, torch.zeros(1)).items() if k in ("read", "write", "copy")}
    kernels["gather"] = (lambda: torch.index_select(table, 0, idx, out=out), 2 * len(idx) * dim * a.element_size())
    rows = []
    for r in range(rounds):
        order = list(kernels) if r % 2 == 0 else list(reversed(kernels))
        for k in order:
            fn, moved = kernels[k]
            io = IOCounter()
            io.start()
            res = timing.benchmark(fn, num_threads=threads, min_run_time=min_run_time, warmup=1, check_inputs=False,
                                   measure_memory=False, min_blocks=2)
            calls = len(res["times"]) * res["number_per_run"]
            per_call = io.read()["storage_read_bytes"] / max(1, calls)
            for i, t in enumerate(res["times"]):
                rows.append({"kernel": k, "round": r, "block": i, "seconds": t, "bytes": moved, "bytes_per_s": moved / t,
                             "array_bytes": a.numel() * a.element_size(), "threads": threads,
                             "number_per_run": res["number_per_run"], "storage_read_bytes_per_call": per_call})
    return rows


def tier_chain(tier: str, nbytes: int, workdir: Path | str, seed: int = 0) -> torch.Tensor:
    """An int64 array of ``nbytes // 8`` entries in ``tier`` holding one random cycle through all
    its entries (Sattolo's algorithm): following ``i = chain[i]`` visits every entry once, each
    step a random location, each load depending on the previous one (a pointer chase). File-backed
    tiers get a shared mapping of ``workdir/chain.i64``, written and evicted first. Raises
    ``ValueError`` for ``hot_cold`` (no arrays of its own)."""
    n = max(2, nbytes // 8)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    chain = np.empty(n, dtype=np.int64)
    chain[perm] = np.roll(perm, -1)  # one cycle: perm[k] -> perm[k + 1]
    if tier in ("dram", "numa_remote"):
        return torch.from_numpy(chain)
    if tier in ("mmap_cached", "mmap_cgroup"):
        path = Path(workdir) / "chain.i64"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            chain.tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())
        drop_file_cache(path)
        return torch.from_file(str(path), shared=True, size=n, dtype=torch.int64)
    raise ValueError(f"tier {tier!r} has no arrays of its own")


def _chase(mv, start: int, steps: int) -> int:
    i = start
    for _ in range(steps):
        i = mv[i]
    return i


def measure_tier_latency(chain: torch.Tensor, *, rounds: int = 2, min_run_time: float = 0.05,
                         seed: int = 0) -> list[dict]:
    """Latency of one dependent random load from the memory holding ``chain`` (see
    :func:`tier_chain`), by a pointer chase: ``steps`` loads ``i = chain[i]`` in a Python loop, minus
    the same loop over a 512-entry chain that stays in the L1 cache (the interpreter's own cost per
    step), divided by ``steps``. The chase starts at a random entry each block; ``steps`` is sized so
    that a block takes about ``min_run_time`` seconds (64 to 10^6 steps).

    Returns rows ``{kernel: "latency", round, block, seconds, latency_s, accesses, baseline_s,
    array_bytes}`` (``rounds`` blocks). The load of a file-backed tier includes its page faults.
    Source of the method: the lmbench ``lat_mem_rd`` pointer chase (McVoy and Staelin, USENIX 1996).
    """
    mv = memoryview(chain.numpy())
    small = np.empty(512, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(512)
    small[perm] = np.roll(perm, -1)
    smv = memoryview(small)
    rng = np.random.default_rng(seed + 1)
    n = len(chain)
    t0 = time.perf_counter()
    _chase(mv, int(rng.integers(n)), 64)
    per = max((time.perf_counter() - t0) / 64, 1e-8)
    steps = int(min(10**6, max(64, min_run_time / per)))
    rows = []
    for r in range(rounds):
        start = int(rng.integers(n))
        t0 = time.perf_counter()
        _chase(mv, start, steps)
        t_big = time.perf_counter() - t0
        t0 = time.perf_counter()
        _chase(smv, 0, steps)
        t_small = time.perf_counter() - t0
        rows.append({"kernel": "latency", "round": r, "block": 0, "seconds": t_big,
                     "latency_s": max(t_big - t_small, 0.0) / steps, "accesses": steps, "baseline_s": t_small,
                     "array_bytes": n * 8, "bytes": float("nan"), "bytes_per_s": float("nan")})
    return rows


# ---------------------------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------------------------
def _proc_io() -> dict:
    out = {}
    with contextlib.suppress(OSError):
        for line in open("/proc/self/io"):
            k, _, v = line.partition(":")
            out[k.strip()] = int(v)
    return out


def _majflt() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


class Flusher:
    """A thread that writes dirty pages of ``paths`` back every ``interval_s`` seconds
    (``fdatasync``). Under a cgroup v1 limit, page cache that is dirty cannot be reclaimed at once,
    and a step that dirties faster than the kernel writes back gets the process killed for memory
    (v1 has no per-cgroup dirty throttling); flushing keeps the tier's page cache reclaimable."""

    def __init__(self, paths, interval_s: float = 0.01):
        self.paths, self.interval_s = [str(p) for p in paths], interval_s
        self._stop = threading.Event()

    def __enter__(self):
        fds = [os.open(p, os.O_RDONLY) for p in self.paths]

        def run():
            try:
                while not self._stop.wait(self.interval_s):
                    for fd in fds:
                        with contextlib.suppress(OSError):
                            os.fdatasync(fd)
            finally:
                for fd in fds:
                    os.close(fd)

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        return False


class IOCounter:
    """Major page faults and bytes read from / written to storage by this process (``getrusage``,
    ``/proc/self/io``) between :meth:`start` and :meth:`read`."""

    def start(self) -> None:
        self._f, self._io = _majflt(), _proc_io()

    def read(self) -> dict:
        io = _proc_io()
        return {"major_faults": _majflt() - self._f,
                "storage_read_bytes": io.get("read_bytes", 0) - self._io.get("read_bytes", 0),
                "storage_write_bytes": io.get("write_bytes", 0) - self._io.get("write_bytes", 0)}


def _terminate(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """Stop a worker we started: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


class _SigtermToInterrupt:
    """Turn SIGTERM into KeyboardInterrupt while active (main thread only), so that cleanup runs
    when a runner stops the kernel."""

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt("SIGTERM")

            self._old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


class WorkerError(RuntimeError):
    """The memory-tier worker failed or timed out. ``rows``: what it finished before (every unit of
    work it completed); ``current``: the unit it was running (``None`` if unknown); ``reason``:
    ``"oom"`` (killed by the kernel's out-of-memory killer), ``"timeout"`` or ``"failed"``."""

    def __init__(self, message: str, rows: list[dict], current: str | None, reason: str):
        super().__init__(message)
        self.rows, self.current, self.reason = rows, current, reason


def _collect(workdir: Path) -> list[dict]:
    rows = []
    for f in sorted(workdir.glob("part-*.parquet")):
        rows.extend(pd.read_parquet(f).to_dict("records"))
    return rows


class PartWriter:
    """The worker's output: one parquet file per finished unit of work (so that a worker killed
    half-way loses only the unit it was in), and ``current.txt`` naming the unit being run."""

    def __init__(self, workdir: Path | str):
        self.workdir, self.n = Path(workdir), 0

    def start(self, unit: str) -> None:
        (self.workdir / "current.txt").write_text(unit)

    def done(self, unit: str, rows: list[dict]) -> None:
        df = pd.DataFrame([{**r, "unit": unit} for r in rows] or [{"unit": unit, "kind": "empty"}])
        tmp = self.workdir / f".part-{self.n:04d}.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, self.workdir / f"part-{self.n:04d}.parquet")
        self.n += 1
        (self.workdir / "current.txt").unlink(missing_ok=True)


def run_worker(job: dict, *, workdir: Path | str, timeout_s: float = 600, numa: tuple[int, int] | None = None,
               cgroup: bool = True) -> tuple[list[dict], dict]:
    """Run ``python -m studylib.studies.recsys_memory_tiers.memory_tiers`` on ``job`` in a fresh process and return its rows.

    When ``cgroup`` is true and memory cgroups are usable, a :class:`MemoryCgroup` (unlimited at
    first) is created, its path passed to the worker (which moves itself in and out and sets the
    limits), and removed afterwards. The worker runs with :data:`WORKER_MALLOC_ENV`.
    ``numa=(cpu_node, mem_node)`` prefixes ``numactl``. The worker, its cgroup and the tier files
    under ``workdir`` are cleaned up after success, failure, time-out and interrupt (Ctrl-C or
    SIGTERM).

    Returns ``(rows, info)``; ``info`` holds the worker's ``pid`` and ``cgroup`` path. Raises
    :class:`WorkerError` (with the rows of the finished units, the unit that was running and the
    log tail) when the worker fails or exceeds ``timeout_s``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for f in workdir.glob("part-*.parquet"):
        f.unlink()
    job_path = workdir / "job.json"
    cg = None
    proc = None
    info = {}
    try:
        with _SigtermToInterrupt():
            if cgroup:
                support = cgroup_support()
                if support.version is not None:
                    cleanup_stale(support.parent)
                    cg = MemoryCgroup(None, support)
            job = {**job, "cgroup": str(cg.path) if cg else None, "cgroup_version": cg.version if cg else None,
                   "workdir": str(workdir)}
            job_path.write_text(json.dumps(job, default=str))
            from studylib import paths

            cmd = [sys.executable, "-m", WORKER_MODULE, str(job_path)]
            if numa is not None:
                cmd = ["numactl", f"--cpunodebind={numa[0]}", f"--membind={numa[1]}", *cmd]
            pythonpath = os.pathsep.join(p for p in (str(paths.project_root()), os.environ.get("PYTHONPATH", "")) if p)
            env = {**os.environ, **WORKER_MALLOC_ENV, "PYTHONPATH": pythonpath}
            err_path = workdir / "stderr.txt"
            with open(err_path, "w") as err:
                proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, env=env, cwd=str(workdir))
                info = {"pid": proc.pid, "cgroup": str(cg.path) if cg else None}
                reason = None
                try:
                    rc = proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    _terminate(proc)
                    rc, reason = None, "timeout"
            if rc != 0:
                reason = reason or ("oom" if rc in (-9, 137) else "failed")
                what = {"oom": "was killed by the kernel's out-of-memory killer (the cgroup limit is below the "
                               "memory the step needs)", "timeout": f"exceeded {timeout_s} s",
                        "failed": f"failed (exit {rc})"}[reason]
                cur = workdir / "current.txt"
                current = cur.read_text() if cur.is_file() else None
                log = err_path.read_text(errors="replace")
                log = "\n".join(line for line in log.splitlines() if "STAGE:" not in line)[-2000:]
                raise WorkerError(f"memory-tier worker {what} while running {current}: {log}", _collect(workdir),
                                  current, reason)
            return _collect(workdir), info
    finally:
        if proc is not None:
            _terminate(proc)
        if cg is not None:
            cg.remove()
        for f in workdir.rglob("*.f32"):
            with contextlib.suppress(OSError):
                f.unlink()



def status_rows(statuses: list[TierStatus]) -> list[dict]:
    """Tier statuses as table rows, with each tier's figure label."""
    return [{**asdict(s), "label": TIER_LABELS[s.tier]} for s in statuses]

