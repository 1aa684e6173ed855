"""Notebook 02-distributed-caching runs end to end with the smoke profile through papermill (a real
2-machine DistDGL cluster of network namespaces when the host allows it, else the standalone
fallback), its tables and figures have the expected schema, and nothing is left running."""

import json
import os

import pandas as pd
import pytest

from studylib import runner
from studylib.distributed import cluster as cl

pytestmark = pytest.mark.slow

TABLE_COLUMNS = {
    "epochs": {"graph", "machines", "network", "run", "variant", "model", "policy", "pipeline", "fraction", "alpha",
               "delta", "eviction", "epoch", "rank", "epoch_s", "sampling_s", "local_fetch_s", "remote_fetch_s",
               "cache_lookup_s", "cache_eviction_s", "wait_s", "forward_s", "backward_s", "allreduce_s", "update_s",
               "hits", "halo_misses", "remote_bytes", "net_rx_bytes", "network_rate_gbit_s", "network_latency_us",
               "threads", "run_id", "status"},
    "batches": {"variant", "epoch", "batch", "rank", "hits", "halo_misses", "nonhalo", "pulled_rows", "admitted",
                "remote_bytes", "sampling_s", "remote_fetch_s", "wait_s", "forward_s"},
    "setup": {"variant", "rank", "capacity", "num_halo", "warm_rows", "warm_s"},
    "accuracy": {"variant", "test_accuracy", "test_count", "chance_accuracy"},
    "links": {"graph", "network", "mode", "cluster_s", "network_rtt_us_measured", "network_gbit_s_measured"},
    "partitions": {"graph", "machines", "part", "inner_nodes", "halo_nodes", "halo_fraction"},
}
FIGURES = ["epoch_breakdown", "speedup_vs_fraction", "sensitivity_alpha_delta", "speedup_vs_network",
           "hit_rate_over_batches", "remote_bytes"]


def test_smoke_profile_end_to_end(output_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(tmp_path / "data"))  # partitions go to a temporary cache
    res = runner.run_notebooks(["02-distributed-caching"], "smoke", timeout=600)
    assert [r.status for r in res] == ["ok"], res
    out = output_dirs / "results" / "02-distributed-caching"
    for name, columns in TABLE_COLUMNS.items():
        df = pd.read_parquet(out / f"{name}.parquet")
        assert not df.empty, name
        assert columns <= set(df.columns), (name, columns - set(df.columns))
        assert (df["status"] == "ok").all(), name
    ep = pd.read_parquet(out / "epochs.parquet")
    mode = ep["cluster_mode"].iloc[0]
    if mode == "netns":
        assert set(ep["run"]) == {"main", "sweeps", "network"}
        assert set(ep["network"]) == {"1g-200us", "loopback"} and set(ep["machines"]) == {2}
        assert {"distdgl", "prefetch", "massivegnn", "static", "lru", "gat:distdgl", "gat:massivegnn",
                "massivegnn-noevict"} <= set(ep["variant"])
        assert (ep[ep["policy"] != "none"].groupby("variant")["hits"].sum() > 0).all()
        assert (ep[ep["policy"] == "none"]["hits"] == 0).all()
        assert set(ep["rank"]) == {0, 1}
        assert "massivegnn-d4" in set(ep["variant"]), "the cluster cell of the grid"
        replay = pd.read_parquet(out / "replay.parquet")
        assert set(replay["seed_order"]) == {"shuffle", "clustered"} and set(replay["rank"]) == {0, 1}
        assert {"none", "massivegnn", "massivegnn-noevict", "static", "lru", "decayed-use"} == set(replay["policy"])
        assert (replay["batches"] == 2 * 4).all(), "sweep_epochs x sweep_batches_per_epoch mini-batches recorded"
        assert (replay["hit_rate_remote"] <= replay["hit_rate_halo"] + 1e-12).all()
    else:
        assert ep["fallback_reason"].str.len().gt(0).all()
    assert (ep["epoch_s"] > 0).all()
    findings = json.loads((out / "findings.json").read_text())["findings"]
    assert [f["id"] for f in findings] == ["epoch-cut", "gain-source", "fraction", "eviction", "network", "accuracy",
                                           "policies"]
    assert all(f["verdict"] in {"reproduced", "partly", "not reproduced", "not measured", "not testable here"}
               for f in findings)
    assert (output_dirs / "figures" / "02-distributed-caching" / "findings.json").is_file()
    figs = output_dirs / "figures" / "02-distributed-caching"
    for name in FIGURES:
        assert (figs / f"{name}.png").stat().st_size > 5000, name
        side = json.loads((figs / f"{name}.json").read_text())
        assert side["parameters"]["datasets"] == ["synthetic"] and side["run_id"]
    assert (output_dirs / "reports" / "smoke" / "02-distributed-caching.ipynb").is_file()
    assert cl.orphaned() == {"netns": [], "links": []}, "the notebook left namespaces or links behind"
    if os.path.isdir("/dev/shm"):
        assert not [f for f in os.listdir("/dev/shm") if "smoke" in f or "synthetic" in f]
