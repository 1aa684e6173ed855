"""Work, depth and communication models of GNN training (Besta and Hoefler, TPAMI 2024).

Besta and Hoefler, *Parallel and Distributed Graph Neural Networks: An In-Depth Concurrency
Analysis* (IEEE TPAMI 46(5), 2024, arXiv 2205.09702) analyse GNN models and training schemes in
the work-depth model: **work** W is the total number of operations, **depth** D the length of the
longest chain of dependent operations, ``W / D`` the available parallelism. Their symbols, used
here too: ``n`` vertices, ``m`` edges, ``d`` maximum degree, ``k`` feature width, ``L`` layers,
``c`` sampled vertices per neighbourhood, ``K`` MLP layers (GIN). Their tables give O-terms, e.g.
full-batch training: work O(Lmk + Lnk^2), depth O(L log k + L log d). :func:`paper_work` and
:func:`paper_depth` return those terms with every constant set to 1.

This module makes the constants explicit: it lists the **kernels** an implementation runs for a
training step (forward, backward, optimizer) and counts each kernel's floating-point operations
(flops), its compulsory memory traffic (bytes) and its depth, from measured graph statistics.

Counting conventions (they are the constants of the model; change them here, nowhere else):

* a multiply-add is 2 flops; an add, multiply, divide, compare (max, ReLU), exp, sqrt is 1 flop;
* float32 features (:data:`FLOAT_BYTES` = 4), int64 indices (:data:`INDEX_BYTES` = 8);
* bytes: every operand a kernel reads is read once from memory and every result written once (no
  reuse across kernels, no caching of gathered rows: an aggregation reads one source row per
  edge). This is the streaming traffic of graphs that do not fit in cache; for small graphs it
  over-counts what reaches DRAM;
* depth: a sum of ``x`` terms is a binary tree of ``ceil(log2 x)`` levels; a kernel's depth is its
  levels (e.g. a GEMM with inner dimension ``k``: ``1 + ceil(log2 k)``, an aggregation over at
  most ``d`` neighbours: ``1 + ceil(log2 d)``); kernels in a layer run one after another, except
  those marked as parallel branches (relations of a heterogeneous layer);
* backward: per kernel, from which inputs need gradients (:class:`Kernel`): a GEMM costs its
  forward flops again for the weight gradient and again for the input gradient (skipped when the
  input is the raw features); a linear aggregation costs one transposed aggregation (skipped for
  raw features); the weight-gradient reduction over ``n`` rows adds ``ceil(log2 n)`` to the depth;
* optimizer: Adam, :data:`ADAM_FLOPS_PER_PARAM` flops and :data:`ADAM_BYTES_PER_PARAM` bytes per
  parameter (PyTorch's single-tensor Adam: lerp, mul, addcmul, sqrt, div, add, addcdiv).

Kernels are split into **aggregation** (the graph-dependent, sparse part: gather, scatter, SpMM,
SDDMM, edge softmax, GCN normalisation; the paper's Scatter/Aggregate kernels) and **update**
(the per-vertex dense part: GEMMs, biases, activations, attention vectors; the paper's
per-vertex update), plus ``other`` (loss, optimizer).

Citations name the paper's tables by what they tabulate (its table of training schemes' work and
depth, its table of GNN models' work and depth in local and global formulation, its table of
communication volume and synchronisation per kernel) rather than by number, since the numbering
of the arXiv versions and of the TPAMI article could not be checked against each other here; the
models' own equations are cited by number from the
models' papers (Kipf and Welling; Hamilton et al.; Xu et al.; Velickovic et al.; Schlichtkrull et
al.; Wang et al.).

Implementations (``framework``):

* ``"ideal"``: the paper's global formulation with fused kernels: per layer one SpMM over ``m``
  edges and one GEMM (plus bias and activation); no normalisation kernels, no self-loops added
  unless asked;
* ``"dgl"``: DGL 2.1's ``GraphConv`` / ``SAGEConv`` / ``GINConv`` / ``GATConv``: fused SpMM/SDDMM
  kernels on CSR (index traffic ``8 (n + 1 + m)`` bytes), transform-before-aggregate when that
  narrows the aggregated width;
* ``"pyg"``: PyG 2.8's ``GCNConv`` / ``SAGEConv`` / ``GINConv`` / ``GATConv`` without
  torch-scatter / torch-sparse: gather (``index_select``) materialises one ``[m, width]`` message
  tensor, then ``scatter_add`` / ``scatter_reduce`` (COO index traffic ``8 m`` bytes per pass);
  ``GCNConv`` recomputes its normalisation and ``GATConv`` its self-loops every forward.

:class:`studylib.models.homogeneous.HomogeneousGNN` builds exactly the DGL and PyG models counted
here; the HGNN counts (:func:`hgnn_step_cost`) follow the staged models of
:mod:`studylib.models.hgnn`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from studylib.data.edges import metapath_adjacency

FLOAT_BYTES = 4
INDEX_BYTES = 8
#: Adam per parameter: lerp (3) + mul (1) + addcmul (3) + sqrt (1) + div (1) + add (1) + addcdiv (3).
ADAM_FLOPS_PER_PARAM = 13
#: Adam per parameter: 18 float32 reads and writes over those 7 element-wise ops.
ADAM_BYTES_PER_PARAM = 18 * FLOAT_BYTES
#: Sequential element-wise ops of one Adam update.
ADAM_DEPTH = 7

MODELS = ("gcn", "sage", "gin", "gat")
HGNN_MODELS = ("rgcn", "rgat", "han")
FRAMEWORKS = ("ideal", "dgl", "pyg")
AGGREGATION, UPDATE, OTHER = "aggregation", "update", "other"
#: Models whose implementations add one self-loop per vertex before aggregating.
SELF_LOOP_MODELS = frozenset({"gcn", "gat"})

PAPER = ("M. Besta, T. Hoefler, Parallel and Distributed Graph Neural Networks: An In-Depth Concurrency "
         "Analysis, IEEE TPAMI 46(5):2584-2606, 2024 (arXiv 2205.09702)")


def log2c(x: float) -> int:
    """``ceil(log2 x)`` for ``x > 1``, else 0: the levels of a binary reduction tree over ``x`` terms."""
    return int(math.ceil(math.log2(x))) if x > 1 else 0


# ------------------------------------------------------------------------------------------------
# Kernels and their sums
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kernel:
    """One kernel of a training step with its explicit cost.

    Attributes:
        name: e.g. ``"L1.gemm"``; layer: 1-based layer (0 = before the first layer / loss / optimizer).
        op: ``gemm``, ``spmm``, ``gather``, ``scatter``, ``sddmm``, ``edge_softmax``,
            ``elementwise``, ``normalisation``, ``loss``, ``optimizer``, ``embedding``.
        part: ``aggregation``, ``update`` or ``other`` (see the module docstring).
        flops, bytes, depth: forward cost (flops, bytes of memory traffic, dependent levels).
        bwd_flops, bwd_bytes, bwd_depth: backward cost (0 when nothing upstream needs a gradient).
        src_width: float32 values per *source vertex* the kernel gathers (aggregation kernels):
            what a partition must receive per halo vertex in partitioned training.
        src_grad: whether a gradient flows back to those gathered source values (then the backward
            pass sends as many bytes back).
        group, branch: depth composition: kernels of one layer run group after group; inside a
            group, parallel branches (e.g. relations) take the depth of the deepest branch.
        stage: the HGNN stage of Han et al. (``feature_projection``, ``neighbor_aggregation``,
            ``semantic_fusion``) or ``""``.
    """

    name: str
    op: str
    part: str
    flops: float
    bytes: float
    depth: float
    bwd_flops: float = 0.0
    bwd_bytes: float = 0.0
    bwd_depth: float = 0.0
    layer: int = 0
    src_width: int = 0
    src_grad: bool = False
    group: str = ""
    branch: str = ""
    stage: str = ""


def _with(k: Kernel, **kw) -> Kernel:
    return Kernel(**{**asdict(k), **kw})


def gemm(name: str, rows: int, inner: int, cols: int, *, grad_input: bool, **kw) -> Kernel:
    """Dense ``[rows, inner] @ [inner, cols]`` (a linear layer without bias).

    Forward: ``2 rows inner cols`` flops; bytes ``4 (rows inner + inner cols + rows cols)``;
    depth ``1 + ceil(log2 inner)``. Backward: the weight gradient ``X^T dY`` (same flops, depth
    ``1 + ceil(log2 rows)``) plus, when ``grad_input``, the input gradient ``dY W^T`` (same flops,
    depth ``1 + ceil(log2 cols)``), both in parallel.
    """
    f = 2.0 * rows * inner * cols
    b = FLOAT_BYTES * (rows * inner + inner * cols + rows * cols)
    times = 2 if grad_input else 1
    bd = 1 + max(log2c(rows), log2c(cols) if grad_input else 0)
    return Kernel(name, "gemm", kw.pop("part", UPDATE), f, b, 1 + log2c(inner), f * times, b * times, bd, **kw)


def elementwise(name: str, count: float, *, flops_per: float = 1, reads: int = 1, part: str = UPDATE,
                param_rows: int = 0, backward: bool = True, **kw) -> Kernel:
    """An element-wise kernel over ``count`` values (bias add, activation, scaling).

    Forward: ``flops_per * count`` flops; bytes ``4 count (reads + 1)``; depth ``flops_per``.
    Backward (when ``backward``): one flop per value and 3 float32 accesses per value (read the
    gradient and the saved input, write the gradient); with ``param_rows > 0`` (a bias broadcast
    over ``param_rows`` rows) also the bias gradient, a column sum: ``count`` flops, depth
    ``1 + ceil(log2 param_rows)``.
    """
    f = float(flops_per * count)
    b = float(FLOAT_BYTES * count * (reads + 1))
    if not backward:
        return Kernel(name, "elementwise", part, f, b, flops_per, **kw)
    bf = float(count) + (float(count) if param_rows else 0.0)
    bb = float(FLOAT_BYTES * count * 3)
    bd = 1 + (log2c(param_rows) if param_rows else 0)
    return Kernel(name, "elementwise", part, f, b, flops_per, bf, bb, bd, **kw)


def spmm(name: str, n_src: int, n_dst: int, m: int, width: int, *, max_degree: int, weighted: bool = False,
         mean: bool = False, grad_input: bool = True, **kw) -> Kernel:
    """A fused sparse-dense product (DGL's ``update_all`` / ``GSpMM``; the paper's global-form
    ``A H``): ``out[v] = sum_{u -> v} w_uv h[u]`` over ``m`` edges in CSR.

    Forward flops: ``m width`` adds (``2 m width`` when each edge carries a weight ``w_uv``) plus
    ``n_dst width`` divides for a mean. Bytes: CSR index ``8 (n_dst + 1 + m)``, edge weights
    ``4 m`` (weighted), one gathered source row per edge ``4 m width``, the output
    ``4 n_dst width``. Depth ``1 + ceil(log2 max_degree)`` (+1 for a mean). Backward (when
    ``grad_input``): the transposed product, same flops and bytes.
    """
    f = float(m * width * (2 if weighted else 1) + (n_dst * width if mean else 0))
    b = float(INDEX_BYTES * (n_dst + 1 + m) + (FLOAT_BYTES * m if weighted else 0)
              + FLOAT_BYTES * m * width + FLOAT_BYTES * n_dst * width)
    d = 1 + log2c(max_degree) + (1 if mean else 0)
    if grad_input:
        return Kernel(name, "spmm", kw.pop("part", AGGREGATION), f, b, d, f, b, d, src_width=width, src_grad=True,
                      **kw)
    return Kernel(name, "spmm", kw.pop("part", AGGREGATION), f, b, d, src_width=width, **kw)


def gather(name: str, m: int, width: int, *, n_src: int, max_degree: int, grad_input: bool = True, **kw) -> Kernel:
    """``x[src]``: an ``index_select`` that materialises one ``[m, width]`` row per edge (PyG's
    message tensor). Forward: 0 flops; bytes ``8 m + 4 m width`` (read) ``+ 4 m width`` (write);
    depth 1. Backward (``grad_input``): ``index_add`` of the ``[m, width]`` gradient into
    ``[n_src, width]``: ``m width`` flops, bytes ``8 m + 4 m width + 8 n_src width`` (zero-fill and
    write), depth ``1 + ceil(log2 max_degree)``."""
    b = float(INDEX_BYTES * m + 2 * FLOAT_BYTES * m * width)
    if not grad_input:
        return Kernel(name, "gather", kw.pop("part", AGGREGATION), 0.0, b, 1, src_width=width, **kw)
    bb = float(INDEX_BYTES * m + FLOAT_BYTES * m * width + 2 * FLOAT_BYTES * n_src * width)
    return Kernel(name, "gather", kw.pop("part", AGGREGATION), 0.0, b, 1, float(m * width), bb,
                  1 + log2c(max_degree), src_width=width, src_grad=True, **kw)


def scatter(name: str, m: int, n_dst: int, width: int, *, max_degree: int, reduce: str = "sum",
            grad: bool = True, **kw) -> Kernel:
    """``scatter_add`` / ``scatter_reduce`` of ``[m, width]`` messages into ``[n_dst, width]``
    (PyG's ``torch_geometric.utils.scatter`` on plain PyTorch).

    Forward flops ``m width`` (plus, for ``reduce="mean"``, ``m`` for the counts and
    ``n_dst width`` divides; for ``"max"`` the same ``m width`` compares). Bytes: ``8 m`` index,
    ``4 m width`` read, ``8 n_dst width`` (zero-fill and write); a mean adds ``8 m + 8 n_dst`` for
    the counts and ``8 n_dst width`` for the division. Depth ``1 + ceil(log2 max_degree)`` (+1 for
    a mean). Backward (``grad``): a gather of the output gradient per edge, ``8 m + 4 n_dst width
    + 4 m width`` bytes, 0 flops (a mean: ``n_dst width`` divides first).
    """
    mean = reduce == "mean"
    f = float(m * width + (m + n_dst * width if mean else 0))
    b = float(INDEX_BYTES * m + FLOAT_BYTES * m * width + 2 * FLOAT_BYTES * n_dst * width
              + ((INDEX_BYTES * (m + n_dst) + 2 * FLOAT_BYTES * n_dst * width) if mean else 0))
    d = 1 + log2c(max_degree) + (1 if mean else 0)
    if not grad:
        return Kernel(name, "scatter", kw.pop("part", AGGREGATION), f, b, d, **kw)
    bf = float(n_dst * width if mean else 0)
    bb = float(INDEX_BYTES * m + FLOAT_BYTES * n_dst * width + FLOAT_BYTES * m * width)
    return Kernel(name, "scatter", kw.pop("part", AGGREGATION), f, b, d, bf, bb, 1 + (1 if mean else 0), **kw)


def sddmm_add(name: str, m: int, n_src: int, n_dst: int, heads: int, *, fused: bool, **kw) -> Kernel:
    """Per-edge attention logits ``e_uv = el[u] + er[v]`` (``heads`` values per edge; DGL
    ``u_add_v`` SDDMM, or PyG's two gathers and an add). Forward ``m heads`` flops; bytes fused:
    ``8 (n_dst + 1 + m)`` CSR index ``+ 8 m heads`` (two gathered values) ``+ 4 m heads``
    (write); unfused (PyG): two gathers ``2 (8 m + 8 m heads)`` then the add ``12 m heads``.
    Depth 1 (+1 unfused). Backward: scatter-add of the edge gradient to both ends, ``2 m heads``
    flops and ``2 (8 m + 4 m heads + 4 n heads)`` bytes; depth ``1 + ceil(log2 d)`` (``d`` passed
    as ``max_degree``)."""
    d_max = kw.pop("max_degree", 1)
    if fused:
        b = float(INDEX_BYTES * (n_dst + 1 + m) + 2 * FLOAT_BYTES * m * heads + FLOAT_BYTES * m * heads)
        depth = 1
    else:
        b = float(2 * (INDEX_BYTES * m + 2 * FLOAT_BYTES * m * heads) + 3 * FLOAT_BYTES * m * heads)
        depth = 2
    bb = float(2 * INDEX_BYTES * m + 2 * FLOAT_BYTES * m * heads + FLOAT_BYTES * (n_src + n_dst) * heads)
    return Kernel(name, "sddmm", kw.pop("part", AGGREGATION), float(m * heads), b, depth, float(2 * m * heads), bb,
                  1 + log2c(d_max), src_width=heads, src_grad=True, **kw)


def edge_softmax(name: str, m: int, n_dst: int, heads: int, *, max_degree: int, fused: bool, **kw) -> Kernel:
    """Softmax of per-edge scores over each destination's in-edges (GAT, Velickovic et al., ICLR
    2018, Eq. 2), ``heads`` values per edge, computed as max, subtract, exp, sum, divide.

    Forward ``5 m heads`` flops (+``n_dst heads`` for PyG's epsilon). Bytes, DGL (``copy_e_max``,
    ``e_sub_v``, ``exp``, ``copy_e_sum``, ``e_div_v``): ``40 m heads + 8 n_dst heads`` plus four
    passes over the CSR index ``32 (n_dst + 1 + m)``; PyG (two ``scatter`` and two
    ``index_select`` materialised): ``48 m heads + 16 n_dst heads + 32 m``. Depth
    ``2 ceil(log2 max_degree) + 3``. Backward ``y (g - sum(g y))``: ``4 m heads`` flops,
    ``32 m heads`` bytes (+ index), depth ``ceil(log2 max_degree) + 3``.
    """
    mh = m * heads
    if fused:
        f = 5.0 * mh
        b = float(40 * mh + 8 * n_dst * heads + 4 * INDEX_BYTES * (n_dst + 1 + m))
        bb = float(32 * mh + 2 * INDEX_BYTES * (n_dst + 1 + m))
    else:
        f = 5.0 * mh + n_dst * heads
        b = float(48 * mh + 16 * n_dst * heads + 4 * INDEX_BYTES * m)
        bb = float(32 * mh + 2 * INDEX_BYTES * m)
    return Kernel(name, "edge_softmax", kw.pop("part", AGGREGATION), f, b, 2 * log2c(max_degree) + 3, 4.0 * mh, bb,
                  log2c(max_degree) + 3, **kw)


def attention_spmm(name: str, n_src: int, n_dst: int, m: int, heads: int, head_dim: int, *, max_degree: int,
                   fused: bool, grad_input: bool = True, **kw) -> list[Kernel]:
    """Attention-weighted aggregation ``out[v] = sum_u a_uv z[u]`` (GAT Eq. 4; DGL ``u_mul_e_sum``,
    PyG gather + multiply + ``scatter``), ``heads`` heads of ``head_dim``.

    Fused (one kernel): forward ``2 m heads head_dim`` flops; bytes CSR index, ``4 m heads``
    weights, ``4 m heads head_dim`` gathered rows, ``4 n_dst heads head_dim`` written; depth
    ``1 + ceil(log2 max_degree)``. Backward: the input gradient (transposed product, when
    ``grad_input``) and the attention gradient ``<dY[v], z[u]>`` per edge and head (an SDDMM,
    ``2 m heads head_dim`` flops). Unfused (PyG): :func:`gather`, a multiply kernel
    (``m heads head_dim`` flops, backward twice that: both factors need gradients) and
    :func:`scatter`.
    """
    w = heads * head_dim
    if fused:
        f = 2.0 * m * w
        b = float(INDEX_BYTES * (n_dst + 1 + m) + FLOAT_BYTES * m * heads + FLOAT_BYTES * m * w
                  + FLOAT_BYTES * n_dst * w)
        b_att = float(INDEX_BYTES * (n_dst + 1 + m) + 2 * FLOAT_BYTES * m * w + FLOAT_BYTES * m * heads)
        bf = 2.0 * m * w + (f if grad_input else 0.0)
        bb = b_att + (b if grad_input else 0.0)
        d = 1 + log2c(max_degree)
        return [Kernel(name, "spmm", kw.pop("part", AGGREGATION), f, b, d, bf, bb, max(d, 1 + log2c(head_dim)),
                       src_width=w, src_grad=grad_input, **kw)]
    part = kw.pop("part", AGGREGATION)
    g = gather(f"{name}.gather", m, w, n_src=n_src, max_degree=max_degree, grad_input=grad_input, part=part, **kw)
    mul = Kernel(f"{name}.mul", "elementwise", part, float(m * w), float(FLOAT_BYTES * (2 * m * w + m * heads)), 1,
                 float(2 * m * w), float(FLOAT_BYTES * (3 * m * w + m * heads) + FLOAT_BYTES * m * w),
                 1 + log2c(head_dim), **kw)
    s = scatter(f"{name}.scatter", m, n_dst, w, max_degree=max_degree, reduce="sum", **kw, part=part)
    return [g, mul, s]


# ------------------------------------------------------------------------------------------------
# Graph shapes: full batch, sampled mini-batch, partitions
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerShape:
    """The bipartite graph one layer aggregates over: ``n_src`` source vertices, ``n_dst``
    destination vertices (outputs), ``m`` edges, largest in-degree ``max_degree`` (the paper's
    ``d``; at least 1). Full batch: ``n_src = n_dst = n``."""

    n_src: int
    n_dst: int
    m: int
    max_degree: int

    def with_self_loops(self, existing: int = 0) -> LayerShape:
        """One self-loop per destination added (``existing`` ones removed first): ``m - existing +
        n_dst`` edges, ``max_degree + 1``."""
        return LayerShape(self.n_src, self.n_dst, self.m - existing + self.n_dst, self.max_degree + 1)


def full_batch_shapes(stats: dict, num_layers: int) -> list[LayerShape]:
    """Full-batch training (the paper's full-batch scheme): every layer aggregates over the whole
    graph. ``stats``: :func:`studylib.data.homogeneous.degree_statistics` (``n``, ``m``,
    ``max_in_degree``). Returns ``num_layers`` equal shapes."""
    s = LayerShape(int(stats["n"]), int(stats["n"]), int(stats["m"]), max(1, int(stats["max_in_degree"])))
    return [s] * num_layers


def expected_minibatch_shapes(in_degrees: Sequence[int] | np.ndarray, batch_size: int,
                              fanouts: Sequence[int]) -> list[LayerShape]:
    """Expected layer shapes of one GraphSAGE-style node-wise sampled mini-batch (Hamilton et al.,
    NeurIPS 2017, Alg. 2; the paper's sampled mini-batch scheme with ``c`` = fanout).

    ``fanouts[l]`` neighbours are sampled (without replacement) per destination vertex for layer
    ``l + 1`` (``fanouts[-1]`` is next to the seeds, as in DGL's ``NeighborSampler``); a vertex of
    in-degree ``x`` contributes ``min(c, x)`` edges, so a layer with ``b`` destinations has
    ``b * mean_v min(c, deg(v))`` edges (destinations taken as uniform vertices, i.e. the measured
    degree distribution enters through that mean). Its sources are its destinations plus the
    distinct new vertices among the ``e`` sampled neighbours. A sampled neighbour is the source of
    a uniformly chosen edge, i.e. vertex ``v`` with probability ``p_v = deg(v) / m`` (exact for
    symmetric graphs, where in- and out-degrees agree), so ``e`` draws hit
    ``sum_v (1 - (1 - p_v)^e)`` distinct vertices, of which the fraction ``1 - b / n`` is taken as
    new (draws independent of the destination set; hubs already among the destinations make this an
    upper estimate). Returns one :class:`LayerShape` per layer, first layer first. Raises
    ``ValueError`` for empty ``fanouts`` or a non-positive batch size.
    """
    deg = np.asarray(in_degrees, dtype=np.int64)
    n = int(deg.size)
    if batch_size < 1 or not fanouts:
        raise ValueError(f"batch_size must be >= 1 and fanouts non-empty (got {batch_size}, {list(fanouts)})")
    m = float(deg.sum())
    p = deg / m if m else np.zeros(n)
    shapes = []
    n_dst = min(int(batch_size), n)
    for c in reversed(list(fanouts)):
        per = float(np.minimum(deg, int(c)).mean()) if n else 0.0
        e = n_dst * per
        distinct = float((1.0 - np.power(1.0 - p, e)).sum()) if n else 0.0
        n_src = int(round(min(n, n_dst + distinct * (1.0 - n_dst / n))))
        shapes.append(LayerShape(n_src, n_dst, int(round(e)), max(1, int(min(c, deg.max() if n else 1)))))
        n_dst = n_src
    shapes.reverse()
    return shapes


@dataclass
class PartitionStats:
    """Per-partition counts of a vertex partition of a directed graph (edges ``src -> dst``).

    A vertex belongs to one partition (``assignment[v]``). Partition ``p`` owns its *inner*
    vertices and their in-edges (it computes their aggregation, as DistDGL and the paper's
    owner-computes rule do); an in-edge whose source lies elsewhere is a *cut* edge, and the
    distinct remote sources of ``p``'s cut edges are ``p``'s *halo* vertices, whose features it
    must receive every layer.

    Attributes (numpy int64 arrays ``[P]`` unless noted): ``inner_nodes``, ``inner_edges``
    (in-edges of inner vertices, cut ones included), ``cut_edges`` (in-edges from remote
    sources), ``halo_nodes``, ``max_in_degree``; ``num_parts``, ``n``, ``m`` (ints).
    """

    num_parts: int
    n: int
    m: int
    inner_nodes: np.ndarray
    inner_edges: np.ndarray
    cut_edges: np.ndarray
    halo_nodes: np.ndarray
    max_in_degree: np.ndarray

    @property
    def total_cut_edges(self) -> int:
        """Edges whose endpoints lie in different partitions (the edge cut, directed)."""
        return int(self.cut_edges.sum())

    @property
    def total_halo_nodes(self) -> int:
        """Sum over partitions of their halo vertices (a vertex counts once per partition needing it)."""
        return int(self.halo_nodes.sum())

    @property
    def edge_cut_fraction(self) -> float:
        """Cut edges / all edges."""
        return self.total_cut_edges / self.m if self.m else 0.0

    @property
    def replication_factor(self) -> float:
        """(inner + halo vertices over all partitions) / n: how many copies of a vertex's features exist."""
        return float((self.inner_nodes.sum() + self.halo_nodes.sum()) / self.n) if self.n else 0.0

    @property
    def edge_imbalance(self) -> float:
        """max / mean of the partitions' edge counts (1 = balanced work)."""
        mean = self.inner_edges.mean() if self.num_parts else 0
        return float(self.inner_edges.max() / mean) if mean else 1.0

    def shapes(self, part: int) -> LayerShape:
        """The layer shape partition ``part`` computes: sources = inner + halo vertices,
        destinations = inner vertices, its in-edges."""
        return LayerShape(int(self.inner_nodes[part] + self.halo_nodes[part]), int(self.inner_nodes[part]),
                          int(self.inner_edges[part]), max(1, int(self.max_in_degree[part])))

    def to_dict(self) -> dict:
        """Totals as plain numbers (for tables)."""
        return {"num_parts": self.num_parts, "n": self.n, "m": self.m, "cut_edges": self.total_cut_edges,
                "halo_nodes": self.total_halo_nodes, "edge_cut_fraction": self.edge_cut_fraction,
                "replication_factor": self.replication_factor, "edge_imbalance": self.edge_imbalance,
                "max_part_edges": int(self.inner_edges.max()), "max_part_halo": int(self.halo_nodes.max())}


def partition_statistics(src, dst, n: int, assignment, num_parts: int | None = None) -> PartitionStats:
    """Count inner vertices, inner edges, cut edges and halo vertices per partition.

    Args:
        src, dst: int ``[m]`` directed edges (messages flow ``src -> dst``). A repeated edge
            counts once per copy in the edge counts (each copy is a message) and its source
            once in the halo vertices (a halo vertex's features are fetched once).
        n: vertex count.
        assignment: int ``[n]``, the partition of each vertex (e.g. from
            ``dgl.metis_partition_assignment``).
        num_parts: partition count (default ``max(assignment) + 1``).

    Returns a :class:`PartitionStats`. Raises ``ValueError`` when ``assignment`` has the wrong
    length or negative entries.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    a = np.asarray(assignment, dtype=np.int64)
    if a.shape != (n,):
        raise ValueError(f"assignment must have n={n} entries (got shape {a.shape})")
    if n and a.min() < 0:
        raise ValueError("assignment entries must be >= 0")
    P = int(num_parts if num_parts is not None else (a.max() + 1 if n else 0))
    pd_, ps = a[dst], a[src]
    inner_nodes = np.bincount(a, minlength=P)
    inner_edges = np.bincount(pd_, minlength=P)
    cut = ps != pd_
    cut_edges = np.bincount(pd_[cut], minlength=P)
    halo_keys = np.unique(pd_[cut] * n + src[cut])
    halo_nodes = np.bincount(halo_keys // n, minlength=P) if halo_keys.size else np.zeros(P, dtype=np.int64)
    deg = np.bincount(dst, minlength=n)
    max_deg = np.zeros(P, dtype=np.int64)
    np.maximum.at(max_deg, a, deg)
    return PartitionStats(P, int(n), int(src.size), inner_nodes, inner_edges, cut_edges, halo_nodes, max_deg)


# ------------------------------------------------------------------------------------------------
# Kernels of one homogeneous GNN layer
# ------------------------------------------------------------------------------------------------

def layer_kernels(model: str, framework: str, shape: LayerShape, f_in: int, f_out: int, *, layer: int = 1,
                  first: bool = True, last: bool = True, heads: int = 1, gin_mlp_layers: int = 2,
                  self_loops: bool | None = None, existing_self_loops: int = 0) -> list[Kernel]:
    """The kernels of one forward layer of GCN, GraphSAGE-mean, GIN or GAT, with explicit costs.

    Models (the equation each kernel list implements):

    * ``gcn``: Kipf and Welling (ICLR 2017) Eq. 2, ``H' = D^-1/2 (A + I) D^-1/2 H W + b``
      (ReLU between layers);
    * ``sage``: Hamilton et al. (NeurIPS 2017) Alg. 1 with the mean aggregator as PyG and DGL
      implement it, ``h'_v = W_1 h_v + W_2 mean_{u in N(v)} h_u + b``;
    * ``gin``: Xu et al. (ICLR 2019) Eq. 4.1, ``h'_v = MLP((1 + eps) h_v + sum_{u in N(v)} h_u)``
      with ``K = gin_mlp_layers`` linear layers;
    * ``gat``: Velickovic et al. (ICLR 2018) Eqs. 1-5: ``z = h W``, ``e_uv = LeakyReLU(a_s.z_u +
      a_d.z_v)``, softmax over ``v``'s in-edges, ``h'_v = ||_heads sum_u a_uv z_u + b`` (ELU
      between layers), ``heads`` heads of ``f_out / heads``.

    Each is the local/global formulation whose O-terms Besta and Hoefler (TPAMI 2024) list in
    their table of GNN models' work and depth (Sec. on parallelism in GNN models):
    GCN/SAGE ``O(mk + nk^2)`` per layer, GIN ``O(mk + Knk^2)``, GAT (global form)
    ``O(mk + nk^2)``; the constants are the kernel costs of :func:`gemm`, :func:`spmm`,
    :func:`gather`, :func:`scatter`, :func:`edge_softmax` (see their docstrings).

    Args:
        model: ``gcn``, ``sage``, ``gin``, ``gat``.
        framework: ``ideal``, ``dgl`` or ``pyg`` (module docstring).
        shape: the graph the layer aggregates over, *without* self-loops added; GCN and GAT add one
            per destination (``self_loops``, default: for those two models and ``framework`` not
            ``ideal``), after removing ``existing_self_loops``.
        f_in, f_out: input and output widths (GAT: ``f_out`` = all heads together).
        layer: 1-based layer index (kernel names, grouping).
        first: whether the input is the raw feature matrix (then no gradient flows into it).
        last: whether this is the last layer (no activation after it).
        heads: GAT heads; gin_mlp_layers: ``K``.

    Returns the forward kernels in execution order. Raises ``ValueError`` for unknown names.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; choose one of {', '.join(FRAMEWORKS)}")
    if self_loops is None:
        self_loops = model in SELF_LOOP_MODELS and framework != "ideal"
    s = shape.with_self_loops(existing_self_loops) if self_loops else shape
    ns, nd, m, d = s.n_src, s.n_dst, s.m, max(1, s.max_degree)
    gi = not first  # does the layer input need a gradient?
    fused = framework in ("ideal", "dgl")
    L = f"L{layer}"
    ks: list[Kernel] = []
    kw = {"layer": layer}

    def aggregate(width: int, *, weighted: bool = False, mean: bool = False, grad_input: bool, tag: str = "agg"):
        if fused:
            return [spmm(f"{L}.{tag}", ns, nd, m, width, max_degree=d, weighted=weighted, mean=mean,
                         grad_input=grad_input, **kw)]
        out = [gather(f"{L}.{tag}.gather", m, width, n_src=ns, max_degree=d, grad_input=grad_input, **kw)]
        if weighted:
            out.append(Kernel(f"{L}.{tag}.mul", "elementwise", AGGREGATION, float(m * width),
                              float(FLOAT_BYTES * (2 * m * width + m)), 1,
                              float(m * width) if grad_input else 0.0,
                              float(FLOAT_BYTES * (2 * m * width + m)) if grad_input else 0.0, 1, **kw))
        out.append(scatter(f"{L}.{tag}.scatter", m, nd, width, max_degree=d, reduce="mean" if mean else "sum",
                           grad=grad_input, **kw))
        return out

    def activation():  # ReLU (1 flop per value); GAT's ELU: compare and exp (2)
        if not last:
            ks.append(elementwise(f"{L}.act", nd * f_out, flops_per=2 if model == "gat" else 1, **kw))

    if model == "gcn":
        if framework == "pyg":
            # gcn_norm every forward: remove/add self-loops (index copy), degree scatter, deg^-1/2,
            # per-edge weight dinv[src] * dinv[dst]
            e0 = shape.m
            ks.append(Kernel(f"{L}.norm.self_loops", "normalisation", AGGREGATION, 0.0,
                             float(2 * INDEX_BYTES * e0 + 2 * INDEX_BYTES * m), 1, **kw))
            ks.append(Kernel(f"{L}.norm.degree", "normalisation", AGGREGATION, float(m + nd),
                             float(INDEX_BYTES * m + FLOAT_BYTES * m + 2 * FLOAT_BYTES * nd), 1 + log2c(d) + 1, **kw))
            ks.append(Kernel(f"{L}.norm.edge_weight", "normalisation", AGGREGATION, float(2 * m),
                             float(2 * INDEX_BYTES * m + 3 * FLOAT_BYTES * m), 2, **kw))
            ks.append(gemm(f"{L}.gemm", ns, f_in, f_out, grad_input=gi, **kw))
            ks += aggregate(f_out, weighted=True, grad_input=True)
        elif framework == "dgl":
            # GraphConv(norm="both"): out-degree scaling of the input, transform first when it
            # narrows the aggregated width, in-degree scaling of the output
            ks.append(elementwise(f"{L}.norm.src", ns * f_in, reads=1, part=AGGREGATION, backward=gi, **kw))
            if f_in > f_out:
                ks.append(gemm(f"{L}.gemm", ns, f_in, f_out, grad_input=gi, **kw))
                ks += aggregate(f_out, grad_input=True)
            else:
                ks += aggregate(f_in, grad_input=gi)
                ks.append(gemm(f"{L}.gemm", nd, f_in, f_out, grad_input=gi, **kw))
            ks.append(elementwise(f"{L}.norm.dst", nd * f_out, reads=1, part=AGGREGATION, **kw))
        else:
            ks.append(gemm(f"{L}.gemm", ns, f_in, f_out, grad_input=gi, **kw))
            ks += aggregate(f_out, weighted=True, grad_input=True)
        ks.append(elementwise(f"{L}.bias", nd * f_out, param_rows=nd, **kw))
        activation()
    elif model == "sage":
        before = framework == "dgl" and f_in > f_out  # DGL's lin_before_mp
        if before:
            ks.append(gemm(f"{L}.gemm_neigh", ns, f_in, f_out, grad_input=gi, **kw))
            ks += aggregate(f_out, mean=True, grad_input=True)
        else:
            ks += aggregate(f_in, mean=True, grad_input=gi)
            ks.append(gemm(f"{L}.gemm_neigh", nd, f_in, f_out, grad_input=gi, **kw))
        ks.append(gemm(f"{L}.gemm_self", nd, f_in, f_out, grad_input=gi, **kw))
        ks.append(elementwise(f"{L}.add", nd * f_out, reads=2, **kw))
        ks.append(elementwise(f"{L}.bias", nd * f_out, param_rows=nd, **kw))
        activation()
    elif model == "gin":
        ks += aggregate(f_in, grad_input=gi)
        # (1 + eps) h_v + aggregate: a scale and an add
        ks.append(elementwise(f"{L}.self", nd * f_in, flops_per=2, reads=2, backward=gi, **kw))
        w = f_in
        for j in range(gin_mlp_layers):
            ks.append(gemm(f"{L}.mlp{j + 1}", nd, w, f_out, grad_input=(gi or j > 0), **kw))
            ks.append(elementwise(f"{L}.mlp{j + 1}.bias", nd * f_out, param_rows=nd, **kw))
            if j < gin_mlp_layers - 1:
                ks.append(elementwise(f"{L}.mlp{j + 1}.relu", nd * f_out, **kw))
            w = f_out
        activation()
    else:  # gat
        H = heads
        D = f_out // H
        if H * D != f_out:
            raise ValueError(f"f_out ({f_out}) must be divisible by heads ({H})")
        if framework == "pyg":
            ks.append(Kernel(f"{L}.self_loops", "normalisation", AGGREGATION, 0.0,
                             float(2 * INDEX_BYTES * shape.m + 2 * INDEX_BYTES * m), 1, **kw))
        ks.append(gemm(f"{L}.gemm", ns, f_in, f_out, grad_input=gi, **kw))
        # attention vectors a_s . z_u and a_d . z_v: a multiply and a head-wise sum per value
        ks.append(Kernel(f"{L}.attn_src", "elementwise", UPDATE, float(2 * ns * f_out),
                         float(FLOAT_BYTES * (ns * f_out + f_out + ns * H)), 1 + log2c(D),
                         float(4 * ns * f_out), float(FLOAT_BYTES * (2 * ns * f_out + ns * H + f_out)),
                         1 + log2c(ns), **kw))
        ks.append(Kernel(f"{L}.attn_dst", "elementwise", UPDATE, float(2 * nd * f_out),
                         float(FLOAT_BYTES * (nd * f_out + f_out + nd * H)), 1 + log2c(D),
                         float(4 * nd * f_out), float(FLOAT_BYTES * (2 * nd * f_out + nd * H + f_out)),
                         1 + log2c(nd), **kw))
        ks.append(sddmm_add(f"{L}.sddmm", m, ns, nd, H, fused=fused, max_degree=d, **kw))
        ks.append(elementwise(f"{L}.leaky_relu", m * H, part=AGGREGATION, **kw))
        ks.append(edge_softmax(f"{L}.softmax", m, nd, H, max_degree=d, fused=fused, **kw))
        ks += attention_spmm(f"{L}.agg", ns, nd, m, H, D, max_degree=d, fused=fused, **kw)
        ks.append(elementwise(f"{L}.bias", nd * f_out, param_rows=nd, **kw))
        activation()
    return ks


def layer_parameters(model: str, f_in: int, f_out: int, *, heads: int = 1, gin_mlp_layers: int = 2) -> int:
    """Trainable parameters of one layer as :mod:`studylib.models.homogeneous` builds it (both
    frameworks agree): GCN ``f_in f_out + f_out``; SAGE ``2 f_in f_out + f_out``; GIN the MLP's
    weights and biases; GAT ``f_in f_out + 2 f_out + f_out`` (weight, two attention vectors, bias)."""
    if model == "gcn":
        return f_in * f_out + f_out
    if model == "sage":
        return 2 * f_in * f_out + f_out
    if model == "gin":
        return f_in * f_out + f_out + (gin_mlp_layers - 1) * (f_out * f_out + f_out)
    if model == "gat":
        return f_in * f_out + 3 * f_out
    raise ValueError(f"unknown model {model!r}")


def loss_kernels(n_out: int, n_train: int, num_classes: int) -> list[Kernel]:
    """Cross-entropy on the training rows of ``[n_out, C]`` logits: an ``index_select`` of the
    ``n_train`` rows, ``log_softmax`` (max, subtract, exp, sum, log, subtract: ``5 n_train C +
    n_train`` flops) and the negative log-likelihood mean (``n_train`` flops). Backward:
    ``softmax - onehot`` (``3 n_train C`` flops) and a scatter back into a zero ``[n_out, C]``."""
    C = num_classes
    return [
        Kernel("loss.gather", "gather", OTHER, 0.0, float(INDEX_BYTES * n_train + 2 * FLOAT_BYTES * n_train * C), 1,
               0.0, float(INDEX_BYTES * n_train + FLOAT_BYTES * n_train * C + 2 * FLOAT_BYTES * n_out * C), 1),
        Kernel("loss.log_softmax", "loss", OTHER, float(5 * n_train * C + 2 * n_train),
               float(FLOAT_BYTES * (4 * n_train * C)), 2 * log2c(C) + 4 + log2c(n_train),
               float(3 * n_train * C), float(FLOAT_BYTES * 3 * n_train * C), 3),
    ]


def optimizer_kernel(num_params: int) -> Kernel:
    """One Adam update of ``num_params`` parameters (:data:`ADAM_FLOPS_PER_PARAM`,
    :data:`ADAM_BYTES_PER_PARAM`, depth :data:`ADAM_DEPTH`); no backward."""
    return Kernel("optimizer.adam", "optimizer", OTHER, float(ADAM_FLOPS_PER_PARAM * num_params),
                  float(ADAM_BYTES_PER_PARAM * num_params), ADAM_DEPTH)


# ------------------------------------------------------------------------------------------------
# Sums: work, traffic, depth, parallelism
# ------------------------------------------------------------------------------------------------

@dataclass
class StepCost:
    """The cost of one training step (or of a forward pass), summed from its kernels.

    Attributes: ``flops_forward``, ``flops_backward``, ``flops_optimizer``, ``flops`` (all),
    ``bytes_forward``, ``bytes_backward``, ``bytes_optimizer``, ``bytes`` (all), the flops and
    bytes of the ``aggregation`` / ``update`` / ``other`` parts (``flops_aggregation`` ...),
    ``depth_forward``, ``depth`` (whole step), ``parallelism`` (= ``flops / depth``: the work-depth
    model's average available parallelism), ``intensity`` (flops per byte), ``kernels``.
    """

    flops_forward: float
    flops_backward: float
    flops_optimizer: float
    bytes_forward: float
    bytes_backward: float
    bytes_optimizer: float
    flops_aggregation: float
    flops_update: float
    flops_other: float
    bytes_aggregation: float
    bytes_update: float
    bytes_other: float
    depth_forward: float
    depth: float
    kernels: list[Kernel] = field(default_factory=list, repr=False)

    @property
    def flops(self) -> float:
        return self.flops_forward + self.flops_backward + self.flops_optimizer

    @property
    def bytes(self) -> float:
        return self.bytes_forward + self.bytes_backward + self.bytes_optimizer

    @property
    def parallelism(self) -> float:
        return self.flops / self.depth if self.depth else float("nan")

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else float("nan")

    def to_dict(self) -> dict:
        """All sums as plain floats (no kernel list)."""
        d = {k: v for k, v in asdict(self).items() if k != "kernels"}
        d.update(flops=self.flops, bytes=self.bytes, parallelism=self.parallelism, intensity=self.intensity)
        return d

    def kernel_frame(self):
        """The kernels as a DataFrame (one row each, forward and backward costs)."""

        return pd.DataFrame([asdict(k) for k in self.kernels])


def _depth(kernels: Sequence[Kernel], attr: str) -> float:
    """Depth of kernels composed layer by layer, group by group (sequential), branch by branch
    (parallel: the deepest branch counts), kernels within a branch sequential."""
    total = 0.0
    order: list[tuple[int, str]] = []
    groups: dict[tuple[int, str], dict[str, float]] = {}
    for i, k in enumerate(kernels):
        key = (k.layer, k.group or f"#{i}")
        if key not in groups:
            groups[key] = {}
            order.append(key)
        groups[key][k.branch] = groups[key].get(k.branch, 0.0) + getattr(k, attr)
    for key in order:
        total += max(groups[key].values()) if groups[key] else 0.0
    return total


def sum_kernels(kernels: Sequence[Kernel], include_backward: bool = True) -> StepCost:
    """Sum kernels into a :class:`StepCost`. Forward flops/bytes are the kernels' ``flops`` /
    ``bytes`` (``op != "optimizer"``), backward their ``bwd_*`` (when ``include_backward``), the
    optimizer's separately. Step depth = forward depth + backward depth (the backward pass runs the
    layers in reverse, so its depth composes the same way) + optimizer depth."""
    fwd = [k for k in kernels if k.op != "optimizer"]
    opt = [k for k in kernels if k.op == "optimizer"]
    parts = {AGGREGATION: [0.0, 0.0], UPDATE: [0.0, 0.0], OTHER: [0.0, 0.0]}
    for k in kernels:
        f = k.flops + (k.bwd_flops if include_backward else 0.0)
        b = k.bytes + (k.bwd_bytes if include_backward else 0.0)
        parts[k.part][0] += f
        parts[k.part][1] += b
    d_fwd = _depth(fwd, "depth")
    d_bwd = _depth(fwd, "bwd_depth") if include_backward else 0.0
    d_opt = sum(k.depth for k in opt)
    return StepCost(
        flops_forward=sum(k.flops for k in fwd), flops_backward=sum(k.bwd_flops for k in fwd) if include_backward else 0,
        flops_optimizer=sum(k.flops for k in opt), bytes_forward=sum(k.bytes for k in fwd),
        bytes_backward=sum(k.bwd_bytes for k in fwd) if include_backward else 0,
        bytes_optimizer=sum(k.bytes for k in opt),
        flops_aggregation=parts[AGGREGATION][0], flops_update=parts[UPDATE][0], flops_other=parts[OTHER][0],
        bytes_aggregation=parts[AGGREGATION][1], bytes_update=parts[UPDATE][1], bytes_other=parts[OTHER][1],
        depth_forward=d_fwd, depth=d_fwd + d_bwd + d_opt, kernels=list(kernels))


def model_dims(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> list[int]:
    """Layer widths ``[in, hidden, ..., hidden, out]`` (``num_layers + 1`` entries), as
    :class:`studylib.models.homogeneous.HomogeneousGNN` uses them."""
    return [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]


def training_step_cost(model: str, framework: str, shapes: Sequence[LayerShape], dims: Sequence[int], *,
                       num_heads: int = 4, gin_mlp_layers: int = 2, num_train: int | None = None,
                       existing_self_loops: int = 0, include_backward: bool = True,
                       include_optimizer: bool = True) -> StepCost:
    """Work, traffic and depth of one training step of a homogeneous GNN.

    The training schemes of Besta and Hoefler (TPAMI 2024; their table of training schemes'
    work and depth, full-batch row: W = O(Lmk + Lnk^2), D = O(L log k + L log d)) differ only in
    the shapes the layers run on: :func:`full_batch_shapes` (full batch),
    :func:`expected_minibatch_shapes` or measured sampler blocks (sampled mini-batch, the
    GraphSAGE-style row), :meth:`PartitionStats.shapes` (one partition of partitioned training).

    Args:
        model, framework: see :func:`layer_kernels`.
        shapes: one :class:`LayerShape` per layer (first layer first), without self-loops.
        dims: ``num_layers + 1`` widths (:func:`model_dims`).
        num_heads: GAT heads of hidden layers (the last layer has 1).
        gin_mlp_layers: GIN's ``K``.
        num_train: rows the loss is computed on (default: all outputs of the last layer).
        existing_self_loops: self-loops already in the graph (removed before adding one per vertex).
        include_backward, include_optimizer: count the backward pass and the Adam update.

    Returns a :class:`StepCost`. Raises ``ValueError`` when ``shapes`` and ``dims`` disagree.
    """
    L = len(shapes)
    if len(dims) != L + 1:
        raise ValueError(f"dims needs num_layers + 1 = {L + 1} entries (got {len(dims)})")
    ks: list[Kernel] = []
    params = 0
    for i, s in enumerate(shapes):
        h = num_heads if (model == "gat" and i < L - 1) else 1
        ks += layer_kernels(model, framework, s, dims[i], dims[i + 1], layer=i + 1, first=(i == 0), last=(i == L - 1),
                            heads=h, gin_mlp_layers=gin_mlp_layers, existing_self_loops=existing_self_loops)
        params += layer_parameters(model, dims[i], dims[i + 1], heads=h, gin_mlp_layers=gin_mlp_layers)
    n_out = shapes[-1].n_dst
    if include_backward:
        ks += loss_kernels(n_out, num_train if num_train is not None else n_out, dims[-1])
    if include_optimizer:
        ks.append(optimizer_kernel(params))
    return sum_kernels(ks, include_backward=include_backward)


def num_parameters(model: str, dims: Sequence[int], *, num_heads: int = 4, gin_mlp_layers: int = 2) -> int:
    """Trainable parameters of a whole homogeneous model (:func:`layer_parameters` summed)."""
    L = len(dims) - 1
    return sum(layer_parameters(model, dims[i], dims[i + 1], heads=num_heads if (model == "gat" and i < L - 1) else 1,
                                gin_mlp_layers=gin_mlp_layers) for i in range(L))


# ------------------------------------------------------------------------------------------------
# Partitioned training: communication volume
# ------------------------------------------------------------------------------------------------

def partitioned_communication(model: str, framework: str, pstats: PartitionStats, dims: Sequence[int], *,
                              num_heads: int = 4, gin_mlp_layers: int = 2) -> list[dict]:
    """Bytes communicated per layer in partitioned full-batch training, from a real partition.

    Owner-computes partitioned training (Besta and Hoefler, TPAMI 2024, Sec. on distributed
    training and their table of communication volume and synchronisation per kernel): before a
    layer's aggregation, every partition receives the values its aggregation gathers from remote
    source vertices. Two predictions per layer:

    * **vertex-centric** (halo exchange, as DistDGL / DistGNN / CAGNET send them): each partition
      receives each halo vertex's gathered values once:
      ``bytes = sum_p halo_p * w * 4``;
    * **edge-centric** (the paper's Scatter and Aggregate kernels, O(mk) each): one message per
      cut edge: ``bytes = cut_edges * w * 4``;

    with ``w`` the float32 values the layer's aggregation gathers per source vertex in this
    implementation (:attr:`Kernel.src_width`: the aggregated feature width, which DGL narrows by
    transforming first, plus GAT's per-head attention term). The backward pass sends the same
    volume back when those values need a gradient (not for an aggregation of the raw input
    features). The gradient all-reduce (ring) adds ``2 (P - 1) / P * params * 4`` bytes per worker.

    Returns rows ``{layer, width, halo_bytes_forward, halo_bytes_backward, edge_bytes_forward,
    edge_bytes_backward}`` per layer plus one ``{layer: 0, allreduce_bytes}`` row.
    """
    L = len(dims) - 1
    rows = []
    shape = LayerShape(pstats.n, pstats.n, pstats.m, 1)
    for i in range(L):
        h = num_heads if (model == "gat" and i < L - 1) else 1
        ks = layer_kernels(model, framework, shape, dims[i], dims[i + 1], layer=i + 1, first=(i == 0),
                           last=(i == L - 1), heads=h, gin_mlp_layers=gin_mlp_layers)
        w = sum(k.src_width for k in ks)
        wg = sum(k.src_width for k in ks if k.src_grad)
        halo, cut = pstats.total_halo_nodes, pstats.total_cut_edges
        rows.append({"layer": i + 1, "width": w, "halo_bytes_forward": float(halo * w * FLOAT_BYTES),
                     "halo_bytes_backward": float(halo * wg * FLOAT_BYTES),
                     "edge_bytes_forward": float(cut * w * FLOAT_BYTES),
                     "edge_bytes_backward": float(cut * wg * FLOAT_BYTES)})
    P = pstats.num_parts
    params = num_parameters(model, dims, num_heads=num_heads, gin_mlp_layers=gin_mlp_layers)
    rows.append({"layer": 0, "width": 0, "allreduce_bytes": float(2 * (P - 1) / P * params * FLOAT_BYTES * P)
                 if P > 1 else 0.0})
    return rows


# ------------------------------------------------------------------------------------------------
# The paper's O-terms (constants 1)
# ------------------------------------------------------------------------------------------------

def paper_work(model: str, n: float, m: float, k: float, L: int, *, d: float = 1, K: int = 2,
               scheme: str = "full_batch", c: float | None = None) -> float:
    """The work O-term of Besta and Hoefler (TPAMI 2024) with all constants 1.

    Full batch (their table of training schemes, full-batch row, and their table of GNN models'
    work and depth, local formulations): GCN and GraphSAGE ``L m k + L n k^2``; GIN
    ``L m k + L K n k^2``; GAT (local formulation, which recomputes the transformed neighbour
    features inside the attention softmax of every edge) ``L m d k^2 + L n k^2``. Sampled
    mini-batch (GraphSAGE-style, ``c`` vertices sampled per neighbourhood): the full-batch term
    plus ``c L n k^2``. Raises ``ValueError`` for unknown models or schemes, or a missing ``c``.
    """
    if model in ("gcn", "sage"):
        w = L * m * k + L * n * k * k
    elif model == "gin":
        w = L * m * k + L * K * n * k * k
    elif model == "gat":
        w = L * m * d * k * k + L * n * k * k
    else:
        raise ValueError(f"unknown model {model!r}")
    if scheme == "full_batch":
        return float(w)
    if scheme == "minibatch":
        if c is None:
            raise ValueError("the sampled mini-batch term needs c (vertices sampled per neighbourhood)")
        return float(w + c * L * n * k * k)
    raise ValueError(f"unknown scheme {scheme!r}; choose full_batch or minibatch")


def paper_depth(k: float, d: float, L: int) -> float:
    """The depth O-term of full-batch training, ``L log k + L log d`` (Besta and Hoefler, TPAMI
    2024, table of training schemes, full-batch row), constants 1, logarithms base 2 (ceil)."""
    return float(L * (log2c(k) + log2c(d)))


def paper_communication(m: float, k: float) -> float:
    """Communication volume of one Scatter or one Aggregate kernel, ``m k`` values (Besta and
    Hoefler, TPAMI 2024, table of communication and synchronisation per GNN kernel: O(mk) each
    when every edge crosses a partition boundary); times 4 for bytes of float32."""
    return float(m * k)


# ------------------------------------------------------------------------------------------------
# Heterogeneous GNNs (RGCN, RGAT, HAN): sums over relations / metapaths
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Relation:
    """One relation (or metapath graph) of a heterogeneous graph: canonical edge type
    ``(src_type, name, dst_type)``, ``m`` edges, largest in-degree ``max_degree``."""

    src_type: str
    name: str
    dst_type: str
    m: int
    max_degree: int

    @property
    def etype(self) -> tuple[str, str, str]:
        return (self.src_type, self.name, self.dst_type)


@dataclass
class HeteroStats:
    """What the HGNN cost model needs of a heterogeneous graph: vertex counts and input feature
    widths per type (``None`` = featureless: an embedding table), the relations (RGCN, RGAT) or the
    metapath graphs (HAN), the target type and its classes and training rows."""

    num_nodes: dict[str, int]
    feature_dims: dict[str, int | None]
    relations: list[Relation]
    target: str
    num_classes: int
    num_train: int


def hetero_statistics(graph, metapaths: dict | None = None) -> HeteroStats:
    """:class:`HeteroStats` of a :class:`studylib.data.HeteroGraph`: its relations, or, when
    ``metapaths`` (name -> list of edge types) is given, the metapath-reachable graphs of the
    target type (distinct (start, end) pairs, as DGL's ``metapath_reachable_graph`` and
    :func:`studylib.models.hgnn.compose_metapath_pyg` build them; counted with scipy sparse
    products (:func:`studylib.data.edges.metapath_adjacency`), whose COO -> CSR conversion merges
    duplicate pairs). A relation's duplicate edges count once per copy (each copy sends a message
    in DGL and PyG alike)."""

    rels = []
    if metapaths is None:
        for et in graph.edge_types:
            s, d = graph.edges[et]
            deg = np.bincount(d.numpy(), minlength=graph.num_nodes[et[2]])
            rels.append(Relation(et[0], et[1], et[2], int(s.numel()), int(deg.max()) if deg.size else 0))
    else:
        t = graph.target
        for name, path in metapaths.items():
            adj = metapath_adjacency(graph, path)
            deg = np.asarray((adj != 0).sum(axis=0)).ravel()
            rels.append(Relation(t, name, t, int(adj.nnz), int(deg.max()) if deg.size else 0))
    return HeteroStats(dict(graph.num_nodes), graph.feature_dims(), rels, graph.target, int(graph.num_classes),
                       int(len(graph.train_idx)))


def _hgnn_plans(hs: HeteroStats, num_layers: int, han: bool) -> tuple[list[list[Relation]], set[str]]:
    """Per layer, the relations computed (the last layer only those into the target type; each
    earlier layer those into a type the next layer reads), as :mod:`studylib.models.hgnn` plans."""
    needed = {hs.target}
    plans = []
    for _ in range(num_layers):
        rels = [r for r in hs.relations if r.dst_type in needed]
        plans.append(rels)
        needed = needed | {r.src_type for r in rels}
    plans.reverse()
    return plans, ({hs.target} if han else needed)


def hgnn_step_cost(model: str, framework: str, hs: HeteroStats, *, hidden_dim: int, num_layers: int,
                   num_heads: int, include_backward: bool = True) -> StepCost:
    """Work, traffic and depth of one full-batch training step of the staged HGNNs of
    :mod:`studylib.models.hgnn`, as sums over relations (RGCN, RGAT) or metapaths (HAN).

    Besta and Hoefler (TPAMI 2024) treat heterogeneous models as a sum of per-relation
    message-passing terms in their table of GNN models; here every relation ``r`` (``m_r`` edges,
    ``n_s`` / ``n_d`` vertices of its source / destination type, width ``f``) contributes:

    * RGCN (Schlichtkrull et al., ESWC 2018, Eq. 2): a projection GEMM ``n_s f f`` per relation, a
      self-loop GEMM ``n_d f f`` per destination type, a mean aggregation over ``m_r`` edges
      (:func:`spmm` / :func:`gather` + :func:`scatter`), the sum over relations, bias, ReLU;
    * RGAT (heterogeneous GAT per relation, Velickovic et al. Eqs. 1-5): source and destination
      GEMMs, attention vectors, SDDMM, edge softmax and attention-weighted aggregation per
      relation, bias per relation, ELU;
    * HAN (Wang et al., WWW 2019, Eqs. 1-9): a projection per node type, node-level attention per
      metapath graph (as RGAT), semantic attention over the ``M`` metapaths (a GEMM ``M n f f``,
      tanh, mean, dot with ``q``, softmax over ``M``, weighted sum).

    Plus the input projection (a GEMM per featured type, an embedding lookup per featureless type)
    and the classifier. Kernels carry the stage of Han et al. (:attr:`Kernel.stage`), so
    predictions can be held against the stage times of ``01-hgnn-training``. Relations are
    parallel branches in the depth. Raises ``ValueError`` for unknown names.
    """
    if model not in HGNN_MODELS:
        raise ValueError(f"unknown HGNN model {model!r}; choose one of {', '.join(HGNN_MODELS)}")
    if framework not in ("dgl", "pyg"):
        raise ValueError(f"unknown framework {framework!r}; choose dgl or pyg")
    fused = framework == "dgl"
    f = hidden_dim
    han = model == "han"
    plans, first_types = _hgnn_plans(hs, num_layers, han)
    n = hs.num_nodes
    ks: list[Kernel] = []
    params = 0
    FP, NA, SF = "feature_projection", "neighbor_aggregation", "semantic_fusion"
    for t in sorted(first_types):
        w = hs.feature_dims.get(t)
        if w:
            ks.append(gemm(f"in.{t}", n[t], w, f, grad_input=False, group="input", branch=t, stage=FP))
            ks.append(elementwise(f"in.{t}.bias", n[t] * f, param_rows=n[t], group="input", branch=t, stage=FP))
            params += w * f + f
        else:
            ks.append(Kernel(f"in.{t}.embedding", "embedding", UPDATE, 0.0,
                             float(INDEX_BYTES * n[t] + 2 * FLOAT_BYTES * n[t] * f), 1, float(n[t] * f),
                             float(3 * FLOAT_BYTES * n[t] * f), 1, group="input", branch=t, stage=FP))
            params += n[t] * f
    H = num_heads
    D = f // H
    for li, rels in enumerate(plans):
        layer = li + 1
        last = li == num_layers - 1
        kw = {"layer": layer}
        dst_types = sorted({r.dst_type for r in rels})
        if model == "rgcn":
            for r in rels:
                ks.append(gemm(f"L{layer}.{r.name}.W", n[r.src_type], f, f, grad_input=True, group="proj",
                               branch=r.name, stage=FP, **kw))
                params += f * f
            for t in dst_types:
                ks.append(gemm(f"L{layer}.{t}.loop", n[t], f, f, grad_input=True, group="proj", branch=f"loop.{t}",
                               stage=FP, **kw))
            params += f * f + f
            for r in rels:
                nd = n[r.dst_type]
                if fused:
                    agg = [spmm(f"L{layer}.{r.name}.mean", n[r.src_type], nd, r.m, f, max_degree=r.max_degree,
                                mean=True, **kw)]
                else:
                    agg = [gather(f"L{layer}.{r.name}.gather", r.m, f, n_src=n[r.src_type], max_degree=r.max_degree,
                                  **kw),
                           scatter(f"L{layer}.{r.name}.scatter", r.m, nd, f, max_degree=r.max_degree, reduce="mean",
                                   **kw)]
                ks += [_with(k, group="agg", branch=r.name, stage=NA) for k in agg]
            for t in dst_types:
                k_in = sum(1 for r in rels if r.dst_type == t)
                ks.append(elementwise(f"L{layer}.{t}.sum", n[t] * f * k_in, reads=2, group="fuse", branch=t,
                                      stage=SF, **kw))
                ks.append(elementwise(f"L{layer}.{t}.bias", n[t] * f, param_rows=n[t], group="fuse", branch=t,
                                      stage=SF, **kw))
                if not last:
                    ks.append(elementwise(f"L{layer}.{t}.relu", n[t] * f, group="fuse", branch=t, stage=SF, **kw))
        else:
            if han:
                types = sorted({r.src_type for r in rels} | set(dst_types))
                for t in types:
                    ks.append(gemm(f"L{layer}.{t}.proj", n[t], f, f, grad_input=True, group="proj", branch=t,
                                   stage=FP, **kw))
                    ks.append(elementwise(f"L{layer}.{t}.proj.bias", n[t] * f, param_rows=n[t], group="proj",
                                          branch=t, stage=FP, **kw))
                params += f * f + f
            for r in rels:
                ns_, nd = n[r.src_type], n[r.dst_type]
                b = r.name
                if not han:
                    ks.append(gemm(f"L{layer}.{b}.fc_src", ns_, f, f, grad_input=True, group="proj", branch=b,
                                   stage=FP, **kw))
                    ks.append(gemm(f"L{layer}.{b}.fc_dst", nd, f, f, grad_input=True, group="proj", branch=b,
                                   stage=FP, **kw))
                    params += 2 * f * f + 3 * f
                else:
                    params += 2 * f
                for who, rows in (("el", ns_), ("er", nd)):
                    ks.append(Kernel(f"L{layer}.{b}.{who}", "elementwise", UPDATE, float(2 * rows * f),
                                     float(FLOAT_BYTES * (rows * f + f + rows * H)), 1 + log2c(D), float(4 * rows * f),
                                     float(FLOAT_BYTES * (2 * rows * f + rows * H + f)), 1 + log2c(rows),
                                     group="proj", branch=b, stage=FP, **kw))
                agg = [sddmm_add(f"L{layer}.{b}.sddmm", r.m, ns_, nd, H, fused=fused, max_degree=r.max_degree, **kw),
                       elementwise(f"L{layer}.{b}.leaky_relu", r.m * H, part=AGGREGATION, **kw),
                       edge_softmax(f"L{layer}.{b}.softmax", r.m, nd, H, max_degree=r.max_degree, fused=fused, **kw)]
                agg += attention_spmm(f"L{layer}.{b}.agg", ns_, nd, r.m, H, D, max_degree=r.max_degree, fused=fused,
                                      **kw)
                ks += [_with(k, group="agg", branch=b, stage=NA) for k in agg]
            for t in dst_types:
                into = [r for r in rels if r.dst_type == t]
                M = len(into)
                if not han:
                    ks.append(elementwise(f"L{layer}.{t}.bias_sum", n[t] * f * M, reads=2, param_rows=n[t],
                                          group="fuse", branch=t, stage=SF, **kw))
                    if not last:
                        ks.append(elementwise(f"L{layer}.{t}.elu", n[t] * f, flops_per=2, group="fuse", branch=t,
                                              stage=SF, **kw))
                else:
                    nt = n[t]
                    ks.append(elementwise(f"L{layer}.{t}.relu", M * nt * f, group="fuse", branch=t, stage=SF, **kw))
                    ks.append(Kernel(f"L{layer}.{t}.stack", "elementwise", UPDATE, 0.0, float(2 * FLOAT_BYTES * M * nt * f),
                                     1, 0.0, float(2 * FLOAT_BYTES * M * nt * f), 1, group="fuse", branch=t, stage=SF,
                                     layer=layer))
                    ks.append(gemm(f"L{layer}.{t}.k_lin", M * nt, f, f, grad_input=True, group="fuse", branch=t,
                                   stage=SF, **kw))
                    ks.append(elementwise(f"L{layer}.{t}.k_lin.bias_tanh", M * nt * f, flops_per=2, param_rows=M * nt,
                                          group="fuse", branch=t, stage=SF, **kw))
                    ks.append(Kernel(f"L{layer}.{t}.semantic_score", "reduce", UPDATE, float(M * nt * f + 2 * M * f),
                                     float(FLOAT_BYTES * (M * nt * f + M * f)), 1 + log2c(nt) + 1 + log2c(f),
                                     float(M * nt * f + 2 * M * f), float(FLOAT_BYTES * 2 * M * nt * f), 1,
                                     group="fuse", branch=t, stage=SF, layer=layer))
                    ks.append(Kernel(f"L{layer}.{t}.beta_sum", "elementwise", UPDATE, float(2 * M * nt * f),
                                     float(FLOAT_BYTES * (M * nt * f + nt * f)), 1 + log2c(M),
                                     float(2 * M * nt * f), float(FLOAT_BYTES * 3 * M * nt * f), 1 + log2c(nt),
                                     group="fuse", branch=t, stage=SF, layer=layer))
                    params += f * f + 2 * f
    nt = n[hs.target]
    C = hs.num_classes
    ks.append(gemm("classifier", nt, f, C, grad_input=True, stage=FP))
    ks.append(elementwise("classifier.bias", nt * C, param_rows=nt, stage=FP))
    params += f * C + C
    if include_backward:
        ks += loss_kernels(nt, hs.num_train, C)
        ks.append(optimizer_kernel(params))
    return sum_kernels(ks, include_backward=include_backward)


def stage_costs(cost: StepCost, *, backward: bool = False) -> dict[str, dict[str, float]]:
    """Forward (or, with ``backward``, forward + backward) flops and bytes per HGNN stage of a
    :func:`hgnn_step_cost` result: ``{stage: {"flops": .., "bytes": ..}}``."""
    out: dict[str, dict[str, float]] = {}
    for k in cost.kernels:
        if not k.stage:
            continue
        d = out.setdefault(k.stage, {"flops": 0.0, "bytes": 0.0})
        d["flops"] += k.flops + (k.bwd_flops if backward else 0.0)
        d["bytes"] += k.bytes + (k.bwd_bytes if backward else 0.0)
    return out
