"""The heterogeneous graphs of the HGNN studies by name, and HAN's metapaths under an edge cap.

``01-hgnn-training`` trains on them; ``05-parallelism-analysis`` rebuilds the same graphs to count
the work of 01's measured configurations.
"""

from __future__ import annotations

from studylib import memory
from studylib.data import specs
from studylib.data.edges import metapath_adjacency
from studylib.data.hetero import HeteroGraph
from studylib.data.synthetic import synthetic_hetero


def load_graph(dataset: str, synthetic_scale: float = 1.0, seed: int = 0, options: dict | None = None) -> HeteroGraph:
    """The graph of one configuration, named by a dataset spec (:mod:`studylib.data.specs`): a
    built-in name (``acm``, ``imdb``, ``dblp``, ``ogbn-mag``), ``"synthetic"`` (ACM's schema, node
    counts times ``synthetic_scale``), ``heco:<folder>`` (the user's graph, read in place),
    ``ogb:ogbn-mag`` or ``pyg:<class>`` yielding a heterogeneous graph. ``options`` (this spec's
    entry of ``dataset_options``): ``target``, ``split``, ``metapaths``, ``type_names``.

    Raises :class:`studylib.data.specs.DataSpecError` naming the spec (missing path, another
    format, not heterogeneous, no labels, a metapath through a relation the graph lacks),
    ``DatasetUnavailableError`` (naming the dataset, URL and mirror variable), and
    :class:`studylib.memory.Refused` (estimate and available memory) for a graph that would not
    fit in memory: refused before it is read or generated."""
    if dataset == "synthetic":
        memory.require(memory.synthetic_hetero_estimate("acm", synthetic_scale),
                       what=f"synthetic graph at synthetic_scale={synthetic_scale:g}")
        return synthetic_hetero("acm", scale=synthetic_scale, seed=seed)
    return specs.load(dataset, specs.HETEROGENEOUS, options=options, synthetic_scale=synthetic_scale, seed=seed)


def dataset_options(params, dataset: str) -> dict | None:
    """The ``dataset_options`` entry of ``dataset`` in ``params`` (``None`` when absent)."""
    return (getattr(params, "dataset_options", None) or {}).get(dataset)


def metapath_edges(graph: HeteroGraph, metapath: list) -> int:
    """Edges of the metapath-reachable graph of ``metapath`` (distinct node pairs, as DGL's
    ``metapath_reachable_graph`` builds it), counted with scipy sparse products
    (:func:`studylib.data.edges.metapath_adjacency`, no DGL needed); cached on the graph's
    ``info`` dict."""
    cache = graph.info.setdefault("_metapath_edges", {})
    key = tuple(tuple(et) for et in metapath)
    if key not in cache:
        cache[key] = int(metapath_adjacency(graph, key).nnz)
    return cache[key]


def han_metapaths(graph: HeteroGraph, max_edges: int = 0) -> tuple[dict, dict[str, int]]:
    """The graph's named metapaths that HAN uses under an edge cap: ``(kept, skipped)`` where
    ``kept`` maps name -> edge types and ``skipped`` maps name -> edge count of each metapath whose
    graph has more than ``max_edges`` edges (``0`` = no cap). Raises ``ValueError`` when the cap
    leaves no metapath."""
    kept, skipped = {}, {}
    for name, path in graph.metapaths.items():
        n = metapath_edges(graph, path) if max_edges else 0
        (skipped.__setitem__(name, n) if max_edges and n > max_edges else kept.__setitem__(name, path))
    if not kept:
        raise ValueError(f"{graph.name}: every metapath has more than han_max_metapath_edges={max_edges} edges "
                         f"({skipped}); raise the cap")
    return kept, skipped
