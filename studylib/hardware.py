"""What machine a measurement ran on: ``probe()`` and the device choice.

Every result table and figure sidecar embeds :func:`probe` so that a number can always be traced
to the CPU, memory, GPU, driver, library versions and git commit that produced it.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from importlib import metadata

import psutil
import torch

from studylib import paths

#: Libraries whose versions every probe records (distribution names).
TRACKED_LIBRARIES = (
    "torch", "dgl", "torch_geometric", "torch_scatter", "torch_sparse", "pyg_lib", "ogb",
    "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "seaborn", "papermill",
)


def resolve_device(device: str = "auto") -> torch.device:
    """Map a ``device`` parameter to a ``torch.device``.

    ``"auto"`` picks ``cuda`` when a GPU is visible, else ``cpu``. Raises ``RuntimeError`` when
    ``"cuda"`` is asked for on a machine without a usable GPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for, but torch sees no GPU (torch.cuda.is_available() is False)")
    return torch.device(device)


def set_threads(num_threads: int) -> int:
    """Set torch's intra-op thread count (0 = all logical cores available to this process) and
    return the count in use."""
    n = num_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return torch.get_num_threads()


def library_versions() -> dict[str, str | None]:
    """Installed version of each tracked library (``None`` when not installed), plus Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        out[name] = None
        for candidate in (name, name.replace("_", "-")):
            try:
                out[name] = metadata.version(candidate)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def git_sha() -> str | None:
    """``git rev-parse HEAD`` of the project (suffix ``-dirty`` when tracked files outside
    ``figures/`` have changes), or ``None`` outside a git checkout. Figures are left out of the
    check: a run that redraws the committed figures would otherwise mark its own later sidecars dirty."""
    root = paths.project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)figures"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:  # macOS and others
        import cpuinfo

        return cpuinfo.get_cpu_info().get("brand_raw", platform.processor())
    except Exception:
        return platform.processor() or "unknown"


def _numa_nodes() -> int:
    base = "/sys/devices/system/node"
    try:
        return sum(1 for d in os.listdir(base) if d.startswith("node") and d[4:].isdigit()) or 1
    except OSError:
        return 1


def _gpus() -> list[dict]:
    if not torch.cuda.is_available():
        return []
    gpus = []
    driver = None
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        if isinstance(driver, bytes):
            driver = driver.decode()
    except Exception:
        pass
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "name": p.name, "memory_bytes": int(p.total_memory),
                     "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count,
                     "driver": driver, "cuda_runtime": torch.version.cuda})
    return gpus


def dgl_has_cuda() -> bool:
    """Whether the installed DGL build can place graphs on a GPU (the PyPI wheel cannot): tries to
    move a one-edge graph to CUDA."""
    if not torch.cuda.is_available():
        return False
    try:
        import dgl

        dgl.graph(([0], [0])).to("cuda")
        return True
    except Exception:
        return False


def probe() -> dict:
    """Describe this machine and software stack.

    Returns a JSON-serialisable dict: ``hostname``, ``os``, ``cpu_model``, ``physical_cores``,
    ``logical_cores``, ``cores_available`` (affinity), ``torch_threads`` (intra-op threads in use
    now), ``memory_total_bytes``, ``memory_available_bytes``, ``numa_nodes``, ``gpus`` (list of
    name, memory, capability, driver; empty without a GPU), ``versions`` (see
    :func:`library_versions`) and ``git_sha``.
    """
    vm = psutil.virtual_memory()
    return {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_total_bytes": int(vm.total),
        "memory_available_bytes": int(vm.available),
        "numa_nodes": _numa_nodes(),
        "gpus": _gpus(),
        "versions": library_versions(),
        "git_sha": git_sha(),
    }


def describe(info: dict | None = None) -> str:
    """One line naming the machine, for figure footers: CPU (threads), GPU, memory, torch."""
    info = info or probe()
    parts = [f"{info['cpu_model']} ({info['torch_threads']} threads of {info['logical_cores']})"]
    if info.get("gpus"):
        parts.append(", ".join(g["name"] for g in info["gpus"]))
    parts.append(f"{info['memory_total_bytes'] / 2**30:.0f} GiB RAM")
    parts.append(f"torch {info['versions'].get('torch')}")
    return " · ".join(parts)
