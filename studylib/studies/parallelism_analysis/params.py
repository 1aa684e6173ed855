"""The parameters of ``05-parallelism-analysis``: every default is written here once (the notebook's parameters
cell repeats them for papermill; a test checks that they agree)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from studylib.params import NotebookParams, PositiveFloat, PositiveInt

NOTEBOOK = "05-parallelism-analysis"


class ParallelismAnalysisParams(NotebookParams):
    """Parameters of ``05-parallelism-analysis`` (Besta and Hoefler, IEEE TPAMI 2024)."""

    models: list[Literal["gcn", "sage", "gin", "gat"]] = Field(["gcn", "sage", "gin", "gat"], min_length=1,
                                                              description="homogeneous GNNs to measure")
    frameworks: list[Literal["dgl", "pyg"]] = Field(["dgl", "pyg"], min_length=1, description="frameworks")
    synthetic_nodes: list[PositiveInt] = Field([2048, 8192, 32768], min_length=1, description="grid: vertices n")
    synthetic_degrees: list[PositiveFloat] = Field([4.0, 16.0], min_length=1, description="grid: average degree m/n")
    feature_dims: list[PositiveInt] = Field([32, 128], min_length=1, description="grid: feature width k of every layer")
    num_layers: list[PositiveInt] = Field([2, 3], min_length=1, description="layers L (the first is used for profiles)")
    degree_skew: float = Field(2.0, gt=0, description="Pareto tail index of the grid graphs' degrees")
    num_classes: int = Field(8, ge=2, description="classes of the grid graphs")
    real_datasets: list[Literal["cora"]] = Field(["cora"], description="real graphs from the mirror")
    hidden_dim: int = Field(64, gt=0, description="hidden width on real graphs")
    num_heads: int = Field(4, gt=0, description="GAT heads of hidden layers")
    gin_mlp_layers: int = Field(2, gt=0, description="linear layers K of each GIN MLP")
    lr: float = Field(0.01, gt=0, description="Adam learning rate")
    warmup_steps: int = Field(1, ge=0, description="untimed training steps per configuration")
    repeat_steps: int = Field(5, gt=0, description="timed training steps per configuration")
    kernel_profile: bool = Field(True, description="profile kernel classes on the largest grid graph and real graphs")
    profile_steps: int = Field(1, gt=0, description="profiled steps per configuration")
    thread_scaling: bool = Field(True, description="time 1 thread vs all on the largest grid graph")
    minibatch: bool = Field(True, description="time DGL neighbour-sampled mini-batches on the largest grid graph")
    batch_size: int = Field(512, gt=0, description="seed vertices per mini-batch")
    fanouts: list[PositiveInt] = Field([10, 10], min_length=1, description="sampled neighbours per layer")
    minibatch_steps: int = Field(5, gt=0, description="timed mini-batches per model")
    partition_graphs: list[str] = Field(["cora", "largest"], description="graphs to partition; largest = biggest grid graph")
    partition_counts: list[PositiveInt] = Field([2, 4, 8, 16], min_length=1, description="numbers of partitions P")
    dgl_partition_check: bool = Field(True, description="also partition with DistDGL partition_graph and compare halos")
    hgnn_check: bool = Field(True, description="hold HGNN work against 01-hgnn-training results when present")

    @field_validator("partition_graphs")
    @classmethod
    def _known_partition_graphs(cls, v: list[str]) -> list[str]:
        bad = [g for g in v if g not in ("cora", "largest")]
        if bad:
            raise ValueError(f"partition graphs must be cora or largest (got {bad[0]!r})")
        return v

    @model_validator(mode="after")
    def _heads_divide_widths(self):
        if "gat" in self.models:
            bad = [k for k in [*self.feature_dims, self.hidden_dim] if k % self.num_heads]
            if bad:
                raise ValueError(f"num_heads ({self.num_heads}) must divide every feature width (got {bad[0]})")
        return self
