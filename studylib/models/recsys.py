"""GNN recommenders in DGL: NGCF and LightGCN, the BPR loss, uniform negative sampling, top-K
metrics and a popularity baseline.

Both models propagate embeddings over the user-item graph (users and items as one homogeneous node
set, every interaction in both directions; see :meth:`studylib.data.recsys.BipartiteGraph.to_dgl`)
with the symmetric normalisation ``p_ui = 1 / sqrt(|N_u| |N_i|)`` (the normalised adjacency
``L = D^-1/2 A D^-1/2``):

* **LightGCN** (He, Deng, Wang, Li, Zhang, Wang, SIGIR 2020, Eq. 3 and 4): ``E^(k+1) = L E^(k)``,
  final representation the mean ``(1 / (K+1)) sum_k E^(k)``; the only parameters are the ego
  embeddings ``E^(0)``. One SpMM per layer (``dgl.ops.u_mul_e_sum``).
* **NGCF** (Wang, He, Wang, Feng, Chua, SIGIR 2019, Eq. 7):
  ``E^(l) = LeakyReLU((L + I) E^(l-1) W1 + (L E^(l-1) (.) E^(l-1)) W2)``, final representation the
  concatenation of ``E^(0)`` and the L2-normalised ``E^(l)``. The element-wise term is computed
  as in the message-passing form (Eq. 3): per edge ``e_i (.) e_u`` (SDDMM, ``dgl.ops.u_mul_v``),
  weighted by ``p_ui`` and summed into ``u`` (SpMM, ``dgl.ops.copy_e_sum``).

Models run on a full graph (the same graph for every layer) or on DGL message-flow blocks of a
sampled subgraph (one block per layer, the output nodes a prefix of each block's inputs). On
sampled blocks the edge weight is ``p_ui * deg(u) / sampled_deg(u)``, so that the aggregation is an
unbiased estimate of the full-graph sum; on the full graph the correction is 1.

The ego embeddings live in an :class:`EmbeddingTable`: :class:`DenseTable` (one tensor; where that
tensor's memory lives is the caller's choice, see :mod:`studylib.studies.recsys_memory_tiers.memory_tiers`) or
:class:`SplitTable` (hot rows in one tensor, cold rows in another, the first layer aggregating from
both without copying either).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studylib.timing import BACKWARD, FORWARD, OPTIMIZER_UPDATE, phase, stage

__all__ = [
    "MODELS",
    "BatchSampler",
    "DenseTable",
    "EmbeddingTable",
    "ItemNegativeSampler",
    "LightGCN",
    "NGCF",
    "RedundancyCounter",
    "SplitTable",
    "UniformNegativeSampler",
    "block_bpr_loss",
    "bpr_loss",
    "build_recommender",
    "edge_weights",
    "evaluate_topk",
    "fit",
    "full_graph_step",
    "normal_init",
    "popularity_scores",
    "representations",
    "topk_metrics",
]

MODELS = ("lightgcn", "ngcf")

#: Names of the regions the models mark with :func:`studylib.timing.stage`.
SPMM_STAGE = "neighbor_aggregation"
SDDMM_STAGE = "elementwise_interaction"
GEMM_STAGE = "feature_transform"
GATHER_STAGE = "embedding_gather"


# ---------------------------------------------------------------------------------------------
# Edge weights
# ---------------------------------------------------------------------------------------------
def edge_weights(g) -> torch.Tensor:
    """Edge weights ``w_e`` [E] (float32) of a graph or block for propagation into ``dst``.

    ``w = 1 / sqrt(deg(src) deg(dst)) * deg(dst) / in_degree_g(dst)`` with ``deg`` the node data
    ``"deg"`` (full-graph degrees; the graph's own in-degrees when absent) -- the symmetric
    normalisation of NGCF/LightGCN, times the correction that makes a sampled neighbourhood an
    unbiased estimate of the full one (1 on the full graph). Nodes without edges get no weight.
    """
    src, dst = g.edges()
    indeg = g.in_degrees().to(torch.float32).clamp(min=1)
    if "deg" in g.srcdata and "deg" in g.dstdata:
        ds, dd = g.srcdata["deg"].to(torch.float32), g.dstdata["deg"].to(torch.float32)
    else:
        ds = dd = indeg if g.num_src_nodes() == g.num_dst_nodes() else None
        if ds is None:
            raise ValueError("edge_weights: a block needs node data 'deg' (full-graph degrees)")
    return (dd[dst] / indeg[dst]) / torch.sqrt(ds[src].clamp(min=1) * dd[dst].clamp(min=1))


# ---------------------------------------------------------------------------------------------
# Embedding tables
# ---------------------------------------------------------------------------------------------
class EmbeddingTable(nn.Module):
    """The ego embeddings ``E^(0)`` [N, d] of a recommender, wherever they are stored.

    Subclasses provide :meth:`full` (all rows as one tensor), :meth:`rows` (a gather) and
    :meth:`aggregate` (``L E^(0)`` restricted to a graph's edges, the first layer's SpMM).
    """

    num_rows: int
    dim: int

    def full(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def rows(self, idx: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def aggregate(self, g, w: torch.Tensor) -> torch.Tensor:
        """``sum_{src -> dst} w_e E[src]`` for every dst node of ``g``: [num_dst, d]."""
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        return dgl.ops.u_mul_e_sum(g, self.full(), w)


class DenseTable(EmbeddingTable):
    """All rows in one tensor: a trainable ``nn.Parameter`` (``trainable=True``) or a given tensor
    (e.g. embeddings already gathered for a mini-batch).

    Args:
        weight: float32 tensor [N, d]; used as is (no copy), so a file-backed tensor stays file-backed.
        trainable: wrap it in an ``nn.Parameter``.
    """

    def __init__(self, weight: torch.Tensor, trainable: bool = True):
        super().__init__()
        self.num_rows, self.dim = int(weight.shape[0]), int(weight.shape[1])
        self.trainable = trainable
        if trainable:
            self.weight = nn.Parameter(weight)  # shares weight's storage (no copy)
        else:
            self._tensor = weight

    def _w(self) -> torch.Tensor:
        return self.weight if self.trainable else self._tensor

    def full(self) -> torch.Tensor:
        return self._w()

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        with stage(GATHER_STAGE):
            return self._w()[idx]


class SplitTable(EmbeddingTable):
    """Rows split over two tensors: ``hot`` (the rows of ``hot_ids``, e.g. the high-degree nodes,
    in fast memory) and ``cold`` (all other rows, e.g. in a slow tier) -- the analogue of a DRAM
    cache in front of persistent memory.

    Args:
        hot, cold: float32 tensors [H, d] and [N - H, d] (used as given, no copy).
        hot_ids: int64 [H], the node ids held in ``hot``; the cold rows hold the others in
            increasing id order.

    :meth:`aggregate` runs two SpMMs over the edges whose source is hot resp. cold (bipartite DGL
    blocks built once per graph), so neither tensor is copied; :attr:`last_hit_rate` is the share of
    edge reads served by ``hot``.
    """

    def __init__(self, hot: torch.Tensor, cold: torch.Tensor, hot_ids: torch.Tensor):
        super().__init__()
        n = int(hot.shape[0] + cold.shape[0])
        self.num_rows, self.dim = n, int(hot.shape[1])
        self.hot, self.cold = nn.Parameter(hot), nn.Parameter(cold)
        is_hot = torch.zeros(n, dtype=torch.bool)
        is_hot[hot_ids] = True
        self.register_buffer("is_hot", is_hot, persistent=False)
        pos = torch.empty(n, dtype=torch.int64)
        pos[hot_ids] = torch.arange(len(hot_ids))
        pos[~is_hot] = torch.arange(n - len(hot_ids))
        self.register_buffer("pos", pos, persistent=False)
        self.register_buffer("hot_ids", hot_ids.to(torch.int64), persistent=False)
        self.register_buffer("cold_ids", torch.nonzero(~is_hot).flatten(), persistent=False)
        self._blocks: dict[int, tuple] = {}
        self.last_hit_rate = float("nan")

    def full(self) -> torch.Tensor:
        out = torch.zeros(self.num_rows, self.dim, dtype=self.hot.dtype)
        return out.index_copy(0, self.hot_ids, self.hot).index_copy(0, self.cold_ids, self.cold)

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        with stage(GATHER_STAGE):
            hot = self.is_hot[idx]
            out = torch.zeros(len(idx), self.dim, dtype=self.hot.dtype)
            out = out.index_copy(0, torch.nonzero(hot).flatten(), self.hot[self.pos[idx[hot]]])
            return out.index_copy(0, torch.nonzero(~hot).flatten(), self.cold[self.pos[idx[~hot]]])

    def _split(self, g, w: torch.Tensor):
        key = id(g)
        if key not in self._blocks:
            import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

            src, dst = g.edges()
            hot = self.is_hot[src]
            parts = []
            for mask, n_src in ((hot, self.hot.shape[0]), (~hot, self.cold.shape[0])):
                b = dgl.create_block((self.pos[src[mask]], dst[mask]), num_src_nodes=int(n_src),
                                     num_dst_nodes=g.num_dst_nodes())
                parts.append((b, mask))
            self._blocks[key] = (g, parts, float(hot.float().mean()) if len(src) else float("nan"))
        return self._blocks[key]

    def aggregate(self, g, w: torch.Tensor) -> torch.Tensor:
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        _, parts, hit = self._split(g, w)
        self.last_hit_rate = hit
        (bh, mh), (bc, mc) = parts
        return dgl.ops.u_mul_e_sum(bh, self.hot, w[mh]) + dgl.ops.u_mul_e_sum(bc, self.cold, w[mc])


def _as_table(x) -> EmbeddingTable:
    return x if isinstance(x, EmbeddingTable) else DenseTable(x, trainable=False)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
class _Recommender(nn.Module):
    """Shared driver: layer-by-layer propagation over a full graph or blocks."""

    num_layers: int

    def _graphs(self, graphs) -> list:
        if isinstance(graphs, (list, tuple)):
            if len(graphs) != self.num_layers:
                raise ValueError(f"{type(self).__name__} has {self.num_layers} layers but got {len(graphs)} blocks")
            return list(graphs)
        return [graphs] * self.num_layers

    def _weights(self, graphs: list) -> list[torch.Tensor]:
        out, cache = [], {}
        for g in graphs:
            if id(g) not in cache:
                cache[id(g)] = g.edata["w"] if "w" in g.edata else edge_weights(g)
            out.append(cache[id(g)])
        return out

    def forward(self, graphs, table=None, out_idx: torch.Tensor | None = None) -> torch.Tensor:
        """Final representations.

        Args:
            graphs: a DGL graph (full-graph propagation, used for every layer) or a list of
                ``num_layers`` DGL blocks (sampled subgraph, input side first).
            table: the ego embeddings of the first graph's source nodes: an :class:`EmbeddingTable`
                or a float32 tensor [N_src, d]; default the model's own :attr:`embedding`.
            out_idx: on a full graph, the node ids whose representations to return (default all);
                on blocks the output is the last block's destination nodes and ``out_idx`` must be None.

        Returns float32 [n_out, out_dim] (``out_dim`` = d for LightGCN, ``d (L+1)`` for NGCF).
        """
        graphs = self._graphs(graphs)
        table = _as_table(self.embedding if table is None else table)
        ws = self._weights(graphs)
        is_blocks = graphs[0].is_block
        if is_blocks and out_idx is not None:
            raise ValueError("out_idx applies to full-graph propagation only")
        n_out = graphs[-1].num_dst_nodes() if is_blocks else None
        idx = out_idx if out_idx is not None else (None if not is_blocks else torch.arange(n_out))

        def pick(h):
            return h if idx is None else (h[:n_out] if is_blocks else h[idx])

        picked = [table.rows(idx) if idx is not None else table.full()]
        h = table
        for layer, (g, w) in enumerate(zip(graphs, ws)):
            h = self.layer(layer, g, w, h)
            picked.append(pick(h))
        return self.combine(picked)


class LightGCN(_Recommender):
    """LightGCN (He et al., SIGIR 2020): ``E^(k+1) = L E^(k)``; output ``mean_k E^(k)`` (Eq. 4
    with ``alpha_k = 1 / (K+1)``).

    Args:
        num_nodes: users + items (rows of the ego embedding table).
        dim: embedding width d.
        num_layers: propagation layers K (>= 1).
        init_std: standard deviation of the normal initialisation (0.1 as in the authors' code).
        embedding: optional :class:`EmbeddingTable` to use instead of a fresh DRAM parameter.
    """

    def __init__(self, num_nodes: int, dim: int, num_layers: int, init_std: float = 0.1,
                 embedding: EmbeddingTable | None = None):
        super().__init__()
        if num_layers < 1 or dim < 1:
            raise ValueError(f"num_layers and dim must be >= 1 (got {num_layers}, {dim})")
        self.num_layers, self.dim = num_layers, dim
        self.embedding = embedding or DenseTable(torch.randn(num_nodes, dim) * init_std)
        self.out_dim = dim

    def layer(self, k: int, g, w: torch.Tensor, h) -> torch.Tensor:
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        with stage(SPMM_STAGE):
            if isinstance(h, EmbeddingTable):
                return h.aggregate(g, w)
            return dgl.ops.u_mul_e_sum(g, h, w)

    def combine(self, picked: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(picked, 0).mean(0)


class NGCF(_Recommender):
    """NGCF (Wang et al., SIGIR 2019, Eq. 7; biases and LeakyReLU slope 0.2 as in the authors' code).

    Per layer: ``LeakyReLU(((L + I) E) W1 + b1 + (L E (.) E) W2 + b2)``, the element-wise term as
    SDDMM (``e_i (.) e_u`` per edge) followed by a weighted SpMM; message dropout with probability
    ``dropout`` in training. Output: concatenation of ``E^(0)`` and the L2-normalised layer outputs.

    Args: as :class:`LightGCN`, plus ``dropout`` (message dropout, default 0).
    """

    def __init__(self, num_nodes: int, dim: int, num_layers: int, init_std: float = 0.1, dropout: float = 0.0,
                 embedding: EmbeddingTable | None = None):
        super().__init__()
        if num_layers < 1 or dim < 1:
            raise ValueError(f"num_layers and dim must be >= 1 (got {num_layers}, {dim})")
        self.num_layers, self.dim, self.dropout = num_layers, dim, dropout
        if embedding is None:
            e = torch.empty(num_nodes, dim)
            nn.init.xavier_uniform_(e)
            embedding = DenseTable(e)
        self.embedding = embedding
        self.W1 = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))
        self.W2 = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))
        self.out_dim = dim * (num_layers + 1)

    def layer(self, k: int, g, w: torch.Tensor, h) -> torch.Tensor:
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        n_dst = g.num_dst_nodes()
        if isinstance(h, EmbeddingTable):
            with stage(SPMM_STAGE):
                side = h.aggregate(g, w)
            h = h.full()
        else:
            with stage(SPMM_STAGE):
                side = dgl.ops.u_mul_e_sum(g, h, w)
        h_dst = h[:n_dst]
        with stage(SDDMM_STAGE):
            prod = dgl.ops.u_mul_v(g, h, h_dst)  # SDDMM: e_src (.) e_dst per edge, [E, d]
            bi = dgl.ops.copy_e_sum(g, prod * w.unsqueeze(-1))  # weighted sum into dst, [n_dst, d]
        with stage(GEMM_STAGE):
            out = self.W1[k](side + h_dst) + self.W2[k](bi)
        out = F.leaky_relu(out, 0.2)
        if self.dropout and self.training:
            out = F.dropout(out, self.dropout)
        return out

    def combine(self, picked: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([picked[0]] + [F.normalize(p, p=2, dim=1) for p in picked[1:]], dim=1)


def build_recommender(name: str, num_nodes: int, dim: int, num_layers: int, *, seed: int = 0,
                      embedding: EmbeddingTable | None = None, **kwargs) -> _Recommender:
    """``"lightgcn"`` or ``"ngcf"`` with weights drawn from ``seed``. Raises ``ValueError`` for
    other names."""
    torch.manual_seed(seed)
    if name == "lightgcn":
        return LightGCN(num_nodes, dim, num_layers, embedding=embedding, **kwargs)
    if name == "ngcf":
        return NGCF(num_nodes, dim, num_layers, embedding=embedding, **kwargs)
    raise ValueError(f"unknown recommender {name!r}; choose one of {MODELS}")


# ---------------------------------------------------------------------------------------------
# Loss and sampling
# ---------------------------------------------------------------------------------------------
def bpr_loss(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, ego: tuple | None = None,
             reg: float = 0.0) -> torch.Tensor:
    """Bayesian personalised ranking loss (Rendle, Freudenthaler, Gantner, Schmidt-Thieme, UAI
    2009, Eq. 7; with LightGCN's regulariser, He et al. 2020, Eq. 15).

    ``mean_b -log sigmoid(<u_b, p_b> - <u_b, n_b>) + reg * 0.5 * (|u0|^2 + |p0|^2 + |n0|^2) / B``,
    with ``-log sigmoid(x)`` computed as ``softplus(-x)``.

    Args:
        user, pos, neg: float32 [B, D] final representations of the users, their positive and their
            negative items.
        ego: optional ``(u0, p0, n0)`` float32 [B, d] ego embeddings for the L2 term.
        reg: weight of the L2 term (0 = none).

    Returns a scalar tensor. Raises ``ValueError`` when shapes differ.
    """
    if not (user.shape == pos.shape == neg.shape):
        raise ValueError(f"user, pos and neg must have one shape (got {tuple(user.shape)}, {tuple(pos.shape)}, "
                         f"{tuple(neg.shape)})")
    x = (user * pos).sum(-1) - (user * neg).sum(-1)
    loss = F.softplus(-x).mean()
    if ego is not None and reg:
        loss = loss + reg * 0.5 * sum(e.pow(2).sum() for e in ego) / user.shape[0]
    return loss


class UniformNegativeSampler:
    """Uniform negative items for BPR: for each user an item drawn uniformly from all items,
    redrawn (up to ``max_rounds`` times) while it is one of the user's training items.

    Args:
        train_keys: sorted int64 array of ``user * num_items + item`` of the training pairs
            (:meth:`BipartiteGraph.train_keys`).
        num_items: item count.
        seed: seed of the sampler's own generator.

    :attr:`collisions` counts negatives that were still positives after ``max_rounds`` redraws.
    """

    def __init__(self, train_keys: np.ndarray, num_items: int, seed: int = 0, max_rounds: int = 10):
        self.keys, self.num_items, self.max_rounds = np.asarray(train_keys, np.int64), int(num_items), max_rounds
        self.gen = torch.Generator().manual_seed(seed)
        self.collisions = 0

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each ``(user, item)`` is a training pair (binary search in the sorted keys)."""
        k = users.astype(np.int64) * self.num_items + items.astype(np.int64)
        pos = np.searchsorted(self.keys, k)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == k if len(self.keys) else np.zeros(len(k), bool)

    def sample(self, users: torch.Tensor) -> torch.Tensor:
        """Negative item ids, int64 [len(users)]."""
        u = users.numpy()
        items = torch.randint(self.num_items, (len(u),), generator=self.gen).numpy()
        bad = self.is_positive(u, items)
        for _ in range(self.max_rounds):
            if not bad.any():
                break
            items[bad] = torch.randint(self.num_items, (int(bad.sum()),), generator=self.gen).numpy()
            bad = self.is_positive(u, items)
        self.collisions += int(bad.sum())
        return torch.from_numpy(items)


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------
def topk_metrics(topk: np.ndarray, test_sets: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall@k and NDCG@k per user with binary relevance.

    ``recall = |top-k ∩ T| / |T|``; ``NDCG = DCG / IDCG`` with ``DCG = sum_{r=1..k} rel_r / log2(r+1)``
    and ``IDCG`` the DCG of ``min(|T|, k)`` relevant items at the top (Järvelin and Kekäläinen, ACM
    TOIS 2002; the definitions of the NGCF/LightGCN evaluation code).

    Args:
        topk: int array [U, >= k]: each user's ranked item ids, best first.
        test_sets: per user (same order) the array of held-out items (non-empty).
        k: cut-off.

    Returns two float64 arrays [U]. Raises ``ValueError`` on a user without test items.
    """
    topk = np.asarray(topk)[:, :k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    rec, ndcg = np.empty(len(test_sets)), np.empty(len(test_sets))
    for r, (row, t) in enumerate(zip(topk, test_sets)):
        if len(t) == 0:
            raise ValueError(f"user at position {r} has no test items")
        hit = np.isin(row, t)
        rec[r] = hit.sum() / len(t)
        ndcg[r] = (hit * disc[: len(row)]).sum() / disc[: min(len(t), k)].sum()
    return rec, ndcg


@torch.no_grad()
def evaluate_topk(user_repr: torch.Tensor, item_repr: torch.Tensor, graph, k: int = 20,
                  batch_users: int = 2048) -> dict:
    """Recall@k and NDCG@k over the test users of ``graph`` (a :class:`BipartiteGraph`).

    Scores are ``user_repr @ item_repr.T`` (float32 [U, d'] and [I, d']); each user's training
    items are excluded from the ranking. Returns ``{"recall": mean, "ndcg": mean, "users": count}``.
    """
    tests = graph.test_sets()
    users = np.array(sorted(tests), dtype=np.int64)
    train_u, train_i = graph.train_users.numpy(), graph.train_items.numpy()
    rec, nd = [], []
    for s in range(0, len(users), batch_users):
        ub = users[s:s + batch_users]
        scores = user_repr[torch.from_numpy(ub)] @ item_repr.T
        row_of = {int(u): r for r, u in enumerate(ub)}
        sel = np.isin(train_u, ub)
        rows = np.array([row_of[int(u)] for u in train_u[sel]], dtype=np.int64)
        scores[torch.from_numpy(rows), torch.from_numpy(train_i[sel])] = -math.inf
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.numpy()
        r, n = topk_metrics(top, [tests[int(u)] for u in ub], k)
        rec.append(r)
        nd.append(n)
    rec, nd = np.concatenate(rec), np.concatenate(nd)
    return {"recall": float(rec.mean()), "ndcg": float(nd.mean()), "users": len(users)}


def popularity_scores(graph) -> tuple[torch.Tensor, torch.Tensor]:
    """The popularity baseline as (user, item) representations for :func:`evaluate_topk`: every
    user ``[1]``, every item its training degree ``[deg]``, so each user ranks items by popularity."""
    return torch.ones(graph.num_users, 1), graph.item_degrees().to(torch.float32).unsqueeze(1)


# ---------------------------------------------------------------------------------------------
# Full-graph training
# ---------------------------------------------------------------------------------------------
@dataclass
class BatchSampler:
    """Shuffled mini-batches of training interactions with one uniform negative each."""

    graph: object
    batch_size: int
    seed: int = 0

    def __post_init__(self):
        self.neg = UniformNegativeSampler(self.graph.train_keys(), self.graph.num_items, seed=self.seed)
        self.gen = torch.Generator().manual_seed(self.seed)

    def steps_per_epoch(self) -> int:
        """``ceil(E_train / batch_size)``."""
        return max(1, math.ceil(self.graph.num_train / self.batch_size))

    def epoch(self):
        """Yield ``(users, pos_items, neg_items)`` int64 tensors covering every training pair once."""
        perm = torch.randperm(self.graph.num_train, generator=self.gen)
        for s in range(0, len(perm), self.batch_size):
            b = perm[s:s + self.batch_size]
            u, p = self.graph.train_users[b], self.graph.train_items[b]
            yield u, p, self.neg.sample(u)

    def forever(self):
        """Yield batches as :meth:`epoch` does, starting a new shuffled epoch whenever one ends
        (for timing a fixed number of steps)."""
        while True:
            yield from self.epoch()


def full_graph_step(model: _Recommender, g, batch, optimizer, num_users: int, reg: float = 1e-4) -> float:
    """One BPR step with full-graph propagation: forward over ``g`` for the batch's users, positive
    and negative items, BPR loss, backward, optimizer step. Returns the loss."""

    u, p, n = batch
    nodes = torch.cat([u, p + num_users, n + num_users])
    with phase(FORWARD):
        out = model(g, out_idx=nodes)
        eu, ep, en = out.split(len(u))
        ego = model.embedding.rows(nodes).split(len(u)) if reg else None
        loss = bpr_loss(eu, ep, en, ego, reg)
    with phase(BACKWARD):
        loss.backward()
    with phase(OPTIMIZER_UPDATE):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


@torch.no_grad()
def representations(model: _Recommender, g, num_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Final (user, item) representations of every node after full-graph propagation."""
    model.eval()
    out = model(g)
    model.train()
    return out[:num_users], out[num_users:]


def fit(model: _Recommender, graph, *, epochs: int = 5, batch_size: int = 2048, lr: float = 0.005,
        reg: float = 1e-4, seed: int = 0, k: int = 20, eval_every: int = 0) -> list[dict]:
    """Train ``model`` on ``graph`` (a :class:`BipartiteGraph`) with full-graph propagation, BPR and
    Adam for ``epochs`` epochs; returns rows ``{epoch, loss, seconds, recall, ndcg}`` (metrics at
    ``k`` every ``eval_every`` epochs and after the last; NaN otherwise)."""
    g = graph.to_dgl()
    g.edata["w"] = edge_weights(g)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sampler = BatchSampler(graph, batch_size, seed)
    rows = []
    for epoch in range(1, epochs + 1):
        t0, losses = time.perf_counter(), []
        for batch in sampler.epoch():
            losses.append(full_graph_step(model, g, batch, opt, graph.num_users, reg))
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
               "recall": float("nan"), "ndcg": float("nan")}
        if epoch == epochs or (eval_every and epoch % eval_every == 0):
            m = evaluate_topk(*representations(model, g, graph.num_users), graph, k=k)
            row.update(recall=m["recall"], ndcg=m["ndcg"])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Sampled subgraphs: negative items for DGL's edge-prediction sampler, redundancy of mini-batches
# ---------------------------------------------------------------------------------------------
def normal_init(shape, dtype=torch.float32) -> torch.Tensor:
    """Initial ego embeddings drawn from N(0, 0.1^2) (LightGCN's initialisation); the ``init_func``
    of ``dgl.distributed.DistEmbedding``, at module level so that DistDGL's servers can unpickle it."""
    return torch.randn(shape, dtype=dtype) * 0.1


class ItemNegativeSampler:
    """A negative sampler for ``dgl.dataloading.as_edge_prediction_sampler``: for every seed edge
    ``(user, item)`` one negative ``(user, j)`` with ``j`` drawn uniformly from ``item_nodes`` (the
    node ids of the items; training positives are not rejected here, the usual DGL practice: with
    ``I`` items a draw is a positive with probability ``deg(u) / I``).

    Args:
        item_nodes: int64 [I] node ids of the items (in the graph's own id space).
        seed: seed of the sampler's generator.
    """

    def __init__(self, item_nodes: torch.Tensor, seed: int = 0):
        self.item_nodes = torch.as_tensor(item_nodes, dtype=torch.int64)
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, g, eids):
        src, _ = g.find_edges(eids)
        j = torch.randint(len(self.item_nodes), (len(src),), generator=self.gen)
        return src, self.item_nodes[j]


def block_bpr_loss(model: _Recommender, blocks: list, x: torch.Tensor, pair_graph, neg_graph,
                   reg: float = 1e-4) -> torch.Tensor:
    """BPR loss of one sampled mini-batch: representations of the output nodes from ``blocks``
    (input embeddings ``x`` [n_src0, d]), scored on the positive pairs of ``pair_graph`` and the
    negatives of ``neg_graph`` (one per positive, same order, as ``as_edge_prediction_sampler`` with
    :class:`ItemNegativeSampler` makes them), with the L2 term on the ego embeddings."""
    h = model(blocks, x)
    pu, pi = pair_graph.edges()
    nu, nj = neg_graph.edges()
    ego0 = x[: h.shape[0]]
    return bpr_loss(h[pu], h[pi], h[nj], (ego0[pu], ego0[pi], ego0[nj]) if reg else None, reg)


class RedundancyCounter:
    """Redundancy of subgraph (mini-batch) training over an epoch, per layer.

    For layer ``l`` (1 = the input-side block), with ``V_b^l`` the input nodes and ``E_b^l`` the
    edges of mini-batch ``b``'s block ``l``::

        node redundancy_l = sum_b |V_b^l| / |union_b V_b^l|
        edge redundancy_l = sum_b |E_b^l| / |union_b E_b^l|

    1 means that no node (edge) is computed on by two mini-batches of the epoch; ``r`` means that,
    on average, each one touched is fetched and aggregated ``r`` times. Node and edge ids are the
    graph's global ids (``block.srcdata[dgl.NID]``, ``block.edata[dgl.EID]``), so counters of
    several trainers over one graph can be merged (:meth:`merge`).
    """

    def __init__(self, num_layers: int):
        self.num_layers = num_layers
        self.sum_nodes = np.zeros(num_layers, np.int64)
        self.sum_edges = np.zeros(num_layers, np.int64)
        self.sum_dst = np.zeros(num_layers, np.int64)
        self.batches = 0
        self._nodes: list[list[np.ndarray]] = [[] for _ in range(num_layers)]
        self._edges: list[list[np.ndarray]] = [[] for _ in range(num_layers)]

    def add(self, blocks: list) -> None:
        """Count one mini-batch's blocks (input side first)."""
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        if len(blocks) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} blocks, got {len(blocks)}")
        for i, b in enumerate(blocks):
            nid = b.srcdata[dgl.NID].numpy()
            eid = b.edata[dgl.EID].numpy()
            self.sum_nodes[i] += len(nid)
            self.sum_edges[i] += len(eid)
            self.sum_dst[i] += b.num_dst_nodes()
            self._nodes[i].append(np.unique(nid))
            self._edges[i].append(np.unique(eid))
        self.batches += 1
        if self.batches % 64 == 0:
            self._compact()

    def _compact(self) -> None:
        for i in range(self.num_layers):
            self._nodes[i] = [np.unique(np.concatenate(self._nodes[i]))] if self._nodes[i] else []
            self._edges[i] = [np.unique(np.concatenate(self._edges[i]))] if self._edges[i] else []

    def distinct(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per layer, the sorted distinct node ids and edge ids touched."""
        self._compact()
        empty = np.zeros(0, np.int64)
        return ([n[0] if n else empty for n in self._nodes], [e[0] if e else empty for e in self._edges])

    def merge(self, other: RedundancyCounter) -> RedundancyCounter:
        """Add ``other``'s counts and ids into this counter (same layer count); returns self."""
        if other.num_layers != self.num_layers:
            raise ValueError("cannot merge counters of different layer counts")
        self.sum_nodes += other.sum_nodes
        self.sum_edges += other.sum_edges
        self.sum_dst += other.sum_dst
        self.batches += other.batches
        on, oe = other.distinct()
        for i in range(self.num_layers):
            self._nodes[i].append(on[i])
            self._edges[i].append(oe[i])
        return self

    def rows(self) -> list[dict]:
        """One row per layer: ``layer``, ``batches``, ``sum_nodes``, ``distinct_nodes``,
        ``node_redundancy``, ``sum_edges``, ``distinct_edges``, ``edge_redundancy``, ``sum_dst_nodes``."""
        nodes, edges = self.distinct()
        out = []
        for i in range(self.num_layers):
            dn, de = len(nodes[i]), len(edges[i])
            out.append({"layer": i + 1, "batches": self.batches, "sum_nodes": int(self.sum_nodes[i]),
                        "distinct_nodes": dn, "node_redundancy": self.sum_nodes[i] / dn if dn else float("nan"),
                        "sum_edges": int(self.sum_edges[i]), "distinct_edges": de,
                        "edge_redundancy": self.sum_edges[i] / de if de else float("nan"),
                        "sum_dst_nodes": int(self.sum_dst[i])})
        return out
