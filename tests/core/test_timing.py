"""Stage timers, summaries and the kernel-class table of studylib.timing."""

import time

import pytest
import torch

from studylib import timing
from studylib.timing import StageTimer, kernel_class, phase, stage, summarize

# (profiler op name, expected class): the kernel-class table must keep these right.
KNOWN_OPS = [
    ("aten::addmm", timing.GEMM), ("aten::mm", timing.GEMM), ("aten::bmm", timing.GEMM),
    ("aten::linear", timing.GEMM), ("AddmmBackward0", timing.GEMM), ("MmBackward0", timing.GEMM),
    ("GatherMM", timing.GEMM),
    ("GSpMM", timing.SPMM), ("GSpMMBackward", timing.SPMM), ("GSpMM_hetero", timing.SPMM),
    ("aten::scatter_add_", timing.SPMM), ("aten::scatter_reduce", timing.SPMM), ("aten::index_add_", timing.SPMM),
    ("IndexAddBackward0", timing.SPMM), ("aten::_sparse_mm", timing.SPMM), ("aten::segment_reduce", timing.SPMM),
    ("GSDDMM", timing.SDDMM), ("GSDDMMBackward", timing.SDDMM), ("EdgeSoftmax", timing.SDDMM),
    ("aten::index_select", timing.INDEXING), ("aten::index", timing.INDEXING), ("aten::gather", timing.INDEXING),
    ("IndexBackward0", timing.INDEXING), ("aten::embedding", timing.INDEXING),
    ("aten::_index_put_impl_", timing.INDEXING),
    ("aten::relu", timing.ELEMENTWISE), ("aten::leaky_relu", timing.ELEMENTWISE), ("aten::mul", timing.ELEMENTWISE),
    ("aten::add_", timing.ELEMENTWISE), ("aten::threshold_backward", timing.ELEMENTWISE),
    ("aten::_foreach_mul_", timing.ELEMENTWISE), ("aten::tanh", timing.ELEMENTWISE),
    ("aten::sum", timing.REDUCTION), ("aten::_softmax", timing.REDUCTION), ("aten::log_softmax", timing.REDUCTION),
    ("aten::nll_loss_forward", timing.REDUCTION), ("aten::mean", timing.REDUCTION),
    ("aten::copy_", timing.MEMORY), ("aten::cat", timing.MEMORY), ("aten::zeros", timing.MEMORY),
    ("aten::empty", timing.MEMORY), ("Memcpy HtoD (Pageable -> Device)", timing.MEMORY),
    ("gloo:all_reduce", timing.COMMUNICATION), ("c10d::allreduce_", timing.COMMUNICATION),
    ("nccl:all_reduce", timing.COMMUNICATION),
    ("aten::view", timing.OVERHEAD), ("aten::as_strided", timing.OVERHEAD),
    ("stage::neighbor_aggregation", timing.OVERHEAD), ("Optimizer.step#Adam.step", timing.OVERHEAD),
    ("torch::autograd::AccumulateGrad", timing.OVERHEAD), ("aten::item", timing.MEMORY),
    ("aten::index_select_backward", timing.INDEXING), ("some_new_op", timing.OTHER),
]


@pytest.mark.parametrize("op,expected", KNOWN_OPS)
def test_kernel_class_table(op, expected):
    assert kernel_class(op) == expected


def test_every_rule_class_is_a_known_class():
    assert {cls for cls, _ in timing.KERNEL_CLASS_RULES} <= set(timing.KERNEL_CLASSES)


def test_stage_is_free_when_nothing_listens():
    assert stage("feature_projection") is stage("neighbor_aggregation")  # the shared null context


def test_stage_timer_records_nested_regions_per_step():
    t = StageTimer()
    with t.activate():
        for i in range(3):
            with t.step(i):
                with phase("forward"):
                    with stage("a"):
                        time.sleep(0.002)
                    with stage("b"):
                        time.sleep(0.001)
    df = t.to_frame()
    assert set(df["name"]) == {"a", "b", "forward", timing.STEP_TOTAL}
    assert (df.groupby("name").size() == 3).all()
    per = t.per_step()
    assert (per["a"] >= 0.002).all()
    assert (per["forward"] >= per["a"] + per["b"]).all()
    assert (per[timing.STEP_TOTAL] >= per["forward"]).all()
    # outside activate() nothing is recorded
    with stage("a"):
        pass
    assert len(t.records) == 12


def test_summarize_reports_median_iqr_and_noise():
    s = summarize([1.0, 1.0, 1.0, 1.0])
    assert s["median"] == 1.0 and s["iqr"] == 0.0 and not s["noisy"]
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s["median"] == 2.5 and s["noisy"]
    assert summarize([1.0])["noisy"]  # too few samples to know
    with pytest.raises(ValueError, match="at least one sample"):
        summarize([])


def test_kernel_class_breakdown_attributes_backward_to_forward_stage():
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    x = torch.randn(200, 16)
    lin = torch.nn.Linear(16, 8)
    idx = torch.randint(0, 200, (2000,))
    dst = torch.randint(0, 50, (2000,))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with phase("forward"):
            with stage("feature_projection"):
                z = lin(x)
            with stage("neighbor_aggregation"):
                h = torch.zeros(50, 8).index_add_(0, dst, z[idx])
            loss = h.pow(2).sum()
        with phase("backward"):
            loss.backward()
    df = timing.kernel_class_breakdown(prof)
    assert set(df.columns) == {"phase", "stage", "kernel_class", "op", "self_us"}
    bwd = df[df["phase"] == "backward"]
    # the GEMM of the linear layer's backward belongs to feature projection
    assert ((bwd["stage"] == "feature_projection") & (bwd["kernel_class"] == timing.GEMM)).any()
    # the index_add backward belongs to neighbor aggregation
    assert (bwd["stage"] == "neighbor_aggregation").any()
    fwd = df[df["phase"] == "forward"]
    assert set(fwd[fwd["kernel_class"] == timing.SPMM]["stage"]) == {"neighbor_aggregation"}


def test_endless_batches_starts_a_new_pass_and_refuses_an_empty_loader():
    from studylib.timing import endless_batches

    passes = []

    class Loader:  # two batches per pass, each pass counted
        def __iter__(self):
            passes.append(1)
            return iter(["a", "b"])

    it = endless_batches(Loader())
    assert [next(it) for _ in range(5)] == ["a", "b", "a", "b", "a"] and len(passes) == 3
    with pytest.raises(ValueError, match="no mini-batch"):
        next(endless_batches([]))
