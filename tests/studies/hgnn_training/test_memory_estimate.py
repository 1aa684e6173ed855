"""01 estimates each configuration's memory before building anything, and refuses what cannot fit
(a row with the estimate and the available memory), going on with the rest."""

from __future__ import annotations

import pytest
import torch

from studylib import memory
from studylib.data import synthetic_hetero
from studylib.studies.hgnn_training import measure as hgnn
from studylib.studies.hgnn_training.params import HgnnTrainingParams


@pytest.fixture(scope="module")
def graph():
    return synthetic_hetero("acm", scale=0.05, seed=0)


def test_estimate_grows_with_width_and_counts_attention(graph):
    small = HgnnTrainingParams(hidden_dim=16, num_heads=4)
    wide = HgnnTrainingParams(hidden_dim=64, num_heads=4)
    for model in ("rgcn", "rgat", "han"):
        e = hgnn.step_memory_estimate(model, graph, small)
        assert set(e.parts) == {"graph structure", "features", "activations", "parameters and optimizer"}
        assert all(v > 0 for v in e.parts.values()), (model, e.parts)
        assert hgnn.step_memory_estimate(model, graph, wide).total > e.total
    rgcn, rgat = (hgnn.step_memory_estimate(m, graph, small).parts["activations"] for m in ("rgcn", "rgat"))
    assert rgat > rgcn  # per-edge attention tensors on top of the same node outputs
    feats = sum(graph.num_nodes[t] * w * 4 for t, w in graph.feature_dims().items() if w)
    assert hgnn.step_memory_estimate("rgcn", graph, small).parts["features"] == feats


def test_a_configuration_that_cannot_fit_is_refused_before_it_is_built(graph, output_dirs, monkeypatch):
    params = HgnnTrainingParams(datasets=["synthetic"], models=["rgcn"], frameworks=["pyg"], repeat_steps=1,
                                warmup_steps=0, synthetic_scale=0.05)
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1024)

    def never(*a, **k):
        raise AssertionError("a refused configuration must not be measured")

    monkeypatch.setattr(hgnn, "measure_stage_times", never)
    table = hgnn.run_measurement("stage_times", params, torch.device("cpu"), graphs={"synthetic": graph})
    assert list(table["status"]) == ["refused"]
    with pytest.raises(memory.AllRefused, match="refused for memory"):
        memory.end_if_all_refused(table, "01-hgnn-training")
