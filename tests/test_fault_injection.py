"""Fault injection: a resumable sweep killed with SIGKILL at a seeded random moment is completed by
its rerun with nothing lost, nothing duplicated and no temporary file left; a run of notebook 02
interrupted between its tables is measured again; a killed namespace cluster leaves nothing
behind once the next run's start-up clean-up has run.

The sweep runs in a subprocess (``python -c``) writing one plain :class:`ResultTable` sweep and one
three-table :class:`ResultGroup` per configuration, with a private ``TMPDIR``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from studylib import results

CONFIGS = 10
SWEEP = textwrap.dedent("""
    import os, signal, sys, time
    from studylib import results

    pause = float(sys.argv[1])
    kill_after = sys.argv[2] if len(sys.argv) > 2 else ""  # "<table>:<config>": SIGKILL right after that write
    params = {"size": 3}
    configs = [{"config": i} for i in range(%(n)d)]

    def measure(c):
        time.sleep(pause)
        return [{"repeat": r, "value": 10 * c["config"] + r} for r in range(3)]

    results.ResultTable("fault", "plain", ["config"], params).sweep(configs, measure, desc="plain")
    group = results.ResultGroup("fault", "runs", ["a", "b", "c"], ["config"], params)
    if kill_after:
        table, at = kill_after.split(":")
        original = group.tables[table].add

        def add(rows, original=original):
            original(rows)
            if rows and str(rows[0]["config"]) == at:
                os.kill(os.getpid(), signal.SIGKILL)

        group.tables[table].add = add
    for c in configs:
        if group.complete(c):
            continue
        time.sleep(pause)
        group.write(c, {"a": [{**c, **r} for r in measure(c)], "b": [{"config": c["config"], "sum": 3 * 10 * c["config"] + 3}],
                        "c": [{"config": c["config"], "n": 3}]})
""") % {"n": CONFIGS}


def _sweep(root: Path, pause: float, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "STUDYLIB_RESULTS_DIR": str(root / "results"), "TMPDIR": str(root / "tmp"),
           "PYTHONPATH": os.pathsep.join([str(Path(results.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    (root / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", SWEEP, str(pause), *extra], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _check_complete(root: Path) -> None:
    out = root / "results" / "fault"
    expected = {(c, r) for c in range(CONFIGS) for r in range(3)}
    for name in ("plain", "a"):
        df = pd.read_parquet(out / f"{name}.parquet")
        got = list(zip(df["config"], df["repeat"]))
        assert len(got) == len(set(got)) == len(expected) and set(got) == expected, name  # none lost, none twice
        assert (df["value"] == 10 * df["config"] + df["repeat"]).all()
        assert len(pd.read_csv(out / f"{name}.csv")) == len(expected)
    for name in ("b", "c"):
        df = pd.read_parquet(out / f"{name}.parquet")
        assert sorted(df["config"]) == list(range(CONFIGS)), name
    marker = json.loads((out / "runs.complete.json").read_text())["complete"]
    (keys,) = marker.values()
    assert sorted(int(k[0]) for k in keys) == list(range(CONFIGS))
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [], "temporary files left in results/"
    assert list((root / "tmp").iterdir()) == [], "files left in the temporary folder"


@pytest.mark.parametrize("seed", [17])
def test_sweep_killed_at_a_random_moment_is_completed_by_its_rerun(tmp_path, seed):
    rng = random.Random(seed)
    pause = 0.15
    proc = _sweep(tmp_path, pause)
    first = tmp_path / "results" / "fault" / "plain.parquet"
    deadline = time.monotonic() + 120
    while not first.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the interpreter and its imports are up; the sweep is writing
    time.sleep(rng.uniform(0.0, 2 * CONFIGS * pause))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    rerun = _sweep(tmp_path, 0.0)
    assert rerun.wait(120) == 0, rerun.stderr.read().decode()[-2000:]
    _check_complete(tmp_path)


@pytest.mark.parametrize("where", ["b:0", "c:7"])
def test_kill_between_the_tables_of_a_group_is_repaired(tmp_path, where):
    proc = _sweep(tmp_path, 0.0, where)
    assert proc.wait(120) == -signal.SIGKILL
    table = where.split(":")[0]
    out = tmp_path / "results" / "fault"
    assert int(where.split(":")[1]) in set(pd.read_parquet(out / f"{table}.parquet")["config"])
    rerun = _sweep(tmp_path, 0.0)
    assert rerun.wait(120) == 0, rerun.stderr.read().decode()[-2000:]
    _check_complete(tmp_path)


def test_notebook_02_reruns_a_run_interrupted_between_its_tables(output_dirs, monkeypatch):
    """02 used to decide from its epochs table alone that a run was measured."""
    import studylib.distributed as distributed
    from studylib.studies import distributed_caching as dc

    run = {"graph": "cora", "machines": 2, "network": "loopback", "run": "main", "variants": []}
    calls = []

    def execute_run(run, graph, params, device, workdir, mode):
        calls.append(run["run"])
        key = {k: run[k] for k in dc.RUN_KEY}
        frame = lambda **cols: pd.DataFrame([{**key, **cols}])  # noqa: E731
        got = {"epoch": frame(variant="distdgl", epoch=0, epoch_s=1.0), "batch": frame(variant="distdgl", batch=0),
               "setup": frame(variant="distdgl", warm_s=0.1), "accuracy": frame(variant="distdgl", test_accuracy=0.5)}
        return got, {**key, "cluster_s": 1.0}

    monkeypatch.setattr(dc, "cluster_mode", lambda: ("netns", ""))
    monkeypatch.setattr(dc, "trainer_device", lambda params: ("cpu", ""))
    monkeypatch.setattr(dc, "plan_runs", lambda params: [run])
    monkeypatch.setattr(dc, "execute_run", execute_run)
    monkeypatch.setattr(distributed, "partition", lambda *a, **k: None)
    monkeypatch.setattr(distributed, "partition_statistics", lambda cfg: [{"part": 0, "inner_nodes": 1}])
    params = SimpleNamespace(model_dump=lambda: {"graphs": ["cora"]}, epochs=1, partition_method="metis",
                             cluster_mode="namespaces", cluster_spec_kwargs=lambda: {})

    class Killed(BaseException):
        pass

    original = results.ResultTable.add

    def dies_at_batches(self, rows):
        if self.name == "batches":
            raise Killed()
        original(self, rows)

    monkeypatch.setattr(results.ResultTable, "add", dies_at_batches)
    with pytest.raises(Killed):
        dc.run_measurement(params, graphs={"cora": object()}, log=lambda line: None)
    monkeypatch.setattr(results.ResultTable, "add", original)
    out = dc.run_measurement(params, graphs={"cora": object()}, log=lambda line: None)
    assert calls == ["main", "main"], "the interrupted run was not measured again"
    for name in ("epochs", "batches", "setup", "accuracy", "links"):
        assert len(out[name]) == 1, (name, out[name])
    dc.run_measurement(params, graphs={"cora": object()}, log=lambda line: None)
    assert calls == ["main", "main"], "a complete run was measured again"


CAN_NETNS = os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("nsenter") is not None


@pytest.mark.slow
@pytest.mark.skipif(not CAN_NETNS, reason="needs root and iproute2 (ip) to create network namespaces")
def test_killed_cluster_leaves_nothing_after_the_next_start(tmp_path, monkeypatch):
    """SIGKILL of a launcher holding a 2-machine namespace cluster at a seeded moment; the
    start-up clean-up of the next run (``cleanup_stale``) must leave no namespace, link or
    ``/dev/shm`` file of it (checked with the launcher's own ``leftovers()``)."""
    from studylib.data.homogeneous import synthetic_homogeneous
    from studylib.distributed import cluster as cl
    from studylib.distributed import partition as part_mod

    g = synthetic_homogeneous(300, 4, 4, 2, 2.0, seed=1)
    p2 = part_mod.partition(g, 2, name="fault", cache_dir=tmp_path / "parts")
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    launcher = textwrap.dedent("""
        import sys
        from studylib.distributed import cluster as cl
        cl.run_cluster(sys.argv[1], "studylib.distributed.node_trainer",
                       ["--graph-name", "fault", "--variants", '[{"label": "distdgl"}]', "--epochs", "50",
                        "--batch-size", "20", "--fanouts", "3,3", "--hidden", "4", "--num-classes", "2"],
                       cl.ClusterSpec(2, 1, "loopback"), timeout_s=300, workdir=sys.argv[2])
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(results.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", launcher, str(p2), str(tmp_path / "run")], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prefix = f"sl{proc.pid}"
    try:
        deadline = time.monotonic() + 120
        while not cl.leftovers(prefix)["netns"] and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not cl.leftovers(prefix)["netns"]:
            pytest.skip("the launcher did not create its namespaces (see test_cluster.py for why)")
        time.sleep(random.Random(5).uniform(0.0, 3.0))
    finally:
        proc.kill()
        proc.wait(30)
    # what the next cluster run does first, limited to this launcher's names (others may run here)
    names = cl._our_names
    monkeypatch.setattr(cl, "_our_names", lambda: tuple([n for n in found if n.startswith(prefix)] for found in names()))
    assert cl.leftovers(prefix)["netns"], "SIGKILL left the namespaces (what the clean-up must remove)"
    cl.cleanup_stale()
    assert cl.leftovers(prefix) == {"netns": [], "links": []}
    shm_after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    assert not [f for f in shm_after - shm_before if "fault" in f or prefix in f]


def test_tier_work_folders_of_a_killed_run_are_removed_by_the_next(tmp_path):
    base = tmp_path / "tiers"
    base.mkdir()
    code = ("import os, signal, sys\nfrom studylib import memory_tiers as mt\n"
            "w = mt.new_work_folder(sys.argv[1]); (w / 'emb.bin').write_bytes(b'x')\n"
            "if sys.argv[2] == 'kill':\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(results.__file__).parents[1])}
    killed = subprocess.run([sys.executable, "-c", code, str(base), "kill"], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert len(list(base.glob("recsys-tiers-*"))) == 1  # what a kill leaves
    done = subprocess.run([sys.executable, "-c", code, str(base), "exit"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert list(base.iterdir()) == [], "a work folder outlived its run"
