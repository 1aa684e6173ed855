"""The findings of ``05-parallelism-analysis``: the paper's claims this notebook tests and their verdicts
computed from this run's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib import timing
from studylib.studies.parallelism_analysis import work_depth as analysis
from studylib.studies.parallelism_analysis.measure import FRAMEWORK_LABELS, MODEL_LABELS, STEP_CONFIG, verdict_for_r2


def evaluate_findings(summary: pd.DataFrame | None, fits: pd.DataFrame | None, fits_fw: pd.DataFrame | None,
                      split: pd.DataFrame | None, scaling: pd.DataFrame | None, partitions: pd.DataFrame | None,
                      comm: pd.DataFrame | None, measured_comm: pd.DataFrame | None, comm_note: str,
                      hgnn: pd.DataFrame | None,
                      hgnn_note: str, roof: pd.DataFrame | None = None, limits_note: str = "",
                      load: float | None = None, cores: int | None = None) -> pd.DataFrame:
    """The paper's claims (it has no experiments of its own) checked against this run's tables.

    One row per finding: ``finding``, ``verdict`` (``reproduced`` / ``partly`` / ``not reproduced``
    / ``not measured``), ``evidence`` (the numbers). The first findings are one per model: does
    training-step time follow the counted work with one machine constant (log-log R^2 of the
    ``work`` fit at least :data:`R2_EXPLAINS`: reproduced; at least :data:`R2_PARTLY`: partly)?
    Every configuration measured is in the fit. ``load`` (median 1-minute load average during the
    step timings) and ``cores`` (logical cores) add a caveat to the timing-based findings when
    other processes competed for the cores (load above the core count).
    """
    out = []
    caveat = ""
    if load is not None and cores and np.isfinite(load) and load > cores:
        caveat = (f" [caveat: the timings ran under a load average of {load:.1f} on {cores} logical cores, i.e. other "
                  f"processes competed for the cores]")

    def add(finding, verdict, evidence, timed=False):
        out.append({"finding": finding, "verdict": verdict, "evidence": evidence + (caveat if timed else "")})

    # F1 (per model): time proportional to work
    if fits is not None and not fits.empty:
        for model in [m for m in analysis.MODELS if m in set(fits["model"])]:
            f = fits[fits["model"] == model].set_index("fit")
            w = f.loc["work"]
            v = verdict_for_r2(w["r2_log"])
            verdict = {"explains": "reproduced", "partly": "partly", "does not explain": "not reproduced"}.get(v, v)
            ev = (f"{int(w['points'])} configurations, one constant c = {w['c_s_per_flop'] * 1e9:.3g} ns/flop: "
                  f"R² (log-log) = {w['r2_log']:.3f}, median |error| {w['median_abs_error']:.0%}, measured/predicted "
                  f"{w['min_ratio']:.2f}-{w['max_ratio']:.2f}; paper O-term instead of counted work: R² = "
                  f"{f.loc['paper_term', 'r2_log']:.3f}; with a fixed overhead t0 = {f.loc['work+overhead', 't0_s'] * 1e3:.2f} "
                  f"ms: R² = {f.loc['work+overhead', 'r2_log']:.3f}; flops + bytes + t0: R² = "
                  f"{f.loc['roofline-sum', 'r2_log']:.3f}")
            if fits_fw is not None and not fits_fw.empty:
                per = fits_fw[(fits_fw["model"] == model) & (fits_fw["fit"] == "work")]
                ev += "; per framework: " + ", ".join(
                    f"{FRAMEWORK_LABELS.get(r.framework, r.framework)} R² = {r.r2_log:.3f}" for r in per.itertuples())
            add(f"{MODEL_LABELS[model]}: training-step time is proportional to the work W = O(Lmk + Lnk²) "
                f"(the work-depth model {v} the measurements here)", verdict, ev, timed=True)
    else:
        add("Training-step time is proportional to the work W = O(Lmk + Lnk²)", "not measured", "no step times")

    # F2: the dense update dominates work when k exceeds the average degree -- does time follow?
    f2 = ("The dense update (O(nk²)) outweighs the sparse aggregation (O(mk)) when k exceeds the average degree, "
          "in work and in measured time")
    if split is not None and not split.empty:
        w = split.pivot_table(index=STEP_CONFIG, columns="bucket", values=["time_share", "flop_share"])
        w = w.reset_index()
        rows = []
        for _, r in w.iterrows():
            rows.append({"pred_dense_wins": r[("flop_share", "dense")] > r[("flop_share", "sparse")],
                         "meas_dense_wins": r[("time_share", "dense")] > r[("time_share", "sparse")],
                         "sparse_time": r[("time_share", "sparse")], "sparse_flops": r[("flop_share", "sparse")]})
        d = pd.DataFrame(rows)
        agree = int((d["pred_dense_wins"] == d["meas_dense_wins"]).sum())
        verdict = "reproduced" if agree == len(d) else ("partly" if agree > 0 else "not reproduced")
        add(f2, verdict, f"the larger of dense vs sparse matches between predicted flops and measured time in {agree} of "
                         f"{len(d)} profiled configurations; sparse kernels: median {d['sparse_flops'].median():.0%} of "
                         f"predicted flops but {d['sparse_time'].median():.0%} of measured time", timed=True)
    else:
        add(f2, "not measured", "no kernel profile")

    # F3: W/D >> P, so P threads give ~P speedup (Brent)
    f3 = "Available parallelism W/D far exceeds the cores, so P threads give close to P-fold speedup (Brent's bound)"
    if scaling is not None and not scaling.empty:
        P = int(scaling["threads"].iloc[0])
        eff = scaling["efficiency"]
        good = int((eff >= 0.8).sum())
        verdict = "reproduced" if good == len(eff) else ("partly" if good > 0 else "not reproduced")
        add(f3, verdict, f"W/D from {scaling['parallelism'].min():.3g} to {scaling['parallelism'].max():.3g} (>> {P}); "
                         f"speedup with {P} threads: median {scaling['speedup'].median():.2f} (efficiency "
                         f"{eff.min():.0%}-{eff.max():.0%}); efficiency >= 80% in {good} of {len(eff)} configurations",
            timed=True)
    else:
        add(f3, "not measured", "thread scaling not run (or only one thread available)")

    # F4: communication grows with the cut, bounded by O(mk)
    f4 = ("Communication of partitioned training follows the edge cut: it grows with the number of partitions "
          "and stays below the O(mk) bound; METIS cuts less than random partitioning")
    if partitions is not None and not partitions.empty:
        ev, oks = [], []
        for gname, g in partitions.groupby("graph"):
            for method, gm in g.groupby("method"):
                gm = gm.sort_values("num_parts")
                inc = bool(np.all(np.diff(gm["cut_edges"].to_numpy()) >= 0))
                below = bool((gm["cut_edges"] <= gm["m"]).all() and (gm["halo_nodes"] <= gm["cut_edges"]).all())
                oks.append(inc and below)
                ev.append(f"{gname} {method}: cut fraction " + " → ".join(f"{v:.2f}" for v in gm["edge_cut_fraction"]))
            me = g[g["method"] == "metis"].set_index("num_parts")["cut_edges"]
            ra = g[g["method"] == "random"].set_index("num_parts")["cut_edges"]
            both = me.index.intersection(ra.index)
            oks.append(bool((me[both] <= ra[both]).all()))
            if "dgl_halo_nodes" in g:
                chk = g.dropna(subset=["dgl_halo_nodes"])
                if not chk.empty:
                    same = bool((chk["dgl_halo_nodes"] == chk["halo_nodes_on_dgl_assignment"]).all())
                    oks.append(same)
                    ev.append(f"{gname}: DistDGL's halo counts {'equal' if same else 'differ from'} the predicted ones "
                              f"on its own partitions ({', '.join(str(int(v)) for v in chk['dgl_halo_nodes'])})")
        verdict = "reproduced" if all(oks) else ("partly" if any(oks) else "not reproduced")
        add(f4, verdict, "; ".join(ev) + f" (P = {', '.join(str(int(p)) for p in sorted(partitions['num_parts'].unique()))})")
    else:
        add(f4, "not measured", "no partitions")

    # F5: predicted vs measured bytes (02)
    f5 = ("The halo vertices predicted from a METIS partition (which set the bytes of each layer) match those of "
          "02-distributed-caching's DistDGL partitions (within 10%)")
    if measured_comm is None or measured_comm.empty:
        add(f5, "not measured", comm_note)
    elif partitions is None or partitions.empty:
        add(f5, "not measured", f"{comm_note}; no partitions here to compare with")
    else:
        mine = partitions[partitions["method"] == "metis"].set_index(["graph", "num_parts"])["halo_nodes"]
        theirs = measured_comm[measured_comm["quantity"] == "halo_nodes"]
        ratios, ev = [], []
        for r in theirs.itertuples():
            if (r.graph, r.num_parts) in mine.index:
                q = r.value / mine[(r.graph, r.num_parts)]
                ratios.append(q)
                ev.append(f"{r.graph} P={r.num_parts}: 02 {int(r.value)} vs predicted {int(mine[(r.graph, r.num_parts)])} "
                          f"halo vertices")
        rb = measured_comm[measured_comm["quantity"] == "remote_bytes_per_epoch"]
        if not rb.empty:
            ev.append("02's mini-batch remote feature traffic per epoch: " + ", ".join(
                f"{r.graph} P={r.num_parts}: {r.value / 2**20:.1f} MiB" for r in rb.itertuples())
                + " (sampled mini-batches fetch a subset of the halo per batch, so these bytes are shown, not fitted)")
        if not ratios:
            add(f5, "not measured", f"{comm_note}; none of its (graph, partitions) were partitioned here"
                + ("; " + "; ".join(ev) if ev else ""))
        else:
            within = sum(0.9 <= x <= 1.1 for x in ratios)
            verdict = "reproduced" if within == len(ratios) else ("partly" if within else "not reproduced")
            add(f5, verdict, f"{comm_note}; " + "; ".join(ev))

    # F6: HGNN sums over relations explain 01's steps
    f6 = "HGNN work summed over relations / metapaths orders 01-hgnn-training's models as their measured steps"
    if hgnn is None or hgnn.empty:
        add(f6, "not measured", hgnn_note)
    else:
        st = hgnn[hgnn["region"] == timing.STEP_TOTAL]
        ev, agree, total = [], 0, 0
        for (fw, ds), g in st.groupby(["framework", "dataset"]):
            if len(g) < 2:
                continue
            pr = g.sort_values("predicted_flops")["model"].tolist()
            me = g.sort_values("measured_s")["model"].tolist()
            total += 1
            agree += int(pr == me)
            ev.append(f"{fw}/{ds}: predicted order {' < '.join(pr)}, measured {' < '.join(me)}")
        na = hgnn[hgnn["region"] == timing.NEIGHBOR_AGGREGATION].set_index(["model", "framework", "dataset"])
        fwd = hgnn[hgnn["region"].isin(["feature_projection", "neighbor_aggregation", "semantic_fusion"])]
        tot = fwd.groupby(["model", "framework", "dataset"])[["measured_s", "predicted_flops"]].sum()
        if not na.empty:
            sh_t = (na["measured_s"] / tot["measured_s"]).median()
            sh_f = (na["predicted_flops"] / tot["predicted_flops"]).median()
            ev.append(f"neighbour aggregation: median {sh_f:.0%} of predicted forward flops, {sh_t:.0%} of measured "
                      f"forward time")
        verdict = "not measured" if total == 0 else (
            "reproduced" if agree == total else ("partly" if agree > 0 else "not reproduced"))
        add(f6, verdict, f"{hgnn_note}; " + "; ".join(ev))

    # F7: roofline with 00-hardware
    f7 = "Where the work model fails, the configuration is bandwidth bound (roofline with 00-hardware's peaks)"
    if roof is not None and "bound" in roof and fits is not None:
        add(f7, "partly" if (roof["bound"] == "bandwidth").any() else "not reproduced",
            f"{int((roof['bound'] == 'bandwidth').sum())} of {len(roof)} configurations have intensity below the "
            f"machine balance {float(roof['balance'].iloc[0]):.2f} flop/byte; measured / roofline time median "
            f"{roof['measured_over_roofline'].median():.1f}")
    else:
        add(f7, "not measured", limits_note or "00-hardware's limits are absent")
    return pd.DataFrame(out)
