"""02 estimates each cluster run's memory (partitions, features, buffers) before loading its graph, and
refuses a run that cannot fit, recording the estimate."""

from __future__ import annotations

import pytest

from studylib import memory
from studylib import params as sp
from studylib.studies.distributed_caching import measure as dc


def test_the_estimate_counts_partitions_features_and_buffers():
    P = sp.validate("02-distributed-caching", {"datasets": ["synthetic"], "synthetic_nodes": 10000,
                                                "synthetic_avg_degree": 10.0, "synthetic_feature_dim": 64})
    main = dc.plan_runs(P)[0]
    est = dc.run_estimate(main, P)
    n, e, f = 10000, 100000, 64
    halo = memory.random_partition_halo_nodes(n, e, 2)
    assert est.parts["graph"] == memory.graph_bytes(n, e) + n * f * 4 + 8 * n
    assert est.parts["partitions"] == memory.partition_bytes(2, n // 2, halo, e // 2, feature_width=f)
    caches = [v for v in main["variants"] if v["policy"] != "none"]
    assert est.parts["buffers"] == 2 * 4 * f * sum(int(v["fraction"] * halo) for v in caches)
    # without namespaces one process holds one partition: no halo, no buffers
    assert dc.run_estimate(main, P, mode="standalone").parts["buffers"] == 0
    assert dc.graph_shape("ogbn-products", P) == (2449029, 123718280, 100)


def test_a_run_too_large_for_this_host_is_refused_before_any_work(output_dirs, monkeypatch):
    P = sp.validate("02-distributed-caching", {"datasets": ["synthetic"], "synthetic_nodes": 10**12,
                                                "network_sweep": ["1g-200us"]})

    def forbidden(*a, **k):
        raise AssertionError("work started for a refused run")

    monkeypatch.setattr(dc, "cluster_mode", lambda: ("netns", ""))
    monkeypatch.setattr(dc, "trainer_device", lambda params: ("cpu", ""))
    monkeypatch.setattr(dc, "execute_run", forbidden)
    monkeypatch.setattr(dc, "partition", forbidden)
    lines = []
    out = dc.run_measurement(P, graphs={"synthetic": None}, log=lines.append)
    ep = out["epochs"]
    assert len(ep) == len(dc.plan_runs(P)) and (ep["status"] == "refused").all()
    assert (ep["memory_estimate_bytes"] > ep["memory_available_bytes"]).all()
    assert "does not fit" in ep["error"].iloc[0] and "partitions" in ep["error"].iloc[0]
    assert any("refused" in line for line in lines)
    with pytest.raises(memory.AllRefused, match="all 2 configuration"):
        memory.end_if_all_refused(ep, "02-distributed-caching")
