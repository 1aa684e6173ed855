"""The persistent-memory tier model, the pointer chase, equal core sets and the memory estimates of
04-recsys-memory-tiers."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from studylib import memory, timing
from studylib.studies.recsys_memory_tiers import cores as cr
from studylib.studies.recsys_memory_tiers import estimates as es
from studylib.studies.recsys_memory_tiers import memory_tiers as mt
from studylib.studies.recsys_memory_tiers import pmem_model as pm


def test_published_figures_carry_their_sources():
    p = pm.PUBLISHED.set_index("device")
    six = p.loc["Optane DC PMM, 6 interleaved modules"]
    assert (six["latency_ns"], six["read_gb_s"], six["write_gb_s"]) == (305.0, 39.4, 13.9)
    one = p.loc["Optane DC PMM, 1 module"]
    assert (one["read_gb_s"], one["write_gb_s"]) == (6.6, 2.3)
    assert p.loc["Optane DC PMM, interleaved (Hirofuchi and Takano)", "latency_ns"] == 374.0
    assert all("Izraelevitz" in s or "Hirofuchi" in s for s in p["source"])
    with pytest.raises(KeyError, match="no published figures"):
        pm.published_figures("Optane 9000")


def test_step_traffic_counts_the_tier_bytes():
    lg = pm.step_traffic("lightgcn", 100, 1000, 10, 8).set_index("kernel_class")
    assert lg.loc[timing.SPMM, "count"] == 1000 and lg.loc[timing.SPMM, "bytes"] == 1000 * 32
    assert lg.loc[timing.INDEXING, "count"] == 60
    assert lg.loc[timing.ELEMENTWISE, "bytes"].sum() == 2 * 3 * 100 * 32  # Adam: 3 arrays read and written
    ng = pm.step_traffic("ngcf", 100, 1000, 10, 8)
    assert ng["bytes"].sum() == lg["bytes"].sum() + 100 * 32  # NGCF reads the table once more
    with pytest.raises(ValueError):
        pm.step_traffic("gat", 1, 1, 1, 1)


def test_predict_is_one_on_dram_and_grows_with_a_slower_tier():
    t = pm.step_traffic("lightgcn", 10_000, 200_000, 1024, 64)
    dram = pm.TierFigures("dram", 100e-9, 20e9, 15e9)
    assert pm.predict(0.1, t, dram, dram)["predicted_slowdown"] == pytest.approx(1.0)
    optane = pm.published_figures(cores=1)
    slow = pm.predict(0.1, t, optane, dram)
    assert slow["predicted_slowdown"] > 1 and slow["extra_s"] == pytest.approx(sum(
        v for k, v in slow.items() if k.startswith("extra_") and k != "extra_s"))
    # everything served by DRAM: no extra time; half: in between
    assert pm.predict(0.1, t, optane, dram, hit_rate=1.0, hot_fraction=1.0)["predicted_slowdown"] == pytest.approx(1.0)
    half = pm.predict(0.1, t, optane, dram, hit_rate=0.5, hot_fraction=0.5)["predicted_slowdown"]
    assert 1 < half < slow["predicted_slowdown"]
    with pytest.raises(ValueError, match="hit_rate"):
        pm.predict(0.1, t, optane, dram, hit_rate=1.5)


def _bandwidth(tier, read, write, lat):
    return [{"tier": tier, "kernel": "read", "bytes_per_s": read, "latency_s": np.nan},
            {"tier": tier, "kernel": "write", "bytes_per_s": write, "latency_s": np.nan},
            {"tier": tier, "kernel": "gather", "bytes_per_s": read / 4, "latency_s": np.nan},
            {"tier": tier, "kernel": "latency", "bytes_per_s": np.nan, "latency_s": lat}]


def test_figures_and_model_tables_put_emulated_beside_published():
    bw = pd.DataFrame(_bandwidth("dram", 20e9, 15e9, 100e-9) + _bandwidth("mmap_cgroup", 0.2e9, 0.1e9, 50e-6))
    fig = pm.figures_table(bw, ["dram", "mmap_cgroup"], 2)
    assert {"dram", "mmap_cgroup", "Optane DC PMM, 6 interleaved modules"} <= set(fig["tier"])
    row = fig.set_index("tier").loc["mmap_cgroup"]
    assert row["latency_ns"] == pytest.approx(50_000) and row["latency_vs_dram"] == pytest.approx(500)
    te = pd.DataFrame({"dataset": ["d"] * 3, "model": ["lightgcn"] * 3, "tier": ["dram", "mmap_cgroup", "hot_cold"],
                       "step_s": [0.1, 0.5, 0.2], "slowdown": [1.0, 5.0, 2.0], "hit_rate": [np.nan, np.nan, 0.8],
                       "num_layers": [2] * 3, "dim": [64] * 3})
    mt_ = pm.model_table(te, bw, {"d": {"num_nodes": 10_000, "num_edges": 200_000}}, 1024, 0.2, 2)
    assert set(mt_["target"]) == {"mmap_cgroup", "hot_cold", "optane", "hot_cold_optane"}
    m = mt_.set_index("target")
    assert m.loc["mmap_cgroup", "measured_slowdown"] == 5.0 and m.loc["mmap_cgroup", "predicted_slowdown"] > 1
    assert np.isnan(m.loc["optane", "measured_slowdown"])
    assert m.loc["hot_cold_optane", "predicted_slowdown"] < m.loc["optane", "predicted_slowdown"]
    assert pm.model_table(te, pd.DataFrame(), {}, 1024, 0.2, 2).empty


def test_pointer_chase_is_one_cycle_and_measures_a_latency(tmp_path):
    chain = mt.tier_chain("dram", 8 * 1000, tmp_path, seed=1)
    seen, i = set(), 0
    for _ in range(len(chain)):
        seen.add(i)
        i = int(chain[i])
    assert i == 0 and len(seen) == 1000  # one cycle through every entry
    fchain = mt.tier_chain("mmap_cached", 8 * 1000, tmp_path, seed=1)
    assert mt.is_file_backed(fchain) and torch.equal(fchain, chain)
    rows = mt.measure_tier_latency(chain, rounds=2, min_run_time=0.001)
    assert len(rows) == 2 and all(r["kernel"] == "latency" and r["latency_s"] >= 0 and r["accesses"] >= 64
                                  for r in rows)
    with pytest.raises(ValueError):
        mt.tier_chain("hot_cold", 80, tmp_path)


def test_core_sets_and_pinning():
    avail = cr.available_cores()
    sets, notes = cr.core_sets([1, len(avail) + 1])
    assert sets == {1: avail[:1]} and str(len(avail) + 1) in notes[0]
    with pytest.raises(ValueError, match=">= 1"):
        cr.core_sets([0])
    threads = torch.get_num_threads()
    with cr.pinned(avail[:1]) as used:
        assert used == avail[:1] and torch.get_num_threads() == 1
        assert all(os.sched_getaffinity(int(t)) == set(avail[:1]) for t in os.listdir("/proc/self/task"))
    assert tuple(sorted(os.sched_getaffinity(0))) == avail and torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="cannot pin"):
        with cr.pinned([max(avail) + 1000]):
            pass


def test_cluster_spec_pins_to_a_core_set():
    import subprocess
    import sys

    from studylib.distributed import ClusterSpec
    from studylib.distributed.cluster import _pinned_child

    first = min(os.sched_getaffinity(0))
    spec = ClusterSpec(2, cpus=(first,))
    assert spec.cpus == (first,) and spec.threads() == 1
    with pytest.raises(ValueError, match="cpus"):
        ClusterSpec(2, cpus=(max(os.sched_getaffinity(0)) + 1000,))
    out = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                         preexec_fn=_pinned_child((first,)), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([first])


def test_estimates_match_the_footprint_model():
    from studylib.studies.recsys_memory_tiers.measure import predicted_footprint_bytes

    for m in ("lightgcn", "ngcf"):
        est = es.full_graph_estimate(m, 5000, 40000, 3, 64, 1024)
        assert est.total == predicted_footprint_bytes(m, 5000, 40000, 3, 64, 1024)
        assert {"graph", "embeddings", "activations", "batch"} <= set(est.parts)
    assert es.preset_counts("gowalla", 1.0) == (29858 + 40981, int(0.8 * 1027370))
    d2 = es.distributed_estimate("ngcf", 5000, 40000, 2, 64, 2)
    assert {"partitions", "embeddings", "minibatches"} == set(d2.parts) and d2.total > 0


def test_too_large_configurations_are_refused_before_any_work(monkeypatch):
    from studylib.studies.recsys_memory_tiers import measure as rs
    from studylib.studies.recsys_memory_tiers.params import RecsysMemoryTiersParams

    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 10 * 2**20)

    def no_work(*a, **k):
        raise AssertionError("work started before the memory estimate")

    monkeypatch.setattr(rs, "synthetic_like", no_work)
    params = RecsysMemoryTiersParams(footprint_dim=64, footprint_layers=2)
    with pytest.raises(memory.Refused, match="footprint of ngcf on amazon-book x 1"):
        rs.measure_footprint("amazon-book", 1.0, "ngcf", params, torch.device("cpu"))

    class Graphs(dict):
        def dgl(self, name):
            raise AssertionError("work started before the memory estimate")

    from studylib.data.recsys import synthetic_bipartite

    g = synthetic_bipartite(2000, 3000, 20000, seed=0, name="g")
    with pytest.raises(memory.Refused):
        rs.measure_single_machine("ngcf", 4, 512, "g", Graphs(g=g), params, torch.device("cpu"))


def test_a_paged_tier_pays_a_fault_per_uncached_page():
    t = pm.step_traffic("lightgcn", 4096, 100_000, 64, 64)  # a 1 MiB table: 256 pages
    cold = pm.TierFigures("file", 50e-6, 20e9, 15e9, outstanding=1, page_bytes=4096, cached_share=0.0)
    warm = pm.TierFigures("file", 50e-6, 20e9, 15e9, outstanding=1, page_bytes=4096, cached_share=1.0)
    spmm = t["kernel_class"] == timing.SPMM
    # 100,000 random rows over 256 pages: 256 faults, not 100,000
    assert pm.access_seconds(t, cold)[spmm].iloc[0] == pytest.approx(256 * 50e-6 + 100_000 * 256 / 20e9)
    assert pm.access_seconds(t, warm)[spmm].iloc[0] == pytest.approx(100_000 * 256 / 20e9)
    assert pm.cached_share(pd.Series({"cgroup_limit_bytes": 3e6, "cgroup_anon_bytes": 2e6,
                                      "tier_file_bytes": 4e6})) == pytest.approx(0.25)
    assert pm.cached_share(pd.Series({"cgroup_limit_bytes": np.nan, "tier_file_bytes": 4e6})) == 1.0
