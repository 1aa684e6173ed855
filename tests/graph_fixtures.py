"""Small graphs written in each format that dataset specs read (``studylib.data.specs``): a HeCo
folder, rating files (CSV with a header; tab-separated without), a LightGCN folder and a Planetoid
raw folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def write_heco(folder: Path, papers: int = 40, authors: int = 20, subjects: int = 4, classes: int = 3,
               seed: int = 0, labels: bool = True, split: bool = True) -> Path:
    """A HeCo-format folder: ``pa.txt`` (each paper 2 authors), ``ps.txt`` (each paper 1 subject),
    ``p_feat.npz`` (scipy sparse, 8-d), ``a_feat.npz`` (6-d), ``labels.npy``, ``train_5/val_5/test_5.npy``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pa = np.stack([np.repeat(np.arange(papers), 2), rng.integers(0, authors, 2 * papers)], 1)
    pa[-1, 1] = authors - 1  # every author id up to authors-1 appears
    ps = np.stack([np.arange(papers), np.arange(papers) % subjects], 1)
    np.savetxt(folder / "pa.txt", pa, fmt="%d")
    np.savetxt(folder / "ps.txt", ps, fmt="%d")
    sp.save_npz(folder / "p_feat.npz", sp.csr_matrix(rng.random((papers, 8)) > 0.6).astype(np.float32))
    sp.save_npz(folder / "a_feat.npz", sp.csr_matrix(rng.random((authors, 6)) > 0.5).astype(np.float32))
    if labels:
        np.save(folder / "labels.npy", np.arange(papers) % classes)
    if split:
        perm = rng.permutation(papers)
        n = papers // 3
        np.save(folder / "train_5.npy", perm[:n])
        np.save(folder / "val_5.npy", perm[n:2 * n])
        np.save(folder / "test_5.npy", perm[2 * n:])
    return folder


def write_ratings(path: Path, users: int = 12, items: int = 9, seed: int = 0, header: bool = True) -> Path:
    """A CSV rating file ``userId,movieId,rating,timestamp`` (one duplicate rating included)."""
    rng = np.random.default_rng(seed)
    lines = ["userId,movieId,rating,timestamp"] if header else []
    for u in range(users):
        for i in rng.choice(items, 4, replace=False):
            lines.append(f"{u + 100},{i + 7},{rng.integers(1, 6)},{rng.integers(10**9, 2 * 10**9)}")
    lines.append(lines[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_lightgcn(folder: Path, users: int = 10, items: int = 8) -> Path:
    """A LightGCN folder: ``train.txt`` / ``test.txt``, one ``user item item ...`` line per user."""
    folder.mkdir(parents=True, exist_ok=True)
    train = [f"{u} " + " ".join(str((u + k) % items) for k in range(3)) for u in range(users)]
    test = [f"{u} {(u + 5) % items}" for u in range(users)]
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return folder


def write_rating_log(path: Path, users: int = 40, items: int = 30, per_user: int = 10, seed: int = 0) -> Path:
    """A tab-separated rating file without a header, ``user item rating timestamp`` per line (the
    layout of MovieLens' ``u.data``): ``per_user`` distinct items per user (<= ``items``), so that a
    per-user 80/20 split leaves every user test interactions."""
    rng = np.random.default_rng(seed)
    lines = [f"{u + 1}\t{i + 1}\t{rng.integers(1, 6)}\t{rng.integers(10**9, 2 * 10**9)}"
             for u in range(users) for i in rng.choice(items, per_user, replace=False)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_planetoid(raw: Path, prefix: str = "cora", train: int = 10, rest: int = 500, test: int = 20,
                    width: int = 8, classes: int = 3, seed: int = 0) -> Path:
    """Planetoid raw files ``ind.<prefix>.{x,tx,allx,y,ty,ally,graph,test.index}`` (Yang et al.,
    ICML 2016, as in Kipf's GCN repository): ``train + rest + test`` nodes (PyG's reader takes the
    500 nodes after the training ones as validation, so ``rest`` >= 500), a ring with chords."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    n_all = train + rest
    n = n_all + test

    def onehot(k):
        y = np.zeros((k, classes))
        y[np.arange(k), rng.integers(0, classes, k)] = 1
        return y

    objs = {"x": sp.csr_matrix(rng.random((train, width)) > 0.5, dtype=np.float32),
            "allx": sp.csr_matrix(rng.random((n_all, width)) > 0.5, dtype=np.float32),
            "tx": sp.csr_matrix(rng.random((test, width)) > 0.5, dtype=np.float32),
            "y": onehot(train), "ally": onehot(n_all), "ty": onehot(test),
            "graph": {i: [(i + 1) % n, (i + 7) % n] for i in range(n)}}
    for name, obj in objs.items():
        with open(raw / f"ind.{prefix}.{name}", "wb") as fh:
            pickle.dump(obj, fh)
    (raw / f"ind.{prefix}.test.index").write_text("\n".join(str(i) for i in range(n_all, n)) + "\n")
    return raw
