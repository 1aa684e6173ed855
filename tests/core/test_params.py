"""Parameter validation: clear messages before any work starts."""

import pytest
import yaml

from studylib import params


def test_defaults_validate():
    p = params.validate("01-hgnn-training", {})
    assert p.models == ["rgcn", "rgat", "han"]


@pytest.mark.parametrize("values,message", [
    ({"batch_size": -3}, "batch_size must be > 0 (got -3)"),
    ({"models": ["gcn"]}, "models.0 must be one of"),
    ({"frameworks": ["jax"]}, "frameworks.0 must be one of"),
    ({"datasets": ["nope"]}, "datasets: dataset 'nope': unknown name; use a built-in name (acm, dblp, imdb"),
    ({"bogus": 1}, "unknown parameter 'bogus'"),
    ({"fanouts": [10, 0]}, "fanouts.1 must be > 0 (got 0)"),
    ({"hidden_dim": "wide"}, "hidden_dim"),
])
def test_bad_values_are_rejected_with_a_readable_message(values, message):
    with pytest.raises(ValueError) as err:
        params.validate("01-hgnn-training", values)
    assert message in str(err.value)
    assert str(err.value).startswith("01-hgnn-training: ")


def test_unknown_notebook():
    with pytest.raises(ValueError, match="unknown notebook"):
        params.validate("99-nothing", {})


@pytest.mark.parametrize("profile", params.PROFILES)
def test_every_profile_yaml_validates(profile):
    for nb in params.NOTEBOOK_PARAMS:
        values = params.load_profile(nb, profile)
        assert values["run_id"] is None


def test_from_namespace_takes_declared_names_only():
    p = params.from_namespace("01-hgnn-training", {"batch_size": 8, "unrelated": object()})
    assert p.batch_size == 8


def test_overrides_are_validated(tmp_path):
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        params.load_profile("01-hgnn-training", "smoke", {"batch_size": -3})
    with pytest.raises(ValueError, match="unknown profile"):
        params.profile_path("01-hgnn-training", "huge")
    assert yaml.safe_load(params.profile_path("01-hgnn-training", "small").read_text())
