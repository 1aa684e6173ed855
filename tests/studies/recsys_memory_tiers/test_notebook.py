"""Notebook 04-recsys-memory-tiers runs end to end with the smoke profile through papermill, its
tables and figures have the expected schema, and the cluster, cgroup and process resources it uses
are gone afterwards -- also after a failed and an interrupted cluster run of its trainer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from studylib import runner
from studylib.studies.recsys_memory_tiers import memory_tiers as mt

pytestmark = pytest.mark.slow

NB = "04-recsys-memory-tiers"
PROJECT = Path(__file__).resolve().parents[3]
TABLE_COLUMNS = {
    "accuracy": {"dataset", "model", "epoch", "loss", "recall", "ndcg", "popularity_recall", "run_id"},
    "single_machine": {"dataset", "model", "num_layers", "dim", "kind", "region", "step", "seconds",
                       "steps_per_epoch", "num_threads", "device", "core_budget", "cores", "core_count"},
    "redundancy": {"dataset", "num_layers", "layer", "node_redundancy", "edge_redundancy", "sum_nodes",
                   "distinct_nodes", "full_graph_edges_per_epoch"},
    "tiers": {"tier", "kind", "status", "dataset", "model"},
    "tier_status": {"tier", "available", "reason", "label"},
    "footprint": {"preset", "scale", "model", "num_train", "footprint_bytes", "predicted_bytes"},
}
FIGURES = ["epoch_time", "time_breakdown", "redundancy", "tier_slowdown", "tier_kernels", "memory_footprint",
           "tier_model"]


def _stale_cluster_names() -> list[str]:
    """Namespaces and links of the DistDGL launcher whose launcher process is gone."""
    from studylib.distributed import cluster

    left = cluster.orphaned()
    return left["netns"] + left["links"]


def _our_cgroups() -> list[Path]:
    sup = mt.cgroup_support()
    return sorted(sup.parent.glob(f"{mt.CGROUP_PREFIX}*")) if sup.parent else []


def test_smoke_profile_end_to_end(output_dirs, monkeypatch):
    from conftest import mirror_path

    if mirror_path() is not None:
        monkeypatch.setenv("STUDYLIB_DATA_MIRROR", str(mirror_path()))
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(output_dirs / "data"))
    cgroups_before = _our_cgroups()
    res = runner.run_notebooks([NB], "smoke", timeout=600)
    assert [r.status for r in res] == ["ok"], res
    out = output_dirs / "results" / NB
    for name, columns in TABLE_COLUMNS.items():
        df = pd.read_parquet(out / f"{name}.parquet")
        assert not df.empty, name
        assert columns <= set(df.columns), (name, columns - set(df.columns))
    single = pd.read_parquet(out / "single_machine.parquet")
    assert {"sampling", "fetch", "forward", "backward", "update", "step_total"} <= set(single["region"])
    # the smoke profile's one core budget: the single machine pinned to the first core, one thread
    assert set(single["core_budget"]) == {1} and set(single["cores"]) == {str(min(os.sched_getaffinity(0)))}
    assert set(single["num_threads"]) == {1}
    assert (single.loc[single["kind"] == "step", "seconds"] >= 0).all()
    red = pd.read_parquet(out / "redundancy.parquet")
    assert (red["node_redundancy"] >= 1).all() and (red["edge_redundancy"] >= 1).all()
    status = pd.read_parquet(out / "tier_status.parquet").set_index("tier")
    tiers = pd.read_parquet(out / "tiers.parquet")
    for tier, row in status.iterrows():
        ran = tier in set(tiers.loc[tiers["kind"] == "step", "tier"])
        assert ran == bool(row["available"]) or tiers.loc[tiers["tier"] == tier, "status"].ne("ok").any(), tier
        if not row["available"]:
            assert row["reason"], tier  # a skipped tier says why
    info = tiers[tiers["kind"] == "tier_info"].set_index("tier")
    assert not info.loc["dram", "file_backed"] and info.loc["mmap_cgroup", "file_backed"]
    # the pointer chase gives each tier with arrays a latency
    lat = tiers[(tiers["kind"] == "bandwidth") & (tiers["kernel"] == "latency")]
    assert {"dram", "mmap_cgroup"} <= set(lat["tier"]) and (lat["latency_s"] >= 0).all()
    findings = json.loads((out / "findings.json").read_text())
    from studylib.studies.recsys_memory_tiers.findings import FINDINGS

    assert [f["id"] for f in findings["findings"]] == [f.id for f in FINDINGS]
    assert all(f["verdict"] in {"reproduced", "partly", "not reproduced", "not measured", "not testable here"}
               for f in findings["findings"])
    from studylib.studies.recsys_memory_tiers.measure import distributed_available

    if distributed_available()[0]:
        dist = pd.read_parquet(out / "distributed.parquet")
        assert set(dist["num_machines"]) == {2}
        assert {"step", "memory", "redundancy_merged"} <= set(dist["kind"])
        # the whole cluster ran on the single machine's core set
        steps = dist[dist["kind"] == "step"]
        assert set(steps["cores"]) == set(single["cores"]) and set(steps["core_budget"]) == {1}
    else:
        assert findings["distributed_note"]
    figs = output_dirs / "figures" / NB
    for name in FIGURES:
        assert (figs / f"{name}.png").stat().st_size > 5000, name
        side = json.loads((figs / f"{name}.json").read_text())
        assert side["parameters"]["datasets"] == ["synthetic-movielens-100k"] and side["run_id"]
    assert (output_dirs / "reports" / "smoke" / f"{NB}.ipynb").is_file()
    # nothing is left behind: cluster namespaces and links, memory cgroups
    assert _stale_cluster_names() == []
    assert _our_cgroups() == cgroups_before


def _tiny_partition(tmp_path: Path) -> Path:
    from studylib.data.recsys import synthetic_bipartite
    from studylib.studies.recsys_memory_tiers.measure import partition_graph

    g = synthetic_bipartite(60, 80, 600, seed=0, name="tiny")
    return partition_graph(g, 2, "tiny04", cache_dir=tmp_path / "parts")


@pytest.fixture
def cluster_ok():
    from studylib.studies.recsys_memory_tiers.measure import distributed_available

    ok, why = distributed_available()
    if not ok:
        pytest.skip(why)


def test_failed_cluster_run_leaves_nothing(tmp_path, cluster_ok):
    from studylib import distributed

    part = _tiny_partition(tmp_path)
    with pytest.raises(distributed.ClusterError, match="trainer"):
        distributed.run_cluster(part, "studylib.studies.recsys_memory_tiers.recsys_trainer",
                                ["--graph-name", "tiny04", "--configs", '[{"model": "gcn", "num_layers": 1, "dim": 4}]'],
                                distributed.ClusterSpec(2), timeout_s=180, workdir=tmp_path / "run")
    assert _stale_cluster_names() == []


def test_interrupted_cluster_run_leaves_nothing(tmp_path, cluster_ok):
    part = _tiny_partition(tmp_path)
    driver = textwrap.dedent(f"""
        import sys
        from studylib import distributed
        try:
            distributed.run_cluster({str(part)!r}, "studylib.studies.recsys_memory_tiers.recsys_trainer",
                ["--graph-name", "tiny04", "--configs", '[{{"model": "lightgcn", "num_layers": 1, "dim": 4}}]',
                 "--batch-size", "2", "--steps", "100000", "--warmup-steps", "0"],
                distributed.ClusterSpec(2), timeout_s=300, workdir=sys.argv[1])
        except KeyboardInterrupt:
            sys.exit(3)
    """)
    work = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", driver, str(work)], cwd=PROJECT,
                            env={**os.environ, "PYTHONPATH": str(PROJECT)})
    try:
        deadline = time.monotonic() + 180
        # wait until a trainer is training (it prints when its configuration starts sampling)
        while not any("connect to server" in p.read_text(errors="replace")
                      for p in (work / "logs").glob("trainer*.log")) if (work / "logs").is_dir() else True:
            assert proc.poll() is None, "driver exited early"
            assert time.monotonic() < deadline, "cluster did not start"
            time.sleep(0.3)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _stale_cluster_names() == []
