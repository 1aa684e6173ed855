"""The project's set-up files agree with each other."""

import re
import tomllib

import yaml
from conftest import PROJECT_ROOT


def _pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_pins_match_pyproject():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    py = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(pip) == py
    assert "python=3.11" in env["dependencies"]


def test_every_dependency_is_pinned():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    unpinned = [d for d in project["dependencies"] if "==" not in d]
    assert unpinned == []


def test_ci_calls_the_readme_test_command():
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make figures" in readme


def test_makefile_has_the_documented_targets():
    mk = (PROJECT_ROOT / "Makefile").read_text()
    for target in ("help", "setup", "data", "figures", "test", "lab", "report", "clean"):
        assert re.search(rf"^{target}:.*## ", mk, re.M), target


def test_notebooks_are_stripped_and_have_one_parameters_cell():
    import json

    for nb in (PROJECT_ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1 and cells[0] is tagged[0], nb.name
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name} has outputs"


def test_papermill_sees_every_declared_parameter():
    """papermill must parse each line of a notebook's parameters cell (it cannot read lines whose
    comment holds quotes or '='), and the cell must declare exactly the notebook's parameters."""
    import papermill

    from studylib import params

    for nb, model in params.NOTEBOOK_PARAMS.items():
        path = PROJECT_ROOT / "notebooks" / f"{nb}.ipynb"
        if not path.is_file():
            continue
        inferred = set(papermill.inspect_notebook(str(path)))
        assert inferred == set(model.model_fields), (nb, inferred ^ set(model.model_fields))
