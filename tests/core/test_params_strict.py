"""Strict parameters: booleans are not numbers, floats are finite, integers fit int64, every
enumerated value is checked; all in the base class, so every notebook's model gets it."""

import math
import types
import typing
from typing import Annotated, Literal, get_args, get_origin

import pytest

from studylib import params
from studylib.runner import parse_overrides

NOTEBOOKS = sorted(params.NOTEBOOK_PARAMS)


def _unwrap(annotation):
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (typing.Union, types.UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        if len(arms) == 1:
            return _unwrap(arms[0])
    return annotation


def _fields(kind):
    """(notebook, field name, is_list) of every field whose (item) type is ``kind``."""
    out = []
    for nb in NOTEBOOKS:
        for name, field in params.NOTEBOOK_PARAMS[nb].model_fields.items():
            ann = _unwrap(field.annotation)
            if ann is kind:
                out.append((nb, name, False))
            elif get_origin(ann) is list and _unwrap(get_args(ann)[0]) is kind:
                out.append((nb, name, True))
    return out


def _reject(nb, values, *needles):
    with pytest.raises(ValueError) as err:
        params.validate(nb, values)
    text = str(err.value)
    assert text.startswith(f"{nb}: ") and "\n" not in text
    for n in needles:
        assert n in text, text
    return text


def test_yaml_true_for_batch_size_is_rejected():
    common, _ = parse_overrides(["batch_size=true"])
    assert common == {"batch_size": True}
    with pytest.raises(ValueError, match=r"batch_size must be an integer, not a boolean \(got True\)"):
        params.load_profile("01-hgnn-training", "smoke", common)


@pytest.mark.parametrize("nb,name,is_list", _fields(int), ids=lambda x: str(x))
def test_a_boolean_is_not_an_integer(nb, name, is_list):
    value = [True] if is_list else True
    _reject(nb, {name: value}, f"{name}.0" if is_list else name, "not a boolean", "True")


@pytest.mark.parametrize("nb,name,is_list", _fields(float), ids=lambda x: str(x))
def test_a_boolean_is_not_a_float_and_floats_are_finite(nb, name, is_list):
    for bad in (True, math.inf, -math.inf, math.nan, "inf"):
        _reject(nb, {name: [bad] if is_list else bad}, f"{name}.0" if is_list else name)
    text = _reject(nb, {name: [math.inf] if is_list else math.inf})
    assert "inf" in text


@pytest.mark.parametrize("nb,name,is_list", _fields(bool), ids=lambda x: str(x))
def test_a_boolean_parameter_takes_only_true_or_false(nb, name, is_list):
    _reject(nb, {name: 1}, f"{name} must be true or false (got 1)")
    _reject(nb, {name: "maybe"}, name)
    params.validate(nb, {name: False})


def test_a_boolean_inside_a_list_is_named_by_its_index():
    _reject("01-hgnn-training", {"fanouts": [10, True]}, "fanouts.1 must be an integer, not a boolean (got True)")
    _reject("05-parallelism-analysis", {"synthetic_degrees": [4.0, float("nan")]},
            "synthetic_degrees.1 must be a finite number (got nan)")


def test_a_declared_parameter_may_be_non_finite():
    class WithLimit(params.NotebookParams):
        limit: Annotated[float, params.AllowNonFinite] = math.inf
        limits: list[params.NonFiniteFloat] = []
        other: float = 1.0

    assert WithLimit(limit=math.inf, limits=[math.nan]).limit == math.inf
    with pytest.raises(ValueError):
        WithLimit(other=math.inf)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_seeds_lie_within_0_and_2_pow_63_minus_1(nb):
    assert params.validate(nb, {"seed": 2**63 - 1}).seed == 2**63 - 1
    _reject(nb, {"seed": 12345678901234567890123}, "seed must be <= 9223372036854775807",
            "12345678901234567890123")
    _reject(nb, {"seed": 2**63}, "seed must be <= 9223372036854775807")
    _reject(nb, {"seed": -1}, "seed must be >= 0 (got -1)")


@pytest.mark.parametrize("nb,name,is_list", _fields(int), ids=lambda x: str(x))
def test_every_integer_is_bounded_by_int64(nb, name, is_list):
    big = 2**63
    text = _reject(nb, {name: [big] if is_list else big}, f"{name}.0 must be <=" if is_list else f"{name} must be <=")
    field = params.NOTEBOOK_PARAMS[nb].model_fields[name]
    own = [m.le for m in field.metadata if getattr(m, "le", None) is not None]
    assert f"<= {own[0] if own and not is_list else params.INT64_MAX}" in text


def test_assignment_is_strict_too():
    p = params.validate("01-hgnn-training", {})
    with pytest.raises(ValueError, match="not a boolean"):
        p.batch_size = True
    with pytest.raises(ValueError, match="finite"):
        p.lr = math.inf


def _literal_fields():
    out = []
    for nb in NOTEBOOKS:
        for name, field in params.NOTEBOOK_PARAMS[nb].model_fields.items():
            ann = _unwrap(field.annotation)
            if get_origin(ann) is Literal:
                out.append((nb, name, False))
            elif get_origin(ann) is list and get_origin(_unwrap(get_args(ann)[0])) is Literal:
                out.append((nb, name, True))
    return out


@pytest.mark.parametrize("nb,name,is_list", _literal_fields(), ids=lambda x: str(x))
def test_every_literal_value_is_checked(nb, name, is_list):
    _reject(nb, {name: ["bogus"] if is_list else "bogus"}, "bogus", name)


@pytest.mark.parametrize("nb,values", [
    ("02-distributed-caching", {"networks": ["bogus"]}),
    ("02-distributed-caching", {"network_sweep": ["bogus"]}),
    ("03-op-microbenchmarks", {"operations": ["bogus"]}),
    ("04-recsys-memory-tiers", {"network": "bogus"}),
    ("04-recsys-memory-tiers", {"datasets": ["bogus"]}),
    ("04-recsys-memory-tiers", {"tier_datasets": ["bogus"]}),
    ("05-parallelism-analysis", {"partition_graphs": ["bogus"]}),
    ("01-hgnn-training", {"han_sweep_datasets": ["bogus"]}),
    ("01-hgnn-training", {"accuracy_datasets": ["bogus"]}),
    ("01-hgnn-training", {"benchmark_datasets": ["bogus"]}),
])
def test_enumerated_strings_are_checked(nb, values):
    _reject(nb, values, "bogus", next(iter(values)))


def test_recsys_network_is_validated_like_the_caching_networks():
    _reject("04-recsys-memory-tiers", {"network": "bogus"}, "network: unknown network model 'bogus'")
    for ok in ("loopback", "1g-200us", "40g-2us"):
        assert params.validate("04-recsys-memory-tiers", {"network": ok}).network == ok


@pytest.mark.parametrize("profile", params.PROFILES)
def test_every_profile_is_strict_clean(profile):
    for nb in NOTEBOOKS:
        params.load_profile(nb, profile)
