"""Hosts of a real cluster (studylib.distributed.hosts, .ssh, .params): ip_config lines validated
with their line numbers, ssh option injection refused before anything runs, remote commands
quoted as argument lists, SLURM node lists expanded, the cluster parameters validated, and the
per-run locks (subnet, working folder)."""

from __future__ import annotations

import shlex
import shutil

import pytest

from studylib.distributed import cluster as cl
from studylib.distributed import hosts, ssh
from studylib.distributed import partition as part_mod


@pytest.fixture(scope="module")
def part2(tmp_path_factory):
    from studylib.data.homogeneous import synthetic_homogeneous

    g = synthetic_homogeneous(300, 4, 4, 2, 2.0, seed=2)
    return part_mod.partition(g, 2, name="hosts", cache_dir=tmp_path_factory.mktemp("parts"))


@pytest.mark.parametrize("line", ["-oProxyCommand=touch${IFS}{pwned} 30050", "-oProxyCommand=touch {pwned}",
                                  "host;touch${IFS}{pwned}", "$(touch${IFS}{pwned})", "`touch {pwned}`",
                                  "a|b", "host name 1 2", "-p 30050", "h..x"])
def test_ssh_option_injection_in_ip_config_is_rejected_with_its_line(part2, tmp_path, line):
    """A host field that is no address or host name stops the run at its line; nothing runs
    (the ProxyCommand would create the file)."""
    pwned = tmp_path / "pwned"
    ipc = tmp_path / "ip_config.txt"
    ipc.write_text("# cluster\n10.0.0.1 30050\n" + line.replace("{pwned}", str(pwned)) + "\n")
    with pytest.raises(ValueError, match=rf"{ipc}:3: "):
        cl.run_cluster(part2, "x", [], cl.ClusterSpec(2, ip_config=ipc), workdir=tmp_path / "never")
    assert not pwned.exists(), "a command from the ip_config file ran"
    assert not (tmp_path / "never").exists()


def test_ip_config_lines(tmp_path):
    ipc = tmp_path / "ipc"
    ipc.write_text("10.1.2.3 30050  # first\n\nnode-01.cluster.example\n::1 4000\n")
    got = hosts.read_ip_config(ipc, 31000)
    assert [(h.name, h.port, h.line, h.address) for h in got] == [
        ("10.1.2.3", 30050, 1, "10.1.2.3"), ("node-01.cluster.example", 31000, 3, None), ("::1", 4000, 4, "::1")]
    for bad, what in (("10.1.2.3 99999", "port"), ("10.1.2.3 30050 7", "fields"), ("10.1.2.3 x", "port")):
        ipc.write_text(f"10.0.0.9\n{bad}\n")
        with pytest.raises(hosts.IpConfigError, match=rf"{ipc}:2: .*{what}"):
            hosts.read_ip_config(ipc)
    ipc.write_text("# nothing\n")
    with pytest.raises(hosts.IpConfigError, match="lists no host"):
        hosts.read_ip_config(ipc)
    with pytest.raises(hosts.IpConfigError, match="does not exist"):
        hosts.read_ip_config(tmp_path / "missing")


def test_names_resolve_to_addresses_before_anything_starts(tmp_path):
    ipc = tmp_path / "ipc"
    ipc.write_text("localhost 30050\nno-such-host.invalid 30051\n")
    hs = hosts.read_ip_config(ipc)
    assert hosts.resolve(hs[:1])[0].address == "127.0.0.1"
    with pytest.raises(hosts.IpConfigError, match=r":2: host 'no-such-host.invalid' does not resolve"):
        hosts.resolve(hs, str(ipc))


@pytest.mark.parametrize("nodelist, expected", [
    ("node[01-04,07]", ["node01", "node02", "node03", "node04", "node07"]),
    ("gpu[1-2],cpu7", ["gpu1", "gpu2", "cpu7"]),
    ("rack[1-2]-n[8-9]", ["rack1-n8", "rack1-n9", "rack2-n8", "rack2-n9"]),
    ("single", ["single"]),
])
def test_slurm_node_lists_expand(nodelist, expected):
    assert hosts.expand_nodelist(nodelist) == expected


def test_bad_node_lists_and_ip_config_text():
    with pytest.raises(hosts.IpConfigError, match="malformed"):
        hosts.expand_nodelist("node[01-")
    with pytest.raises(hosts.IpConfigError, match="neither an IP address nor a host name"):
        hosts.expand_nodelist("-oProxyCommand=x")
    assert hosts.ip_config_text(["10.0.0.1", "10.0.0.2"], 30100) == "10.0.0.1 30100\n10.0.0.2 30100\n"
    assert hosts.ip_config_text(["localhost"]) == "127.0.0.1 30050\n"
    assert hosts.ip_config_text(["n1"], resolve_names=False) == "n1 30050\n"


def test_ssh_command_is_an_argument_list_with_the_host_after_double_dash():
    opts = ssh.SshOptions("alice", "/keys/id", "/kh/known_hosts", 2222)
    weird = ["/opt/my env/bin/python", "-c", "print('x'); import os", "$(touch /tmp/p)", "a;b", "`id`", "\"q\""]
    argv = ssh.ssh_argv(opts, "node-1", weird)
    i = argv.index("--")
    assert argv[i + 1] == "node-1" and len(argv) == i + 3
    assert shlex.split(argv[-1]) == weird, "the remote shell must see every argument as it was given"
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert "UserKnownHostsFile=/kh/known_hosts" in argv and argv[argv.index("-i") + 1] == "/keys/id"
    assert "StrictHostKeyChecking=accept-new" in ssh.ssh_argv(ssh.SshOptions(trust_new_host_keys=True), "h", ["true"])
    wrapped = ssh.remote_argv("/py", "/work dir;x", {"A": "1 2", "B": "$(x)"}, ["prog", "a b"])
    assert shlex.split(shlex.join(wrapped)) == wrapped
    with pytest.raises(ValueError, match="not valid names"):
        ssh.remote_argv("/py", "/w", {"A=B;x": "1"}, ["prog"])


@pytest.mark.parametrize("kwargs, match", [
    ({"ssh_user": "-oProxyCommand=x"}, "not a user name"), ({"ssh_user": "a b"}, "not a user name"),
    ({"known_hosts": "/tmp/a b"}, "cannot carry"), ({"known_hosts": "/tmp/%h"}, "cannot carry"),
    ({"ssh_port": 0}, "1..65535"),
])
def test_bad_ssh_settings_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cl.ClusterSpec(2, ip_config=tmp_path / "ipc", **kwargs)


def test_cluster_params_are_validated(tmp_path):
    from studylib import params

    ipc = tmp_path / "ipc"
    ipc.write_text("10.0.0.1\n-oProxyCommand=x\n")
    base = {"cluster_mode": "ssh"}
    with pytest.raises(ValueError, match="needs ip_config"):
        params.validate("02-distributed-caching", base)
    with pytest.raises(ValueError, match=rf"{ipc}:2: "):
        params.validate("04-recsys-memory-tiers", {**base, "ip_config": str(ipc)})
    ipc.write_text("10.0.0.1\n10.0.0.2\n")
    with pytest.raises(ValueError, match="ssh_key: .* does not exist"):
        params.validate("02-distributed-caching", {**base, "ip_config": str(ipc), "ssh_key": str(tmp_path / "k")})
    with pytest.raises(ValueError, match="remote_python must be an absolute path"):
        params.validate("02-distributed-caching", {**base, "ip_config": str(ipc), "remote_python": "python"})
    with pytest.raises(ValueError, match="only apply to real hosts: set cluster_mode='ssh'"):
        params.validate("02-distributed-caching", {"ip_config": str(ipc)})
    with pytest.raises(ValueError, match="cluster_mode must be one of"):
        params.validate("02-distributed-caching", {"cluster_mode": "slurm"})
    p = params.validate("04-recsys-memory-tiers", {**base, "ip_config": str(ipc), "ssh_user": "bob",
                                                   "remote_python": "/opt/venv/bin/python"})
    kw = p.cluster_spec_kwargs()
    assert kw["ip_config"] == ipc and kw["ssh_user"] == "bob" and kw["python"] == "/opt/venv/bin/python"
    spec = cl.ClusterSpec(2, **kw)
    assert spec.mode == "ssh" and spec.network_record()["network"] == "real"
    assert params.validate("02-distributed-caching", {}).cluster_spec_kwargs() == {}


def test_a_working_folder_in_use_is_refused_naming_the_run_that_holds_it(part2, tmp_path):
    work = tmp_path / "run"
    (work / "out").mkdir(parents=True)
    (work / "out" / "rank0.parquet").write_text("the first run's output")
    with cl.lock_workdir(work):
        if cl.namespaces_available()[0]:
            with pytest.raises(cl.ClusterUnavailableError, match=r"in use by another cluster run \(pid \d+"):
                cl.run_cluster(part2, "x", [], cl.ClusterSpec(2), workdir=work)
        with pytest.raises(cl.ClusterUnavailableError, match=r"in use by another cluster run \(pid \d+"):
            with cl.lock_workdir(work):
                pass
    assert (work / "out" / "rank0.parquet").read_text() == "the first run's output"
    with cl.lock_workdir(work):  # freed at the end of the first
        pass


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
def test_subnets_are_unique_while_held_and_freed_after():
    a, la = cl.allocate_subnet()
    b, lb = cl.allocate_subnet()
    try:
        assert a != b and a.prefixlen == b.prefixlen == 24
    finally:
        lb.close()
    c, lc = cl.allocate_subnet()
    lc.close()
    la.close()
    assert c != a


def test_slurm_recipe_builds_the_ip_config_and_calls_the_launcher(tmp_path):
    """examples/slurm/run_02.sbatch: valid bash; its ip_config step turns a node list into
    DistDGL's '<address> <port>' lines; it runs notebook 02 in ssh mode on every node."""
    import subprocess
    import sys

    from studylib import paths

    script = paths.project_root() / "examples" / "slurm" / "run_02.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "-m studylib.distributed.hosts ip-config --nodelist" in text
    assert "-m studylib run 02-distributed-caching" in text and "cluster_mode=ssh" in text
    res = subprocess.run([sys.executable, "-m", "studylib.distributed.hosts", "ip-config", "--nodelist",
                          "127.0.0.[1-2],localhost", "--port", "30100"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "127.0.0.1 30100\n127.0.0.2 30100\n127.0.0.1 30100\n"
    res = subprocess.run([sys.executable, "-m", "studylib.distributed.hosts", "ip-config", "--nodelist", "n[1-"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "malformed" in res.stderr
