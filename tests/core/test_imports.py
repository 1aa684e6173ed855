"""The package's import structure: no import circle between studylib's modules, no study package
importing another, and studylib importable without DGL (a heavy optional dependency kept lazy).

The imports are read from the source with ``ast`` (module level and inside functions alike), so a
circle hidden in a function-level import counts too."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "studylib"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, known: set[str]) -> str | None:
    """The studylib module that importing ``name`` loads (the longest known prefix)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """studylib module -> the studylib modules it imports (anywhere in the file)."""
    mods = _modules()
    known = set(mods)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t == "studylib" or t.startswith("studylib."):
                    r = _resolve(t, known)
                    if r and r != name and r != "studylib":
                        deps.add(r)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _study(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["studylib", "studies"] else None


def test_find_cycle_finds_a_circle_and_none_where_there_is_none():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


#: Import edges known to close a circle, to be removed: the ogb download of the dataset registry
#: opens the dataset through the HGNN loaders' guard against ogb's prompts (move that guard and
#: ``DatasetUnavailableError`` into modules of their own to remove it).
KNOWN_CIRCLE_EDGES: set[tuple[str, str]] = set()


def test_no_import_circle():
    graph = import_graph()
    for a, b in KNOWN_CIRCLE_EDGES:
        assert b in graph[a], f"{a} no longer imports {b}: drop the pair from KNOWN_CIRCLE_EDGES"
        graph[a] = graph[a] - {b}
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_study_package_imports_another():
    bad = [(m, d) for m, deps in import_graph().items() for d in deps
           if _study(m) and _study(d) and _study(m) != _study(d)]
    assert bad == [], bad


def test_the_core_imports_no_study_package():
    """The core finds a study's parameter model through a registry (importlib), never by import."""
    bad = [(m, d) for m, deps in import_graph().items() for d in deps if not _study(m) and _study(d)]
    assert bad == [], bad


def test_every_study_package_has_the_standard_modules():
    for pkg in sorted(p for p in (PACKAGE / "studies").iterdir() if (p / "__init__.py").is_file()):
        have = {f.stem for f in pkg.glob("*.py")}
        assert {"__init__", "params", "measure", "figures"} <= have, (pkg.name, have)
        assert ast.get_docstring(ast.parse((pkg / "__init__.py").read_text())), pkg.name


def test_studylib_imports_without_dgl():
    """Every module of studylib imports in a process where ``import dgl`` fails."""
    code = ("import sys, importlib, pkgutil\n"
            "sys.modules['dgl'] = None\n"  # makes `import dgl` raise ImportError
            "import studylib\n"
            "names = [m.name for m in pkgutil.walk_packages(studylib.__path__, 'studylib.') "
            "if not m.name.endswith('__main__')]\n"
            "for n in names:\n"
            "    importlib.import_module(n)\n"
            "print(len(names))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert int(res.stdout.split()[-1]) > 20
