"""What the paper measured, as data: the operations of its benchmark scripts and the numbers its
figures give, so that the notebook can list which operations the registry covers and put the
paper's number beside ours where the figure shows the same operation and shape.

Sources: Hosseini, Simini, Vishwanath, *Operation-Level Performance Benchmarking of Graph Neural
Networks for Scientific Applications* (arXiv 2207.09955; NVIDIA A100, PyTorch 1.11, PyG 2.0.2),
and its public code ``ryienh/gnn-ops-benchmark`` (``op_bm_scripts/``, ``benchmark_*.py``).
"""

from __future__ import annotations

import pandas as pd

from studylib.studies.op_microbenchmarks import ops

#: Hardware and software of the paper's numbers.
PAPER_SETUP = "NVIDIA A100, PyTorch 1.11, PyG 2.0.2"

#: The operations of gnn-ops-benchmark's scripts: ``(upstream script, what it times, registry
#: operations that cover it)``; an empty tuple means the registry does not cover it.
UPSTREAM_OPERATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("benchmark_scatter_add.py", "torch_scatter.scatter_add vs Tensor.scatter_add_, index per element, dims 0 and 1",
     ("scatter_sum_elem", "scatter_sum_elem_dim1", "scatter_sum")),
    ("benchmark_scatter_mean.py", "torch_scatter.scatter_mean vs native, index per element",
     ("scatter_mean_elem", "scatter_mean")),
    ("benchmark_scatter_max.py", "torch_scatter.scatter_max vs native, index per element",
     ("scatter_max_elem", "scatter_max_elem_dim1", "scatter_max")),
    ("benchmark_scatter_min.py", "torch_scatter.scatter_min vs native, index per element",
     ("scatter_min_elem", "scatter_min")),
    ("benchmark_scatter_multiply.py", "Tensor.scatter_(reduce='multiply') (native only)", ("scatter_mul",)),
    ("benchmark_scatter_ops.py", "torch_scatter segment_coo / segment_csr (imported)",
     ("segment_sum", "segment_mean", "segment_max", "segment_min")),
    ("benchmark_sparse_spmm.py", "torch_sparse.spmm(index, value, m, n, B) vs torch.sparse.mm", ("spmm",)),
    ("benchmark_sparse_spspmm.py", "torch_sparse.spspmm vs torch.sparse.mm (COO x COO)", ("spspmm",)),
    ("benchmark_sparse_coalesce.py", "torch_sparse.coalesce vs Tensor.coalesce, entries repeated rf times",
     ("coalesce",)),
    ("benchmark_sparse_transpose.py", "torch_sparse.transpose vs torch.transpose of a sparse COO tensor",
     ("transpose",)),
    ("benchmark_native_gather.py", "torch.gather", ("gather",)),
    ("benchmark_native_index_select.py", "torch.index_select along dims 0, 1 (and 2 of 3-D inputs)",
     ("index_select_dim0", "index_select_dim1")),
    ("benchmark_native_index_add_.py", "Tensor.index_add_", ("index_add",)),
    ("benchmark_native_sort.py", "torch.sort", ("sort",)),
    ("benchmark_native_addmm.py", "torch.addmm", ("addmm",)),
    ("benchmark_native_matmul.py", "dense torch.matmul of two square matrices", ("matmul",)),
    ("benchmark_fused_index_add_reduce.py", "index_add, index_select, sum: eager vs torch.jit.script",
     ("fused_index_add_reduce",)),
    ("benchmark_fused_index_select_reduce.py", "index_select, sum: eager vs torch.jit.script",
     ("fused_index_select_reduce",)),
    ("benchmark_spline_conv.py", "torch_spline_conv.spline_conv (SplineConv's kernel)", ()),
)

#: The paper's numbers where its figure shows an operation and shape this registry measures
#: (seconds per call): ``op`` and ``impl`` name our operation and the implementation that
#: corresponds to the paper's, ``role`` its role; ``sparsity``, ``reduce_factor`` pick our
#: configuration; ``shape`` is the shape the paper's number refers to.
PAPER_NUMBERS: tuple[dict, ...] = (
    {"op": "spmm", "impl": "torch_sparse.spmm(index)", "role": ops.PYG, "sparsity": 0.5, "reduce_factor": 1,
     "shape": "sparse 1700 x 1700 @ dense 1700 x 1700", "paper_s": 0.108},
    {"op": "spmm", "impl": "torch_sparse.spmm(index)", "role": ops.PYG, "sparsity": 0.9, "reduce_factor": 1,
     "shape": "sparse 1700 x 1700 @ dense 1700 x 1700", "paper_s": 0.015},
    {"op": "spmm", "impl": "torch_sparse.spmm(index)", "role": ops.PYG, "sparsity": 0.99, "reduce_factor": 1,
     "shape": "sparse 1700 x 1700 @ dense 1700 x 1700", "paper_s": 0.0013},
    {"op": "index_select_dim0", "impl": "torch.index_select", "role": ops.NATIVE, "sparsity": 0.0,
     "reduce_factor": 1, "shape": "2-D input, along dim 0", "paper_s": 0.091},
    {"op": "index_select_dim1", "impl": "torch.index_select", "role": ops.NATIVE, "sparsity": 0.0,
     "reduce_factor": 1, "shape": "2-D input, along dim 1", "paper_s": 0.966},
    {"op": "coalesce", "impl": "torch_sparse.coalesce", "role": ops.PYG, "sparsity": None, "reduce_factor": 8,
     "shape": "COO entries repeated 8 times (reduce factor 8)", "paper_s": 9.56},
    {"op": "coalesce", "impl": "torch.Tensor.coalesce", "role": ops.NATIVE, "sparsity": None, "reduce_factor": 8,
     "shape": "COO entries repeated 8 times (reduce factor 8)", "paper_s": 0.34},
    {"op": "scatter_sum", "impl": "torch_scatter.scatter", "role": ops.PYG, "sparsity": 0.0, "reduce_factor": 1,
     "shape": "1-D input", "paper_s": 0.535},
    {"op": "scatter_sum", "impl": "torch.scatter_add_", "role": ops.NATIVE, "sparsity": 0.0, "reduce_factor": 1,
     "shape": "1-D input", "paper_s": 0.522},
)


def coverage() -> pd.DataFrame:
    """The upstream operations and which registry operations cover them: columns ``upstream``,
    ``what``, ``registry`` (names joined by ``, ``; empty when not covered), ``covered`` (bool).
    Raises ``ValueError`` when a listed registry operation does not exist (a stale list)."""
    rows = []
    for script, what, names in UPSTREAM_OPERATIONS:
        ops.check_names(names)
        rows.append({"upstream": script, "what": what, "registry": ", ".join(names), "covered": bool(names)})
    return pd.DataFrame(rows)


def paper_table() -> pd.DataFrame:
    """:data:`PAPER_NUMBERS` as a table (``sparsity`` NaN where the paper's figure gives none: the
    comparison then uses our lowest sparsity)."""
    return pd.DataFrame(list(PAPER_NUMBERS))


def beside_ours(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's numbers beside ours: for each row of :func:`paper_table`, our median seconds per
    call of the same operation and implementation at the same sparsity (our lowest where the paper
    gives none) and reduce factor, at our largest measured size, with the shape we ran.

    Args:
        summary: :func:`studylib.studies.op_microbenchmarks.measure.summary` of this run (columns
            ``op``, ``impl``, ``dtype``, ``size``, ``sparsity``, ``reduce_factor``, ``median_s``,
            ``numel``, ``nnz``).

    Returns the paper table plus ``ours_s`` (NaN when not measured: the implementation is
    missing, e.g. without ``torch_sparse``), ``our_shape`` (elements of the main input; nnz for
    sparse inputs), ``our_sparsity``, ``paper_over_ours``. The shapes differ: the paper filled an
    A100's memory; read the ratio as orders of magnitude, not as a verdict.
    """
    paper = paper_table()
    out = []
    s = summary[summary["dtype"] == "float32"] if summary is not None and not summary.empty else summary
    for r in paper.to_dict("records"):
        row = {**r, "ours_s": float("nan"), "our_shape": "", "our_sparsity": float("nan"),
               "paper_over_ours": float("nan")}
        if s is not None and not s.empty:
            d = s[(s["op"] == r["op"]) & (s["impl"] == r["impl"]) & (s["reduce_factor"] == r["reduce_factor"])]
            if not d.empty:
                sp = r["sparsity"] if r["sparsity"] is not None and not pd.isna(r["sparsity"]) else d["sparsity"].min()
                d = d[d["sparsity"] == sp]
            if not d.empty:
                d = d[d["size"] == d["size"].max()].iloc[0]
                nnz = d.get("nnz")
                row.update(ours_s=float(d["median_s"]), our_sparsity=float(d["sparsity"]),
                           our_shape=f"{int(d['numel']):,} elements" + (f", nnz {int(nnz):,}" if nnz is not None
                                                                          and not pd.isna(nnz) else ""),
                           paper_over_ours=float(r["paper_s"] / d["median_s"]))
        out.append(row)
    return pd.DataFrame(out)
