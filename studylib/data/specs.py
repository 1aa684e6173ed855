"""Dataset specs: a short text that names any graph a study can run on, the user's own included.

A study's ``datasets`` parameter holds specs. Each spec says where the graph comes from and which
*kind* of graph it yields, so that a study refuses a graph it cannot use before any work:

==============================  ================  ==========================================================
spec                            kind              read by
==============================  ================  ==========================================================
``heco:<folder>``               heterogeneous     :func:`studylib.data.load_heco` (any HeCo-format folder)
``ogb:<name>``                  hetero. / homog.  ogb's ``NodePropPredDataset`` (``ogbn-mag`` is heterogeneous)
``planetoid:<Cora|CiteSeer|PubMed>[,<root>]``  homogeneous   PyG's Planetoid reader, on the cache or ``<root>``
``pyg:<Class>[/<name>][,<root>]``  as the data is  ``torch_geometric.datasets.<Class>`` (``Data`` or ``HeteroData``)
``ratings:<file>[,<test file>]``  bipartite        :func:`studylib.data.recsys.load_ratings`
``lightgcn:<folder>``           bipartite         :func:`studylib.data.recsys.load_lightgcn` (train.txt, test.txt)
``acm``, ``imdb``, ``dblp``, ``ogbn-mag``, ``synthetic``  heterogeneous  built-in names (registry, mirror, checksums)
``cora``, ``ogbn-products``, ``ogbn-papers100M``        homogeneous    built-in names
``movielens-100k``, ``gowalla``, ``amazon-book``, ``movielens-10m``, ``synthetic-<preset>``  bipartite
==============================  ================  ==========================================================

Relative paths resolve against the working directory of the command that was run: the runner puts
it in ``$STUDYLIB_CALLER_CWD`` for the notebook kernels (papermill starts them in ``notebooks/``).
User graphs are read in place, never copied or modified (PyG's processed files of a user's root go to
the cache). Only :func:`download` (``python -m studylib data <spec>``) touches the network; no
loader prompts.

Public API::

    parse(text, kind=None, *, base=None) -> DataSpec     # syntax, kind, absolute paths (no I/O)
    dataset_key(text) -> str                             # a file-name- and DistDGL-safe key, never shared
    check(spec_or_text, kind=None) -> DataSpec           # + paths exist and hold the right format
    check_all(texts, kind, what="datasets") -> list      # a study's parameter: each checked, none twice
    estimate(spec, **kw) -> memory.Estimate | None       # bytes of the loaded graph, from file sizes
    load(spec_or_text, kind=None, ...) -> HeteroGraph | HomogeneousGraph | BipartiteGraph
    download(spec_or_text) -> Path                       # the explicit download step
    statistics(graph, dataset=None) -> list[dict]        # the rows of one graph's statistics table
    statistics_table(graphs) -> pandas.DataFrame         # every notebook's opening table

Errors: :class:`DataSpecError` (a ``ValueError``) naming the spec and what is wrong; a graph too
large for the memory available raises :class:`studylib.memory.Refused` naming the spec.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from studylib import memory, paths

__all__ = [
    "BIPARTITE",
    "CWD_VARIABLE",
    "HETEROGENEOUS",
    "HOMOGENEOUS",
    "KINDS",
    "DataSpec",
    "DataSpecError",
    "caller_cwd",
    "check",
    "check_all",
    "check_metapaths",
    "dataset_key",
    "download",
    "estimate",
    "graph_kind",
    "infer_metapaths",
    "load",
    "parse",
    "require_labels",
    "statistics",
    "statistics_table",
]

#: Graph kinds. Heterogeneous node classification (several node and edge types, labels on one).
HETEROGENEOUS = "heterogeneous"
#: Homogeneous node classification (one node type, one edge type, labels on every node).
HOMOGENEOUS = "homogeneous"
#: Bipartite user-item interactions (ratings) for recommendation.
BIPARTITE = "bipartite"
KINDS = (HETEROGENEOUS, HOMOGENEOUS, BIPARTITE)

#: The environment variable that carries the caller's working directory into notebook kernels.
CWD_VARIABLE = "STUDYLIB_CALLER_CWD"

#: Built-in names per kind (the registered datasets; ``synthetic`` is each study's generator).
BUILTIN = {
    HETEROGENEOUS: ("acm", "imdb", "dblp", "ogbn-mag", "synthetic"),
    HOMOGENEOUS: ("cora", "dblp", "ogbn-products", "ogbn-papers100M", "synthetic"),
    BIPARTITE: ("movielens-100k", "gowalla", "amazon-book", "movielens-10m"),
}
SCHEMES = ("heco", "ogb", "planetoid", "pyg", "ratings", "lightgcn")
_SCHEME_KIND = {"heco": HETEROGENEOUS, "planetoid": HOMOGENEOUS, "ratings": BIPARTITE, "lightgcn": BIPARTITE}
PLANETOID_NAMES = ("Cora", "CiteSeer", "PubMed")
#: Published size of each Planetoid set: (nodes, undirected links, feature width) (Yang, Cohen and
#: Salakhutdinov, ICML 2016, Table 1; PyG's ``Planetoid`` documentation lists the same counts).
PLANETOID_SIZES = {"Cora": (2708, 5429, 1433), "CiteSeer": (3327, 4732, 3703), "PubMed": (19717, 44338, 500)}
_PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_HECO_RELATION = re.compile(r"^[a-z][a-z]\.txt$")
_OGB_HETERO = ("ogbn-mag",)
#: Options a heterogeneous spec may be given (a study's ``dataset_options`` parameter).
HECO_OPTIONS = ("target", "split", "metapaths", "type_names")


class DataSpecError(ValueError):
    """A dataset spec that cannot be used: the message names the spec and what is wrong (shown
    in a notebook as that one line, without a traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class DataSpec:
    """A parsed dataset spec.

    Attributes:
        text: the spec as given (the name a study's tables use for the graph).
        scheme: ``"heco"``, ``"ogb"``, ``"planetoid"``, ``"pyg"``, ``"ratings"``, ``"lightgcn"``,
            ``"builtin"`` or ``"synthetic"``.
        kind: :data:`HETEROGENEOUS`, :data:`HOMOGENEOUS` or :data:`BIPARTITE`.
        arg: the dataset name (built-in name, ogb name, Planetoid name, PyG class[/name]).
        paths: the user's files or folders, absolute (empty for registered datasets).
        root: a PyG/Planetoid root given by the user (absolute), else ``None`` (the cache).
    """

    text: str
    scheme: str
    kind: str
    arg: str = ""
    paths: tuple[Path, ...] = ()
    root: Path | None = None

    @property
    def user_data(self) -> bool:
        """Whether the graph is the user's own files, read in place (no registry, no mirror)."""
        return bool(self.paths) or self.root is not None

    @property
    def name(self) -> str:
        """A short name: the folder or file name for user data, else the dataset name."""
        if self.paths:
            return self.paths[0].name if self.scheme != "ratings" else self.paths[0].stem
        return self.arg

    def __str__(self) -> str:
        return self.text


def caller_cwd() -> Path:
    """The folder relative paths of specs resolve against: ``$STUDYLIB_CALLER_CWD`` (set by the
    runner for notebook kernels), else the current working directory."""
    value = os.environ.get(CWD_VARIABLE)
    return Path(value) if value else Path.cwd()


def _err(text: str, what: str) -> DataSpecError:
    return DataSpecError(f"dataset {text!r}: {what}")


def _abs(text: str, part: str, base: Path | None) -> Path:
    if not part:
        raise _err(text, "the path is empty")
    p = Path(part).expanduser()
    return p if p.is_absolute() else (base or caller_cwd()) / p


def _kind_fits(text: str, got: str, kind: str | None) -> None:
    if kind is not None and got != kind:
        raise _err(text, f"yields a {got} graph, but this study needs a {kind} graph")


def parse(text: str, kind: str | None = None, *, base: Path | str | None = None) -> DataSpec:
    """Parse a spec (see the module table) without touching files.

    Args:
        text: the spec, e.g. ``"heco:data/my_graph"``, ``"ratings:train.csv,test.csv"``, ``"acm"``.
        kind: the kind the study needs (one of :data:`KINDS`), or ``None`` (any; an ambiguous
            built-in name such as ``dblp`` then resolves to the first kind listing it).
        base: folder relative paths resolve against (default :func:`caller_cwd`).

    Returns a :class:`DataSpec` with absolute paths. Raises :class:`DataSpecError` for an unknown
    scheme or name, a malformed spec, or a kind that does not fit.
    """
    if not isinstance(text, str) or not text.strip():
        raise DataSpecError(f"dataset {text!r}: a spec must be a non-empty string")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown graph kind {kind!r}; use one of {KINDS}")
    text = text.strip()
    base = Path(base) if base is not None else None
    scheme, sep, rest = text.partition(":")
    if not sep:  # a built-in name
        if text.startswith("synthetic-") and text != "synthetic":
            kinds = [BIPARTITE] if _recsys_preset(text) else [HOMOGENEOUS]
            _kind_fits(text, kinds[0], kind)
            return DataSpec(text, "synthetic", kinds[0], text)
        kinds = [k for k in KINDS if text in BUILTIN[k]]
        if not kinds:
            known = sorted(set(BUILTIN[kind]) if kind else {n for names in BUILTIN.values() for n in names})
            raise _err(text, f"unknown name; use a built-in name ({', '.join(known)}) or a spec "
                             f"<scheme>:<what> with scheme one of {', '.join(SCHEMES)}")
        if kind is not None and kind not in kinds:
            _kind_fits(text, kinds[0], kind)
        got = kind or kinds[0]
        return DataSpec(text, "synthetic" if text == "synthetic" else "builtin", got, text)
    if scheme not in SCHEMES:
        raise _err(text, f"unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    if not rest:
        raise _err(text, f"nothing after '{scheme}:'")
    if scheme == "heco":
        spec = DataSpec(text, scheme, HETEROGENEOUS, paths=(_abs(text, rest, base),))
    elif scheme == "lightgcn":
        spec = DataSpec(text, scheme, BIPARTITE, paths=(_abs(text, rest, base),))
    elif scheme == "ratings":
        parts = rest.split(",")
        if len(parts) > 2:
            raise _err(text, "use ratings:<file> or ratings:<train file>,<test file>")
        spec = DataSpec(text, scheme, BIPARTITE, paths=tuple(_abs(text, p, base) for p in parts))
    elif scheme == "ogb":
        if not re.fullmatch(r"ogbn-[A-Za-z0-9]+", rest):
            raise _err(text, "use ogb:<node property dataset>, e.g. ogb:ogbn-arxiv")
        spec = DataSpec(text, scheme, HETEROGENEOUS if rest in _OGB_HETERO else HOMOGENEOUS, rest)
    else:  # planetoid, pyg
        name, _, root = rest.partition(",")
        if scheme == "planetoid":
            match = [n for n in PLANETOID_NAMES if n.lower() == name.lower()]
            if not match:
                raise _err(text, f"Planetoid has {', '.join(PLANETOID_NAMES)} (got {name!r})")
            name = match[0]
        elif not re.fullmatch(r"[A-Z][A-Za-z0-9_]*(/[A-Za-z0-9_.-]+)?", name):
            raise _err(text, "use pyg:<class of torch_geometric.datasets>[/<name>][,<root>]")
        got = _SCHEME_KIND.get(scheme, kind or HOMOGENEOUS)  # a PyG class's kind is checked when loaded
        spec = DataSpec(text, scheme, got, name, root=_abs(text, root, base) if root else None)
    _kind_fits(text, spec.kind, kind)
    return spec


#: Characters of the readable part of :func:`dataset_key`, and of its hash part (hex digits).
KEY_NAME_CHARS, KEY_HASH_CHARS = 24, 12
_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def dataset_key(text: str) -> str:
    """A key for the graph of a spec text that is safe as a file or folder name and as DistDGL's
    ``graph_name`` (letters, digits, ``-`` and ``_``, at most 37 characters), for partition caches,
    worker files and log folders.

    A built-in name or ``synthetic-<preset>`` is its own key (``cora``, ``movielens-100k``). Any
    other text gets a readable part -- the spec's short name (:attr:`DataSpec.name`: the file or
    folder name of a user graph, the dataset name otherwise; the text itself if it does not
    parse) with every other character replaced by ``_``, cut to :data:`KEY_NAME_CHARS` -- then
    ``-`` and the first :data:`KEY_HASH_CHARS` hex digits of the SHA-256 of the whole text. So
    two texts share a key only if their 48-bit hash prefixes collide (``ratings:a/x.csv`` and
    ``ratings:b/x.csv`` differ), and no hashed key equals a built-in name (none ends in ``-``
    and 12 hex digits). Raises ``ValueError`` for an empty text."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a dataset spec must be a non-empty string (got {text!r})")
    try:
        spec = parse(text)
    except DataSpecError:
        spec = None
    if spec is not None and spec.scheme in ("builtin", "synthetic") and _SAFE.fullmatch(text):
        return text
    short = (spec.name if spec is not None else "") or text
    name = re.sub(r"[^A-Za-z0-9_-]", "_", short)[:KEY_NAME_CHARS].strip("_-") or "graph"
    return f"{name}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:KEY_HASH_CHARS]}"


def _recsys_preset(text: str) -> bool:
    from studylib.data.recsys import SYNTHETIC_PRESETS

    return text[len("synthetic-"):] in SYNTHETIC_PRESETS


def _as_spec(spec: DataSpec | str, kind: str | None) -> DataSpec:
    if isinstance(spec, DataSpec):
        _kind_fits(spec.text, spec.kind, kind)
        return spec
    return parse(spec, kind)


# ------------------------------------------------------------------------------------------------
# Checks before loading
# ------------------------------------------------------------------------------------------------

def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())[:8]
    return ", ".join(names) + (" ..." if len(names) == 8 else "") if names else "nothing"


def _heco_folder(spec: DataSpec) -> Path:
    folder = spec.paths[0]
    if not folder.exists():
        raise _err(spec.text, f"{folder} does not exist")
    if not folder.is_dir():
        raise _err(spec.text, f"{folder} is a file; heco: takes a folder")
    inner = folder / "raw" if (folder / "raw").is_dir() else folder
    files = [p.name for p in inner.iterdir() if p.is_file()]
    if not any(_HECO_RELATION.match(f) for f in files):
        hint = ""
        if {"train.txt", "test.txt"} <= set(files):
            hint = " (it looks like a LightGCN folder: use lightgcn:)"
        elif any(f.startswith("ind.") for f in files):
            hint = " (it looks like a Planetoid raw folder: use planetoid:<name>,<root>)"
        raise _err(spec.text, f"{inner} is not in the HeCo format: no relation files '<x><y>.txt' "
                              f"(found {_listing(inner)}){hint}")
    if "labels.npy" not in files:
        raise _err(spec.text, f"{inner} has no labels.npy: node classification needs the target type's labels")
    return inner


def _planetoid_raw(spec: DataSpec) -> Path | None:
    """The folder holding ``ind.<name>.*`` of a user root (the root, its ``raw/`` or ``<Name>/raw``)."""
    if spec.root is None:
        return None
    if not spec.root.is_dir():
        raise _err(spec.text, f"{spec.root} does not exist or is not a folder")
    prefix = spec.arg.lower()
    for cand in (spec.root, spec.root / "raw", spec.root / spec.arg / "raw"):
        if cand.is_dir() and all((cand / f"ind.{prefix}.{n}").is_file() for n in _PLANETOID_FILES):
            return cand
    raise _err(spec.text, f"{spec.root} holds no Planetoid raw files ind.{prefix}.{{{','.join(_PLANETOID_FILES)}}} "
                          f"(looked in it, raw/ and {spec.arg}/raw/; found {_listing(spec.root)})")


def check(spec: DataSpec | str, kind: str | None = None) -> DataSpec:
    """:func:`parse` plus the checks that need no loading: user paths exist and hold the format
    the scheme reads (a HeCo folder its relation files and ``labels.npy``; a LightGCN folder
    ``train.txt`` and ``test.txt``; rating files are files; a Planetoid root its raw files).

    Returns the :class:`DataSpec`. Raises :class:`DataSpecError` naming the spec and the problem.
    """
    spec = _as_spec(spec, kind)
    if spec.scheme == "heco":
        _heco_folder(spec)
    elif spec.scheme == "lightgcn":
        folder = spec.paths[0]
        if not folder.is_dir():
            raise _err(spec.text, f"{folder} does not exist or is not a folder")
        missing = [f for f in ("train.txt", "test.txt") if not (folder / f).is_file()]
        if missing:
            raise _err(spec.text, f"{folder} is not a LightGCN folder: {', '.join(missing)} missing "
                                  f"(found {_listing(folder)})")
    elif spec.scheme == "ratings":
        for p in spec.paths:
            if not p.exists():
                raise _err(spec.text, f"{p} does not exist")
            if not p.is_file():
                raise _err(spec.text, f"{p} is a folder; ratings: takes a file (lightgcn: takes a folder)")
    elif spec.scheme == "planetoid":
        _planetoid_raw(spec)
    elif spec.scheme == "pyg" and spec.root is not None and not spec.root.is_dir():
        raise _err(spec.text, f"{spec.root} does not exist or is not a folder")
    return spec


def check_all(texts: list[str], kind: str, what: str = "datasets", check_one=None) -> list[str]:
    """Check a study's list of specs (its ``datasets`` parameter) before any work: each with
    :func:`check` for ``kind`` (or ``check_one(text)``, a study's stricter check), and no graph
    named twice -- also not under two spellings (``ratings:x.csv`` and ``ratings:./x.csv`` name
    one file). Returns ``texts`` unchanged. Raises :class:`DataSpecError` naming the spec, or
    ``ValueError`` naming ``what`` and both spellings of a repeated graph."""
    seen: dict[tuple, str] = {}
    for text in texts:
        spec = check_one(text) if check_one is not None else check(text, kind)
        same = (spec.scheme, spec.arg, tuple(Path(os.path.normpath(p)) for p in spec.paths),
                Path(os.path.normpath(spec.root)) if spec.root else None)
        if same in seen:
            raise ValueError(f"{what} lists a graph twice: {seen[same]!r} and {text!r}")
        seen[same] = text
    return texts


# ------------------------------------------------------------------------------------------------
# Memory estimate before loading
# ------------------------------------------------------------------------------------------------

def _count_lines(path: Path, chunk: int = 1 << 24) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def _feature_shape(path: Path) -> tuple[int, int]:
    if path.suffix == ".npy":
        return tuple(np.load(path, mmap_mode="r").shape[:2])
    with np.load(path) as z:
        if "shape" in z.files:  # scipy.sparse.save_npz
            return tuple(int(v) for v in z["shape"][:2])
        return tuple(z[z.files[0]].shape[:2])


def estimate(spec: DataSpec | str, *, synthetic_scale: float = 1.0) -> memory.Estimate | None:
    """Bytes the loaded graph will take, from the files' sizes without parsing them, or ``None``
    when nothing can be known before the library reads it (PyG classes, unregistered ogb sets).

    Parts (see :mod:`studylib.memory`): ``structure`` (int64 COO, reverse relations included),
    ``features`` (float32, dense), ``parsing`` (the reader's temporaries: numpy's ``loadtxt``
    array of a relation file and a float64 dense copy of a sparse feature matrix; for rating
    and LightGCN files about 100 bytes of Python objects per interaction line, the readers being
    line-by-line Python). Registered datasets use the registry's published counts, Planetoid sets
    (in the cache or the user's folder) their published sizes (:data:`PLANETOID_SIZES`);
    ``synthetic`` uses :func:`studylib.memory.synthetic_hetero_estimate`. A ``pyg:`` class and an
    unregistered ``ogb:`` set are sized only by their library when it reads them: each study's own
    per-configuration estimate then comes before any measurement.
    """
    spec = _as_spec(spec, None)
    if spec.scheme == "heco":
        folder = _heco_folder(spec)
        rel = [p for p in folder.iterdir() if _HECO_RELATION.match(p.name)]
        lines = {p: _count_lines(p) for p in rel}
        edges = 2 * sum(lines.values())
        shapes = [_feature_shape(p) for p in folder.iterdir() if re.match(r"^[a-z]_feat\.(npz|npy)$", p.name)]
        nodes = sum(r for r, _ in shapes) or 1
        return memory.Estimate({
            "structure": memory.graph_bytes(nodes, edges),
            "features": sum(memory.feature_bytes(r, w) for r, w in shapes),
            "parsing": max([16 * n for n in lines.values()] + [8 * r * w for r, w in shapes] + [0]),
        })
    if spec.scheme in ("ratings", "lightgcn"):
        files = spec.paths if spec.scheme == "ratings" else (spec.paths[0] / "train.txt", spec.paths[0] / "test.txt")
        size = sum(p.stat().st_size for p in files)
        lines = sum(_count_lines(p) for p in files)
        # a LightGCN line holds many interactions: at least two bytes ("1 ") per item id
        inter = lines if spec.scheme == "ratings" else max(lines, size // 2)
        return memory.Estimate({"structure": memory.graph_bytes(0, inter), "parsing": 100 * inter})
    if spec.scheme == "synthetic" and spec.kind == HETEROGENEOUS:
        return memory.synthetic_hetero_estimate("acm", synthetic_scale)
    if spec.scheme == "planetoid":  # a fixed set: its published size (the reader densifies the features)
        n, links, width = PLANETOID_SIZES[spec.arg]
        return memory.Estimate({"structure": memory.graph_bytes(n, 2 * links),
                                "features": memory.feature_bytes(n, width), "parsing": 8 * n * width})
    from studylib.data.registry import REGISTRY

    name = spec.arg if spec.scheme in ("builtin", "ogb") else ""
    reg = REGISTRY.get(name)
    if reg is None or reg.statistics is None:
        return None
    st = reg.statistics
    nodes, edges = sum(st.num_nodes.values()), 2 * sum(st.num_edges.values())
    feats = sum(memory.feature_bytes(st.num_nodes[t], w) for t, w in (st.feature_dims or {}).items() if w)
    return memory.Estimate({"structure": memory.graph_bytes(nodes, edges), "features": feats})


def require_memory(spec: DataSpec | str, *, synthetic_scale: float = 1.0, device="cpu",
                   available: int | None = None) -> memory.Decision | None:
    """Refuse a graph too large for the memory available before it is read: :func:`estimate`
    held against :func:`studylib.memory.require`. Returns the decision (``None`` without an
    estimate). Raises :class:`studylib.memory.Refused` whose message names the spec."""
    spec = _as_spec(spec, None)
    est = estimate(spec, synthetic_scale=synthetic_scale)
    if est is None:
        return None
    return memory.require(est, what=f"dataset {spec.text!r} (loaded)", device=device, available=available)


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------

def graph_kind(graph) -> str:
    """The kind of a loaded graph object (``HeteroGraph``, ``HomogeneousGraph``, ``BipartiteGraph``)."""
    from studylib.data.hetero import HeteroGraph
    from studylib.data.homogeneous import HomogeneousGraph
    from studylib.data.recsys import BipartiteGraph

    for cls, kind in ((HeteroGraph, HETEROGENEOUS), (HomogeneousGraph, HOMOGENEOUS), (BipartiteGraph, BIPARTITE)):
        if isinstance(graph, cls):
            return kind
    raise TypeError(f"not a studylib graph: {type(graph).__name__}")


def require_labels(graph, spec: DataSpec | str, need_split: bool = True) -> None:
    """Raise :class:`DataSpecError` naming ``spec`` when a node-classification graph has no labels
    (an empty label tensor or fewer than two classes) or, with ``need_split``, no training nodes."""
    text = str(spec)
    labels = getattr(graph, "labels", None)
    if labels is None or labels.numel() == 0 or int(getattr(graph, "num_classes", 0)) < 1:
        raise _err(text, "the graph has no labels; node classification needs class labels on its target nodes")
    if int(graph.num_classes) < 2:
        raise _err(text, f"the labels hold {int(graph.num_classes)} class; node classification needs at least 2")
    if need_split and graph.train_idx.numel() == 0:
        raise _err(text, "the graph has no training nodes (empty train split); give one (HeCo: train_<k>.npy)")


def _relation_lookup(graph, text: str, name) -> tuple:
    if isinstance(name, (list, tuple)) and len(name) == 3:
        et = tuple(name)
        if et in graph.edges:
            return et
    else:
        hits = [et for et in graph.edges if et[1] == name or f"{et[0]}-{et[2]}" == name]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise _err(text, f"relation {name!r} is ambiguous ({hits}); give it as [src, relation, dst]")
    known = sorted({et[1] for et in graph.edges})
    raise _err(text, f"metapath through relation {name!r}, which the graph does not have; its relations: "
                     f"{', '.join(known)}")


def infer_metapaths(graph) -> dict[str, list]:
    """Metapaths of length two through every node type next to the target: ``T-O-T`` for each
    relation ``(T, r, O)`` with a relation back ``(O, r', T)`` (the first such pair), named
    ``"<T>_<O>_<T>"``, as HAN's authors chose them for ACM, IMDB and DBLP (Wang et al., WWW 2019,
    Table 2). Used for graphs whose source names none (PyG ``HeteroData``)."""
    t, out = graph.target, {}
    for a in sorted(graph.edges):
        if a[0] != t or a[2] == t or f"{t}_{a[2]}_{t}" in out:
            continue
        back = [b for b in sorted(graph.edges) if b[0] == a[2] and b[2] == t]
        if back:
            out[f"{t}_{a[2]}_{t}"] = [a, back[0]]
    return out


def check_metapaths(graph, metapaths: Mapping[str, list], spec: DataSpec | str) -> dict[str, list]:
    """Metapaths given by name -> relations (each a relation name such as ``"paper_author"``,
    ``"<src>-<dst>"``, or a ``[src, relation, dst]`` triple) as canonical edge types of ``graph``.

    Raises :class:`DataSpecError` naming the spec when a relation does not exist, the relations
    do not chain (each ends where the next starts), or the path does not start and end at the
    target type (HAN's metapaths connect target nodes; Wang et al., "Heterogeneous Graph Attention
    Network", WWW 2019, sec. 3.1)."""
    text, out = str(spec), {}
    for mp, rels in metapaths.items():
        if not rels:
            raise _err(text, f"metapath {mp!r} is empty")
        path = [_relation_lookup(graph, text, r) for r in rels]
        for a, b in zip(path, path[1:]):
            if a[2] != b[0]:
                raise _err(text, f"metapath {mp!r}: {a} ends at {a[2]!r} but {b} starts at {b[0]!r}")
        if path[0][0] != graph.target or path[-1][2] != graph.target:
            raise _err(text, f"metapath {mp!r} must start and end at the target type {graph.target!r} "
                             f"(goes {path[0][0]!r} -> {path[-1][2]!r})")
        out[mp] = path
    return out


def _heco_options(spec: DataSpec, options: Mapping | None) -> dict:
    options = dict(options or {})
    bad = [k for k in options if k not in HECO_OPTIONS]
    if bad:
        raise _err(spec.text, f"unknown option(s) {bad}; a heterogeneous graph takes {', '.join(HECO_OPTIONS)}")
    return options


def _load_heco(spec: DataSpec, options: Mapping | None):
    from studylib.data.hgnn_datasets import load_heco

    opts = _heco_options(spec, options)
    type_names = opts.get("type_names")
    target = opts.get("target")
    if target is not None and type_names:  # a target may be given by its full type name
        target = {v: k for k, v in type_names.items()}.get(target, target)
    folder = _heco_folder(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty split is refused below, with the spec named
            g = load_heco(folder, spec.name, type_names=type_names, target=target, split=opts.get("split"))
    except (ValueError, FileNotFoundError) as exc:
        raise _err(spec.text, str(exc)) from None
    g.info["spec"] = spec.text
    return g


def _ogb_node_dataset(spec: DataSpec, download_ok: bool = False):
    from studylib.data.hgnn_datasets import open_ogb_node_dataset
    from studylib.data.registry import REGISTRY, locally_processed, resolve

    if spec.arg in REGISTRY:  # registered: cache, mirror, checksums
        folder = resolve(spec.arg, download=download_ok)
        with locally_processed(folder):
            return open_ogb_node_dataset(spec.arg, root=folder.parent, download=False)
    return open_ogb_node_dataset(spec.arg, root=paths.data_dir(), download=download_ok)


def _load_ogb(spec: DataSpec):
    if spec.arg == "ogbn-mag":
        from studylib.data.hgnn_datasets import load_ogbn_mag

        return load_ogbn_mag()
    ds = _ogb_node_dataset(spec)
    graph, labels = ds[0]
    if isinstance(graph.get("edge_index_dict"), dict):
        raise _err(spec.text, "ogb returned a heterogeneous graph; only ogbn-mag is read as one")
    return _homogeneous_from_arrays(spec, graph["num_nodes"], graph["edge_index"], graph.get("node_feat"),
                                    labels, ds.get_idx_split(), {"source": f"ogb {spec.arg}"})


def _homogeneous_from_arrays(spec: DataSpec, n, edge_index, x, y, split: dict, info: dict):
    """A :class:`HomogeneousGraph` from ogb/PyG arrays; edges made symmetric and coalesced, nodes
    without a label (NaN) get label 0, stay out of every split and out of ``labelled``."""
    from studylib.data.homogeneous import HomogeneousGraph

    n = int(n)
    ei = torch.as_tensor(np.asarray(edge_index), dtype=torch.int64)
    src, dst = torch.cat([ei[0], ei[1]]), torch.cat([ei[1], ei[0]])
    key = torch.unique(src * n + dst)
    yv = np.asarray(y).reshape(-1) if y is not None else np.zeros(0)
    if yv.size != n:
        raise _err(spec.text, "the graph has no labels on every node; node classification needs them")
    valid = ~np.isnan(yv) if yv.dtype.kind == "f" else np.ones(n, dtype=bool)
    labels = torch.from_numpy(np.where(valid, yv, 0).astype(np.int64))
    feats = (torch.as_tensor(np.asarray(x), dtype=torch.float32) if x is not None
             else torch.zeros((n, 0), dtype=torch.float32))
    idx = {k: torch.as_tensor(np.asarray(split.get(k, [])), dtype=torch.int64).view(-1)
           for k in ("train", "valid", "test")}
    labelled = None if valid.all() else torch.from_numpy(np.flatnonzero(valid).astype(np.int64))
    if labelled is not None:
        info = {**info, "labels": f"{labelled.numel()} of {n} nodes labelled"}
    return HomogeneousGraph(name=spec.name, num_nodes=n, src=key // n, dst=key % n, features=feats, labels=labels,
                            num_classes=int(labels.max()) + 1 if n else 0, train_idx=idx["train"],
                            val_idx=idx["valid"], test_idx=idx["test"],
                            info={**info, "spec": spec.text, "edges": "made symmetric, each pair once"},
                            labelled=labelled)


def _from_pyg_data(spec: DataSpec, data, options: Mapping | None):
    from torch_geometric.data import HeteroData

    from studylib.data.hgnn_datasets import hetero_from_pyg

    if isinstance(data, HeteroData):
        opts = _heco_options(spec, options)
        labelled = [t for t in data.node_types if getattr(data[t], "y", None) is not None]
        target = opts.get("target") or (labelled[0] if len(labelled) == 1 else None)
        if target is None:
            raise _err(spec.text, f"cannot tell the target node type (labelled types: {labelled}); "
                                  "give dataset option target")
        g = hetero_from_pyg(data, spec.name, target)
        g.metapaths = infer_metapaths(g)
        return g
    mask = {k: (getattr(data, f"{k}_mask", None)) for k in ("train", "val", "test")}
    split = {("valid" if k == "val" else k): (m.nonzero().view(-1).numpy() if m is not None and m.dim() == 1 else [])
             for k, m in mask.items()}
    return _homogeneous_from_arrays(spec, data.num_nodes, data.edge_index.numpy(),
                                    data.x.numpy() if data.x is not None else None,
                                    data.y.numpy() if getattr(data, "y", None) is not None else None, split,
                                    {"source": f"torch_geometric.datasets.{spec.arg}"})


def _pyg_class(spec: DataSpec):
    import torch_geometric.datasets as pyg_datasets

    cls_name, _, name = spec.arg.partition("/")
    cls = getattr(pyg_datasets, cls_name, None)
    if cls is None or not isinstance(cls, type):
        raise _err(spec.text, f"torch_geometric.datasets has no dataset class {cls_name!r}")
    return cls, cls_name, name


def _pyg_root(spec: DataSpec) -> Path:
    return spec.root if spec.root is not None else paths.data_dir() / "pyg" / spec.arg.replace("/", "_")


def _open_pyg(spec: DataSpec, download_ok: bool):
    """The PyG dataset of ``spec``. Without ``download_ok`` its ``download`` raises naming the
    download step; on a user root, processed files go to the cache (the root is never written)."""
    from studylib.data.registry import DatasetUnavailableError

    cls, cls_name, name = _pyg_class(spec)
    root = _pyg_root(spec)
    attrs = {}
    if not download_ok:
        def no_download(self):
            raise DatasetUnavailableError(
                f"dataset {spec.text!r}: PyG's {cls_name} lacks raw files under {self.raw_dir} and downloading is "
                f"off; run `python -m studylib data {spec.text}` first")
        attrs["download"] = no_download
    if spec.root is not None:
        key = hashlib.sha256(str(spec.root).encode()).hexdigest()[:12]
        cache = paths.data_dir() / "pyg-processed" / f"{cls_name}-{key}"
        attrs["processed_dir"] = property(lambda self: str(cache / (name or "") / "processed"))
    sub = type(cls_name, (cls,), attrs) if attrs else cls
    kwargs = {"name": name} if name else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sub(str(root), **kwargs)
    except TypeError as exc:
        raise _err(spec.text, f"torch_geometric.datasets.{cls_name}: {exc}") from None


def _load_planetoid(spec: DataSpec):
    from torch_geometric.io import read_planetoid_data

    from studylib.data.registry import DatasetUnavailableError, resolve

    raw = _planetoid_raw(spec)
    if raw is None:
        if spec.arg == "Cora":  # registered: cache, mirror, checksums
            raw = resolve("cora") / "raw"
        else:
            raw = paths.data_dir() / "planetoid" / spec.arg / "raw"
            if not (raw / f"ind.{spec.arg.lower()}.x").is_file():
                raise DatasetUnavailableError(f"dataset {spec.text!r}: not in the cache {raw}; run "
                                              f"`python -m studylib data {spec.text}` (downloads) or give "
                                              f"planetoid:{spec.arg},<folder with its raw files>")
    data = read_planetoid_data(str(raw), spec.arg.lower())  # reads only; writes nothing
    return _from_pyg_data(spec, data, None)


def load(spec: DataSpec | str, kind: str | None = None, *, options: Mapping | None = None,
         synthetic_scale: float = 1.0, seed: int = 0, device="cpu", available: int | None = None,
         builtin=None):
    """Load the graph of a spec, checked first (:func:`check`, then :func:`require_memory`).

    Args:
        spec: a :class:`DataSpec` or spec text.
        kind: the kind the study needs (``None``: the spec's own).
        options: for heterogeneous graphs, any of :data:`HECO_OPTIONS`: ``target`` (letter or type
            name), ``split`` (``k`` of ``train_<k>.npy``), ``metapaths`` (name -> relations, see
            :func:`check_metapaths`; replace the inferred ones), ``type_names`` (letter -> name).
        synthetic_scale, seed: of the ``synthetic`` heterogeneous graph (ACM's schema).
        device, available: for the memory check (see :func:`studylib.memory.require`).
        builtin: ``name -> graph`` for built-in names the core has no loader for (a study's own
            ``synthetic`` homogeneous generator, 02's DBLP paper graph); ``None`` uses the core's.

    Returns a ``HeteroGraph``, ``HomogeneousGraph`` or ``BipartiteGraph``. Node-classification
    kinds are checked for labels (:func:`require_labels`).

    Raises:
        DataSpecError: bad spec, missing path, wrong format, wrong kind, no labels, a metapath
            through a missing relation.
        studylib.memory.Refused: the estimate exceeds the memory available (before reading).
        studylib.data.DatasetUnavailableError: a registered or library dataset not in the cache
            (the message names ``python -m studylib data``).
    """
    spec = check(spec, kind)
    require_memory(spec, synthetic_scale=synthetic_scale, device=device, available=available)
    if spec.scheme == "heco":
        g = _load_heco(spec, options)
    elif spec.scheme in ("builtin", "synthetic") and builtin is not None:
        g = builtin(spec.arg)
    elif spec.scheme == "synthetic" and spec.kind == HETEROGENEOUS:
        from studylib.data.synthetic import synthetic_hetero

        g = synthetic_hetero("acm", scale=synthetic_scale, seed=seed)
    elif spec.scheme == "synthetic" and spec.kind == BIPARTITE:
        from studylib.data.recsys import synthetic_like

        g = synthetic_like(spec.arg[len("synthetic-"):], scale=synthetic_scale, seed=seed)
    elif spec.scheme == "builtin" and spec.kind == HETEROGENEOUS:
        from studylib.data.hgnn_datasets import load_hetero

        g = load_hetero(spec.arg)
    elif spec.scheme == "builtin" and spec.kind == BIPARTITE:
        from studylib.data.recsys import load_recsys

        g = load_recsys(spec.arg)
    elif spec.scheme == "builtin" and spec.arg == "cora":
        from studylib.data.homogeneous import load_cora

        g = load_cora()
    elif spec.scheme == "builtin" and spec.arg.startswith("ogbn-"):
        g = _load_ogb(parse(f"ogb:{spec.arg}", spec.kind))
    elif spec.scheme in ("builtin", "synthetic"):
        raise _err(spec.text, f"the core has no loader for the built-in {spec.kind} graph {spec.arg!r}; "
                              "the study provides it")
    elif spec.scheme == "ogb":
        g = _load_ogb(spec)
    elif spec.scheme == "planetoid":
        g = _load_planetoid(spec)
    elif spec.scheme == "pyg":
        data = _open_pyg(spec, download_ok=False)[0]
        g = _from_pyg_data(spec, data, options)
    elif spec.scheme == "ratings":
        from studylib.data.recsys import load_ratings

        try:
            g = load_ratings(spec.paths[0], spec.paths[1] if len(spec.paths) > 1 else None, name=spec.name,
                             seed=seed)
        except ValueError as exc:
            raise _err(spec.text, str(exc)) from None
    else:  # lightgcn
        from studylib.data.recsys import load_lightgcn

        try:
            g = load_lightgcn(spec.paths[0], name=spec.name)
        except ValueError as exc:
            raise _err(spec.text, str(exc)) from None
    got = graph_kind(g)
    _kind_fits(spec.text, got, kind)
    if got in (HETEROGENEOUS, HOMOGENEOUS) and spec.scheme != "synthetic":
        # a heterogeneous graph must bring its split (HeCo's train_<k>.npy); homogeneous studies
        # split graphs without one themselves (PyG's Amazon, Coauthor have none)
        require_labels(g, spec, need_split=got == HETEROGENEOUS)
    if got == HETEROGENEOUS:
        given = (options or {}).get("metapaths")
        if given:
            g.metapaths = check_metapaths(g, given, spec)
    return g


def download(spec: DataSpec | str) -> Path:
    """The explicit download step (``python -m studylib data <spec>``): fetch a registered
    dataset (:func:`studylib.data.resolve` with ``download=True``), an ogb dataset into the cache,
    a Planetoid set into ``data/planetoid/<Name>``, or a PyG class into ``data/pyg/<Class>``.
    User files (heco, ratings, lightgcn, given roots) are only checked. Returns the folder."""
    from studylib.data.registry import REGISTRY, resolve

    spec = check(spec)
    if spec.user_data and spec.scheme != "pyg":
        return spec.paths[0] if spec.paths else spec.root
    if spec.scheme == "builtin" or (spec.scheme == "ogb" and spec.arg in REGISTRY):
        return resolve(spec.arg, download=True)
    if spec.scheme == "ogb":
        _ogb_node_dataset(spec, download_ok=True)
        return paths.data_dir() / spec.arg.replace("-", "_")
    if spec.scheme == "planetoid":
        if spec.arg == "Cora":
            return resolve("cora", download=True)
        from torch_geometric.datasets import Planetoid

        Planetoid(str(paths.data_dir() / "planetoid"), spec.arg)
        return paths.data_dir() / "planetoid" / spec.arg
    if spec.scheme == "pyg":
        _open_pyg(spec, download_ok=True)
        return _pyg_root(spec)
    raise _err(spec.text, "nothing to download (a generated graph)")


# ------------------------------------------------------------------------------------------------
# The statistics table
# ------------------------------------------------------------------------------------------------

def _isolated(num: int, *ids: torch.Tensor) -> int:
    if num == 0:
        return 0
    seen = torch.zeros(num, dtype=torch.bool)
    for t in ids:
        if t.numel():
            seen[t.long()] = True
    return int(num - seen.sum())


def statistics(graph, dataset: str | None = None) -> list[dict]:
    """The statistics rows of one graph: one row per node type and one per relation.

    Columns: ``dataset``, ``kind``, ``part`` (``"node type"`` or ``"relation"``), ``name`` (node
    type, or ``src-relation-dst``), ``nodes``, ``edges``, ``feature_width`` (``None`` when
    featureless), ``classes`` (on the labelled node type), ``duplicate_edges`` and ``self_loops``
    (:func:`studylib.data.edges.edge_statistics`; self-loops only where source and destination
    are one type), ``isolated_nodes`` (nodes of the type in no edge of any relation). Bipartite
    graphs: node types ``user`` and ``item``, relations ``train`` and ``test`` interactions, whose
    duplicates were merged when loading (counted in ``info``).
    """
    from studylib.data.edges import edge_statistics

    kind = graph_kind(graph)
    name = dataset or graph.name
    rows = []

    def node_row(t, n, width, classes, isolated):
        rows.append({"dataset": name, "kind": kind, "part": "node type", "name": t, "nodes": int(n), "edges": None,
                     "feature_width": width, "classes": classes, "duplicate_edges": None, "self_loops": None,
                     "isolated_nodes": int(isolated)})

    def rel_row(label, src, dst, size, same_type, duplicates=None):
        st = edge_statistics(src, dst, size)
        rows.append({"dataset": name, "kind": kind, "part": "relation", "name": label, "nodes": None,
                     "edges": st["edges"], "feature_width": None, "classes": None,
                     "duplicate_edges": st["duplicate_edges"] if duplicates is None else duplicates,
                     "self_loops": st["self_loops"] if same_type else None, "isolated_nodes": None})

    if kind == HETEROGENEOUS:
        dims = graph.feature_dims()
        for t in graph.node_types:
            ends = [s for (a, _, b), (s, d) in graph.edges.items() if a == t]
            ends += [d for (a, _, b), (s, d) in graph.edges.items() if b == t]
            node_row(t, graph.num_nodes[t], dims[t], int(graph.num_classes) if t == graph.target else None,
                     _isolated(graph.num_nodes[t], *ends))
        for et in graph.edge_types:
            s, d = graph.edges[et]
            rel_row("-".join(et), s, d, (graph.num_nodes[et[0]], graph.num_nodes[et[2]]), et[0] == et[2])
    elif kind == HOMOGENEOUS:
        node_row("node", graph.n, graph.feature_dim or None, int(graph.num_classes),
                 _isolated(graph.n, graph.src, graph.dst))
        rel_row("edge", graph.src, graph.dst, (graph.n, graph.n), True)
    else:
        node_row("user", graph.num_users, None, None, _isolated(graph.num_users, graph.train_users))
        node_row("item", graph.num_items, None, None, _isolated(graph.num_items, graph.train_items))
        for part in ("train", "test"):
            rel_row(f"user-{part}-item", getattr(graph, f"{part}_users"), getattr(graph, f"{part}_items"),
                    (graph.num_users, graph.num_items), False,
                    duplicates=int(graph.info.get(f"duplicate_{part}_interactions", 0)))
    return rows


def statistics_table(graphs: Mapping[str, object]):
    """Every notebook's opening table: :func:`statistics` of each graph (``name -> graph``, the
    name being the spec), one DataFrame with nullable integer columns."""
    import pandas as pd

    rows = [r for name, g in graphs.items() for r in statistics(g, name)]
    frame = pd.DataFrame(rows, columns=["dataset", "kind", "part", "name", "nodes", "edges", "feature_width",
                                        "classes", "duplicate_edges", "self_loops", "isolated_nodes"])
    for c in ("nodes", "edges", "feature_width", "classes", "duplicate_edges", "self_loops", "isolated_nodes"):
        frame[c] = frame[c].astype("Int64")
    return frame
