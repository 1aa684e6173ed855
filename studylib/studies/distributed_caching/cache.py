"""Caches of remote (halo) node features for distributed mini-batch GNN training.

In DistDGL every trainer owns one partition's nodes; a mini-batch's input nodes that other
machines own are *remote* and their features are pulled over the network for every mini-batch.
The policies here keep a fixed-size buffer of remote features per trainer and serve what they can
from it; they are written against an abstract ``pull(ids) -> Tensor`` (``ids`` int64 global node
ids; returns float ``[len(ids), F]`` in the order of ``ids``), so that they can be tested without a
cluster and used with DistDGL's ``DistTensor`` (``pull = lambda ids: g.ndata["feat"][ids]``).

Candidates are a partition's **halo nodes** (remote 1-hop neighbours of its own nodes; see
:mod:`studylib.distributed.partition`); remote input nodes outside the halo (2-hop and beyond) are
always pulled and counted separately. The memory budget is ``capacity = ceil(fraction * H)``
slots for ``H`` halo nodes (:func:`capacity_for`).

Policies (:func:`make_cache`):

``none`` (:class:`NoCache`)
    plain DistDGL: every remote row is pulled.
``massivegnn`` (:class:`MassiveGNNCache`)
    the prefetch-and-eviction scheme of Sarkar, Ghosh, Tallent and Jannesari (*MassiveGNN*, IEEE
    CLUSTER 2024, arXiv 2410.22697, Sec. III), written here from its description. The buffer
    starts with the highest-degree halo nodes (one bulk pull). Per mini-batch: cached rows come
    from the buffer, misses are pulled; every slot's eviction score is multiplied by
    ``(1 - alpha)`` when the slot is not used in the mini-batch and increased by 1 when it is (a
    decayed use count; a slot starts at 1); every halo node missed gets its miss count increased
    by 1. Every ``delta`` mini-batches, the slots whose score fell below ``(1 - alpha) ** delta``
    are refilled with the most-missed halo nodes (ties: lower halo index first; the slots with the
    lowest scores go first, ties: lower slot first), fetched in the same pull as the mini-batch's
    misses; an admitted node's miss count restarts at 0 and its score at 1. ``eviction=False``
    keeps the initial buffer (prefetch only).

    Why "+1 when used": a slot whose score were reset to 1 on use would fall below the threshold
    exactly when unused for more than ``delta`` mini-batches, whatever ``alpha``; with a decayed
    use count, ``alpha`` sets how long past use protects a slot. "Fell below" is tested with a
    relative tolerance of 1e-9, so that a fresh slot unused for exactly ``delta`` mini-batches
    (score ``(1 - alpha) ** delta`` up to rounding) stays.
``static`` (:class:`StaticCache`)
    classical static cache: the hottest halo nodes by access count over one pre-sampled epoch
    (``hot_counts``), loaded once, never changed (as in PaGraph, Lin et al., SoCC 2020, and
    GNNLab's pre-sampling, Yang et al., EuroSys 2022).
``lru`` (:class:`LRUCache`)
    least recently used: starts like ``massivegnn`` (highest degree first); each missed halo node
    is admitted into the slot used longest ago, never into a slot used by the same mini-batch.

Every :meth:`FeatureCache.fetch` returns exactly what ``pull(ids)`` would (a test checks it for
every policy) and leaves its counters and timings in :attr:`FeatureCache.last`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

__all__ = ["POLICIES", "CacheStats", "FeatureCache", "LRUCache", "MassiveGNNCache", "NoCache", "StaticCache",
           "capacity_for", "check_cache_params", "make_cache"]

#: Policy names accepted by :func:`make_cache`.
POLICIES = ("none", "massivegnn", "static", "lru")
#: Relative tolerance of the "score fell below the threshold" test (see the module docstring).
THRESHOLD_RTOL = 1e-9

Pull = Callable[[torch.Tensor], torch.Tensor]


def check_cache_params(fraction: float | None = None, alpha: float | None = None, delta: int | None = None) -> None:
    """Validate the cache parameters; ``None`` skips a check.

    Raises ``ValueError``: ``fraction`` outside (0, 1], ``alpha`` outside (0, 1), ``delta`` not a
    positive integer."""
    if fraction is not None and not (0 < float(fraction) <= 1):
        raise ValueError(f"prefetch fraction must be in (0, 1] (got {fraction})")
    if alpha is not None and not (0 < float(alpha) < 1):
        raise ValueError(f"alpha must be in (0, 1) (got {alpha})")
    if delta is not None and (int(delta) != delta or int(delta) < 1 or isinstance(delta, bool)):
        raise ValueError(f"delta must be a positive integer (got {delta})")


def capacity_for(num_halo: int, fraction: float) -> int:
    """Buffer slots for ``num_halo`` halo nodes: ``ceil(fraction * num_halo)`` (0 without halo).
    Raises ``ValueError`` for a fraction outside (0, 1]."""
    check_cache_params(fraction=fraction)
    return int(math.ceil(float(fraction) * int(num_halo) - 1e-9)) if num_halo > 0 else 0


@dataclass
class CacheStats:
    """Counters and timings of one :meth:`FeatureCache.fetch` call (or of a warm-up).

    Attributes:
        requested: remote rows asked for.
        halo: of those, halo nodes (cache candidates).
        hits: halo rows served from the buffer.
        halo_misses: halo rows pulled.
        nonhalo: remote rows outside the halo (always pulled).
        pulled_rows: rows pulled over the network (misses + nodes admitted by eviction).
        admitted: buffer slots refilled.
        lookup_s: seconds finding rows in the buffer, gathering them and updating scores/counts.
        eviction_s: seconds choosing victims and writing admitted rows.
        remote_s: seconds inside ``pull`` (the network).
    """

    requested: int = 0
    halo: int = 0
    hits: int = 0
    halo_misses: int = 0
    nonhalo: int = 0
    pulled_rows: int = 0
    admitted: int = 0
    lookup_s: float = 0.0
    eviction_s: float = 0.0
    remote_s: float = 0.0

    @property
    def hit_rate(self) -> float:
        """hits / (hits + halo misses); NaN when no halo row was asked for."""
        d = self.hits + self.halo_misses
        return self.hits / d if d else float("nan")

    def to_dict(self) -> dict:
        """The fields as a dict."""
        return asdict(self)


class FeatureCache:
    """Base class: the halo set, the buffer and the lookup.

    Args:
        halo_ids: int64 ``[H]`` global ids of this partition's halo nodes (any order; deduplicated).
        capacity: buffer slots (<= H; 0 = no buffer).
        pull: the plain pull (see the module docstring).
        feature_dim: F; dtype: feature dtype.

    Attributes:
        last: :class:`CacheStats` of the last call; totals: accumulated over all calls.
    """

    name = "base"

    def __init__(self, halo_ids: torch.Tensor, capacity: int, pull: Pull, feature_dim: int,
                 dtype: torch.dtype = torch.float32):
        self.halo_ids = torch.unique(halo_ids.to(torch.int64))  # sorted
        self.H = int(self.halo_ids.numel())
        if capacity < 0 or capacity > self.H:
            raise ValueError(f"capacity must be in [0, {self.H}] (got {capacity})")
        self.S = int(capacity)
        self.pull = pull
        self.F = int(feature_dim)
        self.dtype = dtype
        self.slot_of = torch.full((self.H,), -1, dtype=torch.int64)  # halo index -> slot
        self.slot_node = torch.full((self.S,), -1, dtype=torch.int64)  # slot -> halo index
        self.buffer = torch.zeros((self.S, self.F), dtype=dtype)
        self.step = 0
        self.last = CacheStats()
        self.totals = CacheStats()

    # ------------------------------------------------------------------ helpers
    def halo_index(self, ids: torch.Tensor) -> torch.Tensor:
        """int64 ``[len(ids)]``: index of each id in :attr:`halo_ids`, -1 for non-halo ids."""
        if self.H == 0 or ids.numel() == 0:
            return torch.full((ids.numel(),), -1, dtype=torch.int64)
        pos = torch.searchsorted(self.halo_ids, ids).clamp_(max=self.H - 1)
        return torch.where(self.halo_ids[pos] == ids, pos, torch.full_like(pos, -1))

    def cached_ids(self) -> torch.Tensor:
        """Global ids in the buffer (slot order; empty slots skipped)."""
        filled = self.slot_node[self.slot_node >= 0]
        return self.halo_ids[filled]

    def _pull(self, ids: torch.Tensor, stats: CacheStats) -> torch.Tensor:
        t0 = time.perf_counter()
        data = self.pull(ids) if ids.numel() else torch.empty((0, self.F), dtype=self.dtype)
        stats.remote_s += time.perf_counter() - t0
        stats.pulled_rows += int(ids.numel())
        return data

    def _accumulate(self, stats: CacheStats) -> None:
        self.last = stats
        for k, v in asdict(stats).items():
            setattr(self.totals, k, getattr(self.totals, k) + v)

    def warm(self, order: torch.Tensor) -> CacheStats:
        """Fill the buffer with the halo nodes ``order`` (halo indices, best first; the first
        ``capacity`` are used) in one bulk pull. Returns the warm-up's :class:`CacheStats`."""
        stats = CacheStats()
        take = order[: self.S].to(torch.int64)
        if take.numel():
            data = self._pull(self.halo_ids[take], stats)
            t0 = time.perf_counter()
            slots = torch.arange(take.numel())
            self.slot_node[slots] = take
            self.slot_of[take] = slots
            self.buffer[slots] = data.to(self.dtype)
            self._after_warm(slots)
            stats.eviction_s += time.perf_counter() - t0
            stats.admitted = int(take.numel())
        return stats

    def _after_warm(self, slots: torch.Tensor) -> None:
        pass

    # ------------------------------------------------------------------ the fetch
    def fetch(self, ids: torch.Tensor) -> torch.Tensor:
        """Features ``[len(ids), F]`` of remote nodes ``ids`` (int64 global ids, unique, none of
        them owned by this partition), exactly as ``pull(ids)`` returns them."""
        stats = CacheStats(requested=int(ids.numel()))
        t0 = time.perf_counter()
        hidx = self.halo_index(ids)
        is_halo = hidx >= 0
        slot = torch.full_like(hidx, -1)
        if self.S:
            slot[is_halo] = self.slot_of[hidx[is_halo]]
        hit = slot >= 0
        stats.halo = int(is_halo.sum())
        stats.hits = int(hit.sum())
        stats.halo_misses = stats.halo - stats.hits
        stats.nonhalo = stats.requested - stats.halo
        self.step += 1
        self._record_use(slot[hit], hidx[is_halo & ~hit])
        stats.lookup_s += time.perf_counter() - t0

        t1 = time.perf_counter()
        victims, newcomers = self._choose_replacements()
        stats.eviction_s += time.perf_counter() - t1

        miss_ids = ids[~hit]
        extra_h = newcomers
        if newcomers.numel():
            in_batch = torch.isin(self.halo_ids[newcomers], miss_ids)
            extra_h = newcomers[~in_batch]
        data = self._pull(torch.cat([miss_ids, self.halo_ids[extra_h]]), stats)

        t2 = time.perf_counter()
        out = torch.empty((ids.numel(), self.F), dtype=self.dtype)
        n_miss = int(miss_ids.numel())
        out[~hit] = data[:n_miss].to(self.dtype)
        if stats.hits:
            out[hit] = self.buffer[slot[hit]]
        stats.lookup_s += time.perf_counter() - t2

        if victims.numel():
            t3 = time.perf_counter()
            rows = torch.empty((newcomers.numel(), self.F), dtype=self.dtype)
            in_batch = torch.isin(self.halo_ids[newcomers], miss_ids)
            if in_batch.any():
                sorted_ids, perm = ids.sort()
                pos = perm[torch.searchsorted(sorted_ids, self.halo_ids[newcomers[in_batch]])]
                rows[in_batch] = out[pos]
            rows[~in_batch] = data[n_miss:].to(self.dtype)
            self._admit(victims, newcomers, rows)
            stats.admitted = int(victims.numel())
            stats.eviction_s += time.perf_counter() - t3
        self._accumulate(stats)
        return out

    def _admit(self, victims: torch.Tensor, newcomers: torch.Tensor, rows: torch.Tensor) -> None:
        old = self.slot_node[victims]
        self.slot_of[old[old >= 0]] = -1
        self.slot_node[victims] = newcomers
        self.slot_of[newcomers] = victims
        self.buffer[victims] = rows
        self._after_admit(victims, newcomers)

    # ------------------------------------------------------------------ policy hooks
    def _record_use(self, hit_slots: torch.Tensor, missed_halo: torch.Tensor) -> None:
        """Update policy state for one mini-batch: slots used, halo indices missed."""

    def _choose_replacements(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(victim slots, newcomer halo indices) of equal length, fetched with this mini-batch."""
        empty = torch.empty(0, dtype=torch.int64)
        return empty, empty

    def _after_admit(self, victims: torch.Tensor, newcomers: torch.Tensor) -> None:
        pass


class NoCache(FeatureCache):
    """Plain DistDGL: every remote row is pulled (``capacity`` is ignored)."""

    name = "none"

    def __init__(self, halo_ids: torch.Tensor, pull: Pull, feature_dim: int, dtype: torch.dtype = torch.float32):
        super().__init__(halo_ids, 0, pull, feature_dim, dtype)


class StaticCache(FeatureCache):
    """The hottest halo nodes of a pre-sampled epoch, loaded once (:meth:`warm_from_counts`)."""

    name = "static"

    def warm_from_counts(self, hot_counts: torch.Tensor) -> CacheStats:
        """``hot_counts``: int ``[H]`` accesses of each halo node (halo index order) over the
        pre-sampled epoch; the ``capacity`` most accessed are loaded (ties: lower index first)."""
        order = torch.sort(-hot_counts.to(torch.int64), stable=True).indices
        return self.warm(order)


class MassiveGNNCache(FeatureCache):
    """The MassiveGNN prefetch-and-eviction buffer (see the module docstring).

    Extra args: ``alpha`` in (0, 1), ``delta`` >= 1 (mini-batches between eviction rounds),
    ``eviction`` (False = the initial buffer is kept). Attributes: :attr:`score` (float64 ``[S]``),
    :attr:`misses` (int64 ``[H]``), :attr:`threshold` = ``(1 - alpha) ** delta``.
    """

    name = "massivegnn"

    def __init__(self, halo_ids: torch.Tensor, capacity: int, pull: Pull, feature_dim: int, *, alpha: float,
                 delta: int, eviction: bool = True, dtype: torch.dtype = torch.float32):
        check_cache_params(alpha=alpha, delta=delta)
        super().__init__(halo_ids, capacity, pull, feature_dim, dtype)
        self.alpha, self.delta, self.eviction = float(alpha), int(delta), bool(eviction)
        self.threshold = (1.0 - self.alpha) ** self.delta
        self.score = torch.zeros(self.S, dtype=torch.float64)
        self.misses = torch.zeros(self.H, dtype=torch.int64)

    def warm_by_degree(self, degrees: torch.Tensor) -> CacheStats:
        """Load the ``capacity`` highest-degree halo nodes (``degrees``: ``[H]`` in halo index
        order; ties: lower index first) in one bulk pull."""
        order = torch.sort(-degrees.to(torch.int64), stable=True).indices
        return self.warm(order)

    def _after_warm(self, slots: torch.Tensor) -> None:
        self.score[slots] = 1.0

    def _record_use(self, hit_slots: torch.Tensor, missed_halo: torch.Tensor) -> None:
        if self.S:
            used = torch.zeros(self.S, dtype=torch.bool)
            used[hit_slots] = True
            self.score = torch.where(used, self.score + 1.0, self.score * (1.0 - self.alpha))
        if missed_halo.numel():
            self.misses.index_add_(0, missed_halo, torch.ones_like(missed_halo))

    def _choose_replacements(self) -> tuple[torch.Tensor, torch.Tensor]:
        empty = torch.empty(0, dtype=torch.int64)
        if not (self.eviction and self.S and self.step % self.delta == 0):
            return empty, empty
        evictable = torch.nonzero(self.score < self.threshold * (1.0 - THRESHOLD_RTOL)).flatten()
        candidates = torch.nonzero(self.misses > 0).flatten()
        k = min(int(evictable.numel()), int(candidates.numel()))
        if k == 0:
            return empty, empty
        victims = evictable[torch.sort(self.score[evictable], stable=True).indices[:k]]
        newcomers = candidates[torch.sort(-self.misses[candidates], stable=True).indices[:k]]
        return victims, newcomers

    def _after_admit(self, victims: torch.Tensor, newcomers: torch.Tensor) -> None:
        self.score[victims] = 1.0
        self.misses[newcomers] = 0


class LRUCache(FeatureCache):
    """Least recently used (see the module docstring); :attr:`last_used` is the mini-batch
    counter at each slot's last use (0 = loaded at warm-up, never used)."""

    name = "lru"

    def __init__(self, halo_ids: torch.Tensor, capacity: int, pull: Pull, feature_dim: int,
                 dtype: torch.dtype = torch.float32):
        super().__init__(halo_ids, capacity, pull, feature_dim, dtype)
        self.last_used = torch.full((self.S,), -1, dtype=torch.int64)
        self._missed = torch.empty(0, dtype=torch.int64)

    def warm_by_degree(self, degrees: torch.Tensor) -> CacheStats:
        """Load the ``capacity`` highest-degree halo nodes (as :class:`MassiveGNNCache`)."""
        order = torch.sort(-degrees.to(torch.int64), stable=True).indices
        return self.warm(order)

    def _after_warm(self, slots: torch.Tensor) -> None:
        self.last_used[slots] = 0

    def _record_use(self, hit_slots: torch.Tensor, missed_halo: torch.Tensor) -> None:
        self.last_used[hit_slots] = self.step
        self._missed = missed_halo

    def _choose_replacements(self) -> tuple[torch.Tensor, torch.Tensor]:
        empty = torch.empty(0, dtype=torch.int64)
        missed, self._missed = self._missed, empty
        if not self.S or not missed.numel():
            return empty, empty
        free = torch.nonzero(self.last_used < self.step).flatten()  # not used by this mini-batch
        k = min(int(free.numel()), int(missed.numel()))
        if k == 0:
            return empty, empty
        victims = free[torch.sort(self.last_used[free], stable=True).indices[:k]]
        return victims, missed[:k]

    def _after_admit(self, victims: torch.Tensor, newcomers: torch.Tensor) -> None:
        self.last_used[victims] = self.step


def make_cache(policy: str, halo_ids: torch.Tensor, pull: Pull, feature_dim: int, *, fraction: float = 0.25,
               alpha: float = 0.5, delta: int = 8, eviction: bool = True, degrees: torch.Tensor | None = None,
               hot_counts: torch.Tensor | None = None, dtype: torch.dtype = torch.float32
               ) -> tuple[FeatureCache, CacheStats]:
    """Build and warm the cache of ``policy`` (see :data:`POLICIES`).

    Args:
        policy: ``none``, ``massivegnn``, ``static`` or ``lru``.
        halo_ids, pull, feature_dim, dtype: see :class:`FeatureCache`.
        fraction: buffer size as a fraction of the halo nodes, in (0, 1].
        alpha, delta, eviction: :class:`MassiveGNNCache` parameters.
        degrees: ``[H]`` degree of each halo node (halo index order; ``massivegnn`` and ``lru``).
        hot_counts: ``[H]`` accesses over a pre-sampled epoch (``static``).

    Returns ``(cache, warm-up stats)``. Raises ``ValueError`` for an unknown policy, bad
    parameters, or a missing ``degrees`` / ``hot_counts``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown cache policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if policy == "none":
        return NoCache(halo_ids, pull, feature_dim, dtype), CacheStats()
    check_cache_params(fraction, alpha if policy == "massivegnn" else None, delta if policy == "massivegnn" else None)
    n_halo = int(torch.unique(halo_ids).numel())
    cap = capacity_for(n_halo, fraction)
    if policy == "static":
        if hot_counts is None:
            raise ValueError("the static policy needs hot_counts (accesses per halo node over a pre-sampled epoch)")
        cache = StaticCache(halo_ids, cap, pull, feature_dim, dtype)
        return cache, cache.warm_from_counts(hot_counts)
    if degrees is None:
        raise ValueError(f"the {policy} policy needs the halo nodes' degrees")
    if policy == "massivegnn":
        cache = MassiveGNNCache(halo_ids, cap, pull, feature_dim, alpha=alpha, delta=delta, eviction=eviction,
                                dtype=dtype)
    else:
        cache = LRUCache(halo_ids, cap, pull, feature_dim, dtype)
    return cache, cache.warm_by_degree(degrees)
