"""The parameters of ``03-op-microbenchmarks``: every default is written here once (the notebook's parameters
cell repeats them for papermill; a test checks that they agree)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from studylib.params import NotebookParams, PositiveInt
from studylib.studies.op_microbenchmarks import ops

NOTEBOOK = "03-op-microbenchmarks"


class OpMicrobenchmarkParams(NotebookParams):
    """Parameters of ``03-op-microbenchmarks`` (Hosseini, Simini, Vishwanath, arXiv 2207.09955)."""

    operations: list[str] | None = Field(None, description="operations of studylib.studies.op_microbenchmarks.ops; None = all")
    implementations: Literal["all", "primary"] = Field(
        "all", description="all registered implementations, or only the first of each role (PyG kernel, "
                           "PyG utility, native)")
    sizes: list[PositiveInt] = Field([16384, 131072, 1048576], min_length=1, description="elements of the main input")
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
