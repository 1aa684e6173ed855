"""The parameters of ``02-distributed-caching``: every default is written here once (the notebook's parameters
cell repeats them for papermill; a test checks that they agree)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from studylib.data import specs
from studylib.distributed.netem import network_model
from studylib.distributed.params import ClusterParams
from studylib.params import NotebookParams, PositiveInt

NOTEBOOK = "02-distributed-caching"

#: The built-in graphs of this study (``measure.load_graph``); any homogeneous spec works too.
BUILTIN_GRAPHS = ("synthetic", "cora", "dblp", "ogbn-products", "ogbn-papers100M")


class DistributedCachingParams(NotebookParams, ClusterParams):
    """Parameters of ``02-distributed-caching`` (Sarkar, Ghosh, Tallent, Jannesari, IEEE CLUSTER 2024)."""

    datasets: list[str] = Field(
        ["synthetic", "cora", "dblp"], min_length=1,
        description="graphs of the main comparison: synthetic, cora, dblp, ogbn-products, ogbn-papers100M, or "
                    "homogeneous specs (ogb:<name>, planetoid:<Name>[,<root>], pyg:<Class>[/<name>][,<root>]; "
                    "see studylib.data.specs)")
    machines: list[PositiveInt] = Field([2], min_length=1, description="DistDGL machines = METIS partitions")
    trainers_per_machine: int = Field(1, gt=0, description="trainer processes per machine")
    networks: list[str] = Field(["1g-200us"], min_length=1, description="network models of the main comparison")
    network_sweep: list[str] = Field(["loopback", "10g-50us", "1g-200us"],
                                     description="network models of the speedup-vs-network sweep (sweep graph)")
    models: list[Literal["sage", "gat"]] = Field(["sage", "gat"], min_length=1,
                                                 description="first: all policies; others: baseline and massivegnn")
    policies: list[Literal["prefetch", "massivegnn", "massivegnn-noevict", "static", "lru", "decayed-use"]] = Field(
        ["prefetch", "massivegnn", "static", "lru"], description="compared with plain DistDGL")
    prefetch_fraction: float = Field(0.25, gt=0, le=1, description="buffer slots per halo node")
    alpha: float = Field(0.005, gt=0, lt=1, description="eviction score decay per mini-batch")
    delta: int = Field(32, gt=0, description="mini-batches between eviction rounds")
    eviction: bool = Field(True, description="evict and replace in the massivegnn policy")
    fraction_sweep: list[float] = Field([0.1, 0.25, 0.5, 1.0], description="prefetch fractions of the sweep")
    alpha_sweep: list[float] = Field([0.005, 0.05], description="alphas of the alpha x delta grid")
    delta_sweep: list[PositiveInt] = Field([25, 32], description="deltas of the alpha x delta grid")
    cluster_grid_cells: list[list[float]] = Field(
        [[0.005, 32], [0.05, 25]], description="[alpha, delta] cells of the grid also run on the cluster")
    seed_order: Literal["shuffle", "clustered"] = Field(
        "shuffle", description="training seed order of the cluster runs: shuffle or clustered (METIS sub-clusters)")
    replay_seed_orders: list[Literal["shuffle", "clustered"]] = Field(
        ["shuffle", "clustered"], description="seed orders of the access sequences recorded for the offline replay")
    sweep_epochs: int = Field(4, gt=0, description="epochs of the sweeps run (warm-up included)")
    sweep_batches_per_epoch: int = Field(16, ge=0, description="mini-batches per epoch of the sweeps run; 0 = full epochs")
    sweep_graph: str = Field("synthetic", description="graph of the sweeps, one of datasets")
    epochs: int = Field(4, gt=0, description="epochs per variant, alternating (warm-up epochs included)")
    warmup_epochs: int = Field(1, ge=0, description="first epochs left out of the timings")
    batch_size: int = Field(1000, gt=0, description="seed nodes per mini-batch and trainer")
    min_batches_per_epoch: int = Field(8, gt=0, description="smaller batches on graphs too small for this many")
    max_batches_per_epoch: int = Field(0, ge=0, description="cap on mini-batches per epoch; 0 = full epochs")
    fanouts: list[PositiveInt] = Field([10, 25], min_length=1, description="sampled neighbours per layer, input layer first")
    hidden_dim: int = Field(256, gt=0, description="hidden width")
    num_heads: int = Field(4, gt=0, description="GAT heads of the hidden layer")
    lr: float = Field(0.003, gt=0, description="Adam learning rate")
    eval_max_nodes: int = Field(2000, gt=0, description="test nodes per trainer for the accuracy")
    synthetic_nodes: int = Field(40000, ge=100, description="vertices of the synthetic power-law graph")
    synthetic_avg_degree: float = Field(10.0, gt=0, description="its mean degree")
    synthetic_feature_dim: int = Field(128, gt=0, description="its feature width")
    synthetic_degree_skew: float = Field(2.0, gt=0, description="its Pareto tail index; smaller = heavier hubs")
    synthetic_classes: int = Field(8, ge=2, description="its classes")
    dblp_feature_dim: int = Field(256, gt=0, description="random projection width of DBLP paper features")
    real_split: Literal["random", "standard"] = Field(
        "random", description="split of cora and of spec graphs: random 60/20/20, or the source's (Planetoid's, "
                              "ogb's); a graph without a split is always split at random")
    partition_method: Literal["metis", "random"] = Field("metis", description="node assignment of partition_graph")
    cluster_timeout_s: float = Field(900, gt=0, description="limit of one cluster run (s)")
    verify_features: bool = Field(False, description="compare every cached fetch with a plain pull (slow)")

    @field_validator("datasets")
    @classmethod
    def _dataset_specs(cls, v: list[str]) -> list[str]:
        return specs.check_all(v, specs.HOMOGENEOUS)  # a bad spec stops here, before any work

    @model_validator(mode="before")
    @classmethod
    def _sweep_graph_falls_back(cls, data: Any) -> Any:
        """A ``sweep_graph`` naming a built-in graph that ``datasets`` leaves out (an overridden
        ``datasets``) falls back to the first of ``datasets``, with a note, instead of failing."""
        if not isinstance(data, dict):
            return data
        datasets = data.get("datasets", cls.model_fields["datasets"].default)
        sweep = data.get("sweep_graph", cls.model_fields["sweep_graph"].default)
        if not (isinstance(datasets, list) and datasets and all(isinstance(d, str) for d in datasets)
                and isinstance(sweep, str) and sweep not in datasets and sweep in BUILTIN_GRAPHS):
            return data
        try:
            for text in datasets:
                specs.check(text, specs.HOMOGENEOUS)
        except ValueError:
            return data  # refused by the datasets validator: no note about a fall-back
        warnings.warn(f"{NOTEBOOK}: sweep_graph={sweep!r} is not in datasets={datasets}; using "
                      f"{datasets[0]!r} instead", UserWarning, stacklevel=2)
        return {**data, "sweep_graph": datasets[0]}

    @field_validator("fraction_sweep")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0 < x <= 1]
        if bad:
            raise ValueError(f"every prefetch fraction must be in (0, 1] (got {bad[0]})")
        return v

    @field_validator("alpha_sweep")
    @classmethod
    def _alphas(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0 < x < 1]
        if bad:
            raise ValueError(f"every alpha must be in (0, 1) (got {bad[0]})")
        return v

    @field_validator("cluster_grid_cells")
    @classmethod
    def _cells(cls, v: list[list[float]]) -> list[list[float]]:
        for cell in v:
            if len(cell) != 2 or not 0 < cell[0] < 1 or cell[1] != int(cell[1]) or cell[1] < 1:
                raise ValueError(f"every cluster grid cell must be [alpha in (0, 1), delta >= 1 integer] (got {cell})")
        return v

    @field_validator("networks", "network_sweep")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for name in v:
            network_model(name)
        return v

    @model_validator(mode="after")
    def _warmup_below_epochs(self):
        if self.sweep_graph not in self.datasets:
            raise ValueError(f"sweep_graph must be one of datasets {self.datasets} (got {self.sweep_graph!r})")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs})")
        if self.warmup_epochs >= self.sweep_epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be < sweep_epochs ({self.sweep_epochs})")
        grid = {(float(a), int(d)) for a in self.alpha_sweep for d in self.delta_sweep}
        off = [c for c in self.cluster_grid_cells if (float(c[0]), int(c[1])) not in grid]
        if off:
            raise ValueError(f"cluster_grid_cells {off} are not cells of alpha_sweep x delta_sweep")
        if "gat" in self.models and self.hidden_dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_dim ({self.hidden_dim})")
        return self
