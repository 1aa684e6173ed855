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
slots for ``H`` halo nodes: ``capacity = floor(fraction * H)`` (:func:`capacity_for`, as the
authors' ``int(len(halo) * fraction)``), the same budget for every policy.

Policies (:func:`make_cache`):

``none`` (:class:`NoCache`)
    plain DistDGL: every remote row is pulled.
``massivegnn`` (:class:`MassiveGNNCache`)
    the prefetch-and-eviction scheme of Sarkar, Ghosh, Tallent and Jannesari (*MassiveGNN*, IEEE
    CLUSTER 2024, arXiv 2410.22697, Sec. III), following the authors' code (pnnl/MassiveGNN,
    ``massivegnn/prefetch/prefetch.py`` and ``lookup.py``; written here from what it does):

    * the buffer holds the ``capacity`` halo nodes of highest in-degree (ties: lower node id
      first), loaded in one bulk pull; every slot's eviction score starts at 1.0; scores are
      float32, as the authors keep them;
    * every mini-batch every slot's score is multiplied by ``d = float32(1 - alpha)`` and a slot
      hit in this mini-batch is divided by ``d`` again (a hit leaves the score unchanged, up to
      float32 rounding; it does not add to it);
    * every halo node has a float32 miss count, +1 for every mini-batch in which it was needed and
      not in the buffer; nodes in the buffer hold -1;
    * every ``delta``-th mini-batch (the counter runs across epochs) is an eviction round: the
      candidates are the slots whose score is strictly below ``round((1 - alpha) ** delta, 3)``
      (compared in float32; the rounding makes the threshold 0, so eviction is off, when
      ``(1 - alpha) ** delta < 0.0005``), taken in buffer order (the buffer is kept sorted by node
      id); the replacements are the halo nodes with a miss count > 0, most missed first (ties:
      lower node id first); ``min(candidates, replacements)`` slots are replaced; an evicted node's
      miss count becomes its eviction score at eviction, an admitted node's score becomes its miss
      count (a node missed 7 times starts at 7.0); the replacements' features are pulled in the
      same pull as the mini-batch's misses. An eviction round that finds candidates does not count
      its mini-batch's misses (the authors update the miss counts only in the other mini-batches);
    * ``eviction=False`` keeps the initial buffer (the authors' prefetch without eviction).
``decayed-use`` (:class:`DecayedUseCache`)
    an ablation, this module's earlier rule: a hit adds 1 to the slot's score (a decayed use
    count), fresh slots start at 1, the threshold ``(1 - alpha) ** delta`` is not rounded, and the
    lowest scores are evicted first.
``static`` (:class:`StaticCache`)
    classical static cache: the hottest halo nodes by access count over one pre-sampled epoch
    (``hot_counts``), loaded once, never changed (as in PaGraph, Lin et al., SoCC 2020, and
    GNNLab's pre-sampling, Yang et al., EuroSys 2022).
``lru`` (:class:`LRUCache`)
    least recently used: starts like ``massivegnn`` (highest in-degree first); each missed halo
    node is admitted into the slot used longest ago, never into a slot used by the same mini-batch.

The same classes serve the cluster trainer (with a real pull) and the offline replay
(:mod:`studylib.studies.distributed_caching.replay`, with features of width 0).

Every :meth:`FeatureCache.fetch` returns exactly what ``pull(ids)`` would (a test checks it for
every policy) and leaves its counters and timings in :attr:`FeatureCache.last`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = ["POLICIES", "POLICY_DESCRIPTIONS", "CacheStats", "DecayedUseCache", "FeatureCache", "LRUCache",
           "MassiveGNNCache", "NoCache", "StaticCache", "capacity_for", "check_cache_params", "degree_order",
           "make_cache", "massivegnn_threshold"]

#: Policy names accepted by :func:`make_cache`.
POLICIES = ("none", "massivegnn", "static", "lru", "decayed-use")
#: One line per policy (tables and the notebook).
POLICY_DESCRIPTIONS = {
    "none": "plain DistDGL: every remote row pulled",
    "massivegnn": "MassiveGNN (published rule): degree-filled buffer, float32 scores decayed by 1-alpha, hits "
                  "restored, every delta-th mini-batch slots below round((1-alpha)^delta, 3) replaced by the most "
                  "missed halo nodes",
    "static": "the hottest halo nodes of a pre-sampled epoch, never changed",
    "lru": "least recently used slot replaced by each missed halo node",
    "decayed-use": "ablation: +1 per hit, x(1-alpha) when unused, fresh slots at 1, threshold (1-alpha)^delta "
                   "not rounded, lowest scores evicted first",
}

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
    """Buffer slots for ``num_halo`` halo nodes: ``floor(fraction * num_halo)`` (the authors'
    ``int(len(halo_nodes) * fraction)``; 0 without halo). Raises ``ValueError`` for a fraction
    outside (0, 1]."""
    check_cache_params(fraction=fraction)
    return int(float(fraction) * int(num_halo)) if num_halo > 0 else 0


def massivegnn_threshold(alpha: float, delta: int) -> float:
    """MassiveGNN's eviction threshold ``round((1 - alpha) ** delta, 3)`` (Python's round, float64;
    the authors' ``Prefetch.__init__``). 0.0, which switches eviction off (no float32 score is
    below 0), when ``(1 - alpha) ** delta < 0.0005``. Raises ``ValueError`` for bad parameters."""
    check_cache_params(alpha=alpha, delta=delta)
    return round((1.0 - float(alpha)) ** int(delta), 3)


def degree_order(degrees: torch.Tensor) -> torch.Tensor:
    """Halo indices by in-degree, highest first, ties by lower halo index (= lower node id, the
    halo ids being sorted): int64 ``[H]`` for ``degrees`` ``[H]``."""
    return torch.sort(-degrees.to(torch.int64), stable=True).indices


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
    """The MassiveGNN prefetch-and-eviction buffer, the published rule (see the module docstring).

    Extra args: ``alpha`` in (0, 1), ``delta`` >= 1 (mini-batches between eviction rounds),
    ``eviction`` (False = the initial buffer is kept). Attributes: :attr:`score` (float32 ``[S]``,
    each slot's eviction score), :attr:`misses` (float32 ``[H]``, each halo node's miss count, -1
    while it is in the buffer), :attr:`threshold` (float32 ``round((1 - alpha) ** delta, 3)``),
    :attr:`decay` (float32 ``1 - alpha``).

    Source: Sarkar et al., MassiveGNN (IEEE CLUSTER 2024, Sec. III) and the authors' code
    (pnnl/MassiveGNN: ``massivegnn/prefetch/prefetch.py``, ``Prefetch.prefetch_with_eviction``,
    ``replace_eviction_candidates``; ``massivegnn/prefetch/lookup.py``, ``lookup``).
    """

    name = "massivegnn"

    def __init__(self, halo_ids: torch.Tensor, capacity: int, pull: Pull, feature_dim: int, *, alpha: float,
                 delta: int, eviction: bool = True, dtype: torch.dtype = torch.float32):
        check_cache_params(alpha=alpha, delta=delta)
        super().__init__(halo_ids, capacity, pull, feature_dim, dtype)
        self.alpha, self.delta, self.eviction = float(alpha), int(delta), bool(eviction)
        self.decay = np.float32(1.0 - self.alpha)
        self.threshold = np.float32(massivegnn_threshold(self.alpha, self.delta))
        self.score = torch.zeros(self.S, dtype=torch.float32)
        self.misses = torch.zeros(self.H, dtype=torch.float32)
        self._missed = torch.empty(0, dtype=torch.int64)
        self._evicted = torch.empty(0, dtype=torch.int64)

    def warm_by_degree(self, degrees: torch.Tensor) -> CacheStats:
        """Load the ``capacity`` halo nodes of highest in-degree (``degrees``: ``[H]`` in halo
        index order, i.e. ascending node id; ties: lower node id first) in one bulk pull."""
        return self.warm(degree_order(degrees))

    def _after_warm(self, slots: torch.Tensor) -> None:
        self.score[slots] = 1.0
        self.misses[self.slot_node[slots]] = -1.0

    def _record_use(self, hit_slots: torch.Tensor, missed_halo: torch.Tensor) -> None:
        if self.S:
            d = torch.tensor(self.decay, dtype=torch.float32)
            self.score *= d                                   # every slot decays (float32) ...
            self.score[hit_slots] = self.score[hit_slots] / d  # ... and a hit slot is restored
        self._missed = missed_halo

    def _count_misses(self) -> None:
        missed, self._missed = self._missed, torch.empty(0, dtype=torch.int64)
        if missed.numel():
            self.misses[missed] += 1.0

    def _choose_replacements(self) -> tuple[torch.Tensor, torch.Tensor]:
        empty = torch.empty(0, dtype=torch.int64)
        if not self.eviction:
            self._missed = empty  # the authors' prefetch without eviction keeps no miss counts
            return empty, empty
        if not (self.S and self.step % self.delta == 0):
            self._count_misses()
            return empty, empty
        below = self.score < torch.tensor(self.threshold, dtype=torch.float32)
        if not bool(below.any()):
            self._count_misses()  # an eviction round without candidates counts its misses
            return empty, empty
        self._missed = empty  # a round with candidates does not count this mini-batch's misses
        # candidates in buffer order: the authors keep the buffer sorted by node id (= halo index)
        cand = torch.nonzero(below).flatten()
        cand = cand[torch.argsort(self.slot_node[cand])]
        repl = torch.nonzero(self.misses > 0).flatten()  # in halo index order = ascending node id
        repl = repl[torch.sort(-self.misses[repl], stable=True).indices]
        k = min(int(cand.numel()), int(repl.numel()))
        return cand[:k], repl[:k]

    def _admit(self, victims: torch.Tensor, newcomers: torch.Tensor, rows: torch.Tensor) -> None:
        self._evicted = self.slot_node[victims].clone()
        super()._admit(victims, newcomers, rows)

    def _after_admit(self, victims: torch.Tensor, newcomers: torch.Tensor) -> None:
        self.misses[self._evicted] = self.score[victims]  # an evicted node's miss count := its score
        self.score[victims] = self.misses[newcomers]      # an admitted node's score := its miss count
        self.misses[newcomers] = -1.0


class DecayedUseCache(FeatureCache):
    """Ablation ``decayed-use`` (this module's earlier reading of the paper, not the published
    rule): a slot's score is multiplied by ``(1 - alpha)`` when unused and increased by 1 when used
    (float64; a fresh slot starts at 1); every ``delta`` mini-batches the slots whose score fell
    below ``(1 - alpha) ** delta`` (not rounded; relative tolerance 1e-9) are refilled with the
    most-missed halo nodes, lowest scores first (ties: lower slot), most missed first (ties: lower
    node id); an admitted node's miss count restarts at 0 and its score at 1."""

    name = "decayed-use"
    RTOL = 1e-9

    def __init__(self, halo_ids: torch.Tensor, capacity: int, pull: Pull, feature_dim: int, *, alpha: float,
                 delta: int, dtype: torch.dtype = torch.float32):
        check_cache_params(alpha=alpha, delta=delta)
        super().__init__(halo_ids, capacity, pull, feature_dim, dtype)
        self.alpha, self.delta = float(alpha), int(delta)
        self.threshold = (1.0 - self.alpha) ** self.delta
        self.score = torch.zeros(self.S, dtype=torch.float64)
        self.misses = torch.zeros(self.H, dtype=torch.int64)

    def warm_by_degree(self, degrees: torch.Tensor) -> CacheStats:
        """Load the ``capacity`` halo nodes of highest in-degree (as :class:`MassiveGNNCache`)."""
        return self.warm(degree_order(degrees))

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
        if not (self.S and self.step % self.delta == 0):
            return empty, empty
        evictable = torch.nonzero(self.score < self.threshold * (1.0 - self.RTOL)).flatten()
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
        return self.warm(degree_order(degrees))

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
        policy: ``none``, ``massivegnn``, ``static``, ``lru`` or ``decayed-use`` (the ablation).
        halo_ids, pull, feature_dim, dtype: see :class:`FeatureCache`.
        fraction: buffer size as a fraction of the halo nodes, in (0, 1].
        alpha, delta, eviction: :class:`MassiveGNNCache` parameters (alpha and delta also of
            :class:`DecayedUseCache`).
        degrees: ``[H]`` degree of each halo node (halo index order; ``massivegnn`` and ``lru``).
        hot_counts: ``[H]`` accesses over a pre-sampled epoch (``static``).

    Returns ``(cache, warm-up stats)``. Raises ``ValueError`` for an unknown policy, bad
    parameters, or a missing ``degrees`` / ``hot_counts``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown cache policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if policy == "none":
        return NoCache(halo_ids, pull, feature_dim, dtype), CacheStats()
    scored = policy in ("massivegnn", "decayed-use")
    check_cache_params(fraction, alpha if scored else None, delta if scored else None)
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
    elif policy == "decayed-use":
        cache = DecayedUseCache(halo_ids, cap, pull, feature_dim, alpha=alpha, delta=delta, dtype=dtype)
    else:
        cache = LRUCache(halo_ids, cap, pull, feature_dim, dtype)
    return cache, cache.warm_by_degree(degrees)
