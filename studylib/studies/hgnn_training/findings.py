"""The findings of ``01-hgnn-training`` (Han, Yan, Ye, Fan, *Characterizing and Understanding HGNN
Training on GPUs*, ACM TACO 2025, arXiv 2407.11790, Sec. 5-6), declared as data
(:class:`studylib.findings.Finding`): the paper's claim, the measured quantity computed from this
run's tables, and the criterion fixed before measuring. The paper states these as qualitative
findings (no single number to set beside ours), so ``paper`` is left empty and ``where`` names the
section.

The notebook records them with ``fd.record("01-hgnn-training", FINDINGS, tables(...))``; the tables
are those of :func:`tables`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib import findings as fd
from studylib import timing
from studylib.studies.hgnn_training.measure import (
    CONFIG,
    data_parallel_summary,
    memory_summary,
    minibatch_summary,
    profiled_stage_shares,
)
from studylib.timing import BACKWARD, DATA_PREPARATION, FORWARD, NEIGHBOR_AGGREGATION, SAMPLING, STEP_TOTAL

#: Mini-batch: sampling + data preparation dominate when they take more than this share of a step.
MINIBATCH_DOMINANT_SHARE = 0.5
#: Data parallel: the gradient all-reduce "adds communication" when it takes at least this share of
#: a step, and it "limits scaling" when the epoch's scaling efficiency is at most this.
ALLREDUCE_SHARE = 0.05
SCALING_EFFICIENCY = 0.9


def tables(stage_times=None, kernels=None, han=None, minibatch=None, data_parallel=None) -> dict:
    """The tables the findings read, by name: the notebook's raw result tables (failed rows kept:
    they are counted in the evidence)."""
    return {"stage_times": stage_times, "kernel_classes": kernels, "han_metapaths": han, "minibatch": minibatch,
            "data_parallel": data_parallel}


# -- 1: neighbor aggregation dominates -----------------------------------------------------------

def _aggregation(t: fd.Tables) -> fd.Measured:
    st = profiled_stage_shares(t.ok("kernel_classes"))
    st = st[st["stage"] != "other"]
    if st.empty:
        raise fd.NotMeasured("the kernel-class table holds no stage-tagged ops")
    top = st.loc[st.groupby(CONFIG)["share"].idxmax()]
    flags = (top["stage"] == NEIGHBOR_AGGREGATION).tolist()
    na = st[st["stage"] == NEIGHBOR_AGGREGATION]["share"]
    fp = st[st["stage"] == timing.FEATURE_PROJECTION]["share"]
    per_model = st.pivot_table(index="model", columns="stage", values="share", aggfunc="median")
    detail = "; ".join(f"{m.upper()}: aggregation {r.get(NEIGHBOR_AGGREGATION, 0):.0%}, projection "
                       f"{r.get(timing.FEATURE_PROJECTION, 0):.0%}" for m, r in per_model.iterrows())
    ev = (f"largest stage (forward + backward, profiler) is neighbor aggregation in {sum(flags)} of {len(flags)} "
          f"configurations; aggregation share median {na.median():.0%} (range {na.min():.0%}-{na.max():.0%}), "
          f"feature projection median {fp.median():.0%}; median per model: {detail}")
    return fd.Measured(flags, ev, noisy=0)


AGGREGATION_DOMINATES = fd.Finding(
    id="aggregation-dominates",
    claim="Neighbor aggregation is the largest stage of HGNN training",
    where="Sec. 5 (stage breakdown)",
    tables=("kernel_classes",), measure=_aggregation,
    criterion=fd.all_of("configurations whose largest profiled stage is neighbor aggregation"),
)


# -- 2: HAN's aggregation grows with the metapaths -----------------------------------------------

def _metapaths(t: fd.Tables) -> fd.Measured:
    han = t.ok("han_metapaths")
    keys = ["dataset", "framework", "sweep", "num_metapaths", "metapath_length"]
    per_step = han[han["region"] == NEIGHBOR_AGGREGATION].groupby(keys + ["step"])["seconds"].sum().reset_index()
    s = fd.summarize_by(per_step, keys)
    ev, flags = [], []
    for (ds, fw, sweep), g in s.groupby(["dataset", "framework", "sweep"]):
        x = "num_metapaths" if sweep == "count" else "metapath_length"
        g = g.sort_values(x)
        if len(g) < 2:
            ev.append(f"{ds} {fw} {sweep}: one point only (larger metapaths over the edge cap)")
            continue
        flags.append(bool(np.all(np.diff(g["median"].to_numpy()) > 0)))
        ev.append(f"{ds} {fw} {sweep} {'/'.join(str(v) for v in g[x])}: "
                  + " → ".join(f"{v * 1e3:.1f}" for v in g["median"]) + " ms")
    if not flags:
        raise fd.NotMeasured("no sweep has two points: " + "; ".join(ev))
    return fd.Measured(flags, "median aggregation time per step: " + "; ".join(ev), noisy=fd.count_noisy(s))


METAPATHS_GROW = fd.Finding(
    id="han-metapaths",
    claim="HAN's aggregation time grows with the number and the length of metapaths",
    where="Sec. 5 (HAN metapaths)",
    tables=("han_metapaths",), measure=_metapaths,
    criterion=fd.all_of("sweeps (dataset, framework, count or length) whose median aggregation time rises "
                        "at every step"),
)


# -- 3: the backward pass raises memory demand ---------------------------------------------------

def _memory(t: fd.Tables) -> fd.Measured:
    st = t.ok("stage_times")
    if "kind" not in st or not (st["kind"] == "memory").any():
        raise fd.NotMeasured("no memory rows in the stage-time table")
    mem = st[st["kind"] == "memory"]
    if "phase_start_bytes" not in mem or mem["phase_start_bytes"].isna().all():
        raise fd.NotMeasured("memory rows were measured without the phase's start (phase_start_bytes): "
                             "measure again")
    m = memory_summary(st).pivot_table(index=CONFIG, columns="region", values="own_mib")
    if BACKWARD not in m or FORWARD not in m:
        raise fd.NotMeasured("memory rows lack the forward or the backward pass")
    m = m.dropna(subset=[FORWARD, BACKWARD])
    flags = (m[BACKWARD] > m[FORWARD]).tolist()
    ev = (f"memory the backward pass allocates above what the forward pass left (its peak minus the memory at its "
          f"start) exceeds the forward pass's own growth in {sum(flags)} of {len(flags)} configurations; backward "
          f"median {m[BACKWARD].median():.1f} MiB (range {m[BACKWARD].min():.1f}-{m[BACKWARD].max():.1f}), forward "
          f"median {m[FORWARD].median():.1f} MiB (range {m[FORWARD].min():.1f}-{m[FORWARD].max():.1f})")
    return fd.Measured(flags, ev, noisy=0)


BACKWARD_MEMORY = fd.Finding(
    id="backward-memory",
    claim="The backward pass raises memory demand above the forward pass",
    where="Sec. 5 (memory)",
    tables=("stage_times",), measure=_memory,
    criterion=fd.all_of("configurations whose backward pass allocates more (peak during backward minus the "
                        "memory at its start) than the forward pass grew (its peak minus its start)"),
)


# -- 4: mini-batch training is dominated by sampling and data preparation ------------------------

def _minibatch(t: fd.Tables) -> fd.Measured:
    mb = t.ok("minibatch")
    med = minibatch_summary(mb)
    mbm = med[med["mode"] == "minibatch"]
    prep = mbm[mbm["region"].isin([SAMPLING, DATA_PREPARATION])].groupby(CONFIG)["share"].sum()
    if prep.empty:
        raise fd.NotMeasured("no mini-batch rows with sampling or data preparation")
    per_step = mb[(mb["mode"] == "minibatch") & (mb["region"] == STEP_TOTAL)]
    noisy = fd.count_noisy(fd.summarize_by(per_step, CONFIG)) if not per_step.empty else 0
    flags = (prep > MINIBATCH_DOMINANT_SHARE).tolist()
    ev = (f"sampling + data preparation exceed {MINIBATCH_DOMINANT_SHARE:.0%} of the mini-batch step in "
          f"{sum(flags)} of {len(flags)} configurations; share median {prep.median():.0%} "
          f"(range {prep.min():.0%}-{prep.max():.0%})")
    return fd.Measured(flags, ev, noisy=noisy)


MINIBATCH_SAMPLING = fd.Finding(
    id="minibatch-sampling",
    claim="Mini-batch training time is dominated by sampling and data preparation",
    where="Sec. 6 (mini-batch)",
    tables=("minibatch",), measure=_minibatch,
    criterion=fd.all_of(f"configurations whose sampling + data preparation exceed {MINIBATCH_DOMINANT_SHARE:.0%} "
                        "of the mini-batch step"),
)


# -- 5: data parallel adds communication ---------------------------------------------------------

def _ddp_numbers(ddp: pd.DataFrame) -> str:
    s = data_parallel_summary(fd.ok_rows(ddp))
    multi = s[s["world_size"] > 1].dropna(subset=["allreduce_share", "scaling_efficiency"])
    if multi.empty:
        return ""
    share, eff = multi["allreduce_share"], multi["scaling_efficiency"]
    return (f"measured here (not a verdict): with >1 process the gradient all-reduce takes median {share.median():.0%} "
            f"of a step (range {share.min():.0%}-{share.max():.0%}), scaling efficiency median {eff.median():.2f} "
            f"(range {eff.min():.2f}-{eff.max():.2f})")


def _ddp_testable(machine: dict, t: fd.Tables) -> str | None:
    ddp = t.get("data_parallel")
    ok = fd.ok_rows(ddp) if ddp is not None else None
    reason = None
    if ok is not None and "device" in ok and len(ok) and (ok["device"] != "cuda").any():
        reason = ("the data-parallel processes ran on CPU cores (gloo): processes sharing a few CPU cores cannot "
                  "stand in for several GPUs with their own memory and interconnect")
    if reason is None:
        reason = fd.needs_gpus(2, "one process per GPU, as in the paper")(machine, t)
    if reason and ok is not None and len(ok):
        numbers = _ddp_numbers(ddp)
        reason += f"; {numbers}" if numbers else ""
    return reason


def _ddp(t: fd.Tables) -> fd.Measured:
    ddp = t.ok("data_parallel")
    s = data_parallel_summary(ddp)
    multi = s[s["world_size"] > 1].dropna(subset=["allreduce_share", "scaling_efficiency"])
    if multi.empty:
        raise fd.NotMeasured("only one process was run")
    flags = ((multi["allreduce_share"] >= ALLREDUCE_SHARE) & (multi["scaling_efficiency"] <= SCALING_EFFICIENCY)).tolist()
    per_step = ddp[ddp["region"] == STEP_TOTAL].groupby(CONFIG + ["world_size", "step"], as_index=False)["seconds"].max()
    noisy = fd.count_noisy(fd.summarize_by(per_step, CONFIG + ["world_size"])) if not per_step.empty else 0
    return fd.Measured(flags, f"{sum(flags)} of {len(flags)} multi-process configurations; " + _ddp_numbers(ddp),
                       noisy=noisy)


DATA_PARALLEL = fd.Finding(
    id="data-parallel-communication",
    claim="Data-parallel training adds gradient communication that limits scaling",
    where="Sec. 6 (multi-GPU)",
    tables=("data_parallel",), measure=_ddp, testable=_ddp_testable,
    criterion=fd.all_of(f"multi-process configurations whose all-reduce takes >= {ALLREDUCE_SHARE:.0%} of a step "
                        f"and whose scaling efficiency is <= {SCALING_EFFICIENCY}"),
)

#: Every finding of the notebook, in the order the notebook lists them.
FINDINGS = [AGGREGATION_DOMINATES, METAPATHS_GROW, BACKWARD_MEMORY, MINIBATCH_SAMPLING, DATA_PARALLEL]
