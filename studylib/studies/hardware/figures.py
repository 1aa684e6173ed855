"""The figures of ``00-hardware``: each plot function draws from the study's tables only and
returns a matplotlib figure (saved by the notebook through :func:`studylib.notebook.Context.save`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from studylib.studies.hardware.measure import KERNELS, STREAM_WORDS, MachineLimits, reference_rate


def plot_bandwidth(bandwidth: pd.DataFrame, reference: pd.DataFrame | None = None):
    """Bars: median GB/s (1e9 B/s) of each kernel per thread count, IQR whiskers over raw blocks;
    red marks: what ``sysbench memory`` read and write rates (medians, same thread count) give for
    the same traffic (:func:`reference_rate`), with the ratio torch / sysbench above each bar."""

    threads = sorted(bandwidth["threads"].unique())
    kernels = [k for k in KERNELS if k in set(bandwidth["kernel"])]
    fig, axes = plt.subplots(1, len(threads), figsize=(4.2 * len(threads), 3.4), sharey=True, squeeze=False)
    for ax, t in zip(axes[0], threads):
        g = bandwidth[bandwidth["threads"] == t]
        q = g.groupby("kernel")["bytes_per_s"].quantile([0.25, 0.5, 0.75]).unstack().reindex(kernels) / 1e9
        colors = ["#1f77b4" if k in STREAM_WORDS else "#7f7f7f" for k in kernels]
        ax.bar(kernels, q[0.5], color=colors, yerr=[q[0.5] - q[0.25], q[0.75] - q[0.5]], capsize=3)
        ref = None
        if reference is not None and not reference.empty:
            r = reference[reference["threads"] == t].groupby("oper")["bytes_per_s"].median()
            if {"read", "write"} <= set(r.index):
                ref = [reference_rate(k, r["read"], r["write"]) / 1e9 for k in kernels]
                ax.scatter(range(len(kernels)), ref, marker="_", s=600, color="#d62728", zorder=3,
                           label=f"sysbench, same traffic (read {r['read'] / 1e9:.1f}, write {r['write'] / 1e9:.1f})")
                ax.legend(fontsize=7, loc="lower right")
        for x, v in enumerate(q[0.5]):
            label = f"{v:.1f}" + (f"\n({v / ref[x]:.2f}x)" if ref is not None else "")
            ax.text(x, q[0.75].iloc[x], label, ha="center", va="bottom", fontsize=7)
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}, {g['array_bytes'].iloc[0] / 2**20:.0f} MiB arrays")
        ax.set_ylabel("bandwidth (GB/s, STREAM byte counting)")
    fig.suptitle("Memory bandwidth: STREAM kernels (blue) and read/write kernels (grey) in torch")
    return fig


def plot_gemm(gemm: pd.DataFrame):
    """Median GFLOP/s of ``torch.mm`` vs matrix size, one line per dtype and thread count, IQR band."""

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for (dt, t), g in gemm.groupby(["dtype", "threads"]):
        q = g.groupby("n")["flops_per_s"].quantile([0.25, 0.5, 0.75]).unstack() / 1e9
        ax.plot(q.index, q[0.5], marker="o", label=f"{dt}, {t} thr")
        ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n (square n x n matrices)")
    ax.set_ylabel("GFLOP/s (2 n^3 per call)")
    ax.legend(fontsize=7)
    fig.suptitle("GEMM throughput (torch.mm)")
    return fig


def plot_transfer(transfer: pd.DataFrame):
    """Median GB/s of host-to-device and device-to-host copies, pinned vs pageable."""

    fig, ax = plt.subplots(figsize=(5, 3.2))
    q = transfer.groupby(["direction", "pinned"])["bytes_per_s"].median().unstack() / 1e9
    q.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("GB/s")
    ax.legend(title="pinned host memory", fontsize=7)
    fig.suptitle("Host/device copy bandwidth")
    return fig


def plot_roofline(limits: MachineLimits):
    """The machine's roofline: attainable FLOP/s vs arithmetic intensity (FLOP/byte) for each
    measured GEMM dtype, with the ridge points marked (Williams et al., CACM 2009)."""

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ai = np.logspace(-3, 3, 200)
    for dt, peak in sorted(limits.gemm_flops.items()):
        y = limits.attainable_flops(ai, dt)
        ax.plot(ai, y / 1e9, label=f"{dt}: {peak / 1e9:.0f} GFLOP/s")
        if limits.memory_bandwidth:
            ridge = peak / limits.memory_bandwidth
            ax.axvline(ridge, color="0.7", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("attainable GFLOP/s")
    bw = (limits.memory_bandwidth or float("nan")) / 1e9
    ax.set_title(f"{limits.device}, {limits.threads} threads, memory {bw:.1f} GB/s ({limits.bandwidth_kernel})",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle("Roofline of this machine (measured peaks)")
    return fig
