"""The findings of ``04-recsys-memory-tiers``: the paper's claims this notebook tests and their verdicts
computed from this run's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib import timing
from studylib.studies.recsys_memory_tiers.measure import footprint_fit, speedup_table
from studylib.tables import ok_rows

FINDINGS = (
    "Full-graph training of GNN recommenders at the paper's scale needs more memory than a server's DRAM",
    "Distributed subgraph training is inefficient: subgraph construction is costly and subgraphs overlap heavily",
    "One large-memory machine beats distributed training by a large margin, more so for deeper models",
    "The dominant kernels (SpMM, SDDMM) are sparse and memory-bound: a slower tier's bandwidth sets the slowdown",
    "Properly configured (hot data in DRAM in front of the slow tier), the large tier recovers most of DRAM speed",
)


def evaluate_findings(epochs: pd.DataFrame | None, redund: pd.DataFrame | None, tier_epochs: pd.DataFrame | None,
                      tier_kernels: pd.DataFrame | None, foot: pd.DataFrame | None, paper: pd.DataFrame | None,
                      dram_bytes: int, distributed_note: str = "") -> pd.DataFrame:
    """The paper's findings (Hu et al., arXiv 2207.11918) checked against this run's tables.

    One row per finding of :data:`FINDINGS`: ``finding``, ``verdict`` (``reproduced``,
    ``partly``, ``not reproduced``, ``not measured``) and ``evidence`` (the numbers). Thresholds:
    F2 -- sampling (subgraph construction) at least 25% of the distributed step and input-node
    redundancy of the input layer at least 2 at two or more layers; F3 -- reproduced when the single
    machine is faster by at least 1.5x ("large margin") for every model and machine count and its
    advantage is larger at the most layers than at one, partly when either holds somewhere; F4 -- SpMM + SDDMM + gather the largest class group of the DRAM step and the
    tiers' slowdowns ordered inversely to their gather bandwidth; F5 -- the hot/cold split recovers at
    least half of the slow tier's extra time. Verdicts come from the numbers only.
    """
    out = []

    def add(i, verdict, evidence):
        out.append({"finding": FINDINGS[i], "verdict": verdict, "evidence": evidence})

    # F1 memory footprint
    if foot is not None and not foot.empty and paper is not None and not paper.empty:
        f = ok_rows(foot)
        measured_over = int((f["footprint_bytes"] > dram_bytes).sum())
        oom = int((foot.get("status", pd.Series(dtype=str)) == "oom").sum())
        over = paper[paper["calibrated_bytes"] > dram_bytes]
        worst = paper.sort_values("calibrated_bytes").iloc[-1]
        fit = footprint_fit(foot)
        ev = (f"measured on the synthetic sweep up to {int(f['num_train'].max()):,} interactions: at most "
              f"{f['footprint_bytes'].max() / 2**30:.2f} GiB (DRAM {dram_bytes / 2**30:.0f} GiB); tensor-count model "
              f"calibration (measured/predicted) " + ", ".join(f"{r.model} {r.calibration:.2f}" for r in fit.itertuples())
              + f"; extrapolated to the paper's datasets, {len(over)} of {len(paper)} (dataset, model, layers, width) "
              f"settings exceed this machine's DRAM, the largest {worst['dataset']} {worst['model']} "
              f"L={int(worst['num_layers'])} d={int(worst['dim'])}: {worst['calibrated_bytes'] / 2**30:.1f} GiB")
        if measured_over or oom:
            add(0, "reproduced", ev + f"; {measured_over + oom} measured configuration(s) exceeded DRAM")
        elif len(over):
            add(0, "partly", ev + " (extrapolated, not measured: the sweep stayed within DRAM)")
        else:
            add(0, "not reproduced", ev)
    else:
        add(0, "not measured", "no footprint sweep")

    # F2 subgraph construction cost and redundancy
    has_dist = epochs is not None and not epochs.empty and (epochs["num_machines"] > 1).any()
    if has_dist or (redund is not None and not redund.empty):
        ev, ok = [], []
        if has_dist:
            d = epochs[epochs["num_machines"] > 1]
            share = d["sampling_s"] / d["step_s"]
            prep = (d["sampling_s"] + d["fetch_s"]) / d["step_s"]
            ok.append(bool(share.median() >= 0.25))
            ev.append(f"distributed steps: sampling median {share.median():.0%} of the step (range {share.min():.0%}-"
                      f"{share.max():.0%}), sampling + fetch median {prep.median():.0%}")
        if redund is not None and not redund.empty:
            r = redund[redund["layer"] == 1]
            hi = r.groupby("num_layers")["node_redundancy"].max()
            ok.append(bool((hi >= 2).sum() >= 2))
            ev.append("input-layer node redundancy by layers: " + ", ".join(f"L{k}: {v:.1f}" for k, v in hi.items())
                      + "; edge redundancy: " + ", ".join(f"L{k}: {v:.1f}" for k, v in
                                                         r.groupby("num_layers")["edge_redundancy"].max().items()))
        verdict = "reproduced" if all(ok) and len(ok) == 2 else ("partly" if any(ok) else "not reproduced")
        if not has_dist:
            ev.append(f"distributed runs: not measured ({distributed_note or 'no cluster rows'})")
        add(1, verdict, "; ".join(ev))
    else:
        add(1, "not measured", distributed_note or "no distributed or redundancy rows")

    # F3 single machine vs distributed, by depth
    if has_dist:
        sp = speedup_table(epochs)
        base_dim = epochs.groupby("dim").size().idxmax()
        s = sp[sp["dim"] == base_dim]
        adv = s.groupby(["model", "num_machines", "num_layers"])["single_machine_advantage"].median().unstack(
            "num_layers")
        large_all = bool((s["single_machine_advantage"] >= 1.5).all())
        large_any = bool((s["single_machine_advantage"] >= 1.5).any())
        grows = bool((adv.iloc[:, -1] > adv.iloc[:, 0]).all()) if adv.shape[1] > 1 else False
        ev = "distributed epoch / single-machine epoch (> 1: the single machine is faster): " + "; ".join(
            f"{m} {int(nm)} machines " + ", ".join(f"L{int(L)} {v:.2f}x" for L, v in row.items())
            for (m, nm), row in adv.iterrows())
        verdict = "reproduced" if large_all and grows else ("partly" if large_any or grows else "not reproduced")
        add(2, verdict, ev + ("" if large_all else "; the single machine is not 1.5x faster everywhere")
            + ("" if grows else "; its advantage does not grow with depth"))
    else:
        add(2, "not measured", f"distributed runs did not happen: {distributed_note or 'no cluster rows'}")

    # F4 sparse kernels dominate; slowdown follows bandwidth
    if tier_kernels is not None and not tier_kernels.empty and tier_epochs is not None and not tier_epochs.empty:
        k = tier_kernels[tier_kernels["tier"] == "dram"]
        sparse = k[k["kernel_class"].isin([timing.SPMM, timing.SDDMM, timing.INDEXING])].groupby(
            ["dataset", "model"])["share"].sum()
        dense = k[k["kernel_class"] == timing.GEMM].groupby(["dataset", "model"])["share"].sum().reindex(
            sparse.index).fillna(0)
        other = k[~k["kernel_class"].isin([timing.SPMM, timing.SDDMM, timing.INDEXING, timing.GEMM])].groupby(
            ["dataset", "model", "kernel_class"])["share"].sum().groupby(["dataset", "model"]).max().reindex(
            sparse.index).fillna(0)
        dominant = bool(((sparse > dense) & (sparse > other)).all())
        te = tier_epochs.dropna(subset=["gather_bytes_per_s"]) if "gather_bytes_per_s" in tier_epochs else pd.DataFrame()
        te = te[te["tier"] != "hot_cold"] if not te.empty else te
        order_ok = []
        for _, g in te.groupby(["dataset", "model"]):
            dram_bw = g.loc[g["tier"] == "dram", "gather_bytes_per_s"]
            slow = g[g["gather_bytes_per_s"] < 0.5 * (dram_bw.iloc[0] if len(dram_bw) else np.inf)]
            if slow.empty:
                continue  # no tier here is much slower than DRAM: nothing to order
            # the tier with the least bandwidth must be the one with the largest slowdown, and slower than DRAM
            worst = g.loc[g["gather_bytes_per_s"].idxmin()]
            order_ok.append(bool(worst["slowdown"] >= g["slowdown"].max() and worst["slowdown"] > 1.1))
        ev = ("DRAM step, share of SpMM + SDDMM + gather: " + ", ".join(f"{m} {ds[:16]} {v:.0%}" for (ds, m), v in
                                                                         sparse.items())
              + "; GEMM: " + ", ".join(f"{v:.0%}" for v in dense) + "; largest other class: "
              + ", ".join(f"{v:.0%}" for v in other) + "; slowdown per tier: "
              + "; ".join(f"{r.model} {r.dataset[:16]} {r.tier} {r.slowdown:.2f}x at gather "
                          f"{r.gather_bytes_per_s / 1e9:.3g} GB/s" for r in te.itertuples()))
        if not order_ok:
            ev += " (no tier measured here had less than half of DRAM's gather bandwidth)"
        ordered = bool(order_ok) and all(order_ok)
        verdict = "reproduced" if dominant and ordered else ("partly" if dominant or ordered else "not reproduced")
        add(3, verdict, ev)
    else:
        add(3, "not measured", "no memory-tier rows")

    # F5 hot/cold recovers DRAM speed
    if tier_epochs is not None and not tier_epochs.empty and {"hot_cold", "mmap_cgroup", "dram"} <= set(tier_epochs["tier"]):
        w = tier_epochs.pivot_table(index=["dataset", "model"], columns="tier", values="step_s")
        hr = tier_epochs[tier_epochs["tier"] == "hot_cold"].set_index(["dataset", "model"])["hit_rate"]
        extra = w["mmap_cgroup"] / w["dram"] - 1
        rec = (w["mmap_cgroup"] - w["hot_cold"]) / (w["mmap_cgroup"] - w["dram"])
        valid = extra > 0.1  # the slow tier must be measurably slower than DRAM for a recovery to mean anything
        ev = "; ".join(f"{m} {ds[:16]}: slow tier {r['mmap_cgroup'] / r['dram']:.2f}x DRAM, hot/cold "
                       f"{r['hot_cold'] / r['dram']:.2f}x" + (f" (recovers {rec[(ds, m)]:.0%} of the extra time" if
                                                              valid[(ds, m)] else " (the slow tier was not slower")
                       + f"; hit rate {hr.get((ds, m), float('nan')):.0%})" for (ds, m), r in w.iterrows())
        ok = rec[valid] >= 0.5
        if not valid.any():
            verdict = "not measured"
            ev += "; the emulated slow tier was not measurably slower than DRAM here (its files fit in the page cache)"
        else:
            verdict = "reproduced" if ok.all() else ("partly" if ok.any() else "not reproduced")
        add(4, verdict, ev)
    else:
        add(4, "not measured", "hot/cold, slow tier or DRAM tier not run (see the tier status table)")
    return pd.DataFrame(out)
