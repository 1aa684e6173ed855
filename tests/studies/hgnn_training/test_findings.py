"""01-hgnn-training's findings: each declared verdict is reached from small synthetic tables."""

from __future__ import annotations

import pandas as pd

from studylib import findings as fd
from studylib.studies.hgnn_training import findings as f01
from studylib.timing import (
    BACKWARD,
    DATA_PREPARATION,
    FEATURE_PROJECTION,
    FORWARD,
    GRADIENT_ALLREDUCE,
    NEIGHBOR_AGGREGATION,
    SAMPLING,
    STEP_TOTAL,
)

CPU = {"gpus": [], "cores_available": 2, "logical_cores": 2}
GPUS = {"gpus": [{"name": "G"}, {"name": "G"}], "cores_available": 16, "logical_cores": 16}
CFG = {"framework": "dgl", "dataset": "acm"}


def _kernels(shares: dict[str, float]) -> pd.DataFrame:
    """One configuration per model: aggregation share ``shares[model]``, projection the rest."""
    rows = []
    for model, agg in shares.items():
        rows += [{"model": model, **CFG, "phase": FORWARD, "stage": NEIGHBOR_AGGREGATION, "kernel_class": "spmm",
                  "op": "a", "seconds": agg},
                 {"model": model, **CFG, "phase": FORWARD, "stage": FEATURE_PROJECTION, "kernel_class": "gemm",
                  "op": "b", "seconds": 1 - agg}]
    return pd.DataFrame(rows)


def test_aggregation_dominates_reaches_every_verdict():
    f = f01.AGGREGATION_DOMINATES
    cases = [{"kernel_classes": _kernels({"rgcn": 0.7, "han": 0.8})},
             {"kernel_classes": _kernels({"rgcn": 0.7, "han": 0.2})},
             {"kernel_classes": _kernels({"rgcn": 0.3, "han": 0.2})},
             {}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    assert "1 of 2" in fd.evaluate_one(f, cases[1], CPU)["evidence"]


def _han(count_times, length_times, status_failed: int = 0) -> pd.DataFrame:
    rows = []
    for sweep, times in (("count", count_times), ("length", length_times)):
        for i, sec in enumerate(times):
            for step in range(3):
                rows.append({"dataset": "acm", "framework": "dgl", "sweep": sweep,
                             "num_metapaths": i + 1 if sweep == "count" else 1,
                             "metapath_length": i + 2 if sweep == "length" else 2, "step": step,
                             "region": NEIGHBOR_AGGREGATION, "seconds": sec, "status": "ok"})
    rows += [{"dataset": "acm", "framework": "dgl", "sweep": "count", "num_metapaths": 9, "metapath_length": 2,
              "step": 0, "region": NEIGHBOR_AGGREGATION, "seconds": float("nan"), "status": "oom"}] * status_failed
    return pd.DataFrame(rows)


def test_han_metapaths_reaches_every_verdict_and_counts_failed_rows():
    f = f01.METAPATHS_GROW
    cases = [{"han_metapaths": _han([1, 2, 3], [1, 2])}, {"han_metapaths": _han([1, 2, 3], [2, 1])},
             {"han_metapaths": _han([3, 2, 1], [2, 1])}, {"han_metapaths": _han([1], [1])}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    r = fd.evaluate_one(f, {"han_metapaths": _han([1, 2, 3], [1, 2], status_failed=2)}, CPU)
    assert r["verdict"] == fd.REPRODUCED and r["failed_rows"] == 2 and "oom 2" in r["evidence"]


def _memory(pairs) -> pd.DataFrame:
    """``pairs``: per model (forward own MiB, backward own MiB)."""
    rows, mib = [], 2**20
    for model, (fwd, bwd) in pairs.items():
        base = 100 * mib
        rows.append({"model": model, **CFG, "kind": "memory", "region": FORWARD, "step": -1, "seconds": float("nan"),
                     "peak_bytes": base + fwd * mib, "baseline_bytes": base, "phase_start_bytes": base})
        # the backward pass starts with the forward's activations alive: its peak is always above
        # the forward's, which the old check compared; the own allocation is what is compared now
        start = base + fwd * mib
        rows.append({"model": model, **CFG, "kind": "memory", "region": BACKWARD, "step": -1,
                     "seconds": float("nan"), "peak_bytes": start + bwd * mib, "baseline_bytes": base,
                     "phase_start_bytes": start})
    return pd.DataFrame(rows)


def test_backward_memory_compares_the_backward_pass_own_allocation():
    f = f01.BACKWARD_MEMORY
    old = _memory({"rgcn": (10, 1)}).drop(columns="phase_start_bytes")
    cases = [{"stage_times": _memory({"rgcn": (10, 20), "han": (5, 6)})},
             {"stage_times": _memory({"rgcn": (10, 20), "han": (5, 1)})},
             {"stage_times": _memory({"rgcn": (10, 2), "han": (5, 1)})},
             {"stage_times": old}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    # a backward peak above the forward's (activations alive) no longer suffices
    r = fd.evaluate_one(f, cases[2], CPU)
    assert r["verdict"] == fd.NOT_REPRODUCED and "0 of 2" in r["evidence"]
    assert "measure again" in fd.evaluate_one(f, cases[3], CPU)["evidence"]


def _minibatch(prep_shares) -> pd.DataFrame:
    rows = []
    for model, share in prep_shares.items():
        for step in range(3):
            parts = {SAMPLING: share / 2, DATA_PREPARATION: share / 2, FORWARD: 1 - share, STEP_TOTAL: 1.0}
            rows += [{"model": model, **CFG, "mode": "minibatch", "step": step, "region": r, "seconds": s}
                     for r, s in parts.items()]
    return pd.DataFrame(rows)


def test_minibatch_sampling_reaches_every_verdict():
    f = f01.MINIBATCH_SAMPLING
    cases = [{"minibatch": _minibatch({"rgcn": 0.7, "han": 0.6})}, {"minibatch": _minibatch({"rgcn": 0.7, "han": 0.2})},
             {"minibatch": _minibatch({"rgcn": 0.3})}, {"minibatch": None}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()


def _ddp(device: str, share: float, efficiency: float) -> pd.DataFrame:
    """World sizes 1 and 2; the 2-process step takes ``1 / (2 efficiency)`` of the 1-process one."""
    rows = []
    for ws, step_s in ((1, 1.0), (2, 1.0 / (2 * efficiency))):
        for step in range(3):
            for rank in range(ws):
                rows += [{"model": "rgcn", **CFG, "world_size": ws, "rank": rank, "step": step, "region": STEP_TOTAL,
                          "seconds": step_s, "batches_per_epoch": 4, "device": device, "status": "ok"},
                         {"model": "rgcn", **CFG, "world_size": ws, "rank": rank, "step": step,
                          "region": GRADIENT_ALLREDUCE, "seconds": share * step_s if ws > 1 else 0.0,
                          "batches_per_epoch": 4, "device": device, "status": "ok"}]
    return pd.DataFrame(rows)


def test_data_parallel_is_not_testable_on_cpu_processes_and_decided_on_gpus():
    f = f01.DATA_PARALLEL
    cpu = fd.evaluate_one(f, {"data_parallel": _ddp("cpu", 0.2, 0.6)}, CPU)
    assert cpu["verdict"] == fd.NOT_TESTABLE
    assert "cannot stand in for several GPUs" in cpu["evidence"] and "20%" in cpu["evidence"]
    # CPU processes are not testable even on a machine that has GPUs
    assert fd.evaluate_one(f, {"data_parallel": _ddp("cpu", 0.2, 0.6)}, GPUS)["verdict"] == fd.NOT_TESTABLE
    two = pd.concat([_ddp("cuda", 0.2, 0.6), _ddp("cuda", 0.01, 0.6).assign(dataset="imdb")])
    cases = [{"data_parallel": _ddp("cuda", 0.2, 0.6)}, {"data_parallel": two},
             {"data_parallel": _ddp("cuda", 0.01, 0.98)}, {"data_parallel": _ddp("cuda", 0.2, 0.6)[lambda d: d["world_size"] == 1]}]
    assert fd.reached_verdicts(f, cases, GPUS) | {cpu["verdict"]} == f.verdicts()


def test_findings_are_declared_once_with_unique_ids():
    assert len({f.id for f in f01.FINDINGS}) == len(f01.FINDINGS) == 5
    frame = fd.evaluate(f01.FINDINGS, f01.tables(), CPU, "01-hgnn-training")
    assert set(frame["verdict"]) <= {fd.NOT_MEASURED, fd.NOT_TESTABLE}
