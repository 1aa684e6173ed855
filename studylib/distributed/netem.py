"""Network models for emulated clusters: bandwidth and latency per link.

A veth pair between two network namespaces moves data at memory speed with microseconds of
latency, far faster than a real network, so a study of communication on an emulated cluster must
slow each link down to what it models. :class:`NetworkModel` names a link's bandwidth (bits per
second) and one-way latency (seconds). Two backends install it:

``netem`` (preferred)
    Linux's ``netem`` queueing discipline (Hemminger, *Network Emulation with NetEm*,
    linux.conf.au 2005) as the root qdisc of both ends of each machine's veth pair
    (:func:`apply_link`, visible in ``tc qdisc show``). Each emulated machine hangs off the bridge
    by one veth pair: the namespace end is its NIC, the host end its switch port. Traffic from
    machine A to machine B leaves A through A's namespace end (A's uplink) and enters B through
    B's host end (B's downlink); both ends carry ``netem rate R delay L/2``, so a packet between
    two machines crosses two rate limiters of ``R`` (throughput ``R``) and two half delays
    (one-way latency ``L``, round trip ``2 L``).

``tun`` (fallback where the kernel lacks ``sch_netem``, ``CONFIG_NET_SCH_NETEM``)
    A user-space switch (:class:`LinkEmulator`, ``python -m studylib.distributed.netem switch``)
    owns one TUN device per machine (moved into the machine's namespace, MTU 65,000) and forwards
    IPv4 packets between them: a packet of ``s`` bytes from machine ``i`` to machine ``j`` leaves
    ``i``'s uplink after ``s*8/R`` of serialization behind the uplink's backlog, arrives after the
    one-way latency ``L``, and is delivered no faster than ``R`` on ``j``'s downlink (incast
    contention). The switch adds its own forwarding time (tens of microseconds per packet on a busy
    CPU) and cannot move more than a few Gbit/s; :func:`measure_link` measures what a run really got
    (round-trip time, throughput), and the cluster records it next to the model.

A machine's traffic with itself (trainer to its own server) stays on its loopback device and is
not slowed, as on a real machine.

Presets (:data:`NETWORK_PRESETS`): ``loopback`` (no emulation: the raw veth), ``25g-5us`` (a modern
data-centre fabric), ``10g-50us`` (10 GbE), ``1g-200us`` (1 GbE with a switch hop); any
``<rate><k|m|g>-<latency><us|ms>`` string (e.g. ``"40g-2us"``) parses too.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

__all__ = ["NETWORK_PRESETS", "LinkEmulator", "NetworkModel", "apply", "apply_link", "measure_link",
           "netem_available", "network_model", "remove", "show"]


@dataclass(frozen=True)
class NetworkModel:
    """One link's model.

    Attributes:
        name: preset or parsed name (recorded with every result).
        rate_bit_s: bandwidth in bits per second per direction; ``None`` = unlimited.
        latency_s: one-way latency between two machines in seconds.
    """

    name: str
    rate_bit_s: float | None = None
    latency_s: float = 0.0

    @property
    def emulated(self) -> bool:
        """Whether anything is installed at all (``False`` for ``loopback``)."""
        return self.rate_bit_s is not None or self.latency_s > 0

    def netem_args(self) -> list[str]:
        """``tc qdisc ... netem`` arguments for one link end: half the latency and the full rate,
        e.g. ``['delay', '100.000us', 'rate', '1000000kbit', 'limit', '100000']``; empty when not
        emulated."""
        if not self.emulated:
            return []
        args: list[str] = []
        if self.latency_s > 0:
            args += ["delay", f"{self.latency_s / 2 * 1e6:.3f}us"]
        if self.rate_bit_s is not None:
            args += ["rate", f"{self.rate_bit_s / 1e3:.0f}kbit"]
        # a deep queue: netem's default limit (1000 packets) drops bursts of large RPC responses
        args += ["limit", "100000"]
        return args

    def record(self) -> dict:
        """The model as plain columns for result rows: ``network``, ``network_rate_gbit_s``,
        ``network_latency_us`` (one way)."""
        return {"network": self.name,
                "network_rate_gbit_s": None if self.rate_bit_s is None else self.rate_bit_s / 1e9,
                "network_latency_us": self.latency_s * 1e6}

    def to_dict(self) -> dict:
        """All fields as a dict (JSON)."""
        return asdict(self)


#: Named link models: ``loopback`` = no emulation.
NETWORK_PRESETS: dict[str, NetworkModel] = {
    "loopback": NetworkModel("loopback", None, 0.0),
    "25g-5us": NetworkModel("25g-5us", 25e9, 5e-6),
    "10g-50us": NetworkModel("10g-50us", 10e9, 50e-6),
    "1g-200us": NetworkModel("1g-200us", 1e9, 200e-6),
}

#: The hosts' own network (real hosts over ssh): nothing emulated; recorded as ``"real"``.
REAL_NETWORK = NetworkModel("real", None, 0.0)

_PATTERN = re.compile(r"^(?P<rate>\d+(\.\d+)?)(?P<ru>[kmg])-(?P<lat>\d+(\.\d+)?)(?P<lu>us|ms)$")


def network_model(spec: str | NetworkModel) -> NetworkModel:
    """A :class:`NetworkModel` from a preset name, a ``<rate><k|m|g>-<latency><us|ms>`` string
    (bits per second, one-way latency), ``"real"`` (:data:`REAL_NETWORK`, real hosts), or a model
    (returned as is).

    Raises ``ValueError`` naming the presets for anything else (also for a zero rate)."""
    if isinstance(spec, NetworkModel):
        return spec
    if spec == "real":
        return REAL_NETWORK
    if spec in NETWORK_PRESETS:
        return NETWORK_PRESETS[spec]
    m = _PATTERN.match(str(spec).strip().lower())
    if not m:
        raise ValueError(f"unknown network model {spec!r}; use one of {', '.join(NETWORK_PRESETS)} or "
                         f"'<rate><k|m|g>-<latency><us|ms>' such as '40g-2us'")
    rate = float(m["rate"]) * {"k": 1e3, "m": 1e6, "g": 1e9}[m["ru"]]
    if rate <= 0:
        raise ValueError(f"network model {spec!r}: the rate must be > 0")
    lat = float(m["lat"]) * {"us": 1e-6, "ms": 1e-3}[m["lu"]]
    return NetworkModel(str(spec), rate, lat)


# --------------------------------------------------------------------------------------------
# Backend 1: tc netem
# --------------------------------------------------------------------------------------------

def _tc(args: list[str], netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which("tc") is None:
        raise RuntimeError("the 'tc' command (iproute2) is missing; install iproute2 to emulate networks")
    cmd = (["ip", "netns", "exec", netns] if netns else []) + ["tc", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


_NETEM: tuple[bool, str] | None = None


def netem_available(refresh: bool = False) -> tuple[bool, str]:
    """Whether the kernel has the ``netem`` qdisc: ``(True, "")`` or ``(False, reason)``. Probed
    once per process on a temporary veth pair (needs root); cached."""
    global _NETEM
    if _NETEM is not None and not refresh:
        return _NETEM
    import os

    if shutil.which("tc") is None or shutil.which("ip") is None:
        _NETEM = (False, "the 'tc'/'ip' commands (iproute2) are missing")
        return _NETEM
    if os.geteuid() != 0:
        _NETEM = (False, "installing qdiscs needs root")
        return _NETEM
    dev = f"sl{os.getpid()}q"
    try:
        res = subprocess.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "p"],
                             capture_output=True, text=True)
        if res.returncode:
            _NETEM = (False, f"cannot create a veth pair to probe netem: {res.stderr.strip()}")
            return _NETEM
        res = _tc(["qdisc", "add", "dev", dev, "root", "netem", "delay", "1us"], check=False)
        _NETEM = (True, "") if res.returncode == 0 else (
            False, f"the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): {res.stderr.strip()}")
    finally:
        subprocess.run(["ip", "link", "del", dev], capture_output=True)
    return _NETEM


def apply(dev: str, model: NetworkModel | str, netns: str | None = None) -> None:
    """Install ``model`` as the root ``netem`` qdisc of ``dev`` (inside network namespace
    ``netns`` when given), replacing whatever root qdisc it had; a non-emulated model removes the
    qdisc. Needs root and a kernel with netem. Raises ``RuntimeError`` with tc's message on failure."""
    model = network_model(model)
    if not model.emulated:
        remove(dev, netns)
        return
    _tc(["qdisc", "replace", "dev", dev, "root", "netem", *model.netem_args()], netns)


def apply_link(host_dev: str, ns_dev: str, netns: str, model: NetworkModel | str) -> None:
    """Apply ``model`` with netem to both ends of one machine's veth pair (module docstring)."""
    apply(host_dev, model)
    apply(ns_dev, model, netns)


def remove(dev: str, netns: str | None = None) -> None:
    """Remove the root qdisc of ``dev`` (back to the kernel default); no error when none is set
    or the device is gone."""
    _tc(["qdisc", "del", "dev", dev, "root"], netns, check=False)


def show(dev: str, netns: str | None = None) -> str:
    """``tc qdisc show dev <dev>`` output (empty when the device does not exist)."""
    res = _tc(["qdisc", "show", "dev", dev], netns, check=False)
    return res.stdout if res.returncode == 0 else ""


# --------------------------------------------------------------------------------------------
# Backend 2: a user-space TUN switch
# --------------------------------------------------------------------------------------------

#: MTU of the TUN devices: large frames keep the switch's per-packet cost low.
TUN_MTU = 65000
_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000


class LinkEmulator:
    """The user-space switch of the ``tun`` backend (see the module docstring).

    Args:
        devices: TUN device names, one per machine (<= 15 characters).
        addresses: IPv4 address of each machine (the switch routes by destination address).
        model: the link model (rate ``None`` = unlimited, latency one way).

    :meth:`open` creates the TUN devices in the caller's network namespace (non-persistent: they
    disappear with the switch process); the launcher moves them into the machines' namespaces and
    configures them; :meth:`serve` forwards until :meth:`stop` or SIGTERM. Packets whose
    destination is no machine (IPv6 neighbour discovery, ...) are dropped. Counters:
    :attr:`packets`, :attr:`bytes`.
    """

    def __init__(self, devices: list[str], addresses: list[str], model: NetworkModel):
        import ipaddress

        if len(devices) != len(addresses):
            raise ValueError("one address per device")
        self.devices, self.model = list(devices), model
        self.addr_index = {ipaddress.ip_address(a).packed: i for i, a in enumerate(addresses)}
        self.fds: list[int] = []
        self.packets = 0
        self.bytes = 0
        self._stop = False

    def open(self) -> None:
        """Create the TUN devices (needs root and ``/dev/net/tun``)."""
        import fcntl
        import os
        import struct

        for name in self.devices:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
            self.fds.append(fd)

    def stop(self, *_args) -> None:
        """Ask :meth:`serve` to return (also the SIGTERM handler)."""
        self._stop = True

    def serve(self) -> None:
        """Forward packets with the model's serialization and latency until stopped."""
        import heapq
        import os
        import select
        import time

        rate = self.model.rate_bit_s
        lat = self.model.latency_s
        n = len(self.fds)
        index = {fd: i for i, fd in enumerate(self.fds)}
        up, down = [0.0] * n, [0.0] * n
        heap: list = []
        seq = 0
        fds = self.fds
        addr = self.addr_index
        while not self._stop:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                _, _, j, pkt = heapq.heappop(heap)
                try:
                    os.write(fds[j], pkt)
                except (BlockingIOError, OSError):
                    pass
            timeout = max(0.0, heap[0][0] - time.monotonic()) if heap else 0.2
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            now = time.monotonic()
            for fd in ready:
                i = index[fd]
                while True:
                    try:
                        pkt = os.read(fd, 65536)
                    except (BlockingIOError, OSError):
                        break
                    if len(pkt) < 20 or pkt[0] >> 4 != 4:
                        continue
                    j = addr.get(pkt[16:20])
                    if j is None or j == i:
                        continue
                    size = len(pkt)
                    self.packets += 1
                    self.bytes += size
                    ser = size * 8 / rate if rate else 0.0
                    t_up = max(now, up[i]) + ser
                    up[i] = t_up
                    t_dst = max(t_up + lat, down[j] + ser)
                    down[j] = t_dst
                    seq += 1
                    if t_dst <= now:
                        try:
                            os.write(fds[j], pkt)
                        except (BlockingIOError, OSError):
                            pass
                    else:
                        heapq.heappush(heap, (t_dst, seq, j, pkt))


def _switch_main(argv: list[str]) -> int:
    """``python -m studylib.distributed.netem switch --devices a,b --addresses x,y --rate R
    --latency L``: create the TUN devices, print ``ready`` and forward until SIGTERM."""
    import argparse
    import ctypes
    import os
    import signal

    ap = argparse.ArgumentParser(prog="python -m studylib.distributed.netem switch")
    ap.add_argument("--devices", required=True)
    ap.add_argument("--addresses", required=True)
    ap.add_argument("--rate", type=float, default=0.0, help="bits per second; 0 = unlimited")
    ap.add_argument("--latency", type=float, default=0.0, help="one-way seconds")
    ap.add_argument("--name", default="custom")
    a = ap.parse_args(argv)
    model = NetworkModel(a.name, a.rate or None, a.latency)
    emu = LinkEmulator(a.devices.split(","), a.addresses.split(","), model)
    signal.signal(signal.SIGTERM, emu.stop)
    signal.signal(signal.SIGINT, emu.stop)
    try:  # precise wake-ups: timer slack 1 ns (PR_SET_TIMERSLACK), and a head start over the trainers
        ctypes.CDLL("libc.so.6").prctl(29, 1, 0, 0, 0)
        os.nice(-10)
    except (OSError, AttributeError):
        pass
    emu.open()
    print("ready", flush=True)
    emu.serve()
    print(f"forwarded {emu.packets} packets, {emu.bytes} bytes", flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Measuring a link
# --------------------------------------------------------------------------------------------

_PROBE_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = b""
    while len(d) < 8:
        x = c.recv(8 - len(d))
        if not x: sys.exit(0)
        d += x
    c.sendall(b"x" * max(1, int.from_bytes(d, "little")))
"""

_PROBE_CLIENT = r"""
import socket, sys, time, json
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def req(n):
    t = time.perf_counter(); c.sendall(n.to_bytes(8, "little")); got = 0
    while got < max(n, 1): got += len(c.recv(1 << 20))
    return time.perf_counter() - t
for _ in range(3): req(1)
rtt = sorted(req(1) for _ in range(31))
size = int(sys.argv[3])
t = min(req(size) for _ in range(2))
print(json.dumps({"rtt_us": rtt[15] * 1e6, "gbit_s": size * 8 / t / 1e9}))
"""


def measure_link(server_prefix, client_prefix, address: str, port: int = 5599,
                 nbytes: int = 4 << 20, timeout_s: float = 30, python: str | None = None) -> dict:
    """Measure one link between two machines: median round-trip time of 31 one-byte TCP
    request/responses and the throughput of the faster of two ``nbytes`` transfers.

    Args:
        server_prefix / client_prefix: how to run a program on the receiving and on the sending
            machine: a command prefix (e.g. ``["nsenter", "--target", pid, "--net", "--"]``), or a
            function that maps the program's argument list to the full command (real hosts: an
            ``ssh`` command line, see :mod:`studylib.distributed.ssh`). The server's standard
            input is a pipe closed at the end (the remote wrapper stops the server then).
        address: the receiving machine's address; port: a free TCP port there.
        python: the interpreter on the machines (default: this one).

    Returns ``{"rtt_us": float, "gbit_s": float}`` (``{}`` when the probe fails; the reason is
    under ``"error"``)."""
    import json
    import time

    py = python or sys.executable

    def cmd(prefix, argv):
        return prefix(argv) if callable(prefix) else [*prefix, *argv]

    srv = subprocess.Popen(cmd(server_prefix, [py, "-c", _PROBE_SERVER, address, str(port)]), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        import select

        line, deadline = "", time.monotonic() + timeout_s
        while "listening" not in line:  # a remote wrapper may print lines of its own first
            ready, _, _ = select.select([srv.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = srv.stdout.readline() if ready else ""
            if not line:
                break
        if "listening" not in line:
            if srv.poll() is None:
                srv.kill()
            return {"error": f"probe server did not start within {timeout_s:.0f} s: {srv.stderr.read()[-300:]}"}
        t0 = time.monotonic()
        res = subprocess.run(cmd(client_prefix, [py, "-c", _PROBE_CLIENT, address, str(port), str(nbytes)]),
                             capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        if res.returncode:
            return {"error": f"probe client failed: {res.stderr[-300:]}"}
        out = json.loads(res.stdout.strip().splitlines()[-1])
        out["probe_s"] = time.monotonic() - t0
        return out
    except (subprocess.TimeoutExpired, ValueError) as err:
        return {"error": f"link probe failed: {err}"}
    finally:
        with contextlib.suppress(OSError):
            srv.stdin.close()
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "switch":
        sys.exit(_switch_main(sys.argv[2:]))
    print("usage: python -m studylib.distributed.netem switch --devices ... --addresses ... --rate R --latency L",
          file=sys.stderr)
    sys.exit(2)
