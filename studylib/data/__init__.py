"""Datasets: the registry, mirror resolution, loaders of real heterogeneous graphs and same-schema
synthetic generators.

Public API::

    REGISTRY: dict[str, DatasetSpec]          # name, url, folder, raw files + sha256, loader, statistics
    resolve(name, download=False) -> Path     # cache -> mirror ($STUDYLIB_DATA_MIRROR) -> download if allowed
    load_hetero(name, download=False)         # "acm", "imdb", "dblp", "ogbn-mag" -> HeteroGraph
    load_heco(directory, name, type_names=None, *, target=None, split=None) -> HeteroGraph
    synthetic_hetero(like="acm", scale=1.0, avg_degree=None, degree_skew=1.5,
                     feature_dim=None, num_classes=None, seed=0) -> HeteroGraph
    specs.load("heco:<folder>" | "ogb:<name>" | "planetoid:<name>" | "pyg:<class>" |
               "ratings:<file>" | "lightgcn:<folder>" | built-in name, kind)   # any graph by spec
    specs.statistics_table({name: graph})      # every notebook's opening table of its graphs

Errors: :class:`DatasetUnavailableError` (a ``FileNotFoundError``) when a dataset cannot be had,
:class:`ChecksumMismatchError` (a ``ValueError``) when a raw file differs from its recorded SHA-256,
``ValueError`` for unknown dataset names.
"""

from studylib.data.graph_cache import GraphCache
from studylib.data.hetero import EdgeType, HeteroGraph
from studylib.data.hgnn_datasets import (
    HETERO_DATASETS,
    hetero_from_ogb,
    hetero_from_pyg,
    load_acm,
    load_dblp,
    load_heco,
    load_hetero,
    load_imdb,
    load_ogbn_mag,
)
from studylib.data.registry import (
    REGISTRY,
    ChecksumMismatchError,
    DatasetSpec,
    DatasetStatistics,
    DatasetUnavailableError,
    dataset_names,
    get_spec,
    resolve,
    resolve_details,
    sha256_file,
)
from studylib.data.synthetic import HeteroSchema, schema_of, synthetic_hetero

__all__ = [
    "HETERO_DATASETS",
    "REGISTRY",
    "ChecksumMismatchError",
    "DatasetSpec",
    "DatasetStatistics",
    "DatasetUnavailableError",
    "EdgeType",
    "GraphCache",
    "HeteroGraph",
    "HeteroSchema",
    "dataset_names",
    "get_spec",
    "hetero_from_ogb",
    "hetero_from_pyg",
    "load_acm",
    "load_dblp",
    "load_heco",
    "load_hetero",
    "load_imdb",
    "load_ogbn_mag",
    "resolve",
    "resolve_details",
    "schema_of",
    "sha256_file",
    "synthetic_hetero",
]
