"""MassiveGNN's published eviction rule replayed offline on scripted mini-batches, checked against
values worked out by hand; every policy through the same replay."""

from __future__ import annotations

import numpy as np
import pytest

from studylib.studies.distributed_caching import cache as C
from studylib.studies.distributed_caching.replay import REPLAY_POLICIES, access_counts, replay, replay_grid

HALO = [10, 11, 12, 13, 14, 15]
DEGREES = [5, 9, 5, 1, 1, 1]

# alpha 0.5 (decay d = 0.5, exact in float32), delta 2: eviction rounds at mini-batches 2, 4, 6;
# threshold round(0.5 ** 2, 3) = 0.25, a slot is a candidate when its score < 0.25 (strictly).
# Buffer: floor(0.4 * 6) = 2 slots, filled by in-degree: 11 (9), then 10 and 12 tie at 5 -> 10
# (lower id). Scores start at 1.0; nodes in the buffer hold miss count -1.
#
# mb ids          hits  scores after (decay, hits restored)  miss counts (12 13 14 15 | 10 11)  round
# 1  10 12 13     10    10: 1.0   11: 0.5                     12:1 13:1
# 2  12 14        -     10: 0.5   11: 0.25                    12:2 14:1                         no candidate: 0.25 is not < 0.25
# 3  13 10        10    10: 0.5   11: 0.125                   13:2
# 4  13 15        -     10: 0.25  11: 0.0625 -> candidate 11 (10 at 0.25 is not below); replacements by miss
#                       count: 12 (2), 13 (2), 14 (1); 12 and 13 tie -> 12 (lower id); min(1, 3) = 1 slot:
#                       11 out (its miss count := its score 0.0625), 12 in (its score := its miss count 2.0);
#                       this round's misses (13, 15) are not counted; pulled together: 13 15 + 12
#                       buffer 10: 0.25  12: 2.0                  12:-1 13:2 14:1 15:0 11:0.0625
# 5  13 11 12     12    10: 0.125 12: 2.0                     13:3 11:1.0625
# 6  11           -     10: 0.0625 12: 1.0 -> candidate 10; replacements 13 (3), 11 (1.0625), 14 (1) -> 13 in
#                       with score 3.0, 10 out with miss count 0.0625; 11's miss is not counted
#                       buffer 12: 1.0  13: 3.0                   10:0.0625 11:1.0625 13:-1 14:1 15:0
SCRIPT = [[10, 12, 13], [12, 14], [13, 10], [13, 15], [13, 11, 12], [11]]
EXPECTED = [  # hits, halo misses, replaced, buffer, scores, miss counts of 10..15
    (1, 2, 0, [10, 11], [1.0, 0.5], [-1, -1, 1, 1, 0, 0]),
    (0, 2, 0, [10, 11], [0.5, 0.25], [-1, -1, 2, 1, 1, 0]),
    (1, 1, 0, [10, 11], [0.5, 0.125], [-1, -1, 2, 2, 1, 0]),
    (0, 2, 1, [10, 12], [0.25, 2.0], [-1, 0.0625, -1, 2, 1, 0]),
    (1, 2, 0, [10, 12], [0.125, 2.0], [-1, 1.0625, -1, 3, 1, 0]),
    (0, 1, 1, [12, 13], [1.0, 3.0], [0.0625, 1.0625, -1, -1, 1, 0]),
]


def test_massivegnn_published_rule_by_hand():
    per = replay(HALO, DEGREES, SCRIPT, "massivegnn", fraction=0.4, alpha=0.5, delta=2)
    assert len(per) == len(SCRIPT)
    for row, (hits, misses, replaced, buffer, scores, counts) in zip(per.itertuples(), EXPECTED):
        where = f"mini-batch {row.batch + 1}"
        assert (row.hits, row.halo_misses, row.replaced) == (hits, misses, replaced), where
        assert row.buffer.tolist() == buffer, where
        assert row.scores.dtype == np.float32, "scores are float32, as the authors keep them"
        assert row.scores.tolist() == scores, where
        assert row.miss_counts.tolist() == counts, where


def test_the_earlier_rule_fails_the_published_script():
    """The ablation (+1 per hit, unrounded threshold, lowest score first) is not the published rule:
    the script above tells them apart from the first mini-batch on (a hit slot scores 2.0)."""
    per = replay(HALO, DEGREES, SCRIPT, "decayed-use", fraction=0.4, alpha=0.5, delta=2)
    assert per["scores"].iloc[0].tolist() == [2.0, 0.5]
    assert [r.buffer.tolist() for r in per.itertuples()] != [e[3] for e in EXPECTED]


def test_the_rounding_of_the_threshold_switches_eviction_off():
    # alpha 0.5: 0.5 ** 10 = 0.000977 rounds to 0.001, 0.5 ** 11 = 0.000488 rounds to 0.0: with
    # delta 11 no score is below the threshold, so nothing is ever replaced. One slot (10, degree 9)
    # is never hit while 11 is missed in every mini-batch: with delta 10 the slot's score after 10
    # mini-batches, 0.5 ** 10 = 0.000977 < 0.001, gets it replaced by 11 at mini-batch 10.
    assert C.massivegnn_threshold(0.5, 10) == 0.001 and C.massivegnn_threshold(0.5, 11) == 0.0
    seq = [[11]] * 25
    on = replay([10, 11], [9, 1], seq, "massivegnn", fraction=0.5, alpha=0.5, delta=10)
    assert on["replaced"].tolist() == [0] * 9 + [1] + [0] * 15
    assert on["buffer"].iloc[9].tolist() == [11] and on["hits"].iloc[10:].eq(1).all()
    off = replay([10, 11], [9, 1], seq, "massivegnn", fraction=0.5, alpha=0.5, delta=11)
    assert off["replaced"].sum() == 0 and off["buffer"].iloc[-1].tolist() == [10]
    # the ablation (threshold not rounded) replaces with delta 11 at its second round
    abl = replay([10, 11], [9, 1], seq, "decayed-use", fraction=0.5, alpha=0.5, delta=11)
    assert abl["replaced"].tolist() == [0] * 21 + [1] + [0] * 3


def test_float32_threshold_cells_of_the_published_settings():
    # (alpha, delta): (0.05, 25): 0.95 ** 25 = 0.2774 -> 0.277, a slot unhit for 25 mini-batches
    # (float32 0.27738) stays, so the first replacement comes at mini-batch 50; (0.05, 32):
    # 0.95 ** 32 = 0.19371 -> 0.194, already below after 32: replaced at mini-batch 32.
    seq = [[11]] * 64
    first = {}
    for d in (25, 32):
        per = replay([10, 11], [9, 1], seq, "massivegnn", fraction=0.5, alpha=0.05, delta=d)
        first[d] = int(per.loc[per["replaced"] > 0, "batch"].iloc[0]) + 1
    assert first == {25: 50, 32: 32}


def test_every_policy_replays_and_reports_the_same_accesses():
    rng = np.random.default_rng(0)
    halo = np.arange(100, 160)
    batches = [np.unique(np.concatenate([rng.choice(halo, 12, replace=False), rng.integers(500, 520, 3)]))
               for _ in range(40)]
    deg = rng.integers(1, 20, halo.size)
    for policy in REPLAY_POLICIES:
        per = replay(halo, deg, batches, policy, fraction=0.25, alpha=0.05, delta=4)
        assert (per["hits"] + per["halo_misses"] == per["halo"]).all()
        assert (per["nonhalo"] == per["requested"] - per["halo"]).all()
        sizes = per["buffer"].map(len)
        assert (sizes == (0 if policy == "none" else 15)).all(), policy
        if policy in ("none",):
            assert per["hits"].sum() == 0
        if policy in ("massivegnn-noevict", "static"):
            assert per["replaced"].sum() == 0 and all(np.array_equal(b, per["buffer"].iloc[0]) for b in per["buffer"])
        if policy in ("massivegnn", "lru", "decayed-use"):
            assert per["replaced"].sum() > 0, policy
    static = replay(halo, deg, batches, "static", fraction=0.25)
    top = halo[np.argsort(-access_counts(halo, batches).numpy(), kind="stable")[:15]]
    assert static["buffer"].iloc[0].tolist() == sorted(top.tolist())
    grid = replay_grid(halo, deg, batches, batches_per_epoch=10, fraction=0.25, alphas=[0.005, 0.05], deltas=[25, 32])
    assert len(grid) == 4 + 2 * 4  # none, noevict, static, lru + 4 cells of massivegnn and the ablation
    assert set(grid["policy"]) == set(REPLAY_POLICIES)
    assert (grid["hit_rate_remote"] <= grid["hit_rate_halo"] + 1e-12).all()


def test_replay_rejects_bad_inputs():
    with pytest.raises(ValueError, match="unknown replay policy"):
        replay([1, 2], [1, 1], [[1]], "fifo")
    with pytest.raises(ValueError, match="in_degrees has 1 entries for 2 halo nodes"):
        replay([1, 2], [1], [[1]], "lru")
    with pytest.raises(ValueError, match="unique"):
        replay([1, 1], [1, 1], [[1]], "lru")
