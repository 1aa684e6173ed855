"""The findings of ``05-parallelism-analysis`` (Besta, Hoefler, *Parallel and Distributed Graph Neural
Networks: An In-Depth Concurrency Analysis*, IEEE TPAMI 46(5), 2024, arXiv 2205.09702), declared as
data (:class:`studylib.findings.Finding`). The paper has no experiments: each finding says whether
one of its predictions holds on this machine.

``declare(notes)`` returns the declarations (``notes`` names why a table from another notebook is
absent: keys ``communication`` (02), ``hgnn`` (01), ``limits`` (00)); :func:`tables` gathers the
tables they read. Every criterion's thresholds are module constants, fixed before measuring.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from studylib import findings as fd
from studylib import timing
from studylib.studies.parallelism_analysis import work_depth as analysis
from studylib.studies.parallelism_analysis.measure import MODEL_LABELS, STEP_CONFIG

#: Time follows work: the log-log slope of step time against counted work over the upper half of
#: the configurations (by work, where the fixed per-step cost weighs least) is reproduced within
#: [EXPONENT_LOW, EXPONENT_HIGH], partly within [EXPONENT_PARTLY_LOW, EXPONENT_PARTLY_HIGH].
EXPONENT_LOW, EXPONENT_HIGH = 0.8, 1.2
EXPONENT_PARTLY_LOW, EXPONENT_PARTLY_HIGH = 0.6, 1.4
#: Fewest configurations in the upper half for a slope.
MIN_UPPER_POINTS = 3
#: Brent: P threads give "close to P-fold" speedup when the parallel efficiency is at least this.
BRENT_EFFICIENCY = 0.8
#: DistDGL's stored halo vertices agree with the predicted ones within this relative tolerance.
HALO_TOLERANCE = 0.05
#: 02's DistDGL partitions' halo vertices agree with the predicted ones within this tolerance.
HALO_02_TOLERANCE = 0.10
#: The work model "fails" on a configuration whose measured time is more than this factor off the
#: time its model's fitted t = c W predicts (either way).
WORK_FIT_FACTOR = 2.0
#: Bandwidth-bound explains the failures when at least this share of the failing configurations
#: lies below the machine balance (the roofline's ridge point), and a larger share than of the
#: configurations the model fits.
BANDWIDTH_SHARE = 0.8


def tables(*, step_times=None, summary=None, fits=None, split=None, kernel_profile=None, thread_scaling=None,
           scaling=None, partitions=None, measured_comm=None, hgnn=None, roof=None, residuals=None) -> dict:
    """The tables the findings read, by name (``None``: not measured). ``summary`` is
    ``step_summary``, ``fits`` / ``residuals`` come from ``fit_models(summary, ("model",))``,
    ``split`` from ``profile_split``, ``scaling`` from ``thread_scaling_summary``, ``roof`` from
    ``roofline_table`` (with 00's limits: a ``bound`` column), the rest are raw result tables."""
    return {"step_times": step_times, "summary": summary, "fits": fits, "split": split,
            "kernel_profile": kernel_profile, "thread_scaling": thread_scaling, "scaling": scaling,
            "partitions": partitions, "measured_comm": measured_comm, "hgnn": hgnn, "roof": roof,
            "residuals": residuals}


def _load_text(t: fd.Tables) -> str:
    st = t.get("step_times")
    if st is None or "load_1min" not in st or st["load_1min"].dropna().empty:
        return ""
    return f"; 1-minute load average during the step timings: median {st['load_1min'].median():.1f}"


# -- 1 (per model): time proportional to work ----------------------------------------------------

def _in_band(value: float, th: dict) -> str:
    if th["low"] <= value <= th["high"]:
        return fd.REPRODUCED
    if th["partly_low"] <= value <= th["partly_high"]:
        return fd.PARTLY
    return fd.NOT_REPRODUCED


def _exponent_measure(model: str):
    def measure(t: fd.Tables) -> fd.Measured:
        s = t["summary"]
        s = s[s["model"] == model].dropna(subset=["median_s", "flops"])
        if s.empty:
            raise fd.NotMeasured(f"{MODEL_LABELS.get(model, model)} was not measured")
        upper = s[s["flops"] >= s["flops"].median()]
        if len(upper) < MIN_UPPER_POINTS or upper["flops"].nunique() < 2:
            raise fd.NotMeasured(f"{len(upper)} configurations in the upper half by work (need {MIN_UPPER_POINTS} "
                                 "with different work)")
        lw, lt = np.log(upper["flops"].to_numpy(float)), np.log(upper["median_s"].to_numpy(float))
        slope = float(np.polyfit(lw, lt, 1)[0])
        ev = (f"log-log slope of step time vs counted work over the upper half by work ({len(upper)} of {len(s)} "
              f"configurations, W {upper['flops'].min():.3g}-{upper['flops'].max():.3g} flop): {slope:.2f}")
        f = t.get("fits")
        if f is not None and not f.empty:
            f = f[f["model"] == model].set_index("fit")
            if "work" in f.index:
                ev += (f"; plain fit t = c W over all configurations: R² (log-log) = {f.loc['work', 'r2_log']:.3f}, "
                       f"measured/predicted {f.loc['work', 'min_ratio']:.2f}-{f.loc['work', 'max_ratio']:.2f}")
            if "work+overhead" in f.index:
                t0, c = float(f.loc["work+overhead", "t0_s"]), float(f.loc["work+overhead", "c_s_per_flop"])
                share = t0 / upper["median_s"].median()
                ev += (f"; with a fixed cost t = t0 + c W: t0 = {t0 * 1e3:.2f} ms, c = {c * 1e9:.3g} ns/flop, "
                       f"R² = {f.loc['work+overhead', 'r2_log']:.3f}; t0 is {share:.0%} of the upper half's median "
                       f"step")
        st = t.get("step_times")
        failed = fd.failed_counts(st[st["model"] == model]) if st is not None and "model" in st else {}
        return fd.Measured(slope, ev + _load_text(t), ours=f"exponent {slope:.2f}",
                           noisy=fd.count_noisy(upper), failed=failed)
    return measure


def _exponent_finding(model: str) -> fd.Finding:
    return fd.Finding(
        id=f"time-follows-work-{model}",
        claim=f"{MODEL_LABELS[model]}: training-step time is proportional to the work W = O(Lmk + Lnk²)",
        where="work of full-batch training", paper="t ∝ W (exponent 1, asymptotically)",
        tables=("summary",), measure=_exponent_measure(model),
        criterion=fd.custom(
            "exponent of step time vs work over the upper half of the configurations by work",
            f"reproduced if within [{EXPONENT_LOW}, {EXPONENT_HIGH}]; partly if within "
            f"[{EXPONENT_PARTLY_LOW}, {EXPONENT_PARTLY_HIGH}]; else not reproduced",
            _in_band, fd.MEASURED_VERDICTS, low=EXPONENT_LOW, high=EXPONENT_HIGH,
            partly_low=EXPONENT_PARTLY_LOW, partly_high=EXPONENT_PARTLY_HIGH),
    )


# -- 2: dense update vs sparse aggregation -------------------------------------------------------

def _dense_sparse(t: fd.Tables) -> fd.Measured:
    w = t["split"].pivot_table(index=STEP_CONFIG, columns="bucket", values=["time_share", "flop_share"])
    need = [(v, b) for v in ("time_share", "flop_share") for b in ("dense", "sparse")]
    if any(c not in w.columns for c in need):
        raise fd.NotMeasured("the kernel profile lacks a dense or a sparse bucket")
    pred = w[("flop_share", "dense")] > w[("flop_share", "sparse")]
    meas = w[("time_share", "dense")] > w[("time_share", "sparse")]
    flags = (pred == meas).tolist()
    ev = (f"the larger of dense vs sparse matches between predicted flops and measured time in {sum(flags)} of "
          f"{len(flags)} profiled configurations; sparse kernels: median {w[('flop_share', 'sparse')].median():.0%} "
          f"of predicted flops but {w[('time_share', 'sparse')].median():.0%} of measured time")
    return fd.Measured(flags, ev, noisy=0)


DENSE_SPARSE = fd.Finding(
    id="dense-vs-sparse",
    claim="The dense update (O(nk²)) outweighs the sparse aggregation (O(mk)) when k exceeds the average degree, "
          "in work and in measured time",
    where="work of the kernels", tables=("split", "kernel_profile"), measure=_dense_sparse,
    criterion=fd.all_of("profiled configurations where the larger of dense vs sparse agrees between predicted "
                        "flops and measured time"),
)


# -- 3: Brent's bound ----------------------------------------------------------------------------

def _brent(t: fd.Tables) -> fd.Measured:
    s = t["scaling"].dropna(subset=["efficiency"])
    if s.empty:
        raise fd.NotMeasured("thread scaling has no configuration with two thread counts")
    P = int(s["threads"].iloc[0])
    eff = s["efficiency"]
    flags = (eff >= BRENT_EFFICIENCY).tolist()
    raw = t.get("thread_scaling")
    noisy = fd.count_noisy(fd.summarize_by(raw, STEP_CONFIG + ["threads"])) if raw is not None else 0
    ev = (f"W/D from {s['parallelism'].min():.3g} to {s['parallelism'].max():.3g} (>> {P}); speedup with {P} threads: "
          f"median {s['speedup'].median():.2f} (efficiency {eff.min():.0%}-{eff.max():.0%}); efficiency >= "
          f"{BRENT_EFFICIENCY:.0%} in {sum(flags)} of {len(flags)} configurations")
    return fd.Measured(flags, ev + _load_text(t), noisy=noisy)


BRENT = fd.Finding(
    id="brent-speedup",
    claim="Available parallelism W/D far exceeds the cores, so P threads give close to P-fold speedup "
          "(Brent's bound)",
    where="work-depth, Brent", paper="T_P <= W/P + D", tables=("scaling",), measure=_brent,
    criterion=fd.all_of(f"configurations whose parallel efficiency with all threads is >= {BRENT_EFFICIENCY:.0%}"),
)


# -- 4: communication follows the partition ------------------------------------------------------

def _halo(t: fd.Tables) -> fd.Measured:
    parts = fd.ok_rows(t["partitions"])
    if "dgl_halo_nodes" not in parts or parts["dgl_halo_nodes"].dropna().empty:
        raise fd.NotMeasured("no DistDGL partition to compare with (dgl_partition_check = False or P = 1 only)")
    chk = parts.dropna(subset=["dgl_halo_nodes"])
    pred = chk["halo_nodes_on_dgl_assignment"].astype(float)
    rel = (chk["dgl_halo_nodes"].astype(float) - pred).abs() / pred.clip(lower=1)
    flags = (rel <= HALO_TOLERANCE).tolist()
    ev = [f"DistDGL's stored halo vertices within {HALO_TOLERANCE:.0%} of the predicted ones on its own partitions "
          f"in {sum(flags)} of {len(flags)} (graph, P): "
          + ", ".join(f"{r.graph} P={int(r.num_parts)}: {int(r.dgl_halo_nodes)} vs {int(r.halo_nodes_on_dgl_assignment)}"
                      for r in chk.itertuples())]
    for (gname, method), gm in parts.groupby(["graph", "method"]):
        gm = gm.sort_values("num_parts")
        ev.append(f"{gname} {method}: cut fraction " + " → ".join(f"{v:.2f}" for v in gm["edge_cut_fraction"])
                  + f" (P = {', '.join(str(int(p)) for p in gm['num_parts'])})")
    for gname, g in parts.groupby("graph"):
        me = g[g["method"] == "metis"].set_index("num_parts")["halo_nodes"]
        ra = g[g["method"] == "random"].set_index("num_parts")["halo_nodes"]
        both = me.index.intersection(ra.index)
        if len(both):
            ratio = (me[both] / ra[both].clip(lower=1))
            ev.append(f"{gname}: METIS halo / random halo {ratio.min():.2f}-{ratio.max():.2f}")
    return fd.Measured(flags, "; ".join(ev), noisy=0)


HALO_MATCHES_DISTDGL = fd.Finding(
    id="communication-follows-partition",
    claim="Communication of partitioned training follows the partition: the halo vertices predicted from it "
          "(which set the bytes of every layer) are those a real system (DistDGL) stores for it",
    where="distributed kernels", paper="volume set by the cut, O(mk) at most",
    tables=("partitions",), measure=_halo,
    criterion=fd.fraction_of(f"(graph, P) whose DistDGL halo count is within {HALO_TOLERANCE:.0%} of the prediction",
                             reproduced=1.0, partly=0.5),
)


# -- 5: 02's partitions ----------------------------------------------------------------------------

def _halo_02(note: str):
    def measure(t: fd.Tables) -> fd.Measured:
        mc = t.get("measured_comm")
        if mc is None or mc.empty:
            raise fd.NotMeasured(note or "02-distributed-caching's results are absent")
        mine = fd.ok_rows(t["partitions"])
        mine = mine[mine["method"] == "metis"].set_index(["graph", "num_parts"])["halo_nodes"]
        flags, ev = [], []
        for r in mc[mc["quantity"] == "halo_nodes"].itertuples():
            if (r.graph, r.num_parts) in mine.index:
                p = float(mine[(r.graph, r.num_parts)])
                flags.append(abs(r.value / max(p, 1) - 1) <= HALO_02_TOLERANCE)
                ev.append(f"{r.graph} P={r.num_parts}: 02 {int(r.value)} vs predicted {int(p)} halo vertices")
        rb = mc[mc["quantity"] == "remote_bytes_per_epoch"]
        if not rb.empty:
            ev.append("02's mini-batch remote feature traffic per epoch: " + ", ".join(
                f"{r.graph} P={r.num_parts}: {r.value / 2**20:.1f} MiB" for r in rb.itertuples())
                + " (sampled mini-batches fetch a subset of the halo per batch: shown, not fitted)")
        if not flags:
            raise fd.NotMeasured("none of 02-distributed-caching's (graph, partitions) were partitioned here"
                                 + ("; " + "; ".join(ev) if ev else ""))
        return fd.Measured(flags, (f"{note}; " if note else "") + "; ".join(ev), noisy=0)
    return measure


def _halo_02_finding(note: str) -> fd.Finding:
    return fd.Finding(
        id="halo-matches-02",
        claim="The halo vertices predicted from a METIS partition match those of 02-distributed-caching's DistDGL "
              "partitions",
        where="distributed kernels", tables=("partitions",), measure=_halo_02(note),
        criterion=fd.all_of(f"(graph, P) of 02 whose halo count is within {HALO_02_TOLERANCE:.0%} of the prediction"),
    )


# -- 6: HGNN sums over relations -------------------------------------------------------------------

def _hgnn(note: str):
    def measure(t: fd.Tables) -> fd.Measured:
        hgnn = t.get("hgnn")
        if hgnn is None or hgnn.empty:
            raise fd.NotMeasured(note or "01-hgnn-training's results are absent")
        st = hgnn[hgnn["region"] == timing.STEP_TOTAL]
        flags, ev = [], []
        for (fw, ds), g in st.groupby(["framework", "dataset"]):
            if len(g) < 2:
                continue
            pr = g.sort_values("predicted_flops")["model"].tolist()
            me = g.sort_values("measured_s")["model"].tolist()
            flags.append(pr == me)
            ev.append(f"{fw}/{ds}: predicted order {' < '.join(pr)}, measured {' < '.join(me)}")
        na = hgnn[hgnn["region"] == timing.NEIGHBOR_AGGREGATION].set_index(["model", "framework", "dataset"])
        fwd = hgnn[hgnn["region"].isin(["feature_projection", "neighbor_aggregation", "semantic_fusion"])]
        tot = fwd.groupby(["model", "framework", "dataset"])[["measured_s", "predicted_flops"]].sum()
        if not na.empty:
            ev.append(f"neighbour aggregation: median {(na['predicted_flops'] / tot['predicted_flops']).median():.0%} "
                      f"of predicted forward flops, {(na['measured_s'] / tot['measured_s']).median():.0%} of "
                      "measured forward time")
        if not flags:
            raise fd.NotMeasured(f"{note}; fewer than two models per framework and dataset")
        return fd.Measured(flags, (f"{note}; " if note else "") + "; ".join(ev), noisy=0)
    return measure


def _hgnn_finding(note: str) -> fd.Finding:
    return fd.Finding(
        id="hgnn-work-orders-models",
        claim="HGNN work summed over relations / metapaths orders 01-hgnn-training's models as their measured steps",
        where="heterogeneous GNNs", tables=(), measure=_hgnn(note),
        criterion=fd.all_of("(framework, dataset) whose models' predicted work and measured step time give the "
                            "same order"),
    )


# -- 7: where the work model fails, bandwidth bound ----------------------------------------------

def _bandwidth_rule(value, th: dict) -> str:
    fail_share, pass_share = value
    if fail_share >= th["share"] and (pass_share is None or fail_share > pass_share):
        return fd.REPRODUCED
    if pass_share is None or fail_share > pass_share:
        return fd.PARTLY
    return fd.NOT_REPRODUCED


def _bandwidth(note: str):
    def measure(t: fd.Tables) -> fd.Measured:
        roof = t.get("roof")
        if roof is None or "bound" not in roof:
            raise fd.NotMeasured(note or "00-hardware's limits are absent")
        res = t["residuals"]
        d = res[STEP_CONFIG + ["ratio"]].merge(roof[STEP_CONFIG + ["bound", "intensity", "balance"]], on=STEP_CONFIG)
        d = d.dropna(subset=["ratio"])
        if d.empty:
            raise fd.NotMeasured("no configuration has both a work-fit residual and a roofline bound")
        fails = (d["ratio"] > WORK_FIT_FACTOR) | (d["ratio"] < 1 / WORK_FIT_FACTOR)
        bw = d["bound"] == "bandwidth"
        if not fails.any():
            raise fd.NotMeasured(f"the work model is within {WORK_FIT_FACTOR:g}x of every one of the {len(d)} "
                                 "configurations: nothing fails")
        fail_share = float(bw[fails].mean())
        pass_share = float(bw[~fails].mean()) if (~fails).any() else None
        bal = float(d["balance"].iloc[0])
        ev = (f"machine balance (ridge point) {bal:.2f} flop/byte; the work fit is more than {WORK_FIT_FACTOR:g}x off in "
              f"{int(fails.sum())} of {len(d)} configurations, {int(bw[fails].sum())} of them bandwidth bound "
              f"({fail_share:.0%}; intensity median {d.loc[fails, 'intensity'].median():.2f})")
        if pass_share is not None:
            ev += (f"; of the {int((~fails).sum())} it fits, {int(bw[~fails].sum())} are bandwidth bound ({pass_share:.0%}; "
                   f"intensity median {d.loc[~fails, 'intensity'].median():.2f})")
        if pass_share is not None and fail_share <= pass_share:
            ev += ("; bandwidth-bound configurations are no rarer among those the work model fits, so the bound "
                   "does not tell its failures apart")
        ours = f"{fail_share:.0%} of failing vs " + ("–" if pass_share is None else f"{pass_share:.0%}") + " of fitting"
        noisy = fd.count_noisy(roof) if "noisy" in roof else 0
        return fd.Measured((fail_share, pass_share), ev + _load_text(t), ours=ours, noisy=noisy)
    return measure


def _bandwidth_finding(note: str) -> fd.Finding:
    return fd.Finding(
        id="failures-bandwidth-bound",
        claim="Where the work model fails, the configuration is bandwidth bound (roofline with 00-hardware's peaks)",
        where="work vs memory traffic", tables=("residuals",), measure=_bandwidth(note),
        criterion=fd.custom(
            "share of bandwidth-bound configurations (intensity below the ridge point) among those the work fit "
            f"misses by more than {WORK_FIT_FACTOR:g}x, vs among those it fits",
            f"reproduced if >= {BANDWIDTH_SHARE:.0%} and above the share among fitting ones; partly if only above it; "
            "else not reproduced", _bandwidth_rule, fd.MEASURED_VERDICTS, share=BANDWIDTH_SHARE,
            factor=WORK_FIT_FACTOR),
    )


def declare(notes: Mapping[str, str] | None = None) -> list[fd.Finding]:
    """The notebook's findings, in its order: one time-follows-work finding per model of
    :data:`studylib.studies.parallelism_analysis.work_depth.MODELS`, then six more. ``notes``:
    why 02's (``"communication"``), 01's (``"hgnn"``) or 00's (``"limits"``) results are absent or
    what was read, used as the evidence when they are."""
    notes = dict(notes or {})
    return [*(_exponent_finding(m) for m in analysis.MODELS), DENSE_SPARSE, BRENT, HALO_MATCHES_DISTDGL,
            _halo_02_finding(notes.get("communication", "")), _hgnn_finding(notes.get("hgnn", "")),
            _bandwidth_finding(notes.get("limits", ""))]


#: The declarations without notes (for the scoreboard and the tests).
FINDINGS = declare()

