"""The figures of ``04-recsys-memory-tiers``: each plot function draws from the study's tables only and
returns a matplotlib figure (saved by the notebook through :func:`studylib.notebook.Context.save`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from studylib import timing
from studylib.data.recsys import SYNTHETIC_PRESETS
from studylib.studies.recsys_memory_tiers.measure import REGIONS, footprint_fit, predicted_footprint_bytes
from studylib.studies.recsys_memory_tiers.memory_tiers import TIER_LABELS
from studylib.tables import ok_rows

REGION_COLORS = {"sampling": "#e377c2", "fetch": "#bcbd22", "forward": "#1f77b4", "backward": "#9467bd",
                 "communication": "#17becf", "update": "#ff7f0e"}


#: Kernel classes of the tier breakdown, in plotting order (see :mod:`studylib.timing`).
TIER_COLORS = {"dram": "#1f77b4", "mmap_cached": "#2ca02c", "mmap_cgroup": "#d62728", "hot_cold": "#ff7f0e",
               "numa_remote": "#9467bd"}


TIER_KERNEL_CLASSES = (timing.SPMM, timing.SDDMM, timing.GEMM, timing.INDEXING, timing.ELEMENTWISE,
                       timing.REDUCTION, timing.MEMORY, timing.OVERHEAD, timing.OTHER)


def _machines_label(n: int) -> str:
    return "1 machine (full graph)" if n == 1 else f"{n} machines (DistDGL subgraphs)"


def _budget(epochs: pd.DataFrame, core_budget: int | None) -> tuple[pd.DataFrame, int | None]:
    if "core_budget" not in epochs:
        return epochs, None
    b = int(epochs["core_budget"].max()) if core_budget is None else int(core_budget)
    return epochs[epochs["core_budget"] == b], b


def plot_epoch_times(epochs: pd.DataFrame, base_layers: int, base_dim: int, core_budget: int | None = None):
    """Grouped bars: epoch time per layer count (top row, width ``base_dim``) and per embedding
    width (bottom row, ``base_layers`` layers), bars for 1, 2 and 4 machines; one column per model
    (first dataset), at ``core_budget`` cores shared by each side (default the largest budget).
    Error bars: epoch time from the step quartiles."""

    epochs, budget = _budget(epochs, core_budget)
    ds = epochs["dataset"].iloc[0]
    e = epochs[epochs["dataset"] == ds]
    models = list(dict.fromkeys(e["model"]))
    machines = sorted(e["num_machines"].unique())
    colors = dict(zip(machines, ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]))
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 6.4), squeeze=False)
    for col, m in enumerate(models):
        for row, (x, fixed, fval, xl) in enumerate((("num_layers", "dim", base_dim, "layers"),
                                                   ("dim", "num_layers", base_layers, "embedding size"))):
            ax = axes[row][col]
            d = e[(e["model"] == m) & (e[fixed] == fval)]
            xs = sorted(d[x].unique())
            w = 0.8 / max(1, len(machines))
            for k, nm in enumerate(machines):
                dd = d[d["num_machines"] == nm].set_index(x).reindex(xs)
                pos = np.arange(len(xs)) + (k - (len(machines) - 1) / 2) * w
                err = [np.clip(dd["epoch_s"] - dd["epoch_q1_s"], 0, None), np.clip(dd["epoch_q3_s"] - dd["epoch_s"], 0, None)]
                ax.bar(pos, dd["epoch_s"], w, yerr=err, capsize=2, color=colors[nm], label=_machines_label(nm))
            ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs])
            ax.set_xlabel(xl)
            ax.set_ylabel("epoch time (s)")
            ax.set_title(f"{m.upper()} · {ds} · {fixed.replace('num_', '')}={fval}")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Epoch time: one machine (full-graph) vs DistDGL subgraph training"
                 + (f" (each side pinned to the same {budget} core(s))" if budget else ""))
    return fig


def plot_breakdown(epochs: pd.DataFrame, base_dim: int, core_budget: int | None = None):
    """Stacked bars: the median step split into :data:`REGIONS` x steps per epoch (seconds per
    epoch), per layer count and machine count; one panel per model (width ``base_dim``), at
    ``core_budget`` cores (default the largest budget)."""

    epochs, _ = _budget(epochs, core_budget)
    ds = epochs["dataset"].iloc[0]
    e = epochs[(epochs["dataset"] == ds) & (epochs["dim"] == base_dim)]
    models = list(dict.fromkeys(e["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 3.8), squeeze=False)
    for ax, m in zip(axes[0], models):
        d = e[e["model"] == m].sort_values(["num_layers", "num_machines"])
        labels = [f"L{int(r.num_layers)}·{int(r.num_machines)}m" for r in d.itertuples()]
        bottom = np.zeros(len(d))
        for reg in REGIONS:
            vals = (d[f"{reg}_s"].fillna(0) * d["steps_per_epoch"]).to_numpy()
            ax.bar(np.arange(len(d)), vals, bottom=bottom, color=REGION_COLORS[reg], label=reg)
            bottom += vals
        ax.set_xticks(np.arange(len(d)), labels, rotation=60, fontsize=7)
        ax.set_ylabel("seconds per epoch")
        ax.set_title(f"{m.upper()} · {ds} (L = layers, m = machines)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Where an epoch goes: subgraph construction (sampling), embedding fetch, forward, backward, "
                 "communication, update")
    return fig


def plot_equal_cores(speedups: pd.DataFrame):
    """The single machine's advantage (distributed epoch / single-machine epoch, both on the same
    core set) vs layers: one line per machine count and core budget, one panel per model (pairs on
    unequal core sets are left out)."""

    s = speedups[speedups["equal_cores"]] if "equal_cores" in speedups else speedups
    base_dim = s.groupby("dim").size().idxmax()
    s = s[s["dim"] == base_dim]
    models = list(dict.fromkeys(s["model"]))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5 * max(1, len(models)), 3.6), squeeze=False)
    for ax, m in zip(axes[0], models):
        for (nm, cb), d in s[s["model"] == m].groupby(["num_machines", "core_budget"]):
            d = d.groupby("num_layers")["single_machine_advantage"].median()
            ax.plot(d.index, d.values, marker="o", label=f"{int(nm)} machines, {int(cb)} core(s) each side")
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("layers")
        ax.set_ylabel("distributed / single-machine epoch")
        ax.set_title(f"{m.upper()} · d={base_dim}")
        ax.legend(fontsize=7)
    fig.suptitle("One machine vs the emulated cluster on equal core sets (> 1: the single machine is faster)")
    return fig


def plot_tier_model(model: pd.DataFrame, figures_tbl: pd.DataFrame):
    """Left: latency and read bandwidth of the tiers measured here beside the published Optane
    figures (log scales). Right: per dataset and model, the measured slowdown of each emulated tier
    beside the tier model's prediction for it, and the model's predictions for Optane alone and
    behind the hot/cold split."""

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    f = figures_tbl.dropna(subset=["latency_ns", "read_gb_s"])
    for r in f.itertuples():
        pub = not str(r.source).startswith("measured")
        ax.scatter(r.latency_ns, r.read_gb_s, marker="*" if pub else "o", s=90 if pub else 45,
                   color="k" if pub else TIER_COLORS.get(r.tier, "0.4"))
        ax.annotate(str(r.tier)[:38], (r.latency_ns, r.read_gb_s), fontsize=6, textcoords="offset points",
                    xytext=(4, 3))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("random-access latency (ns, log)")
    ax.set_ylabel("read bandwidth (GB/s, log)")
    ax.set_title("Tiers measured here (dots) vs published Optane (stars)")
    ax = axes[1]
    if not model.empty:
        labels, meas, pred = [], [], []
        for r in model.itertuples():
            labels.append(f"{r.model} · {r.target}")
            meas.append(r.measured_slowdown)
            pred.append(r.predicted_slowdown)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, meas, 0.4, label="measured", color="#1f77b4")
        ax.bar(x + 0.2, pred, 0.4, label="tier model", color="#ff7f0e")
        ax.set_xticks(x, labels, rotation=50, fontsize=7, ha="right")
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_ylabel("step time / DRAM step time")
        ax.legend(fontsize=7)
    ax.set_title("Slowdown: measured vs predicted (Optane: model only)")
    return fig


def plot_redundancy(redund: pd.DataFrame):
    """Redundancy of subgraph training vs the number of layers: node (left) and edge (right)
    redundancy of the input-side layer, one line per source (local sampler, each cluster size)."""

    r = redund[redund["layer"] == 1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, col, title in ((axes[0], "node_redundancy", "input nodes"), (axes[1], "edge_redundancy", "edges")):
        for (ds, src), d in r.groupby(["dataset", "source"]):
            d = d.sort_values("num_layers")
            ax.plot(d["num_layers"], d[col], marker="o", label=f"{src} · {ds}")
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("layers (the input-side layer's block)")
        ax.set_ylabel(f"redundancy of {title}\n(sum over batches / distinct per epoch)")
        ax.set_xticks(sorted(r["num_layers"].unique()))
    axes[1].legend(fontsize=7)
    fig.suptitle("Overlap of the sampled subgraphs within one epoch (1 = every node/edge computed once)")
    return fig


def plot_tiers(tier_epochs: pd.DataFrame, bandwidth: pd.DataFrame, status: pd.DataFrame):
    """Left: measured bandwidth per tier and kernel (log scale). Right: slowdown of a training step
    vs DRAM per tier against the tier's measured gather bandwidth (hot/cold: its hit rate written
    beside). Tiers that could not run are listed with their reasons."""

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    if not bandwidth.empty:
        tiers = list(dict.fromkeys(bandwidth["tier"]))
        kernels = ["read", "write", "copy", "gather"]
        w = 0.8 / len(kernels)
        for k, kern in enumerate(kernels):
            d = bandwidth[bandwidth["kernel"] == kern].set_index("tier").reindex(tiers)
            pos = np.arange(len(tiers)) + (k - 1.5) * w
            ax.bar(pos, d["bytes_per_s"] / 1e9, w, label=kern,
                   yerr=[np.clip((d["bytes_per_s"] - d["q1"]) / 1e9, 0, None),
                         np.clip((d["q3"] - d["bytes_per_s"]) / 1e9, 0, None)], capsize=2)
        ax.set_xticks(np.arange(len(tiers)), [t.replace("_", "\n") for t in tiers], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("bandwidth (GB/s, log)")
        ax.legend(fontsize=7)
    ax.set_title("Measured tier bandwidth (00-hardware kernels on tier memory)")
    ax = axes[1]
    markers = {"lightgcn": "o", "ngcf": "s"}
    if not tier_epochs.empty and "gather_bytes_per_s" in tier_epochs:
        te = tier_epochs.copy()
        te["x"] = te["gather_bytes_per_s"]
        cold = te.loc[te["tier"] == "mmap_cgroup", "gather_bytes_per_s"].median()
        dram = te.loc[te["tier"] == "dram", "gather_bytes_per_s"].median()
        hc = te["tier"] == "hot_cold"
        # a cache with hit rate h in front of the slow tier: the harmonic mix of the two bandwidths
        te.loc[hc, "x"] = 1.0 / (te.loc[hc, "hit_rate"] / dram + (1 - te.loc[hc, "hit_rate"]) / cold)
        for t, d in te.groupby("tier", sort=False):
            for i, (_, r) in enumerate(d.iterrows()):
                ax.scatter(r["x"] / 1e9, r["slowdown"], marker=markers.get(r["model"], "o"), s=40,
                           color=TIER_COLORS.get(t), label=TIER_LABELS.get(t, t) if i == 0 else None)
                txt = f"{r['model']} · {r['dataset'][:14]}"
                if t == "hot_cold" and r["hit_rate"] == r["hit_rate"]:
                    txt += f" · hit {r['hit_rate']:.0%}"
                ax.annotate(txt, (r["x"] / 1e9, r["slowdown"]), fontsize=6, textcoords="offset points",
                            xytext=(4, 3))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("tier gather bandwidth (GB/s; hot/cold: effective at its hit rate)")
        ax.set_ylabel("step time / DRAM step time")
        ax.legend(fontsize=6, loc="upper right")
    skipped = status[~status["available"]] if status is not None and not status.empty else pd.DataFrame()
    if not skipped.empty:
        ax.text(0.01, 0.01, "not run: " + "; ".join(f"{r.tier} ({r.reason})" for r in skipped.itertuples())[:220],
                transform=ax.transAxes, fontsize=6, va="bottom", wrap=True)
    ax.set_title("Slowdown per tier vs its bandwidth (emulated tiers, see labels)")
    return fig


def plot_tier_kernels(kern: pd.DataFrame):
    """Stacked bars: profiled seconds per step by kernel class per tier; one panel per dataset and
    model."""

    groups = list(kern.groupby(["dataset", "model"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    colors = dict(zip(TIER_KERNEL_CLASSES, sns.color_palette("tab10", len(TIER_KERNEL_CLASSES))))
    for ax, ((ds, m), d) in zip(axes[0], groups):
        wide = d.pivot_table(index="tier", columns="kernel_class", values="seconds", aggfunc="sum").fillna(0)
        wide = wide.reindex(columns=[c for c in TIER_KERNEL_CLASSES if c in wide.columns])
        bottom = np.zeros(len(wide))
        for c in wide.columns:
            ax.bar(np.arange(len(wide)), wide[c], bottom=bottom, color=colors[c], label=c.replace("_", " "))
            bottom += wide[c].to_numpy()
        ax.set_xticks(np.arange(len(wide)), [t.replace("_", "\n") for t in wide.index], fontsize=7)
        ax.set_ylabel("profiled seconds per step")
        ax.set_title(f"{m.upper()} · {ds[:22]}", fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Kernel classes per memory tier (torch.profiler self time; SpMM = GSpMM, SDDMM = GSDDMM)")
    return fig


def plot_footprint(foot: pd.DataFrame, paper: pd.DataFrame, dram_bytes: int, server_bytes: int | None = None):
    """Peak memory of full-graph training vs interactions: measured points of the synthetic sweep,
    the calibrated tensor-count model as lines (extrapolated), the paper's datasets at their sizes,
    this machine's DRAM as a horizontal line and, when given, the server DRAM the finding is held
    against (``server_bytes``, dashed)."""

    f = ok_rows(foot)
    cal = footprint_fit(f).set_index("model")["calibration"]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    colors = {"lightgcn": "#1f77b4", "ngcf": "#d62728"}
    preset = f["preset"].iloc[0]
    p = SYNTHETIC_PRESETS[preset]
    for m, d in f.groupby("model"):
        ax.scatter(d["num_train"], d["footprint_bytes"] / 2**30, color=colors.get(m), zorder=3,
                   label=f"{m.upper()} measured ({preset}-like, L={int(d['num_layers'].iloc[0])}, "
                         f"d={int(d['dim'].iloc[0])})")
        xs = np.logspace(np.log10(d["num_train"].min()), np.log10(1e8), 60)
        ratio_u = p["num_users"] / p["num_interactions"]
        ratio_i = p["num_items"] / p["num_interactions"]
        ys = [cal[m] * predicted_footprint_bytes(m, int(x / 0.8 * (ratio_u + ratio_i)), int(x),
                                                 int(d["num_layers"].iloc[0]), int(d["dim"].iloc[0])) / 2**30
              for x in xs]
        ax.plot(xs, ys, color=colors.get(m), lw=1, ls="--", label=f"{m.upper()} model x {cal[m]:.2f} (extrapolated)")
    if paper is not None and not paper.empty:
        L, dd = int(f["num_layers"].iloc[0]), int(f["dim"].iloc[0])
        pp = paper[(paper["num_layers"] == L) & (paper["dim"] == dd)]
        for (ds, m), r in pp.groupby(["dataset", "model"]):
            ax.scatter(0.8 * r["interactions"], r["calibrated_bytes"] / 2**30, marker="*", s=90,
                       color=colors.get(m), edgecolor="k", zorder=4)
            ax.annotate(ds, (0.8 * r["interactions"].iloc[0], r["calibrated_bytes"].iloc[0] / 2**30), fontsize=7,
                        textcoords="offset points", xytext=(4, -8))
    ax.axhline(dram_bytes / 2**30, color="k", lw=1.2)
    ax.text(f["num_train"].min(), dram_bytes / 2**30 * 1.08,
            f"this machine's DRAM: {dram_bytes / 2**30:.0f} GiB", fontsize=8)
    if server_bytes:
        ax.axhline(server_bytes / 2**30, color="k", lw=1.0, ls="--")
        ax.text(f["num_train"].min(), server_bytes / 2**30 * 1.08,
                f"server DRAM (parameter server_dram_gib): {server_bytes / 2**30:.0f} GiB", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training interactions")
    ax.set_ylabel("peak memory of full-graph training (GiB)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Memory footprint vs graph scale (stars: the paper's datasets, calibrated model)")
    return fig
