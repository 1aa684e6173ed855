"""Reaching real hosts over OpenSSH: safe command lines, a remote process wrapper, and checks
before a cluster starts.

Every ``ssh`` call is an argument list built by :func:`ssh_argv`: ``BatchMode=yes`` (never a
prompt), host keys verified against ``known_hosts`` (``StrictHostKeyChecking=yes``; ``accept-new``,
trust on first use, only when the caller opts in), ``--`` before the host so that no host field can
become an option, and the remote program as a list whose items are each quoted for the remote POSIX
shell (``shlex.join``). No parameter value is ever interpolated into a shell string unquoted.

Every remote process runs under :data:`REMOTE_WRAPPER` (``python -c``, arguments as one JSON
object): it changes to the remote working folder, sets the environment, finds the network interface
that holds the machine's ``ip_config`` address (for ``GLOO_SOCKET_IFNAME``, which gloo needs when the
host name resolves elsewhere), starts the program in its own process group, prints
``STUDYLIB_REMOTE_PID=<pid>``, optionally ``STUDYLIB_REMOTE_LISTENING=<port>`` once the program
listens on that TCP port, and at the end ``STUDYLIB_REMOTE_EXIT=<code>`` (negative: killed by that
signal). It kills the program's whole process group when its standard input reaches end-of-file --
the launcher holds that pipe open, so closing it, killing the local ``ssh``, or the launcher dying
(even by SIGKILL) tears the remote process down -- and when it receives SIGTERM/SIGHUP/SIGINT.

:func:`preflight` checks, on every host before anything starts, what the hosts must share: the
remote Python, the remote working folder with the same ``studylib``, and the files of the run (the
partition and the run folder) at the same paths with the same content (a shared file system), and
that the run folder is writable from the host and visible back here.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REMOTE_WRAPPER", "SshError", "SshOptions", "check_reachable", "preflight", "remote_argv", "ssh_argv"]

_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SshError(RuntimeError):
    """A host cannot be used: it does not answer over ssh, its key does not verify, or it lacks
    what the cluster needs. The message names every such host and what is wrong."""


@dataclass(frozen=True)
class SshOptions:
    """How to reach the hosts.

    Attributes:
        user: login name (``None`` = ssh's default: the ssh configuration or the local user).
        key: private key file (``-i``, with ``IdentitiesOnly``); ``None`` = the ssh agent/defaults.
        known_hosts: the known_hosts file that verifies host keys (``None`` = ssh's default files).
        port: ssh port of every host.
        trust_new_host_keys: accept and record the key of a host not yet in known_hosts
            (``StrictHostKeyChecking=accept-new``, trust on first use); a *changed* key is still
            refused. Off by default.
        connect_timeout_s: seconds to wait for a connection.

    Raises ``ValueError`` for a user name that is not a POSIX user name, a port outside 1..65535,
    or a known_hosts path that ssh's option syntax cannot carry (whitespace, quotes, ``%``).
    """

    user: str | None = None
    key: str | Path | None = None
    known_hosts: str | Path | None = None
    port: int = 22
    trust_new_host_keys: bool = False
    connect_timeout_s: int = 10

    def __post_init__(self):
        if self.user is not None and not _USER.match(self.user):
            raise ValueError(f"ssh_user {self.user!r} is not a user name (letters, digits, '_', '.', '-'; no "
                             f"leading '-')")
        if not 1 <= int(self.port) <= 65535:
            raise ValueError(f"ssh port must be in 1..65535 (got {self.port})")
        if self.known_hosts is not None and re.search(r"[\s\"'%\\]", str(self.known_hosts)):
            raise ValueError(f"known_hosts path {str(self.known_hosts)!r} holds whitespace, a quote, '\\' or '%', "
                             f"which ssh's option syntax cannot carry; move the file")


def ssh_argv(opts: SshOptions, host: str, remote: list[str]) -> list[str]:
    """The ``ssh`` argument list that runs the program ``remote`` (a list of arguments, each
    quoted for the remote shell) on ``host``: ``ssh -o BatchMode=yes ... -- <host> <quoted
    program>``. ``host`` must already be validated (:func:`studylib.distributed.hosts.check_host`);
    the ``--`` makes ssh read it as the destination whatever it holds."""
    cmd = ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(opts.connect_timeout_s)}",
           "-o", f"StrictHostKeyChecking={'accept-new' if opts.trust_new_host_keys else 'yes'}",
           "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6", "-o", "LogLevel=ERROR",
           "-p", str(int(opts.port))]
    if opts.known_hosts is not None:
        cmd += ["-o", f"UserKnownHostsFile={opts.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
    if opts.key is not None:
        cmd += ["-i", str(opts.key), "-o", "IdentitiesOnly=yes"]
    if opts.user is not None:
        cmd += ["-l", opts.user]
    return [*cmd, "--", host, shlex.join([str(a) for a in remote])]


#: The remote process wrapper (see the module docstring); ``sys.argv[1]`` is a JSON object with
#: ``cwd``, ``env``, ``argv``, ``address`` and ``listen_port`` (or null).
REMOTE_WRAPPER = r"""
import fcntl, json, os, signal, socket, struct, subprocess, sys, threading, time
spec = json.loads(sys.argv[1])
os.chdir(spec["cwd"])
env = dict(os.environ); env.update(spec["env"])
def iface_of(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            try:
                got = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            if socket.inet_ntoa(got[20:24]) == addr:
                return name
    finally:
        s.close()
    return ""
if spec.get("address"):
    dev = iface_of(spec["address"])
    if dev:
        env.setdefault("GLOO_SOCKET_IFNAME", dev)
        if not env.get("STUDYLIB_NET_IFACE"):
            env["STUDYLIB_NET_IFACE"] = dev
p = subprocess.Popen(spec["argv"], env=env, stdin=subprocess.DEVNULL, start_new_session=True)
print("STUDYLIB_REMOTE_PID=%d" % p.pid, flush=True)
def stop(*_):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except OSError:
            return
        t = time.monotonic()
        while p.poll() is None and time.monotonic() - t < 3:
            time.sleep(0.05)
for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(sig, lambda *a: threading.Thread(target=stop).start())
def watch_stdin():
    while True:
        try:
            if not os.read(0, 4096):
                break
        except OSError:
            break
    stop()
threading.Thread(target=watch_stdin, daemon=True).start()
def listening(port):
    for table in ("tcp", "tcp6"):
        try:
            lines = open("/proc/%d/net/%s" % (p.pid, table)).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False
def watch_port(port):
    while p.poll() is None:
        if listening(port):
            print("STUDYLIB_REMOTE_LISTENING=%d" % port, flush=True)
            return
        time.sleep(0.1)
if spec.get("listen_port"):
    threading.Thread(target=watch_port, args=(int(spec["listen_port"]),), daemon=True).start()
rc = p.wait()
try:
    os.killpg(p.pid, signal.SIGKILL)
except OSError:
    pass
print("STUDYLIB_REMOTE_EXIT=%d" % rc, flush=True)
sys.exit(rc if rc >= 0 else 128 - rc)
"""


def remote_argv(python: str, cwd: str, env: dict, argv: list[str], address: str = "",
                listen_port: int | None = None) -> list[str]:
    """The remote program that runs ``argv`` under :data:`REMOTE_WRAPPER` with interpreter
    ``python``, in folder ``cwd``, with ``env`` added to the host's environment. Raises
    ``ValueError`` for an environment name that is not ``[A-Za-z_][A-Za-z0-9_]*``."""
    bad = [k for k in env if not _ENV_KEY.match(str(k))]
    if bad:
        raise ValueError(f"environment variable name(s) {bad} are not valid names")
    spec = {"cwd": str(cwd), "env": {str(k): str(v) for k, v in env.items()}, "argv": [str(a) for a in argv],
            "address": address, "listen_port": listen_port}
    return [str(python), "-c", REMOTE_WRAPPER, json.dumps(spec)]


def _why(res: subprocess.CompletedProcess) -> str:
    err = (res.stderr or "").strip().splitlines()
    last = err[-1] if err else f"exit {res.returncode}"
    if "Host key verification failed" in (res.stderr or "") or "REMOTE HOST IDENTIFICATION" in (res.stderr or ""):
        last += (" (add the host's key to known_hosts, e.g. with ssh-keyscan after checking its fingerprint, or "
                 "set trust_new_host_keys=True to trust a new host on first use)")
    return last


def check_reachable(opts: SshOptions, hosts: list[tuple[str, str]], timeout_s: float = 20) -> None:
    """Run ``true`` on every host (``hosts`` = ``[(host, label)]``, the label naming it in
    errors, e.g. ``"ip_config:2"``). Raises :class:`SshError` listing every host that does not
    answer, whose key does not verify, or that refuses the key, with ssh's reason."""
    bad = []
    for host, label in hosts:
        try:
            res = subprocess.run(ssh_argv(opts, host, ["true"]), capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, timeout=timeout_s)
            if res.returncode:
                bad.append(f"{host} ({label}): {_why(res)}")
        except subprocess.TimeoutExpired:
            bad.append(f"{host} ({label}): no answer within {timeout_s:.0f} s")
    if bad:
        raise SshError(f"unreachable host(s): {'; '.join(bad)}. Every host must accept key-based ssh (BatchMode) on "
                       f"port {opts.port}; nothing was started")


_PREFLIGHT = r"""
import hashlib, importlib.util, json, os, sys
spec = json.loads(sys.argv[1])
missing = []
if not os.path.isdir(spec["workdir"]):
    missing.append("remote_workdir %s does not exist" % spec["workdir"])
else:
    init = os.path.join(spec["workdir"], "studylib", "__init__.py")
    if not os.path.isfile(init):
        missing.append("%s holds no studylib package (the project must be at the same path, or set remote_workdir)"
                       % spec["workdir"])
for mod in ("dgl", "torch"):
    if importlib.util.find_spec(mod) is None:
        missing.append("the Python %s cannot import %s" % (sys.executable, mod))
for path, (digest, size) in spec["files"].items():
    try:
        if digest is None:
            got, want = os.path.getsize(path), size
        else:
            with open(path, "rb") as f:
                got, want = hashlib.sha256(f.read()).hexdigest(), digest
    except OSError as e:
        missing.append("%s is not readable here (%s): it must be on a file system shared with the launcher"
                       % (path, e.strerror))
        continue
    if got != want:
        missing.append("%s differs from the launcher's copy: it must be the same (shared) file" % path)
try:
    with open(spec["probe"], "w") as f:
        f.write(spec["token"])
except OSError as e:
    missing.append("cannot write %s (%s): the run folder must be shared and writable" % (spec["probe"], e.strerror))
print(json.dumps(missing))
"""


def preflight(opts: SshOptions, hosts: list[tuple[str, str]], python: str, workdir: str, files: list[Path],
              run_dir: Path, sized: list[Path] = (), timeout_s: float = 60) -> None:
    """Check on every host (``[(host, label)]``) what the cluster needs there: the interpreter
    ``python`` exists and imports dgl and torch; ``workdir`` holds the project's ``studylib``;
    each of ``files`` is readable at the same path with the same SHA-256, and each of ``sized``
    (large files) with the same size (a shared file system); ``run_dir`` is writable by the host
    and the file it writes is seen here.

    Raises:
        SshError: naming each host and what is missing there (nothing has been started).
    """
    digests = {str(Path(f).resolve()): (hashlib.sha256(Path(f).read_bytes()).hexdigest(), None) for f in files}
    digests.update({str(Path(f).resolve()): (None, Path(f).stat().st_size) for f in sized})
    problems = []
    for i, (host, label) in enumerate(hosts):
        token = uuid.uuid4().hex
        probe = Path(run_dir) / f".preflight-{i}-{token[:8]}"
        spec = {"workdir": str(workdir), "files": digests, "probe": str(probe), "token": token}
        try:
            res = subprocess.run(ssh_argv(opts, host, [python, "-c", _PREFLIGHT, json.dumps(spec)]),
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            problems.append(f"{host} ({label}): the check did not finish within {timeout_s:.0f} s")
            continue
        try:
            if res.returncode == 127 or (res.returncode and not res.stdout.strip()):
                why = _why(res)
                if res.returncode == 127:
                    why = f"remote_python {python} was not found ({why})"
                problems.append(f"{host} ({label}): {why}")
                continue
            missing = json.loads(res.stdout.strip().splitlines()[-1])
            if not any("cannot write" in m for m in missing):
                seen = probe.read_text() if probe.is_file() else None
                if seen != token:
                    missing.append(f"the file the host wrote in the run folder ({probe}) is not visible here: "
                                   f"the run folder must be on a file system shared with the launcher")
            problems += [f"{host} ({label}): {m}" for m in missing]
        finally:
            probe.unlink(missing_ok=True)
    if problems:
        raise SshError("the hosts lack what the cluster needs; nothing was started:\n  " + "\n  ".join(problems))
