"""Tests of studylib.studies.recsys_memory_tiers.memory_tiers: placement really is file-backed where it says so, tiers the machine
cannot provide are skipped with a reason, and the worker, its memory cgroup and the tier files are
cleaned up after success, failure and interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from studylib.studies.recsys_memory_tiers import memory_tiers as mt

PROJECT = Path(__file__).resolve().parents[3]
CGROUP = mt.cgroup_support()
needs_cgroup = pytest.mark.skipif(CGROUP.version is None, reason=f"no usable memory cgroup: {CGROUP.reason}")


def _our_cgroups() -> list[Path]:
    return sorted(CGROUP.parent.glob(f"{mt.CGROUP_PREFIX}*")) if CGROUP.parent else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is not alive
        return fh.read().split(")")[-1].split()[0] != "Z"


# --------------------------------------------------------------------------- placement
def test_file_tensor_is_a_mapping_of_its_file(tmp_path):
    init = torch.arange(12.0).view(3, 4)
    t = mt.file_tensor(tmp_path / "a.f32", (3, 4), init)
    assert mt.mapping_of(t) == str(tmp_path / "a.f32")
    assert mt.is_file_backed(t, tmp_path / "a.f32")
    assert not mt.is_file_backed(torch.zeros(1000, 64))
    torch.testing.assert_close(t, init)
    t[1, 2] = -5.0  # writes go to the file
    on_disk = np.fromfile(tmp_path / "a.f32", dtype=np.float32).reshape(3, 4)
    assert on_disk[1, 2] == -5.0


def test_place_table_in_each_tier(tmp_path):
    init = torch.randn(50, 8)
    dram = mt.place_table(init, "dram", tmp_path / "d")
    assert not mt.is_file_backed(dram.full())
    mm = mt.place_table(init, "mmap_cgroup", tmp_path / "m")
    assert mt.is_file_backed(mm.full(), tmp_path / "m" / "table.f32")
    torch.testing.assert_close(mm.full(), init)
    hot = torch.tensor([3, 7, 11])
    hc = mt.place_table(init, "hot_cold", tmp_path / "h", hot_ids=hot)
    assert not mt.is_file_backed(hc.hot.data)
    assert mt.is_file_backed(hc.cold.data, tmp_path / "h" / "table.cold.f32")
    torch.testing.assert_close(hc.full(), init)
    torch.testing.assert_close(hc.rows(torch.tensor([7, 0, 11])), init[[7, 0, 11]])
    cold_on_disk = np.fromfile(tmp_path / "h" / "table.cold.f32", dtype=np.float32).reshape(-1, 8)
    keep = torch.ones(50, dtype=torch.bool)
    keep[hot] = False
    np.testing.assert_allclose(cold_on_disk, init[keep].numpy())
    with pytest.raises(ValueError, match="hot_ids"):
        mt.place_table(init, "hot_cold", tmp_path / "x")
    with pytest.raises(ValueError, match="unknown memory tier"):
        mt.place_table(init, "optane", tmp_path / "x")


def test_tier_optimizer_keeps_adam_state_in_files(tmp_path):
    from studylib.models.recsys import LightGCN

    table = mt.place_table(torch.randn(20, 4), "mmap_cgroup", tmp_path)
    model = LightGCN(20, 4, 1, embedding=table)
    opt = mt.tier_optimizer(model, table, "mmap_cgroup", tmp_path, lr=0.1)
    before = table.full().detach().clone()
    import dgl

    g = dgl.graph((torch.arange(19), torch.arange(1, 20)), num_nodes=20)
    model(g).sum().backward()
    opt.step()
    st = opt.state[table.weight]
    assert mt.is_file_backed(st["exp_avg"]) and mt.is_file_backed(st["exp_avg_sq"])
    assert not torch.equal(before, table.full().detach())  # the update wrote into the mapping


def test_evict_and_resident_fraction(tmp_path):
    t = mt.file_tensor(tmp_path / "r.f32", (4096, 16), torch.ones(4096, 16))
    assert mt.resident_fraction(tmp_path / "r.f32") < 0.2  # written, synced and dropped
    float(t.sum())
    assert mt.resident_fraction(tmp_path / "r.f32") > 0.9
    mt.evict(t, tmp_path / "r.f32")
    assert mt.resident_fraction(tmp_path / "r.f32") < 0.2
    assert float(t.sum()) == 4096 * 16  # data survives the eviction


def test_hot_rows_are_the_highest_degrees():
    deg = torch.tensor([5, 1, 9, 9, 0, 3])
    assert mt.hot_rows(deg, 0.5).tolist() == [0, 2, 3]


# --------------------------------------------------------------------------- what the machine provides
def test_unavailable_tiers_are_skipped_with_a_reason(monkeypatch, tmp_path):
    statuses = {s.tier: s for s in mt.tier_status(mt.TIERS, tmp_path)}
    assert statuses["dram"].available
    if mt.numa_nodes() < 2:
        assert not statuses["numa_remote"].available
        assert "NUMA node" in statuses["numa_remote"].reason
    monkeypatch.setattr(mt, "cgroup_support", lambda: mt.CgroupSupport(None, None, "no cgroup v2 memory controller"))
    s = {x.tier: x for x in mt.tier_status(mt.TIERS, tmp_path)}
    for tier in mt.CGROUP_TIERS:
        assert not s[tier].available and "no usable memory cgroup" in s[tier].reason
    assert s["mmap_cached"].available and s["dram"].available
    with pytest.raises(ValueError, match="unknown memory tier"):
        mt.tier_status(["optane"])
    with pytest.raises(RuntimeError, match="no usable memory cgroup"):
        mt.MemoryCgroup(None, mt.CgroupSupport(None, None, "none here"))


@pytest.mark.skipif(mt.filesystem_type("/dev/shm") not in ("tmpfs",), reason="/dev/shm is not tmpfs here")
def test_tmpfs_is_no_slow_tier():
    s = {x.tier: x for x in mt.tier_status(mt.TIERS, "/dev/shm")}
    assert not s["mmap_cgroup"].available and "tmpfs" in s["mmap_cgroup"].reason


@needs_cgroup
def test_memory_cgroup_limits_and_is_removed():
    with mt.MemoryCgroup(64 * 2**20) as cg:
        path = cg.path
        assert path.is_dir()
        assert cg.stats()["usage"] >= 0
        cg.set_limit(None)
    assert not path.exists()


# --------------------------------------------------------------------------- the worker: success, failure, interrupt
@needs_cgroup
def test_worker_places_in_the_cgroup_tier_and_cleans_up(tmp_path):
    before = _our_cgroups()
    rows, info = mt.run_worker({"kind": "place", "tier": "hot_cold", "rows": 40, "dim": 4, "hot": 5},
                               workdir=tmp_path / "w", timeout_s=120)
    by = {r["param"]: r for r in rows}
    assert by["cold"]["file_backed"] and by["cold"]["mapping"].endswith("table.cold.f32")
    assert not by["hot"]["file_backed"] and not isinstance(by["hot"]["mapping"], str)  # anonymous memory
    assert by["hot"]["sum"] + by["cold"]["sum"] == pytest.approx(sum(range(160)))
    assert not _alive(info["pid"])
    assert not Path(info["cgroup"]).exists() and _our_cgroups() == before
    assert not list((tmp_path / "w").rglob("*.f32"))


@needs_cgroup
def test_failing_worker_is_cleaned_up(tmp_path):
    before = _our_cgroups()
    with pytest.raises(mt.WorkerError, match="worker failure requested") as err:
        mt.run_worker({"kind": "fail"}, workdir=tmp_path / "w", timeout_s=120)
    assert err.value.reason == "failed" and err.value.current == "fail"
    assert _our_cgroups() == before


@needs_cgroup
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_driver_cleans_up_worker_and_cgroup(tmp_path, sig):
    """A driver process running a (sleeping) worker in a cgroup is interrupted: the worker is
    stopped and the cgroup removed before the driver exits."""
    driver = textwrap.dedent("""
        import sys
        from studylib.studies.recsys_memory_tiers import memory_tiers as mt
        try:
            mt.run_worker({"kind": "sleep", "seconds": 120}, workdir=sys.argv[1], timeout_s=300)
        except KeyboardInterrupt:
            sys.exit(3)
    """)
    work = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, "-c", driver, str(work)], cwd=PROJECT,
                            env={**os.environ, "PYTHONPATH": str(PROJECT)})
    try:
        deadline = time.monotonic() + 120
        while not (work / "ready").is_file():
            assert proc.poll() is None, "driver exited early"
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.2)
        worker_pid = int((work / "ready").read_text())
        job = json.loads((work / "job.json").read_text())
        cgroup = Path(job["cgroup"])
        assert cgroup.is_dir() and worker_pid in [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
        proc.send_signal(sig)
        assert proc.wait(60) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not cgroup.exists()
    deadline = time.monotonic() + 10
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker_pid)


@needs_cgroup
def test_stale_cgroups_are_removed():
    stale = CGROUP.parent / f"{mt.CGROUP_PREFIX}999999-dead"
    stale.mkdir()
    try:
        assert stale in mt.cleanup_stale(CGROUP.parent)
    finally:
        if stale.exists():
            stale.rmdir()
