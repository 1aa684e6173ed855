"""The result fingerprint covers the code that measured, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studylib import results


def _notebook(path: Path, source: str, outputs: list | None = None) -> None:
    cell = {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": outputs or [],
            "source": source.splitlines(keepends=True)}
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away project: an old-style study module, a study package, core modules, notebooks."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    (tmp_path / "README.md").write_text("# scratch\n")
    lib = tmp_path / "studylib"
    for rel, text in {"__init__.py": "", "timing.py": "T = 1\n", "runner.py": "R = 1\n", "plotting.py": "P = 1\n",
                      "findings.py": "F = 1\n", "data/__init__.py": "D = 1\n", "studies/__init__.py": "",
                      "studies/old_study.py": "A = 1\n", "studies/other.py": "O = 1\n",
                      "studies/new_study/__init__.py": "", "studies/new_study/measure.py": "M = 1\n"}.items():
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text(text)
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "01-old-nb.ipynb", "from studylib.studies import old_study as s\n")
    _notebook(tmp_path / "notebooks" / "02-new-study.ipynb", "from studylib.studies.new_study import measure\n")
    monkeypatch.setenv("STUDYLIB_ROOT", str(tmp_path))
    return tmp_path


def _changes(project: Path, notebook: str, rel: str, text: str) -> bool:
    before = results.code_version(notebook)
    (project / rel).write_text(text)
    return results.code_version(notebook) != before


def test_the_code_files_are_resolved_by_rule(project: Path) -> None:
    rel = lambda nb: {p.relative_to(project).as_posix() for p in results.code_files(nb)}  # noqa: E731
    old = rel("01-old-nb")
    assert {"studylib/studies/old_study.py", "studylib/timing.py", "studylib/data/__init__.py",
            "notebooks/01-old-nb.ipynb"} <= old
    assert not {"studylib/runner.py", "studylib/plotting.py", "studylib/findings.py", "README.md",
                "studylib/studies/other.py", "studylib/studies/new_study/measure.py"} & old
    assert "studylib/studies/new_study/measure.py" in rel("02-new-study")
    assert results.study_slug("05-parallelism-analysis") == "parallelism_analysis"


def test_a_change_to_the_study_code_changes_the_fingerprint(project: Path) -> None:
    assert _changes(project, "01-old-nb", "studylib/studies/old_study.py", "A = 2\n")
    assert _changes(project, "02-new-study", "studylib/studies/new_study/measure.py", "M = 2\n")
    assert _changes(project, "01-old-nb", "studylib/timing.py", "T = 2\n")
    assert _changes(project, "01-old-nb", "studylib/data/__init__.py", "D = 2\n")
    before = results.fingerprint({"x": 1}, {}, results.code_version("01-old-nb"))
    _notebook(project / "notebooks" / "01-old-nb.ipynb", "from studylib.studies import old_study as s\nX = 1\n")
    assert results.fingerprint({"x": 1}, {}, results.code_version("01-old-nb")) != before


def test_a_readme_or_report_change_does_not(project: Path) -> None:
    for rel in ("README.md", "studylib/runner.py", "studylib/plotting.py", "studylib/findings.py",
                "studylib/studies/other.py"):
        assert not _changes(project, "01-old-nb", rel, "changed = True\n"), rel
    # running a notebook (outputs, execution counts) is no change of its code
    before = results.code_version("01-old-nb")
    _notebook(project / "notebooks" / "01-old-nb.ipynb", "from studylib.studies import old_study as s\n",
              outputs=[{"output_type": "stream", "name": "stdout", "text": "hello"}])
    assert results.code_version("01-old-nb") == before


def test_result_tables_measured_by_other_code_are_not_resumed(project: Path, monkeypatch) -> None:
    for name in ("RESULTS", "FIGURES", "REPORTS"):
        monkeypatch.setenv(f"STUDYLIB_{name}_DIR", str(project / name.lower()))
    t = results.ResultTable("01-old-nb", "t", ["k"], {"x": 1})
    t.add([{"k": 1, "v": 1.0}])
    assert results.ResultTable("01-old-nb", "t", ["k"], {"x": 1}).has({"k": 1})
    (project / "studylib" / "studies" / "old_study.py").write_text("A = 3\n")
    assert not results.ResultTable("01-old-nb", "t", ["k"], {"x": 1}).has({"k": 1})
