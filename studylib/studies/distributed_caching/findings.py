"""The findings of ``02-distributed-caching``: the paper's claims this notebook tests, declared as data
(:mod:`studylib.findings`), each with a verdict computed from this run's tables only.

:func:`declare` returns the declarations for one parameter set (the criteria read nothing from the
parameters; the measures use them to pick the rows: warm-up epochs, the default buffer, the sweep
graph). Tables: ``epochs`` (the cluster runs), ``accuracy``, ``replay`` (the offline replay of the
recorded access sequences; optional evidence).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib import findings as fd
from studylib.studies.distributed_caching.measure import (
    BASELINE,
    PREPARE_REGIONS,
    RUN_KEY,
    TRAIN_REGIONS,
    _default_massivegnn,
    _main_runs,
    _network_order,
    _sweep_rows,
    accuracy_table,
    breakdown_table,
    network_rows,
    speedup_summary,
)

NOTEBOOK = "02-distributed-caching"
#: The paper's headline claim: end-to-end training 15-40% faster (abstract; Sec. V).
CUT_GOAL = 0.15
#: A hit rate "with eviction" must beat the buffer without eviction by more than this (fraction).
EVICTION_MARGIN = 0.005
#: Per-step tolerance when a sequence counts as rising (hit rate: 1 point; speedup: 0.02x).
HIT_TOLERANCE, SPEEDUP_TOLERANCE = 0.01, 0.02


def explain(epochs: pd.DataFrame, run: tuple, params, label: str = "massivegnn") -> str:
    """Which part of the epoch shrank: critical-path regions of plain DistDGL vs ``label`` in one
    run, the largest changes first (seconds per epoch, medians over epochs)."""
    b = breakdown_table(epochs, params.warmup_epochs)
    if b.empty:
        return ""
    b = b[b[RUN_KEY].apply(tuple, axis=1) == run]
    base = b[(b["variant"] == BASELINE) & (b["path"] == "critical")].set_index("region")["seconds"]
    var = b[(b["variant"] == label) & (b["path"] == "critical")].set_index("region")["seconds"]
    if base.empty or var.empty:
        return ""
    prep_base = float(base.reindex(list(PREPARE_REGIONS)).fillna(0).sum())
    bg = b[(b["variant"] == label) & (b["path"] == "background")].set_index("region")["seconds"]
    parts = [f"sampling + fetching on the critical path {prep_base:.2f} s -> "
             f"{float(var.reindex(list(PREPARE_REGIONS)).fillna(0).sum()):.2f} s "
             f"(waiting for the background thread {float(var.get('wait', 0.0)):.2f} s)"]
    if not bg.empty:
        parts.append(f"remote fetch {float(base.get('remote_fetch', 0.0)):.2f} s -> "
                     f"{float(bg.get('remote_fetch', 0.0)):.2f} s, now in the background")
    for r in TRAIN_REGIONS:
        d = float(var.get(r, 0.0)) - float(base.get(r, 0.0))
        if abs(d) > 0.05 * max(float(base.get(r, 0.0)), 1e-9) and abs(d) > 0.01:
            parts.append(f"{r} {float(base.get(r, 0.0)):.2f} -> {float(var.get(r, 0.0)):.2f} s")
    return "; ".join(parts)


def _summary(t: fd.Tables, params) -> pd.DataFrame:
    s = speedup_summary(t.ok("epochs"), params.warmup_epochs)
    if s.empty:
        raise fd.NotMeasured("no timed epoch after the warm-up epochs")
    return s


def _standalone(machine: dict, tables: fd.Tables) -> str | None:
    """Not testable when every run fell back to DistDGL's standalone mode (one partition, no remote
    traffic): the reason the host gave."""
    e = tables.get("epochs")
    if e is None or e.empty or "cluster_mode" not in e:
        return None
    e = fd.ok_rows(e)
    if e.empty or not (e["cluster_mode"] == "standalone").all():
        return None
    why = e["fallback_reason"].dropna() if "fallback_reason" in e else pd.Series(dtype=str)
    return ("no multi-machine run: this host cannot emulate a cluster"
            + (f" ({why.iloc[0]})" if len(why) and str(why.iloc[0]) else "")
            + "; DistDGL's standalone mode has no remote features to cache")


def admitted_cells(summary: pd.DataFrame, params) -> pd.DataFrame:
    """The sweeps run's MassiveGNN variants with eviction at the default prefetch fraction (the
    default cell and the ``cluster_grid_cells``), with ``admitted_per_epoch``, ``hit_rate`` and
    ``speedup_median``."""
    sw = _sweep_rows(summary, params)
    if sw.empty:
        return sw
    return sw[(sw["policy"] == "massivegnn") & sw["eviction"].astype(bool)
              & np.isclose(sw["fraction"], params.prefetch_fraction)].sort_values(["alpha", "delta"])


def _no_admission(params):
    """``testable`` of the eviction finding: not testable when no cell of the cluster's sweeps run
    admitted nodes by eviction (the reason names the cells, their mini-batches and thresholds)."""
    from studylib.studies.distributed_caching.cache import massivegnn_threshold

    def testable(machine: dict, tables: fd.Tables) -> str | None:
        if _standalone(machine, tables):
            return _standalone(machine, tables)
        e = tables.get("epochs")
        if e is None or e.empty:
            return None
        try:
            cells = admitted_cells(speedup_summary(fd.ok_rows(e), params.warmup_epochs), params)
        except (KeyError, ValueError):
            return None
        if cells.empty or (cells["admitted_per_epoch"] > 0).any():
            return None
        sw = fd.ok_rows(e)
        sw = sw[(sw["run"] == "sweeps") & (sw["policy"] == "massivegnn")]
        per_variant = int(sw.groupby(["variant", "rank"])["n_batches"].sum().max()) if "n_batches" in sw and len(sw) \
            else 0
        text = ", ".join(f"alpha {r.alpha:g} / delta {int(r.delta)} (threshold "
                         f"{massivegnn_threshold(r.alpha, int(r.delta)):g})" for r in cells.itertuples())
        return (f"no alpha x delta cell of the cluster run admitted a node by eviction ({text}; {per_variant} "
                f"mini-batches per variant and trainer): eviction never acted, so the claim about it cannot be judged")
    return testable


def declare(params) -> list[fd.Finding]:
    """The findings of ``02-distributed-caching`` for the parameters ``params``."""

    def epoch_cut(t: fd.Tables) -> fd.Measured:
        s = _summary(t, params)
        m = _default_massivegnn(_main_runs(s, params), params)
        m = m[m["model"] == params.models[0]]
        if m.empty:
            raise fd.NotMeasured("the massivegnn policy was not among the measured policies")
        flags, ev = [], []
        for _, r in m.iterrows():
            flags.append(bool(r["cut"] >= CUT_GOAL))
            run = tuple(r[k] for k in RUN_KEY)
            why = explain(t.ok("epochs"), run, params)
            ev.append(f"{r['graph']} / {r['machines']} machines / {r['network']}: epoch {r['baseline_mean_epoch_s']:.2f}"
                      f" -> {r['mean_epoch_s']:.2f} s, cut {r['cut']:.0%} (speedup median {r['speedup_median']:.2f}x,"
                      f" IQR {r['speedup_q1']:.2f}-{r['speedup_q3']:.2f}), hit rate {r['hit_rate']:.0%} of halo "
                      f"accesses, {r['hit_rate_remote']:.0%} of all remote accesses" + (f" [{why}]" if why else ""))
        cuts = m["cut"].to_numpy()
        return fd.Measured(flags, "; ".join(ev), ours=f"cut {np.min(cuts):.0%}" + (
            f" to {np.max(cuts):.0%}" if len(cuts) > 1 else ""))

    def gain_source(t: fd.Tables) -> fd.Measured:
        s = _summary(t, params)
        main = _main_runs(s, params)
        main = main[main["model"] == params.models[0]]
        flags, ev = [], []
        for run, d in main.groupby(RUN_KEY):
            d = d.set_index("variant")
            if not {"distdgl", "massivegnn"} <= set(d.index):
                continue
            mg = d.loc["massivegnn"]
            fewer = bool(mg["remote_mb_per_epoch"] < d.loc["distdgl", "remote_mb_per_epoch"])
            extra, better = "", True
            if "prefetch" in d.index:
                better = bool(mg["cut"] > d.loc["prefetch", "cut"])
                extra = f", prefetch thread alone cut {d.loc['prefetch', 'cut']:.0%}"
            flags.append(fewer and better)
            ev.append(f"{run[0]} / {run[2]}: remote features {d.loc['distdgl', 'remote_mb_per_epoch']:.1f} -> "
                      f"{mg['remote_mb_per_epoch']:.1f} MB per epoch, massivegnn cut {mg['cut']:.0%}{extra}")
        if not flags:
            raise fd.NotMeasured("no main run measured both plain DistDGL and massivegnn")
        return fd.Measured(flags, "; ".join(ev))

    def fraction_effect(t: fd.Tables) -> fd.Measured:
        s = _summary(t, params)
        sw = _sweep_rows(s, params)
        sw = sw[(sw["policy"] == "massivegnn") & np.isclose(sw["alpha"], params.alpha) & (sw["delta"] == params.delta)
                & (sw["eviction"].astype(bool) == params.eviction)] if not sw.empty else sw
        if sw.empty or sw["fraction"].nunique() < 2:
            raise fd.NotMeasured("fewer than two prefetch fractions measured")
        sw = sw.sort_values("fraction")
        hit_up = bool(np.all(np.diff(sw["hit_rate"].to_numpy()) >= -HIT_TOLERANCE))
        sp = sw["speedup_median"].to_numpy()
        sp_up = bool(sp[-1] > sp[0])
        return fd.Measured([hit_up, sp_up], f"hit rate {'rises' if hit_up else 'does not rise'} and speedup "
                           f"{'rises' if sp_up else 'does not rise'} with the fraction; fraction / hit rate / speedup: "
                           + "; ".join(f"{r.fraction:g}: {r.hit_rate:.0%}, {r.speedup_median:.2f}x"
                                       for r in sw.itertuples()))

    def eviction_effect(t: fd.Tables) -> fd.Measured:
        s = _summary(t, params)
        cells = admitted_cells(s, params)
        if cells.empty:
            raise fd.NotMeasured("no massivegnn variant with eviction in the sweeps run")
        sw = _sweep_rows(s, params)
        off = sw[(sw["policy"] == "massivegnn") & ~sw["eviction"].astype(bool)
                 & np.isclose(sw["fraction"], params.prefetch_fraction)]
        if off.empty:
            raise fd.NotMeasured("the buffer without eviction was not measured in the sweeps run")
        b = off.iloc[0]
        acting = cells[cells["admitted_per_epoch"] > 0]
        flags = [bool(r.hit_rate - b["hit_rate"] > EVICTION_MARGIN) for r in acting.itertuples()]
        ev = [f"without eviction: hit rate {b['hit_rate']:.1%} ({b['speedup_median']:.2f}x)"]
        ev += [f"alpha {r.alpha:g} / delta {int(r.delta)}: {r.admitted_per_epoch:.0f} nodes admitted per epoch, "
               f"hit rate {r.hit_rate:.1%} ({r.hit_rate - b['hit_rate']:+.1%}), {r.speedup_median:.2f}x"
               for r in cells.itertuples()]
        rp = t.get("replay")
        if rp is not None and not rp.empty:
            mg = rp[rp["policy"] == "massivegnn"]
            ne = rp[rp["policy"] == "massivegnn-noevict"]
            for order, d in mg.groupby("seed_order"):
                base = float(ne[ne["seed_order"] == order]["hit_rate_halo"].mean())
                cell = d.groupby(["alpha", "delta"]).agg(hit=("hit_rate_halo", "mean"),
                                                         adm=("admitted_per_epoch", "mean"))
                best = cell["hit"].idxmax()
                ev.append(f"offline replay, {order} seeds: no eviction {base:.1%}; best cell alpha {best[0]:g} / delta "
                          f"{int(best[1])} {cell.loc[best, 'hit']:.1%} ({cell.loc[best, 'adm']:.0f} admitted per "
                          f"epoch); cells admitting nodes: {int((cell['adm'] > 0).sum())} of {len(cell)}")
        return fd.Measured(flags, "; ".join(ev), ours=(f"{sum(flags)} of {len(flags)} cells above"
                                                       if flags else "no cell admitted"))

    def network_effect(t: fd.Tables) -> fd.Measured:
        s = _summary(t, params)
        net = network_rows(s, params)
        net = net[net["variant"] == "massivegnn"] if not net.empty else net
        if net.empty or net["network"].nunique() < 2:
            raise fd.NotMeasured("fewer than two network models measured")
        order = _network_order(net["network"])
        d = net.set_index("network").loc[order]
        sp = d["speedup_median"].to_numpy()
        rising = bool(sp[-1] > sp[0])
        mono = bool(np.all(np.diff(sp) > -SPEEDUP_TOLERANCE))
        ev = "network (fast -> slow): " + "; ".join(
            f"{n}: {d.loc[n, 'speedup_median']:.2f}x (cut {d.loc[n, 'cut']:.0%}, hit rate {d.loc[n, 'hit_rate']:.0%})"
            for n in order)
        low = d["speedup_median"].idxmin()
        if d.loc[low, "hit_rate"] > 0 and d.loc[low, "speedup_median"] < 1 + SPEEDUP_TOLERANCE:
            ev += (f". On {low} the buffer served {d.loc[low, 'hit_rate']:.0%} of halo accesses yet the epoch "
                   f"was {d.loc[low, 'speedup_median']:.2f}x as fast: the fetches it saved were cheap there")
        return fd.Measured({"rising": rising, "monotone": mono}, ev,
                           ours=f"{sp[0]:.2f}x -> {sp[-1]:.2f}x")

    def network_rule(v: dict, th: dict) -> str:
        return fd.REPRODUCED if v["rising"] and v["monotone"] else fd.PARTLY if v["rising"] else fd.NOT_REPRODUCED

    def same_accuracy(t: fd.Tables) -> fd.Measured:
        acc = accuracy_table(t.ok("accuracy"))
        a = acc[acc["policy"] != "none"].copy() if not acc.empty else acc
        if a.empty:
            raise fd.NotMeasured("no accuracy of a cache variant")
        a = a[a["run"] == "main"] if (a["run"] == "main").any() else a
        p = a["baseline_accuracy"].clip(0.01, 0.99)
        tol = np.maximum(0.02, 2 * np.sqrt(2 * p * (1 - p) / a["test_count"].clip(lower=1)))
        within = (a["difference"].abs() <= tol)
        return fd.Measured([bool(w) for w in within],
                           f"{int(within.sum())} of {len(a)} variants within max(2 points, 2 standard errors) of "
                           f"DistDGL; differences {a['difference'].min():+.3f} to {a['difference'].max():+.3f}; "
                           + "; ".join(f"{r.graph} {r.variant}: {r.test_accuracy:.3f} vs {r.baseline_accuracy:.3f}"
                                       for r in a.itertuples()))

    def policies(t: fd.Tables) -> fd.Measured:
        s = _summary(t, params)
        main = _main_runs(s, params)
        main = main[main["model"] == params.models[0]]
        flags, ev = [], []
        for run, d in main.groupby(RUN_KEY):
            d = d[d["policy"].isin(["massivegnn", "static", "lru"])]
            d = d[np.isclose(d["fraction"], params.prefetch_fraction)]
            d = d[(d["policy"] != "massivegnn") | (d["variant"] == "massivegnn")]
            if d["policy"].nunique() < 2:
                continue
            best = d.loc[d["mean_epoch_s"].idxmin()]
            flags.append(best["policy"] == "massivegnn")
            ev.append(f"{run[0]} / {run[2]}: " + ", ".join(
                f"{r.variant} {r.mean_epoch_s:.2f} s (hit {r.hit_rate:.0%})" for r in d.itertuples())
                + f" -> fastest {best['variant']}")
        if not flags:
            raise fd.NotMeasured("fewer than two cache policies measured in a main run")
        return fd.Measured(flags, "; ".join(ev))

    return [
        fd.Finding(id="epoch-cut", claim="MassiveGNN's prefetch-and-eviction buffer makes DistDGL training 15-40% "
                   "faster", where="Abstract; Sec. V", paper="15-40% faster end to end (GraphSAGE, OGB graphs)",
                   tables=("epochs",), measure=epoch_cut, testable=_standalone,
                   criterion=fd.all_of(f"main runs where the epoch-time cut is >= {CUT_GOAL:.0%}")),
        fd.Finding(id="gain-source", claim="The gain comes from pulling fewer remote features (buffer hits) on top of "
                   "overlapping sampling and fetching", where="Sec. III-V", tables=("epochs",), measure=gain_source,
                   testable=_standalone,
                   criterion=fd.all_of("main runs with fewer remote bytes and a larger cut than the prefetch thread "
                                       "alone")),
        fd.Finding(id="fraction", claim="A larger prefetch fraction raises the hit rate and the speedup",
                   where="Sec. V (prefetch fraction)", tables=("epochs",), measure=fraction_effect,
                   testable=_standalone,
                   criterion=fd.all_of(f"parts: hit rate non-decreasing (tolerance {HIT_TOLERANCE:g}), speedup "
                                       f"higher at the largest fraction than at the smallest")),
        fd.Finding(id="eviction", claim="Continuous eviction keeps the buffer useful (hit rate with eviction above "
                   "the buffer without)", where="Sec. III-B, V (alpha, delta)", tables=("epochs",),
                   measure=eviction_effect, testable=_no_admission(params),
                   criterion=fd.all_of(f"alpha x delta cells that admitted nodes by eviction whose hit rate beats "
                                       f"the buffer without eviction by > {EVICTION_MARGIN:.1%}")),
        fd.Finding(id="network", claim="The gain is largest where remote traffic is expensive (slow network) and "
                   "shrinks on a fast one", where="Sec. V", tables=("epochs",), measure=network_effect,
                   testable=_standalone,
                   criterion=fd.custom("massivegnn speedup from the fastest to the slowest network model",
                                       f"reproduced if it rises and never falls by more than {SPEEDUP_TOLERANCE:g}x "
                                       "from one model to the next slower; partly if it only rises end to end",
                                       network_rule, fd.MEASURED_VERDICTS, tolerance=SPEEDUP_TOLERANCE)),
        fd.Finding(id="accuracy", claim="Faster variants learn the same: test accuracy after the same epochs within "
                   "noise of DistDGL's", where="Sec. V (accuracy)", tables=("accuracy",), measure=same_accuracy,
                   criterion=fd.fraction_of("cache variants within max(2 points, 2 standard errors) of DistDGL",
                                            reproduced=1.0, partly=0.5)),
        fd.Finding(id="policies", claim="Beyond the paper: MassiveGNN is faster than static (pre-sampled hottest) and "
                   "LRU caches of the same size", where="beyond the paper", tables=("epochs",), measure=policies,
                   testable=_standalone, criterion=fd.all_of("main runs where massivegnn is the fastest cache")),
    ]
