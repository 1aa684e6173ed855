"""The parameters that choose where a DistDGL study runs: emulated machines on this host, or real
hosts over ssh. Declared once here and inherited by the parameter models of the studies that
start a cluster (``02-distributed-caching``, ``04-recsys-memory-tiers``).

Relative paths (``ip_config``, ``ssh_key``, ``known_hosts``) are taken from the project folder;
``~`` is expanded. Everything is checked when the parameters are validated, before any work:
the ``ip_config`` file exists and every line holds an address or host name and a port (the
error names the line, :mod:`studylib.distributed.hosts`), the key and known_hosts files exist,
the user name is a user name.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["ClusterParams", "resolve_path"]


def resolve_path(value: str) -> Path:
    """``value`` with ``~`` expanded; a relative path is taken from the project folder."""
    from studylib import paths

    p = Path(value).expanduser()
    return p if p.is_absolute() else paths.project_root() / p


class ClusterParams(BaseModel):
    """Mixin of the cluster parameters (see the module docstring)."""

    cluster_mode: Literal["namespaces", "ssh"] = Field(
        "namespaces", description="namespaces: emulate the machines on this host; ssh: the real hosts of ip_config")
    ip_config: str | None = Field(None, description="ssh: DistDGL ip_config, one '<address> [<port>]' per machine")
    ssh_user: str | None = Field(None, description="ssh: login name on the hosts; None = ssh's default")
    ssh_key: str | None = Field(None, description="ssh: private key file; None = the ssh agent or ssh's defaults")
    ssh_port: int = Field(22, ge=1, le=65535, description="ssh: port of the hosts' ssh servers")
    known_hosts: str | None = Field(None, description="ssh: known_hosts file that verifies host keys; None = ssh's")
    trust_new_host_keys: bool = Field(False, description="ssh: accept a host key not yet known (trust on first use)")
    remote_workdir: str | None = Field(None, description="ssh: project folder on the hosts; None = this one's path")
    remote_python: str | None = Field(None, description="ssh: Python on the hosts; None = this interpreter's path")

    @model_validator(mode="after")
    def _cluster_settings(self):
        ssh_only = {"ip_config": None, "ssh_user": None, "ssh_key": None, "ssh_port": 22, "known_hosts": None,
                    "trust_new_host_keys": False, "remote_workdir": None, "remote_python": None}
        if self.cluster_mode == "namespaces":
            set_ = [k for k, default in ssh_only.items() if getattr(self, k) != default]
            if set_:
                raise ValueError(f"{', '.join(set_)} only apply to real hosts: set cluster_mode='ssh' as well")
            return self
        from studylib.distributed.hosts import read_ip_config
        from studylib.distributed.ssh import SshOptions

        if not self.ip_config:
            raise ValueError("cluster_mode='ssh' needs ip_config: a file with one '<address> [<port>]' line per "
                             "machine")
        read_ip_config(resolve_path(self.ip_config))  # IpConfigError (a ValueError) naming the line
        for name in ("ssh_key", "known_hosts"):
            value = getattr(self, name)
            if value is not None and not resolve_path(value).is_file():
                raise ValueError(f"{name}: {resolve_path(value)} does not exist")
        for name in ("remote_workdir", "remote_python"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_absolute():
                raise ValueError(f"{name} must be an absolute path on the hosts (got {value!r})")
        SshOptions(self.ssh_user, None, resolve_path(self.known_hosts) if self.known_hosts else None, self.ssh_port)
        return self

    def cluster_spec_kwargs(self) -> dict:
        """Keyword arguments of :class:`~studylib.distributed.cluster.ClusterSpec` for this mode:
        ``{}`` for ``namespaces``; ``ip_config``, ``ssh_*``, ``known_hosts``,
        ``trust_new_host_keys``, ``remote_workdir`` and ``python`` for ``ssh``."""
        if self.cluster_mode != "ssh":
            return {}
        return {"ip_config": resolve_path(self.ip_config), "ssh_user": self.ssh_user,
                "ssh_key": resolve_path(self.ssh_key) if self.ssh_key else None, "ssh_port": self.ssh_port,
                "known_hosts": resolve_path(self.known_hosts) if self.known_hosts else None,
                "trust_new_host_keys": self.trust_new_host_keys, "remote_workdir": self.remote_workdir,
                "python": self.remote_python or sys.executable}
