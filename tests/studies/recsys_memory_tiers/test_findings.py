"""Each finding of 04-recsys-memory-tiers reaches every verdict it declares on small synthetic tables."""

from __future__ import annotations

import pandas as pd

from studylib import findings as fd
from studylib import timing
from studylib.studies.recsys_memory_tiers import findings as rf

GIB = 2**30


def test_findings_are_declared_once():
    ids = [f.id for f in rf.FINDINGS]
    assert len(ids) == len(set(ids)) == 7


# ---- 1. footprint (model-only)
def _foot(largest_gib: float, server_gib: float = 192.0):
    foot = pd.DataFrame({"model": ["lightgcn", "lightgcn"], "num_train": [1000, 2000], "footprint_bytes": [1e6, 2e6],
                         "predicted_bytes": [1e6, 2e6], "status": ["ok", "ok"]})
    paper = pd.DataFrame({"dataset": ["gowalla", "amazon-book"], "model": ["lightgcn"] * 2, "num_layers": [3, 3],
                          "dim": [64, 64], "calibrated_bytes": [1 * GIB, largest_gib * GIB],
                          "server_dram_bytes": [server_gib * GIB] * 2})
    return rf.tables(footprint=foot, paper_footprint=paper)


def test_footprint_verdicts_held_against_the_server():
    f = rf.FOOTPRINT_EXCEEDS_DRAM
    cases = [_foot(400), _foot(120), _foot(10), rf.tables()]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    row = fd.evaluate_one(f, _foot(400), {"gpus": []})
    assert row["verdict"] == fd.REPRODUCED and "model-only" in row["evidence"] and "192 GiB" in row["evidence"]
    # the same footprint against a bigger server is no longer beyond its DRAM
    assert fd.evaluate_one(f, _foot(400, server_gib=2048), {"gpus": []})["verdict"] == fd.NOT_REPRODUCED


# ---- 2. subgraph training
def _sub(sampling_share: float | None, redundancy: float | None):
    epochs = red = None
    if sampling_share is not None:
        epochs = pd.DataFrame({"num_machines": [1, 2, 2], "sampling_s": [0.0, sampling_share, sampling_share],
                               "fetch_s": [0.0, 0.1, 0.1], "step_s": [1.0, 1.0, 1.0]})
    if redundancy is not None:
        red = pd.DataFrame({"layer": [1, 1, 1], "num_layers": [1, 2, 3], "node_redundancy": [redundancy] * 3,
                            "edge_redundancy": [1.0] * 3})
    return rf.tables(epochs=epochs, redundancy=red)


def test_subgraph_training_verdicts():
    f = rf.SUBGRAPH_TRAINING_INEFFICIENT
    cases = [_sub(0.5, 3.0), _sub(0.5, 1.0), _sub(None, 3.0), _sub(0.1, 1.0), _sub(None, None)]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    # the redundancy alone, without cluster rows, is at most partly
    assert fd.evaluate_one(f, _sub(None, 3.0), {})["verdict"] == fd.PARTLY


# ---- 3. one machine vs the cluster, equal cores only
def _epochs(adv_by_layer: dict[int, float], cluster_cores: str = "0"):
    rows = []
    for L, adv in adv_by_layer.items():
        rows.append({"dataset": "d", "model": "lightgcn", "num_layers": L, "dim": 64, "num_machines": 1,
                     "core_budget": 1, "epoch_s": 1.0, "cores": "0", "core_count": 1})
        rows.append({"dataset": "d", "model": "lightgcn", "num_layers": L, "dim": 64, "num_machines": 2,
                     "core_budget": 1, "epoch_s": adv, "cores": cluster_cores, "core_count": 1})
    return rf.tables(epochs=pd.DataFrame(rows))


def test_one_machine_beats_cluster_only_on_equal_cores():
    f = rf.ONE_MACHINE_BEATS_CLUSTER
    cases = [_epochs({1: 2.0, 3: 3.0}), _epochs({1: 1.1, 3: 1.3}), _epochs({1: 0.9, 3: 0.7}),
             _epochs({1: 2.0, 3: 3.0}, cluster_cores="0,1")]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    row = fd.evaluate_one(f, _epochs({1: 2.0, 3: 3.0}, cluster_cores="0,1"), {})
    assert row["verdict"] == fd.NOT_MEASURED and "same core set" in row["evidence"]


# ---- 4. sparse kernels dominate
def _kernels(sparse_share: float):
    return rf.tables(tier_kernels=pd.DataFrame({
        "dataset": ["d"] * 2, "model": ["ngcf"] * 2, "tier": ["dram"] * 2,
        "kernel_class": [timing.SPMM, timing.GEMM], "share": [sparse_share, 1 - sparse_share]}))


def test_sparse_kernels_dominate_verdicts():
    f = rf.SPARSE_KERNELS_DOMINATE
    two = pd.concat([_kernels(0.8)["tier_kernels"], _kernels(0.2)["tier_kernels"].assign(model="lightgcn")])
    cases = [_kernels(0.8), _kernels(0.2), rf.tables(tier_kernels=two), rf.tables()]
    assert fd.reached_verdicts(f, cases) == f.verdicts()


# ---- 5./6. slow-tier claims
def _figures(slow_tier: str = "mmap_cgroup", latency_ns: float = 400.0, read_gb_s: float = 20.0):
    return pd.DataFrame({"tier": ["dram", slow_tier], "source": ["measured here", "measured here (emulated)"],
                         "latency_ns": [90.0, latency_ns], "read_gb_s": [40.0, read_gb_s],
                         "write_gb_s": [30.0, read_gb_s / 2], "gather_gb_s": [10.0, 1.0]})


def _tier_epochs(slow: float, hot: float, slow_tier: str = "mmap_cgroup", configs=(("d", "ngcf"),)):
    rows = []
    for ds, m in configs:
        for t, step, bw in (("dram", 1.0, 40e9), (slow_tier, slow, 5e9), ("hot_cold", hot, float("nan"))):
            rows.append({"dataset": ds, "model": m, "tier": t, "step_s": step, "slowdown": step,
                         "read_bytes_per_s": bw, "hit_rate": 0.7 if t == "hot_cold" else float("nan")})
    return pd.DataFrame(rows)


def test_bandwidth_sets_slowdown_needs_a_memory_like_tier():
    f = rf.BANDWIDTH_SETS_SLOWDOWN
    two = pd.concat([_tier_epochs(3.0, 1.2, "numa_remote"), _tier_epochs(1.0, 1.0, "numa_remote", (("e", "ngcf"),))])
    cases = [rf.tables(tier_epochs=_tier_epochs(3.0, 1.2, "numa_remote"), tier_figures=_figures("numa_remote", 5e4)),
             rf.tables(tier_epochs=_tier_epochs(1.0, 1.0, "numa_remote"), tier_figures=_figures("numa_remote")),
             rf.tables(tier_epochs=two, tier_figures=_figures("numa_remote")),
             rf.tables(tier_epochs=_tier_epochs(3.0, 1.2)[lambda d: d["tier"] == "dram"], tier_figures=_figures()),
             rf.tables(tier_epochs=_tier_epochs(3.0, 1.2), tier_figures=_figures(latency_ns=5e4, read_gb_s=0.2))]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    row = fd.evaluate_one(f, cases[-1], {})
    assert row["verdict"] == fd.NOT_TESTABLE and "50,000 ns" in row["evidence"]


def test_hot_cold_recovers_verdicts():
    f = rf.HOT_COLD_RECOVERS
    both = pd.concat([_tier_epochs(3.0, 1.2), _tier_epochs(3.0, 2.8, configs=(("e", "ngcf"),))])
    cases = [rf.tables(tier_epochs=_tier_epochs(3.0, 1.2), tier_figures=_figures()),
             rf.tables(tier_epochs=both, tier_figures=_figures()),
             rf.tables(tier_epochs=_tier_epochs(3.0, 2.8), tier_figures=_figures()),
             rf.tables(tier_epochs=_tier_epochs(1.0, 1.0), tier_figures=_figures()),
             rf.tables(tier_epochs=_tier_epochs(3.0, 1.2), tier_figures=_figures(latency_ns=5e4, read_gb_s=0.2))]
    assert fd.reached_verdicts(f, cases) == f.verdicts()


def _model(optane: float, hot: float, configs=(("d", "ngcf"),)):
    rows = []
    for ds, m in configs:
        rows += [{"dataset": ds, "model": m, "target": "mmap_cgroup", "basis": "x", "hit_rate": 0.0,
                  "measured_slowdown": 3.0, "predicted_slowdown": 2.5},
                 {"dataset": ds, "model": m, "target": "optane", "basis": "Optane", "hit_rate": 0.0,
                  "measured_slowdown": float("nan"), "predicted_slowdown": optane},
                 {"dataset": ds, "model": m, "target": "hot_cold_optane", "basis": "Optane", "hit_rate": 0.7,
                  "measured_slowdown": float("nan"), "predicted_slowdown": hot}]
    return pd.DataFrame(rows)


def test_hot_cold_optane_model_verdicts():
    f = rf.HOT_COLD_RECOVERS_OPTANE
    both = pd.concat([_model(2.0, 1.1), _model(2.0, 1.9, (("e", "ngcf"),))])
    cases = [rf.tables(tier_model=_model(2.0, 1.1)), rf.tables(tier_model=both), rf.tables(tier_model=_model(2.0, 1.9)),
             rf.tables(tier_model=_model(2.0, 1.1)[lambda d: d["target"] != "hot_cold_optane"])]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    row = fd.evaluate_one(f, cases[0], {})
    assert "model-only" in row["evidence"] and "predicted 2.50x, measured 3.00x" in row["evidence"]


def test_hot_cold_optane_model_needs_a_slower_optane():
    row = fd.evaluate_one(rf.HOT_COLD_RECOVERS_OPTANE, rf.tables(tier_model=_model(1.05, 1.0)), {})
    assert row["verdict"] == fd.NOT_MEASURED and "no extra time" in row["evidence"]


def test_the_page_cache_control_is_no_slow_tier():
    fig = _figures("mmap_cached", latency_ns=100.0, read_gb_s=40.0)
    assert rf.memory_like_tiers(fig)[0] == []
