"""The operation registry (studylib.studies.op_microbenchmarks.ops) and the benchmark harness (studylib.timing.benchmark):
every PyG implementation agrees with its native counterpart, sparsity hits the requested density,
bad inputs get clear messages, the harness refuses inputs built in the timed region, and an
out-of-memory configuration is recorded while the sweep goes on. No timed assertions."""

import dataclasses
import math
import warnings

import pandas as pd
import pytest
import torch

from studylib import params, timing
from studylib.studies.op_microbenchmarks import measure as om
from studylib.studies.op_microbenchmarks import ops

warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")

SPARSITIES = (0.0, 0.5, 0.9, 0.99)


def _close(a, b, rtol=1e-4, atol=1e-5):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ops.operation_names())
def test_implementations_agree(name):
    """Each available implementation gives the primary native result, at every sparsity and (for
    operations with an index) two reduce factors. The scatter/segment reductions are separate
    operations (scatter_sum ... segment_min), so every reduction is covered."""
    op = ops.get(name)
    impls = op.implementations()
    native = op.primary(ops.NATIVE)
    assert native is not None, f"{name} has no native implementation"
    rfs = (1, 4) if op.uses_reduce_factor else (1,)
    for s in SPARSITIES:
        for rf in rfs:
            inp = ops.build_inputs(name, 4096, s, reduce_factor=rf, feature_dim=16, seed=3)
            ref = ops.canonical(native.run(native.state(inp)), inp, op)
            for im in impls:
                out = ops.canonical(im.run(im.state(inp)), inp, op)
                assert _close(ref, out), f"{name} [{im.name}] differs from {native.name} at sparsity {s}, rf {rf}"


def test_every_operation_has_a_native_counterpart_and_the_listed_pyg_ones():
    for name in ops.operation_names():
        assert ops.get(name).primary(ops.NATIVE) is not None
        assert {i.role for i in ops.get(name).impls} <= set(ops.ROLES)

    def declared(role):
        return {n for n in ops.operation_names() if any(i.role == role for i in ops.get(n).impls)}

    # PyG's extension kernels (role pyg) need their extension; PyG's utilities (role pyg-utils) do not
    assert {"scatter_sum", "scatter_mean", "scatter_max", "scatter_min", "scatter_mul", "segment_sum", "spmm",
            "spspmm", "coalesce", "transpose", "scatter_sum_elem", "scatter_max_elem_dim1"} <= declared(ops.PYG)
    assert all(i.requires in ("torch_scatter", "torch_sparse", "pyg_lib")
               for n in ops.operation_names() for i in ops.get(n).impls if i.role == ops.PYG)
    assert all(i.requires is None for n in ops.operation_names() for i in ops.get(n).impls if i.role != ops.PYG)
    assert {"scatter_sum", "spmm", "coalesce", "transpose", "gcn_layer", "gat_layer", "index_select_dim0",
            "index_select_dim1", "sort", "addmm"} <= declared(ops.PYG_UTILS)
    assert ops.get("scatter_sum").impl("pyg.utils.scatter").role == ops.PYG_UTILS
    spmm_natives = {i.name for i in ops.get("spmm").impls if i.role == ops.NATIVE}
    assert {"torch.sparse.mm(CSR)", "torch.sparse.mm(COO)"} <= spmm_natives
    for name in ("matmul", "fused_index_add_reduce", "fused_index_select_reduce", "scatter_mean_elem",
                 "scatter_min_elem", "scatter_sum_elem_dim1"):
        assert name in ops.operation_names()
    assert {i.name for i in ops.get("fused_index_add_reduce").impls} == {"eager", "torch.jit.script"}


def test_extensions_are_optional():
    ext = ops.extensions()
    assert ext["torch_geometric"]
    for name in ops.operation_names():
        for im in ops.get(name).impls:
            assert im.available() == (im.requires is None or ext.get(im.requires) is not None)


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_sparsity_hits_requested_density(sparsity):
    n = 200_000
    x = ops.make_sparse(torch.rand(n) + 0.5, sparsity, ops.make_generator(1))
    d = ops.density(x)
    sd = math.sqrt(sparsity * (1 - sparsity) / n)
    assert abs(d - (1 - sparsity)) <= 5 * sd + 1e-9
    # the registry's inputs report the measured density of their main input
    for name in ("scatter_sum", "spmm", "gcn_layer"):
        inp = ops.build_inputs(name, 2**16, sparsity, feature_dim=16)
        sd = math.sqrt(max(sparsity * (1 - sparsity), 1e-12) / inp.numel) if name != "gcn_layer" else 0.02
        assert abs(inp.density - (1 - sparsity)) <= 6 * sd + 1e-9, name
    if sparsity > 0:
        inp = ops.build_inputs("spmm", 2**16, sparsity)
        assert inp.meta["nnz"] == pytest.approx(inp.density * inp.meta["n"] ** 2)


def test_index_distributions_and_reduce_factor():
    g = ops.make_generator(0)
    for dist in ops.INDEX_DISTRIBUTIONS:
        idx = ops.make_index(50_000, 100, dist, g)
        assert idx.dtype == torch.int64 and int(idx.min()) >= 0 and int(idx.max()) < 100
    assert bool((ops.make_index(1000, 10, "sorted", g).diff() >= 0).all())
    counts = torch.bincount(ops.make_index(100_000, 1000, "powerlaw", g), minlength=1000).sort(descending=True).values
    assert counts[0] > 20 * counts[500]  # heavy-tailed, unlike uniform
    inp = ops.build_inputs("scatter_sum", 2**14, 0.0, reduce_factor=8, feature_dim=16)
    assert inp.meta["groups"] == inp.meta["rows"] // 8
    ptr = ops.index_to_ptr(torch.tensor([0, 0, 2, 2, 2]), 4)
    assert ptr.tolist() == [0, 2, 2, 5, 5]


def test_bad_inputs_have_clear_messages():
    with pytest.raises(ValueError, match="unknown operation 'nope'.*scatter_sum"):
        ops.get("nope")
    with pytest.raises(ValueError, match="unknown operation"):
        ops.build_inputs("nope", 1024, 0.5)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
            ops.build_inputs("scatter_sum", 1024, bad)
        with pytest.raises(ValueError, match="sparsity"):
            ops.make_sparse(torch.ones(10), bad)
    with pytest.raises(ValueError, match="size must be > 0"):
        ops.build_inputs("scatter_sum", 0, 0.5)
    with pytest.raises(ValueError, match="reduce_factor"):
        ops.build_inputs("scatter_sum", 1024, 0.5, reduce_factor=0)
    with pytest.raises(ValueError, match="index distribution"):
        ops.build_inputs("scatter_sum", 1024, 0.5, index_distribution="zipf")
    with pytest.raises(ops.InputTooLargeError, match="needs about .* GiB .* choose a smaller size") as err:
        ops.build_inputs("scatter_sum", 2**40, 0.5)
    assert isinstance(err.value, MemoryError)
    with pytest.raises(ops.InputTooLargeError):
        ops.build_inputs("gcn_layer", 2**20, 0.0, available=2**20)
    for bad_params in ({"operations": ["nope"]}, {"sparsities": [1.0]}, {"sparsities": [-0.5]}, {"sizes": [0]},
                       {"reduce_factors": [0]}, {"memory_fractions": [1.5]}):
        with pytest.raises(ValueError, match="03-op-microbenchmarks"):
            params.validate("03-op-microbenchmarks", bad_params)


def test_size_for_memory_fits_the_budget():
    op = ops.get("scatter_sum")
    s = ops.size_for_memory(op, 0.5, available=2**30)
    assert op.footprint(ops.effective_size(op, s), 1, 4, 32) <= 2**29
    assert op.footprint(ops.effective_size(op, 2 * s), 1, 4, 32) > 2**29


def test_detect_backend_reports_what_ran():
    inp = ops.build_inputs("scatter_sum", 4096, 0.5, feature_dim=16)
    op = ops.get("scatter_sum")
    info = ops.detect_backend(op.impl("torch.scatter_add_").run, inp)
    assert "aten::scatter_add_" in info["kernels"] and info["kernel_library"] == "torch"
    # PyG's utility dispatches to native PyTorch on a CPU (PyG 2.8), whatever is installed
    pyg = ops.detect_backend(op.impl("pyg.utils.scatter").run, inp)
    assert pyg["kernel_library"] == "torch" and pyg["torch_scatter"] is False
    assert ops.kernel_library(["aten::sort", "torch_scatter::segment_sum_csr"]) == "torch_scatter"
    assert ops.kernel_library(["torch_sparse::cuda_version", "aten::scatter_add_"]) == "torch"
    assert ops.kernel_library(["pyg::index_sort", "torch_sparse::spmm_sum"]) == "torch_sparse+pyg-lib"


@pytest.mark.skipif(ops.extensions()["torch_scatter"] is None or ops.extensions()["torch_sparse"] is None,
                    reason="PyG's extension libraries are not installed")
def test_detect_backend_tells_pyg_kernels_from_native_ones():
    """torch_scatter's max and torch_sparse's SpMM run their own kernels; torch_scatter's sum is
    Tensor.scatter_add_ and torch_sparse's sparse-sparse product is torch.sparse.mm (same kernel)."""
    def lib(name, impl):
        inp = ops.build_inputs(name, 4096, 0.5, feature_dim=16)
        im = ops.get(name).impl(impl)
        return ops.detect_backend(im.run, im.state(inp))

    assert lib("scatter_max", "torch_scatter.scatter")["kernel_library"] == "torch_scatter"
    assert lib("scatter_mul", "torch_scatter.scatter")["kernel_library"] == "torch_scatter"
    assert lib("segment_sum", "torch_scatter.segment_csr")["kernel_library"] == "torch_scatter"
    assert lib("spmm", "torch_sparse.matmul")["kernel_library"] == "torch_sparse"
    assert lib("scatter_sum", "torch_scatter.scatter")["kernel_library"] == "torch"
    assert lib("spspmm", "torch_sparse.spspmm")["kernel_library"] == "torch"


# --------------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------------

def test_harness_rejects_inputs_built_in_the_timed_region():
    with pytest.raises(timing.InputsInTimedRegionError, match="setup"):
        timing.benchmark(lambda: torch.rand(1000).sum(), num_threads=1, min_run_time=0.01)
    with pytest.raises(timing.InputsInTimedRegionError):
        timing.benchmark(lambda x: torch.nn.functional.dropout(x, 0.5, training=True), args=(torch.ones(100),),
                         num_threads=1, min_run_time=0.01)


def test_harness_times_prebuilt_inputs_and_keeps_raw_blocks():
    res = timing.benchmark(lambda x: x.sum(), setup=lambda: (torch.rand(10_000),), num_threads=1,
                           min_run_time=0.01, min_blocks=5)
    assert len(res["times"]) >= 5 and res["n"] == len(res["times"])
    assert res["num_threads"] == 1 and res["number_per_run"] >= 1
    assert res["q1"] <= res["median"] <= res["q3"]
    with pytest.raises(ValueError, match="setup .* or args"):
        timing.benchmark(lambda x: x, setup=lambda: (1,), args=(1,), num_threads=1)
    with pytest.raises(ValueError, match="num_threads"):
        timing.benchmark(lambda: None, num_threads=0)


def test_peak_memory_sees_an_allocation():
    big = torch.ones(8_000_000)
    peak = timing.peak_memory_bytes(lambda a: a * 2, (big,))
    if peak is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert peak >= 0.5 * big.numel() * 4


# --------------------------------------------------------------------------------------------
# Sweep behaviour (tiny, untimed assertions)
# --------------------------------------------------------------------------------------------

def _tiny_params(**kw):
    base = {"operations": ["scatter_sum"], "sizes": [1024], "sparsities": [0.0, 0.9], "reduce_factors": [1],
            "rounds": 2, "min_run_time": 0.002, "num_threads": 1, "feature_dim": 16, "dtypes": ["float32"]}
    return params.validate("03-op-microbenchmarks", {**base, **kw})


def test_too_large_configuration_is_refused_before_any_work_and_sweep_goes_on(output_dirs, monkeypatch):
    op = ops.get("scatter_sum")
    built = []

    def build(size, *a):
        built.append(size)
        return op.build(size, *a)

    monkeypatch.setitem(ops.REGISTRY, "scatter_sum", dataclasses.replace(op, build=build))
    p = _tiny_params(sizes=[1024, 2**42])
    df = om.run_measurement("op_times", p, torch.device("cpu"), 1)
    assert set(df["size"]) == {1024, 2**42}
    assert built and max(built) < 2**20  # the huge size was never built
    refused = df[df["size"] == 2**42]
    assert (refused["status"] == "refused").all() and len(refused) == 2
    assert refused["error"].str.contains("does not fit").all()
    assert (refused["memory_estimate_bytes"] > refused["memory_available_bytes"]).all()
    ok = df[df["size"] == 1024]
    assert (ok["status"] == "ok").all() and ok["seconds"].gt(0).all()
    assert {"impl", "role", "kernels", "density", "bytes", "round", "block", "number_per_run",
            "peak_memory_bytes", "num_threads", "device"} <= set(df.columns)
    # resumable: a second run measures nothing new
    again = om.run_measurement("op_times", p, torch.device("cpu"), 1)
    assert len(again) == len(df)


def test_failing_implementation_is_recorded_others_go_on(monkeypatch):
    op = ops.get("scatter_sum")
    broken = ops.Impl("broken", ops.PYG, lambda i: (_ for _ in ()).throw(MemoryError("no room")))
    unsupported = ops.Impl("unsupported", ops.PYG, lambda i: (_ for _ in ()).throw(
        RuntimeError("\"scatter\" not implemented for 'Half'")))
    monkeypatch.setitem(ops.REGISTRY, "scatter_sum",
                        ops.Operation(op.name, op.family, op.description, op.build, op.footprint,
                                      (broken, unsupported, *op.impls), op.uses_reduce_factor))
    p = _tiny_params()
    c = {"op": "scatter_sum", "dtype": "float32", "size": 1024, "sparsity": 0.5, "reduce_factor": 1,
         "index_distribution": "uniform"}
    rows = pd.DataFrame(om.measure_config(c, p, torch.device("cpu"), 1))
    st = rows.groupby("impl")["status"].first()
    assert st["broken"] == "oom" and st["unsupported"] == "unsupported"
    assert (rows[rows["impl"] == "torch.scatter_add_"]["status"] == "ok").all()
    assert rows[rows["impl"] == "torch.scatter_add_"]["round"].nunique() == 2


def test_configs_follow_the_grid():
    p = _tiny_params(operations=["scatter_sum", "spmm"], sizes=[1024, 4096], reduce_factors=[1, 2, 4],
                     dtypes=["float32", "float16"])
    cfg, notes = om.configs(p, torch.device("cpu"))
    assert any("GPU" in n for n in notes)
    df = pd.DataFrame(cfg)
    assert set(df["dtype"]) == {"float32"}
    assert set(df[df["op"] == "spmm"]["reduce_factor"]) == {1}
    sc = df[df["op"] == "scatter_sum"]
    assert len(sc) == 2 * 2 + 2 * 2  # sizes x sparsities at rf 1, + rf {2, 4} x extreme sparsities at 4096
    full = om.configs(_tiny_params(sizes=[1024, 4096], reduce_factors=[1, 2, 4], grid="full"),
                      torch.device("cpu"))[0]
    assert len(full) == 2 * 2 * 3


def test_every_configuration_refused_ends_with_one_clear_line(output_dirs):
    """03's notebook ends with memory.end_if_all_refused when nothing fits (before: KeyError 'impl')."""
    from studylib import memory

    p = _tiny_params(sizes=[2**42], sparsities=[0.0])
    df = om.run_measurement("op_times", p, torch.device("cpu"), 1)
    assert (df["status"] == "refused").all() and "impl" not in df
    with pytest.raises(memory.AllRefused, match="all 1 configuration.*refused for memory.*available"):
        memory.end_if_all_refused(df, "03-op-microbenchmarks")
    assert om.ratio_table(df).empty and om.ok_rows(df).empty
