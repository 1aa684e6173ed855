"""The parameters of ``05-parallelism-analysis``: every default is written here once (the notebook's parameters
cell repeats them for papermill; a test checks that they agree)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from studylib.data import specs
from studylib.params import NotebookParams, PositiveFloat, PositiveInt

NOTEBOOK = "05-parallelism-analysis"

#: Built-in homogeneous names this study has no loader for (``synthetic`` is its own grid, given by
#: ``synthetic_nodes`` etc.; ``dblp`` is 02's paper graph).
UNSUPPORTED_BUILTINS = ("synthetic", "dblp")
#: The ``partition_graphs`` entry naming the largest grid graph.
LARGEST = "largest"


def check_dataset(text: str) -> specs.DataSpec:
    """Check one entry of ``datasets`` without loading it: a homogeneous spec
    (:func:`studylib.data.specs.check` with :data:`studylib.data.specs.HOMOGENEOUS`: syntax, kind,
    the user's paths exist and hold the format) that this study can load (not ``synthetic``,
    ``synthetic-<...>`` or ``dblp``, whose loaders other studies own).

    Returns the :class:`~studylib.data.specs.DataSpec`. Raises
    :class:`~studylib.data.specs.DataSpecError` (a ``ValueError``) naming the spec and the problem.
    """
    known = [n for n in specs.BUILTIN[specs.HOMOGENEOUS] if n not in UNSUPPORTED_BUILTINS]
    use = (f"its synthetic graphs are the grid of synthetic_nodes x synthetic_degrees x feature_dims, and a "
           f"real graph is {', '.join(known)} or a spec ogb:<name>, planetoid:<Cora|CiteSeer|PubMed>[,<folder>], "
           "pyg:<class>[/<name>][,<folder>]")
    if isinstance(text, str) and ":" not in text and text.strip() not in specs.BUILTIN[specs.HOMOGENEOUS] \
            and not text.startswith("synthetic"):
        raise specs.DataSpecError(f"dataset {text!r}: unknown name; {use}")
    spec = specs.check(text, specs.HOMOGENEOUS)
    if spec.scheme == "synthetic" or spec.arg in UNSUPPORTED_BUILTINS:
        raise specs.DataSpecError(f"dataset {text!r}: {NOTEBOOK} has no loader for it; {use}")
    return spec


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
    datasets: list[str] = Field(
        ["cora"], description="real graphs: cora, ogbn-products, ogbn-papers100M, or homogeneous specs "
                              "(ogb:<name>, planetoid:<Name>[,<folder>], pyg:<class>[/<name>][,<folder>]; "
                              "see studylib.data.specs)")
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
    partition_graphs: list[str] = Field(["cora", "largest"],
                                        description="graphs to partition: members of datasets, or largest (biggest grid graph)")
    partition_counts: list[PositiveInt] = Field([2, 4, 8, 16], min_length=1, description="numbers of partitions P")
    dgl_partition_check: bool = Field(True, description="also partition with DistDGL partition_graph and compare halos")
    hgnn_check: bool = Field(True, description="hold HGNN work against 01-hgnn-training results when present")

    @field_validator("datasets")
    @classmethod
    def _dataset_specs(cls, v: list[str]) -> list[str]:
        return specs.check_all(v, specs.HOMOGENEOUS, check_one=check_dataset)  # before any work

    @model_validator(mode="before")
    @classmethod
    def _partition_graphs_fall_back(cls, data: Any) -> Any:
        """``partition_graphs`` naming built-in graphs that an overridden ``datasets`` left out
        (e.g. the profiles' ``cora`` when a user gives their own graph) partitions the given
        datasets in their place, with a note, instead of failing: whoever names their own graph
        wants its communication, not Cora's. ``largest`` is kept."""
        if not isinstance(data, dict) or not isinstance(data.get("datasets", []), list):
            return data
        value = data.get("partition_graphs", cls.model_fields["partition_graphs"].default)
        if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
            return data
        datasets = data.get("datasets", cls.model_fields["datasets"].default)
        try:  # a bad spec is reported by the field's own validation, without a note before it
            for d in datasets:
                check_dataset(d)
        except (TypeError, ValueError):
            return data
        absent = [g for g in value if g != LARGEST and g not in datasets]
        if absent and all(g in specs.BUILTIN[specs.HOMOGENEOUS] for g in absent):
            kept = [g for g in value if g not in absent]
            # the given datasets take the place of the first absent built-in, in their order
            at = value.index(absent[0])
            new = [g for g in value[:at] if g in kept]
            new += [d for d in datasets if d not in kept] + [g for g in value[at:] if g in kept]
            warnings.warn(f"{NOTEBOOK}: partition_graphs={value} names graphs not in datasets={datasets}; "
                          f"partitioning {new if new else 'no graph'} instead", UserWarning, stacklevel=2)
            data = {**data, "partition_graphs": new}
        return data

    @model_validator(mode="after")
    def _partition_graphs_known(self):
        bad = [g for g in self.partition_graphs if g != LARGEST and g not in self.datasets]
        if bad:
            raise ValueError(f"partition_graphs must be {LARGEST!r} or among datasets {self.datasets} "
                             f"(got {bad[0]!r})")
        if len(set(self.partition_graphs)) != len(self.partition_graphs):
            raise ValueError(f"partition_graphs lists a graph twice: {self.partition_graphs}")
        return self

    @model_validator(mode="after")
    def _heads_divide_widths(self):
        if "gat" in self.models:
            bad = [k for k in [*self.feature_dims, self.hidden_dim] if k % self.num_heads]
            if bad:
                raise ValueError(f"num_heads ({self.num_heads}) must divide every feature width (got {bad[0]})")
        return self
