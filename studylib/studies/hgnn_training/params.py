"""The parameters of ``01-hgnn-training``: every default is written here once (the notebook's parameters
cell repeats them for papermill; a test checks that they agree)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from studylib.data import specs
from studylib.params import NotebookParams, PositiveInt

NOTEBOOK = "01-hgnn-training"


HGNN_MODELS = ("rgcn", "rgat", "han")
FRAMEWORKS = ("dgl", "pyg")
HGNN_DATASETS = ("acm", "imdb", "dblp", "ogbn-mag", "synthetic")
#: Parameters that pick a subset of ``datasets``.
SUBSET_PARAMETERS = ("han_sweep_datasets", "accuracy_datasets", "benchmark_datasets")



class HgnnTrainingParams(NotebookParams):
    """Parameters of ``01-hgnn-training`` (Han et al., ACM TACO 2025)."""

    datasets: list[str] = Field(
        ["acm", "imdb", "dblp"], min_length=1,
        description="graphs to train on: acm, imdb, dblp, ogbn-mag, synthetic, or heterogeneous specs "
                    "(heco:<folder>, ogb:ogbn-mag, pyg:<class>[,<root>]; see studylib.data.specs)")
    dataset_options: dict[str, dict] = Field(
        {}, description="per dataset spec: target, split, metapaths (name -> relations), type_names")
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

    @field_validator("datasets")
    @classmethod
    def _dataset_specs(cls, v: list[str]) -> list[str]:
        return specs.check_all(v, specs.HETEROGENEOUS)  # a bad spec stops here, before any work

    @model_validator(mode="before")
    @classmethod
    def _subsets_fall_back(cls, data: Any) -> Any:
        """A subset parameter naming built-in graphs that an overridden ``datasets`` left out falls
        back to the given datasets (``None``), with a note, instead of failing."""
        if not isinstance(data, dict) or not isinstance(data.get("datasets", []), list):
            return data
        datasets = data.get("datasets", cls.model_fields["datasets"].default)
        for name in SUBSET_PARAMETERS:
            value = data.get(name)
            if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
                continue
            absent = [d for d in value if d not in datasets]
            if absent and all(d in specs.BUILTIN[specs.HETEROGENEOUS] for d in absent):
                kept = [d for d in value if d in datasets] or None
                warnings.warn(f"01-hgnn-training: {name}={value} names graphs not in datasets={datasets}; "
                              f"using {kept if kept else 'the given datasets'} instead", UserWarning, stacklevel=2)
                data = {**data, name: kept}
        return data

    @model_validator(mode="after")
    def _subsets_of_datasets(self):
        for name in SUBSET_PARAMETERS:
            extra = [d for d in getattr(self, name) or [] if d not in self.datasets]
            if extra:
                raise ValueError(f"{name} must be among datasets {self.datasets} (got {extra[0]!r})")
        extra = [d for d in self.dataset_options if d not in self.datasets]
        if extra:
            raise ValueError(f"dataset_options names {extra[0]!r}, which is not among datasets {self.datasets}")
        for d, opts in self.dataset_options.items():
            bad = [k for k in opts if k not in specs.HECO_OPTIONS]
            if bad:
                raise ValueError(f"dataset_options[{d!r}]: unknown option(s) {bad}; use {', '.join(specs.HECO_OPTIONS)}")
        if {"rgat", "han"} & set(self.models) and self.hidden_dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_dim ({self.hidden_dim}) for RGAT and HAN")
        return self
