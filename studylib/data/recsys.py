"""User-item bipartite graphs for GNN recommenders: the in-memory form, loaders and a synthetic
power-law generator.

Recommendation is link prediction on a bipartite graph: users and items are nodes, an observed
interaction (a rating, a check-in, a purchase) is an edge. A :class:`BipartiteGraph` holds the
training and test interactions as ``(user, item)`` id pairs with 0-based, contiguous ids per side.

Public API::

    BipartiteGraph(name, num_users, num_items, train_users, train_items, test_users, test_items, info)
    load_movielens_100k(download=False) -> BipartiteGraph     # PyG's MovieLens100K on studylib.data.resolve
    read_rating_file(path, min_rating=None) -> RatingTable     # "user item rating [timestamp]" lines
    read_lightgcn_file(path) -> (users, items)                 # "user item item ..." lines (LightGCN)
    load_ratings(train_path, test_path=None, ...) -> BipartiteGraph
    load_lightgcn(directory) -> BipartiteGraph                 # train.txt + test.txt
    load_interactions(path, ...) -> BipartiteGraph             # either format, told apart by the files
    synthetic_bipartite(num_users, num_items, num_interactions, user_skew, item_skew, ...) -> BipartiteGraph
    synthetic_like(preset, scale=1.0, ...) -> BipartiteGraph   # sizes of Gowalla, Amazon-book, MovieLens-10M
    load_recsys(name, ...) -> BipartiteGraph                   # "movielens-100k", "synthetic-<preset>", paper sets

Malformed input files raise :class:`RatingFormatError` (a ``ValueError``) naming the file and the
line number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "PAPER_DATASETS",
    "SYNTHETIC_PRESETS",
    "BipartiteGraph",
    "RatingFormatError",
    "RatingTable",
    "load_interactions",
    "load_lightgcn",
    "load_movielens_100k",
    "load_ratings",
    "load_recsys",
    "read_lightgcn_file",
    "read_rating_file",
    "split_per_user",
    "synthetic_bipartite",
    "synthetic_like",
]


class RatingFormatError(ValueError):
    """A line of an interaction file cannot be parsed; the message names the file and the line."""


# ---------------------------------------------------------------------------------------------
# The in-memory graph
# ---------------------------------------------------------------------------------------------
@dataclass
class BipartiteGraph:
    """Training and test interactions of a user-item bipartite graph.

    Attributes:
        name: dataset name (``"movielens-100k"``, ``"synthetic-gowalla-s0.1"`` ...).
        num_users, num_items: node counts per side (ids ``0..num_users-1`` and ``0..num_items-1``).
        train_users, train_items: int64 tensors ``[E_train]``: one training interaction per position.
        test_users, test_items: int64 tensors ``[E_test]``: held-out interactions (may be empty).
        info: provenance (source files, generator arguments); ``duplicate_train_interactions`` /
            ``duplicate_test_interactions``: how many repeated (user, item) pairs were merged.

    Repeated interactions (a user who rated an item twice) are merged: each (user, item) pair is
    kept once, sorted by user then item, so the normalised adjacency of NGCF/LightGCN
    (``1/sqrt(|N_u||N_i|)``) and every sparse operand built from it are coalesced.

    Duplicate pairs are removed at construction (an interaction is an edge, not a count). Raises
    ``ValueError`` when ids are out of range or tensors disagree in length.
    """

    name: str
    num_users: int
    num_items: int
    train_users: torch.Tensor
    train_items: torch.Tensor
    test_users: torch.Tensor
    test_items: torch.Tensor
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.num_users, self.num_items = int(self.num_users), int(self.num_items)
        if self.num_users < 1 or self.num_items < 1:
            raise ValueError(f"{self.name}: need at least one user and one item "
                             f"(got {self.num_users} users, {self.num_items} items)")
        for part in ("train", "test"):
            u = torch.as_tensor(getattr(self, f"{part}_users"), dtype=torch.int64).reshape(-1)
            i = torch.as_tensor(getattr(self, f"{part}_items"), dtype=torch.int64).reshape(-1)
            if u.numel() != i.numel():
                raise ValueError(f"{self.name}: {part}_users and {part}_items differ in length "
                                 f"({u.numel()} vs {i.numel()})")
            if u.numel() and (int(u.min()) < 0 or int(u.max()) >= self.num_users):
                raise ValueError(f"{self.name}: {part} user ids must lie in [0, {self.num_users}) "
                                 f"(got {int(u.min())}..{int(u.max())})")
            if i.numel() and (int(i.min()) < 0 or int(i.max()) >= self.num_items):
                raise ValueError(f"{self.name}: {part} item ids must lie in [0, {self.num_items}) "
                                 f"(got {int(i.min())}..{int(i.max())})")
            raw = u.numpy() * self.num_items + i.numpy()
            key = np.unique(raw)
            self.info = {**self.info, f"duplicate_{part}_interactions": int(raw.size - key.size)}
            setattr(self, f"{part}_users", torch.from_numpy(key // self.num_items))
            setattr(self, f"{part}_items", torch.from_numpy(key % self.num_items))

    # ------------------------------------------------------------------ sizes
    @property
    def num_nodes(self) -> int:
        """Users plus items: the node count of the homogeneous graph (users first, then items)."""
        return self.num_users + self.num_items

    @property
    def num_train(self) -> int:
        """Training interactions (undirected edges)."""
        return int(self.train_users.numel())

    @property
    def num_test(self) -> int:
        """Test interactions."""
        return int(self.test_users.numel())

    def user_degrees(self) -> torch.Tensor:
        """Training interactions per user, int64 ``[num_users]``."""
        return torch.bincount(self.train_users, minlength=self.num_users)

    def item_degrees(self) -> torch.Tensor:
        """Training interactions per item (the item's popularity), int64 ``[num_items]``."""
        return torch.bincount(self.train_items, minlength=self.num_items)

    def node_degrees(self) -> torch.Tensor:
        """Degree of every node of the homogeneous graph (users, then items), int64 ``[num_nodes]``."""
        return torch.cat([self.user_degrees(), self.item_degrees()])

    def statistics(self) -> dict:
        """Users, items, train/test interactions, density, and the degree skew of each side: the
        maximum and the Gini coefficient of the degree distribution (0 = all equal, ~1 = a few
        nodes hold every interaction; Gini, *Variabilità e mutabilità*, 1912)."""
        ud, idg = self.user_degrees().numpy(), self.item_degrees().numpy()
        return {"dataset": self.name, "users": self.num_users, "items": self.num_items,
                "train_interactions": self.num_train, "test_interactions": self.num_test,
                "density": (self.num_train + self.num_test) / (self.num_users * self.num_items),
                "user_degree_max": int(ud.max()), "item_degree_max": int(idg.max()),
                "user_degree_gini": gini(ud), "item_degree_gini": gini(idg)}

    # ------------------------------------------------------------------ edges and conversions
    def homogeneous_edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Directed edges of the homogeneous graph: every training interaction in both directions,
        user ``u`` as node ``u`` and item ``i`` as node ``num_users + i``. Returns ``(src, dst)``,
        int64 ``[2 E_train]``; the first ``E_train`` edges run user -> item."""
        u, i = self.train_users, self.train_items + self.num_users
        return torch.cat([u, i]), torch.cat([i, u])

    def to_dgl(self):
        """The homogeneous DGL graph of :meth:`homogeneous_edges` with node data ``deg`` (float32
        degree, at least 1) and ``is_item`` (bool), and edge data ``user_to_item`` (bool: the
        first ``E_train`` edges)."""
        import dgl

        src, dst = self.homogeneous_edges()
        g = dgl.graph((src, dst), num_nodes=self.num_nodes)
        g.ndata["deg"] = self.node_degrees().clamp(min=1).to(torch.float32)
        g.ndata["is_item"] = torch.arange(self.num_nodes) >= self.num_users
        mask = torch.zeros(g.num_edges(), dtype=torch.bool)
        mask[: self.num_train] = True
        g.edata["user_to_item"] = mask
        return g

    def train_keys(self) -> np.ndarray:
        """Sorted int64 keys ``user * num_items + item`` of the training pairs (membership tests)."""
        return np.sort(self.train_users.numpy() * self.num_items + self.train_items.numpy())

    def test_sets(self) -> dict[int, np.ndarray]:
        """Test items per user that has any: ``{user: int64 array of items}``."""
        order = np.argsort(self.test_users.numpy(), kind="stable")
        u, i = self.test_users.numpy()[order], self.test_items.numpy()[order]
        cut = np.flatnonzero(np.diff(u)) + 1
        return {int(us[0]): it for us, it in zip(np.split(u, cut), np.split(i, cut)) if len(us)}

    def save(self, path: Path | str) -> None:
        """Write the graph to ``path`` (``torch.save`` of its tensors and fields)."""
        torch.save({"name": self.name, "num_users": self.num_users, "num_items": self.num_items,
                    "train_users": self.train_users, "train_items": self.train_items,
                    "test_users": self.test_users, "test_items": self.test_items,
                    "info": json.loads(json.dumps(self.info, default=str))}, path)

    @classmethod
    def load(cls, path: Path | str) -> BipartiteGraph:
        """Read a graph written by :meth:`save` (``torch.load(weights_only=True)``: tensors, numbers,
        strings and containers only; a file holding any other object raises
        ``pickle.UnpicklingError`` instead of running its code)."""
        d = torch.load(path, weights_only=True)
        return cls(**d)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal, -> 1 = concentrated); 0.0 for an empty
    or all-zero array. Formula: ``sum_i (2i - n - 1) x_(i) / (n sum x)`` over sorted ``x``."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, s = x.size, x.sum()
    if n == 0 or s == 0:
        return 0.0
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * s))


# ---------------------------------------------------------------------------------------------
# Generic file formats
# ---------------------------------------------------------------------------------------------
@dataclass
class RatingTable:
    """Raw interactions read from a rating file (ids as in the file, not yet made contiguous).

    Attributes:
        users, items: int64 arrays ``[n]``; ratings: float64 ``[n]`` (NaN without a rating column);
        timestamps: int64 ``[n]`` or ``None``; path: the file.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None
    path: Path


_SPLIT = re.compile(r"::|[\t,;|]|\s+")


def _tokens(line: str) -> list[str]:
    return [t for t in _SPLIT.split(line.strip()) if t != ""]


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _int_id(token: str, path: Path, lineno: int, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise RatingFormatError(f"{path}:{lineno}: {what} id must be an integer (got {token!r})") from None


def read_rating_file(path: Path | str, min_rating: float | None = None) -> RatingTable:
    """Read a "user item rating [timestamp]" file (MovieLens ``u.data``/``u1.base``, ``ratings.dat``
    with ``::``, CSV or TSV), one interaction per line.

    Columns are separated by tabs, commas, semicolons, ``|``, ``::`` or spaces; the column count is
    fixed by the first data line and must be 3 (user item rating) or 4 (plus a timestamp). A header
    line whose first two fields are not integers (``userId,movieId,...``) is skipped when it is the
    first line; blank lines and lines starting with ``#`` are skipped.

    Args:
        path: the file.
        min_rating: keep only interactions rated at least this (``None`` keeps all).

    Returns a :class:`RatingTable`. Raises :class:`RatingFormatError` naming the file and line for a
    wrong column count, a non-integer user or item id, a non-numeric rating or timestamp, and
    ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    users, items, ratings, stamps = [], [], [], []
    ncols = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            tok = _tokens(line)
            if ncols is None:
                if lineno == 1 and len(tok) >= 2 and not all(_is_number(t) for t in tok[:2]):
                    continue  # a header line (userId,movieId,...)
                if len(tok) not in (3, 4):
                    raise RatingFormatError(f"{path}:{lineno}: expected 3 or 4 columns (user item rating "
                                            f"[timestamp]), got {len(tok)}: {line.strip()[:80]!r}")
                ncols = len(tok)
            elif len(tok) != ncols:
                raise RatingFormatError(f"{path}:{lineno}: expected {ncols} columns like the first line, got "
                                        f"{len(tok)}: {line.strip()[:80]!r}")
            u = _int_id(tok[0], path, lineno, "user")
            i = _int_id(tok[1], path, lineno, "item")
            try:
                r = float(tok[2])
            except ValueError:
                raise RatingFormatError(f"{path}:{lineno}: rating must be a number (got {tok[2]!r})") from None
            if ncols == 4:
                try:
                    stamps.append(int(float(tok[3])))
                except ValueError:
                    raise RatingFormatError(f"{path}:{lineno}: timestamp must be a number (got {tok[3]!r})") from None
            users.append(u)
            items.append(i)
            ratings.append(r)
    if ncols is None:
        raise RatingFormatError(f"{path}: no interactions found (empty file)")
    u, i, r = np.asarray(users, np.int64), np.asarray(items, np.int64), np.asarray(ratings, np.float64)
    t = np.asarray(stamps, np.int64) if ncols == 4 else None
    if min_rating is not None:
        keep = r >= min_rating
        u, i, r, t = u[keep], i[keep], r[keep], (t[keep] if t is not None else None)
    return RatingTable(u, i, r, t, path)


def read_lightgcn_file(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read a LightGCN/NGCF ``train.txt`` or ``test.txt``: each line is a user id followed by the
    ids of the items it interacted with (a line with a user id alone has no interactions).

    Returns ``(users, items)``, int64 arrays ``[n]`` of interactions. Raises
    :class:`RatingFormatError` naming the file and line for a non-integer id.
    """
    path = Path(path)
    users, items = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            tok = line.split()
            if not tok:
                continue
            u = _int_id(tok[0], path, lineno, "user")
            its = [_int_id(t, path, lineno, "item") for t in tok[1:]]
            users.extend([u] * len(its))
            items.extend(its)
    return np.asarray(users, np.int64), np.asarray(items, np.int64)


def split_per_user(users: np.ndarray, items: np.ndarray, test_fraction: float = 0.2,
                   timestamps: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split interactions into train and test per user: of each user's ``n`` interactions,
    ``floor(test_fraction * n)`` go to test (users with one interaction keep it for training); the
    latest ones when ``timestamps`` are given (a temporal split), random ones otherwise.

    Returns boolean masks ``(train, test)`` over the input positions. Raises ``ValueError`` unless
    ``0 <= test_fraction < 1``.
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must lie in [0, 1) (got {test_fraction})")
    n = len(users)
    rng = np.random.default_rng(seed)
    key2 = timestamps if timestamps is not None else rng.random(n)
    order = np.lexsort((key2, users))  # by user, then by time (or a random key)
    u_sorted = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(u_sorted)) + 1]
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)
    n_test = np.floor(test_fraction * counts).astype(np.int64)
    is_test_sorted = rank >= np.repeat(counts - n_test, counts)
    test = np.zeros(n, bool)
    test[order] = is_test_sorted
    return ~test, test


def _contiguous(*arrays: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Map the ids of all arrays to ``0..k-1`` (sorted order of the distinct ids)."""
    distinct = np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, np.int64)
    return [np.searchsorted(distinct, a) for a in arrays], distinct


def _graph_from_pairs(name: str, tr_u, tr_i, te_u, te_i, info: dict, remap: bool = True) -> BipartiteGraph:
    if remap:
        (tr_u, te_u), raw_u = _contiguous(tr_u, te_u)
        (tr_i, te_i), raw_i = _contiguous(tr_i, te_i)
        nu, ni = len(raw_u), len(raw_i)
        info = {**info, "ids": "remapped to 0..n-1 in sorted order of the file ids"}
    else:
        nu = int(max(tr_u.max(initial=-1), te_u.max(initial=-1))) + 1
        ni = int(max(tr_i.max(initial=-1), te_i.max(initial=-1))) + 1
        info = {**info, "ids": "as in the files (0-based)"}
    return BipartiteGraph(name, nu, ni, torch.from_numpy(tr_u), torch.from_numpy(tr_i), torch.from_numpy(te_u),
                          torch.from_numpy(te_i), info)


def load_ratings(train_path: Path | str, test_path: Path | str | None = None, *, name: str | None = None,
                 min_rating: float | None = None, test_fraction: float = 0.2, seed: int = 0) -> BipartiteGraph:
    """A :class:`BipartiteGraph` from rating files (see :func:`read_rating_file`).

    With ``test_path`` the two files are the split; without it :func:`split_per_user` splits the one
    file (temporal split when it has timestamps). User and item ids are remapped to contiguous
    0-based ids over both files. Every kept rating counts as an interaction (implicit feedback).
    Raises :class:`RatingFormatError` (file and line) for malformed lines.
    """
    tr = read_rating_file(train_path, min_rating=min_rating)
    info = {"format": "ratings", "train_file": str(train_path), "min_rating": min_rating}
    if test_path is not None:
        te = read_rating_file(test_path, min_rating=min_rating)
        info["test_file"] = str(test_path)
        tu, ti, eu, ei = tr.users, tr.items, te.users, te.items
    else:
        train, test = split_per_user(tr.users, tr.items, test_fraction, tr.timestamps, seed)
        info.update(test_fraction=test_fraction, split="temporal" if tr.timestamps is not None else "random", seed=seed)
        tu, ti, eu, ei = tr.users[train], tr.items[train], tr.users[test], tr.items[test]
    return _graph_from_pairs(name or Path(train_path).stem, tu, ti, eu, ei, info)


def load_lightgcn(directory: Path | str, *, name: str | None = None) -> BipartiteGraph:
    """A :class:`BipartiteGraph` from a LightGCN-format folder holding ``train.txt`` and
    ``test.txt`` (see :func:`read_lightgcn_file`); ids are kept as in the files (0-based), so the
    node counts are the largest ids plus one. Raises ``FileNotFoundError`` naming a missing file and
    :class:`RatingFormatError` (file and line) for malformed lines."""
    directory = Path(directory)
    for f in ("train.txt", "test.txt"):
        if not (directory / f).is_file():
            raise FileNotFoundError(f"{directory / f} is missing: a LightGCN-format folder holds train.txt and test.txt")
    tu, ti = read_lightgcn_file(directory / "train.txt")
    eu, ei = read_lightgcn_file(directory / "test.txt")
    return _graph_from_pairs(name or directory.name, tu, ti, eu, ei, {"format": "lightgcn", "folder": str(directory)},
                             remap=False)


def load_interactions(path: Path | str, test_path: Path | str | None = None, **kwargs) -> BipartiteGraph:
    """Load either format: a folder with ``train.txt``/``test.txt`` (LightGCN) or a rating file
    (plus an optional test file). ``kwargs`` go to :func:`load_ratings` or :func:`load_lightgcn`."""
    path = Path(path)
    if path.is_dir():
        return load_lightgcn(path, **{k: v for k, v in kwargs.items() if k == "name"})
    return load_ratings(path, test_path, **kwargs)


# ---------------------------------------------------------------------------------------------
# Real datasets
# ---------------------------------------------------------------------------------------------
def load_movielens_100k(download: bool = False) -> BipartiteGraph:
    """MovieLens 100K (943 users, 1,682 movies, 100,000 ratings) with GroupLens' ``u1`` split
    (80,000 training and 20,000 test ratings), read by PyG's ``MovieLens100K`` loader from the cache
    folder that :func:`studylib.data.resolve` fills from ``$STUDYLIB_DATA_MIRROR`` (or a download
    when ``download``). Every rating is an interaction (implicit feedback).

    Raises ``DatasetUnavailableError`` (naming the mirror variable) when the files cannot be had.
    """
    import warnings

    from torch_geometric.datasets import MovieLens100K

    from studylib.data.registry import locally_processed, resolve_details

    res = resolve_details("movielens-100k", download=download)
    with warnings.catch_warnings(), locally_processed(res.folder):
        warnings.simplefilter("ignore")
        data = MovieLens100K(str(res.folder))[0]
    et = ("user", "rates", "movie")
    tr = data[et].edge_index.numpy()
    te = data[et].edge_label_index.numpy()
    return BipartiteGraph("movielens-100k", data["user"].num_nodes, data["movie"].num_nodes,
                          torch.from_numpy(tr[0]), torch.from_numpy(tr[1]), torch.from_numpy(te[0]),
                          torch.from_numpy(te[1]),
                          {"source": "torch_geometric.datasets.MovieLens100K (u1.base / u1.test)",
                           **res.info()})


@dataclass(frozen=True)
class RecsysSource:
    """Where a dataset of the paper comes from: URL of its files, their names, their format."""

    url: str
    files: tuple[str, ...]
    format: str  # "lightgcn" or "ratings"
    statistics: tuple[int, int, int]  # users, items, interactions (published)
    citation: str


#: The real datasets of Hu et al. (arXiv 2207.11918), fetched only by the paper profile.
PAPER_DATASETS: dict[str, RecsysSource] = {
    "gowalla": RecsysSource(
        "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/gowalla", ("train.txt", "test.txt"),
        "lightgcn", (29858, 40981, 1027370),
        "Cho, Myers, Leskovec, KDD 2011; split of He et al., LightGCN, SIGIR 2020"),
    "amazon-book": RecsysSource(
        "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/amazon-book", ("train.txt", "test.txt"),
        "lightgcn", (52643, 91599, 2984108),
        "He, McAuley, WWW 2016; split of He et al., LightGCN, SIGIR 2020"),
    "movielens-10m": RecsysSource(
        "https://files.grouplens.org/datasets/movielens/ml-10m.zip", ("ratings.dat",), "ratings",
        (69878, 10677, 10000054), "Harper, Konstan, ACM TiiS 2015 (research use only; never commit)"),
}

#: Sizes (users, items, interactions) of the paper's datasets and an assumed degree skew (Zipf
#: exponents of the user and the item side) for :func:`synthetic_like`. The sizes are published
#: statistics (see :data:`PAPER_DATASETS`); the skews are not fitted to the real graphs (which this
#: project does not redistribute) and are settable.
SYNTHETIC_PRESETS: dict[str, dict] = {
    "gowalla": {"num_users": 29858, "num_items": 40981, "num_interactions": 1027370, "user_skew": 0.8,
                "item_skew": 0.9},
    "amazon-book": {"num_users": 52643, "num_items": 91599, "num_interactions": 2984108, "user_skew": 0.8,
                    "item_skew": 0.9},
    "movielens-10m": {"num_users": 69878, "num_items": 10677, "num_interactions": 10000054, "user_skew": 0.6,
                      "item_skew": 1.1},
    "movielens-100k": {"num_users": 943, "num_items": 1682, "num_interactions": 100000, "user_skew": 0.6,
                       "item_skew": 1.0},
}


def _fetch_paper_dataset(name: str, folder: Path) -> None:
    import shutil
    import zipfile

    from studylib.data.registry import _fetch

    src = PAPER_DATASETS[name]
    raw = folder / "raw"
    if src.url.endswith(".zip"):
        archive = raw / "download.zip"
        _fetch(src.url, archive)
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                if Path(member.filename).name in src.files:
                    with zf.open(member) as a, open(raw / Path(member.filename).name, "wb") as b:
                        shutil.copyfileobj(a, b)
        archive.unlink(missing_ok=True)
    else:
        for f in src.files:
            _fetch(f"{src.url}/{f}", raw / f)


def load_paper_dataset(name: str, download: bool = False) -> BipartiteGraph:
    """One of :data:`PAPER_DATASETS`, from ``<data dir>/recsys/<name>/raw/``, else from
    ``$STUDYLIB_DATA_MIRROR/recsys/<name>/raw/`` (read in place), else downloaded into the cache
    (network; only when ``download`` is true and no mirror is set: a mirror that lacks the files is
    an error, not a reason to download). Upstream publishes no checksums; none are checked (the
    files are text, parsed without pickle).

    Raises ``DatasetUnavailableError`` naming the dataset, the folders looked at, the URL and
    ``STUDYLIB_DATA_MIRROR``.
    """
    from studylib import paths
    from studylib.data.registry import DatasetUnavailableError

    if name not in PAPER_DATASETS:
        raise ValueError(f"unknown recommender dataset {name!r}; known: {sorted(PAPER_DATASETS)}")
    src = PAPER_DATASETS[name]
    cache = paths.data_dir() / "recsys" / name
    candidates = [cache]
    if paths.mirror_dir() is not None:
        candidates.append(paths.mirror_dir() / "recsys" / name)
    folder = next((c for c in candidates if all((c / "raw" / f).is_file() for f in src.files)), None)
    if folder is None and download and paths.mirror_dir() is not None:
        raise DatasetUnavailableError(f"dataset {name!r} is not available: none of "
                                      f"{', '.join(str(c / 'raw') for c in candidates)} holds {', '.join(src.files)}; "
                                      f"source {src.url}. Nothing is downloaded while {paths.MIRROR_VARIABLE} is "
                                      f"set: add the files to the mirror, or unset the variable to download")
    if folder is None and download:
        try:
            _fetch_paper_dataset(name, cache)
            folder = cache
        except Exception as exc:  # network errors come in many classes
            raise DatasetUnavailableError(f"dataset {name!r}: download from {src.url} failed ({type(exc).__name__}: "
                                          f"{exc}); looked in {', '.join(str(c / 'raw') for c in candidates)}") from exc
    if folder is None:
        raise DatasetUnavailableError(f"dataset {name!r} is not available: none of "
                                      f"{', '.join(str(c / 'raw') for c in candidates)} holds {', '.join(src.files)}; "
                                      f"source {src.url} (set {paths.MIRROR_VARIABLE} to a folder holding "
                                      f"recsys/{name}/raw/, or allow the download with the parameter download)")
    if src.format == "lightgcn":
        g = load_lightgcn(folder / "raw", name=name)
    else:
        g = load_ratings(folder / "raw" / src.files[0], name=name, test_fraction=0.2)
    g.info.update(source=src.url, citation=src.citation, folder=str(folder))
    return g


# ---------------------------------------------------------------------------------------------
# Synthetic power-law bipartite graphs
# ---------------------------------------------------------------------------------------------
def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Sampling probabilities ``p_k ~ k^-exponent`` over ``n`` nodes, assigned in random order."""
    w = np.arange(1, n + 1, dtype=np.float64) ** (-float(exponent))
    rng.shuffle(w)
    return w / w.sum()


def synthetic_bipartite(num_users: int, num_items: int, num_interactions: int, *, user_skew: float = 0.8,
                        item_skew: float = 0.9, test_fraction: float = 0.2, seed: int = 0,
                        name: str | None = None) -> BipartiteGraph:
    """A random bipartite graph whose degrees follow power laws.

    Each interaction picks its user with probability ``~ rank^-user_skew`` and its item with
    probability ``~ rank^-item_skew`` (Zipf laws; exponent 0 = uniform, larger = more skewed, the
    ranks shuffled over the ids) -- the bipartite Chung-Lu model (Chung, Lu, *PNAS* 2002) with Zipf
    expected degrees. Pairs are drawn until ``num_interactions`` distinct ones exist (duplicates
    dropped: the generator never produces a repeated interaction), then :func:`split_per_user` holds out ``test_fraction`` of each user's interactions.

    Returns a :class:`BipartiteGraph` (``info`` records the arguments). Raises ``ValueError`` when
    ``num_interactions`` exceeds ``num_users * num_items`` / 2 or a size is not positive.
    """
    if min(num_users, num_items, num_interactions) < 1:
        raise ValueError(f"sizes must be >= 1 (got users={num_users}, items={num_items}, "
                         f"interactions={num_interactions})")
    if num_interactions > num_users * num_items / 2:
        raise ValueError(f"num_interactions ({num_interactions}) must be at most half of users x items "
                         f"({num_users * num_items}) for a sparse graph")
    if user_skew < 0 or item_skew < 0:
        raise ValueError(f"skews must be >= 0 (got {user_skew}, {item_skew})")
    rng = np.random.default_rng(seed)
    pu, pi = _zipf_weights(num_users, user_skew, rng), _zipf_weights(num_items, item_skew, rng)
    keys = np.zeros(0, np.int64)
    for _ in range(50):
        need = num_interactions - keys.size
        if need <= 0:
            break
        draw = int(need * 1.3) + 16
        u = rng.choice(num_users, size=draw, p=pu)
        i = rng.choice(num_items, size=draw, p=pi)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * num_items + i]))
    if keys.size > num_interactions:
        keys = rng.choice(keys, size=num_interactions, replace=False)
    users, items = keys // num_items, keys % num_items
    train, test = split_per_user(users, items, test_fraction, seed=seed)
    name = name or f"synthetic-u{num_users}-i{num_items}-e{keys.size}"
    info = {"generator": "synthetic_bipartite", "num_users": num_users, "num_items": num_items,
            "num_interactions": int(keys.size), "user_skew": user_skew, "item_skew": item_skew,
            "test_fraction": test_fraction, "seed": seed}
    return BipartiteGraph(name, num_users, num_items, torch.from_numpy(users[train]), torch.from_numpy(items[train]),
                          torch.from_numpy(users[test]), torch.from_numpy(items[test]), info)


def synthetic_like(preset: str, scale: float = 1.0, *, user_skew: float | None = None,
                   item_skew: float | None = None, test_fraction: float = 0.2, seed: int = 0) -> BipartiteGraph:
    """A :func:`synthetic_bipartite` graph with the users, items and interactions of ``preset``
    (a key of :data:`SYNTHETIC_PRESETS`) times ``scale`` (all three scale together, so the mean
    degrees are kept; at least 2 users and items). Raises ``ValueError`` for an unknown preset."""
    if preset not in SYNTHETIC_PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; known: {sorted(SYNTHETIC_PRESETS)}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0 (got {scale})")
    p = SYNTHETIC_PRESETS[preset]
    nu, ni = max(2, round(p["num_users"] * scale)), max(2, round(p["num_items"] * scale))
    ne = max(1, min(round(p["num_interactions"] * scale), nu * ni // 2))
    g = synthetic_bipartite(nu, ni, ne, user_skew=p["user_skew"] if user_skew is None else user_skew,
                            item_skew=p["item_skew"] if item_skew is None else item_skew,
                            test_fraction=test_fraction, seed=seed, name=f"synthetic-{preset}-s{scale:g}")
    g.info.update(preset=preset, scale=scale)
    return g


def load_recsys(name: str, *, scale: float = 1.0, seed: int = 0, download: bool = False) -> BipartiteGraph:
    """A recommender graph by name: ``"movielens-100k"`` (real, from the mirror), a paper dataset of
    :data:`PAPER_DATASETS` (real; downloaded only when ``download``), or ``"synthetic-<preset>"``
    (:func:`synthetic_like` at ``scale``). Raises ``ValueError`` for an unknown name."""
    if name == "movielens-100k":
        return load_movielens_100k(download=download)
    if name in PAPER_DATASETS:
        return load_paper_dataset(name, download=download)
    if name.startswith("synthetic-"):
        return synthetic_like(name[len("synthetic-"):], scale=scale, seed=seed)
    known = ["movielens-100k", *PAPER_DATASETS, *(f"synthetic-{p}" for p in SYNTHETIC_PRESETS)]
    raise ValueError(f"unknown recommender dataset {name!r}; known: {known}")
