"""A DistDGL cluster: on one host as network namespaces, or on real hosts over ssh.

DistDGL (Zheng et al., *DistDGL: Distributed Graph Neural Network Training for Billion-Scale
Graphs*, IA3 2020) runs, per machine, one graph server holding that machine's partition and one
or more trainer processes that reach their own server through shared memory (``/dev/shm``) and
the other servers through RPC over TCP. A trainer finds "its machine" as the first address of the
``ip_config`` file that belongs to one of its interfaces. So that several machines fit on one host,
:func:`run_cluster` gives each machine

* its own **network namespace** with its own address, joined to the others by a veth pair into a
  private bridge (names and subnet unique per call, e.g. ``sl4711a``), and
* its own **mount namespace** with a private tmpfs on ``/dev/shm`` (held open by a small holder
  process), so that servers do not see each other's shared-memory partitions,

then starts the servers (waiting until each listens), then the trainers, watches them, collects
every process's log and exit status, and tears everything down -- processes, namespaces, veth
links, bridge, qdiscs, and with the mount namespaces the shared memory -- after success, failure,
time-out, ``Ctrl-C`` or ``SIGTERM`` (``finally`` + signal handlers + ``atexit``), so that the next
run starts clean. A small reaper process (``python -m studylib.distributed.cluster reap``, in its
own session) waits on a pipe from the launcher and removes the cluster's namespaces and links as
soon as the launcher is gone, also after ``SIGKILL``; ``python -m studylib.distributed.cluster
cleanup`` (:func:`cleanup_stale`, also called by every namespace run) removes what a launcher of
a dead pid left. Names are unique per run (``sl<pid><letter>``), and so is the subnet
(:func:`allocate_subnet`: a ``flock``-ed lock file per subnet under ``/run/studylib``, freed at
teardown or when the process dies); a run's working folder is held with a lock too
(:func:`lock_workdir`): a second run given the same folder is refused with a message naming the first.

Every link carries a network model (:mod:`studylib.distributed.netem`): ``tc netem`` on both ends of
each machine's veth pair where the kernel has netem, else a user-space TUN switch that replaces the
bridge (its process is part of the cluster and torn down with it). Before the trainers start, the
launcher measures the link from machine 0 to machine 1 (round trip, throughput); the model, the
backend and the measurement are recorded with every result (``ClusterResult.network``, and in each
trainer's ``STUDYLIB_NETWORK``). Every child process gets ``PR_SET_PDEATHSIG``: if the launcher
itself is killed with SIGKILL its processes die with it, and the next call removes the namespaces.

On real hosts (``ClusterSpec(ip_config=...)``; DistDGL's ``ip_config``, one line per machine,
``<address or host name> [<port>]``, validated line by line and resolved to addresses by
:mod:`studylib.distributed.hosts`) the same launcher starts the processes over ``ssh``
(:mod:`studylib.distributed.ssh`: argument lists, ``--`` before the host, ``BatchMode``, host keys
verified against ``known_hosts``, a remote wrapper that stops its process when the connection
closes). The project folder, the Python environment and the partition must be at the same paths on
every host and the run folder shared (as DistDGL's own launcher assumes): each host is checked to
answer over ssh and to have all of it before anything starts, and the error names the host and what
is missing. The link from machine 0 to machine 1 is measured as in the namespace mode.

Public API::

    ClusterSpec(num_machines, trainers_per_machine=1, network="loopback", ip_config=None, ssh_port=22,
                ..., python, ssh_user, ssh_key, known_hosts, trust_new_host_keys, remote_workdir)
    run_cluster(part_config, trainer_module, trainer_args, spec, *, timeout_s=600, workdir=None,
                env=None) -> ClusterResult
    run_standalone(part_config, trainer_module, trainer_args, *, timeout_s=600, workdir=None,
                   env=None) -> ClusterResult          # one process, DGL standalone mode
    namespaces_available() -> (bool, reason)
    ClusterError, ClusterUnavailableError, cleanup_stale(), leftovers(), allocate_subnet(), lock_workdir()

Environment of a trainer (``python -m <trainer_module> <trainer_args>``, cwd = project root):
``DGL_DIST_MODE=distributed DGL_ROLE=client DGL_NUM_SAMPLER=0 DGL_NUM_SERVER=1 DGL_NUM_CLIENT=<all
trainers> DGL_CONF_PATH DGL_IP_CONFIG DGL_GRAPH_FORMAT=csc DGL_GROUP_ID=0 MASTER_ADDR MASTER_PORT
WORLD_SIZE RANK LOCAL_RANK GLOO_SOCKET_IFNAME`` (namespace mode), ``OMP_NUM_THREADS``,
``STUDYLIB_TRAINER_OUT`` (the folder where a trainer writes ``rank<r>.parquet``),
``STUDYLIB_NETWORK`` (the network model as JSON), ``STUDYLIB_MACHINE_ID``, ``STUDYLIB_NET_IFACE``
(the machine's interface, for traffic counters), ``STUDYLIB_NUM_MACHINES``,
``STUDYLIB_TRAINERS_PER_MACHINE``. Servers get ``DGL_ROLE=server DGL_SERVER_ID=<machine>`` and the
same ``DGL_*`` values and run :data:`SERVER_PROGRAM` (``dgl.distributed.initialize``, which serves
until every trainer has disconnected).
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from studylib import paths
from studylib.distributed import netem
from studylib.distributed.partition import read_partition_config

__all__ = ["ClusterError", "ClusterResult", "ClusterSpec", "ClusterUnavailableError", "ProcessRecord",
           "allocate_subnet", "cleanup_stale", "leftovers", "lock_workdir", "namespaces_available", "run_cluster",
           "run_standalone"]

#: Seconds a server gets to start listening before the run is declared failed.
SERVER_START_TIMEOUT_S = 120.0
#: Seconds servers get to exit by themselves after every trainer has finished.
SERVER_EXIT_GRACE_S = 20.0
#: Seconds between SIGTERM and SIGKILL at teardown.
TERM_GRACE_S = 3.0
#: Name prefix of every bridge, veth and namespace this module creates: ``sl<pid><letter>``.
NAME_PREFIX = "sl"
_NAME_RE = re.compile(rf"^{NAME_PREFIX}(\d+)([a-z])")
#: What a server process runs (``python -c``): DistDGL's server loop, configured by ``DGL_*``.
SERVER_PROGRAM = ("import os, dgl; print('studylib: DistDGL server', os.environ['DGL_SERVER_ID'], flush=True); "
                  "dgl.distributed.initialize(os.environ['DGL_IP_CONFIG'])")


class ClusterError(RuntimeError):
    """A cluster run failed (a process exited non-zero, a server did not start, the run timed
    out). The message names the failing processes and ends with their log tails; ``result`` holds
    the :class:`ClusterResult` (exit codes, log paths). Everything was torn down before it is raised."""

    def __init__(self, message: str, result: ClusterResult | None = None):
        super().__init__(message)
        self.result = result


class ClusterUnavailableError(RuntimeError):
    """The cluster cannot be built here (no root, no ``ip``/``tc``/``unshare``/``nsenter``, an
    unreachable host, ...); raised before anything starts, the message says what is needed."""


# --------------------------------------------------------------------------------------------
# Spec and result
# --------------------------------------------------------------------------------------------

@dataclass
class ClusterSpec:
    """What cluster to start.

    Attributes:
        num_machines: DistDGL machines = graph partitions (>= 1); must equal the partition's
            ``num_parts``.
        trainers_per_machine: trainer processes per machine (>= 1).
        network: a :mod:`~studylib.distributed.netem` preset name, ``"<rate>-<latency>"`` string or
            :class:`~studylib.distributed.netem.NetworkModel`; emulated on every link in namespace
            mode. Real hosts (``ip_config``) use their real network: only ``"loopback"`` (= no
            emulation) is accepted there, and results record the network as ``"real"``.
        ip_config: ``None`` = emulate the machines on this host with network namespaces;
            a path = real hosts, one line per machine ``<address> [<server port>]``.
        ssh_port: ssh port of the real hosts.
        ssh_user: login name on the real hosts (``None`` = ssh's default).
        ssh_key: private key file for the real hosts (``None`` = the ssh agent / defaults).
        known_hosts: known_hosts file that verifies the hosts' keys (``None`` = ssh's defaults).
        trust_new_host_keys: accept the key of a host not yet in known_hosts (trust on first use);
            off by default, and a changed key is always refused.
        remote_workdir: the project folder on the real hosts: the working folder of every process
            and first on its ``PYTHONPATH`` (``None`` = this project's path, the same on every host).
        server_port: DistDGL server port (namespace mode, and real hosts without a port column).
        master_port: ``torch.distributed`` rendezvous port on machine 0.
        threads_per_trainer: ``OMP_NUM_THREADS`` / torch threads of each trainer; 0 = this host's
            cores divided by all trainers (at least 1) in namespace mode, all cores on real hosts.
        python: interpreter of the servers and trainers (default: this one; on real hosts the
            path of the Python environment there, ``remote_python``).
        cpus: CPU core ids every server and trainer of a one-host cluster is pinned to
            (``sched_setaffinity`` before the process starts; its children inherit it), e.g. to give
            the cluster the same cores as a single-machine run; ``None`` = no pinning. With
            ``threads_per_trainer=0`` the trainers then share these cores. Namespace mode only.
    """

    num_machines: int
    trainers_per_machine: int = 1
    network: str | netem.NetworkModel = "loopback"
    ip_config: Path | str | None = None
    ssh_port: int = 22
    server_port: int = 30050
    master_port: int = 29500
    threads_per_trainer: int = 0
    python: str = sys.executable
    ssh_user: str | None = None
    ssh_key: Path | str | None = None
    known_hosts: Path | str | None = None
    trust_new_host_keys: bool = False
    remote_workdir: Path | str | None = None
    cpus: tuple[int, ...] | None = None

    def __post_init__(self):
        if int(self.num_machines) < 1:
            raise ValueError(f"num_machines must be >= 1 (got {self.num_machines})")
        if int(self.trainers_per_machine) < 1:
            raise ValueError(f"trainers_per_machine must be >= 1 (got {self.trainers_per_machine})")
        if int(self.threads_per_trainer) < 0:
            raise ValueError(f"threads_per_trainer must be >= 0 (got {self.threads_per_trainer})")
        self.network_model = netem.network_model(self.network)  # ValueError for unknown models
        if self.cpus is not None:
            cpus = tuple(sorted({int(c) for c in self.cpus}))
            allowed = os.sched_getaffinity(0)
            if not cpus or not set(cpus) <= allowed:
                raise ValueError(f"cpus must be a non-empty subset of this process's cores {sorted(allowed)} "
                                 f"(got {list(self.cpus)})")
            if self.ip_config is not None:
                raise ValueError("cpus pins the processes of a one-host cluster; real hosts (ip_config) are not pinned")
            self.cpus = cpus
        if self.ip_config is not None and self.network_model.emulated:
            raise ValueError(f"network model {self.network_model.name!r} is emulated only on one host; real hosts "
                             f"(ip_config) use their real network: pass network='loopback'")
        self.ssh_options()  # ValueError for a bad user name, port or known_hosts path

    def ssh_options(self):
        """The :class:`~studylib.distributed.ssh.SshOptions` of the real hosts."""
        from studylib.distributed.ssh import SshOptions

        return SshOptions(self.ssh_user, self.ssh_key, self.known_hosts, int(self.ssh_port), bool(self.trust_new_host_keys))

    def remote_root(self) -> str:
        """The project folder on the real hosts (``remote_workdir`` or this project's path)."""
        return str(self.remote_workdir) if self.remote_workdir is not None else str(paths.project_root())

    @property
    def mode(self) -> str:
        """``"netns"`` (one host) or ``"ssh"`` (real hosts)."""
        return "netns" if self.ip_config is None else "ssh"

    @property
    def world_size(self) -> int:
        """Trainer processes in all."""
        return int(self.num_machines) * int(self.trainers_per_machine)

    def threads(self) -> int:
        """Threads per trainer (see ``threads_per_trainer``)."""
        if self.threads_per_trainer:
            return int(self.threads_per_trainer)
        cores = len(self.cpus) if self.cpus else len(os.sched_getaffinity(0))
        return max(1, cores // self.world_size) if self.mode == "netns" else cores

    def network_record(self) -> dict:
        """Columns describing the network for result rows (``network``, rate, latency)."""
        if self.mode == "ssh":
            return {"network": "real", "network_rate_gbit_s": None, "network_latency_us": None}
        return self.network_model.record()


@dataclass
class ProcessRecord:
    """One started process: ``role`` (``server``/``trainer``), ``machine``, ``rank`` (trainer rank
    or server id), ``pid``, ``log`` path, ``exit_code`` (``None`` while running; negative = killed
    by that signal), ``killed_by_teardown`` (it was still running when the cluster was torn down), and
    ``cpus``: the cores it was allowed to run on, read from the process after it started (``None``
    where unknown, e.g. on a real host)."""

    role: str
    machine: int
    rank: int
    pid: int
    log: Path
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    killed_by_teardown: bool = False
    cpus: tuple[int, ...] | None = None

    def tail(self, lines: int = 25) -> str:
        """The last ``lines`` lines of the log."""
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class ClusterResult:
    """The outcome of :func:`run_cluster`.

    Attributes:
        spec: the :class:`ClusterSpec` (``None`` for :func:`run_standalone`).
        part_config: the partition JSON.
        workdir: the run's folder (``ip_config``, ``logs/``, ``out/``).
        out_dir: ``STUDYLIB_TRAINER_OUT`` of the trainers.
        processes: every started process (servers first).
        network: the network record (``network``, rate, latency).
        seconds: wall time from the first process start to the end of teardown.
        mode: ``"netns"``, ``"ssh"`` or ``"standalone"``.
        ok: every trainer exited 0 (and no server failed).
        error: the failure message (empty when ``ok``).
    """

    spec: ClusterSpec | None
    part_config: Path
    workdir: Path
    out_dir: Path
    processes: list[ProcessRecord] = field(default_factory=list)
    network: dict = field(default_factory=dict)
    seconds: float = 0.0
    mode: str = "netns"
    ok: bool = False
    error: str = ""

    @property
    def exit_codes(self) -> dict[str, int | None]:
        """``{"server0": 0, "trainer1": 0, ...}``."""
        return {f"{p.role}{p.rank}": p.exit_code for p in self.processes}

    @property
    def log_paths(self) -> dict[str, Path]:
        """``{"server0": Path, "trainer0": Path, ...}``."""
        return {f"{p.role}{p.rank}": p.log for p in self.processes}

    def rows(self):
        """All trainers' rows: the concatenation of ``out/rank<r>.parquet`` (sorted by rank), a
        ``pandas.DataFrame`` (empty when no trainer wrote any)."""
        import pandas as pd

        files = sorted(self.out_dir.glob("rank*.parquet"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        frames = [pd.read_parquet(f) for f in files]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------------------------
# Host capabilities
# --------------------------------------------------------------------------------------------

_AVAILABLE: tuple[bool, str] | None = None


def _run(cmd: list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def namespaces_available(refresh: bool = False) -> tuple[bool, str]:
    """Whether this host can emulate a cluster with network namespaces: ``(True, "")`` or
    ``(False, reason)`` where the reason says what is missing (root, ``ip``, ``tc``,
    ``unshare``/``nsenter``, permission to create a namespace or mount a tmpfs). The probe creates
    and deletes one namespace; the answer is cached for the process (``refresh=True`` probes again)."""
    global _AVAILABLE
    if _AVAILABLE is not None and not refresh:
        return _AVAILABLE
    _AVAILABLE = _probe_namespaces()
    return _AVAILABLE


def _probe_namespaces() -> tuple[bool, str]:
    if not sys.platform.startswith("linux"):
        return False, f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return False, ("creating network namespaces needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN); run as root, "
                       "or use the standalone mode")
    missing = [b for b in ("ip", "tc", "unshare", "nsenter", "mount") if shutil.which(b) is None]
    if missing:
        return False, (f"missing command(s) {', '.join(missing)}: install iproute2 (ip, tc) and util-linux "
                       f"(unshare, nsenter, mount)")
    name = f"{NAME_PREFIX}{os.getpid()}z"
    try:
        res = _run(["ip", "netns", "add", name], check=False)
        if res.returncode:
            return False, f"'ip netns add' failed: {res.stderr.strip()} (needs root in the host's network namespace)"
        res = _run(["ip", "netns", "exec", name, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                    "mount -t tmpfs tmpfs /dev/shm && ip link set lo up"], check=False)
        if res.returncode:
            return False, f"cannot mount a private /dev/shm in a namespace: {res.stderr.strip()}"
        res = _run(["ip", "link", "add", f"{name}v", "type", "veth", "peer", "name", f"{name}p"], check=False)
        if res.returncode:
            return False, f"cannot create veth links: {res.stderr.strip()}"
        _run(["ip", "link", "del", f"{name}v"], check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"namespace probe failed: {err}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, ""


def _our_names() -> tuple[list[str], list[str]]:
    """(namespaces, links) whose names start with this module's prefix."""
    ns = []
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if _NAME_RE.match(name):
            ns.append(name)
    links = []
    res = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        m = re.match(r"^\d+:\s+([^:@\s]+)", line)
        if m and _NAME_RE.match(m.group(1)):
            links.append(m.group(1))
    return ns, links


def leftovers(prefix: str | None = None) -> dict[str, list[str]]:
    """Namespaces and links of this module still present on the host (all, or those whose name
    starts with ``prefix``): ``{"netns": [...], "links": [...]}``. Empty lists when none, or when
    ``ip`` is missing."""
    if shutil.which("ip") is None:
        return {"netns": [], "links": []}
    ns, links = _our_names()
    if prefix:
        ns = [n for n in ns if n.startswith(prefix)]
        links = [n for n in links if n.startswith(prefix)]
    return {"netns": ns, "links": links}


def orphaned() -> dict[str, list[str]]:
    """Namespaces and links named ``sl<pid>...`` whose launcher process ``<pid>`` no longer runs
    (what :func:`cleanup_stale` removes): ``{"netns": [...], "links": [...]}``. Other launchers'
    live clusters on the same host are not listed."""
    ns, links = _our_names() if shutil.which("ip") else ([], [])

    def dead(name: str) -> bool:
        pid = int(_NAME_RE.match(name).group(1))
        return pid != os.getpid() and not psutil.pid_exists(pid)

    return {"netns": [n for n in ns if dead(n)], "links": [n for n in links if dead(n)]}


def cleanup_stale() -> list[str]:
    """Remove namespaces and links named ``sl<pid>...`` whose launcher process ``<pid>`` no longer
    runs (left by a launcher killed with SIGKILL), killing any process still inside such a
    namespace. Returns the names removed. Needs root; a no-op without ``ip``."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        return []
    removed = []
    stale = orphaned()
    for name in stale["netns"]:
        _kill_netns_pids(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        removed.append(name)
    for name in stale["links"]:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        removed.append(name)
    return removed


def _remove_prefix(prefix: str) -> list[str]:
    """Remove the namespaces (killing what runs inside) and links whose names start with the
    cluster prefix ``prefix`` (``sl<pid><letter>``); returns the names removed."""
    removed = []
    ns, links = _our_names()
    for name in ns:
        if name.startswith(prefix):
            _kill_netns_pids(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            removed.append(name)
    for name in links:
        if name.startswith(prefix):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
            removed.append(name)
    return removed


#: Folder of the subnet lock files (``10.77.<k>.lock``): ``/run/studylib`` where writable, else
#: the temporary folder.
def _lock_dir() -> Path:
    for d in (Path("/run/studylib"), Path(tempfile.gettempdir()) / f"studylib-{os.geteuid()}"):
        try:
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise ClusterUnavailableError("no writable folder for the subnet locks (/run/studylib or the temporary folder)")


def allocate_subnet(base: str = "10.77") -> tuple[ipaddress.IPv4Network, object]:
    """A ``<base>.<k>.0/24`` subnet that no other cluster on this host holds, and its lock (an
    open file under an exclusive ``flock``; ``close()`` frees it, and the kernel frees it when the
    process dies, so a killed launcher never leaves a subnet taken). Subnets already routed on
    this host are skipped. Raises :class:`ClusterUnavailableError` when all 250 are taken."""
    import fcntl

    d = _lock_dir()
    routed = subprocess.run(["ip", "-o", "-4", "route", "show"], capture_output=True, text=True).stdout \
        if shutil.which("ip") else ""
    start = (os.getpid() * 7 + _COUNTER[0]) % 250
    for i in range(250):
        k = 1 + (start + i) % 250
        if re.search(rf"(^|\s){re.escape(base)}\.{k}\.", routed):
            continue
        fh = open(d / f"{base}.{k}.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        return ipaddress.ip_network(f"{base}.{k}.0/24"), fh
    raise ClusterUnavailableError(f"all 250 subnets {base}.1-250.0/24 are held by other clusters on this host")


@contextlib.contextmanager
def lock_workdir(workdir: Path):
    """Hold the working folder of a run exclusively (``flock`` on ``<workdir>/launcher.lock``,
    freed when the run ends or its process dies). Raises :class:`ClusterUnavailableError` naming
    the run that holds it (process id, command line, start time) when another run uses the
    folder: two runs never share logs or ``out/``."""
    import fcntl

    path = Path(workdir) / "launcher.lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ClusterUnavailableError(f"the working folder {workdir} is in use by another cluster run ({holder}); "
                                          f"wait for it to finish or give this run its own folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, command "
                 f"{' '.join(sys.argv)[:200]}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def _kill_netns_pids(ns: str) -> list[int]:
    res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    pids = [int(p) for p in res.stdout.split() if p.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        if sig == signal.SIGTERM and pids:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and any(psutil.pid_exists(p) and not _is_zombie(p) for p in pids):
                time.sleep(0.05)
    return pids


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------------------------
# Teardown guard: finally + signals + atexit
# --------------------------------------------------------------------------------------------

_ACTIVE: set = set()
_ACTIVE_LOCK = threading.Lock()
_COUNTER = [0]


@atexit.register
def _teardown_all_at_exit() -> None:
    with _ACTIVE_LOCK:
        clusters = list(_ACTIVE)
    for c in clusters:
        with contextlib.suppress(Exception):
            c.teardown()


class _Terminated(BaseException):
    """Raised in the main thread when the launcher receives SIGTERM/SIGHUP."""


@contextlib.contextmanager
def _signal_guard():
    """While running a cluster, turn SIGTERM and SIGHUP into an exception in the main thread so
    that ``finally`` blocks tear the cluster down (SIGINT already raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        raise _Terminated(f"received signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, h)


# --------------------------------------------------------------------------------------------
# Machines
# --------------------------------------------------------------------------------------------

class _Base:
    """Common process bookkeeping of a cluster (namespace, ssh or standalone)."""

    mode = "base"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.records: list[ProcessRecord] = []
        self.popens: dict[int, subprocess.Popen] = {}
        self._torn_down = False
        self._lock = threading.Lock()

    def _start(self, role: str, machine: int, rank: int, cmd: list[str], env: dict) -> ProcessRecord:
        log = self.logdir / f"{role}{rank}.log"
        spec = getattr(self, "spec", None)
        cpus = getattr(spec, "cpus", None) if self.mode != "ssh" else None
        with open(log, "wb") as fh:
            p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=str(paths.project_root()), start_new_session=True,
                                 preexec_fn=(_pinned_child(cpus) if cpus else _die_with_parent)
                                 if self.mode != "ssh" else None)
        rec = ProcessRecord(role, machine, rank, p.pid, log, cmd)
        if self.mode != "ssh":
            with contextlib.suppress(OSError):
                rec.cpus = tuple(sorted(os.sched_getaffinity(p.pid)))
        self.records.append(rec)
        self.popens[p.pid] = p
        return rec

    def poll(self) -> None:
        for rec in self.records:
            if rec.exit_code is None:
                rc = self.popens[rec.pid].poll()
                if rc is not None:
                    rec.exit_code = rc

    def _stop_processes(self) -> None:
        running = [r for r in self.records if self.popens[r.pid].poll() is None]
        for r in running:
            r.killed_by_teardown = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for r in running:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(r.pid, sig)
            deadline = time.monotonic() + (TERM_GRACE_S if sig == signal.SIGTERM else 5.0)
            while time.monotonic() < deadline and any(self.popens[r.pid].poll() is None for r in running):
                time.sleep(0.05)
        self.poll()

    def teardown(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _NetnsCluster(_Base):
    """Machines as network + mount namespaces on this host (see the module docstring)."""

    mode = "netns"

    def __init__(self, spec: ClusterSpec, workdir: Path, host_address: bool = False):
        super().__init__(workdir)
        self.spec = spec
        with _ACTIVE_LOCK:
            letter = "abcdefghijklmnopqrstuvwxy"[_COUNTER[0] % 25]
            _COUNTER[0] += 1
        self.prefix = f"{NAME_PREFIX}{os.getpid()}{letter}"
        if len(self.prefix) + 4 > 15:
            raise ClusterUnavailableError(f"process id too long for interface names ({self.prefix})")
        self.subnet, self._subnet_lock = allocate_subnet()
        #: the host's own address on the bridge (``host_address=True``): the host then reaches
        #: the machines directly (the sshd test cluster of :mod:`studylib.distributed.testbed`)
        self.host_address = str(self.subnet.network_address + 1) if host_address else None
        self.reaper: subprocess.Popen | None = None
        self.bridge = f"{self.prefix}b"
        n = int(spec.num_machines)
        self.netns = [f"{self.prefix}n{i}" for i in range(n)]
        self.veth_host = [f"{self.prefix}v{i}" for i in range(n)]
        self.veth_ns = [f"{self.prefix}v{i}p" for i in range(n)]
        self.tun = [f"{self.prefix}t{i}" for i in range(n)]
        self.addresses = [str(self.subnet.network_address + 10 + i) for i in range(n)]
        self.holders: list[subprocess.Popen] = []
        self.switch: subprocess.Popen | None = None
        self.created_links: list[str] = []
        self.created_ns: list[str] = []
        model = spec.network_model
        if not model.emulated:
            self.backend, self.backend_note = "veth", "no emulation (raw veth pairs on a bridge)"
        else:
            ok, why = netem.netem_available()
            self.backend, self.backend_note = ("netem", "tc netem on both ends of each veth pair") if ok else (
                "tun", f"user-space TUN switch ({why})")
        self.link: dict = {}

    def setup(self) -> None:
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        n = int(self.spec.num_machines)
        # removes this cluster's namespaces and links if the launcher dies without tearing down
        self.reaper = subprocess.Popen([sys.executable, "-m", "studylib.distributed.cluster", "reap", self.prefix],
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env=_base_env(None), start_new_session=True)
        for ns in self.netns:
            _run(["ip", "netns", "add", ns])
            self.created_ns.append(ns)
            _run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        if self.backend == "tun":
            self._setup_tun()
        else:
            self._setup_bridge()
        for i in range(n):
            # the holder keeps the machine's mount namespace (its private /dev/shm) alive; its command
            # line carries the cluster's prefix so that it can be recognised
            holder = subprocess.Popen(
                ["ip", "netns", "exec", self.netns[i], "unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$0" -c "import signal; signal.pause()" "$1"',
                 self.spec.python, f"{self.prefix}-holder{i}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                preexec_fn=_die_with_parent)
            self.holders.append(holder)
        for i, holder in enumerate(self.holders):
            self._wait_holder(i, holder)
        self.link = self._measure() if n >= 2 else {}

    def _setup_bridge(self) -> None:
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self.created_links.append(self.bridge)
        _run(["ip", "link", "set", self.bridge, "up"])
        if self.host_address:
            _run(["ip", "addr", "add", f"{self.host_address}/{self.subnet.prefixlen}", "dev", self.bridge])
        model = self.spec.network_model
        for i, ns in enumerate(self.netns):
            vh, vn = self.veth_host[i], self.veth_ns[i]
            _run(["ip", "link", "add", vh, "type", "veth", "peer", "name", vn])
            self.created_links.append(vh)
            _run(["ip", "link", "set", vn, "netns", ns])
            _run(["ip", "link", "set", vh, "master", self.bridge])
            _run(["ip", "link", "set", vh, "up"])
            _run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.addresses[i]}/24", "dev", vn])
            _run(["ip", "netns", "exec", ns, "ip", "link", "set", vn, "up"])
            if self.backend == "netem":
                netem.apply_link(vh, vn, ns, model)

    def _setup_tun(self) -> None:
        model = self.spec.network_model
        log = open(self.logdir / "switch.log", "wb")
        self.switch = subprocess.Popen(
            [self.spec.python, "-m", "studylib.distributed.netem", "switch", "--devices", ",".join(self.tun),
             "--addresses", ",".join(self.addresses), "--rate", str(model.rate_bit_s or 0), "--latency",
             str(model.latency_s), "--name", model.name],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=_base_env(None),
            cwd=str(paths.project_root()), start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        line = _readline(self.switch, 30)
        if "ready" not in line:
            raise ClusterError(f"the network emulator did not start: {line!r} "
                               f"{(self.logdir / 'switch.log').read_text(errors='replace')[-500:]}")
        for i, ns in enumerate(self.netns):
            dev = self.tun[i]
            _run(["ip", "link", "set", dev, "netns", ns])
            _run(["ip", "netns", "exec", ns, "ip", "link", "set", dev, "mtu", str(netem.TUN_MTU)])
            _run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.addresses[i]}/24", "dev", dev])
            _run(["ip", "netns", "exec", ns, "ip", "link", "set", dev, "up"])

    def _measure(self) -> dict:
        """Round-trip time and throughput from machine 0 to machine 1 (see ``netem.measure_link``)."""
        got: dict = {}
        for attempt in range(3):  # a probe can fail on a machine busy with other work: try again
            got = netem.measure_link(self.command(1, []), self.command(0, []), self.addresses[1], port=5599 + attempt)
            if "error" not in got:
                return got
            time.sleep(0.5)
        return got

    def _wait_holder(self, i: int, holder: subprocess.Popen) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if holder.poll() is not None:
                err = holder.stderr.read().decode(errors="replace") if holder.stderr else ""
                raise ClusterError(f"machine {i}: the namespace holder exited ({holder.returncode}): {err.strip()}")
            try:
                mounts = Path(f"/proc/{holder.pid}/mounts").read_text()
                cmd = Path(f"/proc/{holder.pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                mounts, cmd = "", ""
            if f"{self.prefix}-holder{i}" in cmd and "signal.pause" in cmd and re.search(
                    r"^\S+ /dev/shm tmpfs", mounts, re.M):
                return
            time.sleep(0.02)
        raise ClusterError(f"machine {i}: the namespace holder did not come up within 20 s")

    def command(self, machine: int, argv: list[str]) -> list[str]:
        """``argv`` run inside machine ``machine``'s network and mount namespaces."""
        return ["nsenter", "--target", str(self.holders[machine].pid), "--net", "--mount", "--", *argv]

    def iface(self, machine: int) -> str:
        return self.tun[machine] if self.backend == "tun" else self.veth_ns[machine]

    def ip_config_lines(self) -> list[str]:
        return [f"{a} {self.spec.server_port}" for a in self.addresses]

    def server_listening(self, rec: ProcessRecord, port: int) -> bool:
        return _listening(rec.pid, port)

    def network_record(self) -> dict:
        rec = {**self.spec.network_record(), "network_backend": self.backend}
        rec["network_rtt_us_measured"] = self.link.get("rtt_us")
        rec["network_gbit_s_measured"] = self.link.get("gbit_s")
        if "error" in self.link:
            rec["network_probe_error"] = self.link["error"][:300]
        return rec

    def teardown(self) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        try:
            self._stop_processes()
            for ns in self.created_ns:
                _kill_netns_pids(ns)
            for h in [*self.holders, *([self.switch] if self.switch else [])]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(h.pid, signal.SIGTERM if h is self.switch else signal.SIGKILL)
                try:
                    h.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(h.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        h.wait(timeout=5)
            for ns in self.created_ns:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            for link in reversed(self.created_links):
                if subprocess.run(["ip", "link", "show", link], capture_output=True).returncode == 0:
                    subprocess.run(["ip", "link", "del", link], capture_output=True)
        finally:
            if self.reaper is not None:  # nothing left to reap: let it go
                with contextlib.suppress(OSError):
                    self.reaper.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.reaper.wait(timeout=15)
            self._subnet_lock.close()
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self)


def _readline(p: subprocess.Popen, timeout_s: float) -> str:
    """The first stdout line of ``p`` within ``timeout_s`` (empty string otherwise)."""
    import select as _select

    ready, _, _ = _select.select([p.stdout], [], [], timeout_s)
    return p.stdout.readline().decode(errors="replace") if ready else ""


try:
    import ctypes as _ctypes

    _PRCTL = _ctypes.CDLL(None).prctl
except (OSError, AttributeError):  # pragma: no cover - non-glibc
    _PRCTL = None


def _die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGKILL when the launcher dies (``PR_SET_PDEATHSIG``), so a
    killed launcher leaves no process running (its namespaces are removed by the next run)."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))


def _pinned_child(cpus: tuple[int, ...]):
    """A ``preexec_fn`` that pins the child to ``cpus`` (inherited by everything it starts) and
    then does :func:`_die_with_parent`."""
    def preexec() -> None:
        os.sched_setaffinity(0, cpus)
        _die_with_parent()
    return preexec


def _listening(pid: int, port: int) -> bool:
    """Whether the network namespace of ``pid`` has a TCP socket listening on ``port``
    (``/proc/<pid>/net/tcp`` shows the sockets of that process's namespace)."""
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


class _SshCluster(_Base):
    """Machines on real hosts reached over ssh (see :mod:`studylib.distributed.ssh`): every
    process runs under the remote wrapper, whose standard input is a pipe held by the launcher."""

    mode = "ssh"

    def __init__(self, spec: ClusterSpec, workdir: Path, hosts: list):
        super().__init__(workdir)
        self.spec, self.hosts = spec, hosts[: int(spec.num_machines)]
        self.opts = spec.ssh_options()
        self.link: dict = {}

    def setup(self) -> None:
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        if len(self.hosts) >= 2:
            self.link = self._measure()

    def _ssh(self, machine: int, remote: list[str]) -> list[str]:
        from studylib.distributed.ssh import ssh_argv

        return ssh_argv(self.opts, self.hosts[machine].name, remote)

    def _wrapped(self, machine: int, argv: list[str], env: dict | None = None, listen_port: int | None = None):
        from studylib.distributed.ssh import remote_argv

        return self._ssh(machine, remote_argv(self.spec.python, self.spec.remote_root(), env or {}, argv,
                                              self.hosts[machine].address, listen_port))

    def _measure(self) -> dict:
        """Round trip and throughput from machine 0 to machine 1 over the real network."""
        got: dict = {}
        for attempt in range(3):
            got = netem.measure_link(lambda argv: self._wrapped(1, argv), lambda argv: self._ssh(0, argv),
                                     self.hosts[1].address, port=5599 + attempt, python=self.spec.python)
            if "error" not in got:
                return got
            time.sleep(0.5)
        return got

    def launch(self, role: str, machine: int, rank: int, argv: list[str], env: dict,
               listen_port: int | None = None) -> ProcessRecord:
        """Start ``argv`` on the machine's host with ``env`` (plus this host's ``STUDYLIB_*``
        variables) and the remote project folder first on ``PYTHONPATH``."""
        env = {k: str(v) for k, v in env.items()}
        tail = env.pop("PYTHONPATH", "")
        fwd = {k: v for k, v in os.environ.items() if k.startswith("STUDYLIB_")}
        full = {**fwd, **env, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([p for p in (self.spec.remote_root(), tail) if p])}
        cmd = self._wrapped(machine, argv, full, listen_port)
        log = self.logdir / f"{role}{rank}.log"
        with open(log, "wb") as fh:
            p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                 cwd=str(paths.project_root()), start_new_session=True, preexec_fn=_die_with_parent)
        rec = ProcessRecord(role, machine, rank, p.pid, log, cmd)
        self.records.append(rec)
        self.popens[p.pid] = p
        return rec

    def poll(self) -> None:
        """Exit codes of finished processes: the remote program's own code (negative: killed by
        that signal) when the wrapper reported it, else ssh's (255: the connection failed)."""
        for rec in self.records:
            if rec.exit_code is None:
                rc = self.popens[rec.pid].poll()
                if rc is not None:
                    m = re.findall(r"STUDYLIB_REMOTE_EXIT=(-?\d+)", rec.tail(50))
                    rec.exit_code = int(m[-1]) if m else rc

    def iface(self, machine: int) -> str:
        return ""  # found on the host by the remote wrapper (the interface holding the machine's address)

    def network_record(self) -> dict:
        rec = {**self.spec.network_record(), "network_backend": "real"}
        rec["network_rtt_us_measured"] = self.link.get("rtt_us")
        rec["network_gbit_s_measured"] = self.link.get("gbit_s")
        if "error" in self.link:
            rec["network_probe_error"] = self.link["error"][:300]
        return rec

    def ip_config_lines(self) -> list[str]:
        return [f"{h.address} {h.port}" for h in self.hosts]

    def server_listening(self, rec: ProcessRecord, port: int) -> bool:
        return f"STUDYLIB_REMOTE_LISTENING={port}" in rec.tail(200)

    def remote_pid(self, rec: ProcessRecord) -> int | None:
        m = re.search(r"STUDYLIB_REMOTE_PID=(\d+)", rec.tail(1000))
        return int(m.group(1)) if m else None

    def teardown(self) -> None:
        """Close every wrapper's standard input (the wrapper kills its program's process group),
        give the processes ``TERM_GRACE_S`` + 5 s, kill what still runs on its host over a new
        ssh connection, then stop the local ssh processes."""
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        try:
            running = [r for r in self.records if self.popens[r.pid].poll() is None]
            for r in running:
                r.killed_by_teardown = True
                with contextlib.suppress(OSError):
                    self.popens[r.pid].stdin.close()
            deadline = time.monotonic() + TERM_GRACE_S + 5
            while time.monotonic() < deadline and any(self.popens[r.pid].poll() is None for r in running):
                time.sleep(0.05)
            for r in running:
                pid = self.remote_pid(r)
                if self.popens[r.pid].poll() is None and pid:
                    with contextlib.suppress(subprocess.SubprocessError, OSError):
                        subprocess.run(self._ssh(r.machine, ["kill", "-KILL", "--", f"-{pid}"]), capture_output=True,
                                       stdin=subprocess.DEVNULL, timeout=30)
            self._stop_processes()
            for p in self.popens.values():
                with contextlib.suppress(OSError):
                    if p.stdin:
                        p.stdin.close()
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self)


def _ssh_hosts(spec: ClusterSpec) -> list:
    """Read, validate and resolve the hosts of ``spec.ip_config`` and check that each answers over
    ssh. Raises ``IpConfigError`` (a ``ValueError``: bad line, with its number; unresolvable name),
    ``ValueError`` (fewer hosts than machines) or :class:`ClusterUnavailableError` (a host does not
    answer or its key does not verify) -- before anything starts."""
    from studylib.distributed import hosts as hosts_mod
    from studylib.distributed.ssh import SshError, check_reachable

    if shutil.which("ssh") is None:
        raise ClusterUnavailableError("real hosts are reached over ssh, but the 'ssh' command is missing")
    hosts = hosts_mod.read_ip_config(Path(spec.ip_config), spec.server_port)
    if len(hosts) < int(spec.num_machines):
        raise ValueError(f"ip_config {spec.ip_config} lists {len(hosts)} host(s), {spec.num_machines} machines "
                         f"were asked for")
    hosts = hosts_mod.resolve(hosts[: int(spec.num_machines)], str(spec.ip_config))
    try:
        check_reachable(spec.ssh_options(), [(h.name, f"{spec.ip_config}:{h.line}") for h in hosts])
    except SshError as err:
        raise ClusterUnavailableError(str(err)) from None
    return hosts


def _preflight(spec: ClusterSpec, hosts: list, part_config: Path, workdir: Path) -> None:
    """What the hosts must share, checked on each (:func:`studylib.distributed.ssh.preflight`):
    the remote Python and project folder, the partition JSON and every part's files' folder, and
    the run folder (``ip_config``, ``out/``). Raises :class:`ClusterUnavailableError`."""
    from studylib.distributed.ssh import SshError, preflight

    conf = read_partition_config(part_config)
    files = []
    for key in sorted(k for k in conf if k.startswith("part-")):
        for f in ("node_feats", "edge_feats", "part_graph"):
            path = conf[key].get(f) if isinstance(conf[key], dict) else None
            if path:
                path = Path(path) if Path(path).is_absolute() else part_config.parent / path
                if path.is_file():
                    files.append(path)
    try:
        preflight(spec.ssh_options(), [(h.name, f"{spec.ip_config}:{h.line}") for h in hosts], spec.python,
                  spec.remote_root(), [part_config], workdir / "out", sized=files)
    except SshError as err:
        raise ClusterUnavailableError(str(err)) from None


# --------------------------------------------------------------------------------------------
# run_cluster
# --------------------------------------------------------------------------------------------

def _base_env(extra: dict | None) -> dict:
    """This process's environment plus ``extra``; the project root first on ``PYTHONPATH`` (an
    extra ``PYTHONPATH`` is put after it)."""
    env = dict(os.environ)
    extra = {k: str(v) for k, v in (extra or {}).items()}
    root = str(paths.project_root())
    tail = [p for p in (extra.pop("PYTHONPATH", ""), env.get("PYTHONPATH", "")) if p]
    env["PYTHONPATH"] = os.pathsep.join([root, *tail])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _check_partition(part_config: Path, spec: ClusterSpec) -> dict:
    conf = read_partition_config(part_config)
    parts = int(conf["num_parts"])
    if int(spec.num_machines) > parts:
        raise ValueError(f"{spec.num_machines} machines asked for, but the partition {part_config} has only {parts} "
                         f"part(s): partition the graph into {spec.num_machines} parts "
                         f"(studylib.distributed.partition(graph, {spec.num_machines}, name=...))")
    if int(spec.num_machines) < parts:
        raise ValueError(f"the partition {part_config} has {parts} parts but {spec.num_machines} machines were asked "
                         f"for; DistDGL runs one machine per partition")
    return conf


def _fail(cluster: _Base, result: ClusterResult, message: str) -> ClusterError:
    cluster.poll()
    bad = [r for r in cluster.records if r.exit_code not in (0, None) and not r.killed_by_teardown]
    shown = bad or cluster.records
    tails = "\n".join(f"--- {r.role}{r.rank} (machine {r.machine}, exit {r.exit_code}) {r.log} ---\n{r.tail()}"
                      for r in shown)
    result.ok, result.error = False, message
    return ClusterError(f"{message}\n{tails}", result)


def run_cluster(part_config: Path, trainer_module: str, trainer_args: list[str], spec: ClusterSpec, *,
                timeout_s: float = 600, workdir: Path | None = None, env: dict | None = None) -> ClusterResult:
    """Start a DistDGL cluster, run ``python -m <trainer_module> <trainer_args>`` on every trainer,
    wait for it, and tear everything down.

    Args:
        part_config: the partition JSON (:func:`studylib.distributed.partition`); its ``num_parts``
            must equal ``spec.num_machines``.
        trainer_module: module run by every trainer (e.g. ``"studylib.studies.distributed_caching.node_trainer"``).
        trainer_args: its command-line arguments (the same for every trainer).
        spec: the cluster (:class:`ClusterSpec`).
        timeout_s: wall-clock limit from the first process start (seconds).
        workdir: folder for ``ip_config``, ``logs/<role><rank>.log`` and ``out/`` (default: a new
            temporary folder, kept after the run so that logs can be read).
        env: extra environment variables for every process.

    Returns:
        :class:`ClusterResult` with ``ok=True``: per-process exit codes and logs, and ``rows()``.

    Raises:
        ValueError: bad spec, or machines that do not match the partition's part count (before
            anything starts).
        FileNotFoundError: ``part_config`` does not exist.
        IpConfigError: (a ``ValueError``) a line of ``ip_config`` is not ``<address or host name>
            [<port>]``, or a name does not resolve -- the message names the line; nothing runs.
        ClusterUnavailableError: namespaces cannot be created here (no root, missing tools); a
            host of ``ip_config`` does not answer over ssh, its key does not verify, or it lacks
            what the hosts must share; or another run holds ``workdir`` -- before anything starts.
        ClusterError: a process failed, a server did not start, or the run timed out; raised
            after the teardown, with the log tails of the failing processes.
        KeyboardInterrupt: Ctrl-C, after the teardown.
    """
    part_config = Path(part_config).resolve()
    _check_partition(part_config, spec)
    hosts: list = []
    if spec.mode == "netns":
        ok, why = namespaces_available()
        if not ok:
            raise ClusterUnavailableError(f"cannot emulate a cluster on this host: {why}")
        cleanup_stale()
    else:
        hosts = _ssh_hosts(spec)
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="studylib-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with lock_workdir(workdir):
        return _run_locked(part_config, trainer_module, trainer_args, spec, hosts, timeout_s, workdir, env)


def _run_locked(part_config: Path, trainer_module: str, trainer_args: list[str], spec: ClusterSpec, hosts: list,
                timeout_s: float, workdir: Path, env: dict | None) -> ClusterResult:
    out_dir = workdir / "out"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir()
    if spec.mode == "ssh":
        _preflight(spec, hosts, part_config, workdir)
    cluster: _NetnsCluster | _SshCluster = (_NetnsCluster(spec, workdir) if spec.mode == "netns"
                                            else _SshCluster(spec, workdir, hosts))
    result = ClusterResult(spec, part_config, workdir, out_dir, cluster.records, spec.network_record(), 0.0,
                           spec.mode)
    t0 = time.monotonic()
    error: ClusterError | None = None
    try:
        with _signal_guard():
            cluster.setup()
            result.network = cluster.network_record()
            ip_config = workdir / "ip_config.txt"
            ip_config.write_text("\n".join(cluster.ip_config_lines()) + "\n")
            error = _launch_and_wait(cluster, spec, part_config, ip_config, trainer_module, trainer_args, out_dir,
                                     env, result, t0, timeout_s)
    finally:
        cluster.teardown()
        cluster.poll()
        result.seconds = time.monotonic() - t0
    if error is not None:
        raise error
    result.ok = True
    return result


def _launch_and_wait(cluster, spec: ClusterSpec, part_config: Path, ip_config: Path, trainer_module: str,
                     trainer_args: list[str], out_dir: Path, env: dict | None, result: ClusterResult, t0: float,
                     timeout_s: float) -> ClusterError | None:
    n, per = int(spec.num_machines), int(spec.trainers_per_machine)
    world = spec.world_size
    threads = spec.threads()
    dgl_env = {"DGL_NUM_SERVER": "1", "DGL_NUM_CLIENT": str(world), "DGL_CONF_PATH": str(part_config),
               "DGL_IP_CONFIG": str(ip_config), "DGL_GRAPH_FORMAT": "csc", "DGL_NUM_SAMPLER": "0",
               "DGL_KEEP_ALIVE": "0"}
    ports = [int(line.split()[1]) for line in cluster.ip_config_lines()]
    server_threads = "1" if spec.mode == "netns" else str(threads)
    servers = []
    for m in range(n):
        senv = {**dgl_env, "DGL_ROLE": "server", "DGL_SERVER_ID": str(m), "OMP_NUM_THREADS": server_threads}
        argv = [spec.python, "-c", SERVER_PROGRAM]
        if spec.mode == "ssh":
            servers.append(cluster.launch("server", m, m, argv, {**(env or {}), **senv}, listen_port=ports[m]))
        else:
            servers.append(cluster._start("server", m, m, cluster.command(m, argv), _base_env({**(env or {}), **senv})))
    # servers first: trainers connect only once every server listens
    for rec, port in zip(servers, ports):
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not cluster.server_listening(rec, port):
            cluster.poll()
            if rec.exit_code is not None:
                return _fail(cluster, result, f"server {rec.rank} exited ({rec.exit_code}) before listening on {port}")
            if time.monotonic() > deadline or time.monotonic() - t0 > timeout_s:
                return _fail(cluster, result, f"server {rec.rank} did not listen on port {port} within "
                                              f"{SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.1 if spec.mode == "netns" else 0.25)
    master = cluster.ip_config_lines()[0].split()[0]
    trainers = []
    for m in range(n):
        for t in range(per):
            rank = m * per + t
            tenv = {**dgl_env, "DGL_DIST_MODE": "distributed", "DGL_ROLE": "client", "DGL_GROUP_ID": "0",
                    "MASTER_ADDR": master, "MASTER_PORT": str(spec.master_port), "WORLD_SIZE": str(world),
                    "RANK": str(rank), "LOCAL_RANK": str(t), "OMP_NUM_THREADS": str(threads),
                    "STUDYLIB_TRAINER_OUT": str(out_dir), "STUDYLIB_NETWORK": json.dumps(result.network),
                    "STUDYLIB_MACHINE_ID": str(m), "STUDYLIB_NUM_MACHINES": str(n),
                    "STUDYLIB_TRAINERS_PER_MACHINE": str(per), "STUDYLIB_CLUSTER_MODE": spec.mode,
                    "STUDYLIB_NET_IFACE": cluster.iface(m)}
            if spec.mode == "netns":
                tenv["GLOO_SOCKET_IFNAME"] = cluster.iface(m)
            argv = [spec.python, "-m", trainer_module, *map(str, trainer_args)]
            if spec.mode == "ssh":
                trainers.append(cluster.launch("trainer", m, rank, argv, {**(env or {}), **tenv}))
            else:
                trainers.append(cluster._start("trainer", m, rank, cluster.command(m, argv),
                                               _base_env({**(env or {}), **tenv})))
    return _wait(cluster, result, servers, trainers, t0, timeout_s)


def _wait(cluster: _Base, result: ClusterResult, servers: list[ProcessRecord], trainers: list[ProcessRecord],
          t0: float, timeout_s: float) -> ClusterError | None:
    """Watch the processes until every trainer exits 0 (then give the servers a grace period),
    one process fails, or the time runs out."""
    finished_at = None
    while True:
        cluster.poll()
        failed = [r for r in cluster.records if r.exit_code not in (None, 0)]
        if failed:
            names = ", ".join(f"{r.role} {r.rank} (exit {r.exit_code})" for r in failed)
            return _fail(cluster, result, f"cluster run failed: {names}")
        if all(r.exit_code == 0 for r in trainers):
            if finished_at is None:
                finished_at = time.monotonic()
            if all(r.exit_code is not None for r in servers) or time.monotonic() - finished_at > SERVER_EXIT_GRACE_S:
                return None
        if time.monotonic() - t0 > timeout_s:
            return _fail(cluster, result, f"cluster run timed out after {timeout_s:.0f} s")
        time.sleep(0.1)


class _Standalone(_Base):
    mode = "standalone"

    def teardown(self) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        try:
            self._stop_processes()
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self)


def run_standalone(part_config: Path, trainer_module: str, trainer_args: list[str], *, timeout_s: float = 600,
                   workdir: Path | None = None, env: dict | None = None, threads: int = 0) -> ClusterResult:
    """Run one trainer in DistDGL's standalone mode (no server; the whole graph is the one local
    partition): the fallback when namespaces are not available. ``part_config`` must have one part.
    Same environment contract and result as :func:`run_cluster` (``WORLD_SIZE=1``, ``RANK=0``,
    ``MASTER_ADDR=127.0.0.1``, ``DGL_DIST_MODE=standalone``). Raises ``ValueError`` for a
    partition with more than one part and :class:`ClusterError` when the trainer fails or times out."""
    part_config = Path(part_config).resolve()
    conf = read_partition_config(part_config)
    if int(conf["num_parts"]) != 1:
        raise ValueError(f"standalone mode needs a 1-part partition ({part_config} has {conf['num_parts']})")
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="studylib-standalone-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with lock_workdir(workdir):
        return _standalone_locked(part_config, trainer_module, trainer_args, timeout_s, workdir, env, threads)


def _standalone_locked(part_config: Path, trainer_module: str, trainer_args: list[str], timeout_s: float,
                       workdir: Path, env: dict | None, threads: int) -> ClusterResult:
    out_dir = workdir / "out"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir()
    ip_config = workdir / "ip_config.txt"
    ip_config.write_text("127.0.0.1 30050\n")
    runner = _Standalone(workdir)
    rec_net = {"network": "none (standalone)", "network_rate_gbit_s": None, "network_latency_us": None}
    result = ClusterResult(None, part_config, workdir, out_dir, runner.records, rec_net, 0.0, "standalone")
    n_threads = threads or len(os.sched_getaffinity(0))
    tenv = {"DGL_DIST_MODE": "standalone", "DGL_ROLE": "client", "DGL_CONF_PATH": str(part_config),
            "DGL_IP_CONFIG": str(ip_config), "DGL_NUM_SAMPLER": "0", "DGL_NUM_CLIENT": "1", "DGL_NUM_SERVER": "1",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "1", "RANK": "0",
            "LOCAL_RANK": "0", "OMP_NUM_THREADS": str(n_threads), "STUDYLIB_TRAINER_OUT": str(out_dir),
            "STUDYLIB_NETWORK": json.dumps(rec_net), "STUDYLIB_MACHINE_ID": "0", "STUDYLIB_NUM_MACHINES": "1",
            "STUDYLIB_TRAINERS_PER_MACHINE": "1", "STUDYLIB_CLUSTER_MODE": "standalone", "STUDYLIB_NET_IFACE": ""}
    t0 = time.monotonic()
    error = None
    with _ACTIVE_LOCK:
        _ACTIVE.add(runner)
    try:
        with _signal_guard():
            rec = runner._start("trainer", 0, 0, [sys.executable, "-m", trainer_module, *map(str, trainer_args)],
                                _base_env({**(env or {}), **tenv}))
            error = _wait(runner, result, [], [rec], t0, timeout_s)
    finally:
        runner.teardown()
        runner.poll()
        result.seconds = time.monotonic() - t0
    if error is not None:
        raise error
    result.ok = True
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _main(argv: list[str]) -> int:
    """``python -m studylib.distributed.cluster cleanup`` removes the namespaces and links of
    launchers that no longer run (:func:`cleanup_stale`) and prints them; ``... leftovers`` lists
    this module's namespaces and links; ``... reap PREFIX`` (started by the launcher itself) waits
    until its standard input closes -- the launcher ended or died -- and removes what remains of
    the cluster ``PREFIX``."""
    if argv[:1] == ["cleanup"]:
        removed = cleanup_stale()
        print("\n".join(removed) if removed else "nothing to remove")
        return 0
    if argv[:1] == ["leftovers"]:
        print(json.dumps(leftovers(), indent=1))
        return 0
    if len(argv) == 2 and argv[0] == "reap" and _NAME_RE.match(argv[1]):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(4096):
                pass
        _remove_prefix(argv[1])
        return 0
    print("usage: python -m studylib.distributed.cluster {cleanup|leftovers}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
