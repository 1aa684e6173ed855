"""The paper's operations and numbers as data: every upstream script is listed with the registry
operations that cover it (no stale names), and the paper's numbers are set beside ours only where we
measured the same operation, implementation, sparsity and reduce factor."""

from __future__ import annotations

import math

import pandas as pd

from studylib.studies.op_microbenchmarks import ops, upstream


def test_coverage_lists_every_upstream_script_and_known_operations():
    cov = upstream.coverage()
    assert len(cov) == len(upstream.UPSTREAM_OPERATIONS) and cov["upstream"].is_unique
    assert {"benchmark_scatter_multiply.py", "benchmark_native_matmul.py", "benchmark_fused_index_add_reduce.py",
            "benchmark_fused_index_select_reduce.py"} <= set(cov["upstream"])
    assert not cov.loc[cov["upstream"] == "benchmark_spline_conv.py", "covered"].item()
    for names in cov["registry"]:
        ops.check_names([n for n in names.split(", ") if n])


def test_paper_numbers_name_registered_implementations():
    paper = upstream.paper_table()
    assert len(paper) == 9 and (paper["paper_s"] > 0).all()
    for r in paper.to_dict("records"):
        im = ops.get(r["op"]).impl(r["impl"])
        assert im.role == r["role"]
    spmm = paper[paper["op"] == "spmm"].set_index("sparsity")["paper_s"]
    assert spmm.to_dict() == {0.5: 0.108, 0.9: 0.015, 0.99: 0.0013}


def test_beside_ours_matches_configuration_and_leaves_the_rest_empty():
    summ = pd.DataFrame([
        {"op": "spmm", "impl": "torch_sparse.spmm(index)", "dtype": "float32", "size": s, "sparsity": 0.9,
         "reduce_factor": 1, "median_s": 0.001 * s / 1024, "numel": s, "nnz": s // 10} for s in (1024, 4096)] + [
        {"op": "coalesce", "impl": "torch.Tensor.coalesce", "dtype": "float32", "size": 4096, "sparsity": sp,
         "reduce_factor": 8, "median_s": 0.002, "numel": 4096, "nnz": 400} for sp in (0.0, 0.9)])
    out = upstream.beside_ours(summ)
    row = out[(out["op"] == "spmm") & (out["sparsity"] == 0.9)].iloc[0]
    assert row["ours_s"] == 0.004 and row["our_shape"] == "4,096 elements, nnz 409"  # the largest size
    assert math.isclose(row["paper_over_ours"], 0.015 / 0.004)
    assert out[(out["op"] == "spmm") & (out["sparsity"] == 0.5)]["ours_s"].isna().all()  # not measured
    native = out[(out["op"] == "coalesce") & (out["role"] == ops.NATIVE)].iloc[0]
    assert native["ours_s"] == 0.002 and native["our_sparsity"] == 0.0  # no sparsity in the paper: our lowest
    assert out[(out["op"] == "coalesce") & (out["role"] == ops.PYG)]["ours_s"].isna().all()
    assert upstream.beside_ours(pd.DataFrame())["ours_s"].isna().all()
