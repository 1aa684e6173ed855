"""Same-schema synthetic heterogeneous graphs, for sweeps beyond the real datasets' sizes and for
machines without the dataset mirror.

:func:`synthetic_hetero` copies the *schema* of a real dataset (node types, relation types with
their reverses, feature widths, target type, classes, metapaths, split proportions) from a
hard-coded table built from the published statistics in :data:`studylib.data.REGISTRY` (so it
needs no files), or from a loaded :class:`HeteroGraph`, and draws a random graph of that schema at
any scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from studylib.data.hetero import EdgeType, HeteroGraph
from studylib.data.registry import REGISTRY, reverse_edge_type

__all__ = ["SYNTHETIC_LIKE", "HeteroSchema", "schema_of", "synthetic_hetero"]

# Datasets whose schema is hard-coded (through the registry's statistics) and how their loaders
# name reverse relations.
SYNTHETIC_LIKE = {"acm": "src_dst", "imdb": "src_dst", "dblp": "src_dst", "ogbn-mag": "rev"}


@dataclass
class HeteroSchema:
    """The schema and sizes a synthetic graph copies.

    Attributes:
        name: the dataset it describes.
        num_nodes: node count per type (at scale 1).
        relations: ``(forward edge type, reverse edge type or None, edge count)`` per relation;
            the reverse type, when present, holds exactly the reversed forward edges.
        feature_dims: width per node type (``None``: featureless).
        target, num_classes, split: labelled type, classes, (train, val, test) sizes at scale 1.
        metapaths: named metapaths over the edge types.
    """

    name: str
    num_nodes: dict[str, int]
    relations: list[tuple[EdgeType, EdgeType | None, int]]
    feature_dims: dict[str, int | None]
    target: str
    num_classes: int
    split: tuple[int, int, int]
    metapaths: dict[str, list[EdgeType]] = field(default_factory=dict)

    def edge_types(self) -> list[EdgeType]:
        """All canonical edge types (forward and reverse), sorted."""
        out = [f for f, _, _ in self.relations] + [r for _, r, _ in self.relations if r is not None]
        return sorted(out)


def _schema_from_registry(name: str) -> HeteroSchema:
    spec = REGISTRY[name]
    st = spec.statistics
    style = SYNTHETIC_LIKE[name]
    relations = [(et, reverse_edge_type(et, style), int(n)) for et, n in sorted(st.num_edges.items())]
    return HeteroSchema(
        name=name,
        num_nodes=dict(st.num_nodes),
        relations=relations,
        feature_dims=dict(st.feature_dims),
        target=st.target,
        num_classes=int(st.num_classes),
        split=tuple(st.split),
        metapaths={k: list(v) for k, v in spec.metapaths.items()},
    )


def _edge_keys(s: torch.Tensor, d: torch.Tensor, n_d: int) -> np.ndarray:
    return np.sort(s.numpy().astype(np.int64) * n_d + d.numpy().astype(np.int64))


def _schema_from_graph(g: HeteroGraph) -> HeteroSchema:
    """Schema of a loaded graph; pairs each edge type with the type holding its reversed edges."""
    paired: set[EdgeType] = set()
    relations: list[tuple[EdgeType, EdgeType | None, int]] = []
    for et in g.edge_types:
        if et in paired:
            continue
        s_t, _, d_t = et
        n = g.num_edges(et)
        partner = None
        fwd_keys = None
        for cand in g.edge_types:
            if cand in paired or cand == et or cand[0] != d_t or cand[2] != s_t or g.num_edges(cand) != n:
                continue
            if fwd_keys is None:
                fwd_keys = _edge_keys(*g.edges[et], g.num_nodes[d_t])
            cs, cd = g.edges[cand]
            if np.array_equal(fwd_keys, _edge_keys(cd, cs, g.num_nodes[d_t])):
                partner = cand
                break
        paired.add(et)
        if partner is not None:
            paired.add(partner)
        relations.append((et, partner, n))
    return HeteroSchema(
        name=g.name,
        num_nodes=dict(g.num_nodes),
        relations=relations,
        feature_dims=g.feature_dims(),
        target=g.target,
        num_classes=int(g.num_classes),
        split=(len(g.train_idx), len(g.val_idx), len(g.test_idx)),
        metapaths={k: list(v) for k, v in g.metapaths.items()},
    )


def schema_of(like: str | HeteroGraph) -> HeteroSchema:
    """The :class:`HeteroSchema` of a dataset name (``"acm"``, ``"imdb"``, ``"dblp"``,
    ``"ogbn-mag"``; from the hard-coded published statistics, no files needed) or of a graph.

    Raises:
        ValueError: a name without a hard-coded schema.
    """
    if isinstance(like, HeteroGraph):
        return _schema_from_graph(like)
    if like not in SYNTHETIC_LIKE:
        raise ValueError(
            f"no synthetic schema for {like!r}; choose one of {', '.join(SYNTHETIC_LIKE)} or pass a HeteroGraph"
        )
    return _schema_from_registry(like)


def _weights(rng: np.random.Generator, n: int, skew: float) -> np.ndarray:
    """Pareto node weights with tail index ``skew`` (P(w >= x) = x^-skew, x >= 1), normalised."""
    if not np.isfinite(skew):
        w = np.ones(n)
    else:
        w = (1.0 - rng.random(n)) ** (-1.0 / skew)
    return w / w.sum()


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1).astype(np.int64)


def _relation_edges(rng: np.random.Generator, n_s: int, n_d: int, m: int, skew: float) -> tuple[np.ndarray, np.ndarray]:
    """``m`` distinct (src, dst) pairs: every source and destination used at least once when ``m``
    allows, the rest drawn by Pareto weights on both sides; sorted by (src, dst)."""
    m = int(min(max(m, 1), n_s * n_d))
    cdf_s = np.cumsum(_weights(rng, n_s, skew))
    cdf_d = np.cumsum(_weights(rng, n_d, skew))

    def cover(n: int, cdf: np.ndarray) -> np.ndarray:
        if m >= n:
            return np.concatenate([np.arange(n, dtype=np.int64), _draw(rng, cdf, m - n)])
        return rng.permutation(n)[:m].astype(np.int64)

    src = cover(n_s, cdf_s)
    dst = rng.permutation(cover(n_d, cdf_d))
    keys = np.unique(src * n_d + dst)
    for _ in range(50):  # top up the pairs lost as duplicates
        missing = m - len(keys)
        if missing <= 0:
            break
        extra = np.unique(_draw(rng, cdf_s, 2 * missing + 8) * n_d + _draw(rng, cdf_d, 2 * missing + 8))
        fresh = np.setdiff1d(extra, keys, assume_unique=True)
        if len(fresh) > missing:
            fresh = rng.choice(fresh, missing, replace=False)
        keys = np.union1d(keys, fresh)
    else:
        if len(keys) < m and n_s * n_d <= 50_000_000:  # dense corner case: uniform absent pairs
            absent = np.setdiff1d(np.arange(n_s * n_d, dtype=np.int64), keys, assume_unique=True)
            keys = np.union1d(keys, rng.choice(absent, m - len(keys), replace=False))
    return keys // n_d, keys % n_d


def _neighbour_mean(src: np.ndarray, dst: np.ndarray, n_dst: int, h: np.ndarray) -> np.ndarray:
    """``[n_dst, k]`` float64: the mean of ``h[src]`` over the edges into each destination (zero rows for
    destinations without edges). Accumulates ``h[src] / deg[dst]`` in edge order, the same sums as a CSR
    product of the mean operator with ``h``, in numpy alone."""
    deg = np.bincount(dst, minlength=n_dst).astype(np.float64)
    out = np.zeros((n_dst, h.shape[1]), dtype=np.float64)
    np.add.at(out, dst, (1.0 / deg[dst])[:, None] * h[src])
    return out


def _standardise(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0, keepdims=True)
    sd = a.std()
    return a / sd if sd > 0 else a


def synthetic_hetero(
    like: str | HeteroGraph = "acm",
    scale: float = 1.0,
    avg_degree: float | None = None,
    degree_skew: float = 1.5,
    feature_dim: int | dict[str, int | None] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> HeteroGraph:
    """A random heterogeneous graph with the schema of a real dataset, at any scale.

    Schema (node types, relation types including reverses, feature widths, target, metapaths)
    comes from ``like``: a name (``"acm"``, ``"imdb"``, ``"dblp"``, ``"ogbn-mag"``; hard-coded
    from the published statistics, no files needed) or a loaded :class:`HeteroGraph`.

    Structure: node counts are the published ones times ``scale`` (at least 2 per type). Each
    relation gets ``round(E * scale)`` distinct edges (so the average degree of the real graph is
    kept), or ``round(avg_degree * n_src)`` when ``avg_degree`` (mean out-degree of the source
    type) is given, capped at ``n_src * n_dst``. Duplicate edges: never (each relation's pairs are
    distinct); self-loops only in a relation from a type to itself, where a drawn pair may have
    equal ends. Every source and destination node gets at least
    one edge when the count allows; the remaining edge ends are drawn with Pareto (Zipf-like)
    node weights of tail index ``degree_skew`` on both sides, so that the source-side degree
    distribution follows P(degree >= k) ~ k^-degree_skew (smaller = more skewed, heavier hubs;
    ``float('inf')`` = uniform). The reverse edge type holds exactly the reversed edges.

    Features: float32 standard normal, widths of the schema; ``feature_dim`` overrides them: an int
    for every type that has features, or a dict type -> width (``None``/0 = featureless) for the
    types it names.

    Labels (``num_classes``, default the dataset's): argmax over classes of a random linear
    projection of the target's features (random latent vectors when featureless) plus, for each
    metapath, the mean of that projection over the metapath neighbours, plus a little noise; so
    labels depend on features and on the graph, and a model can learn them well above chance.
    Split: a random permutation cut in the dataset's train/val/test proportions (at least
    ``num_classes`` training nodes where possible, at least one validation and test node).

    Args:
        like: dataset name or graph to copy the schema of.
        scale: node-count multiplier (> 0).
        avg_degree: mean out-degree per relation (source side); ``None`` keeps the dataset's.
        degree_skew: Pareto tail index (> 0) of the node weights.
        feature_dim: feature width override (see above).
        num_classes: class count override (>= 2).
        seed: random seed; the same arguments and seed give the same graph.

    Returns:
        A :class:`HeteroGraph` named ``"synthetic-<dataset>"``: int64 edges (sorted by source,
        then destination), float32 features, int64 labels and split indices; ``info`` records the
        generator's arguments.

    Raises:
        ValueError: an unknown ``like`` name or an invalid argument.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0 (got {scale})")
    if avg_degree is not None and not avg_degree > 0:
        raise ValueError(f"avg_degree must be > 0 (got {avg_degree})")
    if not degree_skew > 0:
        raise ValueError(f"degree_skew must be > 0 (got {degree_skew}); use float('inf') for uniform degrees")
    schema = schema_of(like)
    C = int(num_classes if num_classes is not None else schema.num_classes)
    if C < 2:
        raise ValueError(f"num_classes must be >= 2 (got {C})")
    rng = np.random.default_rng(seed)

    n = {t: max(2, int(round(c * scale))) for t, c in sorted(schema.num_nodes.items())}

    dims = {t: schema.feature_dims.get(t) for t in n}
    if isinstance(feature_dim, dict):
        unknown = set(feature_dim) - set(n)
        if unknown:
            raise ValueError(f"feature_dim names unknown node types {sorted(unknown)}; types: {sorted(n)}")
        dims.update(feature_dim)
    elif feature_dim is not None:
        if int(feature_dim) <= 0:
            raise ValueError(f"feature_dim must be > 0 (got {feature_dim})")
        dims = {t: (int(feature_dim) if w else None) for t, w in dims.items()}
    dims = {t: (int(w) if w else None) for t, w in dims.items()}

    edges: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]] = {}
    for fwd, rev, count in sorted(schema.relations, key=lambda r: r[0]):
        s_t, _, d_t = fwd
        m = round(avg_degree * n[s_t]) if avg_degree is not None else round(count * scale)
        src, dst = _relation_edges(rng, n[s_t], n[d_t], m, degree_skew)
        edges[fwd] = (torch.from_numpy(src), torch.from_numpy(dst))
        if rev is not None:
            order = np.lexsort((src, dst))
            edges[rev] = (torch.from_numpy(dst[order]), torch.from_numpy(src[order]))

    # Features: a k-dimensional latent per node seen through a random linear map, plus noise
    # (unit variance each), so that the features carry the latent that the labels depend on.
    tgt = schema.target
    k = min(C, 32)
    z = rng.standard_normal((n[tgt], k))
    features = {}
    for t, w in dims.items():
        if not w:
            continue
        lat = z if t == tgt else rng.standard_normal((n[t], k))
        mix = (rng.standard_normal((k, w)) / np.sqrt(k)).astype(np.float32)
        x = rng.standard_normal((n[t], w), dtype=np.float32)
        x += lat.astype(np.float32) @ mix
        features[t] = torch.from_numpy(x)

    # Labels from the latent of each target node and its metapath neighbourhoods
    latent = _standardise(z)
    for _, path in sorted(schema.metapaths.items()):
        h = z
        cur = tgt
        for et in path:
            if et[0] != cur or et not in edges:
                raise ValueError(f"metapath {path} is not a walk over the schema's edge types (at {et})")
            s, d = edges[et]
            h = _neighbour_mean(s.numpy(), d.numpy(), n[et[2]], h)
            cur = et[2]
        if cur == tgt:
            latent = latent + _standardise(h)
    score = latent if k == C else latent @ rng.standard_normal((k, C))
    score = _standardise(score) + 0.1 * rng.standard_normal(score.shape)
    labels = (score - score.mean(axis=0, keepdims=True)).argmax(axis=1).astype(np.int64)

    # Split in the dataset's proportions
    nt = n[tgt]
    total = max(schema.num_nodes[tgt], 1)
    fr = [k / total for k in schema.split]
    sizes = [max(min(C, nt - 2), round(fr[0] * nt)), max(1, round(fr[1] * nt)), max(1, round(fr[2] * nt))]
    for i in (2, 1, 0):
        over = sum(sizes) - nt
        if over > 0:
            sizes[i] = max(1 if nt >= 3 else 0, sizes[i] - over)
    perm = rng.permutation(nt).astype(np.int64)
    tr, va = sizes[0], sizes[0] + sizes[1]
    split = [np.sort(perm[:tr]), np.sort(perm[tr:va]), np.sort(perm[va : va + sizes[2]])]

    return HeteroGraph(
        name=f"synthetic-{schema.name}",
        num_nodes=n,
        edges=edges,
        features=features,
        target=tgt,
        labels=torch.from_numpy(labels),
        num_classes=C,
        train_idx=torch.from_numpy(split[0]),
        val_idx=torch.from_numpy(split[1]),
        test_idx=torch.from_numpy(split[2]),
        metapaths={k: list(v) for k, v in schema.metapaths.items()},
        info={
            "synthetic": True,
            "like": schema.name,
            "scale": scale,
            "avg_degree": avg_degree,
            "degree_skew": degree_skew,
            "feature_dims": dims,
            "num_classes": C,
            "seed": seed,
        },
    )
