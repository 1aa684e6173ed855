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
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from studylib import paths

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
