"""The figures of ``02-distributed-caching``: each plot function draws from the study's tables only and
returns a matplotlib figure (saved by the notebook through :func:`studylib.notebook.Context.save`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from studylib.studies.distributed_caching.measure import (
    RUN_KEY,
    _main_runs,
    _network_order,
    _ok,
    _sweep_rows,
    breakdown_table,
    network_rows,
    speedup_summary,
    variant,
)

REGION_COLORS = {
    "sampling": "#e377c2", "local_fetch": "#bcbd22", "remote_fetch": "#d62728", "cache_lookup": "#8c564b",
    "cache_eviction": "#7f7f7f", "wait": "#c7c7c7", "forward": "#1f77b4", "backward": "#9467bd",
    "allreduce": "#17becf", "update": "#ff7f0e", "other": "#eeeeee",
}


POLICY_ORDER = ["distdgl", "prefetch", "massivegnn", "static", "lru"]


def _policy_rank(label: str) -> tuple:
    base = label.split(":")[-1]
    head = base.split("-")[0]
    return (":" in label, POLICY_ORDER.index(head) if head in POLICY_ORDER else 99, label)


def _runs_of(df: pd.DataFrame) -> list[tuple]:
    return list(df[RUN_KEY].drop_duplicates().itertuples(index=False, name=None))


def plot_breakdown(epochs: pd.DataFrame, params):
    """Stacked bars per main run: for every variant of the first model, the median epoch split into
    the regions on the critical path (left bar) and, for pipelined variants, the background
    thread's sampling and fetching that overlapped training (right bar, hatched)."""

    b = breakdown_table(epochs, params.warmup_epochs)
    b = _main_runs(b)
    b = b[(b["model"] == params.models[0]) & b["variant"].isin(POLICY_ORDER)] if not b.empty else b
    runs = _runs_of(b)
    fig, axes = plt.subplots(1, max(1, len(runs)), figsize=(max(7.5, 4.2 * len(runs)), 4.4), squeeze=False,
                             layout="constrained")
    for ax, run in zip(axes[0], runs):
        d = b[(b[RUN_KEY].apply(tuple, axis=1) == run)]
        labels = sorted(d["variant"].unique(), key=_policy_rank)
        for x, lab in enumerate(labels):
            for path, off, hatch in (("critical", -0.2, None), ("background", 0.2, "///")):
                dd = d[(d["variant"] == lab) & (d["path"] == path)]
                bottom = 0.0
                for _, r in dd.iterrows():
                    ax.bar(x + off, r["seconds"], 0.38, bottom=bottom, color=REGION_COLORS[r["region"]],
                           hatch=hatch, edgecolor="white" if hatch is None else "0.3", linewidth=0.3)
                    bottom += r["seconds"]
            ep = d[d["variant"] == lab]["epoch_s"].iloc[0]
            ax.text(x - 0.2, ep * 1.02, f"{ep:.2f}s", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.set_ylabel("seconds per epoch (median over epochs)")
        ax.set_title(f"{run[0]} · {run[1]} machines · {run[2]}", fontsize=9)
    handles = [Patch(color=c, label=r.replace("_", " ")) for r, c in REGION_COLORS.items()]
    handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="///", label="background thread (overlapped)"))
    fig.legend(handles=handles, loc="outside right upper", ncol=1, fontsize=7, frameon=False)
    fig.suptitle("Epoch time: critical path (left bars) and background prefetch thread (right bars, hatched)",
                 fontsize=10)
    return fig


def plot_fraction(epochs: pd.DataFrame, params):
    """Speedup over plain DistDGL (median, IQR over epochs) and hit rate of the MassiveGNN buffer
    against the prefetch fraction, on the sweep run."""

    s = _sweep_rows(speedup_summary(epochs, params.warmup_epochs), params)
    if not s.empty:
        s = s[(s["policy"] == "massivegnn") & np.isclose(s["alpha"], params.alpha) & (s["delta"] == params.delta)
              & (s["eviction"].astype(bool) == params.eviction)].sort_values("fraction")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.5, 3.4), layout="constrained")
    if not s.empty:
        yerr = np.vstack([s["speedup_median"] - s["speedup_q1"], s["speedup_q3"] - s["speedup_median"]])
        a1.errorbar(s["fraction"], s["speedup_median"], yerr=yerr, marker="o", capsize=3)
        a2.plot(s["fraction"], s["hit_rate"], marker="o", color="#2ca02c")
    a1.axhline(1.0, color="0.5", lw=0.8, ls="--")
    a1.set_xlabel("prefetch fraction (buffer slots / halo nodes)")
    a1.set_ylabel("speedup over DistDGL (same run)")
    a2.set_xlabel("prefetch fraction")
    a2.set_ylabel("hit rate = hits / (hits + halo misses)")
    a2.set_ylim(0, 1)
    fig.suptitle(f"MassiveGNN buffer size · {params.sweep_graph} · {params.networks[0]} · "
                 f"alpha {params.alpha:g}, delta {params.delta}")
    return fig


def plot_sensitivity(replay: pd.DataFrame, params):
    """Heat maps of MassiveGNN's hit rate (halo accesses) for every (alpha, delta) of the grid,
    from the offline replay of the access sequences recorded in the sweeps run (mean over
    trainers), one panel per seed order; each cell also gives the nodes admitted by eviction per
    epoch, the title the buffer without eviction."""

    r = replay if replay is not None else pd.DataFrame()
    orders = sorted(r["seed_order"].unique()) if not r.empty else []
    alphas, deltas = sorted(set(params.alpha_sweep)), sorted(set(params.delta_sweep))
    fig, axes = plt.subplots(1, max(1, len(orders)), figsize=(max(4.5, (1.4 * len(deltas) + 2.5) * len(orders)),
                                                              0.9 * len(alphas) + 2.2), squeeze=False,
                             layout="constrained")
    for ax, order in zip(axes[0], orders):
        d = r[(r["seed_order"] == order)]
        mg = d[d["policy"] == "massivegnn"]
        base = d[d["policy"] == "massivegnn-noevict"]["hit_rate_halo"].mean()
        grid = np.full((len(alphas), len(deltas)), np.nan)
        adm = np.full_like(grid, np.nan)
        for i, a in enumerate(alphas):
            for j, dl in enumerate(deltas):
                c = mg[np.isclose(mg["alpha"], a) & (mg["delta"] == dl)]
                if not c.empty:
                    grid[i, j] = c["hit_rate_halo"].mean()
                    adm[i, j] = c["admitted_per_epoch"].mean()
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        ax.grid(False)
        for i in range(len(alphas)):
            for j in range(len(deltas)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"hit {grid[i, j]:.1%}\n{adm[i, j]:.0f} admitted/epoch", ha="center", va="center",
                            fontsize=8, color="white" if grid[i, j] <= np.nanmean(grid) else "black")
        ax.set_xticks(range(len(deltas)), [str(x) for x in deltas])
        ax.set_yticks(range(len(alphas)), [f"{x:g}" for x in alphas])
        ax.set_xlabel("delta (mini-batches between eviction rounds)")
        ax.set_ylabel("alpha (score decay)")
        ax.set_title(f"{order} seeds · no eviction: hit {base:.1%}", fontsize=9)
        fig.colorbar(im, ax=ax, label="hit rate (halo)")
    if not orders:
        axes[0][0].text(0.5, 0.5, "no access sequence was recorded", ha="center", transform=axes[0][0].transAxes)
    fig.suptitle(f"MassiveGNN's alpha x delta grid, replayed offline · {params.sweep_graph} · fraction "
                 f"{params.prefetch_fraction:g}", fontsize=10)
    return fig


def plot_network(epochs: pd.DataFrame, links: pd.DataFrame | None, params):
    """Speedup over plain DistDGL (median, IQR over epochs) of the prefetch thread alone and of the
    MassiveGNN buffer on every network model of the sweep graph; the measured round trip and
    throughput of each emulated link under the axis."""

    s = network_rows(speedup_summary(epochs, params.warmup_epochs), params)
    nets = _network_order(s["network"]) if not s.empty else []
    fig, ax = plt.subplots(figsize=(max(5.5, 1.9 * len(nets) + 2), 3.6), layout="constrained")
    lk = _ok(links)
    for k, (lab, color) in enumerate((("prefetch", "#9467bd"), ("massivegnn", "#d62728"))):
        d = s[s["variant"] == lab].set_index("network")
        xs = [i + (k - 0.5) * 0.35 for i, n in enumerate(nets) if n in d.index]
        ys = [d.loc[n, "speedup_median"] for n in nets if n in d.index]
        lo = [d.loc[n, "speedup_median"] - d.loc[n, "speedup_q1"] for n in nets if n in d.index]
        hi = [d.loc[n, "speedup_q3"] - d.loc[n, "speedup_median"] for n in nets if n in d.index]
        ax.bar(xs, ys, 0.35, yerr=[lo, hi], capsize=3, color=color, label=lab)
    ticks = []
    for n in nets:
        r = lk[(lk["network"] == n) & (lk["graph"] == params.sweep_graph)] if not lk.empty else lk
        if not r.empty and pd.notna(r["network_rtt_us_measured"].iloc[0]):
            ticks.append(f"{n}\nRTT {r['network_rtt_us_measured'].iloc[0]:.0f} us, "
                         f"{r['network_gbit_s_measured'].iloc[0]:.1f} Gbit/s")
        else:
            ticks.append(n)
    ax.set_xticks(range(len(nets)), ticks, fontsize=7)
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set_ylabel("speedup over DistDGL (same run)")
    ax.legend(fontsize=8)
    ax.set_title(f"Speedup vs network model · {params.sweep_graph} · {params.machines[0]} machines (measured link "
                 f"under each model)")
    return fig


def hit_rate_series(batches: pd.DataFrame, params) -> pd.DataFrame:
    """Hit rate per mini-batch (all ranks together) on the sweep graph and first network: the
    main run's massivegnn, static and LRU caches (same budget), and from the sweeps run the buffer
    without eviction and with the most eager eviction of its cluster cells (largest alpha, then
    smallest delta);
    ``step`` is the mini-batch's position in that variant's own sequence (epoch x batches per
    epoch + batch)."""
    b = _ok(batches)
    if b.empty:
        return b
    b = b[(b["graph"] == params.sweep_graph) & (b["network"] == params.networks[0])
          & (b["machines"] == params.machines[0]) & (b["model"] == params.models[0]) & (b["policy"] != "none")
          & np.isclose(b["fraction"], params.prefetch_fraction)]
    cells = sorted(((float(a), int(d)) for a, d in params.cluster_grid_cells), key=lambda c: (-c[0], c[1]))
    a0, d0 = cells[0] if cells else (params.alpha, params.delta)
    eager = variant(params.models[0], "massivegnn", params, params.models[0], alpha=a0, delta=d0)["label"]
    noevict = variant(params.models[0], "massivegnn", params, params.models[0], eviction=not params.eviction)["label"]
    main = b[(b["run"] == "main") & b["variant"].isin(["massivegnn", "static", "lru"])]
    sweeps = b[(b["run"] == "sweeps") & b["variant"].isin([eager, noevict])]
    keep = pd.concat([main, sweeps]) if not main.empty or not sweeps.empty else b.iloc[0:0]
    if keep.empty:
        return keep
    g = keep.groupby(["variant", "epoch", "batch"]).agg(hits=("hits", "sum"), halo_misses=("halo_misses", "sum"),
                                                       admitted=("admitted", "sum")).reset_index()
    nb = int(keep["batch"].max()) + 1
    g["step"] = g["epoch"] * nb + g["batch"]
    g["hit_rate"] = g["hits"] / (g["hits"] + g["halo_misses"]).replace(0, np.nan)
    return g.sort_values(["variant", "step"])


def plot_hit_rate(batches: pd.DataFrame, params):
    """Hit rate over mini-batches of MassiveGNN with and without eviction, static and LRU (same
    memory budget), on the sweep run; dots mark MassiveGNN's eviction rounds that admitted nodes."""

    h = hit_rate_series(batches, params)
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    colors = {"massivegnn": "#d62728", "static": "#2ca02c", "lru": "#1f77b4"}
    for lab, d in h.groupby("variant"):
        head = lab.split("-")[0]
        ls = "--" if "noevict" in lab or "-evict" in lab else (":" if lab != head else "-")
        color = colors.get(head, "0.4") if lab == head or ls == "--" else "#ff7f0e"
        ax.plot(d["step"], d["hit_rate"], ls, color=color, label=lab, lw=1.2)
        ev = d[d["admitted"] > 0]
        if head == "massivegnn" and not ev.empty:
            ax.scatter(ev["step"], ev["hit_rate"], s=12, color=color, zorder=3)
    ax.set_xlabel("mini-batch (this variant's own sequence; epochs back to back)")
    ax.set_ylabel("hit rate")
    if not h.empty and h["hit_rate"].notna().any():
        lo, hi = float(h["hit_rate"].min()), float(h["hit_rate"].max())
        ax.set_ylim(max(0.0, lo - 0.1), min(1.0, hi + 0.1))
    else:
        ax.set_ylim(0, 1)
    if not h.empty:
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.text(0.5, 0.5, "no cache variant with remote traffic was measured", ha="center", transform=ax.transAxes)
    ax.set_title(f"Does eviction adapt? {params.sweep_graph} · {params.networks[0]} · fraction "
                 f"{params.prefetch_fraction:g}\n(same memory budget; dots: eviction rounds that admitted nodes)",
                 fontsize=10)
    return fig


def plot_remote_bytes(epochs: pd.DataFrame, params):
    """Per main run and variant of the first model: MB of remote feature rows pulled per epoch (all
    trainers, solid) and MB received by all machines' interfaces per epoch (hatched: features plus
    sampling RPCs, labels, gradient all-reduce)."""

    s = _main_runs(speedup_summary(epochs, params.warmup_epochs), params)
    s = s[(s["model"] == params.models[0]) & s["variant"].isin(POLICY_ORDER)] if not s.empty else s
    runs = _runs_of(s)
    fig, axes = plt.subplots(1, max(1, len(runs)), figsize=(max(6.0, 3.6 * len(runs)), 3.6), squeeze=False,
                             layout="constrained")
    for ax, run in zip(axes[0], runs):
        d = s[s[RUN_KEY].apply(tuple, axis=1) == run]
        d = d.set_index("variant").loc[sorted(d["variant"], key=_policy_rank)]
        x = np.arange(len(d))
        ax.bar(x - 0.2, d["remote_mb_per_epoch"], 0.38, color="#d62728", label="remote feature rows")
        ax.bar(x + 0.2, d["net_mb_per_epoch"], 0.38, color="white", edgecolor="0.3", hatch="///",
               label="interface bytes received")
        ax.set_xticks(x, d.index, rotation=30, ha="right")
        ax.set_ylabel("MB per epoch")
        ax.set_title(f"{run[0]} · {run[1]} machines · {run[2]}")
    if runs:
        axes[0][0].legend(fontsize=7)
    fig.suptitle("Remote traffic per epoch")
    return fig
