"""Heterogeneous GNNs (RGCN, RGAT, HAN) in DGL and PyG, with the four HGNN stages marked.

Each model exists twice per framework:

* a **staged** model (:class:`HGNN`, built by :func:`build_model`), written from the frameworks'
  own primitives (DGL: ``dgl.ops`` SpMM/SDDMM kernels and ``edge_softmax``; PyG:
  ``torch_geometric.utils.scatter`` / ``softmax``) so that every layer runs as three consecutive
  stage regions of Han et al., *Characterizing and Understanding HGNN Training on GPUs*
  (ACM TACO 2025, Sec. 2.2):

  ``semantic_graph_build``  :meth:`HGNN.build_semantic_graphs`: the relation graphs (RGCN, RGAT)
                            or metapath-reachable graphs (HAN) that layers aggregate over
  ``feature_projection``    all dense transforms of a layer (per relation / node type), also the
                            input projection before layer 1 and the classifier after the last
  ``neighbor_aggregation``  all message passing on the graph: SpMM, SDDMM, edge softmax,
                            gather/scatter
  ``semantic_fusion``       combining per-relation / per-metapath results (sum + self-loop + bias +
                            activation + dropout for RGCN/RGAT; semantic attention for HAN)

  The DGL and PyG staged models of one architecture share one framework-independent parameter
  layout (the base layers below), so ``pyg.load_state_dict(dgl.state_dict())`` works and the same
  seed gives the same initial weights in both frameworks; only the neighbor aggregation differs.

* a **reference** model (:func:`build_reference_model`) that computes the same function with the
  frameworks' ready-made layers (DGL ``HeteroGraphConv`` of ``GraphConv`` / ``GATConv``; PyG
  ``RGCNConv``, ``HeteroConv`` of ``GATConv``, ``HANConv``), for checking the staged models and for
  comparing their speed. References are not stage-marked (framework layers fuse the stages);
  :meth:`ReferenceHGNN.load_from_staged` copies a staged model's weights into one.

Tensor conventions: node features are float32 ``[num_nodes, width]``; node ids int64; edge indices
int64 ``[2, E]`` (PyG) with row 0 = source; model outputs are float32 logits
``[num_target_nodes, num_classes]``.

Typical use (the same loop drives staged and reference models)::

    model = build_model("han", "dgl", graph, hidden_dim=64)
    sem = model.build_semantic_graphs(graph)          # stage: semantic_graph_build
    inputs = model.input_features(graph)
    logits = model(sem, inputs)                       # stages: projection/aggregation/fusion
    loss = F.cross_entropy(logits[graph.train_idx], graph.labels[graph.train_idx])

Mini-batch training (DGL only): :func:`sample_dgl_blocks` on the DGL semantic graph, then
``model(blocks, model.input_features(graph, nodes=block_input_nodes(blocks)))``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studylib.data.edges import coalesce_edges
from studylib.data.hetero import EdgeType, HeteroGraph
from studylib.optional import require_dgl
from studylib.timing import (
    FEATURE_PROJECTION,
    NEIGHBOR_AGGREGATION,
    SEMANTIC_FUSION,
    SEMANTIC_GRAPH_BUILD,
    stage,
)

MODELS = ("rgcn", "rgat", "han")
FRAMEWORKS = ("dgl", "pyg")

#: Negative slope of the LeakyReLU in GAT / HAN attention scores.
NEGATIVE_SLOPE = 0.2

#: How to get a DGL that can put graphs on a GPU (the package index's wheel is a CPU build).
DGL_CUDA_FIX = (
    "install DGL's CUDA wheel from DGL's own wheel index, matching torch 2.2 and your CUDA "
    "version, e.g. `pip install dgl==2.1.0 -f https://data.dgl.ai/wheels/torch-2.2/cu121/repo.html`"
    " (see https://www.dgl.ai/pages/start.html)"
)


def _key(etype: EdgeType) -> str:
    """Module-dict key of a canonical edge type: ``"src__rel__dst"`` (PyG's convention)."""
    return "__".join(etype)


def _check_choice(what: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(map(repr, choices))}")
    return value


# ----------------------------------------------------------------------------------------------
# Semantic graphs
# ----------------------------------------------------------------------------------------------


@dataclass
class PygSemanticGraph:
    """The structure a PyG staged model aggregates over.

    Attributes:
        edge_index: per canonical edge type, an int64 tensor ``[2, E]`` (row 0: source ids, row 1:
            destination ids, both 0-based within their node type). RGCN/RGAT: every edge type of
            the graph; HAN: one ``(target, metapath name, target)`` type per metapath, without
            duplicate edges.
        num_nodes: node count per node type.
    """

    edge_index: dict[EdgeType, Tensor]
    num_nodes: dict[str, int]

    @property
    def edge_index_dict(self) -> dict[EdgeType, Tensor]:
        """Alias of :attr:`edge_index` (the name PyG layers take)."""
        return self.edge_index

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.edge_index)

    def to(self, device) -> PygSemanticGraph:
        return PygSemanticGraph({k: v.to(device) for k, v in self.edge_index.items()}, dict(self.num_nodes))


@dataclass
class PygHomogeneousGraph:
    """The homogeneous form of a heterogeneous graph that PyG's ``RGCNConv`` takes.

    Node types are laid out one after another in :attr:`node_types` order (type ``t`` occupies rows
    ``offset[t] : offset[t] + num_nodes[t]``); ``edge_type[e]`` is the index of edge ``e``'s relation
    in :attr:`edge_types`.

    Attributes:
        edge_index: int64 ``[2, E_total]`` in global node ids.
        edge_type: int64 ``[E_total]`` relation index per edge.
        node_types: node types in layout order; edge_types: relations in index order.
        offset, num_nodes: per node type.
    """

    edge_index: Tensor
    edge_type: Tensor
    node_types: list[str]
    edge_types: list[EdgeType]
    offset: dict[str, int]
    num_nodes: dict[str, int]

    def to(self, device) -> PygHomogeneousGraph:
        return PygHomogeneousGraph(
            self.edge_index.to(device), self.edge_type.to(device), list(self.node_types),
            list(self.edge_types), dict(self.offset), dict(self.num_nodes),
        )


def _dgl_to(g, device):
    """Move a DGL graph to ``device``; a clear ``RuntimeError`` when DGL or torch cannot use it."""
    device = torch.device(device)
    if device.type == "cpu":
        return g
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"cannot put the DGL semantic graph on {device}: torch sees no CUDA device "
            "(torch.cuda.is_available() is False); run on a GPU machine or use device='cpu'"
        )
    try:
        return g.to(device)
    except Exception as exc:  # the index's DGL wheel is built without CUDA
        raise RuntimeError(
            f"cannot put the DGL semantic graph on {device}: this DGL build has no CUDA support "
            f"({type(exc).__name__}: {exc}). Fix: {DGL_CUDA_FIX}; or use device='cpu', or the PyG "
            "models"
        ) from exc


def build_dgl_relation_graph(graph: HeteroGraph, edge_types: Sequence[EdgeType] | None = None, device="cpu"):
    """DGL heterograph of ``edge_types`` (default: all edge types of ``graph``), with all node types
    and their counts, sparse formats created (COO, CSR, CSC) and moved to ``device``.

    Raises ``RuntimeError`` for a CUDA device with a CPU-only DGL build (naming the fix).
    """
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    ets = list(graph.edge_types if edge_types is None else edge_types)
    g = dgl.heterograph({et: graph.edges[et] for et in ets}, num_nodes_dict=dict(graph.num_nodes))
    g.create_formats_()
    return _dgl_to(g, device)


def build_dgl_metapath_graph(graph: HeteroGraph, metapaths: dict[str, list[EdgeType]], device="cpu"):
    """DGL heterograph with one edge type ``(target, name, target)`` per metapath: ``u -> v`` iff a
    path of the metapath's relations leads from ``u`` to ``v`` (duplicates dropped, self-loops
    kept), built with ``dgl.metapath_reachable_graph``; formats created, moved to ``device``."""
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    _validate_metapaths(graph, metapaths)
    used = sorted({et for path in metapaths.values() for et in path})
    g = dgl.heterograph({et: graph.edges[et] for et in used}, num_nodes_dict=dict(graph.num_nodes))
    t = graph.target
    data = {}
    for name, path in metapaths.items():
        mg = dgl.metapath_reachable_graph(g, list(path))
        data[(t, name, t)] = mg.edges(order="srcdst")
    sem = dgl.heterograph(data, num_nodes_dict={t: graph.num_nodes[t]})
    sem.create_formats_()
    return _dgl_to(sem, device)


def _dst_sorted(graph: HeteroGraph, et: EdgeType) -> Tensor:
    """``[2, E]`` edge index of relation ``et`` sorted by destination, then source (duplicate edges
    kept). Destination order makes PyG's scatter to destinations several times faster on CPU
    (sequential writes) than the loaders' order."""
    from torch_geometric.utils import sort_edge_index  # lazy: PyG's import is heavy and loads its optional extensions

    s, d = graph.edges[et]
    n = max(graph.num_nodes[et[0]], graph.num_nodes[et[2]])
    return sort_edge_index(torch.stack([s, d]).long(), num_nodes=n, sort_by_row=False)


def build_pyg_relation_graph(graph: HeteroGraph, edge_types: Sequence[EdgeType] | None = None, device="cpu"):
    """:class:`PygSemanticGraph` of ``edge_types`` (default: all) on ``device``, each relation's
    edges sorted by destination then source."""
    ets = list(graph.edge_types if edge_types is None else edge_types)
    ei = {et: _dst_sorted(graph, et) for et in ets}
    return PygSemanticGraph(ei, dict(graph.num_nodes)).to(device)


def compose_metapath_pyg(graph: HeteroGraph, path: Sequence[EdgeType]) -> Tensor:
    """Metapath-reachable edges of ``path`` (edge types from the target type back to it) as int64
    ``[2, E]``, sorted by source then destination, each pair once: ``u -> v`` iff a walk along the
    relations of ``path`` leads from ``u`` to ``v`` (the boolean product of the relations'
    adjacency matrices, as ``dgl.metapath_reachable_graph`` defines it; self-loops kept).

    Composed as PyG's ``AddMetaPaths`` composes it, by sparse-sparse products of ``EdgeIndex``
    (``EdgeIndex.matmul`` -> ``torch.matmul`` on CSR), one hop at a time. Departure from
    ``AddMetaPaths``: every operand is coalesced first (:func:`studylib.data.edges.coalesce_edges`),
    since ``AddMetaPaths`` hands a relation's edges to the product as given and a relation with
    duplicate edges makes the CSR product undefined (wrong entries, then a crash, on some CPUs).
    """
    from torch_geometric import EdgeIndex  # lazy: PyG's import is heavy and loads its optional extensions

    def operand(edge_index: Tensor, size: tuple[int, int], what: str):
        ei = coalesce_edges(edge_index, size, what)
        return EdgeIndex(ei, sparse_size=size, sort_order="row")

    def rel_size(et: EdgeType) -> tuple[int, int]:
        return (graph.num_nodes[et[0]], graph.num_nodes[et[2]])

    first = path[0]
    size = rel_size(first)
    acc = operand(torch.stack(graph.edges[first]), size, f"relation {first}")
    for et in path[1:]:
        other = operand(torch.stack(graph.edges[et]), rel_size(et), f"relation {et}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            out, _ = acc.matmul(other)
        size = (size[0], rel_size(et)[1])
        acc = operand(out.as_tensor(), size, f"metapath product up to {et}")
    return acc.as_tensor().long()


def build_pyg_metapath_graph(graph: HeteroGraph, metapaths: dict[str, list[EdgeType]], device="cpu"):
    """:class:`PygSemanticGraph` with one ``(target, name, target)`` edge type per metapath
    (:func:`compose_metapath_pyg`: the metapath-reachable graph, no duplicate edges, as
    ``dgl.metapath_reachable_graph`` builds it), sorted by destination then source."""
    from torch_geometric.utils import sort_edge_index  # lazy: PyG's import is heavy and loads its optional extensions

    _validate_metapaths(graph, metapaths)
    t = graph.target
    n = graph.num_nodes[t]
    ei = {}
    for name, path in metapaths.items():
        edge_index = compose_metapath_pyg(graph, [tuple(et) for et in path])
        ei[(t, name, t)] = sort_edge_index(edge_index, num_nodes=n, sort_by_row=False)
    return PygSemanticGraph(ei, {t: n}).to(device)


def build_pyg_homogeneous_graph(graph: HeteroGraph, edge_types: Sequence[EdgeType], device="cpu"):
    """:class:`PygHomogeneousGraph`: all node types stacked in sorted order, relations indexed in
    ``edge_types`` order, edges grouped by relation and sorted by destination within one (the form
    PyG's ``RGCNConv`` takes)."""
    node_types = graph.node_types
    offset, o = {}, 0
    for nt in node_types:
        offset[nt] = o
        o += graph.num_nodes[nt]
    eis, types = [], []
    for i, et in enumerate(edge_types):
        s, d = _dst_sorted(graph, et)
        eis.append(torch.stack([s + offset[et[0]], d + offset[et[2]]]))
        types.append(torch.full((s.numel(),), i, dtype=torch.long))
    return PygHomogeneousGraph(
        torch.cat(eis, 1), torch.cat(types), node_types, list(edge_types), offset, dict(graph.num_nodes)
    ).to(device)


def _validate_metapaths(graph: HeteroGraph, metapaths: dict[str, list[EdgeType]]) -> None:
    if not metapaths:
        raise ValueError(
            f"HAN needs at least one metapath (graph {graph.name!r} has none; pass metapaths="
            "{name: [edge types from target ... back to target]})"
        )
    t = graph.target
    for name, path in metapaths.items():
        path = [tuple(et) for et in path]
        if not path:
            raise ValueError(f"metapath {name!r} is empty")
        for et in path:
            if et not in graph.edges:
                raise ValueError(f"metapath {name!r}: edge type {et} is not in graph {graph.name!r}")
        if path[0][0] != t or path[-1][2] != t:
            raise ValueError(f"metapath {name!r} must start and end at the target type {t!r} (got {path})")
        for a, b in zip(path, path[1:]):
            if a[2] != b[0]:
                raise ValueError(f"metapath {name!r}: {a} does not connect to {b}")


def sample_dgl_blocks(sem, seed_nodes: dict[str, Tensor], fanouts: Sequence[int]):
    """Sample one mini-batch on a DGL semantic graph with ``dgl.dataloading.NeighborSampler``.

    Args:
        sem: the DGL semantic graph of :meth:`HGNN.build_semantic_graphs`.
        seed_nodes: output node ids per type (e.g. ``{target: batch_ids}``).
        fanouts: neighbors per relation and layer, first layer first (``-1``: all).

    Returns ``(input_nodes, output_nodes, blocks)`` as DGL's samplers do (``blocks``: one per layer).
    """
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    sampler = dgl.dataloading.NeighborSampler(list(fanouts))
    return sampler.sample_blocks(sem, seed_nodes)


def block_input_nodes(blocks) -> dict[str, Tensor]:
    """Original node ids (int64) per type of the first block's source nodes: pass them as
    ``nodes=`` to :meth:`HGNN.input_features`."""
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    b = blocks[0]
    return {t: b.srcnodes[t].data[dgl.NID] for t in b.srctypes}


# ----------------------------------------------------------------------------------------------
# Neighbor-aggregation primitives per framework
# ----------------------------------------------------------------------------------------------



def head_dim(hidden_dim: int, num_heads: int) -> int:
    """Width of one attention head, ``hidden_dim // num_heads``: the heads of RGAT and HAN split the
    hidden width (concatenated after aggregation). Raises ``ValueError`` naming both when
    ``num_heads`` does not divide ``hidden_dim``."""
    if num_heads <= 0 or hidden_dim % num_heads:
        raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})")
    return hidden_dim // num_heads


class _DGLOps:
    """Graph queries and message-passing kernels on a DGL heterograph or block."""

    framework = "dgl"

    @staticmethod
    def relations(g) -> list[EdgeType]:
        return g.canonical_etypes

    @staticmethod
    def num_dst(g, ntype: str) -> int:
        return g.num_dst_nodes(ntype)

    @staticmethod
    def dst_types(g) -> list[str]:
        return g.dsttypes

    @staticmethod
    def mean(g, rel: EdgeType, z_src: Tensor, n_dst: int) -> Tensor:
        """``out[v] = mean_{u -> v} z_src[u]`` (0 for no in-edges): SpMM ``copy_u`` + ``mean``."""
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        return dgl.ops.copy_u_mean(g[rel], z_src)

    @staticmethod
    def attention(g, rel: EdgeType, z_src: Tensor, el: Tensor, er: Tensor, n_dst: int) -> Tensor:
        """GAT aggregation: ``e = LeakyReLU(el[u] + er[v])`` (SDDMM ``u_add_v``), ``a = edge_softmax``
        over each destination's in-edges, ``out[v] = sum a * z_src[u]`` (SpMM ``u_mul_e_sum``).
        ``z_src [Ns, H, D]``, ``el [Ns, H, 1]``, ``er [Nd, H, 1]`` -> ``[Nd, H, D]``."""
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)
        from dgl.nn.functional import (
            edge_softmax,  # lazy: DGL is a heavy optional dependency (studylib imports without it)
        )

        rg = g[rel]
        e = F.leaky_relu(dgl.ops.u_add_v(rg, el, er), NEGATIVE_SLOPE)
        a = edge_softmax(rg, e)
        return dgl.ops.u_mul_e_sum(rg, z_src, a)


class _PyGOps:
    """Graph queries and message passing on a :class:`PygSemanticGraph` (gather + scatter)."""

    framework = "pyg"

    @staticmethod
    def relations(g: PygSemanticGraph) -> list[EdgeType]:
        return list(g.edge_index)

    @staticmethod
    def num_dst(g: PygSemanticGraph, ntype: str) -> int:
        return g.num_nodes[ntype]

    @staticmethod
    def dst_types(g: PygSemanticGraph) -> list[str]:
        return list(g.num_nodes)

    @staticmethod
    def mean(g: PygSemanticGraph, rel: EdgeType, z_src: Tensor, n_dst: int) -> Tensor:
        from torch_geometric.utils import scatter  # lazy: PyG's import is heavy and loads its optional extensions

        src, dst = g.edge_index[rel]
        return scatter(z_src.index_select(0, src), dst, dim=0, dim_size=n_dst, reduce="mean")

    @staticmethod
    def attention(g: PygSemanticGraph, rel: EdgeType, z_src: Tensor, el: Tensor, er: Tensor, n_dst: int) -> Tensor:
        from torch_geometric.utils import (  # lazy: PyG's import is heavy and loads its optional extensions
            scatter,
            softmax,
        )

        src, dst = g.edge_index[rel]
        e = F.leaky_relu(el.index_select(0, src) + er.index_select(0, dst), NEGATIVE_SLOPE)
        a = softmax(e, dst, num_nodes=n_dst, dim=0)
        return scatter(z_src.index_select(0, src) * a, dst, dim=0, dim_size=n_dst, reduce="sum")


_OPS = {"dgl": _DGLOps, "pyg": _PyGOps}


# ----------------------------------------------------------------------------------------------
# Framework-independent parameters: input projection and layers
# ----------------------------------------------------------------------------------------------


class InputProjection(nn.Module):
    """Input feature projection to ``hidden_dim`` per node type (Han et al.'s first projection).

    Featured type ``t``: ``Linear(in_t, hidden)`` on float32 ``[n, in_t]`` features; featureless
    type: ``Embedding(n_t, hidden)`` on int64 node ids ``[n]``. ``forward(inputs)`` maps a dict of
    such tensors to float32 ``[n, hidden]`` per type (types absent from ``inputs`` are skipped).
    """

    def __init__(self, feature_dims: dict[str, int | None], num_nodes: dict[str, int], hidden_dim: int):
        super().__init__()
        self.linears = nn.ModuleDict()
        self.embeddings = nn.ModuleDict()
        for t in sorted(feature_dims):
            if feature_dims[t] is None:
                self.embeddings[t] = nn.Embedding(num_nodes[t], hidden_dim)
            else:
                self.linears[t] = nn.Linear(feature_dims[t], hidden_dim)

    def forward(self, inputs: dict[str, Tensor], types=None) -> dict[str, Tensor]:
        out = {}
        for t, x in inputs.items():
            if types is not None and t not in types:
                continue
            out[t] = self.linears[t](x) if t in self.linears else self.embeddings[t](x)
        return out


@dataclass
class _LayerPlan:
    """What one layer computes: relations aggregated, destination types and their node counts."""

    relations: list[EdgeType]
    n_dst: dict[str, int]


class _RGCNLayer(nn.Module):
    """RGCN layer (Schlichtkrull et al., ESWC 2018, Eq. 2, no basis decomposition):

    ``h'_v = W_0 h_v + sum_{r into type(v)} mean_{u in N_r(v)} W_r h_u + b`` (then ReLU and dropout
    unless last). Parameters: ``weight[r]`` ``[in, out]`` per relation, shared ``loop_weight``
    ``[in, out]``, ``bias [out]``.
    """

    def __init__(self, in_dim, out_dim, relations, *, last, dropout):
        super().__init__()
        self.weight = nn.ParameterDict({_key(r): nn.Parameter(torch.empty(in_dim, out_dim)) for r in relations})
        self.loop_weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.last, self.dropout = last, dropout
        for w in self.weight.values():
            nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain("relu"))
        nn.init.xavier_uniform_(self.loop_weight, gain=nn.init.calculate_gain("relu"))

    def project(self, h, plan):
        z = {r: h[r[0]] @ self.weight[_key(r)] for r in plan.relations}
        loop = {t: h[t][:n] @ self.loop_weight for t, n in plan.n_dst.items()}
        return z, loop

    def aggregate(self, ops, g, plan, state):
        z, _ = state
        return {r: ops.mean(g, r, z[r], plan.n_dst[r[2]]) for r in plan.relations}

    def fuse(self, plan, state, agg):
        _, loop = state
        out = {}
        for t in plan.n_dst:
            h = loop[t]
            for r in plan.relations:
                if r[2] == t:
                    h = h + agg[r]
            h = h + self.bias
            if not self.last:
                h = F.dropout(F.relu(h), self.dropout, self.training)
            out[t] = h
        return out


class _RGATLayer(nn.Module):
    """RGAT layer as a heterogeneous GAT: per relation ``r`` a GAT (Velickovic et al., ICLR 2018,
    Eqs. 3-5) on the bipartite relation graph, with separate source/destination projections as in
    DGL/PyG ``GATConv`` on bipartite input::

        z_u = h_u W_r^src, z_v = h_v W_r^dst                       (H heads of out/H)
        e_uv = LeakyReLU_0.2(<a_r^src, z_u> + <a_r^dst, z_v>)       per head
        alpha_uv = softmax over v's in-edges of r
        out_r(v) = concat_heads sum_u alpha_uv z_u + b_r
        h'_v = sum_{r into type(v)} out_r(v)                        (then ELU and dropout unless last)

    (the heterogeneous-GAT form of relational attention; cf. Busbridge et al., *Relational Graph
    Attention Networks*, arXiv 1904.05811). A node type with no relation into it gets zeros.
    """

    def __init__(self, in_dim, out_dim, relations, *, num_heads, last, dropout):
        super().__init__()
        self.H, self.D = num_heads, head_dim(out_dim, num_heads)
        keys = [_key(r) for r in relations]
        self.fc_src = nn.ModuleDict({k: nn.Linear(in_dim, out_dim, bias=False) for k in keys})
        self.fc_dst = nn.ModuleDict({k: nn.Linear(in_dim, out_dim, bias=False) for k in keys})
        self.attn_src = nn.ParameterDict({k: nn.Parameter(torch.empty(1, self.H, self.D)) for k in keys})
        self.attn_dst = nn.ParameterDict({k: nn.Parameter(torch.empty(1, self.H, self.D)) for k in keys})
        self.bias = nn.ParameterDict({k: nn.Parameter(torch.zeros(out_dim)) for k in keys})
        self.out_dim, self.last, self.dropout = out_dim, last, dropout
        gain = nn.init.calculate_gain("relu")
        for k in keys:
            nn.init.xavier_normal_(self.fc_src[k].weight, gain=gain)
            nn.init.xavier_normal_(self.fc_dst[k].weight, gain=gain)
            nn.init.xavier_normal_(self.attn_src[k], gain=gain)
            nn.init.xavier_normal_(self.attn_dst[k], gain=gain)

    def project(self, h, plan):
        state = {}
        for r in plan.relations:
            k = _key(r)
            zs = self.fc_src[k](h[r[0]]).view(-1, self.H, self.D)
            zd = self.fc_dst[k](h[r[2]][: plan.n_dst[r[2]]]).view(-1, self.H, self.D)
            el = (zs * self.attn_src[k]).sum(-1, keepdim=True)
            er = (zd * self.attn_dst[k]).sum(-1, keepdim=True)
            state[r] = (zs, el, er)
        return state

    def aggregate(self, ops, g, plan, state):
        return {r: ops.attention(g, r, *state[r], plan.n_dst[r[2]]) for r in plan.relations}

    def fuse(self, plan, state, agg):
        out = {}
        for t, n in plan.n_dst.items():
            h = None
            for r in plan.relations:
                if r[2] == t:
                    o = agg[r].reshape(n, self.out_dim) + self.bias[_key(r)]
                    h = o if h is None else h + o
            if h is None:
                h = next(iter(self.bias.values())).new_zeros(n, self.out_dim)
            if not self.last:
                h = F.dropout(F.elu(h), self.dropout, self.training)
            out[t] = h
        return out


class _HANLayer(nn.Module):
    """HAN layer (Wang et al., *Heterogeneous Graph Attention Network*, WWW 2019, Sec. 4), in the
    exact form of PyG's ``HANConv``:

    * projection (Eq. 1): ``z = proj(h)`` viewed as ``[N, H, D]`` (``proj``: ``Linear(in, hidden)``
      with bias, per node type; only the target type is used);
    * node-level attention per metapath ``phi`` (Eqs. 2-5): ``e_uv = LeakyReLU_0.2(<lin_src_phi, z_u>
      + <lin_dst_phi, z_v>)`` per head, ``alpha`` = softmax over ``v``'s in-edges of the metapath
      graph, ``out_phi(v) = ReLU(concat_heads sum_u alpha_uv z_u)``;
    * semantic attention (Eqs. 7-9): ``w_phi = <q, mean_v tanh(k_lin(out_phi(v)))>``,
      ``beta = softmax_phi(w)``, ``h'_v = sum_phi beta_phi out_phi(v)`` (then dropout unless last).

    Parameter names follow ``HANConv`` (``proj``, ``lin_src``, ``lin_dst``, ``k_lin``, ``q``).
    """

    def __init__(self, in_dim, out_dim, relations, *, node_types, num_heads, last, dropout):
        super().__init__()
        self.H, self.D = num_heads, head_dim(out_dim, num_heads)
        self.proj = nn.ModuleDict({t: nn.Linear(in_dim, out_dim) for t in node_types})
        keys = [_key(r) for r in relations]
        self.lin_src = nn.ParameterDict({k: nn.Parameter(torch.empty(1, self.H, self.D)) for k in keys})
        self.lin_dst = nn.ParameterDict({k: nn.Parameter(torch.empty(1, self.H, self.D)) for k in keys})
        self.k_lin = nn.Linear(out_dim, out_dim)
        self.q = nn.Parameter(torch.empty(1, out_dim))
        self.out_dim, self.last, self.dropout = out_dim, last, dropout
        for k in keys:
            nn.init.xavier_uniform_(self.lin_src[k])
            nn.init.xavier_uniform_(self.lin_dst[k])
        nn.init.xavier_uniform_(self.q)

    def project(self, h, plan):
        z = {t: self.proj[t](h[t]).view(-1, self.H, self.D) for t in {r[0] for r in plan.relations} | set(plan.n_dst)}
        state = {}
        for r in plan.relations:
            k = _key(r)
            zs, zd = z[r[0]], z[r[2]][: plan.n_dst[r[2]]]
            el = (zs * self.lin_src[k]).sum(-1, keepdim=True)
            er = (zd * self.lin_dst[k]).sum(-1, keepdim=True)
            state[r] = (zs, el, er)
        return state

    def aggregate(self, ops, g, plan, state):
        return {r: ops.attention(g, r, *state[r], plan.n_dst[r[2]]) for r in plan.relations}

    def fuse(self, plan, state, agg):
        out = {}
        for t, n in plan.n_dst.items():
            outs = [F.relu(agg[r].reshape(n, self.out_dim)) for r in plan.relations if r[2] == t]
            if not outs:
                h = self.q.new_zeros(n, self.out_dim)
            elif n == 0:
                h = outs[0]
            else:
                stacked = torch.stack(outs)  # [M, N, C]
                score = (self.q * torch.tanh(self.k_lin(stacked)).mean(1)).sum(-1)  # [M]
                beta = torch.softmax(score, dim=0)
                h = (beta.view(-1, 1, 1) * stacked).sum(0)
            if not self.last:
                h = F.dropout(h, self.dropout, self.training)
            out[t] = h
        return out


# ----------------------------------------------------------------------------------------------
# Staged models
# ----------------------------------------------------------------------------------------------


class _ModelBase(nn.Module):
    """What staged and reference models share: input projection, classifier, inputs, metadata."""

    name: str = ""
    framework: str = ""

    def _init_common(self, graph: HeteroGraph, framework: str, hidden_dim: int, num_layers: int,
                     num_heads: int, dropout: float, input_types: Sequence[str]) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1 (got {hidden_dim})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        self.framework = _check_choice("framework", framework, FRAMEWORKS)
        if self.framework == "dgl":
            require_dgl(f"the DGL {type(self).__name__} model")
        self.target = graph.target
        self.num_classes = graph.num_classes
        self.hidden_dim, self.num_layers, self.num_heads, self.dropout = hidden_dim, num_layers, num_heads, dropout
        dims = graph.feature_dims()
        self.input_types = sorted(input_types)
        self.input_proj = InputProjection({t: dims[t] for t in self.input_types}, graph.num_nodes, hidden_dim)

    def input_features(self, graph: HeteroGraph, device="cpu", nodes: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Model inputs per node type the model projects: float32 features ``[n, in_t]`` for
        featured types, int64 node ids ``[n]`` for featureless ones (looked up in ``nn.Embedding``).

        ``nodes`` (optional, int64 ids per type, e.g. :func:`block_input_nodes`) selects rows for a
        mini-batch; types missing from ``nodes`` are then left out.
        """
        out = {}
        for t in self.input_types:
            if nodes is not None:
                if t not in nodes:
                    continue
                ids = nodes[t].long().cpu()
                x = graph.features[t][ids] if t in graph.features else ids
            else:
                x = graph.features[t] if t in graph.features else torch.arange(graph.num_nodes[t])
            out[t] = x.to(device)
        return out


class HGNN(_ModelBase):
    """A heterogeneous GNN written from framework primitives, with Han et al.'s stages marked.

    Built by :func:`build_model`; subclasses :class:`RGCN`, :class:`RGAT`, :class:`HAN` add the
    layers. Attributes ``name`` (``"rgcn" | "rgat" | "han"``), ``framework`` (``"dgl" | "pyg"``),
    ``target``, ``num_classes``, ``input_types`` (node types with an input projection),
    ``relations`` (edge types the layers aggregate over: graph edge types, or
    ``(target, metapath name, target)`` for HAN).

    Parameters are created in a framework-independent order under ``torch.manual_seed(seed)``
    (the global RNG is restored afterwards), so the DGL and PyG builds of one model with one seed
    start from identical weights and share ``state_dict`` names and shapes.
    """

    def __init__(self, graph: HeteroGraph, framework: str, *, hidden_dim=64, num_layers=2, num_heads=4,
                 dropout=0.0, seed=0, metapaths=None):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._init_common(graph, framework, hidden_dim, num_layers, num_heads, dropout, self._input_types(graph))
            self._ops = _OPS[framework]
            self._setup(graph, metapaths)
            self.layers = nn.ModuleList(self._make_layer(i, i == num_layers - 1) for i in range(num_layers))
            self.classifier = nn.Linear(hidden_dim, graph.num_classes)

    # --- hooks for subclasses
    def _input_types(self, graph) -> list[str]:
        return graph.node_types

    def _setup(self, graph, metapaths) -> None:
        self.relations = list(graph.edge_types)

    def _make_layer(self, i: int, last: bool) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- semantic graphs
    def build_semantic_graphs(self, graph: HeteroGraph, device="cpu"):
        """Build the structure the layers aggregate over (stage ``semantic_graph_build``).

        DGL: a ``dgl.heterograph`` with the relations (RGCN/RGAT: all edge types of ``graph``; HAN:
        one ``(target, metapath name, target)`` type per metapath), formats created. PyG: a
        :class:`PygSemanticGraph`. Raises ``RuntimeError`` for a CUDA ``device`` when DGL or torch
        cannot use it (the message names the fix).
        """
        with stage(SEMANTIC_GRAPH_BUILD):
            if self.framework == "dgl":
                return build_dgl_relation_graph(graph, self.relations, device)
            return build_pyg_relation_graph(graph, self.relations, device)

    # --- forward
    def _graphs_per_layer(self, sem) -> list:
        if isinstance(sem, (list, tuple)):
            if self.framework != "dgl":
                raise TypeError("mini-batch blocks are supported for the DGL models only (PyG's "
                                "neighbor sampling needs pyg-lib or torch-sparse)")
            if len(sem) != self.num_layers:
                raise ValueError(f"got {len(sem)} blocks for a {self.num_layers}-layer model")
            return list(sem)
        return [sem] * self.num_layers

    def _plans(self, graphs) -> tuple[list[_LayerPlan], set[str]]:
        """Per layer, the relations and destination types needed for the target's output (the
        last layer only computes relations into the target type), and the node types whose input
        projection layer 1 needs."""
        ops = self._ops
        needed = {self.target}
        plans = []
        for g in reversed(graphs):
            rels = [r for r in ops.relations(g) if r[2] in needed]
            dst = [t for t in ops.dst_types(g) if t in needed]
            plans.append(_LayerPlan(rels, {t: ops.num_dst(g, t) for t in dst}))
            needed = needed | {r[0] for r in rels}
        plans.reverse()
        return plans, needed

    def forward(self, sem, inputs: dict[str, Tensor]) -> Tensor:
        """Logits float32 ``[n_target, num_classes]``.

        Args:
            sem: the semantic graph of :meth:`build_semantic_graphs` (full batch: all layers use
                it), or, DGL only, a list of ``num_layers`` blocks from a ``NeighborSampler`` run on
                it (output rows: the last block's destination target nodes).
            inputs: :meth:`input_features` (of the first block's source nodes in mini-batch mode).

        Each layer runs as three consecutive regions ``feature_projection`` ->
        ``neighbor_aggregation`` -> ``semantic_fusion``; the input projection and the classifier
        are ``feature_projection`` regions, and nothing runs outside a region. Only work that
        reaches the target's output is done: the last layer computes the relations into the target
        type only (the reference layers compute every destination type). Raises ``TypeError``/``ValueError`` for blocks given to
        a PyG model or a wrong number of blocks.
        """
        with stage(FEATURE_PROJECTION):
            graphs = self._graphs_per_layer(sem)
            plans, first_needed = self._plans(graphs)
            h = self.input_proj(inputs, first_needed)
        for layer, g, plan in zip(self.layers, graphs, plans):
            with stage(FEATURE_PROJECTION):
                state = layer.project(h, plan)
            with stage(NEIGHBOR_AGGREGATION):
                agg = layer.aggregate(self._ops, g, plan, state)
            with stage(SEMANTIC_FUSION):
                h = layer.fuse(plan, state, agg)
        with stage(FEATURE_PROJECTION):
            return self.classifier(h[self.target])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, framework={self.framework!r}, relations={len(self.relations)}"


class RGCN(HGNN):
    """Relational GCN (Schlichtkrull et al., ESWC 2018, Eq. 2): see :class:`_RGCNLayer`;
    aggregation with DGL ``copy_u_mean`` SpMM or PyG gather + ``scatter(reduce="mean")``."""

    name = "rgcn"

    def _make_layer(self, i, last):
        return _RGCNLayer(self.hidden_dim, self.hidden_dim, self.relations, last=last, dropout=self.dropout)


class RGAT(HGNN):
    """Relational GAT (per-relation GAT summed over relations): see :class:`_RGATLayer`;
    aggregation with DGL ``u_add_v`` SDDMM + ``edge_softmax`` + ``u_mul_e_sum`` SpMM, or PyG gather
    + ``softmax`` + ``scatter``."""

    name = "rgat"

    def _make_layer(self, i, last):
        return _RGATLayer(self.hidden_dim, self.hidden_dim, self.relations, num_heads=self.num_heads,
                          last=last, dropout=self.dropout)


class HAN(HGNN):
    """Heterogeneous Graph Attention Network (Wang et al., WWW 2019) on metapath-reachable graphs of
    the target type: see :class:`_HANLayer`. Semantic graphs: one ``(target, name, target)`` edge
    type per metapath (DGL ``metapath_reachable_graph``; PyG ``AddMetaPaths``).

    On DGL blocks the semantic attention averages over the block's destination nodes (the batch),
    so a mini-batch equals the full-batch output only when the batch holds all target nodes.
    Metapath graphs can be far denser than the input graph (ACM's PSP: ~4.3M edges from 4,019
    paper-subject edges), which makes neighbor aggregation dominate HAN's step time."""

    name = "han"

    def _input_types(self, graph):
        return [graph.target]

    def _setup(self, graph, metapaths):
        metapaths = graph.metapaths if metapaths is None else metapaths
        _validate_metapaths(graph, metapaths)
        self.metapaths = {k: [tuple(et) for et in v] for k, v in metapaths.items()}
        t = graph.target
        self.relations = [(t, name, t) for name in self.metapaths]

    def _make_layer(self, i, last):
        return _HANLayer(self.hidden_dim, self.hidden_dim, self.relations, node_types=[self.target],
                         num_heads=self.num_heads, last=last, dropout=self.dropout)

    def build_semantic_graphs(self, graph: HeteroGraph, device="cpu"):
        """Metapath-reachable graphs, one edge type ``(target, name, target)`` per metapath (stage
        ``semantic_graph_build``): a DGL heterograph or a :class:`PygSemanticGraph`."""
        with stage(SEMANTIC_GRAPH_BUILD):
            if self.framework == "dgl":
                return build_dgl_metapath_graph(graph, self.metapaths, device)
            return build_pyg_metapath_graph(graph, self.metapaths, device)


_STAGED = {"rgcn": RGCN, "rgat": RGAT, "han": HAN}


def build_model(name: str, framework: str, graph: HeteroGraph, *, hidden_dim: int = 64, num_layers: int = 2,
                num_heads: int = 4, metapaths: dict | None = None, dropout: float = 0.0, seed: int = 0) -> HGNN:
    """Build a staged heterogeneous GNN.

    Args:
        name: ``"rgcn"``, ``"rgat"`` or ``"han"``.
        framework: ``"dgl"`` or ``"pyg"``.
        graph: the :class:`HeteroGraph` (node/edge types, feature widths, classes, metapaths).
        hidden_dim: width of every hidden layer (divisible by ``num_heads`` for RGAT/HAN).
        num_layers: number of message-passing layers (>= 1).
        num_heads: attention heads (RGAT, HAN).
        metapaths: HAN only; default ``graph.metapaths``.
        dropout: feature dropout between layers.
        seed: parameter-initialisation seed (same seed -> same weights in both frameworks).

    Raises:
        ValueError: unknown model or framework (naming the choices), HAN without metapaths,
            invalid metapaths, ``hidden_dim`` not divisible by ``num_heads``, bad sizes.
    """
    _check_choice("model", name, MODELS)
    _check_choice("framework", framework, FRAMEWORKS)
    return _STAGED[name](graph, framework, hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
                         dropout=dropout, seed=seed, metapaths=metapaths)


# ----------------------------------------------------------------------------------------------
# Reference models: the frameworks' own layers
# ----------------------------------------------------------------------------------------------


class ReferenceHGNN(_ModelBase):
    """The same model written with the framework's own layers (not stage-marked).

    Same interface as :class:`HGNN` (``build_semantic_graphs`` / ``input_features`` / ``forward``),
    same input projection and classifier. :meth:`load_from_staged` copies a staged model's weights;
    the reference then computes the same function (up to float rounding).
    """

    def __init__(self, graph: HeteroGraph, framework: str, *, hidden_dim=64, num_layers=2, num_heads=4,
                 dropout=0.0, seed=0, metapaths=None):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._init_common(graph, framework, hidden_dim, num_layers, num_heads, dropout, self._input_types(graph))
            self._setup(graph, metapaths)
            self._build()
            self.classifier = nn.Linear(hidden_dim, graph.num_classes)

    def _input_types(self, graph):
        return graph.node_types

    def _setup(self, graph, metapaths):
        self.relations = list(graph.edge_types)

    def _build(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def build_semantic_graphs(self, graph: HeteroGraph, device="cpu"):
        """As :meth:`HGNN.build_semantic_graphs` (PyG RGCN: a :class:`PygHomogeneousGraph`)."""
        with stage(SEMANTIC_GRAPH_BUILD):
            if self.framework == "dgl":
                return build_dgl_relation_graph(graph, self.relations, device)
            return build_pyg_relation_graph(graph, self.relations, device)

    def _copy_common(self, staged: HGNN) -> None:
        if staged.name != self.name:
            raise ValueError(f"cannot load a staged {staged.name!r} model into a {self.name!r} reference")
        self.input_proj.load_state_dict(staged.input_proj.state_dict())
        self.classifier.load_state_dict(staged.classifier.state_dict())

    @torch.no_grad()
    def load_from_staged(self, staged: HGNN) -> ReferenceHGNN:
        """Copy the weights of a staged model of the same architecture and sizes; returns self."""
        raise NotImplementedError  # pragma: no cover

    def _graphs_per_layer(self, sem):
        if isinstance(sem, (list, tuple)):
            if self.framework != "dgl":
                raise TypeError("mini-batch blocks are supported for the DGL models only")
            if len(sem) != self.num_layers:
                raise ValueError(f"got {len(sem)} blocks for a {self.num_layers}-layer model")
            return list(sem)
        return [sem] * self.num_layers


class _DGLRGCNReference(ReferenceHGNN):
    """DGL: ``HeteroGraphConv({rel: GraphConv(norm="right", bias=False)}, aggregate="sum")`` +
    shared self-loop ``Linear`` + bias per layer (ReLU + dropout between layers)."""

    name = "rgcn"

    def _build(self):
        from dgl.nn import (  # lazy: DGL is a heavy optional dependency (studylib imports without it)
            GraphConv,
            HeteroGraphConv,
        )

        h = self.hidden_dim
        self.convs = nn.ModuleList(
            HeteroGraphConv({r: GraphConv(h, h, norm="right", weight=True, bias=False, allow_zero_in_degree=True)
                             for r in self.relations}, aggregate="sum")
            for _ in range(self.num_layers)
        )
        self.loops = nn.ModuleList(nn.Linear(h, h, bias=False) for _ in range(self.num_layers))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(h)) for _ in range(self.num_layers))

    @torch.no_grad()
    def load_from_staged(self, staged):
        self._copy_common(staged)
        for conv, loop, bias, layer in zip(self.convs, self.loops, self.biases, staged.layers):
            for r in self.relations:
                conv._get_module(r).weight.copy_(layer.weight[_key(r)])
            loop.weight.copy_(layer.loop_weight.t())
            bias.copy_(layer.bias)
        return self

    def forward(self, sem, inputs):
        graphs = self._graphs_per_layer(sem)
        h = self.input_proj(inputs)
        for i, g in enumerate(graphs):
            out = self.convs[i](g, h)
            new = {}
            for t in g.dsttypes:
                if t not in h:
                    continue
                x = self.loops[i](h[t][: g.num_dst_nodes(t)]) + self.biases[i]
                if t in out:
                    x = x + out[t]
                if i < self.num_layers - 1:
                    x = F.dropout(F.relu(x), self.dropout, self.training)
                new[t] = x
            h = new
        return self.classifier(h[self.target])


class _DGLRGATReference(ReferenceHGNN):
    """DGL: ``HeteroGraphConv({rel: GATConv((h, h), h // H, H, allow_zero_in_degree=True)},
    aggregate="sum")`` per layer (ELU + dropout between layers)."""

    name = "rgat"

    def _build(self):
        from dgl.nn import (  # lazy: DGL is a heavy optional dependency (studylib imports without it)
            GATConv,
            HeteroGraphConv,
        )

        h, H = self.hidden_dim, self.num_heads
        head_dim(h, H)
        self.convs = nn.ModuleList(
            HeteroGraphConv({r: GATConv((h, h), h // H, H, allow_zero_in_degree=True) for r in self.relations},
                            aggregate="sum")
            for _ in range(self.num_layers)
        )

    @torch.no_grad()
    def load_from_staged(self, staged):
        self._copy_common(staged)
        for conv, layer in zip(self.convs, staged.layers):
            for r in self.relations:
                m, k = conv._get_module(r), _key(r)
                m.fc_src.weight.copy_(layer.fc_src[k].weight)
                m.fc_dst.weight.copy_(layer.fc_dst[k].weight)
                m.attn_l.copy_(layer.attn_src[k])
                m.attn_r.copy_(layer.attn_dst[k])
                m.bias.copy_(layer.bias[k])
        return self

    def forward(self, sem, inputs):
        graphs = self._graphs_per_layer(sem)
        h = self.input_proj(inputs)
        for i, g in enumerate(graphs):
            out = self.convs[i](g, h)
            new = {}
            for t, x in out.items():
                x = x.reshape(x.shape[0], self.hidden_dim)
                if i < self.num_layers - 1:
                    x = F.dropout(F.elu(x), self.dropout, self.training)
                new[t] = x
            h = new
        return self.classifier(h[self.target])


class _PyGRGCNReference(ReferenceHGNN):
    """PyG: ``RGCNConv(h, h, num_relations=R, aggr="mean")`` on the homogeneous form (all node types
    stacked; :class:`PygHomogeneousGraph`), ReLU + dropout between layers."""

    name = "rgcn"

    def _build(self):
        from torch_geometric.nn import RGCNConv  # lazy: PyG's import is heavy and loads its optional extensions

        h = self.hidden_dim
        self.convs = nn.ModuleList(RGCNConv(h, h, num_relations=len(self.relations), aggr="mean")
                                   for _ in range(self.num_layers))

    def build_semantic_graphs(self, graph, device="cpu"):
        with stage(SEMANTIC_GRAPH_BUILD):
            return build_pyg_homogeneous_graph(graph, self.relations, device)

    @torch.no_grad()
    def load_from_staged(self, staged):
        self._copy_common(staged)
        for conv, layer in zip(self.convs, staged.layers):
            conv.weight.copy_(torch.stack([layer.weight[_key(r)] for r in self.relations]))
            conv.root.copy_(layer.loop_weight)
            conv.bias.copy_(layer.bias)
        return self

    def forward(self, sem: PygHomogeneousGraph, inputs):
        self._graphs_per_layer(sem)
        h = self.input_proj(inputs)
        x = torch.cat([h[t] for t in sem.node_types])
        for i, conv in enumerate(self.convs):
            x = conv(x, sem.edge_index, sem.edge_type)
            if i < self.num_layers - 1:
                x = F.dropout(F.relu(x), self.dropout, self.training)
        o = sem.offset[self.target]
        return self.classifier(x[o: o + sem.num_nodes[self.target]])


class _PyGRGATReference(ReferenceHGNN):
    """PyG: ``HeteroConv({rel: GATConv((h, h), h // H, heads=H, add_self_loops=False)},
    aggr="sum")`` per layer (ELU + dropout between layers)."""

    name = "rgat"

    def _build(self):
        from torch_geometric.nn import (  # lazy: PyG's import is heavy and loads its optional extensions
            GATConv,
            HeteroConv,
        )

        h, H = self.hidden_dim, self.num_heads
        head_dim(h, H)
        self.convs = nn.ModuleList(
            HeteroConv({r: GATConv((h, h), h // H, heads=H, add_self_loops=False) for r in self.relations},
                       aggr="sum")
            for _ in range(self.num_layers)
        )

    @torch.no_grad()
    def load_from_staged(self, staged):
        self._copy_common(staged)
        for conv, layer in zip(self.convs, staged.layers):
            for r in self.relations:
                m, k = conv.convs[r], _key(r)
                m.lin_src.weight.copy_(layer.fc_src[k].weight)
                m.lin_dst.weight.copy_(layer.fc_dst[k].weight)
                m.att_src.copy_(layer.attn_src[k])
                m.att_dst.copy_(layer.attn_dst[k])
                m.bias.copy_(layer.bias[k])
        return self

    def forward(self, sem: PygSemanticGraph, inputs):
        self._graphs_per_layer(sem)
        h = self.input_proj(inputs)
        for i, conv in enumerate(self.convs):
            h = conv(h, sem.edge_index)
            if i < self.num_layers - 1:
                h = {t: F.dropout(F.elu(x), self.dropout, self.training) for t, x in h.items()}
        return self.classifier(h[self.target])


class _PyGHANReference(ReferenceHGNN):
    """PyG: ``HANConv(h, h, metadata=([target], metapath edge types), heads=H)`` per layer on the
    metapath graphs (dropout between layers)."""

    name = "han"

    def _input_types(self, graph):
        return [graph.target]

    def _setup(self, graph, metapaths):
        HAN._setup(self, graph, metapaths)

    def _build(self):
        from torch_geometric.nn import HANConv  # lazy: PyG's import is heavy and loads its optional extensions

        h, H = self.hidden_dim, self.num_heads
        head_dim(h, H)
        meta = ([self.target], list(self.relations))
        self.convs = nn.ModuleList(HANConv(h, h, meta, heads=H) for _ in range(self.num_layers))

    def build_semantic_graphs(self, graph, device="cpu"):
        with stage(SEMANTIC_GRAPH_BUILD):
            return build_pyg_metapath_graph(graph, self.metapaths, device)

    @torch.no_grad()
    def load_from_staged(self, staged):
        self._copy_common(staged)
        for conv, layer in zip(self.convs, staged.layers):
            conv.load_state_dict(layer.state_dict())
        return self

    def forward(self, sem: PygSemanticGraph, inputs):
        self._graphs_per_layer(sem)
        h = self.input_proj(inputs)
        for i, conv in enumerate(self.convs):
            h = conv(h, sem.edge_index)
            h = {t: x for t, x in h.items() if x is not None}
            if i < self.num_layers - 1:
                h = {t: F.dropout(x, self.dropout, self.training) for t, x in h.items()}
        return self.classifier(h[self.target])


_REFERENCES = {
    ("rgcn", "dgl"): _DGLRGCNReference,
    ("rgat", "dgl"): _DGLRGATReference,
    ("han", "dgl"): None,  # DGL ships no HAN layer
    ("rgcn", "pyg"): _PyGRGCNReference,
    ("rgat", "pyg"): _PyGRGATReference,
    ("han", "pyg"): _PyGHANReference,
}


def build_reference_model(name: str, framework: str, graph: HeteroGraph, *, hidden_dim: int = 64,
                          num_layers: int = 2, num_heads: int = 4, metapaths: dict | None = None,
                          dropout: float = 0.0, seed: int = 0) -> ReferenceHGNN | None:
    """Build the model with the framework's own layers (see the module docstring), or ``None``
    where the framework has none (DGL has no HAN layer). Same arguments and errors as
    :func:`build_model`."""
    _check_choice("model", name, MODELS)
    _check_choice("framework", framework, FRAMEWORKS)
    if name == "han":
        _validate_metapaths(graph, graph.metapaths if metapaths is None else metapaths)
    cls = _REFERENCES[(name, framework)]
    if cls is None:
        return None
    return cls(graph, framework, hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
               dropout=dropout, seed=seed, metapaths=metapaths)


__all__ = [
    "MODELS", "FRAMEWORKS", "HGNN", "RGCN", "RGAT", "HAN", "ReferenceHGNN", "InputProjection",
    "PygSemanticGraph", "PygHomogeneousGraph", "build_model", "build_reference_model",
    "build_dgl_relation_graph", "build_dgl_metapath_graph", "build_pyg_relation_graph",
    "build_pyg_metapath_graph", "build_pyg_homogeneous_graph", "sample_dgl_blocks", "block_input_nodes",
    "DGL_CUDA_FIX",
]
