"""Declared parameters of every notebook, their validation, and the profiles' YAML files.

Each notebook has one pydantic model here (fields typed, bounded and documented). The runner
validates a profile's YAML (plus command-line overrides) against it *before* any work starts, and
the notebook's second cell validates its own parameters cell the same way, so a notebook opened
by hand in JupyterLab is checked too. Errors read like ``ValueError: 01-hgnn-training: batch_size
must be > 0 (got -3)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studylib import paths

PROFILES = ("smoke", "small", "paper")


class NotebookParams(BaseModel):
    """Base of every notebook's parameters: unknown names are rejected, types are strict-ish."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    run_id: str | None = Field(None, description="id of this run; None = a fresh one per run")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = CUDA when present")
    num_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = all cores")
    seed: int = Field(0, ge=0, description="random seed")


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
    han_sweep_datasets: list[str] = Field(["dblp"], description="graphs of the metapath sweep (among datasets)")
    han_max_metapath_edges: int = Field(0, ge=0, description="skip metapaths whose graph has more edges; 0 = none")
    accuracy_datasets: list[str] | None = Field(None, description="graphs of the accuracy check; None = all")
    benchmark_datasets: list[str] | None = Field(None, description="graphs of the benchmarks; None = all")
    minibatch: bool = Field(True, description="compare full-batch with neighbor-sampled mini-batch")
    batch_size: int = Field(256, gt=0, description="target nodes per mini-batch")
    fanouts: list[int] = Field([10, 10], min_length=1, description="sampled neighbors per layer and relation")
    minibatch_steps: int = Field(8, gt=0, description="timed mini-batches per configuration")
    minibatch_seeds: Literal["train", "all"] = Field(
        "train", description="seed nodes of mini-batch and data-parallel epochs: the training split or all target nodes")
    ddp_world_sizes: list[int] = Field([1, 2], min_length=1, description="data-parallel process counts")
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

    @field_validator("fanouts", "ddp_world_sizes")
    @classmethod
    def _positive_items(cls, v: list[int]) -> list[int]:
        bad = [x for x in v if x <= 0]
        if bad:
            raise ValueError(f"every item must be > 0 (got {bad[0]})")
        return v


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
    sizes: list[int] = Field([2**16, 2**19, 2**22], min_length=1, description="elements of the main input")
    memory_fractions: list[float] = Field([], description="extra sizes filling this fraction of free memory")
    max_memory_fraction: float = Field(0.8, gt=0, le=1, description="refuse inputs above this fraction of free memory")
    sparsities: list[float] = Field([0.0, 0.5, 0.9, 0.99], min_length=1, description="fractions of zeroed entries")
    reduce_factors: list[int] = Field([1, 2, 4, 8], min_length=1, description="index reduce factors")
    grid: Literal["slices", "full"] = Field(
        "slices", description="slices = every sparsity at every size with the first reduce factor, all reduce "
                              "factors at the largest size; full = the whole product")
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

    @field_validator("sizes", "reduce_factors")
    @classmethod
    def _positive_ints(cls, v: list[int]) -> list[int]:
        bad = [x for x in v if x <= 0]
        if bad:
            raise ValueError(f"every item must be > 0 (got {bad[0]})")
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


#: notebook name -> its parameter model. Add a notebook's model here when adding the notebook.
NOTEBOOK_PARAMS: dict[str, type[NotebookParams]] = {
    "00-hardware": HardwareParams,
    "01-hgnn-training": HgnnTrainingParams,
    "03-op-microbenchmarks": OpMicrobenchmarkParams,
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
