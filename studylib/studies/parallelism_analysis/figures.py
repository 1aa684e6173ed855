"""The figures of ``05-parallelism-analysis``: each plot function draws from the study's tables only and
returns a matplotlib figure (saved by the notebook through :func:`studylib.notebook.Context.save`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from studylib.studies.parallelism_analysis import work_depth as analysis
from studylib.studies.parallelism_analysis.measure import BUCKETS, FRAMEWORK_LABELS, MODEL_LABELS

BUCKET_LABELS = {"dense": "dense GEMM (update)", "sparse": "gather, scatter, SpMM, SDDMM, indexing (aggregation)",
                 "elementwise": "element-wise, softmax, loss, optimizer", "overhead": "framework overhead, other"}


#: One colour per model in every figure (colour-blind palette: blue, orange, green, purple).
MODEL_COLORS = {"gcn": "#0173b2", "sage": "#de8f05", "gin": "#029e73", "gat": "#cc78bc"}


SHORT_LABELS = {"gcn": "GCN", "sage": "SAGE", "gin": "GIN", "gat": "GAT"}


def _model_colors() -> dict[str, str]:
    return dict(MODEL_COLORS)


def _plain_log_ticks(ax, axis: str = "y") -> None:
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(FormatStrFormatter("%g"))
    a.set_minor_formatter(NullFormatter())


def plot_predicted_vs_measured(summary: pd.DataFrame, fits: pd.DataFrame, roof: pd.DataFrame | None = None):
    """Left: measured median step time vs counted work (log-log), one colour per model, marker per
    framework (``o`` DGL, ``s`` PyG, hollow = real graph), IQR bars, and each model's fitted line
    ``t = c W`` with its R^2 in the legend. Right: measured / predicted time of that fit vs
    arithmetic intensity (flops per byte): where the work model fails (points far from 1), with
    the machine balance of ``00-hardware`` when known."""

    colors = _model_colors()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4))
    ax, ax2 = axes
    work = fits[fits["fit"] == "work"].set_index("model")
    for model, g in summary.groupby("model"):
        c = colors.get(model)
        for fw, marker in (("dgl", "o"), ("pyg", "s")):
            for real in (False, True):
                d = g[(g["framework"] == fw) & (g["graph"].str.startswith("syn-") != real)]
                if d.empty:
                    continue
                ax.errorbar(d["flops"], d["median_s"], yerr=[d["median_s"] - d["q1_s"], d["q3_s"] - d["median_s"]],
                            fmt=marker, ms=4.5, color=c, mfc="none" if real else c, alpha=0.85, lw=0.8)
        if model in work.index:
            w = np.geomspace(g["flops"].min(), g["flops"].max(), 20)
            ax.plot(w, work.loc[model, "c_s_per_flop"] * w, color=c, lw=1.2,
                    label=f"{MODEL_LABELS.get(model, model)}: t = {work.loc[model, 'c_s_per_flop'] * 1e9:.3g} ns/flop"
                          f" · W, R² = {work.loc[model, 'r2_log']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted work W of a training step (flops, counted)")
    ax.set_ylabel("measured step time (s, median, IQR bars)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Work model: one machine constant per model")
    # residuals vs intensity
    for model, g in summary.groupby("model"):
        if model not in work.index:
            continue
        ratio = g["median_s"] / (work.loc[model, "c_s_per_flop"] * g["flops"])
        for fw, marker in (("dgl", "o"), ("pyg", "s")):
            sel = g["framework"] == fw
            ax2.scatter((g["flops"] / g["bytes"])[sel], ratio[sel], marker=marker, s=18, color=colors.get(model),
                        label=f"{MODEL_LABELS.get(model, model)} · {FRAMEWORK_LABELS[fw]}")
    ax2.axhline(1.0, color="0.4", lw=0.8)
    if roof is not None and "balance" in roof:
        ax2.axvline(float(roof["balance"].iloc[0]), color="#d62728", ls="--", lw=0.9, label="machine balance (00-hardware)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    _plain_log_ticks(ax2, "y")
    ax2.set_xlabel("arithmetic intensity W / Q (flops per byte, counted)")
    ax2.set_ylabel("measured / predicted (work fit)")
    ax2.set_title("Where the work model fails")
    ax2.legend(fontsize=6, ncol=2, loc="best")
    fig.suptitle("Predicted work vs measured training-step time (filled: synthetic grid, hollow: real graphs)")
    return fig


def plot_work_split(predictions: pd.DataFrame, split: pd.DataFrame | None):
    """Left: predicted work split into aggregation / update / other per model (median share over
    the configurations, bars split by framework), with the predicted traffic split as hatched
    bars. Right: for the profiled configurations, measured time share per kernel bucket next to
    the predicted flop share of the same bucket."""

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.0), gridspec_kw={"width_ratios": [1, 1.4]})
    ax = axes[0]
    p = predictions.copy()
    for part in ("aggregation", "update", "other"):
        p[f"share_{part}"] = p[f"flops_{part}"] / p["flops"]
        p[f"bshare_{part}"] = p[f"bytes_{part}"] / p["bytes"]
    med = p.groupby(["model", "framework"])[[c for c in p if c.startswith(("share_", "bshare_"))]].median()
    labels = [f"{SHORT_LABELS.get(m, m)}\n{FRAMEWORK_LABELS.get(f, f)}" for m, f in med.index]
    x = np.arange(len(med))
    cols = {"aggregation": "#d62728", "update": "#1f77b4", "other": "#7f7f7f"}
    for off, prefix, hatch, what in ((-0.2, "share_", None, "flops"), (0.2, "bshare_", "//", "bytes")):
        bottom = np.zeros(len(med))
        for part in ("aggregation", "update", "other"):
            v = med[f"{prefix}{part}"].to_numpy()
            ax.bar(x + off, v, 0.38, bottom=bottom, color=cols[part], hatch=hatch, edgecolor="white", lw=0.3,
                   label=f"{part} ({what})")
            bottom += v
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("share of a training step (median over configurations)")
    ax.set_title("Predicted: flops (solid) and bytes (hatched)")
    ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax = axes[1]
    if split is None or split.empty:
        ax.text(0.5, 0.5, "no kernel profile", ha="center", va="center", transform=ax.transAxes)
    else:
        s = split.copy()
        s["label"] = (s["model"].map(SHORT_LABELS) + " " + s["framework"].map(FRAMEWORK_LABELS) + " · "
                      + s["graph"].str.replace("syn-", "", regex=False))
        wide = s.pivot_table(index="label", columns="bucket", values="time_share").reindex(columns=list(BUCKETS))
        pred = s.pivot_table(index="label", columns="bucket", values="flop_share").reindex(columns=list(BUCKETS))
        bcol = {"dense": "#0173b2", "sparse": "#d55e00", "elementwise": "#ece133", "overhead": "#bbbbbb"}
        y = np.arange(len(wide)) * 1.0
        for vals, off, hatch, what in ((wide, 0.2, None, "measured time"), (pred, -0.2, "///", "predicted flops")):
            left = np.zeros(len(vals))
            for b in BUCKETS:
                v = vals[b].fillna(0).to_numpy()
                ax.barh(y + off, v, 0.38, left=left, color=bcol[b], hatch=hatch, edgecolor="white", lw=0.3,
                        label=f"{BUCKET_LABELS[b]} ({what})" if b != "overhead" or what == "measured time" else None)
                left += v
        ax.set_yticks(y, wide.index, fontsize=6)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of a training step (upper bar: measured time, profiler; lower hatched: predicted flops)")
        ax.set_title("Measured time vs predicted work per kernel bucket")
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.suptitle("Work split: aggregation (sparse) vs update (dense)")
    return fig


def plot_communication(comm: pd.DataFrame, partitions: pd.DataFrame, measured: pd.DataFrame | None, model: str):
    """Bytes per layer (forward, summed over layers) vs number of partitions for ``model`` with DGL's
    aggregation widths, one panel per graph: vertex-centric halo exchange (solid) and edge-centric
    messages (dashed) for METIS and random partitions, the paper's every-edge O(mk) bound (dotted), DistDGL's own METIS
    halo count (crosses), and bytes measured by ``02-distributed-caching`` when present."""

    c = comm[(comm["model"] == model) & (comm["layer"] > 0) & (comm["framework"] == "dgl")]
    graphs = list(dict.fromkeys(c["graph"]))
    fig, axes = plt.subplots(1, max(1, len(graphs)), figsize=(4.6 * max(1, len(graphs)) + 3.2, 4.0), squeeze=False,
                             layout="constrained")
    for ax, gname in zip(axes[0], graphs):
        d = c[c["graph"] == gname]
        for (method, fw), g in d.groupby(["method", "framework"]):
            per = g.groupby("num_parts")[["halo_bytes_forward", "edge_bytes_forward", "paper_bytes", "width"]].sum()
            col = "#1f77b4" if method == "metis" else "#ff7f0e"
            ax.plot(per.index, per["halo_bytes_forward"], "-o", color=col, ms=3,
                    label=f"{method}: halo vertices (vertex-centric)")
            ax.plot(per.index, per["edge_bytes_forward"], "--", color=col,
                    label=f"{method}: cut edges (edge-centric)")
            if method == "metis" and fw == "dgl":
                ax.plot(per.index, per["paper_bytes"], ":", color="0.3", label="paper O(mk): every edge")
        pm = partitions[(partitions["graph"] == gname) & (partitions["method"] == "metis")]
        if "dgl_halo_nodes" in pm and pm["dgl_halo_nodes"].notna().any():
            w = d[(d["method"] == "metis") & (d["framework"] == "dgl")].groupby("num_parts")["width"].sum()
            q = pm.dropna(subset=["dgl_halo_nodes"]).set_index("num_parts")["dgl_halo_nodes"]
            ax.plot(q.index, q * w.reindex(q.index) * analysis.FLOAT_BYTES, "x", color="k", ms=7,
                    label="DistDGL partition_graph: its halo vertices x width")
        if measured is not None and not measured.empty:
            mm = measured[(measured["graph"].str.lower() == gname.lower())]
            rb = mm[mm["quantity"] == "remote_bytes_per_epoch"]
            if not rb.empty:
                ax.plot(rb["num_parts"], rb["value"], "D", color="#2ca02c", ms=5,
                        label="02 measured: remote feature bytes per epoch (mini-batch DistDGL)")
            hn = mm[mm["quantity"] == "halo_nodes"]
            w = d[(d["method"] == "metis") & (d["framework"] == "dgl")].groupby("num_parts")["width"].sum()
            if not hn.empty:
                ax.plot(hn["num_parts"], hn["value"] * hn["num_parts"].map(w).to_numpy() * analysis.FLOAT_BYTES, "+",
                        color="#2ca02c", ms=9, label="02's DistDGL partitions: halo vertices x width")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("partitions P")
        ax.set_ylabel("bytes per training step, forward, all layers")
        ax.set_title(gname)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside right center")
    fig.suptitle(f"Communication volume of partitioned full-batch training ({MODEL_LABELS.get(model, model)}, DGL "
                 f"widths)")
    return fig


def plot_parallelism(predictions: pd.DataFrame, scaling: pd.DataFrame | None = None):
    """Left: available parallelism W / D of a training step per model and graph (log scale; one
    colour per model, grid graphs ordered by edges), with the machine's thread count as a line.
    Right: measured speedup with all threads vs 1 thread per model and framework, against the
    thread count (Brent: ``T_P <= W / P + D``, so ``W / D >> P`` predicts ``speedup ~ P``)."""

    colors = _model_colors()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.0), gridspec_kw={"width_ratios": [1.6, 1]})
    ax = axes[0]
    p = predictions[predictions["framework"] == "dgl"] if (predictions["framework"] == "dgl").any() else predictions
    order = p.groupby("graph")["m"].first().sort_values().index.tolist()
    Ls = sorted(p["num_layers"].unique())
    x = {g: i for i, g in enumerate(order)}
    for model, g in p.groupby("model"):
        for li, L in enumerate(Ls):
            d = g[g["num_layers"] == L]
            ax.plot([x[v] for v in d["graph"]], d["parallelism"], "o" if li == 0 else "^", color=colors.get(model),
                    ms=4, label=f"{MODEL_LABELS.get(model, model)} L={L}", ls="none")
    ax.axhline(torch.get_num_threads(), color="#d62728", ls="--", lw=0.8, label="threads here")
    ax.set_xticks(range(len(order)), [o.replace("syn-", "") for o in order], rotation=60, fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("available parallelism W / D (training step)")
    ax.set_title("Work / depth per model and graph (DGL kernels)")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    if scaling is None or scaling.empty:
        ax.text(0.5, 0.5, "thread scaling not measured", ha="center", va="center", transform=ax.transAxes)
    else:
        s = scaling.copy()
        s["label"] = s["model"].map(MODEL_LABELS) + " · " + s["framework"].map(FRAMEWORK_LABELS)
        y = np.arange(len(s))
        ax.barh(y, s["speedup"], color=[colors.get(m) for m in s["model"]])
        ax.axvline(float(s["threads"].iloc[0]), color="#d62728", ls="--", lw=0.8, label="ideal (P)")
        ax.axvline(1.0, color="0.5", lw=0.8)
        ax.set_yticks(y, s["label"], fontsize=7)
        ax.set_xlabel(f"speedup T(1) / T({int(s['threads'].iloc[0])}) on {s['graph'].iloc[0]}")
        ax.set_title("Measured thread scaling")
        ax.legend(fontsize=7)
    fig.suptitle("Available parallelism (work-depth model) and what this machine uses of it")
    return fig
