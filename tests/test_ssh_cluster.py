"""The launcher's ssh mode end to end, against a cluster of real OpenSSH servers (one per network
namespace machine, fresh keys per run; studylib.distributed.testbed): it trains, streams logs,
collects exit codes, and leaves nothing behind after success, failure, a killed trainer, a
time-out and Ctrl-C; host keys are verified; the hosts' shared paths are checked; notebooks 02
and 04 pass their smoke profiles in ssh mode (slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from studylib.data.homogeneous import synthetic_homogeneous
from studylib.distributed import cluster as cl
from studylib.distributed import partition as part_mod
from studylib.distributed import ssh
from studylib.distributed.testbed import SshdTestbed, ensure_openssh_server

CAN_NETNS = os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("nsenter") is not None
pytestmark = pytest.mark.skipif(not CAN_NETNS or shutil.which("ssh") is None,
                                reason="needs root, iproute2 and the ssh client to build the sshd test cluster")


@pytest.fixture(scope="module")
def testbed():
    ok, why = ensure_openssh_server(install=True)
    if not ok:
        pytest.skip(why)
    tb = SshdTestbed(2).start()
    folder, prefix = tb.folder, tb.prefix
    yield tb
    tb.stop()
    # nothing of the test cluster is left: namespaces, links, servers, keys
    assert cl.leftovers(prefix) == {"netns": [], "links": []}
    assert not folder.exists(), "the temporary keys were left behind"
    assert _processes(str(folder)) == []


@pytest.fixture(scope="module")
def p2(tmp_path_factory):
    g = synthetic_homogeneous(600, 6, 8, 3, 2.0, seed=1)
    return part_mod.partition(g, 2, name="tiny", cache_dir=tmp_path_factory.mktemp("parts"))


def _processes(marker: str) -> list[str]:
    """Live processes whose command line or environment holds ``marker`` (a run folder: the
    local ssh clients carry it in their command, the remote servers and trainers in DGL_IP_CONFIG)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and d.name != str(os.getpid()):
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                env = (d / "environ").read_bytes().decode(errors="replace")
                if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            except OSError:
                continue
            if marker in cmd or marker in env:
                out.append(cmd)
    return out


def _spec(tb: SshdTestbed, **kw) -> cl.ClusterSpec:
    return cl.ClusterSpec(2, 1, ip_config=tb.ip_config, **{**tb.ssh_kwargs(), **kw})


def _assert_clean(work: Path, deadline_s: float = 10) -> None:
    deadline = time.monotonic() + deadline_s
    while _processes(str(work)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes(str(work)) == [], "a local or remote process of the run is still alive"


def test_ssh_cluster_trains_and_tears_down(testbed, p2, tmp_path):
    variants = [{"label": "distdgl"}, {"label": "massivegnn", "policy": "massivegnn", "pipeline": True,
                                       "fraction": 0.3, "delta": 2}]
    args = ["--graph-name", "tiny", "--variants", json.dumps(variants), "--epochs", "2", "--batch-size", "60",
            "--fanouts", "3,5", "--hidden", "8", "--max-batches", "3", "--eval-max-nodes", "50", "--num-classes", "3",
            "--verify"]
    work = tmp_path / "run"
    res = cl.run_cluster(p2, "studylib.distributed.node_trainer", args, _spec(testbed), timeout_s=300, workdir=work)
    assert res.ok and res.mode == "ssh" and res.exit_codes == {"server0": 0, "server1": 0, "trainer0": 0,
                                                               "trainer1": 0}
    # the logs were streamed back from the hosts
    assert "DistDGL server 1" in res.log_paths["server1"].read_text()
    assert "STUDYLIB_REMOTE_EXIT=0" in res.log_paths["trainer1"].read_text()
    assert (work / "ip_config.txt").read_text().split() == [testbed.addresses[0], "30050", testbed.addresses[1],
                                                            "30050"]
    rows = res.rows()
    batches = rows[rows["kind"] == "batch"]
    assert set(batches["rank"]) == {0, 1} and (batches["mismatched_rows"] == 0).all()
    assert (batches["remote_nodes"] > 0).any(), "the machines did not pull features from each other"
    net = res.network
    assert net["network"] == "real" and net["network_backend"] == "real"
    assert net["network_rtt_us_measured"] > 0 and net["network_gbit_s_measured"] > 0, net
    _assert_clean(work)


def test_remote_arguments_reach_the_host_verbatim(testbed, tmp_path):
    pwned = tmp_path / "pwned"
    weird = ["a b", f"$(touch {pwned})", f"`touch {pwned}`", f";touch {pwned}", "'\"", "*"]
    opts = ssh.SshOptions(testbed.user, testbed.key, testbed.known_hosts)
    prog = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *weird]
    res = subprocess.run(ssh.ssh_argv(opts, testbed.addresses[0], prog), capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == weird and not pwned.exists()


FAILING = "import sys; print('about to fail', flush=True); sys.exit(3)\n"

TRAINER = textwrap.dedent('''
    import os, sys, time
    import dgl, torch
    dgl.distributed.initialize(os.environ["DGL_IP_CONFIG"])
    torch.distributed.init_process_group("gloo")
    out = os.environ["STUDYLIB_TRAINER_OUT"]
    with open(os.path.join(out, "pid" + os.environ["RANK"]), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(float(sys.argv[1]))
''')


def _mods(tmp_path: Path) -> Path:
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "sleepy_trainer.py").write_text(TRAINER)
    (mod / "failing_trainer.py").write_text(FAILING)
    return mod


def test_a_failing_trainer_is_reported_with_its_exit_code(testbed, p2, tmp_path):
    mod, work = _mods(tmp_path), tmp_path / "run"
    with pytest.raises(cl.ClusterError, match=r"trainer \d \(exit 3\)") as info:
        cl.run_cluster(p2, "failing_trainer", [], _spec(testbed), timeout_s=120, workdir=work,
                       env={"PYTHONPATH": str(mod)})
    assert "about to fail" in str(info.value)
    assert all(code is not None for code in info.value.result.exit_codes.values())
    _assert_clean(work)


def test_killing_a_trainer_mid_run_tears_everything_down(testbed, p2, tmp_path):
    mod, work = _mods(tmp_path), tmp_path / "run"
    out: dict = {}

    def run():
        try:
            out["result"] = cl.run_cluster(p2, "sleepy_trainer", ["120"], _spec(testbed), timeout_s=200,
                                           workdir=work, env={"PYTHONPATH": str(mod)})
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            out["error"] = err

    t = threading.Thread(target=run)
    t.start()
    pid_file = work / "out" / "pid1"
    deadline = time.monotonic() + 150
    while not pid_file.is_file() and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.is_file(), out.get("error")
    assert len(_processes(str(work))) >= 8, "2 servers and 2 trainers, each a local ssh client and a remote process"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    err = out.get("error")
    assert isinstance(err, cl.ClusterError), out
    assert "trainer 1 (exit -9)" in str(err)
    assert all(code is not None for code in err.result.exit_codes.values())
    _assert_clean(work)


LAUNCHER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from studylib.distributed import ClusterSpec, run_cluster
    kw = json.loads(sys.argv[5])
    run_cluster(Path(sys.argv[1]), "sleepy_trainer", ["120"], ClusterSpec(2, 1, **kw),
                timeout_s=float(sys.argv[3]), workdir=Path(sys.argv[2]), env={"PYTHONPATH": sys.argv[4]})
''')


@pytest.mark.parametrize("how", ["ctrl-c", "timeout"])
def test_ctrl_c_and_timeout_tear_everything_down(testbed, p2, tmp_path, how):
    mod, work = _mods(tmp_path), tmp_path / "run"
    kw = {"ip_config": str(testbed.ip_config), **testbed.ssh_kwargs()}
    env = {**os.environ, "PYTHONPATH": str(cl.paths.project_root())}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(p2), str(work), "300" if how == "ctrl-c" else "20",
                             str(mod), json.dumps(kw)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    if how == "ctrl-c":
        deadline = time.monotonic() + 150
        while not (work / "out" / "pid1").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum("sleepy_trainer" in c for c in _processes(str(work))) >= 2
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert ("KeyboardInterrupt" in out) if how == "ctrl-c" else ("timed out after 20 s" in out), out[-2000:]
    _assert_clean(work)


def test_host_keys_are_verified_and_trusted_on_first_use_only_when_asked(testbed, p2, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(cl.ClusterUnavailableError, match="Host key verification failed.*trust_new_host_keys"):
        cl.run_cluster(p2, "x", [], _spec(testbed, known_hosts=empty), workdir=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    # a changed key is refused even with trust on first use
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    forged = tmp_path / "forged_known_hosts"
    forged.write_text("".join(f"{a} {' '.join((tmp_path / 'other_key.pub').read_text().split()[:2])}\n"
                              for a in testbed.addresses))
    with pytest.raises(cl.ClusterUnavailableError, match="unreachable host"):
        cl.run_cluster(p2, "x", [], _spec(testbed, known_hosts=forged, trust_new_host_keys=True),
                       workdir=tmp_path / "never")
    opts = ssh.SshOptions(testbed.user, testbed.key, empty, trust_new_host_keys=True)
    ssh.check_reachable(opts, [(a, "test") for a in testbed.addresses])
    # the trusted keys are recorded (host names may be hashed: HashKnownHosts)
    assert len(empty.read_text().splitlines()) == len(testbed.addresses)
    ssh.check_reachable(ssh.SshOptions(testbed.user, testbed.key, empty), [(a, "test") for a in testbed.addresses])


def test_what_the_hosts_must_share_is_checked_before_starting(testbed, p2, tmp_path):
    with pytest.raises(cl.ClusterUnavailableError, match=rf"{testbed.addresses[0]} .*remote_workdir /nonexistent/x "
                                                         rf"does not exist"):
        cl.run_cluster(p2, "x", [], _spec(testbed, remote_workdir="/nonexistent/x"), workdir=tmp_path / "a")
    with pytest.raises(cl.ClusterUnavailableError, match=r"remote_python /opt/none/bin/python was not found"):
        cl.run_cluster(p2, "x", [], _spec(testbed, python="/opt/none/bin/python"), workdir=tmp_path / "b")
    assert not list((tmp_path / "a" / "logs").glob("*.log")), "nothing may start when a host lacks something"


# --------------------------------------------------------------------------------------------
# notebooks 02 and 04 in ssh mode (slow)
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["02-distributed-caching", "04-recsys-memory-tiers"])
def test_smoke_profile_passes_in_ssh_mode(testbed, notebook, tmp_path):
    import pandas as pd

    from studylib import paths

    sets = ["cluster_mode=ssh", f"ip_config={testbed.ip_config}", f"ssh_user={testbed.user}",
            f"ssh_key={testbed.key}", f"known_hosts={testbed.known_hosts}"]
    env = {**os.environ, "PYTHONPATH": str(paths.project_root()), "STUDYLIB_RESULTS_DIR": str(tmp_path / "results"),
           "STUDYLIB_FIGURES_DIR": str(tmp_path / "figures"), "STUDYLIB_REPORTS_DIR": str(tmp_path / "reports")}
    cmd = [sys.executable, "-m", "studylib", "run", notebook, "--profile", "smoke"]
    for s in sets:
        cmd += ["--set", s]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    results = tmp_path / "results" / notebook
    if notebook.startswith("02"):
        links = pd.read_parquet(results / "links.parquet")
        assert (links["mode"] == "ssh").all() and (links["network"] == "real").all()
        assert links["network_rtt_us_measured"].notna().all()
        epochs = pd.read_parquet(results / "epochs.parquet")
        assert (epochs["status"] == "ok").all() and (epochs["cluster_mode"] == "ssh").all()
    else:
        dist = pd.read_parquet(results / "distributed.parquet")
        assert (dist["status"] == "ok").all() and len(dist)
    assert list((tmp_path / "figures" / notebook).glob("*.png"))
