"""The hosts of a real cluster: DistDGL's ``ip_config`` file, validated and resolved, and SLURM node lists.

DistDGL's ``ip_config`` (Zheng et al., *DistDGL*, IA3 2020; DGL's ``tools/launch.py``) lists one
machine per line: ``<address> [<server port>]``. Machine ``i`` of the cluster is line ``i``; its
graph server listens on that address and port, and a trainer finds "its" machine as the first line
whose address belongs to one of its interfaces, so the file must hold **addresses**, not names.

:func:`read_ip_config` accepts, per line, an IPv4/IPv6 address or a host name (RFC 1123: letters,
digits and hyphens in dot-separated labels, no label starting or ending with a hyphen) and an
optional port in 1..65535; ``#`` starts a comment. Anything else -- a field starting with ``-``
(it would reach ``ssh`` as an option), shell characters, spaces inside a name -- is rejected with
the file and line number before anything runs. :func:`resolve` turns names into the IPv4 addresses
DistDGL needs (``socket.getaddrinfo``), before any process starts.

:func:`expand_nodelist` expands SLURM's compressed node lists (``node[01-04,07]``,
``gpu[1-2],cpu7``) with ``python-hostlist`` (the library SLURM sites use for this, NSC/Kent
Engström); ``python -m studylib.distributed.hosts ip-config --nodelist "$SLURM_JOB_NODELIST"``
writes an ``ip_config`` from it (see ``examples/slurm/run_02.sbatch``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["Host", "IpConfigError", "check_host", "expand_nodelist", "ip_config_text", "read_ip_config", "resolve"]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")


class IpConfigError(ValueError):
    """An ``ip_config`` file (or node list) is missing, malformed, or names a host that does not
    resolve; the message names the file, the line and what is wrong. Raised before anything starts."""


@dataclass(frozen=True)
class Host:
    """One machine of an ``ip_config``.

    Attributes:
        name: the host field as written (address or host name); what ``ssh`` connects to.
        address: its IP address (``None`` until :func:`resolve`; equal to ``name`` for addresses).
        port: the DistDGL server port of the machine.
        line: line number in the file (1-based; 0 when not from a file).
    """

    name: str
    port: int
    line: int = 0
    address: str | None = None


def check_host(name: str, where: str = "host") -> str:
    """Return ``name`` when it is an IP address or an RFC 1123 host name (at most 253
    characters), else raise :class:`IpConfigError` naming ``where`` (e.g. ``"ip_config:3"``).
    A leading ``-`` (an ``ssh`` option), spaces and shell characters are never accepted."""
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    if len(name) <= 253 and _HOSTNAME.match(name):
        return name
    raise IpConfigError(f"{where}: {name!r} is neither an IP address nor a host name (letters, digits, '-' and "
                        f"'.'; no leading '-')")


def read_ip_config(path: Path | str, default_port: int = 30050) -> list[Host]:
    """Parse a DistDGL ``ip_config`` file: one machine per line, ``<address or host name> [<port>]``
    (``default_port`` when the column is absent); blank lines and ``#`` comments are skipped.

    Returns the :class:`Host` list in file order (unresolved names keep ``address=None``).

    Raises:
        IpConfigError: the file is missing or empty, or a line has a bad host, a bad port or extra
            columns -- the message is ``<path>:<line>: ...``.
    """
    path = Path(path)
    if not path.is_file():
        raise IpConfigError(f"ip_config {path} does not exist")
    hosts = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2:
            raise IpConfigError(f"{path}:{n}: expected '<address> [<port>]', got {len(parts)} fields ({line!r})")
        name = check_host(parts[0], f"{path}:{n}")
        port = default_port
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= 65535:
                raise IpConfigError(f"{path}:{n}: port {parts[1]!r} is not a number in 1..65535")
            port = int(parts[1])
        is_addr = _is_address(name)
        hosts.append(Host(name, port, n, name if is_addr else None))
    if not hosts:
        raise IpConfigError(f"ip_config {path} lists no host")
    return hosts


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def resolve(hosts: list[Host], source: str = "ip_config") -> list[Host]:
    """Give every host its IPv4 address (``socket.getaddrinfo``; the first IPv4 answer). Raises
    :class:`IpConfigError` naming the host and its line when a name does not resolve to IPv4."""
    out = []
    for h in hosts:
        if h.address is not None:
            out.append(h)
            continue
        try:
            infos = socket.getaddrinfo(h.name, None, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise IpConfigError(f"{source}:{h.line}: host {h.name!r} does not resolve to an IPv4 address ({err}); "
                                f"DistDGL's ip_config needs addresses") from None
        out.append(replace(h, address=infos[0][4][0]))
    return out


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a SLURM node list (``"node[01-04,07]"`` -> ``["node01", ..., "node04", "node07"]``)
    with ``python-hostlist``'s ``expand_hostlist``; every node name is checked with
    :func:`check_host`. Raises :class:`IpConfigError` for a malformed list."""
    import hostlist

    try:
        names = hostlist.expand_hostlist(nodelist)
    except hostlist.BadHostlist as err:
        raise IpConfigError(f"node list {nodelist!r} is malformed: {err}") from None
    if not names:
        raise IpConfigError(f"node list {nodelist!r} is empty")
    return [check_host(n, f"node list {nodelist!r}") for n in names]


def ip_config_text(names: list[str], port: int = 30050, resolve_names: bool = True) -> str:
    """The ``ip_config`` text for ``names`` (one ``<address> <port>`` line each; names resolved to
    IPv4 addresses unless ``resolve_names=False``)."""
    hosts = [Host(check_host(n), port, i + 1, n if _is_address(n) else None) for i, n in enumerate(names)]
    if resolve_names:
        hosts = resolve(hosts, "node list")
    return "".join(f"{h.address or h.name} {h.port}\n" for h in hosts)


def _main(argv: list[str]) -> int:
    """``python -m studylib.distributed.hosts ip-config --nodelist LIST [--port P] [--no-resolve]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m studylib.distributed.hosts")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ipc = sub.add_parser("ip-config", help="write a DistDGL ip_config for a SLURM node list to stdout")
    ipc.add_argument("--nodelist", required=True, help="e.g. $SLURM_JOB_NODELIST")
    ipc.add_argument("--port", type=int, default=30050, help="DistDGL server port")
    ipc.add_argument("--no-resolve", action="store_true", help="write host names instead of addresses")
    a = ap.parse_args(argv)
    try:
        sys.stdout.write(ip_config_text(expand_nodelist(a.nodelist), a.port, not a.no_resolve))
    except IpConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
