"""The parameters of ``04-recsys-memory-tiers``: every default is written here once (the notebook's parameters
cell repeats them for papermill; a test checks that they agree)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from studylib.data import specs
from studylib.distributed.netem import network_model
from studylib.distributed.params import ClusterParams
from studylib.params import NotebookParams, PositiveFloat, PositiveInt

NOTEBOOK = "04-recsys-memory-tiers"

#: Parameters that name graphs besides ``datasets`` (they fall back to ``datasets``, see
#: :meth:`RecsysMemoryTiersParams._graphs_fall_back`).
SUBSET_PARAMETERS = ("tier_datasets",)


class RecsysMemoryTiersParams(NotebookParams, ClusterParams):
    """Parameters of ``04-recsys-memory-tiers`` (Hu, Li, Yu, Zhang, arXiv 2207.11918)."""

    datasets: list[str] = Field(["movielens-100k"], min_length=1,
                                description="graphs of the single vs distributed comparison: movielens-100k, "
                                            "gowalla, amazon-book, movielens-10m, synthetic-<preset>, or "
                                            "bipartite specs (ratings:<file>[,<test file>], lightgcn:<folder>; "
                                            "see studylib.data.specs)")
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
    core_budgets: list[PositiveInt] = Field([1, 2], min_length=1,
                                            description="cores shared by the single machine and by the whole emulated "
                                                        "cluster (each run pinned to the first N cores); budgets above "
                                                        "this machine's cores are skipped")
    server_dram_gib: float = Field(192.0, gt=0, description="DRAM of the server the footprint finding is held against "
                                                            "(GiB; default: a two-socket Optane server)")
    optane_device: str = Field("Optane DC PMM, 6 interleaved modules",
                               description="published Optane figures the tier model predicts for (pmem_model.PUBLISHED)")
    tiers: list[Literal["dram", "mmap_cached", "mmap_cgroup", "hot_cold", "numa_remote"]] = Field(
        ["dram", "mmap_cached", "mmap_cgroup", "hot_cold", "numa_remote"], description="memory tiers; [] = skip")
    tier_datasets: list[str] = Field(["movielens-100k"], min_length=1,
                                     description="graphs of the tier runs (names or specs, as datasets)")
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

    @field_validator("optane_device")
    @classmethod
    def _optane(cls, v: str) -> str:
        from studylib.studies.recsys_memory_tiers.pmem_model import PUBLISHED

        if v not in set(PUBLISHED["device"]):
            raise ValueError(f"unknown optane_device {v!r}; choose from {list(PUBLISHED['device'])}")
        return v

    @field_validator("network")
    @classmethod
    def _network(cls, v: str) -> str:
        network_model(v)
        return v

    @field_validator("datasets", "tier_datasets")
    @classmethod
    def _dataset_specs(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return specs.check_all(v, specs.BIPARTITE, info.field_name)  # a bad spec stops here, before any work

    @model_validator(mode="before")
    @classmethod
    def _graphs_fall_back(cls, data: Any) -> Any:
        """``tier_datasets`` falls back to ``datasets``, with a note (``UserWarning``), instead of
        running on graphs the caller did not ask for or failing on a registered graph that an
        overridden ``datasets`` left out: when the graphs it names outside ``datasets`` are all
        built-in (registered names or ``synthetic-<preset>``) and either one of them is a registered
        name (it needs its files) or ``datasets`` holds the user's own graph (a spec with a path).
        It keeps its graphs that are in ``datasets``, else takes all of ``datasets``. A profile's
        own choice (e.g. a larger ``synthetic-gowalla`` beside ``movielens-100k``) stays."""
        if not isinstance(data, dict):
            return data
        datasets = data.get("datasets", cls.model_fields["datasets"].default)
        if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
            return data
        for name in SUBSET_PARAMETERS:
            value = data.get(name, cls.model_fields[name].default)
            if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
                continue
            absent = [d for d in value if d not in datasets]
            given = [_origin(d) for d in datasets]
            origins = [_origin(d) for d in absent]
            if not absent or None in given or not set(origins) <= {"builtin", "synthetic"}:
                continue  # nothing left out, a bad spec (reported by validation), or the user's own choice
            if "builtin" in origins or "user" in given:
                kept = [d for d in value if d in datasets] or list(datasets)
                warnings.warn(f"{NOTEBOOK}: {name}={value} names graphs not in datasets={datasets}; "
                              f"using {kept} instead", UserWarning, stacklevel=2)
                data = {**data, name: kept}
        return data


def _origin(text: str) -> str | None:
    """Where a bipartite spec's graph comes from: ``"builtin"`` (a registered name),
    ``"synthetic"`` (generated), ``"user"`` (the user's files), or ``None`` for text that is no
    valid bipartite spec (validation reports it)."""
    try:
        spec = specs.parse(text, specs.BIPARTITE)
    except specs.DataSpecError:
        return None
    return spec.scheme if spec.scheme in ("builtin", "synthetic") else "user"
