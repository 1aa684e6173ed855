"""The findings of ``01-hgnn-training``: the paper's claims this notebook tests and their verdicts
computed from this run's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib import timing
from studylib.studies.hgnn_training.measure import (
    CONFIG,
    data_parallel_summary,
    memory_summary,
    minibatch_summary,
    profiled_stage_shares,
)
from studylib.timing import (
    BACKWARD,
    DATA_PREPARATION,
    FORWARD,
    NEIGHBOR_AGGREGATION,
    SAMPLING,
)


def evaluate_findings(stage_times: pd.DataFrame | None, kernels: pd.DataFrame | None, han: pd.DataFrame | None,
                      minibatch: pd.DataFrame | None, ddp: pd.DataFrame | None) -> pd.DataFrame:
    """The paper's findings (Han et al., TACO 2025, Sec. 5-6) checked against this run's tables.

    Returns one row per finding: ``finding``, ``verdict`` (``reproduced``, ``partly``,
    ``not reproduced``, ``not measured``) and ``evidence`` (the numbers behind the verdict).
    A verdict is computed from the numbers only; nothing is assumed.
    """
    out = []

    def add(finding, verdict, evidence):
        out.append({"finding": finding, "verdict": verdict, "evidence": evidence})

    # F1: neighbor aggregation dominates training time
    f1 = "Neighbor aggregation is the largest stage of HGNN training"
    if kernels is not None and not kernels.empty:
        st = profiled_stage_shares(kernels)
        st = st[st["stage"] != "other"]
        top = st.loc[st.groupby(CONFIG)["share"].idxmax()]
        n_na = int((top["stage"] == NEIGHBOR_AGGREGATION).sum())
        na = st[st["stage"] == NEIGHBOR_AGGREGATION]["share"]
        fp = st[st["stage"] == timing.FEATURE_PROJECTION]["share"]
        verdict = "reproduced" if n_na == len(top) else ("partly" if n_na > 0 else "not reproduced")
        per_model = st.pivot_table(index="model", columns="stage", values="share", aggfunc="median")
        detail = "; ".join(f"{m.upper()}: aggregation {r.get(NEIGHBOR_AGGREGATION, 0):.0%}, projection "
                           f"{r.get(timing.FEATURE_PROJECTION, 0):.0%}" for m, r in per_model.iterrows())
        add(f1, verdict, f"largest stage (forward + backward, profiler) is neighbor aggregation in {n_na} of "
                         f"{len(top)} configurations; aggregation share median {na.median():.0%} "
                         f"(range {na.min():.0%}-{na.max():.0%}), feature projection median {fp.median():.0%}; "
                         f"median per model: {detail}")
    else:
        add(f1, "not measured", "no kernel-class table")

    # F2: aggregation time grows with number and length of metapaths
    f2 = "HAN's aggregation time grows with the number and the length of metapaths"
    if han is not None and not han.empty:
        d = han[han["region"] == NEIGHBOR_AGGREGATION].groupby(
            ["dataset", "framework", "sweep", "num_metapaths", "metapath_length", "step"])["seconds"].sum().groupby(
            ["dataset", "framework", "sweep", "num_metapaths", "metapath_length"]).median().reset_index()
        ev, ok = [], []
        for (ds, fw, sweep), g in d.groupby(["dataset", "framework", "sweep"]):
            x = "num_metapaths" if sweep == "count" else "metapath_length"
            g = g.sort_values(x)
            if len(g) < 2:
                ev.append(f"{ds} {fw} {sweep}: one point only (larger metapaths over the edge cap)")
                continue
            inc = bool(np.all(np.diff(g["seconds"].to_numpy()) > 0))
            ok.append(inc)
            ev.append(f"{ds} {fw} {sweep} {'/'.join(str(v) for v in g[x])}: "
                      + " → ".join(f"{v * 1e3:.1f}" for v in g["seconds"]) + " ms")
        verdict = ("not measured" if not ok else "reproduced" if all(ok) else "partly" if any(ok)
                   else "not reproduced")
        add(f2, verdict, "; ".join(ev))
    else:
        add(f2, "not measured", "HAN metapath sweep not run")

    # F3: the backward pass raises memory demand
    f3 = "The backward pass raises memory demand above the forward pass"
    if stage_times is not None and (stage_times["kind"] == "memory").any():
        m = memory_summary(stage_times).pivot_table(index=CONFIG, columns="region", values="increase_mib")
        higher = int((m[BACKWARD] > m[FORWARD]).sum())
        ratio = (m[BACKWARD] / m[FORWARD])
        verdict = "reproduced" if higher == len(m) else ("partly" if higher > 0 else "not reproduced")
        add(f3, verdict, f"peak memory above the step's start is higher in backward than in forward in {higher} of "
                         f"{len(m)} configurations; backward/forward ratio median {ratio.median():.2f} "
                         f"(range {ratio.min():.2f}-{ratio.max():.2f})")
    else:
        add(f3, "not measured", "no memory rows")

    # F4: mini-batch training is dominated by sampling and data preparation
    f4 = "Mini-batch training time is dominated by sampling and data preparation"
    if minibatch is not None and not minibatch.empty:
        med = minibatch_summary(minibatch)
        mbm = med[med["mode"] == "minibatch"]
        prep = mbm[mbm["region"].isin([SAMPLING, DATA_PREPARATION])].groupby(CONFIG)["share"].sum()
        dom = int((prep > 0.5).sum())
        verdict = "reproduced" if dom == len(prep) else ("partly" if dom > 0 else "not reproduced")
        add(f4, verdict, f"sampling + data preparation exceed half of the mini-batch step in {dom} of {len(prep)} "
                         f"configurations; share median {prep.median():.0%} (range {prep.min():.0%}-{prep.max():.0%})")
    else:
        add(f4, "not measured", "mini-batch comparison not run")

    # F5: multi-device training adds communication
    f5 = "Data-parallel training adds gradient communication that limits scaling"
    if ddp is not None and not ddp.empty:
        s = data_parallel_summary(ddp)
        multi = s[s["world_size"] > 1]
        if multi.empty:
            add(f5, "not measured", "only one process was run")
        else:
            share = multi["allreduce_share"]
            eff = multi["scaling_efficiency"]
            verdict = "reproduced" if (share > 0.05).all() and (eff < 1).all() else (
                "partly" if (share > 0.05).any() or (eff < 1).any() else "not reproduced")
            add(f5, verdict, f"with >1 process, gradient all-reduce takes median {share.median():.0%} of a step "
                             f"(range {share.min():.0%}-{share.max():.0%}); scaling efficiency median "
                             f"{eff.median():.2f} (range {eff.min():.2f}-{eff.max():.2f})")
    else:
        add(f5, "not measured", "data-parallel runs not made")
    return pd.DataFrame(out)
