"""The DistDGL launcher (studylib.distributed): a real 2-machine cluster of network namespaces that
trains with every cache policy and checks each fetch against a plain DistDGL pull; teardown after
success and after a trainer is killed mid-run (no namespace, link, process or shared-memory
segment left); the network model applied and removed; the standalone fallback; bad input
rejected before anything starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from studylib.data.homogeneous import synthetic_homogeneous
from studylib.distributed import cluster as cl
from studylib.distributed import netem
from studylib.distributed import partition as part_mod

CAN_NETNS = os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("nsenter") is not None
needs_netns = pytest.mark.skipif(not CAN_NETNS, reason="needs root and iproute2 (ip) to create network namespaces")
MINE = f"sl{os.getpid()}"


def _shm() -> set[str]:
    """The host's shared-memory segments, less Python multiprocessing semaphores (``sem.mp-*``),
    which any other process on the host creates and removes at any time."""
    names = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    return {n for n in names if not n.startswith("sem.mp-")}


def _processes(prefix: str, workdir: Path) -> list[str]:
    """Live processes of one cluster: the namespace holders and the network switch carry its name
    prefix on their command line, the servers and trainers its work folder in their environment."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and d.name != str(os.getpid()):
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                env = (d / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if prefix in cmd or str(workdir) in env:
                out.append(cmd)
    return out


def _assert_clean(result: cl.ClusterResult | None, shm_before: set[str]) -> None:
    assert cl.leftovers(MINE) == {"netns": [], "links": []}
    assert _shm() == shm_before, "a shared-memory segment leaked into the host's /dev/shm"
    if result is not None:
        assert _processes(MINE, result.workdir) == []
    if result is not None:
        for p in result.processes:
            assert not psutil.pid_exists(p.pid) or cl._is_zombie(p.pid), f"{p.role}{p.rank} still runs"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    g = synthetic_homogeneous(600, 6, 8, 3, 2.0, seed=1)
    root = tmp_path_factory.mktemp("parts")
    return g, part_mod.partition(g, 2, name="tiny", cache_dir=root), part_mod.partition(g, 1, name="tiny", cache_dir=root)


def test_partition_is_cached(tiny, tmp_path):
    g, p2, _ = tiny
    stamp = p2.stat().st_mtime_ns
    again = part_mod.partition(g, 2, name="tiny", cache_dir=p2.parent.parent)
    assert again == p2 and again.stat().st_mtime_ns == stamp
    stats = part_mod.partition_statistics(p2)
    assert [s["part"] for s in stats] == [0, 1]
    assert sum(s["inner_nodes"] for s in stats) == 600 and all(s["halo_nodes"] > 0 for s in stats)
    with pytest.raises(ValueError, match="num_parts"):
        part_mod.partition(g, 0, name="tiny", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="exceeds the node count"):
        part_mod.partition(g, 601, name="tiny", cache_dir=tmp_path)


@needs_netns
def test_cluster_trains_every_policy_exactly_and_tears_down(tiny, tmp_path):
    g, p2, _ = tiny
    shm_before = _shm()
    variants = [{"label": "distdgl"}, {"label": "prefetch", "pipeline": True},
                {"label": "massivegnn", "policy": "massivegnn", "pipeline": True, "fraction": 0.3, "alpha": 0.5,
                 "delta": 2},
                {"label": "static", "policy": "static", "pipeline": True, "fraction": 0.3},
                {"label": "lru", "policy": "lru", "pipeline": True, "fraction": 0.3},
                {"label": "gat:massivegnn", "model": "gat", "policy": "massivegnn", "pipeline": True, "delta": 1}]
    args = ["--graph-name", "tiny", "--variants", json.dumps(variants), "--epochs", "2", "--batch-size", "60",
            "--fanouts", "3,5", "--hidden", "8", "--num-heads", "2", "--max-batches", "3", "--eval-max-nodes", "50",
            "--num-classes", "3", "--verify"]
    res = cl.run_cluster(p2, "studylib.studies.distributed_caching.node_trainer", args, cl.ClusterSpec(2, 1, "1g-200us"),
                         timeout_s=300, workdir=tmp_path / "run")
    assert res.ok and set(res.exit_codes) == {"server0", "server1", "trainer0", "trainer1"}
    assert all(code == 0 for code in res.exit_codes.values()), res.exit_codes
    assert all(p.log.is_file() for p in res.processes)
    rows = res.rows()
    batches = rows[rows["kind"] == "batch"]
    assert set(batches["variant"]) == {v["label"] for v in variants} and set(batches["rank"]) == {0, 1}
    assert (batches["mismatched_rows"] == 0).all(), "a cache returned other features than DistDGL's plain pull"
    assert (batches["remote_nodes"] > 0).any()
    cached = batches[batches["policy"] != "none"].groupby("variant")["hits"].sum()
    assert (cached > 0).all(), cached
    assert (batches[batches["policy"] == "none"]["hits"] == 0).all()
    assert len(rows[rows["kind"] == "accuracy"]) == 2 * len(variants)
    # the network model was applied: the measured round trip is at least twice the one-way latency
    net = res.network
    assert net["network"] == "1g-200us" and net["network_backend"] in ("netem", "tun")
    assert net.get("network_rtt_us_measured") is not None, net
    assert net["network_rtt_us_measured"] >= 0.9 * 2 * 200
    assert net["network_gbit_s_measured"] <= 1.15
    assert (rows["network"] == "1g-200us").all() and (rows["network_backend"] == net["network_backend"]).all()
    _assert_clean(res, shm_before)


TRAINER = textwrap.dedent('''
    import os, sys, time
    import dgl, torch
    dgl.distributed.initialize(os.environ["DGL_IP_CONFIG"])
    torch.distributed.init_process_group("gloo")
    g = dgl.distributed.DistGraph(sys.argv[1])
    x = g.ndata["feat"][torch.arange(g.num_nodes())]
    out = os.environ["STUDYLIB_TRAINER_OUT"]
    with open(os.path.join(out, "shm" + os.environ["RANK"]), "w") as f:
        f.write("\\n".join(sorted(os.listdir("/dev/shm"))))
    with open(os.path.join(out, "pid" + os.environ["RANK"]), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(float(sys.argv[2]))
''')


@needs_netns
def test_killing_a_trainer_mid_run_tears_everything_down(tiny, tmp_path):
    g, p2, _ = tiny
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "sleepy_trainer.py").write_text(TRAINER)
    shm_before = _shm()
    out: dict = {}

    def run():
        try:
            out["result"] = cl.run_cluster(p2, "sleepy_trainer", ["tiny", "120"], cl.ClusterSpec(2, 1, "10g-50us"),
                                           timeout_s=200, workdir=tmp_path / "run", env={"PYTHONPATH": str(mod)})
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            out["error"] = err

    t = threading.Thread(target=run)
    t.start()
    pid_file = tmp_path / "run" / "out" / "pid1"
    deadline = time.monotonic() + 150
    while not pid_file.is_file() and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.is_file(), out.get("error")
    time.sleep(0.3)
    # inside a machine, DistDGL's server shared its partition through the machine's private /dev/shm
    assert (tmp_path / "run" / "out" / "shm1").read_text().strip()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    err = out.get("error")
    assert isinstance(err, cl.ClusterError), out
    assert "trainer 1 (exit -9)" in str(err)
    res = err.result
    assert res is not None and res.exit_codes["trainer1"] == -9
    assert all(code is not None for code in res.exit_codes.values())
    _assert_clean(res, shm_before)


LAUNCHER = textwrap.dedent('''
    import sys
    from pathlib import Path
    from studylib.distributed import ClusterSpec, run_cluster
    run_cluster(Path(sys.argv[1]), "sleepy_trainer", ["tiny", "120"], ClusterSpec(2, 1, "loopback"),
                timeout_s=float(sys.argv[3]), workdir=Path(sys.argv[2]), env={"PYTHONPATH": sys.argv[4]})
''')


@needs_netns
@pytest.mark.parametrize("how", ["ctrl-c", "timeout"])
def test_ctrl_c_and_timeout_tear_everything_down(tiny, tmp_path, how):
    """A launcher process interrupted with SIGINT (Ctrl-C) while its trainers run, or whose run
    passes timeout_s, leaves nothing behind."""
    import subprocess
    import sys

    g, p2, _ = tiny
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "sleepy_trainer.py").write_text(TRAINER)
    shm_before = _shm()
    work = tmp_path / "run"
    timeout = "300" if how == "ctrl-c" else "15"
    env = {**os.environ, "PYTHONPATH": str(Path(cl.paths.project_root()))}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(p2), str(work), timeout, str(mod)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    prefix = f"sl{proc.pid}"
    if how == "ctrl-c":
        deadline = time.monotonic() + 150
        while not (work / "out" / "pid1").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cl.leftovers(prefix)["netns"], "the cluster's namespaces exist while it runs"
        running = _processes(prefix, work)
        assert sum("holder" in c for c in running) == 2 and sum("sleepy_trainer" in c for c in running) == 2
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert ("KeyboardInterrupt" in out) if how == "ctrl-c" else ("timed out after 15 s" in out), out[-2000:]
    assert cl.leftovers(prefix) == {"netns": [], "links": []}
    assert _shm() == shm_before
    assert _processes(prefix, work) == []


@needs_netns
def test_standalone_fallback_runs_one_process(tiny, tmp_path):
    g, _, p1 = tiny
    variants = [{"label": "distdgl"}, {"label": "massivegnn", "policy": "massivegnn", "pipeline": True}]
    res = cl.run_standalone(p1, "studylib.studies.distributed_caching.node_trainer",
                            ["--graph-name", "tiny", "--variants", json.dumps(variants), "--epochs", "1",
                             "--batch-size", "100", "--fanouts", "3,5", "--hidden", "8", "--max-batches", "2",
                             "--num-classes", "3"], timeout_s=200, workdir=tmp_path / "sa")
    assert res.ok and res.mode == "standalone" and res.exit_codes == {"trainer0": 0}
    rows = res.rows()
    info = rows[rows["kind"] == "info"].iloc[0]
    assert info["num_halo"] == 0 and info["num_inner"] == 600
    assert (rows[rows["kind"] == "batch"]["remote_nodes"] == 0).all()
    with pytest.raises(ValueError, match="1-part"):
        cl.run_standalone(tiny[1], "x", [])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_input_is_rejected_before_anything_starts(tiny, tmp_path, monkeypatch):
    g, p2, _ = tiny
    before = cl.leftovers(MINE)
    with pytest.raises(ValueError, match="only 2 part"):
        cl.run_cluster(p2, "studylib.studies.distributed_caching.node_trainer", [], cl.ClusterSpec(4, 1))
    with pytest.raises(ValueError, match="num_machines must be >= 1"):
        cl.ClusterSpec(0)
    with pytest.raises(ValueError, match="trainers_per_machine must be >= 1"):
        cl.ClusterSpec(2, 0)
    with pytest.raises(ValueError, match="unknown network model"):
        cl.ClusterSpec(2, 1, "very-fast")
    with pytest.raises(FileNotFoundError):
        cl.run_cluster(tmp_path / "missing.json", "x", [], cl.ClusterSpec(2))
    ipc = tmp_path / "ip_config.txt"
    ipc.write_text("127.0.0.1 30050\n127.0.0.1 30051\n")
    with pytest.raises(ValueError, match="real network"):
        cl.ClusterSpec(2, 1, "1g-200us", ip_config=ipc)
    if shutil.which("ssh"):
        with pytest.raises(cl.ClusterUnavailableError, match="unreachable host"):
            cl.run_cluster(p2, "x", [], cl.ClusterSpec(2, 1, ip_config=ipc, ssh_port=_closed_port()),
                           workdir=tmp_path / "never")
        assert not (tmp_path / "never").exists(), "nothing may start for an unreachable host"
    # no root: the launcher says so and what it needs, before anything starts
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    ok, why = cl.namespaces_available(refresh=True)
    assert not ok and "root" in why
    with pytest.raises(cl.ClusterUnavailableError, match="root"):
        cl.run_cluster(p2, "x", [], cl.ClusterSpec(2))
    monkeypatch.undo()
    cl.namespaces_available(refresh=True)
    assert cl.leftovers(MINE) == before


def test_network_models():
    m = netem.network_model("1g-200us")
    assert (m.rate_bit_s, m.latency_s) == (1e9, 200e-6)
    assert m.netem_args()[:4] == ["delay", "100.000us", "rate", "1000000kbit"]
    assert netem.network_model("40g-2us").rate_bit_s == 40e9
    assert not netem.NETWORK_PRESETS["loopback"].emulated and netem.NETWORK_PRESETS["loopback"].netem_args() == []
    assert set(netem.NETWORK_PRESETS) == {"loopback", "25g-5us", "10g-50us", "1g-200us"}
    with pytest.raises(ValueError, match="unknown network model"):
        netem.network_model("fast")


@needs_netns
def test_netem_applied_and_removed_on_a_veth_pair():
    ok, why = netem.netem_available(refresh=True)
    if not ok:
        pytest.skip(f"the kernel has no netem qdisc ({why}); the launcher uses its user-space TUN switch, "
                    f"checked by test_cluster_trains_every_policy_exactly_and_tears_down")
    import subprocess

    dev = f"{MINE}x"
    subprocess.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "p"], check=True)
    try:
        netem.apply(dev, "1g-200us")
        shown = netem.show(dev)
        assert "netem" in shown and "delay 100us" in shown.replace(".0us", "us") and "rate 1Gbit" in shown
        netem.remove(dev)
        assert "netem" not in netem.show(dev)
    finally:
        subprocess.run(["ip", "link", "del", dev], capture_output=True)
    assert cl.leftovers(MINE)["links"] == []


@needs_netns
def test_a_killed_launcher_leaves_no_namespace_behind(tiny, tmp_path):
    """SIGKILL of the launcher: its processes die with it (PR_SET_PDEATHSIG) and its reaper removes
    the namespaces and links at once, without waiting for the next run; the subnet lock is freed."""
    import subprocess
    import sys

    g, p2, _ = tiny
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "sleepy_trainer.py").write_text(TRAINER)
    work = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(cl.paths.project_root()))}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(p2), str(work), "300", str(mod)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prefix = f"sl{proc.pid}"
    deadline = time.monotonic() + 150
    while not (work / "out" / "pid1").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cl.leftovers(prefix)["netns"], "the cluster's namespaces exist while it runs"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while (cl.leftovers(prefix) != {"netns": [], "links": []} or _processes(prefix, work)) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cl.leftovers(prefix) == {"netns": [], "links": []}
    assert _processes(prefix, work) == []
    with cl.lock_workdir(work):  # the dead launcher's folder lock is free again
        pass
