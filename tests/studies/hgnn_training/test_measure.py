"""The HGNN training study's measurement and summary logic on small synthetic graphs and on
hand-made tables."""

import time

import pandas as pd
import pytest
import torch

from studylib import data, timing
from studylib import findings as fd
from studylib.studies.hgnn_training import findings as f01
from studylib.studies.hgnn_training import measure as hgnn
from studylib.studies.hgnn_training.params import HgnnTrainingParams

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def graph():
    return data.synthetic_hetero("acm", scale=0.1, seed=0)


@pytest.fixture
def params():
    return HgnnTrainingParams(datasets=["synthetic"], hidden_dim=32, num_heads=2, warmup_steps=1, repeat_steps=5,
                              profile_steps=2)


@pytest.mark.parametrize("model", ["rgcn", "rgat", "han"])
@pytest.mark.parametrize("framework", ["dgl", "pyg"])
def test_stage_regions_add_up_to_the_step(graph, params, model, framework):
    rows = hgnn.measure_stage_times(model, framework, "synthetic", graph, params, torch.device("cpu"))
    df = pd.DataFrame(rows).assign(model=model, framework=framework, dataset="synthetic")
    assert {"semantic_graph_build", "feature_projection", "neighbor_aggregation", "semantic_fusion", "loss",
            "forward", "backward", "optimizer_update", timing.STEP_TOTAL} <= set(df["region"])
    steps = hgnn.step_regions_table(df)
    assert len(steps) == params.repeat_steps
    gap = (steps[timing.STEP_TOTAL] - steps["regions_sum"]) / steps[timing.STEP_TOTAL]
    # stage shares sum to the step time within 5% (median step: a preemption of the process
    # between two regions can leave one step of a few ms with an untimed gap on a busy machine)
    assert gap.abs().median() < 0.05, gap
    assert (gap > -0.01).all(), gap  # regions never add up to more than the step
    shares = hgnn.stage_summary(df)
    step_shares = shares[shares["region"].isin(hgnn.STEP_REGIONS)]["share"]
    assert step_shares.between(0, 1).all() and step_shares.sum() <= 1.2
    mem = df[df["kind"] == "memory"]
    assert set(mem["region"]) == {"forward", "backward"} and (mem["peak_bytes"] > 0).all()
    # the backward pass starts where the forward pass left the memory (activations alive)
    assert (mem["phase_start_bytes"] > 0).all()
    assert hgnn.memory_summary(df)["own_mib"].notna().all()


def test_kernel_classes_cover_the_profiled_step(graph, params):
    from torch.profiler import ProfilerActivity, profile

    s = hgnn.build_setup("rgat", "dgl", graph, params, torch.device("cpu"))
    hgnn.train_step(s)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        hgnn.train_step(s)
        wall_us = (time.perf_counter() - t0) * 1e6
    df = timing.kernel_class_breakdown(prof)
    covered = df["self_us"].sum() / wall_us
    assert 0.95 <= covered <= 1.02, covered
    assert set(df["kernel_class"]) <= set(timing.KERNEL_CLASSES)
    by = df.groupby("kernel_class")["self_us"].sum()
    assert by[timing.GEMM] > 0 and by[timing.SDDMM] > 0 and by[timing.SPMM] > 0
    fwd_stages = set(df[df["phase"] == "forward"]["stage"])
    assert {"feature_projection", "neighbor_aggregation", "semantic_fusion"} <= fwd_stages
    # backward work is attributed to the stages, not left unattributed
    bwd = df[df["phase"] == "backward"].groupby("stage")["self_us"].sum()
    assert bwd.get("neighbor_aggregation", 0) > 0 and bwd.get("feature_projection", 0) > 0


def test_metapath_cap_and_variants(graph):
    sizes = {n: hgnn.metapath_edges(graph, p) for n, p in graph.metapaths.items()}
    small = min(sizes.values())
    kept, skipped = hgnn.han_metapaths(graph, max_edges=small)
    assert set(kept) == {n for n, e in sizes.items() if e <= small}
    assert skipped == {n: e for n, e in sizes.items() if e > small}
    with pytest.raises(ValueError, match="raise the cap"):
        hgnn.han_metapaths(graph, max_edges=1)
    variants = dict(hgnn.metapath_variants(graph, max_length=4))
    assert [len(v) for k, v in variants.items() if k.startswith("count=")] == list(range(1, len(sizes) + 1))
    lengths = {k: next(iter(v.values())) for k, v in variants.items() if k.startswith("length=")}
    assert set(lengths) == {"length=2", "length=4"} and len(lengths["length=4"]) == 4


def _ddp_rows(world, step_s, allreduce_s, batches):
    rows = []
    for rank in range(world):
        for step in range(3):
            rows += [{"model": "rgcn", "framework": "dgl", "dataset": "acm", "world_size": world, "rank": rank,
                      "step": step, "region": timing.STEP_TOTAL, "seconds": step_s, "batches_per_epoch": batches},
                     {"model": "rgcn", "framework": "dgl", "dataset": "acm", "world_size": world, "rank": rank,
                      "step": step, "region": "gradient_allreduce", "seconds": allreduce_s,
                      "batches_per_epoch": batches}]
    return rows


def test_data_parallel_summary_by_hand():
    df = pd.DataFrame(_ddp_rows(1, 1.0, 0.0, 10) + _ddp_rows(2, 0.8, 0.2, 10))
    s = hgnn.data_parallel_summary(df).set_index("world_size")
    assert s.loc[1, "epoch_s"] == pytest.approx(10.0)
    assert s.loc[2, "epoch_s"] == pytest.approx(8.0)
    assert s.loc[2, "speedup"] == pytest.approx(1.25)
    assert s.loc[2, "scaling_efficiency"] == pytest.approx(0.625)
    assert s.loc[2, "allreduce_share"] == pytest.approx(0.25)


def test_findings_follow_the_numbers():
    def kernels(na, fp):
        return pd.DataFrame([
            {"model": "rgcn", "framework": "dgl", "dataset": "acm", "phase": "forward", "stage": st,
             "kernel_class": "gemm", "op": "x", "seconds": v}
            for st, v in (("neighbor_aggregation", na), ("feature_projection", fp))])

    cpu = {"gpus": [], "cores_available": 2}
    f = fd.evaluate(f01.FINDINGS, f01.tables(kernels=kernels(0.7, 0.3)), cpu).set_index("id")["verdict"]
    assert f["aggregation-dominates"] == "reproduced"
    f = fd.evaluate(f01.FINDINGS, f01.tables(kernels=kernels(0.2, 0.8)), cpu).set_index("id")["verdict"]
    assert f["aggregation-dominates"] == "not reproduced"
    assert set(f.iloc[1:]) <= {"not measured", "not testable here"}
    # two processes on CPU cores: not testable here, whatever their numbers
    ddp = pd.DataFrame(_ddp_rows(1, 1.0, 0.0, 10) + _ddp_rows(2, 0.4, 0.1, 10)).assign(device="cpu")
    f = fd.evaluate(f01.FINDINGS, f01.tables(data_parallel=ddp), cpu).set_index("id")
    assert f.loc["data-parallel-communication", "verdict"] == "not testable here"
    assert "25%" in f.loc["data-parallel-communication", "evidence"]
