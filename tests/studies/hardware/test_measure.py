"""00-hardware's measurements and the limits reader (studylib.studies.hardware.measure): STREAM kernels
compute what STREAM computes and count bytes as STREAM does, sysbench output is parsed, the limits
table picks the right peaks, and machine_limits() reads them back (or says clearly that they are
missing). No timed assertions."""

import warnings

import pandas as pd
import pytest
import torch

from studylib import params
from studylib.studies.hardware import measure as ml


def test_stream_kernels_compute_stream():
    a, b, c = torch.full((1000,), 1.0), torch.full((1000,), 2.0), torch.zeros(1000)
    k = ml.stream_kernels(a, b, c, scalar=3.0)
    assert {name: words for name, (_, words) in k.items()} == {"copy": 2, "scale": 2, "add": 3, "triad": 3,
                                                               "read": 1, "write": 1}
    k["copy"][0]()
    assert torch.equal(b, a)                      # b = a
    k["scale"][0]()
    assert torch.allclose(b, 3 * a)               # b = s a
    k["add"][0]()
    assert torch.allclose(c, a + b)               # c = a + b
    b0, c0 = b.clone(), c.clone()
    k["triad"][0]()
    assert torch.allclose(a, b0 + 3 * c0)         # a = b + s c
    assert float(k["read"][0]()) == pytest.approx(float(a.sum()))
    k["write"][0]()
    assert bool((b == 3.0).all())


def test_bandwidth_rows_count_bytes_like_stream():
    rows = pd.DataFrame(ml.measure_bandwidth(2**20, 1, rounds=1, min_run_time=0.01))
    n = 2**20 // 4
    words = rows["kernel"].map({**ml.STREAM_WORDS, **ml.EXTRA_WORDS})
    assert (rows["bytes"] == words * n * 4).all()
    assert (rows["bytes_per_s"] == rows["bytes"] / rows["seconds"]).all()
    assert set(rows["kernel"]) == set(ml.KERNELS) and (rows["threads"] == 1).all()


def test_gemm_rows_count_flops():
    rows = pd.DataFrame(ml.measure_gemm(64, torch.float32, 1, rounds=1, min_run_time=0.01))
    assert (rows["flops"] == 2 * 64**3).all() and (rows["flops_per_s"] > 0).all()


def test_transfer_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA"):
        ml.measure_transfer(2**20, device="cpu")


def test_array_size_follows_streams_rule():
    assert ml.stream_array_bytes(8) == 8 * 2**20
    auto = ml.stream_array_bytes(0)
    assert auto >= ml.MIN_ARRAY_BYTES
    llc = ml.last_level_cache_bytes()
    if llc:
        assert auto >= 4 * llc


def test_parse_sysbench_output():
    out = ("Total operations: 128 (  12.34 per second)\n\n"
           "32768.00 MiB transferred (31716.83 MiB/sec)\n\n\nGeneral statistics:\n")
    assert ml.parse_sysbench(out) == pytest.approx(31716.83 * 2**20)
    with pytest.raises(ValueError, match="MiB/sec"):
        ml.parse_sysbench("nothing here")


def _fake_tables():
    bw = pd.DataFrame([{"kernel": k, "threads": t, "array_bytes": 2**27, "bytes_per_s": v * f, "seconds": 0.1}
                       for t, f in ((1, 1.0), (2, 1.5))
                       for k, v in (("copy", 30e9), ("scale", 29e9), ("add", 33e9), ("triad", 32e9),
                                    ("read", 40e9), ("write", 25e9))
                       for _ in range(3)])
    gemm = pd.DataFrame([{"n": n, "dtype": "float32", "threads": t, "flops_per_s": v * t, "seconds": 0.1}
                         for t in (1, 2) for n, v in ((256, 50e9), (1024, 80e9)) for _ in range(3)])
    return bw, gemm


def test_summarize_limits_picks_best_stream_kernel_and_gemm():
    bw, gemm = _fake_tables()
    lim = pd.DataFrame(ml.summarize_limits(bw, gemm, None, "cpu")).set_index(["limit", "threads"])
    assert (lim["best"] >= lim["value"]).all() and (lim["q1"] <= lim["value"]).all()
    assert lim.loc[("memory_bandwidth", 1), "value"] == pytest.approx(33e9)   # add: the best STREAM kernel,
    assert lim.loc[("memory_bandwidth", 1), "detail"] == "add"                # not the read-only kernel
    assert lim.loc[("memory_bandwidth", 2), "value"] == pytest.approx(49.5e9)
    assert lim.loc[("gemm_float32", 2), "value"] == pytest.approx(160e9)
    assert lim.loc[("gemm_float32", 2), "detail"] == "n=1024"


def test_compare_with_reference_is_like_for_like():
    bw, _ = _fake_tables()
    ref = pd.DataFrame([{"oper": "read", "threads": 1, "bytes_per_s": 36e9}, {"oper": "write", "threads": 1,
                                                                               "bytes_per_s": 35e9}])
    cmp = ml.compare_with_reference(bw, ref).set_index("kernel")
    assert set(cmp.index) == set(ml.KERNELS) | {"peak (add)"} and (cmp["threads"] == 1).all()  # no sysbench at 2
    assert cmp.loc["peak (add)", "ratio"] == pytest.approx(33 / 36)
    assert cmp.loc["read", "ratio"] == pytest.approx(40 / 36) and bool(cmp.loc["read", "within_tolerance"])
    assert cmp.loc["write", "ratio"] == pytest.approx(25 / 35) and not bool(cmp.loc["write", "within_tolerance"])
    # triad reads two words and writes one: reference = 3 / (2 / R + 1 / W)
    assert cmp.loc["triad", "sysbench_gb_s"] == pytest.approx(3 / (2 / 36 + 1 / 35))
    assert cmp.loc["copy", "sysbench_gb_s"] == pytest.approx(2 / (1 / 36 + 1 / 35))
    assert cmp["like_for_like"].sum() == 2
    assert ml.compare_with_reference(bw, None).empty


def test_machine_limits_absent_then_present(output_dirs):
    with pytest.warns(UserWarning, match="run `python -m studylib run 00-hardware"):
        assert ml.machine_limits("cpu") is None
    bw, gemm = _fake_tables()
    p = params.validate("00-hardware", {"thread_counts": [1, 2]})
    ml.write_limits(p, torch.device("cpu"), bw, gemm, None)
    lim = ml.machine_limits("cpu", 2)
    assert lim.threads == 2 and lim.memory_bandwidth == pytest.approx(49.5e9) and lim.note == ""
    assert lim.peak_flops("float32") == pytest.approx(160e9)
    assert lim.attainable_flops(0.5) == pytest.approx(0.5 * 49.5e9)
    assert lim.attainable_flops(1e6) == pytest.approx(160e9)
    other = ml.machine_limits("cpu", 8)
    assert other.threads == 2 and "none with 8" in other.note
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ml.machine_limits("cuda", quiet=True) is None
    # limits are derived: writing again replaces them rather than appending
    ml.write_limits(p, torch.device("cpu"), bw, gemm, None)
    from studylib import results

    assert len(results.read_table(ml.NOTEBOOK, "limits")) == len(ml.summarize_limits(bw, gemm, None, "cpu"))


def test_resolve_threads_and_params():
    import os

    cores = len(os.sched_getaffinity(0))
    assert ml.resolve_threads([1, 0, 1]) == ([1, cores] if cores != 1 else [1])
    with pytest.raises(ValueError, match="00-hardware: thread_counts"):
        params.validate("00-hardware", {"thread_counts": [-1]})
    with pytest.raises(ValueError, match="unknown dtype"):
        ml.dtype_of("int3")
