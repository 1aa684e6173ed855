"""The findings of 03-op-microbenchmarks, declared with studylib.findings: each reaches every verdict it
declares from small synthetic tables; a same-kernel cell is left out of the PyG-vs-native comparison;
without PyG's extension kernels that comparison is "not measured". No timing here."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from studylib import findings as fd
from studylib import params
from studylib.studies.op_microbenchmarks import findings as of
from studylib.studies.op_microbenchmarks import measure as om
from studylib.studies.op_microbenchmarks import ops

LIMITS = SimpleNamespace(memory_bandwidth=1e9, peak_flops=lambda dtype="float32": 1e12)


def _times(cells) -> pd.DataFrame:
    """Raw blocks of synthetic cells ``(op, impl, seconds_by_sparsity, kernel_library)``: 3 rounds x 3
    blocks per configuration, size 1024, reduce factor 1, 1 MB compulsory traffic per call."""
    rows = []
    for op, impl, secs, lib in cells:
        role = ops.get(op).impl(impl).role
        for sparsity, seconds in secs.items():
            for r in range(3):
                for b in range(3):
                    rows.append({"op": op, "dtype": "float32", "size": 1024, "sparsity": sparsity, "reduce_factor": 1,
                                 "index_distribution": "uniform", "impl": impl, "role": role, "kernel_library": lib,
                                 "round": r, "block": b, "seconds": seconds * (1 + 0.001 * (b - 1)),
                                 "numel": 1024, "bytes": 1e6, "flops": 0.0, "status": "ok"})
    return pd.DataFrame(rows)


def _pair(op, pyg_s, native_s, pyg_lib="torch_scatter", pyg_impl="torch_scatter.scatter", native_impl=None):
    native_impl = native_impl or ops.get(op).primary(ops.NATIVE).name
    return [(op, pyg_impl, pyg_s, pyg_lib), (op, native_impl, native_s, "torch")]


def _tables(cells, limits=None):
    return of.tables(_times(cells), limits)


def _verdict(finding, tables):
    return fd.evaluate_one(finding, tables, {"gpus": [], "cores_available": 2}, "03-op-microbenchmarks")


# --------------------------------------------------------------------------------------------
# 2. native as fast or faster than PyG's kernels
# --------------------------------------------------------------------------------------------

S4 = (0.0, 0.5, 0.9, 0.99)


def _f2_cases():
    slower = _pair("scatter_max", {s: 1.2 for s in S4}, {s: 1.0 for s in S4})
    mixed = _pair("scatter_max", {0.0: 0.5, 0.5: 0.5, 0.9: 1.2, 0.99: 1.2}, {s: 1.0 for s in S4})
    faster = _pair("scatter_max", {0.0: 0.5, 0.5: 0.5, 0.9: 0.5, 0.99: 1.2}, {s: 1.0 for s in S4})
    same_only = _pair("scatter_sum", {s: 0.5 for s in S4}, {s: 1.0 for s in S4}, pyg_lib="torch")
    return {fd.REPRODUCED: _tables(slower), fd.PARTLY: _tables(mixed), fd.NOT_REPRODUCED: _tables(faster),
            fd.NOT_MEASURED: _tables(same_only)}


def test_native_as_fast_reaches_every_declared_verdict():
    cases = _f2_cases()
    for verdict, tables in cases.items():
        assert _verdict(of.NATIVE_AS_FAST, tables)["verdict"] == verdict, verdict
    assert fd.reached_verdicts(of.NATIVE_AS_FAST, cases.values()) == of.NATIVE_AS_FAST.verdicts()


def test_same_kernel_cells_are_left_out_and_counted():
    """scatter_sum's PyG side ran Tensor.scatter_add_ (kernel library torch): a kernel against itself.
    Counted, it would turn the verdict (PyG 2x faster there); left out, scatter_max decides."""
    cells = (_pair("scatter_max", {s: 1.2 for s in S4}, {s: 1.0 for s in S4})
             + _pair("scatter_sum", {s: 0.5 for s in S4}, {s: 1.0 for s in S4}, pyg_lib="torch")
             + _pair("scatter_mean", {s: 0.5 for s in S4}, {s: 1.0 for s in S4}, pyg_lib="torch"))
    r = om.ratio_table(_times(cells))
    assert set(r[r["same_kernel"]]["op"]) == {"scatter_sum", "scatter_mean"}
    assert set(r[~r["same_kernel"]]["pyg_library"]) == {"torch_scatter"}
    row = _verdict(of.NATIVE_AS_FAST, _tables(cells))
    assert row["verdict"] == fd.REPRODUCED
    assert "4 of 4" in row["evidence"] and "8 cell(s) left out as same kernel" in row["evidence"]
    assert "scatter_mean, scatter_sum" in row["evidence"]


def test_missing_pyg_kernels_give_not_measured(output_dirs, monkeypatch):
    """Without torch_scatter and torch_sparse (simulated: their availability patched away) the
    registry measures no PyG kernel, and the PyG-vs-native finding is not measured."""
    real = ops._has
    monkeypatch.setattr(ops, "_has", lambda name: False if name in ("torch_scatter", "torch_sparse") else real(name))
    monkeypatch.setattr(ops, "extensions", lambda: {"torch_geometric": "2.8.1", "torch_scatter": None,
                                                     "torch_sparse": None, "pyg_lib": None})
    assert ops.get("scatter_max").primary(ops.PYG) is None
    p = params.validate("03-op-microbenchmarks", {
        "operations": ["scatter_max", "spmm"], "sizes": [1024], "sparsities": [0.0, 0.9], "reduce_factors": [1],
        "rounds": 1, "min_run_time": 0.002, "num_threads": 1, "feature_dim": 16, "dtypes": ["float32"],
        "peak_memory": False})
    times = om.run_measurement("op_times", p, torch.device("cpu"), 1)
    assert (times["status"] == "ok").all() and ops.PYG not in set(times["role"])
    assert om.ratio_table(times).empty
    row = _verdict(of.NATIVE_AS_FAST, of.tables(times))
    assert row["verdict"] == fd.NOT_MEASURED
    assert "torch_scatter not installed, torch_sparse not installed" in row["evidence"]


# --------------------------------------------------------------------------------------------
# 1. memory inefficiency dominates
# --------------------------------------------------------------------------------------------

def test_memory_dominates_reaches_every_declared_verdict():
    # bound = 1 MB / 1 GB/s = 1 ms; gap = time at sparsity 0 / 1 ms; sparsity effect = 2x
    def two(pyg0, nat0):
        return _pair("scatter_max", {0.0: pyg0, 0.9: pyg0 / 2}, {0.0: nat0, 0.9: nat0 / 2})

    cases = {fd.REPRODUCED: _tables(two(0.01, 0.01), LIMITS), fd.PARTLY: _tables(two(0.01, 0.0015), LIMITS),
             fd.NOT_REPRODUCED: _tables(two(0.0015, 0.0015), LIMITS), fd.NOT_MEASURED: _tables(two(0.01, 0.01))}
    for verdict, tables in cases.items():
        assert _verdict(of.MEMORY_DOMINATES, tables)["verdict"] == verdict, verdict
    assert fd.reached_verdicts(of.MEMORY_DOMINATES, cases.values()) == of.MEMORY_DOMINATES.verdicts()
    assert "table 'roofline' is missing" in _verdict(of.MEMORY_DOMINATES, cases[fd.NOT_MEASURED])["evidence"]
    assert "gap (time / roofline bound at sparsity 0) median 10.0x" in \
        _verdict(of.MEMORY_DOMINATES, cases[fd.REPRODUCED])["evidence"]


# --------------------------------------------------------------------------------------------
# 3. little gain from sparsity
# --------------------------------------------------------------------------------------------

def test_little_sparsity_gain_reaches_every_declared_verdict():
    def op(name, gain):
        return [(name, ops.get(name).primary(ops.NATIVE).name, {0.0: 1.0, 0.9: 1.0 / gain}, "torch")]

    flat3 = op("addmm", 1.0) + op("gather", 1.02) + op("sort", 1.0)
    one_of3 = op("addmm", 1.0) + op("gather", 3.0) + op("sort", 2.0)
    none = op("addmm", 2.0) + op("gather", 3.0)
    single = [("addmm", "torch.addmm", {0.0: 1.0}, "torch")]
    cases = {fd.REPRODUCED: _tables(flat3), fd.PARTLY: _tables(one_of3), fd.NOT_REPRODUCED: _tables(none),
             fd.NOT_MEASURED: _tables(single)}
    for verdict, tables in cases.items():
        assert _verdict(of.LITTLE_SPARSITY_GAIN, tables)["verdict"] == verdict, verdict
    assert fd.reached_verdicts(of.LITTLE_SPARSITY_GAIN, cases.values()) == of.LITTLE_SPARSITY_GAIN.verdicts()
    assert _verdict(of.LITTLE_SPARSITY_GAIN, cases[fd.PARTLY])["ours"] == "1 of 3"


def test_findings_table_of_the_study():
    frame = fd.evaluate(of.FINDINGS, _f2_cases()[fd.REPRODUCED], {"gpus": [], "cores_available": 2},
                        "03-op-microbenchmarks")
    assert list(frame["id"]) == ["memory-dominates", "native-as-fast", "little-sparsity-gain"]
    assert set(frame["verdict"]) <= set(fd.VERDICTS)
    assert frame.loc[frame["id"] == "memory-dominates", "verdict"].item() == fd.NOT_MEASURED  # no limits given


@pytest.mark.parametrize("finding", of.FINDINGS, ids=lambda f: f.id)
def test_failed_rows_are_counted_not_dropped(finding):
    cells = _pair("scatter_max", {s: 1.2 for s in S4}, {s: 1.0 for s in S4})
    times = _times(cells)
    times = pd.concat([times, pd.DataFrame([{**times.iloc[0].to_dict(), "size": 2**42, "status": "refused",
                                             "seconds": float("nan")}])], ignore_index=True)
    row = _verdict(finding, of.tables(times, LIMITS))
    assert row["failed_rows"] == 1 and "refused 1" in row["evidence"]
