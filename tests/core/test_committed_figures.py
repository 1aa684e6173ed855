"""The committed figures and findings files come from a clean tree."""

from __future__ import annotations

import json
import subprocess

from conftest import PROJECT_ROOT


def _committed_sidecars() -> list:
    """``figures/**/*.json`` as git tracks them (every such file on disk outside a checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "figures"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return sorted(PROJECT_ROOT / p for p in out.split("\0") if p.endswith(".json"))
    except (OSError, subprocess.SubprocessError):
        return sorted((PROJECT_ROOT / "figures").rglob("*.json"))


def test_committed_figure_sidecars_come_from_a_clean_tree():
    """Every committed sidecar names the commit that drew it: a SHA without ``-dirty``. A dirty SHA
    means the figure was drawn by code that no commit holds."""
    sidecars = _committed_sidecars()
    assert sidecars, "no committed figure sidecars found under figures/"
    bad = []
    for path in sidecars:
        doc = json.loads(path.read_text())
        for key, sha in (("git_sha", doc.get("git_sha")), ("hardware.git_sha", (doc.get("hardware") or {}).get("git_sha"))):
            if not sha or str(sha).endswith("-dirty"):
                bad.append(f"{path.relative_to(PROJECT_ROOT)}: {key} = {sha!r}")
    assert not bad, (
        f"{len(bad)} committed figure sidecar field(s) were written from an uncommitted tree; regenerate the "
        "figures with `make figures` from a clean checkout and commit them:\n  " + "\n  ".join(bad))


def test_redrawn_figures_do_not_mark_the_tree_dirty(tmp_path, monkeypatch):
    """Drawing the committed figures again changes tracked files under figures/; the SHA of the
    sidecars written after that must stay clean, while a change to the code makes it dirty."""
    from studylib import hardware

    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "figures" / "nb").mkdir(parents=True)
    (tmp_path / "figures" / "nb" / "f.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setenv("STUDYLIB_ROOT", str(tmp_path))
    (tmp_path / "figures" / "nb" / "f.json").write_text('{"redrawn": true}')
    sha = hardware.git_sha()
    assert sha and len(sha) == 40 and not sha.endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert hardware.git_sha().endswith("-dirty")
