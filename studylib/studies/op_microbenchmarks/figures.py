"""The figures of ``03-op-microbenchmarks``: each plot function draws from the study's tables only and
returns a matplotlib figure (saved by the notebook through :func:`studylib.notebook.Context.save`)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from studylib.studies.op_microbenchmarks import ops
from studylib.studies.op_microbenchmarks.measure import _reference_slice, is_primary, ok_rows, ratio_table, summary

#: Colours of the roles in every figure: PyG's extension kernels, PyG's utilities, native.
ROLE_COLORS = {ops.PYG: "#ff7f0e", ops.PYG_UTILS: "#d62728", ops.NATIVE: "#1f77b4"}


def _grid(n: int, cols: int = 5, w: float = 3.0, h: float = 2.4):
    rows = max(1, math.ceil(n / cols))
    cols = min(cols, max(1, n))
    # a fixed layout: the constrained layout of the suite's theme costs seconds per save with 20 panels
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows + 0.6), squeeze=False, layout="none")
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.07 if rows < 3 else 0.04, top=1 - 0.6 / (h * rows + 0.6),
                        wspace=0.35, hspace=0.55)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


#: Colours of the implementations of one role, in registry order (the primary one first).
_ROLE_PALETTES = {ops.PYG: ("#ff7f0e", "#bcbd22", "#8c564b"),
                  ops.PYG_UTILS: ("#d62728", "#e377c2", "#7f7f7f"),
                  ops.NATIVE: ("#1f77b4", "#2ca02c", "#17becf", "#9467bd")}


def _impl_colors(d: pd.DataFrame) -> dict[str, str]:
    """Colours of the implementations of one operation: warm for PyG, cool for native, the
    primary implementation of each role in :data:`ROLE_COLORS`."""
    out = {}
    for op in d["op"].unique():
        measured = set(d[d["op"] == op]["impl"])
        counts = {r: 0 for r in ops.ROLES}
        for im in ops.get(op).impls:
            if im.name in measured and im.name not in out:
                pal = _ROLE_PALETTES[im.role]
                out[im.name] = pal[counts[im.role] % len(pal)]
                counts[im.role] += 1
    return out


def plot_ratio_heatmap(times: pd.DataFrame):
    """Heat map of the PyG-kernel / native time ratio of the primary pair, operation x sparsity, at
    each operation's largest size and first reduce factor; cells annotated ``median [q1-q3]`` over
    the alternated rounds. Colour: log2 of the ratio (red: PyG slower, blue: PyG faster); a cell
    where PyG's side ran native PyTorch only is grey and marked "same kernel"."""

    r = _reference_slice(ratio_table(times))
    dts = sorted(r["dtype"].unique()) if not r.empty else ["float32"]
    fig, axes = plt.subplots(1, len(dts), figsize=(6.5 * len(dts), 0.42 * max(4, r["op"].nunique() if not r.empty
                                                                                  else 4) + 1.6), squeeze=False)
    for ax, dt in zip(axes[0], dts):
        d = r[r["dtype"] == dt] if not r.empty else r
        if d.empty:
            ax.text(0.5, 0.5, "no operation pairs a PyG extension kernel with native PyTorch\n"
                    "(torch_scatter / torch_sparse not installed?)", ha="center", transform=ax.transAxes)
            continue
        order = [o for o in ops.operation_names() if o in set(d["op"])]
        piv = d.pivot_table(index="op", columns="sparsity", values="ratio").reindex(order)
        q1 = d.pivot_table(index="op", columns="sparsity", values="ratio_q1").reindex(order)
        q3 = d.pivot_table(index="op", columns="sparsity", values="ratio_q3").reindex(order)
        same = d.pivot_table(index="op", columns="sparsity", values="same_kernel", aggfunc="max").reindex(order)
        same = same.reindex(columns=piv.columns).fillna(False).astype(bool).to_numpy()
        val = np.log2(piv.to_numpy(dtype=float))
        val[same] = np.nan
        lim = max(0.5, float(np.nanmax(np.abs(val))) if np.isfinite(val).any() else 1.0)
        im = ax.imshow(val, cmap="RdBu_r", norm=TwoSlopeNorm(0, -lim, lim), aspect="auto")
        ax.grid(False)
        for i in range(piv.shape[0]):
            for j in range(piv.shape[1]):
                v = piv.iat[i, j]
                if same[i, j]:
                    ax.text(j, i, f"same kernel\n{v:.2f}", ha="center", va="center", fontsize=6, color="0.35")
                elif np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}\n[{q1.iat[i, j]:.2f}-{q3.iat[i, j]:.2f}]", ha="center", va="center",
                            fontsize=6.5, color="white" if abs(val[i, j]) > 0.6 * lim else "black")
        labels = [f"{o}\n{d[d['op'] == o]['pyg_impl'].iloc[0]} / {d[d['op'] == o]['native_impl'].iloc[0]}"
                  for o in order]
        ax.set_yticks(range(len(order)), labels, fontsize=6.5)
        ax.set_xticks(range(piv.shape[1]), [f"{c:g}" for c in piv.columns])
        ax.set_xlabel("sparsity (fraction of zeroed entries)")
        rounds = int(d["rounds"].min())
        ax.set_title(f"{dt}: PyG kernel time / native time (median [IQR] of {rounds}+ rounds)", fontsize=9)
        fig.colorbar(im, ax=ax, label="log2(PyG / native)  > 0: native faster")
    fig.suptitle("PyG's extension kernels vs native PyTorch, per operation and sparsity "
                 "(largest size, first reduce factor)")
    return fig


def plot_time_vs_sparsity(times: pd.DataFrame):
    """One panel per operation: median time per call vs sparsity for every implementation (IQR
    whiskers over raw blocks), at the operation's largest size and first reduce factor."""
    s = _reference_slice(summary(times))
    s = s[s["dtype"] == "float32"] if (s["dtype"] == "float32").any() else s
    order = [o for o in ops.operation_names() if o in set(s["op"])]
    fig, axes = _grid(len(order))
    for ax, op in zip(axes, order):
        d = s[s["op"] == op]
        colors = _impl_colors(d)
        for impl, g in d.groupby("impl", sort=False):
            g = g.sort_values("sparsity")
            x = np.arange(len(g))
            ls = "-" if g["role"].iloc[0] == ops.NATIVE else "--"
            ax.errorbar(x, g["median_s"] * 1e3, yerr=[(g["median_s"] - g["q1_s"]) * 1e3, (g["q3_s"] - g["median_s"]) * 1e3],
                        ls=ls, marker="o", ms=3, capsize=2, color=colors[impl], label=f"{g['role'].iloc[0]}: {impl}")
            ax.set_xticks(x, [f"{v:g}" for v in g["sparsity"]])
        ax.set_ylim(bottom=0)  # linear from zero: a flat line is "no gain from sparsity"
        ax.set_title(f"{op} (n={int(d['numel'].iloc[0]):,})", fontsize=8)
        ax.set_xlabel("sparsity", fontsize=7)
        ax.set_ylabel("ms per call", fontsize=7)
        ax.legend(fontsize=5, loc="best")
    fig.suptitle("Time vs input sparsity (dashed: PyG, solid: native); largest size, first reduce factor")
    return fig


def plot_scaling(times: pd.DataFrame):
    """One panel per operation, log-log: median time per call vs elements of the main input
    (``numel``) for every implementation at the lowest sparsity and first reduce factor; the grey
    line has slope 1 (time proportional to size)."""
    s = summary(times)
    if s.empty:
        return _grid(1)[0]
    s = s[s["dtype"] == "float32"] if (s["dtype"] == "float32").any() else s
    s = s[(s["sparsity"] == s.groupby("op")["sparsity"].transform("min"))
          & (s["reduce_factor"] == s.groupby("op")["reduce_factor"].transform("min"))]
    order = [o for o in ops.operation_names() if o in set(s["op"])]
    fig, axes = _grid(len(order))
    for ax, op in zip(axes, order):
        d = s[s["op"] == op]
        colors = _impl_colors(d)
        for impl, g in d.groupby("impl", sort=False):
            g = g.sort_values("numel")
            ls = "-" if g["role"].iloc[0] == ops.NATIVE else "--"
            ax.errorbar(g["numel"], g["median_s"], yerr=[g["median_s"] - g["q1_s"], g["q3_s"] - g["median_s"]], ls=ls,
                        marker="o", ms=3, capsize=2, color=colors[impl], label=f"{g['role'].iloc[0]}: {impl}")
        lo, hi = d["numel"].min(), d["numel"].max()
        if hi > lo:
            y0 = d[d["numel"] == hi]["median_s"].min()
            ax.plot([lo, hi], [y0 * lo / hi, y0], color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()  # minor log ticks on 20 panels cost seconds per save
        ax.set_title(op, fontsize=8)
        ax.set_xlabel("elements of the main input", fontsize=7)
        ax.set_ylabel("seconds per call", fontsize=7)
        ax.legend(fontsize=5, loc="upper left")
    fig.suptitle("Scaling with size (log-log; dotted: slope 1); lowest sparsity, first reduce factor")
    return fig


def plot_roofline(times: pd.DataFrame, limits=None):
    """Left: roofline -- achieved GFLOP/s vs arithmetic intensity (FLOP per compulsory byte) of each
    operation's primary implementations at its largest size, lowest sparsity and first reduce factor,
    under the ceilings measured by ``00-hardware`` (Williams et al., CACM 2009). Right: achieved
    bandwidth (compulsory bytes / time) as a percentage of the measured STREAM peak, per operation
    and primary implementation (absolute GB/s when no limits were measured)."""

    s = _reference_slice(summary(times, limits))
    s = s[s["sparsity"] == s.groupby("op")["sparsity"].transform("min")]
    s = s[s["dtype"] == "float32"] if (s["dtype"] == "float32").any() else s
    s = s[is_primary(s, ok_rows(times))] if not s.empty else s
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 0.3 * max(14, s["op"].nunique()) + 2),
                                 gridspec_kw={"width_ratios": [1, 1.1]})
    d = s[s["flops"] > 0]
    markers = {ops.PYG: "^", ops.PYG_UTILS: "s", ops.NATIVE: "o"}
    if not d.empty:
        ai = d["flops"] / d["bytes"]
        for role, g in d.groupby("role"):
            x = g["flops"] / g["bytes"]
            ax.scatter(x, g["flops_per_s"] / 1e9, marker=markers.get(role, "o"), label=role, zorder=3,
                       color=ROLE_COLORS[role])
            for xi, yi, op in zip(x, g["flops_per_s"] / 1e9, g["op"]):
                ax.annotate(op, (xi, yi), fontsize=6, xytext=(3, 2), textcoords="offset points")
        if limits is not None and limits.memory_bandwidth:
            xs = np.logspace(np.log10(max(ai.min() / 4, 1e-3)), np.log10(max(ai.max() * 8, 10)), 100)
            ax.plot(xs, limits.attainable_flops(xs, "float32") / 1e9, color="k", lw=1,
                    label=f"roofline: {limits.memory_bandwidth / 1e9:.1f} GB/s, "
                          f"{(limits.peak_flops('float32') or 0) / 1e9:.0f} GFLOP/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("arithmetic intensity (FLOP / compulsory byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title("operations with floating-point work", fontsize=9)
    order = [o for o in ops.operation_names() if o in set(s["op"])]
    y = np.arange(len(order))
    use_frac = limits is not None and limits.memory_bandwidth and "bw_fraction" in s
    for k, role in enumerate(ops.ROLES):
        g = s[s["role"] == role].set_index("op").reindex(order)
        v = g["bw_fraction"] * 100 if use_frac else g["bandwidth_Bps"] / 1e9
        bx.barh(y + (k - 1) * 0.27, v, height=0.27, label=role, color=ROLE_COLORS[role])
    bx.set_yticks(y, order, fontsize=7)
    bx.invert_yaxis()
    if use_frac:
        bx.axvline(100, color="k", lw=0.8)
        bx.set_xlabel(f"achieved bandwidth, % of STREAM peak ({limits.memory_bandwidth / 1e9:.1f} GB/s, "
                      f"{limits.bandwidth_kernel}, {limits.threads} threads)")
    else:
        bx.set_xlabel("achieved bandwidth (GB/s; no 00-hardware limits to compare with)")
    bx.legend(fontsize=7)
    bx.set_title("compulsory bytes / time", fontsize=9)
    fig.suptitle("Operations against the machine's measured limits (largest size, lowest sparsity)")
    return fig
