"""Memory estimates: hand-counted examples, the synthetic generator's real footprint, decisions,
refused configurations recorded as rows, and a notebook whose every configuration is refused."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from studylib import memory, results


def test_dtype_bytes():
    assert memory.dtype_bytes("float32") == 4
    assert memory.dtype_bytes(torch.bfloat16) == 2
    assert memory.dtype_bytes(np.dtype("int64")) == 8
    assert memory.dtype_bytes("torch.float16") == 2
    with pytest.raises(ValueError, match="unknown dtype 'complex7'"):
        memory.dtype_bytes("complex7")


def test_graph_bytes_hand_counted():
    # COO: src + dst per edge; CSC: indptr (N+1) + indices (E) + edge ids (E)
    assert memory.graph_bytes(100, 1000) == 8 * 2 * 1000
    assert memory.graph_bytes(100, 1000, formats=("coo", "csc")) == 8 * (2000 + 101 + 2000) == 32808
    assert memory.graph_bytes(100, 1000, index_dtype="int32", formats=("csr",)) == 4 * (101 + 2000)
    with pytest.raises(ValueError, match="unknown graph format"):
        memory.graph_bytes(1, 1, formats=("ell",))
    with pytest.raises(ValueError, match="num_edges must be a finite number >= 0"):
        memory.graph_bytes(1, -5)


def test_feature_bytes_hand_counted():
    assert memory.feature_bytes(10, 3, "float16") == 60
    assert memory.feature_bytes(1_000_000, 128) == 512_000_000


def test_activation_bytes_hand_counted():
    # 2 layers x 1000 nodes x 16 wide x 4 B x 4 saved tensors
    assert memory.activation_bytes(1000, 16, num_layers=2) == 2 * 1000 * 16 * 4 * 4 == 512_000
    # per-layer blocks, 2 heads, 3 per-edge tensors per head
    got = memory.activation_bytes([100, 10], 8, heads=2, edges=[500, 50], edge_tensors=3)
    assert got == (100 + 10) * 8 * 2 * 4 * 4 + (500 + 50) * 2 * 4 * 3 == 41_360
    assert memory.activation_bytes(1000, 16, saved_factor=1, dtype="bfloat16") == 1000 * 16 * 2
    with pytest.raises(ValueError, match="one count per partition"):
        memory.activation_bytes([1, 2], 4, edges=[1], edge_tensors=1)


def test_optimizer_bytes_hand_counted():
    assert memory.optimizer_bytes(1000) == 1000 * 4 * 4  # Adam: weights, grads, exp_avg, exp_avg_sq
    assert memory.optimizer_bytes(1000, optimizer="sgd") == 8000
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        memory.optimizer_bytes(1, optimizer="lbfgs")


def test_partition_bytes_hand_counted():
    # per partition: 8 B x ((50 + 10) nodes x 3 arrays + 300 edges x 5 arrays) + 50 x 8 x 4 B features
    assert memory.partition_bytes(2, 50, 10, 300, feature_width=8) == 2 * (8 * (60 * 3 + 300 * 5) + 50 * 8 * 4) == 30080
    assert memory.partition_bytes(2, [50, 40], [10, 0], [300, 100]) == 8 * (60 * 3 + 1500) + 8 * (40 * 3 + 500)
    with pytest.raises(ValueError, match="num_parts must be > 0"):
        memory.partition_bytes(0, 1, 1, 1)
    with pytest.raises(ValueError, match=r"one count per partition \(3\), got 2"):
        memory.partition_bytes(3, [1, 2], 0, 0)


def test_random_partition_halo_bound_holds_on_a_random_graph():
    n, e, p = 2000, 8000, 4
    assert memory.random_partition_halo_nodes(n, e, p) == math.ceil((n - n / p) * (1 - (1 - 1 / p) ** (e / n)))
    assert memory.random_partition_halo_nodes(n, e, 1) == 0
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    part = rng.integers(0, p, n)
    halos = [len(set(src[(part[dst] == q) & (part[src] != q)].tolist())) for q in range(p)]
    bound = memory.random_partition_halo_nodes(n, e, p)
    assert max(halos) <= 1.05 * bound  # an upper bound, up to the draw's noise
    assert np.mean(halos) >= 0.7 * bound  # and not a vacuous one


@pytest.mark.parametrize("like,scale", [("acm", 0.3), ("dblp", 0.3), ("imdb", 0.3), ("ogbn-mag", 0.002)])
def test_synthetic_estimate_matches_the_generator(like, scale):
    from studylib.data import synthetic_hetero

    est = memory.synthetic_hetero_estimate(like, scale)
    tracemalloc.start()
    try:
        g = synthetic_hetero(like, scale=scale)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    structure = sum(s.numel() * s.element_size() + d.numel() * d.element_size() for s, d in g.edges.values())
    features = sum(x.numel() * x.element_size() for x in g.features.values())
    assert est.parts["structure"] == structure
    assert est.parts["features"] == features
    assert peak <= est.total <= 2 * peak, (peak, est.parts)


def test_synthetic_estimate_of_a_huge_scale_is_instant_and_huge():
    est = memory.synthetic_hetero_estimate("acm", 100000)
    assert est.total > 10 * 2**40  # ACM x 1e5: 1.1e9 papers and authors x 1902 float32 features = 7.7 TiB
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        memory.synthetic_hetero_estimate("acm", float("inf"))


def test_decide_and_require():
    est = memory.Estimate({"features": 600, "structure": 200})
    d = memory.decide(est, what="toy", available=1000)
    assert d.fits and d.estimate_bytes == 800 and d.available_bytes == 1000
    assert d.breakdown == {"features": 600, "structure": 200}
    d = memory.decide(est, what="toy", available=999)
    assert not d.fits  # 800 > 0.8 * 999
    assert memory.decide(est, what="toy", available=999, fraction=1.0).fits
    with pytest.raises(ValueError, match="fraction"):
        memory.decide(est, what="toy", available=1, fraction=0)
    with pytest.raises(memory.Refused) as err:
        memory.require(est, what="toy config", available=500)
    assert isinstance(err.value, MemoryError)
    text = str(err.value)
    assert text.startswith("toy config: estimated 800 B (features 600 B, structure 200 B)")
    assert "500 B available on cpu" in text
    assert err.value._render_traceback_() == [f"Refused: {text}"]
    assert (est + memory.Estimate({"features": 1, "optimizer": 5})).parts == {"features": 601, "structure": 200,
                                                                              "optimizer": 5}


def test_available_bytes_on_the_cpu():
    import psutil

    got = memory.available_bytes("cpu")
    assert 0 < got <= psutil.virtual_memory().total


def test_sweep_records_refused_configurations_and_goes_on(output_dirs):
    table = results.ResultTable("nb", "t", ["size"], {})

    def measure(c):
        memory.require(memory.Estimate({"features": c["size"]}), what=f"size {c['size']}", available=1000)
        return [{"seconds": 0.1}]

    df = table.sweep([{"size": 10}, {"size": 10**6}, {"size": 20}], measure, oom_metric_columns=["seconds"])
    assert list(df["status"]) == ["ok", "refused", "ok"]
    refused = df[df["status"] == "refused"].iloc[0]
    assert refused["memory_estimate_bytes"] == 10**6 and refused["memory_available_bytes"] == 1000
    assert math.isnan(refused["seconds"]) and "size 1000000" in refused["error"]
    memory.end_if_all_refused(df, "nb")  # something was measured: no error


def test_a_notebook_whose_every_configuration_is_refused_ends_with_one_line():
    d = memory.decide(memory.Estimate({"features": 5000}), what="x", available=1000)
    frame = pd.DataFrame([memory.refused_row({"size": s}, d) for s in (1, 2)])
    with pytest.raises(memory.AllRefused) as err:
        memory.end_if_all_refused(frame, "03-op-microbenchmarks")
    text = str(err.value)
    assert text.startswith("03-op-microbenchmarks: all 2 configuration(s) refused for memory")
    assert "4.88 KiB" in text and "1000 B available" in text and "\n" not in text
    assert err.value._render_traceback_() == [f"AllRefused: {text}"]
    memory.end_if_all_refused(pd.DataFrame(), "empty")


def test_hgnn_synthetic_graph_is_refused_before_it_is_generated(monkeypatch):
    from studylib.data import hgnn_graphs

    def never(*a, **k):
        raise AssertionError("the graph must not be generated")

    monkeypatch.setattr(hgnn_graphs, "synthetic_hetero", never)
    with pytest.raises(memory.Refused) as err:
        hgnn_graphs.load_graph("synthetic", synthetic_scale=100000)
    assert "synthetic_scale=100000" in str(err.value) and "available on cpu" in str(err.value)
    assert err.value.decision.estimate_bytes > err.value.decision.available_bytes
