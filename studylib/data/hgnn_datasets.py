"""Loaders of the real heterogeneous graphs (ACM, IMDB, DBLP, ogbn-mag) into :class:`HeteroGraph`.

* ACM: the HeCo directory format, read by the generic :func:`load_heco`.
* IMDB, DBLP: PyTorch Geometric's own ``IMDB`` / ``DBLP`` datasets over the cached raw files
  (they write ``processed/`` into the cache folder), converted by :func:`hetero_from_pyg`.
* ogbn-mag: ``ogb.nodeproppred.NodePropPredDataset`` (numpy), converted by :func:`hetero_from_ogb`;
  ogb's interactive prompts are turned into :class:`DatasetUnavailableError`.

No loader touches the network unless called with ``download=True`` (see
:func:`studylib.data.resolve`); the processed pickles that PyG and ogb keep in the cache are
loaded only when studylib recorded them as built there (:func:`studylib.data.registry.locally_processed`).

All loaders keep the source's node ids, add the reverse of every relation, and name relations so
that canonical edge types are unique and readable (``("movie", "movie_director", "director")``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from studylib.data.hetero import EdgeType, HeteroGraph
from studylib.data.ogb_loader import open_node_dataset
from studylib.data.registry import (
    REGISTRY,
    get_spec,
    locally_processed,
    relation_name,
    resolve_details,
    reverse_edge_type,
)

__all__ = [
    "ACM_TYPE_NAMES",
    "HETERO_DATASETS",
    "hetero_from_ogb",
    "hetero_from_pyg",
    "load_acm",
    "load_dblp",
    "load_hetero",
    "load_heco",
    "load_imdb",
    "load_ogbn_mag",
    "open_ogb_node_dataset",
]

ACM_TYPE_NAMES = {"p": "paper", "a": "author", "s": "subject"}
HETERO_DATASETS = ("acm", "imdb", "dblp", "ogbn-mag")

_RELATION_FILE = re.compile(r"^([a-z])([a-z])\.txt$")
_SPLIT_FILE = re.compile(r"^train_(\d+)\.npy$")
_FEAT_FILE = re.compile(r"^([a-z])_feat\.(npz|npy)$")


# --------------------------------------------------------------------------------------------
# HeCo directory format
# --------------------------------------------------------------------------------------------
def _read_pairs(path: Path) -> np.ndarray:
    """``[E, 2]`` int64 pairs of a whitespace-separated two-column text file (empty allowed)."""
    arr = np.loadtxt(path, dtype=np.int64, ndmin=2)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.shape[1] != 2:
        raise ValueError(f"{path}: expected two columns (one 'id id' pair a line), got {arr.shape[1]}")
    if (arr < 0).any():
        raise ValueError(f"{path}: negative node id")
    return arr


def _read_features(path: Path) -> torch.Tensor:
    """Dense float32 ``[N, F]`` features from a scipy sparse ``.npz`` (or a numpy ``.npy``/``.npz``)."""
    if path.suffix == ".npy":
        x = np.load(path)
    else:
        import scipy.sparse as sp

        try:
            x = sp.load_npz(path).toarray()
        except (ValueError, KeyError):  # a plain numpy archive rather than a scipy sparse matrix
            with np.load(path) as z:
                x = z[z.files[0]]
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{path}: features must be 2-D, got shape {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x))


def _labels(path: Path) -> np.ndarray:
    y = np.load(path)
    if y.ndim == 2:  # one-hot
        y = y.argmax(axis=1)
    y = np.asarray(y)
    if y.dtype.kind == "f":
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{path}: labels are not integral")
    return y.astype(np.int64).reshape(-1)


def load_heco(
    directory: Path | str,
    name: str,
    type_names: dict[str, str] | None = None,
    *,
    target: str | None = None,
    split: int | None = None,
) -> HeteroGraph:
    """Load a graph in the HeCo directory format into a :class:`HeteroGraph` (generic over letters).

    The format (see the data README): every file ``<x><y>.txt`` is a relation, one ``x_id y_id``
    pair a line (0-based ids of node types ``x`` and ``y``); ``<x>_feat.npz`` (scipy sparse) holds
    the features of type ``x`` where present (other types are featureless); ``labels.npy`` the
    target type's class ids; ``train_<k>.npy`` / ``val_<k>.npy`` / ``test_<k>.npy`` target-node
    indices. A type's node count is the maximum of (max id + 1 over its relation columns, feature
    rows, and for the target the number of labels).

    Each relation file gives the edge type ``(X, "X_Y", Y)`` and its reverse ``(Y, "Y_X", X)``
    (``X``, ``Y`` the full type names; a relation from a type to itself gets ``"rev_X_X"``).
    Metapaths (for HAN) are derived from the relations: ``TOT`` for every type ``O`` next to the
    target ``T``, and ``TOQOT`` for every relation ``O``-``Q`` away from the target (ACM: ``PAP``,
    ``PSP``; HeCo's DBLP: ``APA``, ``APCPA``, ``APTPA``), named by the upper-case letters.

    Args:
        directory: the dataset folder; its ``raw/`` subfolder is used when it exists.
        name: dataset name recorded in the graph.
        type_names: letter -> node type name (e.g. ``{"p": "paper", "a": "author"}``); letters
            without an entry keep the letter as their name.
        target: the target letter; inferred when ``None``: the letter whose node count equals the
            number of labels (ties broken in favour of the letter that appears in every relation
            file, then the first letter of the relation files).
        split: ``k`` of ``train_<k>.npy``; ``None`` takes the smallest ``k`` available (ACM: 20).

    Returns:
        A :class:`HeteroGraph`: int64 edges, float32 features, int64 labels, int64 split indices
        (empty, with a warning, when the folder has no split files).

    Raises:
        FileNotFoundError: no relation files, no ``labels.npy``, or the requested split is missing.
        ValueError: malformed files, or a target that cannot be inferred.
    """
    directory = Path(directory)
    folder = directory / "raw" if (directory / "raw").is_dir() else directory
    if not folder.is_dir():
        raise FileNotFoundError(f"HeCo folder {folder} does not exist")
    type_names = dict(type_names or {})

    def tname(letter: str) -> str:
        return type_names.get(letter, letter)

    relations: dict[tuple[str, str], np.ndarray] = {}
    for f in sorted(folder.iterdir()):
        m = _RELATION_FILE.match(f.name)
        if m and f.is_file():
            relations[(m.group(1), m.group(2))] = _read_pairs(f)
    if not relations:
        raise FileNotFoundError(f"no relation files '<x><y>.txt' in {folder}")
    labels_path = folder / "labels.npy"
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path} is missing: a HeCo folder needs the target's labels")
    labels = _labels(labels_path)

    feats: dict[str, torch.Tensor] = {}
    feat_files: dict[str, str] = {}
    for f in sorted(folder.iterdir()):
        m = _FEAT_FILE.match(f.name)
        if m and f.is_file() and m.group(1) not in feats:
            feats[m.group(1)] = _read_features(f)
            feat_files[m.group(1)] = f.name

    letters = sorted({c for pair in relations for c in pair} | set(feats))
    counts = {c: 0 for c in letters}
    for (x, y), pairs in relations.items():
        if len(pairs):
            counts[x] = max(counts[x], int(pairs[:, 0].max()) + 1)
            counts[y] = max(counts[y], int(pairs[:, 1].max()) + 1)
    for c, x in feats.items():
        counts[c] = max(counts[c], int(x.shape[0]))

    if target is None:
        common = [c for c in letters if all(c in pair for pair in relations)]
        first = [x for (x, _) in relations]
        candidates = [c for c in letters if counts[c] == len(labels)]
        if len(candidates) > 1:
            narrowed = [c for c in candidates if c in common] or candidates
            narrowed = [c for c in narrowed if c in first] or narrowed
            candidates = narrowed
        if len(candidates) != 1:
            raise ValueError(
                f"{folder}: cannot infer the target type from {len(labels)} labels and node counts "
                f"{counts}; pass target=<letter>"
            )
        target = candidates[0]
    elif target not in counts:
        raise ValueError(f"{folder}: target letter {target!r} has no relation or feature file")
    if len(labels) > counts[target]:
        counts[target] = len(labels)
    if len(labels) != counts[target]:
        raise ValueError(f"{folder}: {len(labels)} labels but {counts[target]} nodes of target type {target!r}")

    edges: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]] = {}
    by_pair: dict[tuple[str, str], EdgeType] = {}
    for (x, y), pairs in relations.items():
        fwd = (tname(x), relation_name(tname(x), tname(y)), tname(y))
        rev = reverse_edge_type(fwd)
        s = torch.from_numpy(np.ascontiguousarray(pairs[:, 0]))
        d = torch.from_numpy(np.ascontiguousarray(pairs[:, 1]))
        edges[fwd] = (s, d)
        edges[rev] = (d.clone(), s.clone())
        by_pair.setdefault((x, y), fwd)
        by_pair.setdefault((y, x), rev)

    # Splits
    ks = sorted(int(m.group(1)) for f in folder.iterdir() if (m := _SPLIT_FILE.match(f.name)))
    ks = [k for k in ks if all((folder / f"{s}_{k}.npy").is_file() for s in ("train", "val", "test"))]
    empty = torch.zeros(0, dtype=torch.int64)
    if split is None and not ks:
        warnings.warn(f"{folder}: no train_<k>/val_<k>/test_<k>.npy files; the split is empty", stacklevel=2)
        idx = {s: empty for s in ("train", "val", "test")}
    else:
        k = ks[0] if split is None else int(split)
        if k not in ks:
            raise FileNotFoundError(f"{folder}: no complete split train_{k}/val_{k}/test_{k}.npy (available: {ks})")
        idx = {
            s: torch.from_numpy(np.load(folder / f"{s}_{k}.npy").astype(np.int64).reshape(-1))
            for s in ("train", "val", "test")
        }
        split = k

    # Metapaths from the relation structure
    metapaths: dict[str, list[EdgeType]] = {}
    neighbours = sorted({o for (a, b) in by_pair for o in (a, b) if (target, o) in by_pair and o != target})
    for o in neighbours:
        metapaths[f"{target}{o}{target}".upper()] = [by_pair[(target, o)], by_pair[(o, target)]]
    for o in neighbours:
        for q in sorted({b for (a, b) in by_pair if a == o and b not in (o, target)}):
            mp = [by_pair[(target, o)], by_pair[(o, q)], by_pair[(q, o)], by_pair[(o, target)]]
            metapaths[f"{target}{o}{q}{o}{target}".upper()] = mp

    return HeteroGraph(
        name=name,
        num_nodes={tname(c): counts[c] for c in letters},
        edges=edges,
        features={tname(c): x for c, x in feats.items()},
        target=tname(target),
        labels=torch.from_numpy(labels),
        num_classes=int(labels.max()) + 1 if len(labels) else 0,
        train_idx=idx["train"],
        val_idx=idx["val"],
        test_idx=idx["test"],
        metapaths=metapaths,
        info={
            "format": "heco",
            "source_folder": str(folder),
            "relation_files": [f"{x}{y}.txt" for (x, y) in relations],
            "feature_files": sorted(feat_files.values()),
            "split_k": split,
            "type_names": {c: tname(c) for c in letters},
        },
    )


# --------------------------------------------------------------------------------------------
# PyG HeteroData -> HeteroGraph
# --------------------------------------------------------------------------------------------
def hetero_from_pyg(data, name: str, target: str, metapaths: dict[str, list[EdgeType]] | None = None) -> HeteroGraph:
    """Convert a PyG ``HeteroData`` (node classification on ``target``) to a :class:`HeteroGraph`.

    Node ids are kept. Each edge type ``(src, rel, dst)`` becomes ``(src, "<src>_<dst>", dst)``
    (PyG's IMDB/DBLP call every relation ``"to"``); when two relations join the same pair of types,
    the original name is kept after it (``"<src>_<dst>_<rel>"``). The reverse of a relation is added
    when the data lacks it. ``x`` becomes float32 features (types without ``x`` are featureless),
    ``y`` int64 labels, ``train/val/test_mask`` int64 index tensors (ascending).

    Raises:
        ValueError: the target type has no ``y``.
    """
    num_nodes = {t: int(data[t].num_nodes) for t in data.node_types}
    features = {
        t: data[t].x.to(torch.float32).contiguous() for t in data.node_types if getattr(data[t], "x", None) is not None
    }
    pair_count: dict[tuple[str, str], int] = {}
    for s, _, d in data.edge_types:
        pair_count[(s, d)] = pair_count.get((s, d), 0) + 1
    edges: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]] = {}
    for s, rel, d in data.edge_types:
        new_rel = relation_name(s, d) if pair_count[(s, d)] == 1 and s != d else f"{relation_name(s, d)}_{rel}"
        ei = data[(s, rel, d)].edge_index.to(torch.int64)
        edges[(s, new_rel, d)] = (ei[0].contiguous(), ei[1].contiguous())
    for et in list(edges):
        s_t, _, d_t = et
        if not any(e[0] == d_t and e[2] == s_t for e in edges if e != et):  # no relation back
            s_, d_ = edges[et]
            edges[reverse_edge_type(et)] = (d_.clone(), s_.clone())
    store = data[target]
    if getattr(store, "y", None) is None:
        raise ValueError(f"{name}: target type {target!r} has no labels 'y'")
    labels = store.y.to(torch.int64)
    idx = {}
    for split in ("train", "val", "test"):
        mask = getattr(store, f"{split}_mask", None)
        idx[split] = mask.nonzero().view(-1).to(torch.int64) if mask is not None else torch.zeros(0, dtype=torch.int64)
    return HeteroGraph(
        name=name,
        num_nodes=num_nodes,
        edges=edges,
        features=features,
        target=target,
        labels=labels,
        num_classes=int(labels.max()) + 1,
        train_idx=idx["train"],
        val_idx=idx["val"],
        test_idx=idx["test"],
        metapaths=dict(metapaths or {}),
        info={"format": "pyg", "pyg_edge_types": [tuple(e) for e in data.edge_types]},
    )


def _check_metapaths(graph: HeteroGraph) -> HeteroGraph:
    for mp, path in graph.metapaths.items():
        missing = [et for et in path if et not in graph.edges]
        if missing:
            raise ValueError(f"{graph.name}: metapath {mp} uses edge types the graph lacks: {missing}")
    return graph


def load_acm(download: bool = False) -> HeteroGraph:
    """ACM (HeCo format) from the cache/mirror: paper 4,019 (1,902-d), author 7,167 (1,902-d),
    subject 60 (featureless); 3 classes; split train_20/val_20/test_20 (60/1000/1000).

    Args:
        download: allow a download when neither the cache nor the mirror has the files (network).

    Raises:
        DatasetUnavailableError, ChecksumMismatchError: see :func:`studylib.data.resolve`.
    """
    res = resolve_details("acm", download=download)
    g = load_heco(res.folder, "acm", type_names=ACM_TYPE_NAMES, target="p")
    g.metapaths = dict(REGISTRY["acm"].metapaths)
    g.info = {**g.info, **res.info(), "raw_folder": g.info["source_folder"]}
    return _check_metapaths(g)


def _load_pyg(name: str, cls_name: str, download: bool = False) -> HeteroGraph:
    import torch_geometric.datasets as pyg_datasets

    spec = get_spec(name)
    res = resolve_details(name, download=download)
    cls = getattr(pyg_datasets, cls_name)
    # The raw files are all present, so PyG never downloads; it processes once into processed/.
    with locally_processed(res.folder):
        dataset = cls(root=str(res.folder))
    g = hetero_from_pyg(dataset[0], name, spec.statistics.target, spec.metapaths)
    g.info = {**g.info, **res.info(), "pyg_class": f"torch_geometric.datasets.{cls_name}"}
    return _check_metapaths(g)


def load_imdb(download: bool = False) -> HeteroGraph:
    """IMDB (MAGNN preprocessing) through ``torch_geometric.datasets.IMDB``: movie 4,278, director
    2,081, actor 5,257 (all 3,066-d bag-of-words); 3 classes on movie; split 400/400/3,478.

    Raises:
        DatasetUnavailableError, ChecksumMismatchError: see :func:`studylib.data.resolve`.
    """
    return _load_pyg("imdb", "IMDB", download)


def load_dblp(download: bool = False) -> HeteroGraph:
    """DBLP (MAGNN preprocessing) through ``torch_geometric.datasets.DBLP``: author 4,057 (334-d),
    paper 14,328 (4,231-d), term 7,723 (50-d), conference 20 (featureless); 4 classes on author;
    split 400/400/3,257.

    Raises:
        DatasetUnavailableError, ChecksumMismatchError: see :func:`studylib.data.resolve`.
    """
    return _load_pyg("dblp", "DBLP", download)


# --------------------------------------------------------------------------------------------
# ogbn-mag
# --------------------------------------------------------------------------------------------
def open_ogb_node_dataset(name: str, root: Path | str | None = None, download: bool = False):
    """Open ``ogb.nodeproppred.NodePropPredDataset(name, root)`` without ever prompting
    (:func:`studylib.data.ogb_loader.open_node_dataset`), with the registry's source URL in the
    errors of a registered dataset.

    Raises:
        DatasetUnavailableError: ogb would prompt (large download, dataset version update) or
            would download while ``download`` is false.
    """
    spec = REGISTRY.get(name)
    return open_node_dataset(name, root, download, source_url=spec.url if spec else None)


def hetero_from_ogb(
    graph: dict, labels: dict, split: dict, name: str = "ogbn-mag", target: str = "paper"
) -> HeteroGraph:
    """Convert ogb's heterogeneous numpy graph to a :class:`HeteroGraph`.

    Args:
        graph: ogb's graph dict: ``edge_index_dict`` ((src, rel, dst) -> ``[2, E]`` int array),
            ``num_nodes_dict``, ``node_feat_dict`` (type -> ``[N, F]`` array).
        labels: type -> ``[N, 1]`` (or ``[N]``) class ids.
        split: ``get_idx_split()``: ``{"train" | "valid" | "test": {type: index array}}``.
        name, target: dataset name and labelled node type.

    Each relation gets its reverse as ``(dst, "rev_<rel>", src)``. Labels and split indices are int64.
    """
    edges: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]] = {}
    for (s, rel, d), ei in graph["edge_index_dict"].items():
        ei = torch.as_tensor(np.asarray(ei), dtype=torch.int64)
        edges[(s, rel, d)] = (ei[0].contiguous(), ei[1].contiguous())
        edges[reverse_edge_type((s, rel, d), "rev")] = (ei[1].clone(), ei[0].clone())
    features = {
        t: torch.as_tensor(np.asarray(x), dtype=torch.float32)
        for t, x in (graph.get("node_feat_dict") or {}).items()
        if x is not None
    }
    y = torch.as_tensor(np.asarray(labels[target]), dtype=torch.int64).view(-1)
    idx = {
        k: torch.as_tensor(np.asarray(split[k][target]), dtype=torch.int64).view(-1) for k in ("train", "valid", "test")
    }
    return HeteroGraph(
        name=name,
        num_nodes={t: int(n) for t, n in graph["num_nodes_dict"].items()},
        edges=edges,
        features=features,
        target=target,
        labels=y,
        num_classes=int(y.max()) + 1,
        train_idx=idx["train"],
        val_idx=idx["valid"],
        test_idx=idx["test"],
        metapaths={},
        info={"format": "ogb"},
    )


def load_ogbn_mag(download: bool = False) -> HeteroGraph:
    """ogbn-mag (paper profile) through ogb's ``NodePropPredDataset`` (numpy; no DGL/PyG).

    Uses the cache ``paths.data_dir()/ogbn_mag`` or a mirror's ``ogbn_mag/`` (copied into the
    cache; its ``processed/`` is never taken), else downloads through ogb (about 0.4 GB zipped) when
    ``download`` is true and no mirror is set. ogb's processed pickle is rebuilt in the cache unless
    studylib recorded it as built there. The result:
    paper 736,389 (128-d features, 349 venue classes), author 1,134,649, institution 8,740,
    field_of_study 59,965 (featureless); relations ``cites``, ``writes``, ``affiliated_with``,
    ``has_topic`` and their ``rev_*`` reverses; the time-based split of ``get_idx_split()``.

    Raises:
        DatasetUnavailableError: not in cache or mirror and no download (or an ogb prompt).
    """
    name = "ogbn-mag"
    spec = get_spec(name)
    res = resolve_details(name, download=download)
    with locally_processed(res.folder):
        ds = open_ogb_node_dataset(name, root=res.folder.parent, download=False)
    g = hetero_from_ogb(ds.graph, ds.labels, ds.get_idx_split(), name=name, target="paper")
    g.metapaths = dict(spec.metapaths)
    g.info = {**g.info, **res.info()}
    return _check_metapaths(g)


_LOADERS = {"acm": load_acm, "imdb": load_imdb, "dblp": load_dblp, "ogbn-mag": load_ogbn_mag}


def load_hetero(name: str, download: bool = False) -> HeteroGraph:
    """Load a real heterogeneous graph by name: ``"acm"``, ``"imdb"``, ``"dblp"`` or ``"ogbn-mag"``.

    Resolves the raw files through :func:`studylib.data.resolve` (cache, then mirror, then a
    download only when ``download`` is true) and returns a :class:`HeteroGraph` with both directions of every relation, named
    metapaths (ACM: PAP, PSP; IMDB: MAM, MDM; DBLP: APA, APCPA, APTPA; ogbn-mag: PAP, PFP, PP,
    PP_rev) and ``info`` (source folder, origin, checksums verified, URL).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        DatasetUnavailableError: the dataset cannot be had (message names the URL, raw files and
            ``STUDYLIB_DATA_MIRROR``).
        ChecksumMismatchError: a raw file differs from its recorded SHA-256.
    """
    try:
        loader = _LOADERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown heterogeneous dataset {name!r}; choose one of {', '.join(HETERO_DATASETS)}"
        ) from None
    return loader(download=download)
