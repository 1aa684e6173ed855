"""Homogeneous graphs (one node type, one edge type): the in-memory form, Cora, and a power-law
synthetic generator.

:class:`HomogeneousGraph` is framework-free (plain tensors); :meth:`HomogeneousGraph.to_dgl` and
:meth:`HomogeneousGraph.to_pyg` convert it with the same node ids, so that DGL and PyG models
train on exactly the same graph. Edges are directed pairs ``src -> dst`` (messages flow from
``src`` to ``dst``); an undirected graph holds both directions, as Planetoid's Cora does (5,278
undirected links = 10,556 directed edges).

Public API::

    HomogeneousGraph(name, num_nodes, src, dst, features, labels, num_classes, train_idx, val_idx,
                     test_idx, info)
    load_cora() -> HomogeneousGraph                       # Planetoid Cora via studylib.data.resolve
    random_split(graph, split=(0.6, 0.2, 0.2), seed=0, eligible=None) -> HomogeneousGraph
    synthetic_homogeneous(n, avg_degree, feature_dim, num_classes, degree_skew, seed) -> HomogeneousGraph
    degree_statistics(src, dst, n) -> dict                # n, m, degrees, max degree, skew measures
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from studylib.data.registry import REGISTRY, resolve

__all__ = ["HomogeneousGraph", "degree_statistics", "load_cora", "random_split", "synthetic_homogeneous"]


@dataclass
class HomogeneousGraph:
    """A homogeneous graph with node classification labels.

    Attributes:
        name: dataset name (e.g. ``"cora"``, ``"synthetic-n4096-d8-k64"``).
        num_nodes: vertex count ``n``.
        src, dst: int64 tensors ``[m]``, 0-based vertex ids of each directed edge ``src -> dst``.
        features: float32 tensor ``[n, k]``.
        labels: int64 tensor ``[n]`` of class ids in ``[0, num_classes)``.
        num_classes: number of classes.
        train_idx, val_idx, test_idx: int64 tensors of vertex ids (disjoint).
        info: free-form provenance (source, generator arguments).
        labelled: int64 tensor of the vertex ids that carry a label, or ``None`` when every vertex
            does (ogbn-papers100M labels about 1% of its vertices; the others hold label 0 and
            belong to no split). :func:`random_split` draws only from these.

    Raises ``ValueError`` at construction when shapes, dtypes or ids are inconsistent.
    """

    name: str
    num_nodes: int
    src: torch.Tensor
    dst: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    test_idx: torch.Tensor
    info: dict = field(default_factory=dict)
    labelled: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = int(self.num_nodes)
        if n < 1:
            raise ValueError(f"num_nodes must be >= 1 (got {n})")
        for what, t in (("src", self.src), ("dst", self.dst), ("labels", self.labels), ("train_idx", self.train_idx),
                        ("val_idx", self.val_idx), ("test_idx", self.test_idx)):
            if t.dtype != torch.int64 or t.dim() != 1:
                raise ValueError(f"{what} must be a 1-d int64 tensor (got {t.dtype}, shape {tuple(t.shape)})")
        if self.src.shape != self.dst.shape:
            raise ValueError(f"src and dst differ in length ({self.src.numel()} vs {self.dst.numel()})")
        if self.src.numel() and (int(self.src.min()) < 0 or int(self.dst.min()) < 0
                                 or int(self.src.max()) >= n or int(self.dst.max()) >= n):
            raise ValueError(f"edge endpoints must lie in [0, {n})")
        if self.features.dim() != 2 or self.features.shape[0] != n or self.features.dtype != torch.float32:
            raise ValueError(f"features must be float32 [n={n}, k] (got {self.features.dtype} "
                             f"{tuple(self.features.shape)})")
        if self.labels.numel() != n:
            raise ValueError(f"labels must have n={n} entries (got {self.labels.numel()})")
        if self.labelled is not None and (self.labelled.dtype != torch.int64 or self.labelled.dim() != 1 or (
                self.labelled.numel() and (int(self.labelled.min()) < 0 or int(self.labelled.max()) >= n))):
            raise ValueError(f"labelled must be a 1-d int64 tensor of vertex ids in [0, {n})")

    # ---------------------------------------------------------------- basic queries
    @property
    def n(self) -> int:
        """Vertex count (same as :attr:`num_nodes`)."""
        return int(self.num_nodes)

    @property
    def m(self) -> int:
        """Directed edge count."""
        return int(self.src.numel())

    def num_edges(self) -> int:
        """Directed edge count ``m``."""
        return self.m

    @property
    def feature_dim(self) -> int:
        """Input feature width ``k``."""
        return int(self.features.shape[1])

    def edge_index(self) -> torch.Tensor:
        """PyG's ``edge_index``: int64 ``[2, m]``, row 0 = source, row 1 = destination."""
        return torch.stack([self.src, self.dst])

    def in_degrees(self) -> torch.Tensor:
        """int64 ``[n]``: edges into each vertex (the neighbourhood a vertex aggregates over)."""
        return torch.bincount(self.dst, minlength=self.n)

    def out_degrees(self) -> torch.Tensor:
        """int64 ``[n]``: edges out of each vertex."""
        return torch.bincount(self.src, minlength=self.n)

    def statistics(self) -> dict:
        """Graph statistics as plain numbers: see :func:`degree_statistics`, plus ``k`` (feature
        width), ``num_classes`` and the split sizes."""
        out = degree_statistics(self.src, self.dst, self.n)
        out.update({"k": self.feature_dim, "num_classes": int(self.num_classes),
                    "split": (len(self.train_idx), len(self.val_idx), len(self.test_idx))})
        return out

    def is_symmetric(self) -> bool:
        """Whether every edge ``u -> v`` has its reverse ``v -> u``."""
        fwd = np.unique(self.src.numpy() * self.n + self.dst.numpy())
        rev = np.unique(self.dst.numpy() * self.n + self.src.numpy())
        return bool(np.array_equal(fwd, rev))

    def num_self_loops(self) -> int:
        """Edges ``v -> v``."""
        return int((self.src == self.dst).sum())

    def with_self_loops(self) -> HomogeneousGraph:
        """A copy with exactly one self-loop per vertex (existing self-loops removed first), as
        ``dgl.add_self_loop(dgl.remove_self_loop(g))`` and PyG's ``add_remaining_self_loops`` give."""
        keep = self.src != self.dst
        loops = torch.arange(self.n, dtype=torch.int64)
        return replace(self, src=torch.cat([self.src[keep], loops]), dst=torch.cat([self.dst[keep], loops]),
                       info={**self.info, "self_loops": True})

    # ---------------------------------------------------------------- conversions
    def to_dgl(self, self_loops: bool = False, device="cpu"):
        """A ``dgl.DGLGraph`` with the same vertex ids; ``ndata['feat' | 'label' | 'train_mask' |
        'val_mask' | 'test_mask']`` set. ``self_loops=True`` first applies :meth:`with_self_loops`.
        Raises ``RuntimeError`` for a CUDA ``device`` with DGL's CPU build."""
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        g_src = self.with_self_loops() if self_loops else self
        g = dgl.graph((g_src.src, g_src.dst), num_nodes=self.n)
        g.ndata["feat"] = self.features
        g.ndata["label"] = self.labels
        for split, mask in self.masks().items():
            g.ndata[f"{split}_mask"] = mask
        if torch.device(device).type != "cpu":
            try:
                g = g.to(device)
            except Exception as exc:  # DGL's CPU wheel raises a DGLError here
                raise RuntimeError(f"this DGL build cannot put graphs on {device}: {exc}") from exc
        return g

    def to_pyg(self):
        """A ``torch_geometric.data.Data`` with ``x``, ``edge_index`` (int64 ``[2, m]``), ``y``,
        ``train_mask`` / ``val_mask`` / ``test_mask`` and ``num_nodes``."""
        from torch_geometric.data import Data  # lazy: PyG's import is heavy and loads its optional extensions

        masks = self.masks()
        return Data(x=self.features, edge_index=self.edge_index(), y=self.labels, num_nodes=self.n,
                    train_mask=masks["train"], val_mask=masks["val"], test_mask=masks["test"])

    def masks(self) -> dict[str, torch.Tensor]:
        """Boolean ``[n]`` masks of the train / val / test split."""
        out = {}
        for split, idx in (("train", self.train_idx), ("val", self.val_idx), ("test", self.test_idx)):
            mask = torch.zeros(self.n, dtype=torch.bool)
            mask[idx] = True
            out[split] = mask
        return out


def degree_statistics(src: torch.Tensor | np.ndarray, dst: torch.Tensor | np.ndarray, n: int) -> dict:
    """Statistics of a directed edge list that the work, depth and communication models use.

    Args:
        src, dst: int ``[m]`` source / destination vertex ids in ``[0, n)``.
        n: vertex count.

    Returns a dict of plain numbers: ``n``, ``m``, ``avg_degree`` (m / n), ``max_in_degree`` (the
    paper's ``d``: the largest neighbourhood a vertex aggregates), ``max_out_degree``,
    ``in_degree_std``, ``in_degree_p50`` / ``p90`` / ``p99``, ``isolated`` (vertices with no
    in-edge), ``self_loops`` and ``degree_gini`` (Gini coefficient of the in-degrees: 0 =
    regular graph, towards 1 = a few hubs hold most edges).
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    deg = np.bincount(dst, minlength=n).astype(np.int64)
    outdeg = np.bincount(src, minlength=n).astype(np.int64)
    m = int(src.size)
    sorted_deg = np.sort(deg).astype(np.float64)
    total = sorted_deg.sum()
    if total > 0:
        ranks = np.arange(1, n + 1, dtype=np.float64)
        gini = float((2 * (ranks * sorted_deg).sum()) / (n * total) - (n + 1) / n)
    else:
        gini = 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(deg, [50, 90, 99])) if n else (0.0, 0.0, 0.0)
    return {
        "n": int(n), "m": m, "avg_degree": m / n if n else 0.0,
        "max_in_degree": int(deg.max()) if n else 0, "max_out_degree": int(outdeg.max()) if n else 0,
        "in_degree_std": float(deg.std()) if n else 0.0,
        "in_degree_p50": p50, "in_degree_p90": p90, "in_degree_p99": p99,
        "isolated": int((deg == 0).sum()), "self_loops": int((src == dst).sum()), "degree_gini": gini,
    }


# ------------------------------------------------------------------------------------------------
# Cora
# ------------------------------------------------------------------------------------------------

def random_split(graph: HomogeneousGraph, split: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0,
                 eligible: torch.Tensor | None = None) -> HomogeneousGraph:
    """A copy of ``graph`` with a seeded random train/validation/test split.

    Args:
        graph: the graph; it is not modified.
        split: fractions of the eligible vertices in train, validation and test (each > 0, sum
            <= 1; counts rounded, the test set capped by what is left).
        seed: seed of the permutation (``torch.Generator``), so a split is the same on every run.
        eligible: int64 vertex ids to draw from; default ``graph.labelled`` (the labelled vertices),
            or every vertex when that is ``None``.

    Returns the copy, its index tensors sorted int64 and ``info["split"]`` recording the rule.
    Raises ``ValueError`` for fractions that are not three values > 0 summing to at most 1.
    """
    if len(split) != 3 or min(split) <= 0 or sum(split) > 1 + 1e-9:
        raise ValueError(f"split must be three fractions > 0 with sum <= 1 (got {split})")
    if eligible is None:
        eligible = graph.labelled
    nodes = torch.arange(graph.n) if eligible is None else eligible.to(torch.int64)
    perm = nodes[torch.randperm(nodes.numel(), generator=torch.Generator().manual_seed(seed))]
    n_tr, n_va = int(round(split[0] * perm.numel())), int(round(split[1] * perm.numel()))
    n_te = min(perm.numel() - n_tr - n_va, int(round(split[2] * perm.numel())))
    return replace(graph, train_idx=perm[:n_tr].sort().values, val_idx=perm[n_tr:n_tr + n_va].sort().values,
                   test_idx=perm[n_tr + n_va:n_tr + n_va + n_te].sort().values,
                   info={**graph.info, "split": f"random {tuple(split)} seed {seed}"})


def load_cora(download: bool = False) -> HomogeneousGraph:
    """Planetoid's Cora citation graph (Yang, Cohen, Salakhutdinov, ICML 2016) with its standard
    split: 2,708 vertices, 10,556 directed edges (both directions of 5,278 citations), 1,433-d
    bag-of-words features (row-normalised as shipped), 7 classes, 140 / 500 / 1,000 split.

    Raw files come from :func:`studylib.data.resolve` (cache, then ``$STUDYLIB_DATA_MIRROR``, then
    download only when ``download`` is true); PyG's ``Planetoid`` reads them and writes its processed
    file into the cache (rebuilt unless studylib recorded it as built there). Raises :class:`studylib.data.DatasetUnavailableError` when the files
    cannot be had, ``ValueError`` when the loaded graph's counts differ from the registry's.
    """
    from torch_geometric.datasets import Planetoid

    from studylib.data.registry import locally_processed

    folder = resolve("cora", download=download)
    with locally_processed(folder):
        ds = Planetoid(str(folder.parent), "Cora")
    d = ds[0]
    st = REGISTRY["cora"].statistics
    n_expected = st.num_nodes["paper"]
    m_expected = next(iter(st.num_edges.values()))
    if d.num_nodes != n_expected or d.edge_index.shape[1] != m_expected:
        raise ValueError(f"Cora: loaded {d.num_nodes} vertices / {d.edge_index.shape[1]} edges, the registry "
                         f"says {n_expected} / {m_expected}")
    src, dst = d.edge_index[0].long().contiguous(), d.edge_index[1].long().contiguous()
    idx = torch.arange(d.num_nodes)
    return HomogeneousGraph(
        name="cora", num_nodes=int(d.num_nodes), src=src, dst=dst, features=d.x.float().contiguous(),
        labels=d.y.long(), num_classes=int(st.num_classes), train_idx=idx[d.train_mask], val_idx=idx[d.val_mask],
        test_idx=idx[d.test_mask], info={"source": "planetoid", "folder": str(folder)})


# ------------------------------------------------------------------------------------------------
# Synthetic power-law graphs
# ------------------------------------------------------------------------------------------------

def _pareto_weights(rng: np.random.Generator, n: int, skew: float) -> np.ndarray:
    """Vertex weights with a Pareto tail of index ``skew`` (P(w >= x) = x^-skew), normalised;
    ``inf`` gives equal weights."""
    if not np.isfinite(skew):
        w = np.ones(n)
    else:
        w = (1.0 - rng.random(n)) ** (-1.0 / skew)
    return w / w.sum()


def _undirected_pairs(rng: np.random.Generator, n: int, pairs: int, skew: float) -> np.ndarray:
    """``pairs`` distinct unordered vertex pairs ``u < v`` (no self-loops), as keys ``u * n + v``:
    both ends drawn with Pareto weights (a Chung-Lu style graph, expected degree proportional to
    weight); every vertex gets one edge first when ``pairs`` allows, so none is isolated."""
    pairs = int(min(pairs, n * (n - 1) // 2))
    cdf = np.cumsum(_pareto_weights(rng, n, skew))

    def draw(size: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1).astype(np.int64)

    def keys_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = a != b
        a, b = a[ok], b[ok]
        return np.unique(np.minimum(a, b) * n + np.maximum(a, b))

    if pairs >= n:  # cover: every vertex is linked to one weighted partner
        a = np.arange(n, dtype=np.int64)
        keys = keys_of(a, draw(n))
    else:
        keys = np.empty(0, dtype=np.int64)
    for _ in range(100):
        missing = pairs - keys.size
        if missing <= 0:
            break
        fresh = np.setdiff1d(keys_of(draw(2 * missing + 16), draw(2 * missing + 16)), keys, assume_unique=True)
        if fresh.size > missing:
            fresh = rng.choice(fresh, missing, replace=False)
        keys = np.union1d(keys, fresh)
    if keys.size > pairs:
        keys = np.sort(rng.choice(keys, pairs, replace=False))
    return keys


def synthetic_homogeneous(n: int, avg_degree: float, feature_dim: int, num_classes: int = 8,
                          degree_skew: float = 2.0, seed: int = 0, *,
                          split: tuple[float, float, float] = (0.6, 0.2, 0.2),
                          name: str | None = None) -> HomogeneousGraph:
    """A random undirected graph with power-law degrees, features and learnable labels.

    Structure: ``round(avg_degree * n / 2)`` distinct unordered vertex pairs (never a duplicate
    edge, never a self-loop),
    stored in both directions, so that ``m = |E| = avg_degree * n`` directed edges (as Planetoid
    stores citation graphs) and the mean in-degree is ``avg_degree``. Pair ends are drawn with
    Pareto vertex weights of tail index ``degree_skew`` (a Chung-Lu graph: expected degree
    proportional to weight, so P(degree >= x) ~ x^-degree_skew; smaller = heavier hubs,
    ``float('inf')`` = uniform, Erdos-Renyi-like). Every vertex gets at least one edge when
    ``avg_degree >= 2``. Edges are sorted by destination, then source.

    Features: float32 ``[n, feature_dim]``, a ``min(num_classes, 16)``-dimensional latent vector
    per vertex seen through a random linear map, plus unit noise. Labels: argmax over classes of a
    random projection of the latent plus the mean latent of the vertex's neighbours (so labels
    depend on features and graph). Split: a random permutation cut in the ``split`` proportions.

    Args:
        n: vertex count (>= 2).
        avg_degree: mean in-degree = directed edges per vertex (> 0; capped at ``n - 1``).
        feature_dim: feature width ``k`` (> 0).
        num_classes: classes (>= 2).
        degree_skew: Pareto tail index (> 0).
        seed: random seed; the same arguments give the same graph.
        split: train / val / test fractions (each > 0, sum <= 1).
        name: graph name (default ``synthetic-n<n>-d<avg_degree>-k<feature_dim>``).

    Returns:
        A :class:`HomogeneousGraph`; ``info`` records the generator's arguments.

    Raises:
        ValueError: an argument out of range.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 (got {n})")
    if not avg_degree > 0:
        raise ValueError(f"avg_degree must be > 0 (got {avg_degree})")
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be > 0 (got {feature_dim})")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (got {num_classes})")
    if not degree_skew > 0:
        raise ValueError(f"degree_skew must be > 0 (got {degree_skew}); use float('inf') for uniform degrees")
    if len(split) != 3 or min(split) <= 0 or sum(split) > 1 + 1e-9:
        raise ValueError(f"split must be three fractions > 0 with sum <= 1 (got {split})")
    rng = np.random.default_rng(seed)
    keys = _undirected_pairs(rng, n, round(min(avg_degree, n - 1) * n / 2), degree_skew)
    u, v = keys // n, keys % n
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    order = np.lexsort((src, dst))
    src, dst = src[order], dst[order]

    r = min(num_classes, 16)
    z = rng.standard_normal((n, r))
    mix = rng.standard_normal((r, feature_dim)) / np.sqrt(r)
    x = (rng.standard_normal((n, feature_dim)) + z @ mix).astype(np.float32)

    deg = np.bincount(dst, minlength=n).astype(np.float64)
    neigh = np.zeros_like(z)
    np.add.at(neigh, dst, z[src])
    neigh /= np.maximum(deg, 1.0)[:, None]
    score = (z + neigh) @ rng.standard_normal((r, num_classes)) + 0.1 * rng.standard_normal((n, num_classes))
    labels = (score - score.mean(axis=0, keepdims=True)).argmax(axis=1).astype(np.int64)

    perm = rng.permutation(n).astype(np.int64)
    n_tr = max(1, int(round(split[0] * n)))
    n_va = max(1, int(round(split[1] * n)))
    n_te = max(1, min(n - n_tr - n_va, int(round(split[2] * n))))
    tr, va, te = perm[:n_tr], perm[n_tr:n_tr + n_va], perm[n_tr + n_va:n_tr + n_va + n_te]
    name = name or f"synthetic-n{n}-d{avg_degree:g}-k{feature_dim}"
    return HomogeneousGraph(
        name=name, num_nodes=n, src=torch.from_numpy(src), dst=torch.from_numpy(dst), features=torch.from_numpy(x),
        labels=torch.from_numpy(labels), num_classes=num_classes, train_idx=torch.from_numpy(np.sort(tr)),
        val_idx=torch.from_numpy(np.sort(va)), test_idx=torch.from_numpy(np.sort(te)),
        info={"synthetic": True, "n": n, "avg_degree": avg_degree, "feature_dim": feature_dim,
              "num_classes": num_classes, "degree_skew": degree_skew, "seed": seed, "split": tuple(split)})
