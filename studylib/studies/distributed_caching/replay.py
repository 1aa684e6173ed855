"""Offline replay of the remote-feature caches on a sequence of mini-batches, without a cluster.

Given one partition's halo node ids, their in-degrees and a sequence of mini-batch remote input
node arrays (recorded in a cluster run, or scripted in a test), :func:`replay` runs one policy of
:mod:`studylib.studies.distributed_caching.cache` (the same classes the cluster trainer uses, with
features of width 0) and returns, per mini-batch, the hits, halo misses, slots replaced and the
buffer's contents. :func:`replay_grid` replays every policy and every ``alpha`` x ``delta`` cell of
MassiveGNN on the same sequence and summarises each (both hit rates, nodes admitted per epoch).

Ties are broken by ascending node id everywhere: equal in-degrees at the initial fill, equal miss
counts (MassiveGNN) or access counts (static) when choosing what to admit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from studylib.studies.distributed_caching.cache import (
    POLICY_DESCRIPTIONS,
    capacity_for,
    make_cache,
    massivegnn_threshold,
)

__all__ = ["REPLAY_POLICIES", "access_counts", "replay", "replay_grid", "summarize_replay"]

#: Policies of :func:`replay`: the cache policies, and ``massivegnn-noevict`` (MassiveGNN's
#: degree-filled buffer without eviction, the authors' prefetch-only run). Plain DistDGL with the
#: prefetch thread (``prefetch`` on the cluster) holds no buffer, so it replays as ``none``.
REPLAY_POLICIES = ("none", "massivegnn-noevict", "massivegnn", "decayed-use", "static", "lru")


def _ids(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.int64).flatten()


def access_counts(halo_ids, batches: Sequence) -> torch.Tensor:
    """Accesses of each halo node over ``batches`` (int64 ``[H]``, halo ids in ascending order):
    the static policy's pre-sampling counts."""
    halo = torch.unique(_ids(halo_ids))
    counts = torch.zeros(halo.numel(), dtype=torch.int64)
    if not halo.numel():
        return counts
    for b in batches:
        ids = _ids(b)
        pos = torch.searchsorted(halo, ids).clamp_(max=halo.numel() - 1)
        hit = halo[pos] == ids
        counts += torch.bincount(pos[hit], minlength=halo.numel())
    return counts


def replay(halo_ids, in_degrees, batches: Sequence, policy: str, *, fraction: float = 0.25, alpha: float = 0.05,
           delta: int = 25, hot_counts=None) -> pd.DataFrame:
    """Replay one cache policy on a sequence of mini-batches.

    Args:
        halo_ids: int ``[H]`` global ids of the partition's halo nodes (any order, unique).
        in_degrees: ``[H]`` in-degree of each halo node, in the order of ``halo_ids``.
        batches: per mini-batch, an int array of the remote input node ids (unique; non-halo ids
            allowed: they are counted as ``nonhalo`` and never cached).
        policy: one of :data:`REPLAY_POLICIES`.
        fraction: buffer slots per halo node (``floor(fraction * H)`` slots, every policy).
        alpha, delta: MassiveGNN's (and the ``decayed-use`` ablation's) parameters.
        hot_counts: ``[H]`` accesses per halo node (order of ``halo_ids``) for ``static``;
            default: :func:`access_counts` over ``batches`` (an oracle: it knows the sequence).

    Returns a DataFrame, one row per mini-batch: ``batch`` (0-based), ``requested``, ``halo``,
    ``hits``, ``halo_misses``, ``nonhalo``, ``replaced`` (slots refilled in this mini-batch) and
    ``buffer`` (int64 numpy array, the node ids in the buffer after the mini-batch, ascending),
    ``scores`` (the eviction scores of those slots, in the same order: float32 for
    ``massivegnn``, float64 for ``decayed-use``; ``None`` for the other policies) and
    ``miss_counts`` (each halo node's miss count, ascending halo id; -1 for a node in
    MassiveGNN's buffer; ``None`` for policies without one).

    Runs on one thread (the caller's thread count is restored). Raises ``ValueError`` for an
    unknown policy, bad parameters, or ``in_degrees`` / ``hot_counts`` of the wrong length.
    """
    if policy not in REPLAY_POLICIES:
        raise ValueError(f"unknown replay policy {policy!r}; choose one of {', '.join(REPLAY_POLICIES)}")
    raw = _ids(halo_ids)
    order = torch.argsort(raw)
    halo = raw[order]
    if torch.unique(halo).numel() != halo.numel():
        raise ValueError("halo_ids must be unique")
    deg = torch.as_tensor(np.asarray(in_degrees)).flatten()
    if deg.numel() != halo.numel():
        raise ValueError(f"in_degrees has {deg.numel()} entries for {halo.numel()} halo nodes")
    deg = deg[order]
    if policy == "static":
        if hot_counts is None:
            hot = access_counts(halo, batches)
        else:
            hot = torch.as_tensor(np.asarray(hot_counts)).flatten()
            if hot.numel() != halo.numel():
                raise ValueError(f"hot_counts has {hot.numel()} entries for {halo.numel()} halo nodes")
            hot = hot[order]
    else:
        hot = None

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small tensor operations: more threads only add overhead
    try:
        return _replay(halo, deg, hot, batches, policy, fraction, alpha, delta)
    finally:
        torch.set_num_threads(threads)


def _pull_nothing(ids: torch.Tensor) -> torch.Tensor:
    """Features of width 0: the replay moves no data."""
    return torch.zeros((ids.numel(), 0))


def _replay(halo, deg, hot, batches, policy, fraction, alpha, delta) -> pd.DataFrame:
    name = "massivegnn" if policy == "massivegnn-noevict" else policy
    cache, _ = make_cache(name, halo, _pull_nothing, 0, fraction=fraction, alpha=alpha, delta=delta,
                          eviction=policy != "massivegnn-noevict", degrees=deg, hot_counts=hot)
    rows = []
    scored = hasattr(cache, "score")
    for i, b in enumerate(batches):
        cache.fetch(_ids(b))
        s = cache.last
        filled = torch.nonzero(cache.slot_node >= 0).flatten()
        by_id = filled[torch.argsort(cache.slot_node[filled])]
        rows.append({"batch": i, "requested": s.requested, "halo": s.halo, "hits": s.hits,
                     "halo_misses": s.halo_misses, "nonhalo": s.nonhalo, "replaced": s.admitted,
                     "buffer": cache.halo_ids[cache.slot_node[by_id]].numpy(),
                     "scores": cache.score[by_id].numpy().copy() if scored else None,
                     "miss_counts": cache.misses.numpy().copy() if scored else None})
    return pd.DataFrame(rows, columns=["batch", "requested", "halo", "hits", "halo_misses", "nonhalo", "replaced",
                                       "buffer", "scores", "miss_counts"])


def summarize_replay(per_batch: pd.DataFrame, batches_per_epoch: int) -> dict:
    """One replay's totals: ``hit_rate_halo`` = hits / (hits + halo misses), ``hit_rate_remote`` =
    hits / remote input nodes, ``replaced`` (all mini-batches), ``admitted_per_epoch`` =
    replaced / (mini-batches / ``batches_per_epoch``), ``first_replacement`` (1-based mini-batch of
    the first slot replaced; NaN when none), ``batches``."""
    d = per_batch
    hits, halo, req = int(d["hits"].sum()), int(d["halo"].sum()), int(d["requested"].sum())
    n = len(d)
    rep = d.loc[d["replaced"] > 0, "batch"]
    return {"hit_rate_halo": hits / halo if halo else float("nan"),
            "hit_rate_remote": hits / req if req else float("nan"),
            "replaced": int(d["replaced"].sum()),
            "admitted_per_epoch": float(d["replaced"].sum()) / (n / max(1, batches_per_epoch)) if n else float("nan"),
            "first_replacement": float(rep.iloc[0] + 1) if len(rep) else float("nan"), "batches": n}


def replay_grid(halo_ids, in_degrees, batches: Sequence, *, batches_per_epoch: int, fraction: float,
                alphas: Sequence[float], deltas: Sequence[int]) -> pd.DataFrame:
    """Every policy of :data:`REPLAY_POLICIES` on one sequence, MassiveGNN and the ``decayed-use``
    ablation at every ``alpha`` x ``delta`` cell: one row per (policy, alpha, delta) with the
    columns of :func:`summarize_replay`, ``threshold`` (MassiveGNN's rounded threshold, NaN for
    other policies), ``capacity``, ``num_halo``, ``fraction`` and ``description``."""
    rows = []
    n_halo = int(np.unique(np.asarray(halo_ids)).size)
    for policy in REPLAY_POLICIES:
        scored = policy in ("massivegnn", "decayed-use")
        cells = [(a, d) for a in alphas for d in deltas] if scored else [(float("nan"), 0)]
        for a, d in cells:
            kw = {"alpha": a, "delta": d} if scored else {}
            per = replay(halo_ids, in_degrees, batches, policy, fraction=fraction, **kw)
            desc = POLICY_DESCRIPTIONS.get(policy, "MassiveGNN's degree-filled buffer, no eviction")
            rows.append({"policy": policy, "alpha": a, "delta": d, "fraction": fraction,
                         "threshold": massivegnn_threshold(a, d) if policy == "massivegnn" else float("nan"),
                         "capacity": capacity_for(n_halo, fraction) if policy != "none" else 0, "num_halo": n_halo,
                         **summarize_replay(per, batches_per_epoch), "description": desc})
    return pd.DataFrame(rows)
