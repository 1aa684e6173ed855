"""Declared parameters of every notebook, their validation, and the profiles' YAML files.

Each notebook has one pydantic model here (fields typed, bounded and documented). The runner
validates a profile's YAML (plus command-line overrides) against it *before* any work starts, and
the notebook's second cell validates its own parameters cell the same way, so a notebook opened
by hand in JupyterLab is checked too. Errors read like ``ValueError: 01-hgnn-training: batch_size
must be > 0 (got -3)``.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studylib import paths
from studylib.distributed.params import ClusterParams

PROFILES = ("smoke", "small", "paper")

#: Strictly positive numbers; in a list, the error names the item: ``fanouts.1 must be > 0 (got 0)``.
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]

#: Bounds of every integer parameter: a C ``int64``, the widest integer that torch and numpy take
#: for sizes, counts and seeds. A larger value is rejected here, not deep inside a kernel.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: A random seed: 0 to 2**63 - 1 (``torch.manual_seed`` takes up to 2**64 - 1, and
#: ``numpy.random.default_rng`` any non-negative integer; the int64 range fits both).
Seed = Annotated[int, Field(ge=0, le=INT64_MAX)]

#: Marker of a float parameter that may be ``inf`` or ``nan``: ``Annotated[float, AllowNonFinite]``
#: (or the alias :data:`NonFiniteFloat`). Every other float parameter must be finite.
AllowNonFinite = Field(allow_inf_nan=True)
NonFiniteFloat = Annotated[float, AllowNonFinite]


def _strict_problems(annotation: Any, value: Any, loc: str) -> list[str]:
    """What in ``value`` a lax conversion to ``annotation`` would wrongly accept: a boolean given
    for a number (``batch_size: true`` is not 1), a non-boolean given for a boolean. Walks
    ``Annotated``, unions (no problem when one arm takes the value) and lists (the item is named
    ``name.i``). Returns one message per problem, e.g. ``fanouts.1 must be an integer, not a
    boolean (got True)``."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        if value is None or not arms:
            return []
        found = [_strict_problems(a, value, loc) for a in arms]
        return [] if any(not f for f in found) else found[0]
    if origin in (list, tuple, set, frozenset) and isinstance(value, (list, tuple)):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if not args:
            return []
        items = args if origin is tuple and len(args) == len(value) else [args[0]] * len(value)
        return [p for i, (a, v) in enumerate(zip(items, value)) for p in _strict_problems(a, v, f"{loc}.{i}")]
    is_bool = isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's too
    if annotation is bool and not is_bool:
        return [f"{loc} must be true or false (got {value!r})"]
    if annotation in (int, float) and is_bool:
        kind = "an integer" if annotation is int else "a number"
        return [f"{loc} must be {kind}, not a boolean (got {value!r})"]
    return []


def _int_bound_problems(value: Any, loc: str) -> list[str]:
    """Integers (also inside lists) outside :data:`INT64_MIN` .. :data:`INT64_MAX`."""
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _int_bound_problems(v, f"{loc}.{i}")]
    if isinstance(value, int) and not isinstance(value, bool):
        if value > INT64_MAX:
            return [f"{loc} must be <= {INT64_MAX} (got {value!r})"]
        if value < INT64_MIN:
            return [f"{loc} must be >= {INT64_MIN} (got {value!r})"]
    return []


class NotebookParams(BaseModel):
    """Base of every notebook's parameters, strict for every subclass without its own code:

    - unknown names are rejected;
    - a boolean is not a number (``batch_size: true`` is rejected, also as a list item) and a
      boolean parameter takes only ``true``/``false``;
    - floats must be finite unless the field is declared ``Annotated[float, AllowNonFinite]``;
    - integers lie within the int64 range (:data:`INT64_MAX`), seeds within 0 .. 2**63 - 1;
    - enumerated values are ``Literal`` fields (or checked by the study's validators).

    Errors name the parameter and the value: ``batch_size must be an integer, not a boolean
    (got True)``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    run_id: str | None = Field(None, description="id of this run; None = a fresh one per run")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = CUDA when present")
    num_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = all cores")
    seed: Seed = Field(0, description="random seed, 0 to 2**63 - 1")

    @model_validator(mode="before")
    @classmethod
    def _no_lax_booleans(cls, data: Any) -> Any:
        if isinstance(data, dict):
            problems = [p for name, value in data.items() if name in cls.model_fields
                        for p in _strict_problems(cls.model_fields[name].annotation, value, name)]
            if problems:
                raise ValueError("; ".join(problems))
        return data

    @model_validator(mode="after")
    def _int64_bounds(self):
        problems = [p for name in type(self).model_fields for p in _int_bound_problems(getattr(self, name), name)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


HGNN_MODELS = ("rgcn", "rgat", "han")
FRAMEWORKS = ("dgl", "pyg")
HGNN_DATASETS = ("acm", "imdb", "dblp", "ogbn-mag", "synthetic")


class HgnnTrainingParams(NotebookParams):
    """Parameters of ``01-hgnn-training`` (Han et al., ACM TACO 2025)."""

    datasets: list[Literal["acm", "imdb", "dblp", "ogbn-mag", "synthetic"]] = Field(
        ["acm", "imdb", "dblp"], min_length=1, description="graphs to train on")
    models: list[Literal["rgcn", "rgat", "han"]] = Field(["rgcn", "rgat", "han"], min_length=1)
    frameworks: list[Literal["dgl", "pyg"]] = Field(["dgl", "pyg"], min_length=1)
    hidden_dim: int = Field(64, gt=0, description="hidden width per layer (all heads together)")
    num_layers: int = Field(2, gt=0, description="HGNN layers")
    num_heads: int = Field(4, gt=0, description="attention heads of RGAT and HAN")
    lr: float = Field(0.005, gt=0, description="Adam learning rate")
    warmup_steps: int = Field(2, ge=0, description="untimed training steps before measuring")
    repeat_steps: int = Field(5, gt=0, description="timed training steps per configuration")
    profile_steps: int = Field(2, gt=0, description="steps under torch.profiler for kernel classes")
    train_epochs: int = Field(30, ge=0, description="epochs of the accuracy check per model")
    synthetic_scale: float = Field(1.0, gt=0, description="node-count multiplier of the synthetic graph")
    han_metapath_sweep: bool = Field(True, description="time HAN over metapath count and length")
    han_sweep_datasets: list[str] | None = Field(None, description="graphs of the metapath sweep; None = the first")
    han_max_metapath_edges: int = Field(0, ge=0, description="skip metapaths whose graph has more edges; 0 = none")
    accuracy_datasets: list[str] | None = Field(None, description="graphs of the accuracy check; None = all")
    benchmark_datasets: list[str] | None = Field(None, description="graphs of the benchmarks; None = all")
    minibatch: bool = Field(True, description="compare full-batch with neighbor-sampled mini-batch")
    batch_size: int = Field(256, gt=0, description="target nodes per mini-batch")
    fanouts: list[PositiveInt] = Field([10, 10], min_length=1, description="sampled neighbors per layer and relation")
    minibatch_steps: int = Field(8, gt=0, description="timed mini-batches per configuration")
    minibatch_seeds: Literal["train", "all"] = Field(
        "train", description="seed nodes of mini-batch and data-parallel epochs: the training split or all target nodes")
    ddp_world_sizes: list[PositiveInt] = Field([1, 2], min_length=1, description="data-parallel process counts")
    ddp_steps: int = Field(8, gt=0, description="timed data-parallel steps per process count")
    reference_comparison: bool = Field(True, description="time staged models vs the frameworks' own layers")
    overhead_check: bool = Field(True, description="time instrumented vs uninstrumented steps")
    benchmark_rounds: int = Field(5, gt=0, description="alternated rounds of each benchmark comparison")
    benchmark_min_run_time: float = Field(0.2, gt=0, description="seconds per blocked_autorange measurement")
    ddp_timeout_s: float = Field(600, gt=0, description="limit for one data-parallel run (seconds)")

    @model_validator(mode="after")
    def _subsets_of_datasets(self):
        for name in ("han_sweep_datasets", "accuracy_datasets", "benchmark_datasets"):
            extra = [d for d in getattr(self, name) or [] if d not in self.datasets]
            if extra:
                raise ValueError(f"{name} must be among datasets {self.datasets} (got {extra[0]!r})")
        return self



class HardwareParams(NotebookParams):
    """Parameters of ``00-hardware``: the machine's measured limits (STREAM-style bandwidth, GEMM)."""

    thread_counts: list[int] = Field([1, 0], min_length=1, description="CPU thread counts to measure; 0 = all cores")
    stream_array_mib: float = Field(0.0, ge=0, description="MiB per STREAM array; 0 = at least 4x the last-level cache")
    rounds: int = Field(3, gt=0, description="alternated rounds of each measurement (one blocked_autorange each)")
    min_run_time: float = Field(0.3, gt=0, description="seconds per blocked_autorange")
    gemm_sizes: list[int] = Field([256, 512, 1024, 2048], min_length=1, description="n of the n x n GEMMs")
    gemm_dtypes: list[Literal["float32", "float16", "bfloat16"]] = Field(
        ["float32", "float16", "bfloat16"], min_length=1, description="GEMM dtypes; fp16/bf16 on GPU only by default")
    cpu_low_precision: bool = Field(False, description="also time fp16/bf16 GEMMs on the CPU")
    transfer_mib: float = Field(256.0, gt=0, description="MiB per host/device copy (GPU only)")
    sysbench: bool = Field(True, description="run sysbench memory (when installed) for the comparison")
    sysbench_repeats: int = Field(3, gt=0, description="alternated read/write sysbench runs per thread count")
    sysbench_total_gib: float = Field(32.0, gt=0, description="GiB each sysbench run streams (or 10 s)")

    @field_validator("thread_counts", "gemm_sizes")
    @classmethod
    def _non_negative_counts(cls, v: list[int], info) -> list[int]:
        low = 0 if info.field_name == "thread_counts" else 1
        bad = [x for x in v if x < low]
        if bad:
            raise ValueError(f"every item must be >= {low} (got {bad[0]})")
        return v


class OpMicrobenchmarkParams(NotebookParams):
    """Parameters of ``03-op-microbenchmarks`` (Hosseini, Simini, Vishwanath, arXiv 2207.09955)."""

    operations: list[str] | None = Field(None, description="operations of studylib.ops; None = all")
    implementations: Literal["all", "primary"] = Field(
        "all", description="all registered implementations, or only the first PyG and native one")
    sizes: list[PositiveInt] = Field([2**16, 2**19, 2**22], min_length=1, description="elements of the main input")
    memory_fractions: list[float] = Field([], description="extra sizes filling this fraction of free memory")
    max_memory_fraction: float = Field(0.8, gt=0, le=1, description="refuse inputs above this fraction of free memory")
    sparsities: list[float] = Field([0.0, 0.5, 0.9, 0.99], min_length=1, description="fractions of zeroed entries")
    reduce_factors: list[PositiveInt] = Field([1, 2, 4, 8], min_length=1, description="index reduce factors")
    grid: Literal["slices", "full"] = Field(
        "slices", description="slices = every sparsity at every size with the first reduce factor, every reduce "
                              "factor at the largest size and the extreme sparsities; full = the whole product")
    dtypes: list[Literal["float32", "float16", "bfloat16"]] = Field(
        ["float32", "float16", "bfloat16"], min_length=1, description="value dtypes; fp16/bf16 on GPU only")
    index_distribution: Literal["uniform", "sorted", "powerlaw"] = Field("uniform", description="index values")
    feature_dim: int = Field(32, gt=0, description="feature width F of row-wise operations and layers")
    gat_heads: int = Field(4, gt=0, description="attention heads of the GAT layer (divides feature_dim)")
    rounds: int = Field(5, gt=0, description="alternated rounds per configuration (one blocked_autorange each)")
    min_run_time: float = Field(0.02, gt=0, description="seconds per blocked_autorange")
    peak_memory: bool = Field(True, description="measure the peak memory of one call per implementation")

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one operation, or None for all")
        from studylib import ops

        ops.check_names(v)
        return v


    @field_validator("sparsities")
    @classmethod
    def _sparsity_range(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0 <= x < 1]
        if bad:
            raise ValueError(f"every sparsity must be in [0, 1) (got {bad[0]})")
        return v

    @field_validator("memory_fractions")
    @classmethod
    def _fraction_range(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0 < x <= 1]
        if bad:
            raise ValueError(f"every memory fraction must be in (0, 1] (got {bad[0]})")
        return v

    @model_validator(mode="after")
    def _heads_divide_features(self):
        if self.feature_dim % self.gat_heads:
            raise ValueError(f"gat_heads ({self.gat_heads}) must divide feature_dim ({self.feature_dim})")
        return self


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


class DistributedCachingParams(NotebookParams, ClusterParams):
    """Parameters of ``02-distributed-caching`` (Sarkar, Ghosh, Tallent, Jannesari, IEEE CLUSTER 2024)."""

    graphs: list[Literal["synthetic", "cora", "dblp", "ogbn-products", "ogbn-papers100M"]] = Field(
        ["synthetic", "cora", "dblp"], min_length=1, description="graphs of the main comparison")
    machines: list[PositiveInt] = Field([2], min_length=1, description="DistDGL machines = METIS partitions")
    trainers_per_machine: int = Field(1, gt=0, description="trainer processes per machine")
    networks: list[str] = Field(["1g-200us"], min_length=1, description="network models of the main comparison")
    network_sweep: list[str] = Field(["loopback", "10g-50us", "1g-200us"],
                                     description="network models of the speedup-vs-network sweep (sweep graph)")
    models: list[Literal["sage", "gat"]] = Field(["sage", "gat"], min_length=1,
                                                 description="first: all policies; others: baseline and massivegnn")
    policies: list[Literal["prefetch", "massivegnn", "static", "lru"]] = Field(
        ["prefetch", "massivegnn", "static", "lru"], description="compared with plain DistDGL")
    prefetch_fraction: float = Field(0.25, gt=0, le=1, description="buffer slots per halo node")
    alpha: float = Field(0.5, gt=0, lt=1, description="eviction score decay per unused mini-batch")
    delta: int = Field(8, gt=0, description="mini-batches between eviction rounds")
    eviction: bool = Field(True, description="evict and replace in the massivegnn policy")
    fraction_sweep: list[float] = Field([0.1, 0.25, 0.5, 1.0], description="prefetch fractions of the sweep")
    alpha_sweep: list[float] = Field([0.1, 0.5, 0.9], description="alphas of the sensitivity map")
    delta_sweep: list[PositiveInt] = Field([2, 8, 32], description="deltas of the sensitivity map")
    sweep_graph: Literal["synthetic", "cora", "dblp", "ogbn-products", "ogbn-papers100M"] = Field(
        "synthetic", description="graph of the sweeps")
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
    real_split: Literal["random", "standard"] = Field("random", description="Cora split: random 60/20/20 or Planetoid")
    partition_method: Literal["metis", "random"] = Field("metis", description="node assignment of partition_graph")
    cluster_timeout_s: float = Field(900, gt=0, description="limit of one cluster run (s)")
    verify_features: bool = Field(False, description="compare every cached fetch with a plain pull (slow)")


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

    @field_validator("networks", "network_sweep")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        from studylib.distributed.netem import network_model

        for name in v:
            network_model(name)
        return v

    @model_validator(mode="after")
    def _warmup_below_epochs(self):
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs})")
        if "gat" in self.models and self.hidden_dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_dim ({self.hidden_dim})")
        return self


class RecsysMemoryTiersParams(NotebookParams, ClusterParams):
    """Parameters of ``04-recsys-memory-tiers`` (Hu, Li, Yu, Zhang, arXiv 2207.11918)."""

    datasets: list[str] = Field(["movielens-100k"], min_length=1,
                                description="graphs of the single vs distributed comparison: movielens-100k, "
                                            "gowalla, amazon-book, movielens-10m, synthetic-<preset>")
    synthetic_scale: float = Field(0.1, gt=0, description="size multiplier of synthetic-<preset> graphs")
    download: bool = Field(False, description="allow downloading the paper datasets (gowalla, amazon-book, movielens-10m)")
    models: list[Literal["lightgcn", "ngcf"]] = Field(["lightgcn", "ngcf"], min_length=1, description="recommenders")
    layer_counts: list[PositiveInt] = Field([1, 2, 3, 4], min_length=1, description="layer sweep (at base_dim)")
    dims: list[PositiveInt] = Field([32, 64, 128], min_length=1, description="embedding-size sweep (at base_layers)")
    base_layers: int = Field(2, gt=0, description="layers of the width sweep, accuracy check and tiers")
    base_dim: int = Field(64, gt=0, description="embedding size of the layer sweep and the accuracy check")
    batch_size: int = Field(2048, gt=0, description="training interactions (seed edges) per step, all trainers")
    fanout: int = Field(10, description="sampled neighbours per node and layer in subgraph training; -1 = all")
    lr: float = Field(0.005, gt=0, description="Adam learning rate")
    reg: float = Field(1e-4, ge=0, description="L2 weight on the batch's ego embeddings (BPR)")
    top_k: int = Field(20, gt=0, description="K of recall@K and NDCG@K")
    accuracy_epochs: int = Field(5, ge=0, description="epochs of the accuracy check; 0 = skip")
    warmup_steps: int = Field(1, ge=0, description="untimed steps per configuration")
    repeat_steps: int = Field(5, gt=0, description="timed steps per configuration")
    machine_counts: list[PositiveInt] = Field([2, 4], description="DistDGL machines of the one-host cluster; [] = skip")
    network: str = Field("loopback", description="network model of the emulated cluster (netem preset)")
    cluster_timeout_s: float = Field(600, gt=0, description="limit of one cluster run (s)")
    tiers: list[Literal["dram", "mmap_cached", "mmap_cgroup", "hot_cold", "numa_remote"]] = Field(
        ["dram", "mmap_cached", "mmap_cgroup", "hot_cold", "numa_remote"], description="memory tiers; [] = skip")
    tier_datasets: list[str] = Field(["movielens-100k"], min_length=1, description="graphs of the tier runs")
    tier_models: list[Literal["lightgcn", "ngcf"]] = Field(["lightgcn", "ngcf"], min_length=1,
                                                           description="models of the tier runs")
    tier_layers: int = Field(2, gt=0, description="layers of the tier runs")
    tier_dim: int = Field(64, gt=0, description="embedding size of the tier runs (and the gather rows)")
    tier_steps: int = Field(3, gt=0, description="timed steps per tier and configuration")
    profile_steps: int = Field(1, ge=0, description="profiled steps per tier (kernel classes); 0 = none")
    cache_fraction: float = Field(0.25, gt=0, le=1, description="share of the tier files the cgroup leaves to the page cache")
    hot_fraction: float = Field(0.2, gt=0, lt=1, description="share of rows (highest degree) kept in DRAM by hot_cold")
    tier_advice: Literal["random", "normal"] = Field("random", description="madvise of tier mappings (readahead off or on)")
    cgroup_margin_mib: float = Field(2.0, ge=0, description="MiB of the cgroup limit beyond the page-cache share")
    heap_reserve_mib: float = Field(256.0, ge=0, description="MiB of heap touched before joining the cgroup (reused, not charged)")
    bandwidth_mib: float = Field(16.0, gt=0, description="MiB per array of the tier bandwidth kernels")
    bandwidth_rounds: int = Field(2, gt=0, description="alternated rounds of the tier bandwidth kernels")
    bandwidth_min_run_time: float = Field(0.05, gt=0, description="seconds per blocked_autorange of a kernel")
    tier_timeout_s: float = Field(900, gt=0, description="limit of the memory-tier worker (s)")
    tier_workdir: str | None = Field(None, description="folder of the tier files (a disk, not tmpfs); None = system temp")
    footprint_preset: Literal["gowalla", "amazon-book", "movielens-10m", "movielens-100k"] = Field(
        "amazon-book", description="synthetic preset of the footprint sweep")
    footprint_scales: list[PositiveFloat] = Field([0.01, 0.03, 0.1], description="scales of the footprint sweep; [] = skip")
    footprint_layers: int = Field(3, gt=0, description="layers of the footprint sweep")
    footprint_dim: int = Field(128, gt=0, description="embedding size of the footprint sweep")



    @field_validator("fanout")
    @classmethod
    def _fanout(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError(f"fanout must be > 0 or -1 (all neighbours) (got {v})")
        return v

    @field_validator("network")
    @classmethod
    def _network(cls, v: str) -> str:
        from studylib.distributed.netem import network_model

        network_model(v)
        return v

    @field_validator("datasets", "tier_datasets")
    @classmethod
    def _known_datasets(cls, v: list[str]) -> list[str]:
        from studylib.data.recsys import PAPER_DATASETS, SYNTHETIC_PRESETS

        known = ["movielens-100k", *PAPER_DATASETS, *(f"synthetic-{p}" for p in SYNTHETIC_PRESETS)]
        bad = [d for d in v if d not in known]
        if bad:
            raise ValueError(f"unknown dataset {bad[0]!r}; choose from {known}")
        return v


#: notebook name -> its parameter model. Add a notebook's model here when adding the notebook.
NOTEBOOK_PARAMS: dict[str, type[NotebookParams]] = {
    "00-hardware": HardwareParams,
    "01-hgnn-training": HgnnTrainingParams,
    "02-distributed-caching": DistributedCachingParams,
    "03-op-microbenchmarks": OpMicrobenchmarkParams,
    "04-recsys-memory-tiers": RecsysMemoryTiersParams,
    "05-parallelism-analysis": ParallelismAnalysisParams,
}


def _message(notebook: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        name = ".".join(str(p) for p in e["loc"]) or "parameters"
        got = e.get("input")
        ctx = e.get("ctx") or {}
        kind = e["type"]
        if kind == "extra_forbidden":
            lines.append(f"unknown parameter {name!r}")
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
            bound = next(iter(ctx.values()))
            lines.append(f"{name} must be {op} {bound} (got {got!r})")
        elif kind == "value_error":
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(msg if not e["loc"] or msg.startswith(name) else f"{name}: {msg}")
        elif kind == "finite_number":
            lines.append(f"{name} must be a finite number (got {got!r})")
        elif kind == "literal_error":
            lines.append(f"{name} must be one of {ctx.get('expected')} (got {got!r})")
        else:
            lines.append(f"{name}: {e['msg']} (got {got!r})")
    return f"{notebook}: " + "; ".join(lines)


def model_for(notebook: str) -> type[NotebookParams]:
    """The parameter model of ``notebook``; ``ValueError`` naming the known notebooks otherwise."""
    try:
        return NOTEBOOK_PARAMS[notebook]
    except KeyError:
        raise ValueError(f"unknown notebook {notebook!r}; known: {sorted(NOTEBOOK_PARAMS)}") from None


def validate(notebook: str, values: dict) -> NotebookParams:
    """Validate ``values`` (parameter name -> value) for ``notebook``.

    Returns the parameter model instance. Raises ``ValueError`` with one readable line per
    problem (unknown name, wrong type, out-of-range value), e.g.
    ``01-hgnn-training: batch_size must be > 0 (got -3)``.
    """
    model = model_for(notebook)
    try:
        return model(**values)
    except ValidationError as err:
        raise ValueError(_message(notebook, err)) from None


def from_namespace(notebook: str, namespace: dict) -> NotebookParams:
    """Validate the parameters of ``notebook`` found in ``namespace`` (a notebook's ``globals()``
    after its parameters cell): every declared field present there is taken, then
    :func:`validate` applies. Missing names take their defaults."""
    fields = model_for(notebook).model_fields
    return validate(notebook, {k: namespace[k] for k in fields if k in namespace})


def profile_path(notebook: str, profile: str) -> Path:
    """``notebooks/params/<profile>/<notebook>.yaml``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    return paths.notebooks_dir() / "params" / profile / f"{notebook}.yaml"


def load_profile(notebook: str, profile: str, overrides: dict | None = None) -> dict:
    """Read a profile's YAML for ``notebook``, apply ``overrides``, validate, and return the
    parameters as a plain dict (what papermill injects). Raises ``ValueError`` on bad values
    and ``FileNotFoundError`` naming the path when the profile has no file for this notebook."""
    path = profile_path(notebook, profile)
    if not path.is_file():
        raise FileNotFoundError(f"no parameters for {notebook!r} in profile {profile!r}: {path} is missing")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of parameter names to values")
    values.update(overrides or {})
    return validate(notebook, values).model_dump()
