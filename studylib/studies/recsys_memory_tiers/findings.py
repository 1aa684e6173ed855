"""The findings of ``04-recsys-memory-tiers`` (Hu, Li, Yu, Zhang, arXiv 2207.11918), declared with
:mod:`studylib.findings`: each claim, the tables it needs, the measured quantity and the criterion
fixed before measuring.

Which the emulation can test and which only the model speaks to:

* measured here: the subgraph-training costs (:data:`SUBGRAPH_TRAINING_INEFFICIENT`), one machine
  vs the emulated cluster on the same cores (:data:`ONE_MACHINE_BEATS_CLUSTER`), the kernel mix
  (:data:`SPARSE_KERNELS_DOMINATE`);
* measured on a slow tier only when one resembles memory (a remote NUMA node, or an emulated tier
  within :data:`RESEMBLANCE_FACTOR` of Optane's published latency and bandwidth), else *not
  testable here* with the reason: :data:`BANDWIDTH_SETS_SLOWDOWN`, :data:`HOT_COLD_RECOVERS`;
* model-only (the verdict rests on a model, and the evidence says so):
  :data:`FOOTPRINT_EXCEEDS_DRAM` (a tensor-count model calibrated on the measured sweep,
  extrapolated to the paper's datasets and held against ``server_dram_gib``) and
  :data:`HOT_COLD_RECOVERS_OPTANE` (the tier model of :mod:`.pmem_model` with the published Optane
  figures at the hit rate measured here).

Tables (names of :func:`tables`): ``footprint`` (the measured sweep), ``paper_footprint``
(:func:`~studylib.studies.recsys_memory_tiers.measure.paper_scale_footprints` with
``server_dram_bytes``), ``epochs`` (:func:`~studylib.studies.recsys_memory_tiers.measure.epoch_table`),
``redundancy``, ``tier_epochs``, ``tier_kernels``, ``tier_figures``
(:func:`~studylib.studies.recsys_memory_tiers.pmem_model.figures_table`) and ``tier_model``
(:func:`~studylib.studies.recsys_memory_tiers.pmem_model.model_table`).
"""

from __future__ import annotations

import math

import pandas as pd

from studylib import findings as fd
from studylib import timing
from studylib.studies.recsys_memory_tiers.measure import footprint_fit, speedup_table
from studylib.studies.recsys_memory_tiers.pmem_model import DEFAULT_OPTANE, PUBLISHED

PAPER = "Hu, Li, Yu, Zhang, arXiv 2207.11918"
#: An emulated slow tier "resembles" persistent memory when its measured random-access latency is
#: at most this factor above, and its read bandwidth at most this factor below, the published
#: Optane figures (6 interleaved modules, :data:`studylib.studies.recsys_memory_tiers.pmem_model.PUBLISHED`).
RESEMBLANCE_FACTOR = 4.0
#: The single machine is faster "by a large margin" when the cluster's epoch is at least this many
#: times longer (on equal cores).
LARGE_MARGIN = 1.5
#: Sampling (subgraph construction) share of a distributed step counted as costly.
SAMPLING_SHARE = 0.25
#: Input-layer node redundancy counted as heavy overlap, and at how many layer counts.
REDUNDANCY = 2.0
REDUNDANCY_LAYER_COUNTS = 2
#: Share of the slow tier's extra time the hot/cold split must recover ("most").
RECOVERY = 0.5
#: A slow tier must be at least this much slower than DRAM for a recovery to mean anything.
MIN_EXTRA = 0.1


def tables(footprint=None, paper_footprint=None, epochs=None, redundancy=None, tier_epochs=None, tier_kernels=None,
           tier_figures=None, tier_model=None) -> dict:
    """The findings' tables by name (``None`` = not measured)."""
    return {"footprint": footprint, "paper_footprint": paper_footprint, "epochs": epochs, "redundancy": redundancy,
            "tier_epochs": tier_epochs, "tier_kernels": tier_kernels, "tier_figures": tier_figures,
            "tier_model": tier_model}


def _three_way(parts: dict, thresholds: dict) -> str:
    """Reproduced if every measured part holds and all parts were measured, partly if some
    measured part holds, else not reproduced."""
    measured = [v for v in parts.values() if v is not None]
    if not measured:
        raise fd.NotMeasured("no part of the claim was measured")
    if all(measured) and len(measured) == len(parts):
        return fd.REPRODUCED
    return fd.PARTLY if any(measured) else fd.NOT_REPRODUCED


# --------------------------------------------------------------------------------------------
# 1. footprint (model-only)
# --------------------------------------------------------------------------------------------

def _footprint(t: fd.Tables) -> fd.Measured:
    foot = t.ok("footprint")
    paper = t.ok("paper_footprint")
    server = float(paper["server_dram_bytes"].iloc[0])
    worst = paper.sort_values("calibrated_bytes").iloc[-1]
    over = paper[paper["calibrated_bytes"] > server]
    fit = footprint_fit(foot)
    ratio = float(worst["calibrated_bytes"] / server)
    ev = (f"model-only: a tensor-count model of the full-graph step, calibrated on the measured sweep (up to "
          f"{int(foot['num_train'].max()):,} interactions, at most {foot['footprint_bytes'].max() / 2**30:.2f} GiB; "
          f"measured/predicted " + ", ".join(f"{r.model} {r.calibration:.2f}" for r in fit.itertuples())
          + f"), extrapolated to the paper's datasets: {len(over)} of {len(paper)} (dataset, model, layers, width) "
          f"settings exceed the server's {server / 2**30:.0f} GiB DRAM; the largest, {worst['dataset']} "
          f"{worst['model']} L={int(worst['num_layers'])} d={int(worst['dim'])}, needs "
          f"{worst['calibrated_bytes'] / 2**30:.1f} GiB ({ratio:.2f}x the server's DRAM)")
    return fd.Measured(ratio, ev, ours=f"{ratio:.2f}x server DRAM (model)")


FOOTPRINT_EXCEEDS_DRAM = fd.Finding(
    id="footprint-exceeds-dram",
    claim="Full-graph training of GNN recommenders at the paper's scale needs more memory than a server's DRAM",
    where="Sec. 1, Sec. 3", paper="footprint beyond a typical server's DRAM",
    tables=("footprint", "paper_footprint"), measure=_footprint,
    criterion=fd.at_least("largest calibrated footprint of the paper's settings / server DRAM (model-only)", 1.0, 0.5),
)


# --------------------------------------------------------------------------------------------
# 2. subgraph training is inefficient
# --------------------------------------------------------------------------------------------

def _subgraph(t: fd.Tables) -> fd.Measured:
    parts, ev = {"sampling": None, "redundancy": None}, []
    epochs = t.get("epochs")
    if epochs is not None and not epochs.empty and (epochs["num_machines"] > 1).any():
        d = epochs[epochs["num_machines"] > 1]
        share = d["sampling_s"] / d["step_s"]
        prep = (d["sampling_s"] + d["fetch_s"]) / d["step_s"]
        parts["sampling"] = bool(share.median() >= SAMPLING_SHARE)
        ev.append(f"distributed steps: sampling median {share.median():.0%} of the step (range {share.min():.0%}-"
                  f"{share.max():.0%}), sampling + fetch median {prep.median():.0%}")
    else:
        ev.append("distributed steps: not measured (no cluster rows)")
    red = t.get("redundancy")
    if red is not None and not red.empty:
        r = red[red["layer"] == 1]
        hi = r.groupby("num_layers")["node_redundancy"].max()
        parts["redundancy"] = bool((hi >= REDUNDANCY).sum() >= REDUNDANCY_LAYER_COUNTS)
        ev.append("input-layer node redundancy by layers: " + ", ".join(f"L{k}: {v:.1f}" for k, v in hi.items())
                  + "; edge redundancy: " + ", ".join(
                      f"L{k}: {v:.1f}" for k, v in r.groupby("num_layers")["edge_redundancy"].max().items()))
    if all(v is None for v in parts.values()):
        raise fd.NotMeasured("neither distributed steps nor redundancy rows")
    ok = [k for k, v in parts.items() if v]
    return fd.Measured(parts, "; ".join(ev), ours=f"{len(ok)} of {sum(v is not None for v in parts.values())} parts")


SUBGRAPH_TRAINING_INEFFICIENT = fd.Finding(
    id="subgraph-training-inefficient",
    claim="Distributed subgraph training is inefficient: subgraph construction is costly and subgraphs overlap heavily",
    where="Sec. 3", paper="sampling a large share of the step; high redundancy across subgraphs",
    tables=(), measure=_subgraph,
    criterion=fd.custom("sampling share of the distributed step; input-layer node redundancy",
                        f"reproduced if the median sampling share >= {SAMPLING_SHARE} and node redundancy >= "
                        f"{REDUNDANCY} at >= {REDUNDANCY_LAYER_COUNTS} layer counts (both measured); partly if one "
                        "holds; else not reproduced", _three_way, fd.MEASURED_VERDICTS,
                        sampling_share=SAMPLING_SHARE, redundancy=REDUNDANCY,
                        layer_counts=REDUNDANCY_LAYER_COUNTS),
)


# --------------------------------------------------------------------------------------------
# 3. one machine beats the cluster, on equal cores
# --------------------------------------------------------------------------------------------

def _beats(t: fd.Tables) -> fd.Measured:
    epochs = t["epochs"]
    if not (epochs["num_machines"] > 1).any():
        raise fd.NotMeasured("no distributed rows (the cluster did not run)")
    sp = speedup_table(epochs)
    unequal = int((~sp["equal_cores"]).sum())
    sp = sp[sp["equal_cores"]]
    if sp.empty:
        raise fd.NotMeasured(f"no single-machine and cluster pair ran on the same core set ({unequal} pairs did not)")
    base_dim = epochs.groupby("dim").size().idxmax()
    s = sp[sp["dim"] == base_dim]
    adv = s.groupby(["model", "num_machines", "core_budget", "num_layers"])["single_machine_advantage"].median()
    adv = adv.unstack("num_layers")
    large = (s["single_machine_advantage"] >= LARGE_MARGIN)
    grows = (adv.iloc[:, -1] > adv.iloc[:, 0]) if adv.shape[1] > 1 else pd.Series(dtype=bool)
    ev = (f"on equal core sets ({s['single_cores'].nunique()} budget(s): "
          + ", ".join(sorted(set(s["single_cores"].astype(str)))) + "), distributed epoch / single-machine epoch "
          "(> 1: the single machine is faster): " + "; ".join(
              f"{m} {int(nm)} machines {int(cb)} core(s) " + ", ".join(f"L{int(L)} {v:.2f}x" for L, v in row.items())
              for (m, nm, cb), row in adv.iterrows()))
    if unequal:
        ev += f"; {unequal} pair(s) on unequal cores left out"
    value = {"large_margin_everywhere": bool(large.all()), "large_margin_somewhere": bool(large.any()),
             "grows_with_depth": bool(len(grows) and grows.all())}
    return fd.Measured(value, ev, ours=f"median {s['single_machine_advantage'].median():.2f}x")


def _beats_rule(v: dict, th: dict) -> str:
    if v["large_margin_everywhere"] and v["grows_with_depth"]:
        return fd.REPRODUCED
    return fd.PARTLY if v["large_margin_somewhere"] or v["grows_with_depth"] else fd.NOT_REPRODUCED


ONE_MACHINE_BEATS_CLUSTER = fd.Finding(
    id="one-machine-beats-cluster",
    claim="One large-memory machine beats distributed training by a large margin, more so for deeper models "
          "(on equal cores)",
    where="Sec. 5", paper="single-machine Optane training faster by a large margin, especially for deep models",
    tables=("epochs",), measure=_beats,
    criterion=fd.custom("distributed / single-machine epoch time on the same core set",
                        f"reproduced if >= {LARGE_MARGIN} for every model, machine count and core budget and larger at "
                        "the most layers than at the fewest; partly if either holds somewhere; else not reproduced",
                        _beats_rule, fd.MEASURED_VERDICTS, large_margin=LARGE_MARGIN),
)


# --------------------------------------------------------------------------------------------
# 4. sparse kernels dominate (DRAM profile)
# --------------------------------------------------------------------------------------------

SPARSE_CLASSES = (timing.SPMM, timing.SDDMM, timing.INDEXING)


def _dominate(t: fd.Tables) -> fd.Measured:
    k = t["tier_kernels"]
    k = k[k["tier"] == "dram"]
    if k.empty:
        raise fd.NotMeasured("no DRAM kernel profile")
    flags, ev = [], []
    for (ds, m), g in k.groupby(["dataset", "model"]):
        by = g.groupby("kernel_class")["share"].sum()
        sparse = float(by[by.index.isin(SPARSE_CLASSES)].sum())
        other = by[~by.index.isin(SPARSE_CLASSES)]
        top = float(other.max()) if len(other) else 0.0
        flags.append(sparse > top)
        ev.append(f"{m} {ds[:16]}: SpMM + SDDMM + gather {sparse:.0%}, largest other class "
                  f"{other.idxmax() if len(other) else '-'} {top:.0%}")
    return fd.Measured(flags, "DRAM step, profiler self time: " + "; ".join(ev))


SPARSE_KERNELS_DOMINATE = fd.Finding(
    id="sparse-kernels-dominate",
    claim="The dominant kernels of GNN recommenders are sparse (SpMM, SDDMM, embedding gathers)",
    where="Sec. 4", paper="SpMM and SDDMM dominate the training time",
    tables=("tier_kernels",), measure=_dominate,
    criterion=fd.all_of("configurations whose sparse kernels (SpMM, SDDMM, gather) together exceed every other "
                        "kernel class"),
)


# --------------------------------------------------------------------------------------------
# 5./6. slow-tier claims: testable only on a tier that resembles memory
# --------------------------------------------------------------------------------------------

def _optane_row() -> pd.Series:
    return PUBLISHED[PUBLISHED["device"] == DEFAULT_OPTANE].iloc[0]


def memory_like_tiers(fig: pd.DataFrame) -> tuple[list[str], str]:
    """The slow tiers of ``tier_figures`` that resemble memory (``numa_remote`` always; the emulated
    ``mmap_cgroup`` tier when its latency and read bandwidth are within :data:`RESEMBLANCE_FACTOR`
    of Optane's published figures), and a sentence on the others. DRAM and the page-cache control
    ``mmap_cached`` are no slow tiers."""
    o = _optane_row()
    keep, notes = [], []
    for r in fig[fig["source"].astype(str).str.startswith("measured")].itertuples():
        if r.tier in ("dram", "mmap_cached"):
            continue
        if r.tier == "numa_remote":
            keep.append(r.tier)
            continue
        ok = (math.isfinite(r.latency_ns) and r.latency_ns <= RESEMBLANCE_FACTOR * o["latency_ns"]
              and math.isfinite(r.read_gb_s) and r.read_gb_s >= o["read_gb_s"] / RESEMBLANCE_FACTOR)
        if ok:
            keep.append(r.tier)
        else:
            notes.append(f"{r.tier}: latency {r.latency_ns:,.0f} ns, read {r.read_gb_s:.3g} GB/s")
    return keep, "; ".join(notes)


def _slow_tier_testable(needs: str):
    def testable(machine: dict, t: fd.Tables) -> str | None:
        fig = t.get("tier_figures")
        if fig is None or fig.empty:
            return None  # nothing measured: the measure says not measured
        keep, notes = memory_like_tiers(fig)
        if needs in keep or (needs == "any" and keep):
            return None
        o = _optane_row()
        return (f"no slow tier here resembles persistent memory (Optane: {o['latency_ns']:.0f} ns, "
                f"{o['read_gb_s']} GB/s read; within {RESEMBLANCE_FACTOR:g}x asked): {notes or 'none measured'}; "
                f"the emulated tier is storage behind the page cache, and no second NUMA node is present")
    return testable


def _bandwidth(t: fd.Tables) -> fd.Measured:
    te = t.ok("tier_epochs")
    keep, _ = memory_like_tiers(t["tier_figures"])
    te = te[te["tier"].isin(["dram", *keep])].dropna(subset=["read_bytes_per_s"])
    flags, ev = [], []
    for (ds, m), g in te.groupby(["dataset", "model"]):
        if len(g) < 2 or not (g["tier"] == "dram").any():
            continue
        worst = g.loc[g["read_bytes_per_s"].idxmin()]
        flags.append(bool(worst["tier"] != "dram" and worst["slowdown"] >= g["slowdown"].max()
                          and worst["slowdown"] > 1 + MIN_EXTRA))
        ev.append(f"{m} {ds[:16]}: " + ", ".join(f"{r.tier} {r.slowdown:.2f}x at read {r.read_bytes_per_s / 1e9:.3g} GB/s"
                                                 for r in g.itertuples()))
    if not flags:
        raise fd.NotMeasured("no configuration ran on DRAM and a memory-like slow tier")
    return fd.Measured(flags, "slowdown per tier vs its read bandwidth: " + "; ".join(ev))


BANDWIDTH_SETS_SLOWDOWN = fd.Finding(
    id="bandwidth-sets-slowdown",
    claim="The sparse kernels are memory-bound: a slower memory tier's bandwidth sets the slowdown",
    where="Sec. 4", paper="Optane's lower bandwidth slows the sparse kernels",
    tables=("tier_epochs", "tier_figures"), measure=_bandwidth,
    criterion=fd.all_of("configurations whose lowest-bandwidth tier has the largest slowdown (> "
                        f"{1 + MIN_EXTRA:g}x DRAM)"),
    testable=_slow_tier_testable("any"),
)


def _recovery(t: fd.Tables) -> fd.Measured:
    te = t.ok("tier_epochs")
    if not {"hot_cold", "mmap_cgroup", "dram"} <= set(te["tier"]):
        raise fd.NotMeasured("hot/cold, slow tier or DRAM tier not run")
    w = te.pivot_table(index=["dataset", "model"], columns="tier", values="step_s")
    hr = te[te["tier"] == "hot_cold"].set_index(["dataset", "model"])["hit_rate"]
    extra = w["mmap_cgroup"] / w["dram"] - 1
    rec = (w["mmap_cgroup"] - w["hot_cold"]) / (w["mmap_cgroup"] - w["dram"])
    valid = extra > MIN_EXTRA
    if not valid.any():
        raise fd.NotMeasured("the slow tier was not measurably slower than DRAM here")
    ev = "; ".join(f"{m} {ds[:16]}: slow tier {r['mmap_cgroup'] / r['dram']:.2f}x DRAM, hot/cold "
                   f"{r['hot_cold'] / r['dram']:.2f}x (recovers {rec[(ds, m)]:.0%}; hit rate "
                   f"{hr.get((ds, m), float('nan')):.0%})" for (ds, m), r in w.iterrows())
    return fd.Measured(list((rec[valid] >= RECOVERY).to_numpy(dtype=bool)), ev)


HOT_COLD_RECOVERS = fd.Finding(
    id="hot-cold-recovers",
    claim="Properly configured (hot data in DRAM in front of the slow tier), the large tier recovers most of "
          "DRAM speed",
    where="Sec. 5", paper="configured Optane close to DRAM speed",
    tables=("tier_epochs", "tier_figures"), measure=_recovery,
    criterion=fd.fraction_of(f"configurations where hot/cold recovers >= {RECOVERY:.0%} of the slow tier's extra "
                             "time", 1.0, 0.5),
    testable=_slow_tier_testable("mmap_cgroup"),
)


def _recovery_model(t: fd.Tables) -> fd.Measured:
    mt = t["tier_model"]
    o = mt[mt["target"] == "optane"].set_index(["dataset", "model"])
    h = mt[mt["target"] == "hot_cold_optane"].set_index(["dataset", "model"])
    both = o.index.intersection(h.index)
    if not len(both):
        raise fd.NotMeasured("no tier-model prediction for Optane with a measured hot/cold hit rate")
    slow = [k for k in both if o.loc[k, "predicted_slowdown"] > 1 + MIN_EXTRA]
    if not slow:
        raise fd.NotMeasured("the model predicts Optane within " f"{MIN_EXTRA:.0%} of DRAM for every configuration here "
                             "(" + ", ".join(f"{m} {o.loc[(ds, m), 'predicted_slowdown']:.2f}x" for ds, m in both)
                             + "): there is no extra time for the hot/cold split to recover")
    rec = {}
    for k in slow:
        extra = o.loc[k, "predicted_slowdown"] - 1
        rec[k] = (o.loc[k, "predicted_slowdown"] - h.loc[k, "predicted_slowdown"]) / extra
    emu = mt[mt["target"].isin(["mmap_cgroup", "hot_cold"])]
    trust = "; ".join(f"{r.model} {r.target}: predicted {r.predicted_slowdown:.2f}x, measured {r.measured_slowdown:.2f}x"
                      for r in emu.itertuples())
    ev = ("model-only: published Optane figures (" + str(o["basis"].iloc[0]) + ") and the hit rate measured here; "
          + "; ".join(f"{m} {ds[:16]}: Optane {o.loc[(ds, m), 'predicted_slowdown']:.2f}x DRAM, hot/cold "
                      f"{h.loc[(ds, m), 'predicted_slowdown']:.2f}x at hit rate {h.loc[(ds, m), 'hit_rate']:.0%} "
                      f"(recovers {rec[(ds, m)]:.0%})" for ds, m in slow)
          + (f"; the same model on the emulated tier (its own measured figures): {trust}" if trust else ""))
    return fd.Measured([bool(v >= RECOVERY) for v in rec.values()], ev,
                       ours="recovers " + ", ".join(f"{v:.0%}" for v in rec.values()) + " (model)")


HOT_COLD_RECOVERS_OPTANE = fd.Finding(
    id="hot-cold-recovers-optane-model",
    claim="With Optane as the slow tier, hot data in DRAM recovers most of DRAM speed (tier model, published "
          "Optane figures)",
    where="Sec. 5", paper="configured Optane close to DRAM speed",
    tables=("tier_model",), measure=_recovery_model,
    criterion=fd.fraction_of(f"configurations (Optane predicted > {1 + MIN_EXTRA:g}x DRAM) where the predicted "
                             f"hot/cold step recovers >= {RECOVERY:.0%} of Optane's predicted extra time (model-only)",
                             1.0, 0.5),
)


FINDINGS = (FOOTPRINT_EXCEEDS_DRAM, SUBGRAPH_TRAINING_INEFFICIENT, ONE_MACHINE_BEATS_CLUSTER, SPARSE_KERNELS_DOMINATE,
            BANDWIDTH_SETS_SLOWDOWN, HOT_COLD_RECOVERS, HOT_COLD_RECOVERS_OPTANE)

