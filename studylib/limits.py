"""This machine's limits as ``00-hardware`` measures them, for every study that draws against them.

* The STREAM kernels (McCalpin, *Memory Bandwidth and Machine Balance in Current High Performance
  Computers*, IEEE TCCA Newsletter 1995; https://www.cs.virginia.edu/stream/) written with torch
  ops, with STREAM's byte counting: ``00-hardware`` times them on DRAM, ``04-recsys-memory-tiers``
  on each memory tier.
* :class:`MachineLimits` and :func:`machine_limits`, the reader of
  ``results/00-hardware/limits.parquet`` that ``03-op-microbenchmarks`` and
  ``05-parallelism-analysis`` draw their rooflines and %-of-peak figures against.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from studylib import results

#: The notebook that measures the limits (its table ``limits``).
NOTEBOOK = "00-hardware"


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache (``/sys/devices/system/cpu/cpu0/cache/index*/size``), in bytes,
    or ``None`` when the kernel does not expose it."""
    sizes = []
    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (d / "size").read_text().strip()
        except OSError:
            continue
        m = re.fullmatch(r"(\d+)([KMG]?)", text)
        if m:
            sizes.append(int(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)])
    return max(sizes) if sizes else None


#: STREAM kernels: name -> words moved per element (STREAM's byte counting).
STREAM_WORDS = {"copy": 2, "scale": 2, "add": 3, "triad": 3}


#: Extra single-direction kernels for the comparison with ``sysbench memory``.
EXTRA_WORDS = {"read": 1, "write": 1}


KERNELS = (*STREAM_WORDS, *EXTRA_WORDS)


#: The scalar of STREAM's scale and triad kernels.
STREAM_SCALAR = 3.0


def stream_kernels(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, scalar: float = STREAM_SCALAR) -> dict:
    """The STREAM kernels (plus read and write) on three equal arrays: name -> (zero-argument
    callable, words moved per element)."""
    return {
        "copy": (lambda: b.copy_(a), STREAM_WORDS["copy"]),
        "scale": (lambda: torch.mul(a, scalar, out=b), STREAM_WORDS["scale"]),
        "add": (lambda: torch.add(a, b, out=c), STREAM_WORDS["add"]),
        "triad": (lambda: torch.add(b, c, alpha=scalar, out=a), STREAM_WORDS["triad"]),
        "read": (lambda: a.sum(), EXTRA_WORDS["read"]),
        "write": (lambda: b.fill_(scalar), EXTRA_WORDS["write"]),
    }


@dataclass
class MachineLimits:
    """Peaks of one device at one thread count, as measured by ``00-hardware``.

    Attributes:
        device: ``"cpu"`` or ``"cuda"``.
        threads: CPU threads of the measurement.
        memory_bandwidth: best STREAM kernel median, bytes/s (``bandwidth_kernel`` names it).
        gemm_flops: dtype name -> best median ``torch.mm`` FLOP/s.
        transfer: ``h2d_pinned`` ... -> bytes/s (GPU only).
        run_id: run of ``00-hardware`` that measured them; note: how they were chosen.
    """

    device: str
    threads: int
    memory_bandwidth: float | None
    bandwidth_kernel: str | None
    gemm_flops: dict[str, float] = field(default_factory=dict)
    transfer: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    note: str = ""

    def peak_flops(self, dtype: str = "float32") -> float | None:
        """Peak GEMM FLOP/s for ``dtype`` (falls back to float32), or None."""
        return self.gemm_flops.get(dtype) or self.gemm_flops.get("float32")

    def attainable_flops(self, intensity, dtype: str = "float32"):
        """Roofline bound ``min(peak FLOP/s, intensity * bandwidth)`` (Williams, Waterman,
        Patterson, CACM 2009, Eq. 1) for arithmetic intensity in FLOP/byte (scalar or array)."""
        return np.minimum(self.peak_flops(dtype) or np.inf, np.asarray(intensity) * (self.memory_bandwidth or np.inf))


def machine_limits(device: str = "cpu", num_threads: int | None = None, *, quiet: bool = False) -> MachineLimits | None:
    """The limits ``00-hardware`` measured on this machine for ``device``, read from
    ``results/00-hardware/limits.parquet``.

    ``num_threads``: the thread count to match (default: the highest measured); when it was not
    measured, the closest measured count is used and :attr:`MachineLimits.note` says so. Returns
    ``None`` (with a warning naming the command to run, unless ``quiet``) when the table is absent
    or holds nothing for ``device``.
    """
    df = results.read_table(NOTEBOOK, "limits")
    if df is None or df.empty or "device" not in df or (df["device"] == device).sum() == 0:
        if not quiet:
            warnings.warn(f"no machine limits for device {device!r}: results/{NOTEBOOK}/limits.parquet is missing or "
                          f"has no {device} rows; run `python -m studylib run {NOTEBOOK} --profile small` first. "
                          f"Figures are drawn without peaks.", stacklevel=2)
        return None
    df = df[(df["device"] == device) & (df.get("status", "ok") == "ok")] if "status" in df else df[df["device"] == device]
    latest = df["run_id"].astype(str).max() if "run_id" in df else None
    if latest is not None:
        df = df[df["run_id"].astype(str) == latest]
    measured = sorted(df["threads"].unique())
    note = ""
    if num_threads is None or device == "cuda":  # a GPU's limits do not depend on CPU threads
        threads = max(measured)
    elif num_threads in measured:
        threads = num_threads
    else:
        threads = min(measured, key=lambda t: (abs(t - num_threads), -t))
        note = f"limits measured with {threads} threads (none with {num_threads})"
    d = df[df["threads"] == threads].set_index("limit")
    bw = d.loc["memory_bandwidth"] if "memory_bandwidth" in d.index else None
    gemm = {k[5:]: float(v) for k, v in d["value"].items() if k.startswith("gemm_")}
    xfer = {k: float(v) for k, v in df.set_index("limit")["value"].items() if k.startswith(("h2d", "d2h"))}
    return MachineLimits(device=device, threads=int(threads), memory_bandwidth=float(bw["value"]) if bw is not None else None,
                         bandwidth_kernel=str(bw["detail"]) if bw is not None else None, gemm_flops=gemm, transfer=xfer,
                         run_id=latest, note=note)
