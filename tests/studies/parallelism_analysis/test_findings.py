"""05-parallelism-analysis's findings: each declared verdict is reached from small synthetic tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studylib import findings as fd
from studylib.studies.parallelism_analysis import findings as f05
from studylib.timing import NEIGHBOR_AGGREGATION, STEP_TOTAL

CPU = {"gpus": [], "cores_available": 2, "logical_cores": 2}


def _configs(n: int, model: str = "gcn") -> pd.DataFrame:
    return pd.DataFrame({"graph": [f"g{i}" for i in range(n)], "model": model, "framework": "dgl", "num_layers": 2})


def _summary(exponent: float, n: int = 8, t0: float = 0.0, noisy: int = 0) -> pd.DataFrame:
    W = np.logspace(6, 10, n)
    s = _configs(n).assign(flops=W, median_s=t0 + 1e-9 * W ** exponent * 1e9 ** (1 - exponent),
                           noisy=[i < noisy for i in range(n)])
    return s


def test_time_follows_work_uses_the_exponent_over_the_upper_half():
    f = next(x for x in f05.FINDINGS if x.id == "time-follows-work-gcn")
    cases = [{"summary": _summary(1.0)}, {"summary": _summary(0.7)}, {"summary": _summary(0.3)},
             {"summary": _summary(1.0, n=3)}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    # a large fixed cost flattens the small sizes only: the upper half still scales with work
    # (the plain t = c W fit would be poor here)
    r = fd.evaluate_one(f, {"summary": _summary(1.0, n=12, t0=1e-3)}, CPU)
    assert r["verdict"] == fd.REPRODUCED, r["evidence"]
    # noisy summaries of the upper half and failed step rows are reported
    st = pd.concat([_configs(2).assign(status="ok"), _configs(1).assign(status="oom")])
    r = fd.evaluate_one(f, {"summary": _summary(1.0, noisy=8), "step_times": st}, CPU)
    assert r["noisy"] and r["failed_rows"] == 1 and "noisy" in r["evidence"] and "oom 1" in r["evidence"]
    fits = pd.DataFrame([{"model": "gcn", "fit": "work", "r2_log": -0.5, "min_ratio": 0.2, "max_ratio": 3.0},
                         {"model": "gcn", "fit": "work+overhead", "r2_log": 0.95, "t0_s": 1e-3, "c_s_per_flop": 1e-9}])
    r = fd.evaluate_one(f, {"summary": _summary(1.0), "fits": fits}, CPU)
    assert "R² (log-log) = -0.500" in r["evidence"] and "t0 = 1.00 ms" in r["evidence"]


def _split(pairs) -> pd.DataFrame:
    """``pairs``: per configuration (dense flop share, dense time share)."""
    rows = []
    for i, (df, dt) in enumerate(pairs):
        for bucket, fl, ti in (("dense", df, dt), ("sparse", 1 - df, 1 - dt)):
            rows.append({**_configs(1).iloc[0].to_dict(), "graph": f"g{i}", "bucket": bucket, "flop_share": fl,
                         "time_share": ti})
    return pd.DataFrame(rows)


def test_dense_vs_sparse_reaches_every_verdict():
    f = f05.DENSE_SPARSE
    prof = pd.DataFrame({"seconds": [1.0, 2.0], "status": ["ok", "oom"]})
    cases = [{"split": _split([(0.8, 0.7), (0.2, 0.3)])}, {"split": _split([(0.8, 0.7), (0.2, 0.7)])},
             {"split": _split([(0.8, 0.3)])}, {"split": _split([(0.8, 0.7)])[lambda d: d["bucket"] == "dense"]}]
    cases = [{**c, "kernel_profile": prof} for c in cases]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    assert fd.evaluate_one(f, cases[0], CPU)["failed_rows"] == 1


def test_brent_reaches_every_verdict():
    f = f05.BRENT

    def sc(eff):
        return _configs(len(eff)).assign(threads=2, efficiency=eff, speedup=[2 * e for e in eff], parallelism=1e5)
    cases = [{"scaling": sc([0.9, 0.85])}, {"scaling": sc([0.9, 0.5])}, {"scaling": sc([0.5])},
             {"scaling": sc([float("nan")])}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()


def _partitions(dgl_halos, predicted: int = 100) -> pd.DataFrame:
    rows = []
    for i, h in enumerate(dgl_halos):
        P = 2 ** (i + 1)
        rows.append({"graph": "cora", "method": "metis", "num_parts": P, "halo_nodes": predicted, "cut_edges": 10 * P,
                     "edge_cut_fraction": 0.1 * i, "dgl_halo_nodes": h, "halo_nodes_on_dgl_assignment": predicted,
                     "status": "ok"})
        rows.append({"graph": "cora", "method": "random", "num_parts": P, "halo_nodes": 3 * predicted,
                     "cut_edges": 50 * P, "edge_cut_fraction": 0.5, "dgl_halo_nodes": np.nan,
                     "halo_nodes_on_dgl_assignment": np.nan, "status": "ok"})
    return pd.DataFrame(rows)


def test_communication_follows_the_partition_can_fail():
    f = f05.HALO_MATCHES_DISTDGL
    cases = [{"partitions": _partitions([100, 103])}, {"partitions": _partitions([100, 103, 150, 160])[:6]},
             {"partitions": _partitions([150, 40])}, {"partitions": _partitions([100]).drop(columns="dgl_halo_nodes")}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    r = fd.evaluate_one(f, cases[0], CPU)
    assert "METIS halo / random halo 0.33-0.33" in r["evidence"]


def test_halo_matches_02_reaches_every_verdict_and_says_why_not_measured():
    f = f05.declare({"communication": "no results of 02-distributed-caching here"})[f05.analysis.MODELS.__len__() + 3]
    assert f.id == "halo-matches-02"

    def mc(values):
        return pd.DataFrame([{"graph": "cora", "num_parts": 2 ** (i + 1), "quantity": "halo_nodes", "value": v}
                             for i, v in enumerate(values)])
    parts = _partitions([100, 100])
    cases = [{"partitions": parts, "measured_comm": mc([105, 95])}, {"partitions": parts, "measured_comm": mc([105, 200])},
             {"partitions": parts, "measured_comm": mc([300])}, {"partitions": parts}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    assert "02-distributed-caching" in fd.evaluate_one(f, cases[3], CPU)["evidence"]


def test_hgnn_order_reaches_every_verdict():
    f = f05.declare({"hgnn": "01-hgnn-training has not run here"})[-2]
    assert f.id == "hgnn-work-orders-models"

    def h(order_ok: list[bool]):
        rows = []
        for i, ok in enumerate(order_ok):
            for model, flops, sec in (("rgcn", 1, 1), ("han", 2, 2 if ok else 0.5)):
                rows += [{"region": STEP_TOTAL, "model": model, "framework": "dgl", "dataset": f"d{i}",
                          "predicted_flops": flops, "measured_s": sec},
                         {"region": NEIGHBOR_AGGREGATION, "model": model, "framework": "dgl", "dataset": f"d{i}",
                          "predicted_flops": flops / 2, "measured_s": sec / 2}]
        return pd.DataFrame(rows)
    cases = [{"hgnn": h([True, True])}, {"hgnn": h([True, False])}, {"hgnn": h([False])}, {}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    assert "01-hgnn-training" in fd.evaluate_one(f, {}, CPU)["evidence"]


def _roofline(rows) -> dict:
    """``rows``: (measured / predicted ratio, bound) per configuration."""
    c = _configs(len(rows))
    res = c.assign(ratio=[r for r, _ in rows])
    roof = c.assign(bound=[b for _, b in rows], intensity=[0.5 if b == "bandwidth" else 5.0 for _, b in rows],
                    balance=2.0, noisy=False)
    return {"residuals": res, "roof": roof}


def test_failures_bandwidth_bound_checks_which_configurations_fail():
    f = f05.declare({"limits": "00-hardware has not run here"})[-1]
    assert f.id == "failures-bandwidth-bound"
    cases = [_roofline([(3.0, "bandwidth"), (0.3, "bandwidth"), (1.0, "compute"), (1.1, "compute")]),
             _roofline([(3.0, "bandwidth"), (0.3, "compute"), (1.0, "compute"), (1.1, "compute")]),
             # failures no more often bandwidth bound than the fitted ones: not reproduced
             _roofline([(3.0, "bandwidth"), (0.3, "compute"), (1.0, "bandwidth"), (1.1, "compute")]),
             _roofline([(1.0, "bandwidth"), (1.1, "compute")])]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    assert "00-hardware" in fd.evaluate_one(f, {"residuals": cases[0]["residuals"]}, CPU)["evidence"]


def test_declarations_one_per_model_then_six():
    found = f05.declare()
    assert [x.id for x in found[:4]] == [f"time-follows-work-{m}" for m in ("gcn", "sage", "gin", "gat")]
    assert len(found) == 10 and len({x.id for x in found}) == 10
    frame = fd.evaluate(found, f05.tables(), CPU, "05-parallelism-analysis")
    assert set(frame["verdict"]) == {fd.NOT_MEASURED}
