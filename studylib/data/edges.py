"""Edge-list checks and coalescing before edges reach a sparse kernel.

A sparse product (torch's CSR ``matmul``, MKL's SpGEMM behind it, ``torch_sparse``) is defined
only on *valid, coalesced* input: indices in range, sorted by row then column, every ``(row,
col)`` pair at most once. Handed duplicate pairs, torch 2.2.1's CSR product through PyG's
``EdgeIndex.matmul`` returned wrong entries and then crashed on one CPU (Intel Xeon with AVX-512)
while it passed on another (AMD EPYC): undefined behaviour. Everything in studylib that builds a
sparse operand from an edge list goes through :func:`coalesce_edges` (or checks with
:func:`require_coalesced`), so the input is valid on every CPU.

Message passing itself (DGL's kernels, PyG's scatter) is defined on multigraphs: a repeated edge
sends its message twice. So relation graphs keep their edges as given, and only operands of
sparse products and sparse formats are coalesced.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _pair_keys(src: Tensor, dst: Tensor, num_dst: int) -> Tensor:
    return src.long() * int(num_dst) + dst.long()


def _check_range(src: Tensor, dst: Tensor, size: tuple[int, int], what: str) -> None:
    if src.shape != dst.shape or src.dim() != 1:
        raise ValueError(f"{what}: source and destination ids must be 1-D of equal length "
                         f"(got {tuple(src.shape)} and {tuple(dst.shape)})")
    for ids, n, side in ((src, size[0], "source"), (dst, size[1], "destination")):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise ValueError(f"{what}: {side} ids must lie in [0, {n}) "
                             f"(got {int(ids.min())}..{int(ids.max())})")


def edge_statistics(src: Tensor, dst: Tensor, size: tuple[int, int]) -> dict:
    """Counts of an edge list ``src -> dst`` (int tensors ``[E]``) over ``size = (n_src, n_dst)``.

    Returns ``{"edges", "distinct_edges", "duplicate_edges", "self_loops"}``: ``duplicate_edges``
    is ``edges - distinct_edges`` (each extra copy of a pair counts once); ``self_loops`` counts
    edges with ``src == dst`` (meaningful when source and destination are one node type).
    Raises ``ValueError`` when an id is out of range.
    """
    src, dst = torch.as_tensor(src).reshape(-1), torch.as_tensor(dst).reshape(-1)
    _check_range(src, dst, size, "edge list")
    distinct = int(torch.unique(_pair_keys(src, dst, size[1])).numel()) if src.numel() else 0
    return {
        "edges": int(src.numel()),
        "distinct_edges": distinct,
        "duplicate_edges": int(src.numel()) - distinct,
        "self_loops": int((src == dst).sum()),
    }


def is_coalesced(edge_index: Tensor, size: tuple[int, int]) -> bool:
    """Whether ``edge_index`` (int ``[2, E]``) is coalesced for a ``size = (rows, cols)`` matrix:
    ids in range, sorted by row then column, no pair repeated (strictly increasing pair keys)."""
    edge_index = torch.as_tensor(edge_index)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        return False
    if edge_index.size(1) == 0:
        return True
    row, col = edge_index[0].long(), edge_index[1].long()
    if int(row.min()) < 0 or int(col.min()) < 0 or int(row.max()) >= size[0] or int(col.max()) >= size[1]:
        return False
    keys = _pair_keys(row, col, size[1])
    return bool((keys[1:] > keys[:-1]).all())


def coalesce_edges(edge_index: Tensor, size: tuple[int, int], what: str = "edge list") -> Tensor:
    """The coalesced form of ``edge_index`` (int ``[2, E]``) of a ``size = (rows, cols)`` matrix:
    int64 ``[2, E']``, sorted by row then column, each pair once (``E' <= E``; a repeated edge is
    kept once, as the boolean adjacency matrix has it). This is the form a sparse product needs.

    Raises ``ValueError`` naming ``what`` (e.g. the relation) when the shape is not ``[2, E]`` or
    an id lies outside ``size``.
    """
    edge_index = torch.as_tensor(edge_index)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{what}: edge index must have shape [2, E] (got {tuple(edge_index.shape)})")
    row, col = edge_index[0].long(), edge_index[1].long()
    _check_range(row, col, size, what)
    keys = torch.unique(_pair_keys(row, col, size[1]))  # sorted, distinct
    return torch.stack([keys // size[1], keys % size[1]])


def require_coalesced(edge_index: Tensor, size: tuple[int, int], what: str) -> Tensor:
    """Return ``edge_index`` unchanged if :func:`is_coalesced`; otherwise raise ``ValueError``
    naming ``what`` (the relation or operand) and how many pairs repeat or are out of order."""
    if is_coalesced(edge_index, size):
        return edge_index
    ei = torch.as_tensor(edge_index)
    stats = edge_statistics(ei[0], ei[1], size) if ei.dim() == 2 and ei.size(0) == 2 else {}
    raise ValueError(
        f"{what}: a sparse kernel needs a coalesced edge index (sorted by row then column, each pair "
        f"once); got {stats.get('duplicate_edges', '?')} duplicate edge(s) among {stats.get('edges', '?')}"
        " or an unsorted order. Coalesce it first (studylib.data.edges.coalesce_edges)."
    )


def duplicate_pairs(src: np.ndarray, dst: np.ndarray, num_dst: int) -> int:
    """Number of extra copies of repeated ``(src, dst)`` pairs in numpy int arrays ``[E]``."""
    if len(src) == 0:
        return 0
    keys = np.asarray(src, dtype=np.int64) * int(num_dst) + np.asarray(dst, dtype=np.int64)
    return int(len(keys) - len(np.unique(keys)))


def metapath_adjacency(graph, path) -> scipy.sparse.csr_matrix:  # noqa: F821 - scipy imported below
    """Boolean adjacency of the metapath-reachable graph of ``path`` (edge types of ``graph``, a
    :class:`studylib.data.HeteroGraph`, from one node type to another): a scipy CSR matrix
    ``[n_start, n_end]`` of float32 ones, one entry per distinct reachable ``(u, v)`` pair (the
    boolean product of the relations' adjacency matrices, as ``dgl.metapath_reachable_graph``
    defines it). Duplicate edges merge in scipy's COO -> CSR conversion. Needs no DGL.

    Raises ``ValueError`` naming the relation when an id lies outside its node type.
    """
    import scipy.sparse as sp

    adj = None
    for et in path:
        et = tuple(et)
        s, d = graph.edges[et]
        size = (graph.num_nodes[et[0]], graph.num_nodes[et[2]])
        _check_range(torch.as_tensor(s), torch.as_tensor(d), size, f"relation {et}")
        a = sp.csr_matrix((np.ones(len(s), dtype=np.float32), (np.asarray(s), np.asarray(d))), shape=size)
        adj = a if adj is None else adj @ a
        adj.data[:] = 1.0
    adj = adj.tocsr()
    adj.eliminate_zeros()
    return adj
