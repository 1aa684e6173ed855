"""Declared parameters of every notebook, their validation, and the profiles' YAML files.

Each notebook has one pydantic model, in its study package (``studylib/studies/<slug>/params.py``:
fields typed, bounded, documented, defaults written once); this module holds their base class, the
shared types, the registry :data:`NOTEBOOK_PARAMS`, validation and the YAML loading. The runner
validates a profile's YAML (plus command-line overrides) against it *before* any work starts, and
the notebook's second cell validates its own parameters cell the same way, so a notebook opened
by hand in JupyterLab is checked too. Errors read like ``ValueError: 01-hgnn-training: batch_size
must be > 0 (got -3)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studylib import paths

PROFILES = ("smoke", "small", "paper")

#: Strictly positive numbers; in a list, the error names the item: ``fanouts.1 must be > 0 (got 0)``.
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class NotebookParams(BaseModel):
    """Base of every notebook's parameters: unknown names are rejected, types are strict-ish."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    run_id: str | None = Field(None, description="id of this run; None = a fresh one per run")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = CUDA when present")
    num_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = all cores")
    seed: int = Field(0, ge=0, description="random seed")


#: notebook -> the module and class of its parameter model (imported when first asked for, so that
#: the core never imports a study package at import time). Add a study's line when adding a study.
STUDY_PARAMS: dict[str, str] = {
    "00-hardware": "studylib.studies.hardware.params:HardwareParams",
    "01-hgnn-training": "studylib.studies.hgnn_training.params:HgnnTrainingParams",
    "02-distributed-caching": "studylib.studies.distributed_caching.params:DistributedCachingParams",
    "03-op-microbenchmarks": "studylib.studies.op_microbenchmarks.params:OpMicrobenchmarkParams",
    "04-recsys-memory-tiers": "studylib.studies.recsys_memory_tiers.params:RecsysMemoryTiersParams",
    "05-parallelism-analysis": "studylib.studies.parallelism_analysis.params:ParallelismAnalysisParams",
}


class _StudyRegistry(Mapping):
    """notebook -> parameter model, read from :data:`STUDY_PARAMS` and imported lazily."""

    def __init__(self, spec: dict[str, str]):
        self._spec = spec

    def __getitem__(self, notebook: str) -> type[NotebookParams]:
        module, _, cls = self._spec[notebook].partition(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self):
        return iter(self._spec)

    def __len__(self) -> int:
        return len(self._spec)


#: notebook name -> its parameter model (a mapping; the models live in the study packages).
NOTEBOOK_PARAMS: Mapping[str, type[NotebookParams]] = _StudyRegistry(STUDY_PARAMS)


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
