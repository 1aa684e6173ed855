"""The figures of ``01-hgnn-training``: each plot function draws from the study's tables only and
returns a matplotlib figure (saved by the notebook through :func:`studylib.notebook.Context.save`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from studylib import timing
from studylib.plotting import STAGE_PALETTE
from studylib.studies.hgnn_training.measure import (
    MINIBATCH_REGIONS,
    STEP_REGIONS,
    data_parallel_summary,
    kernel_class_shares,
    memory_summary,
    minibatch_summary,
    profiled_stage_shares,
    ratio_summary,
    stage_summary,
)
from studylib.timing import (
    BACKWARD,
    FORWARD,
    LOSS,
    NEIGHBOR_AGGREGATION,
)


def _label(df: pd.DataFrame) -> pd.Series:
    return df["model"].str.upper() + " · " + df["framework"].map({"dgl": "DGL", "pyg": "PyG"})


def plot_stage_shares(stage_times: pd.DataFrame):
    """Stacked bars: share of the median training step per region (:data:`STEP_REGIONS`), one
    panel per dataset, one bar per model x framework, the step time in ms written on each bar."""

    summ = stage_summary(stage_times)
    summ = summ[summ["region"].isin(STEP_REGIONS)]
    datasets = list(pd.unique(stage_times["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(6.0, 4.2 * len(datasets)), 3.8), sharey=True,
                             squeeze=False, layout="constrained")
    for ax, ds in zip(axes[0], datasets):
        d = summ[summ["dataset"] == ds].copy()
        d["label"] = _label(d)
        wide = d.pivot_table(index="label", columns="region", values="share").reindex(columns=list(STEP_REGIONS))
        steps = d.groupby("label")["step_median_s"].first()
        wide["untimed"] = (1 - wide.fillna(0).sum(axis=1)).clip(lower=0)
        left = np.zeros(len(wide))
        for region in (*STEP_REGIONS, "untimed"):
            vals = wide[region].fillna(0).to_numpy()
            ax.barh(wide.index, vals, left=left, color=STAGE_PALETTE.get(region, "#e5e5e5"),
                    label=region.replace("_", " "))
            left += vals
        for y, lab in enumerate(wide.index):
            ax.text(min(left[y], 1.0) + 0.01, y, f"{steps[lab] * 1e3:.0f} ms", va="center", fontsize=7)
        ax.set_title(ds.upper())
        ax.set_xlim(0, 1.3)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xlabel("share of step time (median over steps)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", ncol=1, fontsize=7, frameon=False)
    fig.suptitle("Where a full-batch HGNN training step goes (stage timers; backward and update as a whole)")
    return fig


def plot_kernel_classes(kernels: pd.DataFrame):
    """Two rows of stacked bars from the profiler: share of the step per kernel class, and per
    stage with backward time attributed to its stage; one panel per dataset."""

    datasets = list(dict.fromkeys(kernels["dataset"]))
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.2 * len(datasets), 6.2), sharey="row", squeeze=False)
    colors = dict(zip(timing.KERNEL_CLASSES, sns.color_palette("tab10", len(timing.KERNEL_CLASSES))))
    stage_order = [timing.FEATURE_PROJECTION, NEIGHBOR_AGGREGATION, timing.SEMANTIC_FUSION, LOSS, "other"]
    for row, (by, order, palette) in enumerate((("kernel_class", timing.KERNEL_CLASSES, colors),
                                                ("stage", stage_order, STAGE_PALETTE))):
        shares = profiled_stage_shares(kernels) if by == "stage" else kernel_class_shares(kernels, by)
        for ax, ds in zip(axes[row], datasets):
            d = shares[shares["dataset"] == ds].copy()
            d["label"] = _label(d)
            wide = d.pivot_table(index="label", columns=by, values="share").reindex(columns=list(order)).fillna(0)
            left = np.zeros(len(wide))
            for c in order:
                ax.barh(wide.index, wide[c], left=left, color=palette.get(c), label=c.replace("_", " "))
                left += wide[c].to_numpy()
            ax.set_xlim(0, 1)
            ax.set_title(f"{ds.upper()}: by {by.replace('_', ' ')}")
            ax.set_xlabel("share of profiled step time")
        axes[row][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.suptitle("Kernel classes and stages of a training step (torch.profiler self time of forward, backward "
                 "and update; backward attributed to its forward stage)")
    return fig


def plot_memory(stage_times: pd.DataFrame, device: str = "cpu"):
    """Grouped bars: peak memory of the forward and the backward pass per configuration."""

    m = memory_summary(stage_times)
    m["label"] = _label(m)
    datasets = list(dict.fromkeys(m["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.2), squeeze=False)
    what = "resident set size" if device == "cpu" else "allocated device memory"
    for ax, ds in zip(axes[0], datasets):
        sns.barplot(data=m[m["dataset"] == ds], y="label", x="increase_mib", hue="region", ax=ax,
                    palette={FORWARD: "#1f77b4", BACKWARD: "#9467bd"})
        ax.set_title(ds.upper())
        ax.set_xlabel(f"peak {what} above step start (MiB)")
        ax.set_ylabel("")
    fig.suptitle("Peak memory: forward vs backward pass")
    return fig


def plot_han_metapaths(han: pd.DataFrame):
    """Neighbor-aggregation time (forward, median per step, IQR bars) of HAN vs the number of
    metapaths and vs metapath length, one line per dataset and framework, with the metapath
    graphs' edge counts annotated."""

    keys = ["dataset", "framework", "sweep", "num_metapaths", "metapath_length", "metapath_edges"]
    d = han[han["region"] == NEIGHBOR_AGGREGATION].groupby(keys + ["step"], as_index=False)["seconds"].sum()
    g = d.groupby(keys)["seconds"]
    s = pd.concat([g.median().rename("median"), g.quantile(0.25).rename("q1"), g.quantile(0.75).rename("q3")],
                  axis=1).reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    for ax, sweep, x, xl in ((axes[0], "count", "num_metapaths", "number of metapaths"),
                             (axes[1], "length", "metapath_length", "metapath length (hops)")):
        part = s[s["sweep"] == sweep]
        for (ds, fw), f in part.groupby(["dataset", "framework"]):
            f = f.sort_values(x)
            ax.errorbar(f[x], f["median"] * 1e3, yerr=[(f["median"] - f["q1"]) * 1e3, (f["q3"] - f["median"]) * 1e3],
                        marker="o", capsize=3, label=f"{ds.upper()} · {'DGL' if fw == 'dgl' else 'PyG'}")
            for _, r in f.iterrows():
                ax.annotate(f"{r['metapath_edges'] / 1e3:.0f}k", (r[x], r["median"] * 1e3), fontsize=6,
                            textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel(xl)
        ax.set_ylabel("neighbor aggregation, forward (ms/step)")
        ax.set_yscale("log")
        if not part.empty:
            ax.set_xticks(sorted(part[x].unique()))
        ax.legend(fontsize=7)
    fig.suptitle("HAN: neighbor aggregation vs number and length of metapaths (labels: metapath-graph edges)")
    return fig


def plot_minibatch(mb: pd.DataFrame):
    """Stacked bars: share of a step spent in sampling, data preparation, forward, backward and
    update, mini-batch vs full-batch, per model (one panel per dataset)."""

    med = minibatch_summary(mb)
    datasets = list(pd.unique(mb["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.2), sharey=True, squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        d = med[med["dataset"] == ds].copy()
        d["label"] = _label(d) + " · " + d["mode"]
        wide = d.pivot_table(index="label", columns="region", values="share").reindex(
            columns=list(MINIBATCH_REGIONS)).fillna(0)
        steps = d.groupby("label")["step_s"].first()
        left = np.zeros(len(wide))
        for r in MINIBATCH_REGIONS:
            ax.barh(wide.index, wide[r], left=left, color=STAGE_PALETTE.get(r), label=r.replace("_", " "))
            left += wide[r].to_numpy()
        for y, lab in enumerate(wide.index):
            ax.text(min(left[y], 1.0) + 0.01, y, f"{steps[lab] * 1e3:.0f} ms", va="center", fontsize=7)
        ax.set_xlim(0, 1.3)
        ax.set_title(ds.upper())
        ax.set_xlabel("share of step time (median)")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.suptitle("Full batch vs neighbor-sampled mini-batch (DGL sampler)")
    return fig


def plot_data_parallel(ddp: pd.DataFrame):
    """Three panels vs number of processes: epoch time, scaling efficiency, all-reduce share."""

    s = data_parallel_summary(ddp)
    s["label"] = _label(s) + " · " + s["dataset"].str.upper()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for lab, d in s.groupby("label"):
        d = d.sort_values("world_size")
        axes[0].plot(d["world_size"], d["epoch_s"], marker="o", label=lab)
        axes[1].plot(d["world_size"], d["scaling_efficiency"], marker="o", label=lab)
        axes[2].plot(d["world_size"], d["allreduce_share"] * 100, marker="o", label=lab)
    axes[0].set_ylabel("epoch time (s)")
    axes[1].set_ylabel("scaling efficiency T1 / (N·TN)")
    axes[1].axhline(1.0, color="0.5", lw=0.8, ls="--")
    axes[2].set_ylabel("gradient all-reduce (% of step)")
    for ax in axes:
        ax.set_xlabel("data-parallel processes")
        ax.set_xticks(sorted(s["world_size"].unique()))
    axes[2].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle("Data-parallel mini-batch training (torch.distributed, synchronous gradient all-reduce)")
    return fig


def plot_ratios(overhead: pd.DataFrame | None, reference: pd.DataFrame | None):
    """Two panels: step time with stage instrumentation / without (goal <= 1.05), and staged model
    / the frameworks' reference layers (goal <= 1.10); medians over alternated rounds, IQR bars."""

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=False)
    for ax, df, num, den, goal, title in (
            (axes[0], overhead, "instrumented", "plain", 1.05, "stage instrumentation overhead"),
            (axes[1], reference, "staged", "reference", 1.10, "staged model vs framework reference layers")):
        ax.set_title(title)
        if df is None or df.empty:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        r = ratio_summary(df, num, den)
        r["label"] = _label(r) + " · " + r["dataset"].str.upper()
        y = np.arange(len(r))
        ax.errorbar(r["ratio"], y, xerr=[r["ratio"] - r["ratio_q1"], r["ratio_q3"] - r["ratio"]], fmt="o",
                    capsize=3)
        ax.set_yticks(y, r["label"], fontsize=7)
        ax.axvline(1.0, color="0.5", lw=0.8)
        ax.axvline(goal, color="#d62728", lw=0.8, ls="--", label=f"goal ≤ {goal:.2f}")
        ax.set_xlabel(f"time per step: {num} / {den}")
        ax.legend(fontsize=7)
    fig.suptitle("Benchmarks (torch.utils.benchmark, alternated rounds)")
    return fig
