"""A parameter's default is written once, in its study's parameter model: each notebook's parameters
cell repeats the literals papermill needs, and they must equal the model's defaults; each profile's
YAML holds overrides only, with known names and valid types."""

import ast
import json

import pytest
import yaml
from conftest import PROJECT_ROOT

from studylib import params

NOTEBOOKS = sorted(params.NOTEBOOK_PARAMS)


def parameters_cell_literals(notebook: str) -> dict:
    """name -> value of every ``name = <literal>`` line of the notebook's parameters cell."""
    cells = json.loads((PROJECT_ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    out = {}
    for node in ast.parse("".join(cell["source"])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def differences(literals: dict, model) -> dict:
    """name -> (cell literal, model default) where they differ."""
    defaults = model().model_dump()
    return {k: (v, defaults[k]) for k, v in literals.items() if v != defaults[k]}


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_parameters_cell_equals_the_model_defaults(notebook):
    model = params.model_for(notebook)
    literals = parameters_cell_literals(notebook)
    assert set(literals) == set(model.model_fields), set(literals) ^ set(model.model_fields)
    assert differences(literals, model) == {}, f"{notebook}: parameters cell vs model default"


def test_a_drifted_default_is_caught():
    """The comparison can fail: a literal that differs from the model's default is reported."""
    literals = parameters_cell_literals("03-op-microbenchmarks")
    literals["sizes"] = [2**16, 2**19, 2**22]
    assert differences(literals, params.model_for("03-op-microbenchmarks")) == {
        "sizes": ([2**16, 2**19, 2**22], [16384, 131072, 1048576])}


@pytest.mark.parametrize("profile", params.PROFILES)
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_profile_yaml_names_known_parameters_with_valid_types(notebook, profile):
    path = params.profile_path(notebook, profile)
    if not path.is_file():
        pytest.skip(f"{path} absent")
    values = yaml.safe_load(path.read_text()) or {}
    assert isinstance(values, dict), path
    unknown = set(values) - set(params.model_for(notebook).model_fields)
    assert unknown == set(), f"{path}: unknown parameters {sorted(unknown)}"
    params.validate(notebook, values)  # raises ValueError naming the parameter on a bad type or value


def test_cross_parameter_constraints_are_checked_before_work_starts():
    with pytest.raises(ValueError, match="num_heads .3. must divide hidden_dim .64."):
        params.validate("01-hgnn-training", {"models": ["rgat"], "num_heads": 3})
    params.validate("01-hgnn-training", {"models": ["rgcn"], "num_heads": 3})  # RGCN has no heads
    with pytest.raises(ValueError, match="accuracy_datasets must be among datasets"):
        params.validate("01-hgnn-training", {"datasets": ["acm"], "accuracy_datasets": ["not-a-graph"]})
    with pytest.warns(UserWarning, match="accuracy_datasets.*not in datasets"):  # an overridden datasets: fall back
        assert params.validate("01-hgnn-training", {"datasets": ["acm"], "accuracy_datasets": ["imdb"]}
                               ).accuracy_datasets is None
    with pytest.raises(ValueError, match="gat_heads .3. must divide feature_dim .32."):
        params.validate("03-op-microbenchmarks", {"gat_heads": 3})
    with pytest.raises(ValueError, match="num_heads .3. must divide"):
        params.validate("05-parallelism-analysis", {"num_heads": 3})
    with pytest.raises(ValueError, match="num_heads .3. must divide hidden_dim .256."):
        params.validate("02-distributed-caching", {"num_heads": 3})
