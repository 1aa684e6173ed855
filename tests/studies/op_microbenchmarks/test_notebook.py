"""Notebooks 00-hardware and 03-op-microbenchmarks run end to end with the smoke profile through
papermill (00 first, so that 03 draws its roofline against 00's limits), and their tables and
figures have the expected schema."""

import json

import pandas as pd
import pytest

from studylib import runner

pytestmark = pytest.mark.slow

TABLES_00 = {
    "bandwidth": {"kernel", "threads", "array_bytes", "dtype", "round", "block", "seconds", "bytes", "bytes_per_s",
                  "device", "status", "run_id"},
    "gemm": {"n", "dtype", "threads", "round", "block", "seconds", "flops", "flops_per_s", "device", "status"},
    "limits": {"device", "limit", "threads", "value", "unit", "q1", "q3", "n", "detail"},
}
COLUMNS_03 = {"op", "dtype", "size", "sparsity", "reduce_factor", "index_distribution", "impl", "role", "backend",
              "kernels", "kernel_library", "torch_scatter", "torch_sparse", "round", "block", "seconds", "number_per_run", "numel",
              "density", "bytes", "flops", "peak_memory_bytes", "num_threads", "device", "status", "run_id"}


def test_smoke_profiles_end_to_end(output_dirs):
    res = runner.run_notebooks(["00-hardware", "03-op-microbenchmarks"], "smoke", timeout=600)
    assert [r.status for r in res] == ["ok", "ok"], [(r.notebook, r.status, r.message) for r in res]

    out0 = output_dirs / "results" / "00-hardware"
    for name, columns in TABLES_00.items():
        df = pd.read_parquet(out0 / f"{name}.parquet")
        assert not df.empty and columns <= set(df.columns), (name, columns - set(df.columns))
    limits = pd.read_parquet(out0 / "limits.parquet")
    assert {"memory_bandwidth", "gemm_float32", "stream_triad"} <= set(limits["limit"])
    assert (limits["value"] > 0).all()
    assert json.loads((out0 / "probe.json").read_text())["probe"]["logical_cores"] >= 1

    out3 = output_dirs / "results" / "03-op-microbenchmarks"
    times = pd.read_parquet(out3 / "op_times.parquet")
    assert COLUMNS_03 <= set(times.columns), COLUMNS_03 - set(times.columns)
    from studylib.studies.op_microbenchmarks import ops

    assert set(times["op"]) == set(ops.operation_names())
    assert (times["status"] == "ok").all()
    assert set(times["sparsity"]) == {0.0, 0.9} and {"pyg-utils", "native"} <= set(times["role"])
    assert times["seconds"].gt(0).all()
    assert set(times["kernel_library"]) <= {"torch", "torch_scatter", "torch_sparse", "pyg-lib",
                                            "torch_scatter+torch_sparse"}
    ext = ops.extensions()
    if ext["torch_scatter"] and ext["torch_sparse"]:
        # PyG's side is its extension kernels, and the run says which ones ran
        pyg = times[times["role"] == "pyg"]
        assert {"torch_scatter", "torch_sparse"} <= set(pyg["kernel_library"])
        assert (pyg.loc[pyg["op"] == "scatter_max", "kernel_library"] == "torch_scatter").all()
        assert (pyg.loc[pyg["op"] == "scatter_sum", "kernel_library"] == "torch").all()  # same kernel
    from studylib.studies.op_microbenchmarks import measure as om

    r = om.ratio_table(times)
    assert (r["same_kernel"] == (r["pyg_library"] == "torch")).all()
    findings = json.loads((out3 / "findings.json").read_text())
    assert [f["id"] for f in findings["findings"]] == ["memory-dominates", "native-as-fast", "little-sparsity-gain"]
    assert findings["limits"] is not None and findings["extensions"] == ext  # 00's limits were used
    assert all(f["verdict"] in {"reproduced", "partly", "not reproduced", "not measured", "not testable here"}
               for f in findings["findings"])
    assert findings["findings"][0]["verdict"] != "not measured"
    assert (output_dirs / "figures" / "03-op-microbenchmarks" / "findings.json").is_file()

    for nb, names in (("00-hardware", ["bandwidth", "gemm", "roofline"]),
                      ("03-op-microbenchmarks", ["ratio_heatmap", "time_vs_sparsity", "scaling", "roofline"])):
        figs = output_dirs / "figures" / nb
        for name in names:
            assert (figs / f"{name}.png").stat().st_size > 5000, (nb, name)
            side = json.loads((figs / f"{name}.json").read_text())
            assert side["run_id"] and side["parameters"]["num_threads"] == 1
        assert (output_dirs / "reports" / "smoke" / f"{nb}.ipynb").is_file()
