"""Every finding of 02-distributed-caching reaches each verdict it declares, from small synthetic
tables shaped like the cluster runs' (the run plan of the default parameters)."""

from __future__ import annotations

import pandas as pd
import pytest

from studylib import findings as fd
from studylib import params as sp
from studylib.studies.distributed_caching import measure as dc
from studylib.studies.distributed_caching.findings import declare

P = sp.validate("02-distributed-caching", {"datasets": ["synthetic", "cora"]})
RUNS = dc.plan_runs(P)
FINDINGS = {f.id: f for f in declare(P)}
NET_SPEED = {"loopback": 0, "10g-50us": 1, "1g-200us": 2}


def epochs(time=None, hit=None, admitted=None, remote=None, keep=None, mode="netns") -> pd.DataFrame:
    """Epoch rows (2 ranks, epochs 0-2, epoch 0 the warm-up) of every planned variant.
    ``time(run, v)``: epoch seconds (default: DistDGL 1.0, every other variant 0.8); ``hit(run, v)``:
    hit rate of a cache variant (default 0.3); ``admitted(run, v)``: nodes admitted per epoch and rank
    (default 5 for a massivegnn variant with eviction); ``remote(run, v)``: remote bytes."""
    time = time or (lambda run, v: 1.0 if v["label"].endswith("distdgl") else 0.8)
    hit = hit or (lambda run, v: 0.3)
    admitted = admitted or (lambda run, v: 5 if v["policy"] == "massivegnn" and v["eviction"] else 0)
    remote = remote or (lambda run, v: 1e6 * (1 - (hit(run, v) if v["policy"] != "none" else 0)))
    rows = []
    for run in RUNS:
        if keep and not keep(run):
            continue
        for v in run["variants"]:
            h = hit(run, v) if v["policy"] != "none" else 0.0
            for ep in range(3):
                for rank in (0, 1):
                    rows.append({**{k: run[k] for k in dc.RUN_KEY}, "variant": v["label"], "model": v["model"],
                                 "policy": v["policy"], "pipeline": v["pipeline"],
                                 "fraction": v["fraction"] if v["policy"] != "none" else 0.0, "alpha": v["alpha"],
                                 "delta": v["delta"], "eviction": v["eviction"], "epoch": ep, "rank": rank,
                                 "epoch_s": time(run, v), "train_loss": 1.0, "n_batches": 16,
                                 "hits": int(round(1000 * h)), "halo_misses": int(round(1000 * (1 - h))),
                                 "remote_nodes": 1600, "admitted": admitted(run, v) if v["policy"] != "none" else 0,
                                 "remote_bytes": remote(run, v), "net_rx_bytes": 2e6, "status": "ok",
                                 "cluster_mode": mode, "fallback_reason": "" if mode == "netns" else "no root"})
    return pd.DataFrame(rows)


def reached(fid: str, cases: list[dict]) -> set[str]:
    f = FINDINGS[fid]
    got = fd.reached_verdicts(f, cases)
    assert got == f.verdicts(), (fid, got, f.verdicts())
    return got


STANDALONE = {"epochs": epochs(mode="standalone")}


def test_epoch_cut():
    cora_slow = lambda run, v: 1.0 if v["label"].endswith("distdgl") or run["graph"] == "cora" else 0.7  # noqa: E731
    cases = [{"epochs": epochs(time=lambda run, v: 1.0 if v["label"].endswith("distdgl") else 0.7)},
             {"epochs": epochs(time=cora_slow)}, {"epochs": epochs(time=lambda run, v: 1.0)}, {}, STANDALONE]
    reached("epoch-cut", cases)
    r = fd.evaluate_one(FINDINGS["epoch-cut"], cases[1], {"gpus": []})
    assert r["verdict"] == fd.PARTLY and "cut 30%" in r["evidence"] and "cut 0%" in r["evidence"]
    assert "of all remote accesses" in r["evidence"]
    assert "standalone mode" in fd.evaluate_one(FINDINGS["epoch-cut"], STANDALONE, {"gpus": []})["evidence"]


def test_gain_source():
    def time(better_graphs):
        def t(run, v):
            if v["label"].endswith("distdgl"):
                return 1.0
            if v["label"] == "prefetch":
                return 0.9
            return 0.7 if run["graph"] in better_graphs else 0.95
        return t
    cases = [{"epochs": epochs(time=time({"synthetic", "cora"}))}, {"epochs": epochs(time=time({"cora"}))},
             {"epochs": epochs(time=time(set()))}, {"epochs": epochs(keep=lambda run: run["run"] != "main")},
             STANDALONE]
    reached("gain-source", cases)


def test_fraction():
    up = lambda run, v: 0.1 + 0.5 * v["fraction"]  # noqa: E731
    down = lambda run, v: 0.6 - 0.5 * v["fraction"]  # noqa: E731
    faster_big = lambda run, v: 1.0 if v["policy"] == "none" else 1.0 - 0.3 * v["fraction"]  # noqa: E731
    slower_big = lambda run, v: 1.0 if v["policy"] == "none" else 0.7 + 0.2 * v["fraction"]  # noqa: E731
    cases = [{"epochs": epochs(hit=up, time=faster_big)}, {"epochs": epochs(hit=up, time=slower_big)},
             {"epochs": epochs(hit=down, time=slower_big)}, {"epochs": epochs(keep=lambda run: run["run"] != "sweeps")},
             STANDALONE]
    reached("fraction", cases)


def test_eviction_is_judged_on_cells_that_admit_nodes():
    def hits(default_cell, other_cell):
        def h(run, v):
            if v["policy"] != "massivegnn" or not v["eviction"]:
                return 0.3
            return default_cell if v["alpha"] == P.alpha and v["delta"] == P.delta else other_cell
        return h
    none = {"epochs": epochs(admitted=lambda run, v: 0)}
    cases = [{"epochs": epochs(hit=hits(0.35, 0.4))}, {"epochs": epochs(hit=hits(0.35, 0.3))},
             {"epochs": epochs(hit=hits(0.3, 0.29))}, {"epochs": epochs(keep=lambda run: run["run"] != "sweeps")},
             none]
    reached("eviction", cases)
    r = fd.evaluate_one(FINDINGS["eviction"], none, {"gpus": []})
    assert r["verdict"] == fd.NOT_TESTABLE and "no alpha x delta cell of the cluster run admitted" in r["evidence"]
    assert "threshold 0.852" in r["evidence"] and "48 mini-batches per variant" in r["evidence"]
    # only cells that admit nodes count: the default cell admits none here and is left out
    only_other = epochs(hit=hits(0.2, 0.4), admitted=lambda run, v: 5 if v["alpha"] == 0.05 and v["eviction"] else 0)
    r = fd.evaluate_one(FINDINGS["eviction"], {"epochs": only_other}, {"gpus": []})
    assert r["verdict"] == fd.REPRODUCED and r["ours"] == "1 of 1 cells above"
    # the replay table adds its numbers to the evidence
    replay = pd.DataFrame([{"policy": "massivegnn", "seed_order": "clustered", "alpha": 0.05, "delta": 25,
                            "hit_rate_halo": 0.5, "admitted_per_epoch": 12.0},
                           {"policy": "massivegnn-noevict", "seed_order": "clustered", "alpha": float("nan"),
                            "delta": 0, "hit_rate_halo": 0.4, "admitted_per_epoch": 0.0}])
    r = fd.evaluate_one(FINDINGS["eviction"], {"epochs": only_other, "replay": replay}, {"gpus": []})
    assert "offline replay, clustered seeds: no eviction 40.0%; best cell alpha 0.05 / delta 25 50.0%" in r["evidence"]


def test_network():
    def speed(values):
        def t(run, v):
            if v["label"].endswith("distdgl") or v["label"] != "massivegnn":
                return 1.0
            return 1.0 / values[NET_SPEED[run["network"]]]
        return t
    cases = [{"epochs": epochs(time=speed([1.1, 1.2, 1.3]))}, {"epochs": epochs(time=speed([1.0, 1.4, 1.2]))},
             {"epochs": epochs(time=speed([1.3, 1.1, 1.0]))},
             {"epochs": epochs(keep=lambda run: run["run"] not in ("network",) and run["graph"] != "synthetic")},
             STANDALONE]
    reached("network", cases)
    r = fd.evaluate_one(FINDINGS["network"], cases[2], {"gpus": []})
    assert "On 1g-200us the buffer served 30% of halo accesses" in r["evidence"]
    r = fd.evaluate_one(FINDINGS["network"], cases[0], {"gpus": []})
    assert "fetches it saved were cheap" not in r["evidence"], "the sentence follows the numbers"


def accuracy(diffs) -> pd.DataFrame:
    rows = []
    for i, d in enumerate(diffs):
        base = {"graph": "synthetic", "machines": 2, "network": "1g-200us", "run": "main", "model": "sage",
                "test_count": 10000, "chance_accuracy": 0.125, "status": "ok"}
        rows.append({**base, "variant": "distdgl", "policy": "none", "pipeline": False, "test_accuracy": 0.8})
        rows.append({**base, "variant": f"v{i}", "policy": "massivegnn", "pipeline": True, "test_accuracy": 0.8 + d})
    return pd.DataFrame(rows).drop_duplicates(["variant"])


def test_accuracy():
    cases = [{"accuracy": accuracy([0.0, 0.01])}, {"accuracy": accuracy([0.0, 0.1])},
             {"accuracy": accuracy([0.1, -0.1])}, {}]
    reached("accuracy", cases)


def test_policies():
    def t(fastest):
        def f(run, v):
            if v["policy"] == "none":
                return 1.0
            return 0.6 if v["policy"] == fastest[run["graph"]] else 0.8
        return f
    cases = [{"epochs": epochs(time=t({"synthetic": "massivegnn", "cora": "massivegnn"}))},
             {"epochs": epochs(time=t({"synthetic": "massivegnn", "cora": "lru"}))},
             {"epochs": epochs(time=t({"synthetic": "static", "cora": "lru"}))},
             {"epochs": epochs(keep=lambda run: run["run"] != "main")}, STANDALONE]
    reached("policies", cases)


def test_the_notebook_records_every_finding(output_dirs):
    frame = fd.record("02-distributed-caching", declare(P), {"epochs": epochs()}, parameters={"x": 1},
                      machine={"gpus": [], "cores_available": 2})
    assert list(frame["id"]) == ["epoch-cut", "gain-source", "fraction", "eviction", "network", "accuracy",
                                 "policies"]
    assert set(frame["verdict"]) <= set(fd.VERDICTS)


@pytest.mark.parametrize("fid", sorted(FINDINGS))
def test_declarations_are_data(fid):
    f = FINDINGS[fid]
    assert f.claim and f.where and f.criterion.describe()
