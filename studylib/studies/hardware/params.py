"""The parameters of ``00-hardware``: every default is written here once (the notebook's parameters
cell repeats them for papermill; a test checks that they agree)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from studylib.params import NotebookParams

NOTEBOOK = "00-hardware"


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
