"""The dataset registry and the resolution of a dataset's raw files: cache, mirror, download.

Every dataset the studies use has a :class:`DatasetSpec` in :data:`REGISTRY`: its public source
URL, the folder it occupies in the cache (PyTorch Geometric's ``<folder>/raw/...`` layout), the raw
files with their SHA-256 checksums, the name of its loader, its published statistics and its
citation and licence.

:func:`resolve` finds a dataset's raw files, in this order:

1. the project cache ``paths.data_dir()/<folder>`` when it holds every raw file (checksums are
   checked; they are small files);
2. the read-only mirror ``$STUDYLIB_DATA_MIRROR/<folder>`` (see ``paths.MIRROR_VARIABLE``): the raw
   files are copied into the cache (never written into the mirror) and their checksums verified;
3. a download into the cache, for datasets that have a download function, only when the caller
   passes ``download=True`` (``python -m studylib data`` does; every loader defaults to
   ``download=False``) and no mirror is set: a mirror that is set but lacks the files is an error,
   never a reason to go to the network.

When none of these works it raises :class:`DatasetUnavailableError`, a ``FileNotFoundError`` whose
message names the dataset, its URL, the expected raw files and the mirror variable.

Nothing that came from a mirror is unpickled: only ``raw/`` files are taken from a mirror (a
mirror's ``processed/`` folder is never linked). Files that a library (PyG, ogb) writes into
``<folder>/processed/`` of the cache are produced there from the raw files; their SHA-256 are
recorded (:func:`record_processed`) and, before a loader lets the library unpickle them,
:func:`drop_untrusted_processed` removes a ``processed/`` folder that does not match the record
(a symbolic link, a file put there by anything else), so that the library rebuilds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from studylib import paths
from studylib.atomic import set_created_mode
from studylib.data.errors import ChecksumMismatchError, DatasetUnavailableError
from studylib.data.hetero import EdgeType
from studylib.data.ogb_loader import open_node_dataset

__all__ = [
    "ChecksumMismatchError",
    "DatasetSpec",
    "DatasetStatistics",
    "DatasetUnavailableError",
    "REGISTRY",
    "Resolved",
    "dataset_names",
    "drop_untrusted_processed",
    "get_spec",
    "locally_processed",
    "record_processed",
    "relation_name",
    "resolve",
    "resolve_details",
    "reverse_edge_type",
    "sha256_file",
]

# Name of the provenance file that resolve() writes next to ``raw/`` in the cache.
SOURCE_RECORD = "studylib-source.json"
# Folder (next to ``raw/``) where PyG and ogb write their pickled, processed copies.
PROCESSED_DIR = "processed"
_DOWNLOAD_TIMEOUT_S = 120


# --------------------------------------------------------------------------------------------
# Relation naming, shared by the loaders and the synthetic generator so that schemas agree.
# --------------------------------------------------------------------------------------------
def relation_name(src: str, dst: str) -> str:
    """Relation name of an edge type from node type ``src`` to ``dst``: ``"<src>_<dst>"``.

    Example: ``relation_name("movie", "director") == "movie_director"``. Used for every dataset
    whose source names its relations ambiguously (PyG names them all ``"to"``; HeCo files only by
    letters).
    """
    return f"{src}_{dst}"


def reverse_edge_type(etype: EdgeType, style: str = "src_dst") -> EdgeType:
    """The canonical edge type of the reverse relation of ``etype = (src, rel, dst)``.

    ``style="src_dst"``: ``(dst, "<dst>_<src>", src)``; for a relation from a type to itself (where
    that name would collide) ``(src, "rev_<rel>", src)``. ``style="rev"``: ``(dst, "rev_<rel>", src)``
    (ogbn-mag, whose relations have their own names).
    """
    src, rel, dst = etype
    if style == "rev" or src == dst:
        return (dst, f"rev_{rel}", src)
    if style != "src_dst":
        raise ValueError(f"unknown reverse style {style!r} (use 'src_dst' or 'rev')")
    return (dst, relation_name(dst, src), src)


def _et(src: str, dst: str) -> EdgeType:
    return (src, relation_name(src, dst), dst)


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetStatistics:
    """Published statistics of a dataset (what a loaded copy is checked against).

    Attributes:
        num_nodes: node count per node type.
        num_edges: edge count per relation, keyed by the canonical edge type in its *forward*
            direction (the loaders add the reverse type with the same count).
        feature_dims: feature width per node type, ``None`` for featureless types.
        num_classes: classes of the target type (``None`` when not a node classification set).
        split: (train, val, test) sizes of the standard split (``None`` when none).
        target: the labelled node type (``None`` when none).
        source: where the numbers come from.
    """

    num_nodes: dict[str, int]
    num_edges: dict[EdgeType, int]
    feature_dims: dict[str, int | None]
    num_classes: int | None = None
    split: tuple[int, int, int] | None = None
    target: str | None = None
    source: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the registry.

    Attributes:
        name: registry key (``"acm"``, ``"ogbn-mag"``, ...).
        url: public source URL (what a download step fetches, or the page to get it from).
        folder: folder relative to the cache and to the mirror; it holds ``raw/``.
        raw_files: raw file name (relative to ``<folder>/raw/``) -> SHA-256 hex digest. Empty for
            datasets whose files are managed by their own library (ogbn-mag: url only).
        loader: name of the loader function in :mod:`studylib.data.hgnn_datasets`, or ``None``
            where another module loads the dataset.
        statistics: published statistics (:class:`DatasetStatistics`).
        metapaths: named metapaths over the loader's canonical edge types (for HAN).
        citation: how to cite it, and its licence.
        download: function ``download(folder: Path) -> None`` that fetches the raw files into
            ``folder/raw`` (network), or ``None`` when there is no download step.
    """

    name: str
    url: str
    folder: str
    raw_files: dict[str, str]
    loader: str | None
    statistics: DatasetStatistics
    metapaths: dict[str, list[EdgeType]] = field(default_factory=dict)
    citation: str = ""
    download: Callable[[Path], None] | None = None

    @property
    def raw_file_names(self) -> list[str]:
        """The raw file names, sorted."""
        return sorted(self.raw_files)

    def cache_path(self) -> Path:
        """``paths.data_dir()/<folder>`` (may not exist yet)."""
        return paths.data_dir() / self.folder


# ------------------------------------------------------------------ download functions
def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (atomically: temporary file, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
            shutil.copyfileobj(resp, out, length=1 << 20)
        set_created_mode(tmp)  # mkstemp makes 0600; give the umask's mode
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download_files(base_url: str, names: list[str]) -> Callable[[Path], None]:
    def download(folder: Path) -> None:
        for n in names:
            _fetch(f"{base_url}/{n}", folder / "raw" / n)

    return download


def _download_zip(url: str) -> Callable[[Path], None]:
    """A download function that fetches a zip archive and extracts its files flat into ``raw/``."""

    def download(folder: Path) -> None:
        raw = folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        archive = raw / "download.zip"
        _fetch(url, archive)
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.infolist():
                    if member.is_dir():
                        continue
                    target = raw / Path(member.filename).name
                    with zf.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        finally:
            archive.unlink(missing_ok=True)

    return download


def _download_ogb(name: str) -> Callable[[Path], None]:
    def download(folder: Path) -> None:
        # ogb downloads and pre-processes in one go; it decides the layout under its root.
        with locally_processed(folder):
            open_node_dataset(name, root=folder.parent, download=True, source_url=REGISTRY[name].url)

    return download


# ------------------------------------------------------------------ the registry
_ACM_FILES = {
    "a_feat.npz": "e2f2ac8d357310149fc7badbf32ea0b171dec25aad6c37ec45de592666c65555",
    "labels.npy": "019284b3e6a58fc8ebd432fb99aaaf183ad41dbf56b8ca7af0b56dca9dd844b5",
    "p_feat.npz": "9e1019dfceaaabb19ee5b5f09de3147ffbaa818b43c3fc3f92bdfaf4ed5f02f4",
    "pa.txt": "e67385fc13c3b3b624d81de7eb6e4245d9aeafa063c5466c6fab0f151bcb84d6",
    "ps.txt": "3da7615ef5567c5f7f1ab9ec770c4b4b8b6a54790baa1cda3d4499329dfc22d5",
    "test_20.npy": "eb90e38c882009c6439d749d160d39ed64f8813e9f672c02be54993914934afa",
    "train_20.npy": "6bf4c1cef638f3ffe1826091b9be7fbff23a4935dfbde03c24b492d264d67684",
    "val_20.npy": "4280dccb661a50196502a39973a462919399fcfcd97b1d43581dfa9ca02d1b5d",
}
_DBLP_FILES = {
    "adjM.npz": "653a863eaa00b5e3c0874dfea6b1366ff7501112bdef85f43569509833a3fc9f",
    "features_0.npz": "997876bf8d90d29fdb90bf4801a9909893a9ee5646a85aeca079ce167595ec41",
    "features_1.npz": "99c3d1836c44cda016f790d1cdbcc76fed729e48b9e2a9332eac145960716d9f",
    "features_2.npy": "462ea84b5eebfd4883910d0d15afff53e960ae8a80d7d62591f86a8d61fb5467",
    "labels.npy": "817efdc3ebb9e96067b8770dad5894b06ecabde2ac95d4b17443985f0439fda7",
    "node_types.npy": "a4fda13751620b2843502178dd0ffc666dd871eaac9314a042c1f340f610d41b",
    "train_val_test_idx.npz": "888d9aaa064247b26f425e758ad43b2dc425f7c56ce0aa721bbe70557d8282e3",
}
_IMDB_FILES = {
    "adjM.npz": "a7f80e56425f34e4db52cb00d6ed81d72284cf29f7b417af4d697d826ddd9b87",
    "features_0.npz": "ea1607825c9d005f7f2be3dcd3353d793379e1e0bf374f83f1b78e16c5e6b693",
    "features_1.npz": "7bcc8c0faca411042283007013383adb9ae2f5ba81bb79787ca4e3ea0adb00da",
    "features_2.npz": "0f4b576aa1c473de6a0fc2d5cee24d0c1ee0342e4b208d2ab9a508374176c154",
    "labels.npy": "34321e008b9d7fac93942e1ec52aa5190d8e85654147c2a21d4ce0991fff4225",
    "node_types.npy": "a8bbd38f8231efbfef166e0cb38fa9a5ec5de79047c46afa2fb3390566bf32f1",
    "train_val_test_idx.npz": "a6023274aa4ace2f6c07ac1cd49e1497703d5e4485238ea0794ab488ffbe3a5f",
}
_MOVIELENS_FILES = {
    "README": "efcbf3c31ece56e07316228069ffb29967f838035a5c89865a4578d5532ef14f",
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}
_CORA_FILES = {
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
}

_ACM_URL = "https://github.com/liun-online/HeCo/tree/main/data/acm"
_ACM_RAW_BASE = "https://raw.githubusercontent.com/liun-online/HeCo/main/data/acm"
_IMDB_URL = "https://www.dropbox.com/s/g0btk9ctr1es39x/IMDB_processed.zip?dl=1"
_DBLP_URL = "https://www.dropbox.com/s/yh4grpeks87ugr2/DBLP_processed.zip?dl=1"
_MAG_URL = "http://snap.stanford.edu/ogb/data/nodeproppred/mag.zip"

_MAG_WRITES = ("author", "writes", "paper")
_MAG_CITES = ("paper", "cites", "paper")
_MAG_TOPIC = ("paper", "has_topic", "field_of_study")
_MAG_AFFIL = ("author", "affiliated_with", "institution")

REGISTRY: dict[str, DatasetSpec] = {
    "acm": DatasetSpec(
        name="acm",
        url=_ACM_URL,
        folder="acm",
        raw_files=_ACM_FILES,
        loader="load_acm",
        statistics=DatasetStatistics(
            num_nodes={"paper": 4019, "author": 7167, "subject": 60},
            num_edges={_et("paper", "author"): 13407, _et("paper", "subject"): 4019},
            feature_dims={"paper": 1902, "author": 1902, "subject": None},
            num_classes=3,
            split=(60, 1000, 1000),
            target="paper",
            source="node counts, paper features and classes: data README; edge counts: HeCo "
            "(Wang et al., KDD 2021) Table 1; split: train_20/val_20/test_20 (20 per class, 1000, 1000)",
        ),
        metapaths={
            "PAP": [_et("paper", "author"), _et("author", "paper")],
            "PSP": [_et("paper", "subject"), _et("subject", "paper")],
        },
        citation="ACM as preprocessed by HeCo: X. Wang, N. Liu, H. Han, C. Shi, 'Self-supervised "
        "Heterogeneous Graph Neural Network with Co-contrastive Learning', KDD 2021 "
        "(github.com/liun-online/HeCo). No licence stated.",
        download=_download_files(_ACM_RAW_BASE, sorted(_ACM_FILES)),
    ),
    "imdb": DatasetSpec(
        name="imdb",
        url=_IMDB_URL,
        folder="imdb",
        raw_files=_IMDB_FILES,
        loader="load_imdb",
        statistics=DatasetStatistics(
            num_nodes={"movie": 4278, "director": 2081, "actor": 5257},
            num_edges={_et("movie", "director"): 4278, _et("movie", "actor"): 12828},
            feature_dims={"movie": 3066, "director": 3066, "actor": 3066},
            num_classes=3,
            split=(400, 400, 3478),
            target="movie",
            source="data README (MAGNN preprocessing); director/actor widths as read by torch_geometric.datasets.IMDB",
        ),
        metapaths={
            "MAM": [_et("movie", "actor"), _et("actor", "movie")],
            "MDM": [_et("movie", "director"), _et("director", "movie")],
        },
        citation="IMDB as preprocessed by MAGNN: X. Fu, J. Zhang, Z. Meng, I. King, 'MAGNN: "
        "Metapath Aggregated Graph Neural Network for Heterogeneous Graph Embedding', WWW 2020; "
        "archive as downloaded by torch_geometric.datasets.IMDB. No licence stated.",
        download=_download_zip(_IMDB_URL),
    ),
    "dblp": DatasetSpec(
        name="dblp",
        url=_DBLP_URL,
        folder="dblp",
        raw_files=_DBLP_FILES,
        loader="load_dblp",
        statistics=DatasetStatistics(
            num_nodes={"author": 4057, "paper": 14328, "term": 7723, "conference": 20},
            num_edges={
                _et("author", "paper"): 19645,
                _et("paper", "term"): 85810,
                _et("paper", "conference"): 14328,
            },
            feature_dims={"author": 334, "paper": 4231, "term": 50, "conference": None},
            num_classes=4,
            split=(400, 400, 3257),
            target="author",
            source="data README (MAGNN preprocessing, author/paper features from HeCo)",
        ),
        metapaths={
            "APA": [_et("author", "paper"), _et("paper", "author")],
            "APCPA": [
                _et("author", "paper"),
                _et("paper", "conference"),
                _et("conference", "paper"),
                _et("paper", "author"),
            ],
            "APTPA": [
                _et("author", "paper"),
                _et("paper", "term"),
                _et("term", "paper"),
                _et("paper", "author"),
            ],
        },
        citation="DBLP as preprocessed by MAGNN (Fu et al., WWW 2020), author and paper features "
        "from HeCo (Wang et al., KDD 2021); archive as downloaded by torch_geometric.datasets.DBLP. "
        "No licence stated upstream.",
        download=_download_zip(_DBLP_URL),
    ),
    "ogbn-mag": DatasetSpec(
        name="ogbn-mag",
        url=_MAG_URL,
        folder="ogbn_mag",
        raw_files={},
        loader="load_ogbn_mag",
        statistics=DatasetStatistics(
            num_nodes={"paper": 736389, "author": 1134649, "institution": 8740, "field_of_study": 59965},
            num_edges={_MAG_CITES: 5416271, _MAG_WRITES: 7145660, _MAG_AFFIL: 1043998, _MAG_TOPIC: 7505078},
            feature_dims={"paper": 128, "author": None, "institution": None, "field_of_study": None},
            num_classes=349,
            split=(629571, 64879, 41939),
            target="paper",
            source="OGB (Hu et al., NeurIPS 2020), ogb.stanford.edu/docs/nodeprop/#ogbn-mag; time split",
        ),
        metapaths={
            "PAP": [reverse_edge_type(_MAG_WRITES, "rev"), _MAG_WRITES],
            "PFP": [_MAG_TOPIC, reverse_edge_type(_MAG_TOPIC, "rev")],
            "PP": [_MAG_CITES],
            "PP_rev": [reverse_edge_type(_MAG_CITES, "rev")],
        },
        citation="W. Hu et al., 'Open Graph Benchmark: Datasets for Machine Learning on Graphs', "
        "NeurIPS 2020; graph from the Microsoft Academic Graph (K. Wang et al., Quantitative "
        "Science Studies 2020), ODC-BY licence.",
        download=_download_ogb("ogbn-mag"),
    ),
    "ogbn-products": DatasetSpec(
        name="ogbn-products",
        url="http://snap.stanford.edu/ogb/data/nodeproppred/products.zip",
        folder="ogbn_products",
        raw_files={},
        loader=None,
        statistics=DatasetStatistics(
            num_nodes={"product": 2449029},
            num_edges={("product", "copurchased", "product"): 61859140},
            feature_dims={"product": 100},
            num_classes=47,
            split=(196615, 39323, 2213091),
            target="product",
            source="OGB (Hu et al., NeurIPS 2020), ogb.stanford.edu/docs/nodeprop/#ogbn-products; sales-rank split",
        ),
        citation="W. Hu et al., 'Open Graph Benchmark', NeurIPS 2020; Amazon co-purchasing network "
        "(Bhatia et al., The extreme classification repository, 2016). Amazon licence terms.",
        download=_download_ogb("ogbn-products"),
    ),
    "ogbn-papers100M": DatasetSpec(
        name="ogbn-papers100M",
        url="http://snap.stanford.edu/ogb/data/nodeproppred/papers100M-bin.zip",
        folder="ogbn_papers100M",
        raw_files={},
        loader=None,
        statistics=DatasetStatistics(
            num_nodes={"paper": 111059956},
            num_edges={("paper", "cites", "paper"): 1615685872},
            feature_dims={"paper": 128},
            num_classes=172,
            split=(1207179, 125265, 214338),
            target="paper",
            source="OGB (Hu et al., NeurIPS 2020), ogb.stanford.edu/docs/nodeprop/#ogbn-papers100M; time split",
        ),
        citation="W. Hu et al., 'Open Graph Benchmark', NeurIPS 2020; Microsoft Academic Graph "
        "(K. Wang et al., Quantitative Science Studies 2020), ODC-BY licence.",
        download=_download_ogb("ogbn-papers100M"),
    ),
    "movielens-100k": DatasetSpec(
        name="movielens-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        folder="movielens-100k",
        raw_files=_MOVIELENS_FILES,
        loader=None,
        statistics=DatasetStatistics(
            num_nodes={"user": 943, "movie": 1682},
            num_edges={("user", "rates", "movie"): 100000},
            feature_dims={"user": None, "movie": None},
            source="GroupLens; u.data = u1.base + u1.test",
        ),
        citation="F. Maxwell Harper, Joseph A. Konstan, 'The MovieLens Datasets: History and "
        "Context', ACM TiiS 5(4), 2015. GroupLens Research: research use only, not for "
        "redistribution (never commit these files).",
    ),
    "cora": DatasetSpec(
        name="cora",
        url="https://github.com/kimiyoung/planetoid/raw/master/data",
        folder="planetoid/Cora",
        raw_files=_CORA_FILES,
        loader=None,
        statistics=DatasetStatistics(
            num_nodes={"paper": 2708},
            num_edges={("paper", "cites", "paper"): 10556},
            feature_dims={"paper": 1433},
            num_classes=7,
            split=(140, 500, 1000),
            target="paper",
            source="Planetoid split (Yang, Cohen, Salakhutdinov, ICML 2016); 10,556 directed edges",
        ),
        citation="Z. Yang, W. Cohen, R. Salakhutdinov, 'Revisiting Semi-Supervised Learning with "
        "Graph Embeddings', ICML 2016; files as shipped with Kipf & Welling's GCN code (MIT).",
    ),
}


def dataset_names() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}") from None


# --------------------------------------------------------------------------------------------
# Checksums and resolution
# --------------------------------------------------------------------------------------------
def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Resolved:
    """What :func:`resolve_details` found.

    Attributes:
        name: dataset name.
        folder: the cache folder holding ``raw/``.
        origin: ``"cache"``, ``"mirror"`` or ``"download"``.
        checksums_verified: whether every raw file matched the registry's SHA-256 (``False`` when
            the dataset has no checksums, or a download differs from them).
        mirror: the mirror folder the files were copied from, if any.
        sha256: raw file name -> SHA-256 as found.
    """

    name: str
    folder: Path
    origin: str
    checksums_verified: bool
    mirror: Path | None = None
    sha256: dict[str, str] = field(default_factory=dict)

    def info(self) -> dict:
        """A JSON-friendly provenance dict (goes into ``HeteroGraph.info``)."""
        spec = REGISTRY[self.name]
        return {
            "dataset": self.name,
            "source_folder": str(self.folder),
            "origin": self.origin,
            "mirror": str(self.mirror) if self.mirror else None,
            "url": spec.url,
            "checksums_verified": self.checksums_verified,
            "raw_files": spec.raw_file_names,
            "sha256": dict(self.sha256),
        }


def _has_all(folder: Path, spec: DatasetSpec) -> bool:
    if not spec.raw_files:
        return _ogb_complete(folder)
    return all((folder / "raw" / f).is_file() for f in spec.raw_files)


def _ogb_complete(folder: Path) -> bool:
    # raw files only: a processed/ pickle alone is no evidence of a usable copy (it is rebuilt)
    return any(
        (folder / "raw" / f).is_file()
        for f in ("triplet-type-list.csv.gz", "edge_index_dict.npz", "edge.csv.gz", "data.npz")
    )


def _record(folder: Path) -> dict:
    try:
        return json.loads((folder / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.lexists(dst):
        return
    try:
        os.symlink(os.path.abspath(src), dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_record(folder: Path, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{SOURCE_RECORD}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
    set_created_mode(tmp)
    os.replace(tmp, folder / SOURCE_RECORD)


def _mismatch_message(spec: DatasetSpec, fname: str, path: Path, got: str, where: str) -> str:
    return (
        f"checksum mismatch for {spec.name!r} raw file {fname!r} ({path}, {where}): "
        f"sha256 {got}, expected {spec.raw_files[fname]}"
    )


def _verify_cache(folder: Path, spec: DatasetSpec) -> tuple[bool, dict[str, str]]:
    """Check a complete cache copy; a mismatch is an error unless the copy came from a download
    whose (differing) checksums were recorded when it was fetched."""
    record = _record(folder)
    found = {f: sha256_file(folder / "raw" / f) for f in spec.raw_files}
    accepted = record.get("sha256", {}) if record.get("origin") == "download" else {}
    verified = True
    for f, got in found.items():
        if got == spec.raw_files[f]:
            continue
        if accepted.get(f) == got:
            verified = False
            continue
        raise ChecksumMismatchError(
            _mismatch_message(spec, f, folder / "raw" / f, got, "in the cache")
            + f"; delete {folder / 'raw'} to copy or download it again"
        )
    return verified, found


def _copy_verified(src: Path, dest: Path, expected: str | None, spec: DatasetSpec, fname: str) -> str:
    """Copy ``src`` to ``dest`` atomically, hashing on the way; raise on a checksum mismatch."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            while block := inp.read(1 << 20):
                h.update(block)
                out.write(block)
        got = h.hexdigest()
        if expected is not None and got != expected:
            raise ChecksumMismatchError(_mismatch_message(spec, fname, src, got, "in the mirror"))
        set_created_mode(tmp)
        os.replace(tmp, dest)
        return got
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unavailable(spec: DatasetSpec, cache: Path, notes: list[str]) -> DatasetUnavailableError:
    files = ", ".join(f"{spec.folder}/raw/{f}" for f in spec.raw_file_names) or (
        f"the {spec.folder}/ folder that the dataset's own loader (ogb) creates"
    )
    lines = [
        f"dataset {spec.name!r} is not available.",
        *(f"  - {n}" for n in notes),
        f"  source URL: {spec.url}",
        f"  expected raw files: {files}",
        f"  To use a pre-staged copy, set {paths.MIRROR_VARIABLE} to a folder holding "
        f"{spec.folder}/raw/ (for example {paths.MIRROR_VARIABLE}=../shared/data), "
        f"or place the raw files in {cache / 'raw'}.",
    ]
    return DatasetUnavailableError("\n".join(lines))


def resolve_details(name: str, download: bool = False) -> Resolved:
    """Like :func:`resolve`, but return a :class:`Resolved` with the origin and checksum status."""
    spec = get_spec(name)
    cache = spec.cache_path()
    notes: list[str] = []

    # 1. the project cache
    if _has_all(cache, spec):
        if not spec.raw_files:
            return Resolved(name, cache, "cache", False, sha256={})
        verified, found = _verify_cache(cache, spec)
        record = _record(cache)
        mirror = Path(record["mirror"]) if record.get("mirror") else None
        return Resolved(name, cache, "cache", verified, mirror=mirror, sha256=found)
    notes.append(f"the cache {cache} does not hold all raw files")

    # 2. the mirror
    mirror_root = paths.mirror_dir()
    if mirror_root is None:
        notes.append(f"{paths.MIRROR_VARIABLE} is not set")
    elif not mirror_root.is_dir():
        notes.append(
            f"{paths.MIRROR_VARIABLE}={os.environ.get(paths.MIRROR_VARIABLE)} points to {mirror_root}, "
            "which is not an existing folder"
        )
    else:
        mfolder = mirror_root / spec.folder
        if spec.raw_files:
            missing = [f for f in spec.raw_file_names if not (mfolder / "raw" / f).is_file()]
            if not missing:
                found = {}
                for f in spec.raw_file_names:
                    found[f] = _copy_verified(mfolder / "raw" / f, cache / "raw" / f, spec.raw_files[f], spec, f)
                _write_record(cache, {"origin": "mirror", "mirror": str(mfolder), "sha256": found, "verified": True})
                return Resolved(name, cache, "mirror", True, mirror=mfolder, sha256=found)
            if not mfolder.is_dir():
                notes.append(f"the mirror {mirror_root} has no {spec.folder}/ folder (looked at {mfolder})")
            else:
                notes.append(f"the mirror folder {mfolder} lacks raw/{', raw/'.join(missing)}")
        elif mfolder.is_dir() and _ogb_complete(mfolder):
            # Large library-managed folders (ogb): folders are created in the cache, files are
            # linked to the read-only mirror; the library writes its own outputs into the cache.
            # The mirror's processed/ (a pickle that ogb would unpickle) is never taken: ogb
            # rebuilds it in the cache from the raw files (CSV / npz, read without pickle).
            def no_processed(directory: str, names: list[str]) -> list[str]:
                return [PROCESSED_DIR] if Path(directory) == mfolder else []

            shutil.copytree(mfolder, cache, dirs_exist_ok=True, copy_function=_link_or_copy, ignore=no_processed)
            drop_untrusted_processed(cache)
            _write_record(cache, {"origin": "mirror", "mirror": str(mfolder), "sha256": {}, "verified": False})
            return Resolved(name, cache, "mirror", False, mirror=mfolder)
        else:
            notes.append(f"the mirror {mirror_root} has no usable {spec.folder}/ folder (looked at {mfolder})")

    # 3. download
    if spec.download is None:
        notes.append("there is no download step for this dataset in studylib")
    elif not download:
        notes.append(
            "downloading was not allowed (download=False); fetch it with "
            f"`python -m studylib data {spec.name}` (network)"
        )
    elif mirror_root is not None:
        notes.append(
            f"nothing is downloaded while {paths.MIRROR_VARIABLE} is set: fix the mirror, or unset the "
            f"variable to download with `python -m studylib data {spec.name}`"
        )
    else:
        try:
            spec.download(cache)
        except DatasetUnavailableError as exc:
            notes.append(f"download failed: {exc}")
            raise _unavailable(spec, cache, notes) from exc
        except Exception as exc:  # network errors come in many classes (URLError, OSError, HTTP...)
            notes.append(f"download from {spec.url} failed: {type(exc).__name__}: {exc}")
            raise _unavailable(spec, cache, notes) from exc
        if not _has_all(cache, spec):
            notes.append(f"the download finished but {cache / 'raw'} still lacks raw files")
            raise _unavailable(spec, cache, notes)
        found = {f: sha256_file(cache / "raw" / f) for f in spec.raw_files}
        bad = sorted(f for f, h in found.items() if h != spec.raw_files[f])
        if bad:
            warnings.warn(
                f"downloaded {name!r} raw files differ from the registry's checksums (the upstream "
                f"archive may have changed): {', '.join(bad)}",
                stacklevel=2,
            )
        verified = bool(spec.raw_files) and not bad
        _write_record(cache, {"origin": "download", "url": spec.url, "sha256": found, "verified": verified})
        return Resolved(name, cache, "download", verified, sha256=found)

    raise _unavailable(spec, cache, notes)


def resolve(name: str, download: bool = False) -> Path:
    """Return the cache folder holding ``raw/`` for dataset ``name``, filling it when needed.

    Order: (1) the project cache ``paths.data_dir()/<folder>`` if it holds every raw file (their
    SHA-256 are checked); (2) the mirror ``$STUDYLIB_DATA_MIRROR/<folder>``: the raw files are
    copied into the cache (never written into the mirror), each checked against its SHA-256;
    (3) the dataset's download function, if it has one, ``download`` is true and
    ``STUDYLIB_DATA_MIRROR`` is not set (network).

    Args:
        name: a key of :data:`REGISTRY` (``"acm"``, ``"imdb"``, ``"dblp"``, ``"ogbn-mag"``,
            ``"movielens-100k"``, ``"cora"``).
        download: allow step (3), the only network access of studylib's data layer. Only
            ``python -m studylib data`` and parameters that explicitly allow downloading pass
            ``True``.

    Returns:
        ``paths.data_dir()/<folder>`` (a ``pathlib.Path``); its ``raw/`` holds the raw files.

    Raises:
        ValueError: unknown dataset name (the message lists the known names).
        ChecksumMismatchError: a mirror or cache file's SHA-256 differs (the message names the file).
        DatasetUnavailableError: no source worked; the message names the dataset, its URL, the
            expected raw files, ``STUDYLIB_DATA_MIRROR`` and the mirror path it looked at.
    """
    return resolve_details(name, download=download).folder


# --------------------------------------------------------------------------------------------
# Processed (pickled) files written by PyG / ogb into the cache
# --------------------------------------------------------------------------------------------
def _processed_entries(folder: Path) -> dict[str, Path]:
    proc = folder / PROCESSED_DIR
    if proc.is_symlink() or not proc.is_dir():
        return {}
    return {p.relative_to(proc).as_posix(): p for p in sorted(proc.rglob("*")) if p.is_symlink() or p.is_file()}


def drop_untrusted_processed(folder: Path | str) -> bool:
    """Remove ``folder/processed`` unless studylib recorded it as produced in this cache.

    PyG and ogb keep a processed copy of a dataset as a pickle (``torch.save``) and unpickle it on
    the next load, which runs code. Such a file is trusted only when it is a regular file (not a
    symbolic link) inside a real folder and its SHA-256 equals the one :func:`record_processed`
    wrote into ``folder/studylib-source.json`` after the library built it from the raw files
    (whose checksums the registry records, ogbn-mag's CSV files apart: they are parsed, never
    unpickled). Anything else -- a link to a mirror, a file put there by hand, a changed file -- is
    removed, and the library rebuilds it from ``raw/``.

    Args:
        folder: a dataset's cache folder (the one holding ``raw/``).

    Returns:
        True when something was removed.
    """
    folder = Path(folder)
    proc = folder / PROCESSED_DIR
    if not os.path.lexists(proc):
        return False
    recorded = _record(folder).get("processed_sha256") or {}
    entries = _processed_entries(folder)
    trusted = (
        not proc.is_symlink()
        and bool(entries)
        and sorted(entries) == sorted(recorded)
        and all(not p.is_symlink() and sha256_file(p) == recorded[rel] for rel, p in entries.items())
    )
    if trusted:
        return False
    if proc.is_symlink() or not proc.is_dir():
        proc.unlink()
    else:
        shutil.rmtree(proc)
    return True


def record_processed(folder: Path | str) -> dict[str, str]:
    """Record the SHA-256 of every file under ``folder/processed`` in ``folder/studylib-source.json``
    (key ``processed_sha256``), after a library produced them in this cache. Returns the mapping
    (path relative to ``processed/`` -> hex digest); symbolic links are not recorded."""
    folder = Path(folder)
    found = {rel: sha256_file(p) for rel, p in _processed_entries(folder).items() if not p.is_symlink()}
    record = _record(folder)
    if record.get("processed_sha256") != found:
        record["processed_sha256"] = found
        _write_record(folder, record)
    return found


@contextlib.contextmanager
def locally_processed(folder: Path | str) -> Iterator[Path]:
    """Context of a library load that reads or writes ``folder/processed``: first
    :func:`drop_untrusted_processed`, then (when the body succeeds) :func:`record_processed`."""
    folder = Path(folder)
    drop_untrusted_processed(folder)
    yield folder
    record_processed(folder)
