"""Measurements of notebook ``02-distributed-caching``: remote-feature caching on real DistDGL.

Reproduces and extends Sarkar, Ghosh, Tallent, Jannesari, *MassiveGNN: Efficient Training via
Prefetching for Massively Connected Distributed Graphs* (IEEE CLUSTER 2024, arXiv 2410.22697):
a parameterized, continuous prefetch and eviction buffer of remote (halo) node features on top of
DistDGL, reported to make end-to-end GraphSAGE training 15-40% faster on OGB graphs on
Perlmutter.

Every cluster run (one graph, machine count and network model) starts a DistDGL cluster with
:func:`studylib.distributed.run_cluster` and trains all its *variants* (plain DistDGL, a
background prefetch thread without cache, the MassiveGNN buffer at several parameter points, a
static and an LRU cache of the same size, GAT) in the same trainer processes, alternating epoch by
epoch (:mod:`studylib.studies.distributed_caching.node_trainer`). Its rows go to tidy tables (``epochs``,
``batches``, ``setup``, ``accuracy``, ``links``); every ``plot_*`` function draws from those
tables only, and the declarations of :mod:`.findings` turn them into verdicts. The sweeps run's
trainers also record access sequences, which :func:`replay_table` replays offline for every policy
and every alpha x delta cell (:mod:`.replay`).

Graphs (``datasets``): the built-in names of :data:`BUILTIN_GRAPHS` or any homogeneous dataset
spec (:func:`load_graph`, :mod:`studylib.data.specs`); tables name a graph by its spec text, file
names and DistDGL by :func:`studylib.data.specs.dataset_key`.

Times are seconds of wall clock (``time.perf_counter``), bytes are bytes. An epoch's time is the
slowest rank's (the epoch ends when the last gradient all-reduce does). Speedups are ratios of the
plain-DistDGL epoch to the variant's epoch *of the same epoch index in the same run* (variants
alternate, so both ran under the same conditions), summarised by the median and IQR over epochs
after the warm-up epochs; the epoch-time cut is ``1 - mean(variant epochs) / mean(DistDGL epochs)``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from studylib import machine, memory, paths
from studylib.data import load_hetero, specs
from studylib.data.graph_cache import GraphCache as GraphCacheBase
from studylib.data.homogeneous import HomogeneousGraph, load_cora, random_split, synthetic_homogeneous
from studylib.distributed import (
    ClusterError,
    ClusterSpec,
    namespaces_available,
    partition,
    partition_statistics,
    run_cluster,
    run_standalone,
)
from studylib.distributed.netem import network_model
from studylib.results import ResultGroup, ResultTable
from studylib.studies.distributed_caching.cache import capacity_for
from studylib.studies.distributed_caching.params import BUILTIN_GRAPHS, NOTEBOOK
from studylib.studies.distributed_caching.replay import replay_grid
from studylib.tables import ok_rows

#: Label of the plain-DistDGL baseline variant (first model); other models prefix ``<model>:``.
BASELINE = "distdgl"


#: Trainer module of every cluster run.
TRAINER_MODULE = "studylib.studies.distributed_caching.node_trainer"


#: Config columns of the per-run tables.
RUN_KEY = ["graph", "machines", "network", "run"]


#: Kinds of cluster runs (the ``run`` column): see :func:`plan_runs`.
RUN_KINDS = ("main", "sweeps", "network", "standalone")


#: Regions of a mini-batch (see :mod:`studylib.studies.distributed_caching.node_trainer`).
PREPARE_REGIONS = ("sampling", "local_fetch", "remote_fetch", "cache_lookup", "cache_eviction")


TRAIN_REGIONS = ("forward", "backward", "allreduce", "update")


def dblp_paper_graph(feature_dim: int = 256, seed: int = 0) -> HomogeneousGraph:
    """DBLP's paper graph (MAGNN's DBLP through :func:`studylib.data.load_hetero`): papers linked
    when they share an author (the P-A-P metapath, ``A A^T`` without the diagonal; 14,328 papers,
    324,880 directed edges).

    Features: the papers' 4,231-d bag-of-words vectors times a fixed Gaussian random projection
    ``R [4231, feature_dim]`` with entries ``N(0, 1/feature_dim)`` (seeded; Johnson-Lindenstrauss
    keeps distances approximately), to keep the feature rows at a typical width. Labels: DBLP
    labels authors only (4 research areas); a paper gets the most frequent label of its authors
    (ties: the smaller class id). Split: random 60/20/20.

    Raises what :func:`studylib.data.load_hetero` raises when the dataset cannot be had.
    """

    het = load_hetero("dblp")
    n_p, n_a = het.num_nodes["paper"], het.num_nodes["author"]
    s, d = het.edges[("paper", "paper_author", "author")]
    inc = sp.csr_matrix((np.ones(s.numel(), dtype=np.float32), (s.numpy(), d.numpy())), shape=(n_p, n_a))
    pap = (inc @ inc.T).tocoo()
    keep = pap.row != pap.col
    src, dst = pap.row[keep].astype(np.int64), pap.col[keep].astype(np.int64)
    order = np.lexsort((src, dst))
    src, dst = src[order], dst[order]
    gen = torch.Generator().manual_seed(seed)
    x = het.features["paper"]
    proj = torch.randn((x.shape[1], feature_dim), generator=gen) / math.sqrt(feature_dim)
    feats = (x @ proj).float().contiguous()
    author_label = het.labels.numpy()
    counts = np.zeros((n_p, int(het.num_classes)), dtype=np.int64)
    np.add.at(counts, (s.numpy(), author_label[d.numpy()]), 1)
    has = counts.sum(1) > 0
    labels = torch.from_numpy(np.where(has, counts.argmax(1), 0).astype(np.int64))
    g = HomogeneousGraph(
        name="dblp-paper", num_nodes=n_p, src=torch.from_numpy(src), dst=torch.from_numpy(dst), features=feats,
        labels=labels, num_classes=int(het.num_classes), train_idx=torch.zeros(0, dtype=torch.int64),
        val_idx=torch.zeros(0, dtype=torch.int64), test_idx=torch.zeros(0, dtype=torch.int64),
        info={"source": "dblp (MAGNN) P-A-P", "feature_projection": f"gaussian 4231->{feature_dim}, seed {seed}",
              "labels": "majority label of the paper's authors"})
    return random_split(g, (0.6, 0.2, 0.2), seed, eligible=torch.nonzero(torch.from_numpy(has)).flatten())


def builtin_graph(name: str, params) -> HomogeneousGraph:
    """The built-in graph ``name`` (one of :data:`BUILTIN_GRAPHS`): ``synthetic`` (power-law, see
    :func:`studylib.data.homogeneous.synthetic_homogeneous`), ``cora`` (Planetoid; random 60/20/20
    split unless ``real_split="standard"``), ``dblp`` (:func:`dblp_paper_graph`), ``ogbn-products``,
    ``ogbn-papers100M`` (ogb's loader through ``specs.load("ogb:<name>")``: registry, mirror,
    checksums; edges made symmetric; papers100M's unlabelled nodes stay out of every split). Raises
    ``KeyError`` for another name."""

    if name not in BUILTIN_GRAPHS:
        raise KeyError(f"{name!r} is not a built-in graph of {NOTEBOOK} ({', '.join(BUILTIN_GRAPHS)})")
    if name == "synthetic":
        return synthetic_homogeneous(params.synthetic_nodes, params.synthetic_avg_degree, params.synthetic_feature_dim,
                                     params.synthetic_classes, params.synthetic_degree_skew, params.seed)
    if name == "cora":
        g = load_cora()
        return g if params.real_split == "standard" else random_split(g, (0.6, 0.2, 0.2), params.seed)
    if name == "dblp":
        return dblp_paper_graph(params.dblp_feature_dim, params.seed)
    return specs.load(f"ogb:{name}", specs.HOMOGENEOUS)


def load_graph(name: str, params) -> HomogeneousGraph:
    """The graph of one entry of ``datasets``, named by a dataset spec (:mod:`studylib.data.specs`,
    homogeneous kind): a built-in name (:func:`builtin_graph`, the ``builtin`` loader of
    :func:`studylib.data.specs.load`), or ``ogb:<name>``, ``planetoid:<Name>[,<root>]``,
    ``pyg:<Class>[/<name>][,<root>]`` (the user's files read in place). A spec graph gets the
    study's random 60/20/20 split (:func:`studylib.data.homogeneous.random_split`, seed
    ``params.seed``, over its labelled nodes, as ``cora``) when it has no training nodes or
    ``real_split="random"``; else it keeps its source's split.

    Raises :class:`studylib.data.specs.DataSpecError` naming the spec (missing path, another
    format, not homogeneous, no labels, no node features), :class:`studylib.memory.Refused` for a
    graph too large for memory (estimated before it is read), ``DatasetUnavailableError`` for a
    dataset not in the cache."""
    g = specs.load(name, specs.HOMOGENEOUS, seed=params.seed, builtin=lambda n: builtin_graph(n, params))
    if g.feature_dim == 0:
        raise specs.DataSpecError(f"dataset {name!r}: the graph has no node features; {NOTEBOOK}'s models "
                                  "(GraphSAGE, GAT) and its feature caches need them")
    if name not in BUILTIN_GRAPHS and (params.real_split == "random" or g.train_idx.numel() == 0):
        g = random_split(g, (0.6, 0.2, 0.2), params.seed)
    return g


class GraphCache(GraphCacheBase):
    """Loads each graph once per notebook run (``graphs[spec]``, see :func:`load_graph`)."""

    def __init__(self, params):
        super().__init__(lambda name: load_graph(name, params))


def graph_key(name: str, graph: HomogeneousGraph) -> str:
    """DistDGL graph name (and partition cache key) of ``graph``, the entry ``name`` of ``datasets``:
    the synthetic graph's name (it encodes the generator's size parameters), else
    :func:`studylib.data.specs.dataset_key`."""
    return re.sub(r"[^A-Za-z0-9_-]", "p", graph.name) if name == "synthetic" else specs.dataset_key(name)


def graph_table(graphs: dict) -> pd.DataFrame:
    """One row per graph: vertices, directed edges, mean degree, degree Gini, feature width,
    classes, split sizes, source notes."""
    rows = []
    for name, g in graphs.items():
        st = g.statistics()
        rows.append({"graph": name, "name": g.name, "nodes": st["n"], "edges": st["m"],
                     "avg_degree": st["avg_degree"], "max_in_degree": st["max_in_degree"],
                     "degree_gini": st["degree_gini"], "feature_dim": g.feature_dim, "classes": g.num_classes,
                     "train": len(g.train_idx), "val": len(g.val_idx), "test": len(g.test_idx),
                     "notes": "; ".join(f"{k}: {v}" for k, v in g.info.items() if k in
                                        ("feature_projection", "labels", "split", "source"))})
    return pd.DataFrame(rows)


def variant(model: str, policy: str, params, first_model: str = "sage", **over) -> dict:
    """One trainer variant (see :data:`studylib.studies.distributed_caching.node_trainer.VARIANT_DEFAULTS`).

    ``policy`` is ``distdgl`` (plain pulls, no background thread), ``prefetch`` (plain pulls in the
    background thread), or a cache policy (``massivegnn``, ``massivegnn-noevict`` = massivegnn
    without eviction, ``static``, ``lru``, ``decayed-use``; background thread).
    The label encodes every parameter that differs from the notebook's defaults, e.g.
    ``massivegnn``, ``massivegnn-f0.5``, ``massivegnn-a0.1-d32``, ``massivegnn-noevict``,
    ``gat:massivegnn``."""
    if policy == "massivegnn-noevict":
        policy, over = "massivegnn", {"eviction": not params.eviction, **over}
    v = {"model": model, "policy": "none" if policy in ("distdgl", "prefetch") else policy,
         "pipeline": policy != "distdgl", "fraction": params.prefetch_fraction, "alpha": params.alpha,
         "delta": params.delta, "eviction": params.eviction}
    v.update(over)
    label = policy
    if v["policy"] != "none":
        if v["fraction"] != params.prefetch_fraction:
            label += f"-f{v['fraction']:g}"
        if v["policy"] in ("massivegnn", "decayed-use"):
            if v["alpha"] != params.alpha:
                label += f"-a{v['alpha']:g}"
            if v["delta"] != params.delta:
                label += f"-d{v['delta']}"
            if v["eviction"] != params.eviction and v["policy"] == "massivegnn":
                label += "-evict" if v["eviction"] else "-noevict"
    v["label"] = label if model == first_model else f"{model}:{label}"
    return v


def plan_runs(params) -> list[dict]:
    """The cluster runs of a notebook run: ``[{"graph", "machines", "network", "run", "variants"}]``,
    one cluster start each; all variants of a run train in the same processes, alternating.

    * ``main``: every graph x machine count x main network: plain DistDGL and every policy with the
      first model; plain DistDGL and massivegnn with the other models;
    * ``sweeps`` (``sweep_graph``, first machine count, first main network; ``sweep_epochs`` of
      ``sweep_batches_per_epoch`` mini-batches, long enough for eviction to act): plain DistDGL,
      massivegnn at every prefetch fraction, at the ``cluster_grid_cells`` of the alpha x delta
      grid, and without eviction; its trainers record access sequences for the offline replay;
    * ``network`` (``sweep_graph``, first machine count): plain DistDGL, prefetch and massivegnn on
      every network of ``network_sweep`` that no main run already covers.
    """
    first = params.models[0]
    runs = []

    def add(graph, machines, network, kind, vs):
        uniq = {}
        for v in vs:
            uniq.setdefault(v["label"], v)
        sweeps = kind == "sweeps"
        runs.append({"graph": graph, "machines": int(machines), "network": network, "run": kind,
                     "variants": list(uniq.values()),
                     "epochs": params.sweep_epochs if sweeps else params.epochs,
                     "max_batches": params.sweep_batches_per_epoch if sweeps else params.max_batches_per_epoch,
                     "min_batches": (max(params.min_batches_per_epoch, params.sweep_batches_per_epoch) if sweeps
                                     else params.min_batches_per_epoch),
                     "record_access": list(params.replay_seed_orders) if sweeps else []})

    for graph in params.datasets:
        for m in params.machines:
            for net in params.networks:
                # the baseline next to massivegnn: neighbours in the alternation are measured closest in time
                pol = sorted(params.policies, key=lambda p: p != "massivegnn")
                vs = [variant(first, "distdgl", params, first)]
                vs += [variant(first, p, params, first) for p in pol]
                for model in params.models[1:]:
                    vs += [variant(model, "distdgl", params, first), variant(model, "massivegnn", params, first)]
                add(graph, m, net, "main", vs)
    g, m, net = params.sweep_graph, params.machines[0], params.networks[0]
    vs = [variant(first, "distdgl", params, first), variant(first, "massivegnn", params, first)]
    vs += [variant(first, "massivegnn", params, first, fraction=f) for f in params.fraction_sweep]
    vs += [variant(first, "massivegnn", params, first, alpha=float(a), delta=int(d))
           for a, d in params.cluster_grid_cells]
    vs += [variant(first, "massivegnn", params, first, eviction=not params.eviction)]
    add(g, m, net, "sweeps", vs)
    covered = {(r["graph"], r["machines"], r["network"]) for r in runs if r["run"] == "main"
               and {"prefetch", "massivegnn"} <= {v["label"] for v in r["variants"]}}
    for net in params.network_sweep:
        if (g, m, net) in covered:
            continue
        add(g, m, net, "network", [variant(first, "distdgl", params, first), variant(first, "prefetch", params, first),
                                   variant(first, "massivegnn", params, first)])
    return runs


def batch_size_for(graph: HomogeneousGraph, machines: int, trainers_per_machine: int, params,
                   min_batches: int | None = None) -> int:
    """Seeds per mini-batch: ``batch_size``, reduced on small graphs so that every trainer gets at
    least ``min_batches`` (default ``min_batches_per_epoch``) mini-batches per epoch."""
    per_trainer = max(1, len(graph.train_idx) // max(1, machines * trainers_per_machine))
    least = min_batches or params.min_batches_per_epoch
    return int(max(1, min(params.batch_size, math.ceil(per_trainer / least))))


def trainer_args(run: dict, graph: HomogeneousGraph, name: str, params, device: str) -> list[str]:
    """Command line of :mod:`studylib.studies.distributed_caching.node_trainer` for one run."""
    bs = batch_size_for(graph, run["machines"], params.trainers_per_machine, params, run.get("min_batches"))
    epochs = run.get("epochs", params.epochs)
    max_batches = run.get("max_batches", params.max_batches_per_epoch)
    args = ["--graph-name", name, "--variants", json.dumps(run["variants"]), "--epochs", epochs,
            "--batch-size", bs, "--fanouts", ",".join(map(str, params.fanouts)), "--hidden", params.hidden_dim,
            "--num-heads", params.num_heads, "--lr", params.lr, "--max-batches", max_batches,
            "--eval-max-nodes", params.eval_max_nodes, "--eval-batch-size", max(bs, 256),
            "--num-classes", graph.num_classes, "--seed", params.seed, "--device", device,
            "--seed-order", params.seed_order]
    if run.get("record_access"):
        # 0 = as many mini-batches as the variants train (epochs x mini-batches per epoch)
        args += ["--record-access", ",".join(run["record_access"]), "--record-batches", epochs * max_batches]
    if params.verify_features:
        args.append("--verify")
    return [str(a) for a in args]


def trainer_device(params) -> tuple[str, str]:
    """(device for the trainers, note). ``auto`` picks CUDA only when DGL's CUDA build is
    installed (the package index's DGL wheel is CPU-only); ``cuda`` without it raises
    ``RuntimeError`` with the fix."""

    if params.device == "cpu" or not torch.cuda.is_available():
        if params.device == "cuda":
            raise RuntimeError("device='cuda' was asked for, but torch sees no GPU")
        return "cpu", ""
    if machine.dgl_has_cuda():
        return "cuda", "NCCL all-reduce on GPUs"
    if params.device == "cuda":
        raise RuntimeError("device='cuda' needs DGL's CUDA build (the index's dgl wheel is CPU-only): install DGL's "
                           "CUDA wheel from DGL's own wheel index, or set device='cpu'")
    return "cpu", "a GPU is present but this DGL build is CPU-only: training on the CPU"


def cluster_mode() -> tuple[str, str]:
    """(``"netns"``, "") when this host can emulate a cluster, else (``"standalone"``, reason)."""

    ok, why = namespaces_available()
    return ("netns", "") if ok else ("standalone", why)


def execute_run(run: dict, graph: HomogeneousGraph, params, device: str, workdir: Path,
                mode: str = "netns") -> tuple[dict[str, pd.DataFrame], dict]:
    """Partition the graph, run one cluster (or, in ``standalone`` mode, one process on a single
    partition) and split the trainers' rows by kind. Returns ``(tables, run info)`` where ``tables``
    maps ``epochs`` / ``batches`` / ``setup`` / ``accuracy`` / ``info`` to DataFrames carrying the
    run's key columns, and ``run info`` holds the network record, seconds and partition path.
    Raises :class:`studylib.distributed.ClusterError` when the cluster fails (everything torn down)."""

    name = graph_key(run["graph"], graph)
    parts = run["machines"] if mode != "standalone" else 1
    t0 = time.perf_counter()
    part_config = partition(graph, parts, method=params.partition_method, name=name)
    part_s = time.perf_counter() - t0
    args = trainer_args(run, graph, name, params, device)
    if mode != "standalone":
        spec = ClusterSpec(run["machines"], params.trainers_per_machine, run["network"], **params.cluster_spec_kwargs())
        res = run_cluster(part_config, TRAINER_MODULE, args, spec, timeout_s=params.cluster_timeout_s,
                          workdir=workdir)
    else:
        res = run_standalone(part_config, TRAINER_MODULE, args, timeout_s=params.cluster_timeout_s, workdir=workdir)
    rows = res.rows()
    key = {k: run[k] for k in RUN_KEY}
    tables = {}
    for kind in ("epoch", "batch", "setup", "accuracy", "info"):
        d = rows[rows["kind"] == kind].dropna(axis=1, how="all").copy() if not rows.empty else pd.DataFrame()
        for k, v in key.items():
            d[k] = v
        d["cluster_mode"] = mode
        tables[kind] = d.reset_index(drop=True)
    access = access_dir(run)
    recorded = sorted(res.out_dir.glob("access_rank*_*.pt")) if getattr(res, "out_dir", None) else []
    if recorded:
        if access.exists():
            shutil.rmtree(access)
        access.mkdir(parents=True)
        for f in recorded:
            shutil.move(str(f), access / f.name)
    info = {**key, **res.network, "mode": mode, "cluster_s": res.seconds, "partition_s": part_s,
            "access_files": len(recorded),
            "part_config": str(part_config), "batch_size": int(args[args.index("--batch-size") + 1]),
            "variants": len(run["variants"])}
    return tables, info


#: (nodes, directed edges, feature width) of the registered graphs, for the memory estimate before
#: loading them (OGB graphs: both directions of every published edge; registry statistics).
GRAPH_SHAPES = {"cora": (2708, 10556, 1433), "ogbn-products": (2449029, 2 * 61859140, 100),
                "ogbn-papers100M": (111059956, 2 * 1615685872, 128)}
#: DBLP's paper graph (P-A-P): papers and directed edges (see :func:`dblp_paper_graph`).
DBLP_SHAPE = (14328, 324880)


def graph_shape(name: str, params, graphs=None) -> tuple[int, int, int]:
    """(nodes, directed edges, feature width) of graph ``name`` under ``params``: for a built-in
    graph without loading or generating it (synthetic: ``synthetic_nodes x synthetic_avg_degree``
    edges); for a spec graph from the loaded graph ``graphs[name]`` (loading it if needed: its
    own memory check, :func:`studylib.data.specs.require_memory`, comes before reading it).
    Raises ``KeyError`` for a spec graph when ``graphs`` is ``None``."""
    if name not in BUILTIN_GRAPHS:
        if graphs is None:
            raise KeyError(f"{name!r}: the shape of a spec graph comes from the loaded graph; pass graphs")
        g = graphs[name]
        return int(g.n), int(g.src.numel()), int(g.feature_dim)
    if name == "synthetic":
        n = int(params.synthetic_nodes)
        return n, int(round(n * params.synthetic_avg_degree)), int(params.synthetic_feature_dim)
    if name == "dblp":
        return (*DBLP_SHAPE, int(params.dblp_feature_dim))
    return GRAPH_SHAPES[name]


def run_estimate(run: dict, params, mode: str = "netns", graphs=None) -> memory.Estimate:
    """Memory of one cluster run on this host, before its built-in graph is loaded (bytes, by part;
    a spec graph's shape is read from the loaded graph in ``graphs``, see :func:`graph_shape`):

    * ``graph``: the notebook's copy of the graph (int64 COO, float32 features, int64 labels);
    * ``partitioning``: DGL's CSR and CSC of the whole graph while ``partition_graph`` runs;
    * ``partitions``: the DistDGL partitions of every machine (all on this host with network
      namespaces), :func:`studylib.memory.partition_bytes` with ``N/P`` own nodes, ``E/P`` edges
      and the upper-bound halo of :func:`studylib.memory.random_partition_halo_nodes` per machine,
      own nodes' features included (the servers' shared memory);
    * ``buffers``: every trainer's feature buffers, one per cache variant, ``floor(fraction x
      halo)`` rows each (:func:`studylib.studies.distributed_caching.cache.capacity_for`).
    """
    n, e, f = graph_shape(run["graph"], params, graphs)
    p = run["machines"] if mode != "standalone" else 1
    halo = min(n - n // p, memory.random_partition_halo_nodes(n, e, p)) if p > 1 else 0
    trainers = p * params.trainers_per_machine
    slots = sum(capacity_for(halo, v["fraction"]) for v in run["variants"] if v["policy"] != "none") if halo else 0
    return memory.Estimate({
        "graph": memory.graph_bytes(n, e) + memory.feature_bytes(n, f) + 8 * n,
        "partitioning": memory.graph_bytes(n, e, formats=("csr", "csc")),
        "partitions": memory.partition_bytes(p, math.ceil(n / p), halo, math.ceil(e / p), feature_width=f),
        "buffers": trainers * memory.feature_bytes(slots, f),
    })


def access_dir(run: dict) -> Path:
    """Folder of a run's recorded access sequences (``results/02-distributed-caching/access/...``)."""
    return (paths.results_dir(NOTEBOOK) / "access"
            / f"{run['run']}-{specs.dataset_key(run['graph'])}-{run['machines']}m-{run['network']}")


def load_access(run: dict) -> list[dict]:
    """The access sequences recorded in ``run`` (see :mod:`.node_trainer`): one dict per rank and
    seed order, ``[]`` when none was recorded."""
    folder = access_dir(run)
    return [torch.load(f, weights_only=False) for f in sorted(folder.glob("access_rank*_*.pt"))] if folder.is_dir() else []


def replay_table(params, runs: list[dict] | None = None) -> pd.DataFrame:
    """The offline replay of every policy and every ``alpha_sweep`` x ``delta_sweep`` cell on the
    access sequences recorded in the sweeps run (:func:`studylib.studies.distributed_caching.replay.replay_grid`):
    one row per rank x seed order x policy x cell, with the run key, ``rank``, ``seed_order``,
    ``batches_per_epoch``, both hit rates, ``admitted_per_epoch`` and ``first_replacement``.
    Empty when nothing was recorded."""
    runs = plan_runs(params) if runs is None else runs
    rows = []
    for run in runs:
        if not run.get("record_access"):
            continue
        for rec in load_access(run):
            g = replay_grid(rec["halo_ids"], rec["in_degrees"], rec["batches"],
                            batches_per_epoch=int(rec["batches_per_epoch"]), fraction=params.prefetch_fraction,
                            alphas=params.alpha_sweep, deltas=params.delta_sweep)
            for k in RUN_KEY:
                g[k] = run[k]
            g["rank"], g["seed_order"], g["batches_per_epoch"] = rec["rank"], rec["order"], rec["batches_per_epoch"]
            rows.append(g)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def run_measurement(params, graphs: GraphCache | None = None, log=print) -> dict[str, pd.DataFrame]:
    """Run (or resume) every planned cluster run (:func:`plan_runs`) into the tables
    ``results/02-distributed-caching/{epochs,batches,setup,accuracy,links,partitions}`` and return
    them. A run whose tables were all written (same parameters, same machine; the completion marker
    of :class:`studylib.results.ResultGroup`) is not run again; one interrupted between its tables
    is run again and its partial rows replaced.
    Without network namespaces (no root, no ``ip``), every graph runs once in DistDGL's standalone
    mode instead and the reason is printed and recorded (``cluster_mode``, ``fallback_reason``).
    Before a run (and before its graph is loaded) its memory is estimated (:func:`run_estimate`);
    a run that does not fit in this host's memory is refused: an ``epochs`` row with
    ``status="refused"``, the estimate and the memory available."""

    graphs = graphs if graphs is not None else GraphCache(params)
    pdict = params.model_dump()
    mode, why = ("ssh", "") if params.cluster_mode == "ssh" else cluster_mode()
    device, note = trainer_device(params)
    if note:
        log(note)
    runs = plan_runs(params)
    if mode == "ssh":  # real hosts: their own network, no model emulated, so no network sweep
        log("ssh mode: every run uses the hosts' real network (recorded as 'real'; measured RTT and throughput in "
            "the links table)")
        runs = list({(r["graph"], r["machines"], r["run"]): {**r, "network": "real"}
                     for r in runs if r["run"] != "network"}.values())
    if mode == "standalone":
        log(f"network namespaces are not available ({why}); falling back to DistDGL's standalone mode: one "
            f"partition, one trainer, no remote traffic, so the caches have nothing to hold")
        seen = {}
        for g in dict.fromkeys([*params.datasets, params.sweep_graph]):
            seen[g] = {"graph": g, "machines": 1, "network": "none (standalone)", "run": "standalone",
                       "variants": [variant(params.models[0], p, params, params.models[0])
                                    for p in ("distdgl", "prefetch", "massivegnn")],
                       "epochs": params.epochs, "max_batches": params.max_batches_per_epoch,
                       "min_batches": params.min_batches_per_epoch, "record_access": []}
        runs = list(seen.values())
    group = ResultGroup(NOTEBOOK, "runs", ("epochs", "batches", "setup", "accuracy", "links"), RUN_KEY, pdict)
    tables = group.tables
    parts = ResultTable(NOTEBOOK, "partitions", ["graph", "machines", "part"], pdict)
    logdir = paths.results_dir(NOTEBOOK) / "logs"
    for i, run in enumerate(runs):
        key = {k: run[k] for k in RUN_KEY}
        if group.complete(key):
            log(f"[{i + 1}/{len(runs)}] {key}: already measured; resuming")
            continue
        if mode != "ssh":  # real hosts: their memory is not this host's
            decision = memory.decide(run_estimate(run, params, mode, graphs), what=f"{NOTEBOOK}: {run['run']} run of "
                                     f"{run['graph']} on {run['machines']} machine(s)")
            if not decision.fits:
                log(f"[{i + 1}/{len(runs)}] refused: {decision.message()}")
                tables["epochs"].add([memory.refused_row({**key, "variant": None}, decision)])
                continue
        g = graphs[run["graph"]]
        log(f"[{i + 1}/{len(runs)}] {run['run']}: {run['graph']} on {run['machines']} machine(s), network "
            f"{run['network']}: {len(run['variants'])} variants x {params.epochs} epochs")
        workdir = logdir / f"{run['run']}-{specs.dataset_key(run['graph'])}-{run['machines']}m-{run['network']}"
        t0 = time.perf_counter()
        try:
            got, info = execute_run(run, g, params, device, workdir, mode)
        except ClusterError as err:
            first = str(err).splitlines()[0]
            log(f"    failed: {first} (logs: {workdir / 'logs'})")
            tables["epochs"].add([{**key, "status": "failed", "error": str(err)[:2000], "variant": None}])
            continue
        info["fallback_reason"] = why
        rows = {}
        for kind, name in (("epoch", "epochs"), ("batch", "batches"), ("setup", "setup"), ("accuracy", "accuracy")):
            d = got[kind]
            d["status"] = "ok"
            d["fallback_reason"] = why
            rows[name] = d.to_dict("records")
        group.write(key, {**rows, "links": [{**info, "status": "ok"}]})
        nparts = run["machines"] if mode != "standalone" else 1
        pkey = {"graph": run["graph"], "machines": nparts, "part": 0}
        if not parts.has(pkey):
            cfg = partition(g, nparts, method=params.partition_method, name=graph_key(run["graph"], g))
            parts.add([{"graph": run["graph"], "machines": nparts, "status": "ok", **r}
                       for r in partition_statistics(cfg)])
        log(f"    done in {time.perf_counter() - t0:.0f} s (cluster {info['cluster_s']:.0f} s, measured RTT "
            f"{info.get('network_rtt_us_measured') or float('nan'):.0f} us, "
            f"{info.get('network_gbit_s_measured') or float('nan'):.2f} Gbit/s)")
    out = {name: t.frame() for name, t in tables.items()}
    out["partitions"] = parts.frame()
    return out


def _ok(df: pd.DataFrame | None) -> pd.DataFrame:
    """:func:`studylib.tables.ok_rows`, with an empty table for a missing one."""
    return pd.DataFrame() if df is None or df.empty else ok_rows(df)

def _baseline_label(model: str, first_model: str = "sage") -> str:
    return BASELINE if model == first_model else f"{model}:{BASELINE}"


def epoch_table(epochs: pd.DataFrame, warmup_epochs: int = 1) -> pd.DataFrame:
    """One row per run x variant x epoch (after ``warmup_epochs``): ``epoch_s`` of the slowest
    rank, region seconds averaged over ranks, counts and bytes summed over ranks, ``hit_rate`` =
    hits / (hits + halo misses), ``net_rx_bytes`` summed over machines, and
    ``baseline_epoch_s`` / ``speedup`` against the plain-DistDGL variant of the same model in the
    same epoch of the same run."""
    e = _ok(epochs)
    if e.empty:
        return pd.DataFrame()
    e = e[e["epoch"] >= warmup_epochs]
    keys = [*RUN_KEY, "variant", "model", "policy", "pipeline", "fraction", "alpha", "delta", "eviction", "epoch"]
    regions = [f"{r}_s" for r in (*PREPARE_REGIONS, "prepare", "wait", *TRAIN_REGIONS)]
    sums = ["hits", "halo_misses", "nonhalo", "pulled_rows", "remote_bytes", "net_rx_bytes", "net_tx_bytes",
            "input_nodes", "remote_nodes", "admitted"]
    agg = {"epoch_s": ("epoch_s", "max"), "train_loss": ("train_loss", "mean"), "n_batches": ("n_batches", "max")}
    agg.update({r: (r, "mean") for r in regions if r in e})
    agg.update({c: (c, "sum") for c in sums if c in e})
    t = e.groupby(keys, dropna=False).agg(**agg).reset_index()
    t["sampling_copy_s"] = sum(t[c] for c in ("sampling_s", "local_fetch_s", "remote_fetch_s", "cache_lookup_s",
                                              "cache_eviction_s") if c in t)
    t["hit_rate"] = t["hits"] / (t["hits"] + t["halo_misses"]).replace(0, np.nan)
    t["hit_rate_remote"] = t["hits"] / t["remote_nodes"].replace(0, np.nan) if "remote_nodes" in t else np.nan
    base = t[(t["policy"] == "none") & (~t["pipeline"].astype(bool))][[*RUN_KEY, "model", "epoch", "epoch_s"]]
    base = base.rename(columns={"epoch_s": "baseline_epoch_s"})
    t = t.merge(base, on=[*RUN_KEY, "model", "epoch"], how="left")
    t["speedup"] = t["baseline_epoch_s"] / t["epoch_s"]
    return t


def speedup_summary(epochs: pd.DataFrame, warmup_epochs: int = 1) -> pd.DataFrame:
    """One row per run x variant: ``mean_epoch_s``, ``baseline_mean_epoch_s``, ``cut`` (1 - ratio
    of the means), ``speedup_median`` / ``speedup_q1`` / ``speedup_q3`` (per-epoch ratios),
    ``hit_rate``, ``remote_mb_per_epoch`` (feature payload pulled over the network, all trainers),
    ``net_mb_per_epoch`` (bytes received by all machines' interfaces), ``epochs``,
    ``hit_rate_remote`` (hits / all remote input nodes: 2-hop remote nodes are never in a buffer),
    ``admitted_per_epoch`` (nodes admitted by eviction per epoch, all trainers) and
    ``sampling_copy_s`` (sampling + feature fetching per epoch, mean over ranks)."""
    t = epoch_table(epochs, warmup_epochs)
    if t.empty:
        return t
    keys = [*RUN_KEY, "variant", "model", "policy", "pipeline", "fraction", "alpha", "delta", "eviction"]
    g = t.groupby(keys, dropna=False)
    agg = dict(mean_epoch_s=("epoch_s", "mean"), baseline_mean_epoch_s=("baseline_epoch_s", "mean"),
               speedup_median=("speedup", "median"), speedup_q1=("speedup", lambda x: x.quantile(0.25)),
               speedup_q3=("speedup", lambda x: x.quantile(0.75)), hits=("hits", "sum"),
               halo_misses=("halo_misses", "sum"), remote_bytes=("remote_bytes", "mean"),
               net_rx_bytes=("net_rx_bytes", "mean"), epochs=("epoch", "nunique"),
               remote_nodes=("remote_nodes", "sum"), admitted_per_epoch=("admitted", "mean"),
               sampling_copy_s=("sampling_copy_s", "mean"))
    s = g.agg(**{k: v for k, v in agg.items() if v[0] in t}).reset_index()
    for k in agg:
        if k not in s:
            s[k] = np.nan
    s["cut"] = 1 - s["mean_epoch_s"] / s["baseline_mean_epoch_s"]
    s["hit_rate"] = s["hits"] / (s["hits"] + s["halo_misses"]).replace(0, np.nan)
    s["hit_rate_remote"] = s["hits"] / s["remote_nodes"].replace(0, np.nan)
    s["remote_mb_per_epoch"] = s["remote_bytes"] / 1e6
    s["net_mb_per_epoch"] = s["net_rx_bytes"] / 1e6
    return s.drop(columns=["remote_bytes", "net_rx_bytes"])


def breakdown_table(epochs: pd.DataFrame, warmup_epochs: int = 1) -> pd.DataFrame:
    """Median over epochs of each region (seconds, mean over ranks) per run x variant, split into
    the ``critical`` path (what the training loop waits for: every region when not pipelined; wait,
    forward, backward, all-reduce, update when pipelined; ``other`` = the rest of the epoch) and the
    ``background`` thread (sampling and fetching, overlapped with training). Columns: run key,
    variant, model, policy, pipeline, ``path``, ``region``, ``seconds``, ``epoch_s``."""
    t = epoch_table(epochs, warmup_epochs)
    if t.empty:
        return t
    keys = [*RUN_KEY, "variant", "model", "policy", "pipeline"]
    rows = []
    for k, d in t.groupby(keys, dropna=False):
        med = d.median(numeric_only=True)
        base = dict(zip(keys, k))
        pipelined = bool(base["pipeline"])
        crit = (["wait"] if pipelined else list(PREPARE_REGIONS)) + list(TRAIN_REGIONS)
        total = 0.0
        for r in crit:
            v = float(med.get(f"{r}_s", 0.0) or 0.0)
            total += v
            rows.append({**base, "path": "critical", "region": r, "seconds": v, "epoch_s": float(med["epoch_s"])})
        rows.append({**base, "path": "critical", "region": "other", "seconds": max(0.0, float(med["epoch_s"]) - total),
                     "epoch_s": float(med["epoch_s"])})
        if pipelined:
            for r in PREPARE_REGIONS:
                rows.append({**base, "path": "background", "region": r, "seconds": float(med.get(f"{r}_s", 0.0)),
                             "epoch_s": float(med["epoch_s"])})
    return pd.DataFrame(rows)


def accuracy_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy per run x variant (all ranks together; the same test nodes for every
    variant) with the baseline's accuracy and the difference."""
    a = _ok(accuracy)
    if a.empty:
        return a
    a = a.groupby([*RUN_KEY, "variant", "model", "policy", "pipeline"], dropna=False).agg(
        test_accuracy=("test_accuracy", "first"), test_count=("test_count", "first"),
        chance_accuracy=("chance_accuracy", "first")).reset_index()
    base = a[(a["policy"] == "none") & (~a["pipeline"].astype(bool))][[*RUN_KEY, "model", "test_accuracy"]]
    a = a.merge(base.rename(columns={"test_accuracy": "baseline_accuracy"}), on=[*RUN_KEY, "model"], how="left")
    a["difference"] = a["test_accuracy"] - a["baseline_accuracy"]
    return a


def _main_runs(summary: pd.DataFrame, params=None) -> pd.DataFrame:
    """Rows of the ``main`` runs (of the ``standalone`` runs when the host fell back to them)."""
    if summary.empty:
        return summary
    kind = "main" if (summary["run"] == "main").any() else "standalone"
    return summary[summary["run"] == kind]


def _sweep_rows(df: pd.DataFrame, params) -> pd.DataFrame:
    """Rows of the sweeps run of the first model."""
    if df.empty:
        return df
    return df[(df["run"] == "sweeps") & (df["model"] == params.models[0])]


def network_rows(summary: pd.DataFrame, params) -> pd.DataFrame:
    """Per network model of the sweep graph (first machine count, first model): the ``network``
    run, or the ``main`` run where it covered that network."""
    if summary.empty:
        return summary
    d = summary[(summary["graph"] == params.sweep_graph) & (summary["machines"] == params.machines[0])
                & (summary["model"] == params.models[0]) & summary["run"].isin(["network", "main"])]
    return d.sort_values("run", key=lambda r: r.map({"network": 0, "main": 1})).drop_duplicates(["network", "variant"])


def _default_massivegnn(d: pd.DataFrame, params) -> pd.DataFrame:
    return d[(d["policy"] == "massivegnn") & np.isclose(d["fraction"], params.prefetch_fraction)
             & np.isclose(d["alpha"], params.alpha) & (d["delta"] == params.delta)
             & (d["eviction"].astype(bool) == params.eviction)]


def _network_order(names) -> list[str]:
    def key(n):
        m = network_model(n)
        return (m.latency_s, -(m.rate_bit_s or float("inf")))

    return sorted(set(names), key=key)


#: The MassiveGNN authors' committed logs (pnnl/MassiveGNN): ogbn-products, 4 machines x 4
#: trainers, prefetch fraction 0.25, no eviction: hit rates 41-45 % (per trainer), an epoch of
#: 1.675 s of which sampling and copying take 0.68 s (Perlmutter CPU nodes).
AUTHORS_LOG = {"graph": "ogbn-products", "machines": 4, "trainers_per_machine": 4, "fraction": 0.25,
               "eviction": False, "hit_rate_low": 0.41, "hit_rate_high": 0.45, "epoch_s": 1.675,
               "sampling_copy_s": 0.68}


def paper_comparison(summary: pd.DataFrame, params) -> pd.DataFrame:
    """The authors' logged numbers (:data:`AUTHORS_LOG`) beside ours: one row per measured
    massivegnn variant on the logged setting (graph, machines, fraction; with and without eviction;
    first model, main runs), with ``hit_rate`` (halo), ``hit_rate_remote``, ``epoch_s`` and
    ``sampling_copy_s`` (sampling + fetching per epoch, mean over ranks), and the authors' row. Our
    columns are NaN where this profile did not run the setting (``note`` says so)."""
    a = AUTHORS_LOG
    rows = [{"source": "authors' logs", "graph": a["graph"], "machines": a["machines"], "network": "Perlmutter",
             "variant": "massivegnn (no eviction)", "hit_rate": f"{a['hit_rate_low']:.0%}-{a['hit_rate_high']:.0%}",
             "hit_rate_remote": np.nan, "epoch_s": a["epoch_s"], "sampling_copy_s": a["sampling_copy_s"],
             "note": f"{a['trainers_per_machine']} trainers per machine, fraction {a['fraction']:g}"}]
    s = _main_runs(summary, params) if summary is not None and not summary.empty else pd.DataFrame()
    if not s.empty:
        s = s[(s["graph"] == a["graph"]) & (s["machines"] == a["machines"]) & (s["policy"] == "massivegnn")
              & np.isclose(s["fraction"], a["fraction"]) & (s["model"] == params.models[0])]
    for r in s.itertuples() if not s.empty else []:
        rows.append({"source": "this run", "graph": r.graph, "machines": r.machines, "network": r.network,
                     "variant": r.variant, "hit_rate": f"{r.hit_rate:.0%}", "hit_rate_remote": r.hit_rate_remote,
                     "epoch_s": r.mean_epoch_s, "sampling_copy_s": r.sampling_copy_s,
                     "note": f"{params.trainers_per_machine} trainers per machine; "
                             f"{'with' if r.eviction else 'without'} eviction"})
    if len(rows) == 1:
        rows.append({"source": "this run", "graph": a["graph"], "machines": a["machines"], "network": "",
                     "variant": "", "hit_rate": "", "hit_rate_remote": np.nan, "epoch_s": np.nan,
                     "sampling_copy_s": np.nan, "note": "this profile does not run the logged setting "
                                                        "(the paper profile does)"})
    return pd.DataFrame(rows)


#: Config columns of the ``replay`` table.
REPLAY_KEY = [*RUN_KEY, "rank", "seed_order", "policy", "alpha", "delta"]


def run_replay(params) -> pd.DataFrame:
    """The ``replay`` table (``results/02-distributed-caching/replay``): :func:`replay_table` of the
    sweeps run's recorded access sequences, computed once per parameter set and machine (resumed
    like every table). Empty when no sequence was recorded (standalone mode, refused runs)."""
    table = ResultTable(NOTEBOOK, "replay", REPLAY_KEY, params.model_dump())
    if table.frame().empty:
        fresh = replay_table(params)
        if not fresh.empty:
            fresh["status"] = "ok"
            table.add(fresh.to_dict("records"))
    return table.frame()
