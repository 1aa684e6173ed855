"""A cluster of real OpenSSH servers on one host, to exercise the launcher's ssh mode end to end.

:class:`SshdTestbed` builds ``num_machines`` machines exactly as the namespace mode does (one network
namespace and one private ``/dev/shm`` each, joined by a bridge; :mod:`studylib.distributed.cluster`)
and gives the host an address on the bridge, then runs on every machine its own OpenSSH server
(Debian's ``openssh-server``): listening on the machine's address only, with a host key and an
``sshd_config`` made fresh in a temporary folder, accepting one client key made fresh there too.
It writes the ``known_hosts`` file that holds the fresh host keys and an ``ip_config`` of the
machines' addresses, so that :func:`~studylib.distributed.cluster.run_cluster` reaches them over
ssh exactly as it reaches real hosts (``BatchMode``, host keys verified). The host's own ssh
configuration (``/etc/ssh``, ``~/.ssh``) is neither read for keys nor changed.

:meth:`SshdTestbed.stop` (also at ``with`` exit) stops the servers, removes the namespaces, links
and the temporary folder with the keys. Needs root, ``ip``/``nsenter``/``unshare`` and ``sshd``
(:func:`ensure_openssh_server` installs Debian's package with ``apt-get`` when asked).

Example::

    with SshdTestbed(2) as tb:
        run_cluster(part, module, args, ClusterSpec(2, ip_config=tb.ip_config, **tb.ssh_kwargs()))
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["SSHD", "SshdTestbed", "ensure_openssh_server"]

#: The OpenSSH server binary (Debian's ``openssh-server``).
SSHD = "/usr/sbin/sshd"


def ensure_openssh_server(install: bool = False) -> tuple[bool, str]:
    """Whether :data:`SSHD` exists: ``(True, "")`` or ``(False, reason)``. With ``install=True``
    and root, a missing server is installed with ``apt-get install -y openssh-server`` (after
    ``apt-get update`` when the first attempt fails): the only step here that uses the network."""
    if Path(SSHD).is_file():
        return True, ""
    if not install:
        return False, f"{SSHD} is missing (Debian: apt-get install openssh-server)"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False, f"{SSHD} is missing and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if res.returncode:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=900)
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if not Path(SSHD).is_file():
        return False, f"installing openssh-server failed: {res.stderr.strip()[-300:]}"
    return True, ""


_SSHD_CONFIG = """\
ListenAddress {address}:22
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PidFile none
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTTY no
PrintMotd no
LogLevel ERROR
"""


class SshdTestbed:
    """``num_machines`` namespace machines, each with its own sshd (see the module docstring).

    Attributes (after :meth:`start`):
        folder: the temporary folder (keys, ``sshd_config_<i>``, ``known_hosts``, ``ip_config``).
        addresses: the machines' IPv4 addresses.
        ip_config: the ``ip_config`` path (``<address> <server_port>`` per machine).
        known_hosts, key: the known_hosts file and the client's private key.
        user: the login name (the current user).
        prefix: the name prefix of the namespaces and links (``sl<pid><letter>``).

    Raises :class:`~studylib.distributed.cluster.ClusterUnavailableError` from :meth:`start` when
    namespaces or sshd are not available, and ``RuntimeError`` when a server does not come up.
    """

    def __init__(self, num_machines: int = 2, server_port: int = 30050):
        self.num_machines, self.server_port = int(num_machines), int(server_port)
        self.folder: Path | None = None
        self.cluster = None
        self.addresses: list[str] = []
        self.user = getpass.getuser()

    def __enter__(self) -> SshdTestbed:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SshdTestbed:
        from studylib.distributed import cluster as cl

        ok, why = cl.namespaces_available()
        if not ok:
            raise cl.ClusterUnavailableError(f"the sshd test cluster needs network namespaces: {why}")
        ok, why = ensure_openssh_server(False)
        if not ok:
            raise cl.ClusterUnavailableError(why)
        self.folder = Path(tempfile.mkdtemp(prefix="studylib-sshd-"))
        try:
            self._start(cl)
        except BaseException:
            self.stop()
            raise
        return self

    def _keygen(self, path: Path) -> str:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "studylib-testbed", "-f", str(path)],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return (path.parent / (path.name + ".pub")).read_text().strip()

    def _start(self, cl) -> None:
        d = self.folder
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        self.key = d / "client_key"
        (d / "authorized_keys").write_text(self._keygen(self.key) + "\n")
        spec = cl.ClusterSpec(self.num_machines)
        self.cluster = cl._NetnsCluster(spec, d, host_address=True)
        self.prefix = self.cluster.prefix
        self.cluster.setup()
        self.addresses = list(self.cluster.addresses)
        known = []
        self.servers = []
        for i, addr in enumerate(self.addresses):
            pub = self._keygen(d / f"host_key_{i}")
            known.append(f"{addr} {' '.join(pub.split()[:2])}")
            cfg = d / f"sshd_config_{i}"
            cfg.write_text(_SSHD_CONFIG.format(address=addr, host_key=d / f"host_key_{i}",
                                               authorized_keys=d / "authorized_keys"))
            check = subprocess.run([SSHD, "-t", "-f", str(cfg)], capture_output=True, text=True)
            if check.returncode:
                raise RuntimeError(f"sshd rejects {cfg}: {check.stderr.strip()}")
            self.servers.append(self.cluster._start("sshd", i, i, self.cluster.command(i, [SSHD, "-D", "-e", "-f",
                                                                                            str(cfg)]),
                                                    cl._base_env(None)))
        self.known_hosts = d / "known_hosts"
        self.known_hosts.write_text("\n".join(known) + "\n")
        self.ip_config = d / "ip_config"
        self.ip_config.write_text("".join(f"{a} {self.server_port}\n" for a in self.addresses))
        for rec in self.servers:
            deadline = time.monotonic() + 20
            while not cl._listening(rec.pid, 22):
                self.cluster.poll()
                if rec.exit_code is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd of machine {rec.machine} did not start: {rec.tail()}")
                time.sleep(0.05)

    def ssh_kwargs(self) -> dict:
        """``ClusterSpec`` keyword arguments that reach the machines: ``ssh_user``, ``ssh_key``,
        ``known_hosts``."""
        return {"ssh_user": self.user, "ssh_key": str(self.key), "known_hosts": str(self.known_hosts)}

    def stop(self) -> None:
        """Stop the servers (and every process they started), remove the namespaces, links and the
        temporary folder. Safe to call twice."""
        try:
            if self.cluster is not None:
                self.cluster.teardown()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
