"""Partitioning graphs for DistDGL, cached by graph, method, part count and content checksum.

:func:`partition` wraps ``dgl.distributed.partition_graph`` (METIS by default, 1-hop halo, node
and edge ids reshuffled so that each partition's nodes are contiguous, as DistDGL expects) and
keeps the result under ``<data cache>/partitions/<name>-<method>-<parts>p-<checksum>/``; a second
call with the same graph content returns the cached partition JSON without partitioning again.

Next to DGL's files the folder holds ``orig_nids.npy`` (int64 ``[n]``: original node id of each
reshuffled id, as ``partition_graph(return_mapping=True)`` gives it) and ``studylib.json``
(checksum, arguments and :func:`partition_statistics`: inner and halo node counts per part).

Halo nodes (DGL's term, Zheng et al., *DistDGL*, IA3 2020): nodes owned by another partition that
are 1-hop neighbours of this partition's own (inner) nodes; DistDGL keeps their ids in the local
partition graph (``inner_node == 0``) but not their features, which live on their owner's server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from studylib import paths
from studylib.atomic import set_created_mode

__all__ = ["PARTITION_METHODS", "graph_checksum", "load_orig_nids", "partition", "partition_statistics",
           "read_partition_config"]

#: Node-assignment methods of ``dgl.distributed.partition_graph``.
PARTITION_METHODS = ("metis", "random")
_MARKER = "studylib.json"


def _to_dgl(graph):
    """A ``dgl.DGLGraph`` with ``ndata['feat' | 'label' | 'train_mask' | 'val_mask' | 'test_mask']``
    from a :class:`studylib.data.homogeneous.HomogeneousGraph` or a DGL graph (returned as is)."""
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    if isinstance(graph, dgl.DGLGraph):
        return graph
    if hasattr(graph, "to_dgl"):
        return graph.to_dgl()
    raise TypeError(f"partition() takes a HomogeneousGraph or a dgl.DGLGraph (got {type(graph).__name__})")


def graph_checksum(g) -> str:
    """SHA-256 (hex) of a DGL graph's content: node count, edge list in its stored order and every
    node data tensor (name, dtype, shape, bytes). Two graphs with the same checksum partition the
    same way under the same method and part count (METIS is deterministic for a fixed input)."""
    h = hashlib.sha256()
    h.update(f"n={g.num_nodes()};m={g.num_edges()};".encode())
    src, dst = g.edges()
    h.update(src.numpy().astype(np.int64).tobytes())
    h.update(dst.numpy().astype(np.int64).tobytes())
    for key in sorted(g.ndata.keys()):
        t = g.ndata[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def read_partition_config(part_config: Path | str) -> dict:
    """The partition JSON written by ``partition_graph`` (``graph_name``, ``num_parts``,
    ``node_map``, ``part-<i>`` file names ...). Raises ``FileNotFoundError`` naming the path."""
    part_config = Path(part_config)
    if not part_config.is_file():
        raise FileNotFoundError(f"partition config {part_config} does not exist; create it with "
                                f"studylib.distributed.partition(graph, num_parts, name=...)")
    return json.loads(part_config.read_text())


def partition_statistics(part_config: Path | str) -> list[dict]:
    """Per partition: ``part``, ``inner_nodes`` (nodes it owns), ``halo_nodes`` (1-hop neighbours
    owned by others), ``halo_fraction`` (halo / inner), ``inner_edges`` and ``edges`` of the local
    partition graph, ``train_nodes`` owned. Read from ``studylib.json`` when the partition was
    made by :func:`partition`, else computed from the partition files."""
    part_config = Path(part_config)
    marker = part_config.parent / _MARKER
    if marker.is_file():
        stats = json.loads(marker.read_text()).get("statistics")
        if stats:
            return stats
    return _compute_statistics(part_config)


def _compute_statistics(part_config: Path) -> list[dict]:
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    conf = read_partition_config(part_config)
    out = []
    for p in range(int(conf["num_parts"])):
        entry = conf[f"part-{p}"]
        gpath = Path(entry["part_graph"])
        if not gpath.is_absolute():
            gpath = part_config.parent / gpath
        g = dgl.load_graphs(str(gpath))[0][0]
        inner = g.ndata["inner_node"].bool()
        n_inner = int(inner.sum())
        n_halo = int((~inner).sum())
        inner_edges = int(g.edata["inner_edge"].sum()) if "inner_edge" in g.edata else None
        row = {"part": p, "inner_nodes": n_inner, "halo_nodes": n_halo,
               "halo_fraction": n_halo / max(n_inner, 1), "inner_edges": inner_edges, "edges": int(g.num_edges())}
        fpath = Path(entry["node_feats"])
        if not fpath.is_absolute():
            fpath = part_config.parent / fpath
        feats = dgl.data.utils.load_tensors(str(fpath))
        mask = next((v for k, v in feats.items() if k.endswith("train_mask")), None)
        row["train_nodes"] = int(mask.sum()) if mask is not None else None
        out.append(row)
    return out


def load_orig_nids(part_config: Path | str):
    """int64 ``[n]``: the original node id of every reshuffled (DistDGL) node id of a partition made
    by :func:`partition`. Raises ``FileNotFoundError`` for partitions made elsewhere."""
    path = Path(part_config).parent / "orig_nids.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the partition was not made by studylib.distributed.partition")

    return torch.from_numpy(np.load(path))


def partition(graph, num_parts: int, *, method: str = "metis", name: str, cache_dir: Path | str | None = None,
              balance_edges: bool = True) -> Path:
    """Partition ``graph`` for DistDGL into ``num_parts`` parts (1-hop halo) and return the path of
    the partition JSON (what ``DGL_CONF_PATH`` / ``part_config`` take).

    Args:
        graph: a :class:`studylib.data.homogeneous.HomogeneousGraph` (converted with ``to_dgl()``)
            or a homogeneous ``dgl.DGLGraph`` whose ``ndata`` holds ``feat``, ``label`` and the
            boolean split masks ``train_mask`` / ``val_mask`` / ``test_mask``.
        num_parts: partitions = DistDGL machines (>= 1, <= node count).
        method: ``"metis"`` (edge-cut minimising, Karypis and Kumar 1998; DGL's bundled METIS) or
            ``"random"``.
        name: graph name (DistDGL's ``graph_name``; letters, digits, ``-`` and ``_``).
        cache_dir: folder holding cached partitions (default ``<data cache>/partitions``).
        balance_edges: ask METIS to balance edges as well as nodes (DistDGL's usual setting).

    Returns:
        ``Path`` to ``<cache>/<name>-<method>-<parts>p-<checksum12>/<name>.json``.

    Raises:
        ValueError: ``num_parts`` < 1 or larger than the node count, unknown ``method``, bad name.
        TypeError: ``graph`` is neither a HomogeneousGraph nor a DGL graph.

    The partition is written to a temporary folder and renamed into place, so an interrupted call
    leaves no half-written partition behind and concurrent calls do not collide.
    """
    from dgl.distributed import (
        partition_graph,  # lazy: DGL is a heavy optional dependency (studylib imports without it)
    )

    if method not in PARTITION_METHODS:
        raise ValueError(f"unknown partition method {method!r}; choose one of {', '.join(PARTITION_METHODS)}")
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"graph name must be letters, digits, '-' and '_' (got {name!r})")
    g = _to_dgl(graph)
    if int(num_parts) < 1:
        raise ValueError(f"num_parts must be >= 1 (got {num_parts})")
    if int(num_parts) > g.num_nodes():
        raise ValueError(f"num_parts ({num_parts}) exceeds the node count ({g.num_nodes()})")
    missing = [k for k in ("feat", "label", "train_mask") if k not in g.ndata]
    if missing:
        raise ValueError(f"the graph lacks node data {missing}; DistDGL training needs feat, label and train_mask")
    checksum = graph_checksum(g)
    root = Path(cache_dir) if cache_dir is not None else paths.data_dir() / "partitions"
    folder = root / f"{name}-{method}-{int(num_parts)}p-{checksum[:12]}"
    config = folder / f"{name}.json"
    if config.is_file() and (folder / _MARKER).is_file():
        return config
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    set_created_mode(tmp, directory=True)  # mkdtemp makes 0700; give the umask's mode
    try:
        import contextlib
        import io

        chatter = io.StringIO()  # partition_graph prints its progress; keep it in partition.log
        with contextlib.redirect_stdout(chatter):
            orig_nids, _ = partition_graph(g, name, int(num_parts), str(tmp), num_hops=1, part_method=method,
                                           balance_edges=balance_edges, return_mapping=True)
        (tmp / "partition.log").write_text(chatter.getvalue())
        np.save(tmp / "orig_nids.npy", np.asarray(orig_nids, dtype=np.int64))
        stats = _compute_statistics(tmp / f"{name}.json")
        (tmp / _MARKER).write_text(json.dumps({
            "graph_name": name, "method": method, "num_parts": int(num_parts), "checksum": checksum,
            "num_nodes": int(g.num_nodes()), "num_edges": int(g.num_edges()),
            "feature_dim": int(g.ndata["feat"].shape[1]), "statistics": stats}, indent=2))
        if folder.exists():  # made by a concurrent call meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return config


def partition_metadata(part_config: Path | str) -> dict:
    """The ``studylib.json`` record of a partition made by :func:`partition` (checksum, method,
    counts, statistics); ``{}`` for partitions made elsewhere."""
    marker = Path(part_config).parent / _MARKER
    return json.loads(marker.read_text()) if marker.is_file() else {}


class _CallableModule(sys.modules[__name__].__class__):
    """This module, callable: ``studylib.distributed.partition(...)`` is :func:`partition`."""

    def __call__(self, *args, **kwargs):
        return partition(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
