"""Measurements of notebook ``04-recsys-memory-tiers``: one big-memory machine vs distributed
subgraph training for GNN recommenders, and what a slower memory tier costs.

Reproduces and extends Hu, Li, Yu, Zhang, *Benchmarking GNN-Based Recommender Systems on Intel
Optane Persistent Memory* (arXiv 2207.11918; v2: *Analysis and Optimization of GNN-Based
Recommender Systems on Persistent Memory*). NGCF and LightGCN (:mod:`studylib.models.recsys`) are
trained with BPR on user-item graphs (:mod:`studylib.data.recsys`):

* **single machine, full graph**: every step propagates over the whole graph;
* **distributed subgraph training**: DistDGL on 2 and 4 machines of the one-host namespace
  cluster (:mod:`studylib.distributed`), each trainer sampling the L-hop subgraphs of its seed
  edges (:mod:`studylib.distributed.recsys_trainer`);
* **memory tiers**: the embedding table (and its Adam state) in DRAM, in a file-backed mapping with
  and without a memory-cgroup limit (the emulated slow tier), and split hot (DRAM) / cold (slow
  tier) (:mod:`studylib.memory_tiers`), each tier's bandwidth measured beside;
* **memory footprint** vs graph scale (synthetic power-law graphs), against this machine's DRAM.

Every ``measure_*`` function returns tidy rows (one per raw sample); ``plot_*`` functions draw
from the tables only; :func:`evaluate_findings` computes a verdict per finding of the paper.
Times are seconds of wall clock (device synchronised), memory is bytes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from studylib import timing
from studylib.data.graph_cache import GraphCache as GraphCacheBase
from studylib.data.recsys import PAPER_DATASETS, SYNTHETIC_PRESETS, BipartiteGraph, load_recsys
from studylib.models import recsys as rm
from studylib.timing import BACKWARD, FORWARD, OPTIMIZER_UPDATE, SAMPLING, STEP_TOTAL, StageTimer, stage

NOTEBOOK = "04-recsys-memory-tiers"

warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")

#: Regions of a training step, in stacking order (single machine and distributed alike).
REGIONS = ("sampling", "fetch", "forward", "backward", "communication", "update")
REGION_COLORS = {"sampling": "#e377c2", "fetch": "#bcbd22", "forward": "#1f77b4", "backward": "#9467bd",
                 "communication": "#17becf", "update": "#ff7f0e"}
#: Kernel classes of the tier breakdown, in plotting order (see :mod:`studylib.timing`).
TIER_COLORS = {"dram": "#1f77b4", "mmap_cached": "#2ca02c", "mmap_cgroup": "#d62728", "hot_cold": "#ff7f0e",
               "numa_remote": "#9467bd"}
TIER_KERNEL_CLASSES = (timing.SPMM, timing.SDDMM, timing.GEMM, timing.INDEXING, timing.ELEMENTWISE,
                       timing.REDUCTION, timing.MEMORY, timing.OVERHEAD, timing.OTHER)


# --------------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------------

class GraphCache(GraphCacheBase):
    """Loads each recommender graph once per notebook run (``cache[name]``); synthetic graphs at
    ``params.synthetic_scale``."""

    def __init__(self, params):
        super().__init__(lambda name: load_recsys(name, scale=params.synthetic_scale, seed=params.seed,
                                                  download=getattr(params, "download", False)))
        self.params = params
        self._dgl: dict[str, object] = {}

    def dgl(self, name: str):
        """The weighted DGL graph of ``name`` (edge data ``w``, see :func:`weighted_dgl`)."""
        if name not in self._dgl:
            self._dgl[name] = weighted_dgl(self[name])
        return self._dgl[name]


def weighted_dgl(graph: BipartiteGraph):
    """``graph.to_dgl()`` with the symmetric normalisation weights as edge data ``w``."""
    g = graph.to_dgl()
    g.edata["w"] = rm.edge_weights(g)
    return g


def dataset_table(graphs: GraphCache, names: list[str]) -> pd.DataFrame:
    """One row of :meth:`BipartiteGraph.statistics` per dataset."""
    return pd.DataFrame([graphs[n].statistics() for n in names])


def sweep_configs(params, models=None) -> list[dict]:
    """The (model, num_layers, dim) grid of the single-machine and distributed comparison: every
    layer count at ``base_dim`` and every width at ``base_layers`` (a cross, not the full product)."""
    out = []
    for m in models or params.models:
        for L in params.layer_counts:
            out.append({"model": m, "num_layers": int(L), "dim": int(params.base_dim)})
        for d in params.dims:
            c = {"model": m, "num_layers": int(params.base_layers), "dim": int(d)}
            if c not in out:
                out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# 1. Do the models learn? (recall / NDCG vs the popularity baseline)
# --------------------------------------------------------------------------------------------

def measure_accuracy(model_name: str, dataset: str, graph: BipartiteGraph, params) -> list[dict]:
    """Train ``params.accuracy_epochs`` epochs (full graph, BPR, Adam, ``base_layers`` x
    ``base_dim``) and return rows ``{epoch, loss, seconds, recall, ndcg, popularity_recall,
    popularity_ndcg}`` (metrics at K = ``params.top_k``)."""
    model = rm.build_recommender(model_name, graph.num_nodes, params.base_dim, params.base_layers, seed=params.seed)
    rows = rm.fit(model, graph, epochs=params.accuracy_epochs, batch_size=params.batch_size, lr=params.lr,
                  reg=params.reg, seed=params.seed, k=params.top_k, eval_every=1)
    pop = rm.evaluate_topk(*rm.popularity_scores(graph), graph, k=params.top_k)
    return [{**r, "popularity_recall": pop["recall"], "popularity_ndcg": pop["ndcg"], "k": params.top_k}
            for r in rows]


# --------------------------------------------------------------------------------------------
# 2. Single machine, full-graph training
# --------------------------------------------------------------------------------------------

def measure_single_machine(model_name: str, num_layers: int, dim: int, dataset: str, graphs: GraphCache, params,
                           device: torch.device) -> list[dict]:
    """Full-graph training steps on one machine: ``params.warmup_steps`` untimed, then
    ``params.repeat_steps`` timed.

    Rows ``{kind: "step", step, region, seconds, steps_per_epoch}`` with regions ``sampling`` (the
    batch and its negatives), ``fetch`` (gathering the batch's ego embeddings), ``forward`` (the
    rest of the forward pass and the loss), ``backward``, ``communication`` (0: one process),
    ``update`` (Adam) and ``step_total``; and one ``{kind: "memory", peak_rss_bytes,
    baseline_rss_bytes}`` row: the process's peak resident set size during the timed steps and its
    size before the model was built.
    """
    from studylib.studies.hgnn_training import PeakMemory, trim_heap

    graph = graphs[dataset]
    g = graphs.dgl(dataset)
    trim_heap()
    pm = PeakMemory(device)
    base = pm._proc.memory_info().rss
    model = rm.build_recommender(model_name, graph.num_nodes, dim, num_layers, seed=params.seed)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    sampler = rm.BatchSampler(graph, params.batch_size, seed=params.seed)
    batches = sampler.forever()

    def next_batch():
        return next(batches)

    for _ in range(params.warmup_steps):
        rm.full_graph_step(model, g, next_batch(), opt, graph.num_users, params.reg)
    timer = StageTimer(device=device)
    with pm.region("train"), timer.activate():
        for i in range(params.repeat_steps):
            with timer.step(i):
                with stage(SAMPLING):
                    batch = next_batch()
                rm.full_graph_step(model, g, batch, opt, graph.num_users, params.reg)
    rows = _regions_from_timer(timer.records, sampler.steps_per_epoch())
    rows.append({"kind": "memory", "step": -1, "region": "process", "seconds": float("nan"),
                 "peak_rss_bytes": pm.peaks["train"], "baseline_rss_bytes": base,
                 "steps_per_epoch": sampler.steps_per_epoch()})
    return rows


def _regions_from_timer(records: list[dict], steps_per_epoch: int) -> list[dict]:
    """Map a full-graph step's timer records to :data:`REGIONS` (forward excludes the gather)."""
    df = pd.DataFrame(records)
    per = df.pivot_table(index="step", columns="name", values="seconds", aggfunc="sum").fillna(0.0)
    rows = []
    for step, r in per.iterrows():
        gather = float(r.get(rm.GATHER_STAGE, 0.0))
        vals = {"sampling": float(r.get(SAMPLING, 0.0)), "fetch": gather,
                "forward": float(r.get(FORWARD, 0.0)) - gather, "backward": float(r.get(BACKWARD, 0.0)),
                "communication": 0.0, "update": float(r.get(OPTIMIZER_UPDATE, 0.0)),
                STEP_TOTAL: float(r.get(STEP_TOTAL, 0.0))}
        for region, s in vals.items():
            rows.append({"kind": "step", "step": int(step), "region": region, "seconds": s,
                         "steps_per_epoch": steps_per_epoch})
    return rows


# --------------------------------------------------------------------------------------------
# 3. Redundancy of subgraph training (local sampler: the sampling DistDGL's trainers do)
# --------------------------------------------------------------------------------------------

def measure_redundancy(dataset: str, num_layers: int, graphs: GraphCache, params) -> list[dict]:
    """Sample one epoch of mini-batches of the user->item training edges with the distributed
    trainers' sampler (``params.fanout`` neighbours per node and layer, one uniform negative item per
    edge, ``params.batch_size`` seed edges per batch) on one process, and count the redundancy per
    layer (:class:`studylib.models.recsys.RedundancyCounter`).

    Rows per layer: the counter's columns plus ``epoch_sampling_s`` (seconds to sample the epoch)
    and ``full_graph_edges_per_epoch`` (edges a full-graph epoch aggregates per layer: steps per
    epoch x directed edges, for comparison with ``sum_edges``).
    """
    import dgl

    graph = graphs[dataset]
    g = graphs.dgl(dataset)
    seeds = torch.nonzero(g.edata["user_to_item"]).flatten()
    items = torch.arange(graph.num_users, graph.num_nodes)
    sampler = dgl.dataloading.as_edge_prediction_sampler(
        dgl.dataloading.NeighborSampler([params.fanout] * num_layers),
        negative_sampler=rm.ItemNegativeSampler(items, seed=params.seed))
    loader = dgl.dataloading.DataLoader(g, seeds, sampler, batch_size=params.batch_size, shuffle=True,
                                        drop_last=False, num_workers=0)
    counter = rm.RedundancyCounter(num_layers)
    t0 = time.perf_counter()
    for _, _, _, blocks in loader:
        counter.add(blocks)
    secs = time.perf_counter() - t0
    steps = math.ceil(len(seeds) / params.batch_size)
    return [{**r, "epoch_sampling_s": secs, "full_graph_edges_per_epoch": steps * g.num_edges(),
             "source": "local sampler"} for r in counter.rows()]


# --------------------------------------------------------------------------------------------
# 4. Distributed subgraph training (DistDGL, namespace cluster)
# --------------------------------------------------------------------------------------------

def distributed_available(params=None) -> tuple[bool, str]:
    """Whether the DistDGL namespace cluster can run here, and why not (real hosts,
    ``params.cluster_mode == "ssh"``, are checked by the launcher when it starts)."""
    if params is not None and params.cluster_mode == "ssh":
        return True, ""
    try:
        from studylib import distributed
    except ImportError as e:  # pragma: no cover - the launcher is part of the package
        return False, f"the DistDGL launcher (studylib.distributed) is not available: {e}"
    try:
        return distributed.namespaces_available()
    except Exception as e:  # noqa: BLE001 - report any probe failure as the reason
        return False, f"probing network namespaces failed: {type(e).__name__}: {e}"


def partition_graph(graph: BipartiteGraph, num_parts: int, name: str, cache_dir: Path | None = None) -> Path:
    """Partition the homogeneous user-item graph for DistDGL with METIS (cached), carrying the node
    data the trainer needs (``deg``, ``is_item``) and the edge mask ``user_to_item`` of the seed
    edges; ``feat``/``label``/``train_mask`` are the launcher's required placeholders (the
    embeddings are a DistEmbedding). Returns the partition JSON."""
    from studylib import distributed

    dg = graph.to_dgl()
    n = dg.num_nodes()
    dg.ndata["feat"] = torch.zeros(n, 1)
    dg.ndata["label"] = torch.zeros(n, dtype=torch.int64)
    dg.ndata["train_mask"] = (~dg.ndata["is_item"]).to(torch.uint8)
    dg.ndata["is_item"] = dg.ndata["is_item"].to(torch.uint8)
    dg.edata["user_to_item"] = dg.edata["user_to_item"].to(torch.uint8)
    return distributed.partition(dg, num_parts, method="metis", name=name, cache_dir=cache_dir)


def _graph_name(dataset: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in dataset)[:40]


def measure_distributed(dataset: str, num_machines: int, configs: list[dict], graphs: GraphCache, params,
                        redundancy_layers: list[int] | None = None) -> list[dict]:
    """Train every configuration of ``configs`` with DistDGL on ``num_machines`` emulated machines
    (one trainer and one server each) in one cluster run.

    Returns the trainers' rows (``kind`` ``step``, ``counts``, ``traffic``, ``memory``,
    ``redundancy``; see :mod:`studylib.distributed.recsys_trainer`) plus, per configuration whose
    layer count is in ``redundancy_layers``, ``kind="redundancy_merged"`` rows: the redundancy over
    all trainers together (sums over ranks / the union of their distinct ids). Raises
    ``ClusterError`` / ``ClusterUnavailableError`` from the launcher.
    """
    from studylib import distributed, paths

    graph = graphs[dataset]
    name = _graph_name(dataset)
    part = partition_graph(graph, num_machines, name)
    red = set(redundancy_layers or [])
    args = ["--graph-name", name, "--configs", json.dumps(configs), "--batch-size", params.batch_size,
            "--fanout", params.fanout, "--lr", params.lr, "--reg", params.reg, "--warmup-steps",
            params.warmup_steps, "--steps", params.repeat_steps, "--seed", params.seed]
    spec = distributed.ClusterSpec(num_machines, network=params.network, **params.cluster_spec_kwargs())
    shared = paths.results_dir(NOTEBOOK) if params.cluster_mode == "ssh" else None  # real hosts write there
    with tempfile.TemporaryDirectory(prefix="recsys-cluster-", dir=shared) as tmp:
        rows = []
        # configurations that count redundancy run in their own pass with --redundancy
        for subset, flag in (([c for c in configs if c["num_layers"] not in red], False),
                             ([c for c in configs if c["num_layers"] in red], True)):
            if not subset:
                continue
            wd = Path(tmp) / ("red" if flag else "plain")
            res = distributed.run_cluster(part, "studylib.distributed.recsys_trainer",
                                          [*map(str, args[:3]), json.dumps(subset), *map(str, args[4:])]
                                          + (["--redundancy"] if flag else []),
                                          spec, timeout_s=params.cluster_timeout_s, workdir=wd)
            df = res.rows()
            df["cluster_seconds"] = res.seconds
            df["pass"] = "redundancy" if flag else "plain"
            if "config" in df:
                cfg = df["config"]
                for key in ("model", "num_layers", "dim"):
                    df.loc[cfg.notna(), key] = [subset[int(i)][key] for i in cfg[cfg.notna()]]
            rows.extend(df.to_dict("records"))
            if flag:
                rows.extend(_merge_redundancy(res.out_dir, subset))
    return rows


def _merge_redundancy(out_dir: Path, configs: list[dict]) -> list[dict]:
    """Redundancy of all trainers together: per configuration and layer, the summed counts over
    ranks divided by the size of the union of their distinct node / edge ids."""
    import pandas as pd

    frames = [pd.read_parquet(f) for f in sorted(Path(out_dir).glob("rank*.parquet"))]
    df = pd.concat(frames, ignore_index=True)
    red = df[df["kind"] == "redundancy"]
    out = []
    for idx, cfg in enumerate(configs):
        files = sorted(Path(out_dir).glob(f"rank*.c{idx}.redundancy.npz"))
        if not files:
            continue
        data = [np.load(f) for f in files]
        r = red[red["config"] == idx]
        for layer in range(1, int(cfg["num_layers"]) + 1):
            nodes = np.unique(np.concatenate([d[f"nodes{layer}"] for d in data]))
            edges = np.unique(np.concatenate([d[f"edges{layer}"] for d in data]))
            rl = r[r["layer"] == layer]
            sn, se = int(rl["sum_nodes"].sum()), int(rl["sum_edges"].sum())
            out.append({"kind": "redundancy_merged", **cfg, "layer": layer, "batches": int(rl["batches"].sum()),
                        "sum_nodes": sn, "distinct_nodes": len(nodes), "node_redundancy": sn / max(1, len(nodes)),
                        "sum_edges": se, "distinct_edges": len(edges), "edge_redundancy": se / max(1, len(edges)),
                        "epoch_sampling_s": float(rl["epoch_sampling_s"].max()), "ranks": len(files)})
    return out


# --------------------------------------------------------------------------------------------
# 5. Memory tiers (run inside the worker process of studylib.memory_tiers)
# --------------------------------------------------------------------------------------------

def tier_worker(job: dict, cg, out) -> None:
    """Body of the memory-tier worker (``python -m studylib.memory_tiers JOB`` with ``kind="tiers"``):
    tier bandwidth, then training steps per configuration and tier. ``cg`` is the worker's
    :class:`studylib.memory_tiers.MemoryCgroup` (``None`` where cgroups are unusable: the cgroup tiers
    are then not in the job); ``out`` a :class:`studylib.memory_tiers.PartWriter` that receives the
    rows (``kind`` ``bandwidth``, ``step``, ``io``, ``kernels``, ``tier_info``) unit by unit. Units
    named in ``job["skip"]`` are left out (a rerun after a failed unit)."""
    from studylib import memory_tiers as mt

    torch.manual_seed(job["seed"])
    pid = os.getpid()
    workdir = Path(job["workdir"])
    margin = int(job["margin_mib"] * 2**20)
    skip = set(job.get("skip", []))

    @contextlib.contextmanager
    def in_cgroup(tier: str, reserve: int | None = None):
        if tier not in mt.CGROUP_TIERS:
            yield
            return
        mt.prefault_heap(max(int(job["heap_reserve_mib"] * 2**20), int(reserve or 0)))
        cg.set_limit(None)
        cg.add(pid)
        try:
            yield
        finally:
            cg.set_limit(None)
            cg.leave(pid)

    # import and run the timing harness once outside any cgroup (its imports allocate)
    timing.benchmark(lambda: torch.zeros(4).sum(), num_threads=job["threads"], min_run_time=0.01, warmup=1,
                     check_inputs=False, measure_memory=False)
    _log("bandwidth")
    # ---- bandwidth of each tier (hot_cold has no arrays of its own)
    nbytes = int(job["bandwidth_mib"] * 2**20)
    for tier in job["tiers"]:
        unit = f"bandwidth/{tier}"
        if tier == "hot_cold" or unit in skip:
            continue
        out.start(unit)
        rows = []
        d = job["bandwidth_dim"]
        rows_n = nbytes // 4 // d
        idx = torch.randperm(rows_n, generator=torch.Generator().manual_seed(job["seed"]))[: max(1, rows_n // 4)]
        gathered = torch.empty(len(idx), d)
        gathered.fill_(0.0)  # touched outside the cgroup: not charged to it
        tdir = workdir / f"bw-{tier}"
        # the arrays' files are written and evicted before the process joins the cgroup, so that
        # nothing but the measurement's own page faults is charged to it
        a, b = mt.tier_arrays(tier, nbytes, tdir)
        if tier in mt.CGROUP_TIERS:
            mt.advise(a, job["advice"])
            mt.advise(b, job["advice"])
        with in_cgroup(tier):
            if tier in mt.CGROUP_TIERS:
                cg.set_limit_at_least(margin + int(job["cache_fraction"] * 2 * nbytes))
            for r in mt.measure_tier_bandwidth(a, b, d, idx, gathered, threads=job["threads"],
                                               rounds=job["bandwidth_rounds"],
                                               min_run_time=job["bandwidth_min_run_time"]):
                rows.append({"kind": "bandwidth", "tier": tier, **r})
            del a, b
        for f in tdir.glob("*.f32"):
            f.unlink()
        out.done(unit, rows)

    # ---- training steps per configuration and tier
    graphs: dict[str, BipartiteGraph] = {}
    for cfg in job["configs"]:
        if all(tier_unit(cfg, t) in skip for t in job["tiers"]):
            continue
        ds = cfg["dataset"]
        if ds not in graphs:
            graphs[ds] = BipartiteGraph.load(job["graph_files"][ds])
        graph = graphs[ds]
        g = weighted_dgl(graph)
        deg = graph.node_degrees()
        hot_ids = mt.hot_rows(deg, job["hot_fraction"])
        for tier in job["tiers"]:
            unit = tier_unit(cfg, tier)
            if unit in skip:
                continue
            out.start(unit)
            out.done(unit, _tier_config(job, cfg, tier, graph, g, hot_ids, cg, in_cgroup, margin))


def tier_unit(cfg: dict, tier: str) -> str:
    """Name of one unit of the tier worker's work: ``<dataset>/<model>/<tier>``."""
    return f"{cfg['dataset']}/{cfg['model']}/{tier}"


def _log(msg: str) -> None:
    import sys

    print(f"[tier worker {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _tier_config(job, cfg, tier, graph, g, hot_ids, cg, in_cgroup, margin) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    from studylib import memory_tiers as mt

    _log(f"{cfg} tier {tier}: start")

    model_name, L, d = cfg["model"], int(cfg["num_layers"]), int(cfg["dim"])
    torch.manual_seed(job["seed"])
    init = rm.build_recommender(model_name, graph.num_nodes, d, L, seed=job["seed"]).embedding.full().detach()
    tdir = Path(job["workdir"]) / f"{cfg['dataset']}-{model_name}-{tier}"
    rows = []
    base = {"dataset": cfg["dataset"], "model": model_name, "num_layers": L, "dim": d, "tier": tier}
    import psutil

    rss0 = psutil.Process().memory_info().rss
    # the tier files are written and evicted before the process joins the cgroup (see tier_worker)
    table = mt.place_table(init, tier, tdir, hot_ids=hot_ids)
    model = rm.build_recommender(model_name, graph.num_nodes, d, L, seed=job["seed"], embedding=table)
    opt = mt.tier_optimizer(model, table, tier, tdir, job["lr"])
    files = sorted(tdir.glob("*.f32")) if tdir.exists() else []
    mapped = [(p.data, mt.mapping_of(p.data)) for p in table.parameters()]
    mapped += [(st[k], mt.mapping_of(st[k])) for st in opt.state.values() for k in ("exp_avg", "exp_avg_sq")
               if k in st]
    mapped = [(t, path.removesuffix(" (deleted)")) for t, path in mapped if path is not None]
    if tier in mt.CGROUP_TIERS:
        for t, _ in mapped:
            mt.advise(t, job["advice"])
    tier_bytes = sum(f.stat().st_size for f in files)
    sampler = rm.BatchSampler(graph, job["batch_size"], seed=job["seed"])
    batches = sampler.forever()

    def next_batch():
        return next(batches)

    def profiled_steps(n):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(n):
                rm.full_graph_step(model, g, next_batch(), opt, graph.num_users, job["reg"])
        return prof

    # warm-up outside the cgroup: the heap grows to its working size here (see WORKER_MALLOC_ENV),
    # so that inside the cgroup almost only the tier files' page cache is charged to it
    for _ in range(max(2, job["warmup_steps"])):
        rm.full_graph_step(model, g, next_batch(), opt, graph.num_users, job["reg"])
    # heap reserve for the cgroup phase: twice what model, optimizer and steps added to the heap
    reserve = 2 * max(0, psutil.Process().memory_info().rss - rss0)
    limit = None
    if tier in mt.CGROUP_TIERS:
        for t, path in mapped:
            mt.evict(t, path)
    resident_before = float(np.nanmean([mt.resident_fraction(f) for f in files])) if files else float("nan")
    flusher = mt.Flusher([p for _, p in mapped]) if tier in mt.CGROUP_TIERS else contextlib.nullcontext()
    with in_cgroup(tier, reserve), flusher:
        if tier in mt.CGROUP_TIERS:
            # two more warm-up steps inside the unlimited cgroup charge to it whatever anonymous
            # memory the steady state still needs; then the tier's pages are evicted again and the
            # limit leaves the page cache ``cache_fraction`` of the tier files (+ margin)
            for _ in range(2):
                rm.full_graph_step(model, g, next_batch(), opt, graph.num_users, job["reg"])
            _log(f"  in-cgroup warm-up steps: {cg.stats()}")
            for t, path in mapped:
                mt.evict(t, path)
            anon = cg.stats()["anon"]
            limit = cg.set_limit_at_least(int(anon + margin + job["cache_fraction"] * tier_bytes))
            _log(f"  joined the cgroup, limit {limit} bytes for {tier_bytes} tier bytes; {cg.stats()}")
        timer = StageTimer()
        io = mt.IOCounter()
        with timer.activate():
            for i in range(job["steps"]):
                io.start()
                with timer.step(i):
                    with stage(SAMPLING):
                        batch = next_batch()
                    rm.full_graph_step(model, g, batch, opt, graph.num_users, job["reg"])
                ioc = io.read()
                rows.append({**base, "kind": "io", "step": i, **ioc})
        for r in _regions_from_timer(timer.records, sampler.steps_per_epoch()):
            rows.append({**base, **r})
        hit = getattr(table, "last_hit_rate", float("nan"))
        _log(f"  timed steps done; {cg.stats() if tier in mt.CGROUP_TIERS else ''}")
        stats = cg.stats() if tier in mt.CGROUP_TIERS else {}
        resident = [mt.resident_fraction(f) for f in files]
        if job["profile_steps"]:
            # the profiler allocates memory of its own: under the strict limit it would be killed, so
            # the profiled steps start with the tier's pages evicted and the limit lifted (each tier
            # page is then read from storage once per step, as in a step whose cache is cold)
            if tier in mt.CGROUP_TIERS:
                cg.set_limit(None)
                for t, path in mapped:
                    mt.evict(t, path)
            prof = profiled_steps(job["profile_steps"])
            kc = timing.kernel_class_breakdown(prof, "cpu")
            for (cls,), part in kc.groupby(["kernel_class"]):
                rows.append({**base, "kind": "kernels", "kernel_class": cls,
                             "seconds": float(part["self_us"].sum()) * 1e-6 / job["profile_steps"]})
        rows.append({**base, "kind": "tier_info", "tier_file_bytes": tier_bytes, "cgroup_limit_bytes": limit,
                     "resident_before": resident_before, "cgroup_anon_bytes": stats.get("anon"), "hit_rate": hit,
                     "hot_rows": int(len(hot_ids)) if tier == "hot_cold" else 0,
                     "resident_fraction": float(np.nanmean(resident)) if resident else float("nan"),
                     "file_backed": bool(files), "limit_hits": stats.get("limit_hits"),
                     "cgroup_file_bytes": stats.get("file"), "steps_per_epoch": sampler.steps_per_epoch()})
    for f in files:
        with contextlib.suppress(OSError):
            f.unlink()
    return rows


def _run_tier_worker(job: dict, workdir: Path, timeout_s: float, numa=None) -> list[dict]:
    """Run the worker; when it dies in a unit (e.g. killed for memory), record that unit as failed
    with the reason and run a new worker for the units left. Returns every row."""
    from studylib import memory_tiers as mt

    rows, skip = [], list(job.get("skip", []))
    for _ in range(len(job["configs"]) * len(job["tiers"]) + len(job["tiers"]) + 1):
        try:
            got, _ = mt.run_worker({**job, "skip": skip}, workdir=workdir, timeout_s=timeout_s, numa=numa,
                                   cgroup=numa is None)
            return rows + [{**r, "status": "ok"} for r in got]
        except mt.WorkerError as e:
            rows += [{**r, "status": "ok"} for r in e.rows]
            skip += sorted({r["unit"] for r in e.rows})
            if e.current is None or e.current in skip:
                raise
            parts = e.current.split("/")
            fail = {"unit": e.current, "kind": "failed", "status": e.reason,
                    "error": str(e).split(":")[0] + ": ..." + str(e)[-400:]}
            if parts[0] == "bandwidth":
                fail.update(tier=parts[1])
            else:
                fail.update(dataset=parts[0], model=parts[1], tier=parts[2])
            rows.append(fail)
            skip.append(e.current)
            _log(f"unit {e.current} failed ({e.reason}); continuing with a new worker. {str(e)[-1200:]}")
    return rows


def measure_tiers(params, graphs: GraphCache, workdir: Path | None = None) -> tuple[list[dict], list[dict]]:
    """Run the memory-tier worker over ``params.tier_datasets`` x ``params.tier_models`` x the tiers
    available here. Returns ``(rows, status_rows)``: the worker's rows, and one row per requested
    tier saying whether it ran and, if not, why (:func:`studylib.memory_tiers.tier_status`).
    Raises ``RuntimeError`` when the worker fails."""
    from studylib import memory_tiers as mt

    base = Path(workdir or params.tier_workdir or tempfile.gettempdir())
    statuses = mt.tier_status(params.tiers, base)
    run_tiers = [s.tier for s in statuses if s.available]
    numa = None
    if "numa_remote" in run_tiers:
        n = mt.numa_nodes()
        numa = (0, n - 1)
    status = mt.status_rows(statuses)
    work = mt.new_work_folder(base)  # removed below, at exit, or by the next run after a kill
    try:
        graph_files = {}
        for ds in params.tier_datasets:
            path = work / f"{_graph_name(ds)}.pt"
            graphs[ds].save(path)
            graph_files[ds] = str(path)
        configs = [{"dataset": ds, "model": m, "num_layers": params.tier_layers, "dim": params.tier_dim}
                   for ds in params.tier_datasets for m in params.tier_models]
        job = {"kind": "tiers", "tiers": [t for t in run_tiers if t != "numa_remote"], "configs": configs,
               "graph_files": graph_files, "seed": params.seed, "threads": torch.get_num_threads(),
               "lr": params.lr, "reg": params.reg, "batch_size": params.batch_size,
               "warmup_steps": params.warmup_steps, "steps": params.tier_steps, "profile_steps": params.profile_steps,
               "cache_fraction": params.cache_fraction, "hot_fraction": params.hot_fraction,
               "advice": params.tier_advice, "margin_mib": params.cgroup_margin_mib, "heap_reserve_mib": params.heap_reserve_mib,
               "bandwidth_mib": params.bandwidth_mib, "bandwidth_dim": params.tier_dim,
               "bandwidth_rounds": params.bandwidth_rounds, "bandwidth_min_run_time": params.bandwidth_min_run_time}
        rows = _run_tier_worker(job, work / "main", params.tier_timeout_s)
        if numa is not None:
            job_numa = {**job, "tiers": ["dram"]}
            nrows = _run_tier_worker(job_numa, work / "numa", params.tier_timeout_s, numa=numa)
            for r in nrows:
                r["tier"] = "numa_remote"
            rows.extend(nrows)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return rows, status


# --------------------------------------------------------------------------------------------
# 6. Memory footprint vs graph scale
# --------------------------------------------------------------------------------------------

def predicted_footprint_bytes(model: str, num_nodes: int, num_train: int, num_layers: int, dim: int,
                              batch_size: int = 2048) -> float:
    """Bytes of one full-graph training step, counted from the tensors it holds at its peak (fp32,
    int64 ids; ``E = 2 * num_train`` directed edges, ``N = num_nodes``, ``d = dim``, ``L`` layers):

    * graph: COO ids ``16 E``, the CSR and CSC DGL builds for the SpMM and its transpose
      ``2 (8 (N + 1) + 16 E)``, edge weights ``4 E``;
    * embedding table with its gradient and Adam's two moments: ``16 N d``;
    * LightGCN: ``L`` saved layer outputs plus two gradient buffers: ``4 N d (L + 2)``;
    * NGCF: per layer about eight saved ``N x d`` tensors (neighbour sum, self + neighbour sum, the
      two linear maps, the element-wise term, their sum, LeakyReLU, normalised output):
      ``32 N d L``; plus the SDDMM's two transient ``E x d`` edge tensors ``8 E d``, and the
      weights ``2 L (4 d^2 + 4 d)`` (x 4 with gradients and moments).

    An estimate to compare with measurements (:func:`measure_footprint`), not a bound.
    """
    N, E, d, L = float(num_nodes), 2.0 * num_train, float(dim), float(num_layers)
    graph = 16 * E + 2 * (8 * (N + 1) + 16 * E) + 4 * E
    table = 16 * N * d
    if model == "lightgcn":
        act = 4 * N * d * (L + 2)
    elif model == "ngcf":
        act = 32 * N * d * L + 8 * E * d + 4 * 2 * L * (4 * d * d + 4 * d)
    else:
        raise ValueError(f"unknown model {model!r}")
    return graph + table + act + 3 * 4 * batch_size * d * 2


def measure_footprint(preset: str, scale: float, model_name: str, params, device: torch.device) -> list[dict]:
    """Peak memory of full-graph training on a synthetic graph with ``preset``'s statistics at
    ``scale``: build the graph, the model and Adam, run ``max(1, warmup_steps) + 1`` steps, and
    record the process's peak resident set size above its size before (bytes). One row:
    ``{num_users, num_items, num_nodes, num_train, footprint_bytes, predicted_bytes}``."""
    from studylib.data.recsys import synthetic_like
    from studylib.studies.hgnn_training import PeakMemory, trim_heap

    graph = synthetic_like(preset, scale, seed=params.seed)
    trim_heap()
    pm = PeakMemory(device, interval_s=0.002)
    with pm.region("all"):
        g = weighted_dgl(graph)
        model = rm.build_recommender(model_name, graph.num_nodes, params.footprint_dim, params.footprint_layers,
                                     seed=params.seed)
        opt = torch.optim.Adam(model.parameters(), lr=params.lr)
        sampler = rm.BatchSampler(graph, params.batch_size, seed=params.seed)
        it = sampler.epoch()
        t0 = time.perf_counter()
        for _ in range(max(1, params.warmup_steps) + 1):
            rm.full_graph_step(model, g, next(it), opt, graph.num_users, params.reg)
        secs = time.perf_counter() - t0
    row = {"preset": preset, "scale": scale, "num_users": graph.num_users, "num_items": graph.num_items,
           "num_nodes": graph.num_nodes, "num_train": graph.num_train, "num_layers": params.footprint_layers,
           "dim": params.footprint_dim, "footprint_bytes": pm.peaks["all"] - pm.baselines["all"],
           "peak_rss_bytes": pm.peaks["all"], "seconds": secs,
           "predicted_bytes": predicted_footprint_bytes(model_name, graph.num_nodes, graph.num_train,
                                                        params.footprint_layers, params.footprint_dim,
                                                        params.batch_size)}
    del g, model, opt
    trim_heap()
    return [row]


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def run_measurement(name: str, params, device: torch.device, graphs: GraphCache | None = None) -> pd.DataFrame:
    """Run (or resume) one measurement into ``results/04-recsys-memory-tiers/<name>`` and return
    the whole table.

    ``name``: ``accuracy``, ``single_machine``, ``redundancy``, ``distributed``, ``footprint``
    (resumable per configuration) or ``tiers`` / ``tier_status`` (one worker run, re-measured
    unless the table already holds every configuration). Raises ``ValueError`` for other names.
    """
    from studylib.results import ResultTable

    graphs = graphs if graphs is not None else GraphCache(params)
    pdict = params.model_dump()

    def stamp(rows):
        return [{**r, "device": device.type, "num_threads": torch.get_num_threads()} for r in rows]

    if name == "accuracy":
        cfg = ["dataset", "model"]
        configs = [{"dataset": ds, "model": m} for ds in params.datasets for m in params.models]
        measure = lambda c: measure_accuracy(c["model"], c["dataset"], graphs[c["dataset"]], params)  # noqa: E731
    elif name == "single_machine":
        cfg = ["dataset", "model", "num_layers", "dim"]
        configs = [{"dataset": ds, **c} for ds in params.datasets for c in sweep_configs(params)]
        measure = lambda c: measure_single_machine(c["model"], c["num_layers"], c["dim"], c["dataset"],  # noqa: E731
                                                   graphs, params, device)
    elif name == "redundancy":
        cfg = ["dataset", "num_layers"]
        configs = [{"dataset": ds, "num_layers": int(L)} for ds in params.datasets for L in params.layer_counts]
        measure = lambda c: measure_redundancy(c["dataset"], c["num_layers"], graphs, params)  # noqa: E731
    elif name == "distributed":
        cfg = ["dataset", "num_machines"]
        configs = [{"dataset": ds, "num_machines": int(m)} for ds in params.datasets for m in params.machine_counts]
        measure = lambda c: measure_distributed(c["dataset"], c["num_machines"], sweep_configs(params),  # noqa: E731
                                                graphs, params, redundancy_layers=params.layer_counts)
    elif name == "footprint":
        cfg = ["preset", "scale", "model"]
        configs = [{"preset": params.footprint_preset, "scale": float(s), "model": m}
                   for s in params.footprint_scales for m in params.models]
        measure = lambda c: measure_footprint(c["preset"], c["scale"], c["model"], params, device)  # noqa: E731
    elif name in ("tiers", "tier_status"):
        tiers = ResultTable(NOTEBOOK, "tiers", ["dataset", "model", "tier"], pdict)
        status = ResultTable(NOTEBOOK, "tier_status", ["tier"], pdict)
        if tiers.frame().empty or status.frame().empty:
            rows, srows = measure_tiers(params, graphs)
            status.add([{**r, "status": "ok"} for r in srows])
            for r in rows:
                r.setdefault("dataset", "(bandwidth)")
                r.setdefault("model", "(bandwidth)")
            tiers.add(stamp([{"status": "ok", **r} for r in rows]))
        return tiers.frame() if name == "tiers" else status.frame()
    else:
        raise ValueError(f"unknown measurement {name!r} of {NOTEBOOK}")
    table = ResultTable(NOTEBOOK, name, cfg, pdict)
    return table.sweep(configs, lambda c: stamp(measure(c)), desc=name,
                       oom_metric_columns=["seconds"] if name != "footprint" else ["footprint_bytes"])


def machine_dram_bytes() -> int:
    """This machine's physical memory (bytes)."""
    import psutil

    return int(psutil.virtual_memory().total)


# --------------------------------------------------------------------------------------------
# Summaries (from the tables only)
# --------------------------------------------------------------------------------------------

def _ok(df: pd.DataFrame | None) -> pd.DataFrame | None:
    if df is None or df.empty:
        return df
    return df[df["status"] == "ok"] if "status" in df else df


def single_summary(single: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (dataset, model, layers, dim) and region: the median seconds per step and
    the epoch time (median step x steps per epoch); machines = 1."""
    s = _ok(single)
    s = s[s["kind"] == "step"]
    keys = ["dataset", "model", "num_layers", "dim"]
    med = s.groupby(keys + ["region"], as_index=False).agg(seconds=("seconds", "median"),
                                                          q1=("seconds", lambda x: x.quantile(0.25)),
                                                          q3=("seconds", lambda x: x.quantile(0.75)),
                                                          steps_per_epoch=("steps_per_epoch", "max"))
    med["num_machines"] = 1
    return med


def distributed_summary(dist: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, machine count and region: per step the slowest trainer (max over ranks),
    then the median over steps; ``steps_per_epoch`` per trainer (each trainer runs its own share
    of the seed edges, in parallel)."""
    d = _ok(dist)
    d = d[d["kind"] == "step"]
    keys = ["dataset", "model", "num_layers", "dim", "num_machines"]
    per = d.groupby(keys + ["region", "step"], as_index=False).agg(seconds=("seconds", "max"),
                                                                   steps_per_epoch=("steps_per_epoch", "max"))
    med = per.groupby(keys + ["region"], as_index=False).agg(seconds=("seconds", "median"),
                                                            q1=("seconds", lambda x: x.quantile(0.25)),
                                                            q3=("seconds", lambda x: x.quantile(0.75)),
                                                            steps_per_epoch=("steps_per_epoch", "max"))
    for k in ("num_layers", "dim", "num_machines"):
        med[k] = med[k].astype(int)
    return med


def epoch_table(single: pd.DataFrame | None, dist: pd.DataFrame | None) -> pd.DataFrame:
    """Epoch time per configuration and machine count: ``epoch_s`` = median step (slowest trainer)
    x steps per epoch, with ``epoch_q1_s`` / ``epoch_q3_s`` from the step quartiles, and the share
    of each region of :data:`REGIONS` in the median step."""
    parts = []
    if single is not None and not single.empty:
        parts.append(single_summary(single))
    if dist is not None and not dist.empty and (dist["kind"] == "step").any():
        parts.append(distributed_summary(dist))
    if not parts:
        return pd.DataFrame()
    m = pd.concat(parts, ignore_index=True)
    keys = ["dataset", "model", "num_layers", "dim", "num_machines"]
    tot = m[m["region"] == STEP_TOTAL].set_index(keys)
    out = pd.DataFrame({"step_s": tot["seconds"], "steps_per_epoch": tot["steps_per_epoch"]})
    out["epoch_s"] = out["step_s"] * out["steps_per_epoch"]
    out["epoch_q1_s"] = tot["q1"] * tot["steps_per_epoch"]
    out["epoch_q3_s"] = tot["q3"] * tot["steps_per_epoch"]
    wide = m[m["region"].isin(REGIONS)].pivot_table(index=keys, columns="region", values="seconds", aggfunc="sum")
    for r in REGIONS:
        out[f"{r}_s"] = wide[r] if r in wide else 0.0
    return out.reset_index()


def speedup_table(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and machine count > 1: distributed epoch time / single-machine epoch time
    (> 1: the single machine is faster by that factor)."""
    keys = ["dataset", "model", "num_layers", "dim"]
    one = epochs[epochs["num_machines"] == 1].set_index(keys)["epoch_s"].rename("single_epoch_s")
    multi = epochs[epochs["num_machines"] > 1].join(one, on=keys)
    multi["single_machine_advantage"] = multi["epoch_s"] / multi["single_epoch_s"]
    return multi[keys + ["num_machines", "epoch_s", "single_epoch_s", "single_machine_advantage"]]


def memory_summary(single: pd.DataFrame | None, dist: pd.DataFrame | None) -> pd.DataFrame:
    """Peak resident set size per process and in total per configuration and machine count (the
    cluster: per trainer and server over the whole run; shared memory counted by every process
    that maps it, so the total is an upper bound)."""
    rows = []
    if single is not None and not single.empty:
        s = _ok(single)
        m = s[s["kind"] == "memory"]
        for _, r in m.iterrows():
            rows.append({"dataset": r["dataset"], "model": r["model"], "num_layers": int(r["num_layers"]),
                         "dim": int(r["dim"]), "num_machines": 1, "processes": 1,
                         "max_process_peak_bytes": r["peak_rss_bytes"], "total_peak_bytes": r["peak_rss_bytes"]})
    if dist is not None and not dist.empty and (dist["kind"] == "memory").any():
        d = _ok(dist)
        m = d[d["kind"] == "memory"]
        for (ds, nm, pas), g in m.groupby(["dataset", "num_machines", "pass"]):
            rows.append({"dataset": ds, "model": "(all, one run)", "num_layers": -1, "dim": -1,
                         "num_machines": int(nm), "processes": len(g), "pass": pas,
                         "max_process_peak_bytes": g["peak_rss_bytes"].max(),
                         "total_peak_bytes": g["peak_rss_bytes"].sum()})
    return pd.DataFrame(rows)


def redundancy_table(red: pd.DataFrame | None, dist: pd.DataFrame | None) -> pd.DataFrame:
    """Redundancy per dataset, layer count, layer and source: the local sampler (one process, the
    whole batch) and each cluster size (all trainers merged)."""
    parts = []
    if red is not None and not red.empty:
        r = _ok(red).copy()
        r["source"] = "1 process (local sampler)"
        parts.append(r)
    if dist is not None and not dist.empty and (dist["kind"] == "redundancy_merged").any():
        d = _ok(dist)
        d = d[d["kind"] == "redundancy_merged"].copy()
        d = d.sort_values("model").drop_duplicates(["dataset", "num_machines", "num_layers", "layer"])
        d["source"] = d["num_machines"].astype(int).astype(str) + " machines (DistDGL, merged)"
        parts.append(d)
    if not parts:
        return pd.DataFrame()
    cols = ["dataset", "source", "num_layers", "layer", "batches", "node_redundancy", "edge_redundancy",
            "sum_nodes", "distinct_nodes", "sum_edges", "distinct_edges", "epoch_sampling_s"]
    out = pd.concat([p.reindex(columns=cols + ["full_graph_edges_per_epoch"]) for p in parts], ignore_index=True)
    out["num_layers"] = out["num_layers"].astype(int)
    out["layer"] = out["layer"].astype(int)
    return out


def tier_epoch_table(tiers: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, model and tier: median step and epoch time, slowdown vs DRAM, storage traffic
    per step, cgroup limit, hit rate, and the tier's measured bandwidths (read, write, gather; median
    over blocks)."""
    t = _ok(tiers)
    steps = t[(t["kind"] == "step") & (t["region"] == STEP_TOTAL)]
    keys = ["dataset", "model", "tier"]
    out = steps.groupby(keys).agg(step_s=("seconds", "median"), steps_per_epoch=("steps_per_epoch", "max"),
                                  step_q1_s=("seconds", lambda x: x.quantile(0.25)),
                                  step_q3_s=("seconds", lambda x: x.quantile(0.75)))
    out["epoch_s"] = out["step_s"] * out["steps_per_epoch"]
    io = t[t["kind"] == "io"].groupby(keys)[["major_faults", "storage_read_bytes", "storage_write_bytes"]].median()
    info = t[t["kind"] == "tier_info"].set_index(keys)[["tier_file_bytes", "cgroup_limit_bytes", "hit_rate",
                                                        "resident_fraction"]]
    out = out.join(io).join(info).reset_index()
    dram = out[out["tier"] == "dram"].set_index(["dataset", "model"])["step_s"].rename("dram_step_s")
    out = out.join(dram, on=["dataset", "model"])
    out["slowdown"] = out["step_s"] / out["dram_step_s"]
    bw = tier_bandwidth_table(tiers)
    if not bw.empty:
        wide = bw.pivot_table(index="tier", columns="kernel", values="bytes_per_s")
        wide.columns = [f"{c}_bytes_per_s" for c in wide.columns]
        out = out.join(wide, on="tier")
    return out


def tier_bandwidth_table(tiers: pd.DataFrame) -> pd.DataFrame:
    """Median bandwidth (bytes/s) and IQR per tier and kernel (read, write, copy, gather)."""
    t = _ok(tiers)
    b = t[t["kind"] == "bandwidth"]
    if b.empty:
        return pd.DataFrame()
    g = b.groupby(["tier", "kernel"])["bytes_per_s"]
    return pd.DataFrame({"bytes_per_s": g.median(), "q1": g.quantile(0.25), "q3": g.quantile(0.75),
                         "blocks": g.size()}).reset_index()


def tier_kernel_table(tiers: pd.DataFrame) -> pd.DataFrame:
    """Seconds per profiled step and share per dataset, model, tier and kernel class."""
    t = _ok(tiers)
    k = t[t["kind"] == "kernels"]
    if k.empty:
        return pd.DataFrame()
    g = k.groupby(["dataset", "model", "tier", "kernel_class"], as_index=False)["seconds"].sum()
    g["share"] = g["seconds"] / g.groupby(["dataset", "model", "tier"])["seconds"].transform("sum")
    return g


def footprint_fit(foot: pd.DataFrame) -> pd.DataFrame:
    """Per model: the median ratio of measured to predicted footprint (the calibration of
    :func:`predicted_footprint_bytes`) over the sweep's points, with its range."""
    f = _ok(foot)
    f = f.assign(ratio=f["footprint_bytes"] / f["predicted_bytes"])
    return f.groupby("model")["ratio"].agg(["median", "min", "max", "size"]).rename(
        columns={"median": "calibration", "size": "points"}).reset_index()


def paper_scale_footprints(foot: pd.DataFrame, layers: list[int], dims: list[int]) -> pd.DataFrame:
    """Calibrated predictions of the full-graph training footprint of the paper's datasets (their
    published sizes, 80% of interactions for training) for every model, layer count and width."""
    cal = footprint_fit(foot).set_index("model")["calibration"]
    rows = []
    for ds, src in PAPER_DATASETS.items():
        users, items, inter = src.statistics
        for model, c in cal.items():
            for L in layers:
                for d in dims:
                    pred = predicted_footprint_bytes(model, users + items, int(0.8 * inter), L, d)
                    rows.append({"dataset": ds, "model": model, "num_layers": L, "dim": d, "interactions": inter,
                                 "predicted_bytes": pred, "calibrated_bytes": pred * c})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def _machines_label(n: int) -> str:
    return "1 machine (full graph)" if n == 1 else f"{n} machines (DistDGL subgraphs)"


def plot_epoch_times(epochs: pd.DataFrame, base_layers: int, base_dim: int):
    """Grouped bars: epoch time per layer count (top row, width ``base_dim``) and per embedding
    width (bottom row, ``base_layers`` layers), bars for 1, 2 and 4 machines; one column per model
    (first dataset). Error bars: epoch time from the step quartiles."""
    import matplotlib.pyplot as plt

    ds = epochs["dataset"].iloc[0]
    e = epochs[epochs["dataset"] == ds]
    models = list(dict.fromkeys(e["model"]))
    machines = sorted(e["num_machines"].unique())
    colors = dict(zip(machines, ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]))
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 6.4), squeeze=False)
    for col, m in enumerate(models):
        for row, (x, fixed, fval, xl) in enumerate((("num_layers", "dim", base_dim, "layers"),
                                                   ("dim", "num_layers", base_layers, "embedding size"))):
            ax = axes[row][col]
            d = e[(e["model"] == m) & (e[fixed] == fval)]
            xs = sorted(d[x].unique())
            w = 0.8 / max(1, len(machines))
            for k, nm in enumerate(machines):
                dd = d[d["num_machines"] == nm].set_index(x).reindex(xs)
                pos = np.arange(len(xs)) + (k - (len(machines) - 1) / 2) * w
                err = [np.clip(dd["epoch_s"] - dd["epoch_q1_s"], 0, None), np.clip(dd["epoch_q3_s"] - dd["epoch_s"], 0, None)]
                ax.bar(pos, dd["epoch_s"], w, yerr=err, capsize=2, color=colors[nm], label=_machines_label(nm))
            ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs])
            ax.set_xlabel(xl)
            ax.set_ylabel("epoch time (s)")
            ax.set_title(f"{m.upper()} · {ds} · {fixed.replace('num_', '')}={fval}")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Epoch time: one machine (full-graph) vs DistDGL subgraph training (emulated machines share "
                 "this host's cores)")
    return fig


def plot_breakdown(epochs: pd.DataFrame, base_dim: int):
    """Stacked bars: the median step split into :data:`REGIONS` x steps per epoch (seconds per
    epoch), per layer count and machine count; one panel per model (width ``base_dim``)."""
    import matplotlib.pyplot as plt

    ds = epochs["dataset"].iloc[0]
    e = epochs[(epochs["dataset"] == ds) & (epochs["dim"] == base_dim)]
    models = list(dict.fromkeys(e["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 3.8), squeeze=False)
    for ax, m in zip(axes[0], models):
        d = e[e["model"] == m].sort_values(["num_layers", "num_machines"])
        labels = [f"L{int(r.num_layers)}·{int(r.num_machines)}m" for r in d.itertuples()]
        bottom = np.zeros(len(d))
        for reg in REGIONS:
            vals = (d[f"{reg}_s"].fillna(0) * d["steps_per_epoch"]).to_numpy()
            ax.bar(np.arange(len(d)), vals, bottom=bottom, color=REGION_COLORS[reg], label=reg)
            bottom += vals
        ax.set_xticks(np.arange(len(d)), labels, rotation=60, fontsize=7)
        ax.set_ylabel("seconds per epoch")
        ax.set_title(f"{m.upper()} · {ds} (L = layers, m = machines)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Where an epoch goes: subgraph construction (sampling), embedding fetch, forward, backward, "
                 "communication, update")
    return fig


def plot_redundancy(redund: pd.DataFrame):
    """Redundancy of subgraph training vs the number of layers: node (left) and edge (right)
    redundancy of the input-side layer, one line per source (local sampler, each cluster size)."""
    import matplotlib.pyplot as plt

    r = redund[redund["layer"] == 1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, col, title in ((axes[0], "node_redundancy", "input nodes"), (axes[1], "edge_redundancy", "edges")):
        for (ds, src), d in r.groupby(["dataset", "source"]):
            d = d.sort_values("num_layers")
            ax.plot(d["num_layers"], d[col], marker="o", label=f"{src} · {ds}")
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("layers (the input-side layer's block)")
        ax.set_ylabel(f"redundancy of {title}\n(sum over batches / distinct per epoch)")
        ax.set_xticks(sorted(r["num_layers"].unique()))
    axes[1].legend(fontsize=7)
    fig.suptitle("Overlap of the sampled subgraphs within one epoch (1 = every node/edge computed once)")
    return fig


def plot_tiers(tier_epochs: pd.DataFrame, bandwidth: pd.DataFrame, status: pd.DataFrame):
    """Left: measured bandwidth per tier and kernel (log scale). Right: slowdown of a training step
    vs DRAM per tier against the tier's measured gather bandwidth (hot/cold: its hit rate written
    beside). Tiers that could not run are listed with their reasons."""
    import matplotlib.pyplot as plt

    from studylib.memory_tiers import TIER_LABELS

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    if not bandwidth.empty:
        tiers = list(dict.fromkeys(bandwidth["tier"]))
        kernels = ["read", "write", "copy", "gather"]
        w = 0.8 / len(kernels)
        for k, kern in enumerate(kernels):
            d = bandwidth[bandwidth["kernel"] == kern].set_index("tier").reindex(tiers)
            pos = np.arange(len(tiers)) + (k - 1.5) * w
            ax.bar(pos, d["bytes_per_s"] / 1e9, w, label=kern,
                   yerr=[np.clip((d["bytes_per_s"] - d["q1"]) / 1e9, 0, None),
                         np.clip((d["q3"] - d["bytes_per_s"]) / 1e9, 0, None)], capsize=2)
        ax.set_xticks(np.arange(len(tiers)), [t.replace("_", "\n") for t in tiers], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("bandwidth (GB/s, log)")
        ax.legend(fontsize=7)
    ax.set_title("Measured tier bandwidth (00-hardware kernels on tier memory)")
    ax = axes[1]
    markers = {"lightgcn": "o", "ngcf": "s"}
    if not tier_epochs.empty and "gather_bytes_per_s" in tier_epochs:
        te = tier_epochs.copy()
        te["x"] = te["gather_bytes_per_s"]
        cold = te.loc[te["tier"] == "mmap_cgroup", "gather_bytes_per_s"].median()
        dram = te.loc[te["tier"] == "dram", "gather_bytes_per_s"].median()
        hc = te["tier"] == "hot_cold"
        # a cache with hit rate h in front of the slow tier: the harmonic mix of the two bandwidths
        te.loc[hc, "x"] = 1.0 / (te.loc[hc, "hit_rate"] / dram + (1 - te.loc[hc, "hit_rate"]) / cold)
        for t, d in te.groupby("tier", sort=False):
            for i, (_, r) in enumerate(d.iterrows()):
                ax.scatter(r["x"] / 1e9, r["slowdown"], marker=markers.get(r["model"], "o"), s=40,
                           color=TIER_COLORS.get(t), label=TIER_LABELS.get(t, t) if i == 0 else None)
                txt = f"{r['model']} · {r['dataset'][:14]}"
                if t == "hot_cold" and r["hit_rate"] == r["hit_rate"]:
                    txt += f" · hit {r['hit_rate']:.0%}"
                ax.annotate(txt, (r["x"] / 1e9, r["slowdown"]), fontsize=6, textcoords="offset points",
                            xytext=(4, 3))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("tier gather bandwidth (GB/s; hot/cold: effective at its hit rate)")
        ax.set_ylabel("step time / DRAM step time")
        ax.legend(fontsize=6, loc="upper right")
    skipped = status[~status["available"]] if status is not None and not status.empty else pd.DataFrame()
    if not skipped.empty:
        ax.text(0.01, 0.01, "not run: " + "; ".join(f"{r.tier} ({r.reason})" for r in skipped.itertuples())[:220],
                transform=ax.transAxes, fontsize=6, va="bottom", wrap=True)
    ax.set_title("Slowdown per tier vs its bandwidth (emulated tiers, see labels)")
    return fig


def plot_tier_kernels(kern: pd.DataFrame):
    """Stacked bars: profiled seconds per step by kernel class per tier; one panel per dataset and
    model."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    groups = list(kern.groupby(["dataset", "model"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    colors = dict(zip(TIER_KERNEL_CLASSES, sns.color_palette("tab10", len(TIER_KERNEL_CLASSES))))
    for ax, ((ds, m), d) in zip(axes[0], groups):
        wide = d.pivot_table(index="tier", columns="kernel_class", values="seconds", aggfunc="sum").fillna(0)
        wide = wide.reindex(columns=[c for c in TIER_KERNEL_CLASSES if c in wide.columns])
        bottom = np.zeros(len(wide))
        for c in wide.columns:
            ax.bar(np.arange(len(wide)), wide[c], bottom=bottom, color=colors[c], label=c.replace("_", " "))
            bottom += wide[c].to_numpy()
        ax.set_xticks(np.arange(len(wide)), [t.replace("_", "\n") for t in wide.index], fontsize=7)
        ax.set_ylabel("profiled seconds per step")
        ax.set_title(f"{m.upper()} · {ds[:22]}", fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Kernel classes per memory tier (torch.profiler self time; SpMM = GSpMM, SDDMM = GSDDMM)")
    return fig


def plot_footprint(foot: pd.DataFrame, paper: pd.DataFrame, dram_bytes: int):
    """Peak memory of full-graph training vs interactions: measured points of the synthetic sweep,
    the calibrated tensor-count model as lines (extrapolated), the paper's datasets at their sizes,
    and this machine's DRAM as a horizontal line."""
    import matplotlib.pyplot as plt

    f = _ok(foot)
    cal = footprint_fit(f).set_index("model")["calibration"]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    colors = {"lightgcn": "#1f77b4", "ngcf": "#d62728"}
    preset = f["preset"].iloc[0]
    p = SYNTHETIC_PRESETS[preset]
    for m, d in f.groupby("model"):
        ax.scatter(d["num_train"], d["footprint_bytes"] / 2**30, color=colors.get(m), zorder=3,
                   label=f"{m.upper()} measured ({preset}-like, L={int(d['num_layers'].iloc[0])}, "
                         f"d={int(d['dim'].iloc[0])})")
        xs = np.logspace(np.log10(d["num_train"].min()), np.log10(1e8), 60)
        ratio_u = p["num_users"] / p["num_interactions"]
        ratio_i = p["num_items"] / p["num_interactions"]
        ys = [cal[m] * predicted_footprint_bytes(m, int(x / 0.8 * (ratio_u + ratio_i)), int(x),
                                                 int(d["num_layers"].iloc[0]), int(d["dim"].iloc[0])) / 2**30
              for x in xs]
        ax.plot(xs, ys, color=colors.get(m), lw=1, ls="--", label=f"{m.upper()} model x {cal[m]:.2f} (extrapolated)")
    if paper is not None and not paper.empty:
        L, dd = int(f["num_layers"].iloc[0]), int(f["dim"].iloc[0])
        pp = paper[(paper["num_layers"] == L) & (paper["dim"] == dd)]
        for (ds, m), r in pp.groupby(["dataset", "model"]):
            ax.scatter(0.8 * r["interactions"], r["calibrated_bytes"] / 2**30, marker="*", s=90,
                       color=colors.get(m), edgecolor="k", zorder=4)
            ax.annotate(ds, (0.8 * r["interactions"].iloc[0], r["calibrated_bytes"].iloc[0] / 2**30), fontsize=7,
                        textcoords="offset points", xytext=(4, -8))
    ax.axhline(dram_bytes / 2**30, color="k", lw=1.2)
    ax.text(f["num_train"].min(), dram_bytes / 2**30 * 1.08,
            f"this machine's DRAM: {dram_bytes / 2**30:.0f} GiB", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training interactions")
    ax.set_ylabel("peak memory of full-graph training (GiB)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Memory footprint vs graph scale (stars: the paper's datasets, calibrated model)")
    return fig


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------

FINDINGS = (
    "Full-graph training of GNN recommenders at the paper's scale needs more memory than a server's DRAM",
    "Distributed subgraph training is inefficient: subgraph construction is costly and subgraphs overlap heavily",
    "One large-memory machine beats distributed training by a large margin, more so for deeper models",
    "The dominant kernels (SpMM, SDDMM) are sparse and memory-bound: a slower tier's bandwidth sets the slowdown",
    "Properly configured (hot data in DRAM in front of the slow tier), the large tier recovers most of DRAM speed",
)


def evaluate_findings(epochs: pd.DataFrame | None, redund: pd.DataFrame | None, tier_epochs: pd.DataFrame | None,
                      tier_kernels: pd.DataFrame | None, foot: pd.DataFrame | None, paper: pd.DataFrame | None,
                      dram_bytes: int, distributed_note: str = "") -> pd.DataFrame:
    """The paper's findings (Hu et al., arXiv 2207.11918) checked against this run's tables.

    One row per finding of :data:`FINDINGS`: ``finding``, ``verdict`` (``reproduced``,
    ``partly``, ``not reproduced``, ``not measured``) and ``evidence`` (the numbers). Thresholds:
    F2 -- sampling (subgraph construction) at least 25% of the distributed step and input-node
    redundancy of the input layer at least 2 at two or more layers; F3 -- reproduced when the single
    machine is faster by at least 1.5x ("large margin") for every model and machine count and its
    advantage is larger at the most layers than at one, partly when either holds somewhere; F4 -- SpMM + SDDMM + gather the largest class group of the DRAM step and the
    tiers' slowdowns ordered inversely to their gather bandwidth; F5 -- the hot/cold split recovers at
    least half of the slow tier's extra time. Verdicts come from the numbers only.
    """
    out = []

    def add(i, verdict, evidence):
        out.append({"finding": FINDINGS[i], "verdict": verdict, "evidence": evidence})

    # F1 memory footprint
    if foot is not None and not foot.empty and paper is not None and not paper.empty:
        f = _ok(foot)
        measured_over = int((f["footprint_bytes"] > dram_bytes).sum())
        oom = int((foot.get("status", pd.Series(dtype=str)) == "oom").sum())
        over = paper[paper["calibrated_bytes"] > dram_bytes]
        worst = paper.sort_values("calibrated_bytes").iloc[-1]
        fit = footprint_fit(foot)
        ev = (f"measured on the synthetic sweep up to {int(f['num_train'].max()):,} interactions: at most "
              f"{f['footprint_bytes'].max() / 2**30:.2f} GiB (DRAM {dram_bytes / 2**30:.0f} GiB); tensor-count model "
              f"calibration (measured/predicted) " + ", ".join(f"{r.model} {r.calibration:.2f}" for r in fit.itertuples())
              + f"; extrapolated to the paper's datasets, {len(over)} of {len(paper)} (dataset, model, layers, width) "
              f"settings exceed this machine's DRAM, the largest {worst['dataset']} {worst['model']} "
              f"L={int(worst['num_layers'])} d={int(worst['dim'])}: {worst['calibrated_bytes'] / 2**30:.1f} GiB")
        if measured_over or oom:
            add(0, "reproduced", ev + f"; {measured_over + oom} measured configuration(s) exceeded DRAM")
        elif len(over):
            add(0, "partly", ev + " (extrapolated, not measured: the sweep stayed within DRAM)")
        else:
            add(0, "not reproduced", ev)
    else:
        add(0, "not measured", "no footprint sweep")

    # F2 subgraph construction cost and redundancy
    has_dist = epochs is not None and not epochs.empty and (epochs["num_machines"] > 1).any()
    if has_dist or (redund is not None and not redund.empty):
        ev, ok = [], []
        if has_dist:
            d = epochs[epochs["num_machines"] > 1]
            share = d["sampling_s"] / d["step_s"]
            prep = (d["sampling_s"] + d["fetch_s"]) / d["step_s"]
            ok.append(bool(share.median() >= 0.25))
            ev.append(f"distributed steps: sampling median {share.median():.0%} of the step (range {share.min():.0%}-"
                      f"{share.max():.0%}), sampling + fetch median {prep.median():.0%}")
        if redund is not None and not redund.empty:
            r = redund[redund["layer"] == 1]
            hi = r.groupby("num_layers")["node_redundancy"].max()
            ok.append(bool((hi >= 2).sum() >= 2))
            ev.append("input-layer node redundancy by layers: " + ", ".join(f"L{k}: {v:.1f}" for k, v in hi.items())
                      + "; edge redundancy: " + ", ".join(f"L{k}: {v:.1f}" for k, v in
                                                         r.groupby("num_layers")["edge_redundancy"].max().items()))
        verdict = "reproduced" if all(ok) and len(ok) == 2 else ("partly" if any(ok) else "not reproduced")
        if not has_dist:
            ev.append(f"distributed runs: not measured ({distributed_note or 'no cluster rows'})")
        add(1, verdict, "; ".join(ev))
    else:
        add(1, "not measured", distributed_note or "no distributed or redundancy rows")

    # F3 single machine vs distributed, by depth
    if has_dist:
        sp = speedup_table(epochs)
        base_dim = epochs.groupby("dim").size().idxmax()
        s = sp[sp["dim"] == base_dim]
        adv = s.groupby(["model", "num_machines", "num_layers"])["single_machine_advantage"].median().unstack(
            "num_layers")
        large_all = bool((s["single_machine_advantage"] >= 1.5).all())
        large_any = bool((s["single_machine_advantage"] >= 1.5).any())
        grows = bool((adv.iloc[:, -1] > adv.iloc[:, 0]).all()) if adv.shape[1] > 1 else False
        ev = "distributed epoch / single-machine epoch (> 1: the single machine is faster): " + "; ".join(
            f"{m} {int(nm)} machines " + ", ".join(f"L{int(L)} {v:.2f}x" for L, v in row.items())
            for (m, nm), row in adv.iterrows())
        verdict = "reproduced" if large_all and grows else ("partly" if large_any or grows else "not reproduced")
        add(2, verdict, ev + ("" if large_all else "; the single machine is not 1.5x faster everywhere")
            + ("" if grows else "; its advantage does not grow with depth"))
    else:
        add(2, "not measured", f"distributed runs did not happen: {distributed_note or 'no cluster rows'}")

    # F4 sparse kernels dominate; slowdown follows bandwidth
    if tier_kernels is not None and not tier_kernels.empty and tier_epochs is not None and not tier_epochs.empty:
        k = tier_kernels[tier_kernels["tier"] == "dram"]
        sparse = k[k["kernel_class"].isin([timing.SPMM, timing.SDDMM, timing.INDEXING])].groupby(
            ["dataset", "model"])["share"].sum()
        dense = k[k["kernel_class"] == timing.GEMM].groupby(["dataset", "model"])["share"].sum().reindex(
            sparse.index).fillna(0)
        other = k[~k["kernel_class"].isin([timing.SPMM, timing.SDDMM, timing.INDEXING, timing.GEMM])].groupby(
            ["dataset", "model", "kernel_class"])["share"].sum().groupby(["dataset", "model"]).max().reindex(
            sparse.index).fillna(0)
        dominant = bool(((sparse > dense) & (sparse > other)).all())
        te = tier_epochs.dropna(subset=["gather_bytes_per_s"]) if "gather_bytes_per_s" in tier_epochs else pd.DataFrame()
        te = te[te["tier"] != "hot_cold"] if not te.empty else te
        order_ok = []
        for _, g in te.groupby(["dataset", "model"]):
            dram_bw = g.loc[g["tier"] == "dram", "gather_bytes_per_s"]
            slow = g[g["gather_bytes_per_s"] < 0.5 * (dram_bw.iloc[0] if len(dram_bw) else np.inf)]
            if slow.empty:
                continue  # no tier here is much slower than DRAM: nothing to order
            # the tier with the least bandwidth must be the one with the largest slowdown, and slower than DRAM
            worst = g.loc[g["gather_bytes_per_s"].idxmin()]
            order_ok.append(bool(worst["slowdown"] >= g["slowdown"].max() and worst["slowdown"] > 1.1))
        ev = ("DRAM step, share of SpMM + SDDMM + gather: " + ", ".join(f"{m} {ds[:16]} {v:.0%}" for (ds, m), v in
                                                                         sparse.items())
              + "; GEMM: " + ", ".join(f"{v:.0%}" for v in dense) + "; largest other class: "
              + ", ".join(f"{v:.0%}" for v in other) + "; slowdown per tier: "
              + "; ".join(f"{r.model} {r.dataset[:16]} {r.tier} {r.slowdown:.2f}x at gather "
                          f"{r.gather_bytes_per_s / 1e9:.3g} GB/s" for r in te.itertuples()))
        if not order_ok:
            ev += " (no tier measured here had less than half of DRAM's gather bandwidth)"
        ordered = bool(order_ok) and all(order_ok)
        verdict = "reproduced" if dominant and ordered else ("partly" if dominant or ordered else "not reproduced")
        add(3, verdict, ev)
    else:
        add(3, "not measured", "no memory-tier rows")

    # F5 hot/cold recovers DRAM speed
    if tier_epochs is not None and not tier_epochs.empty and {"hot_cold", "mmap_cgroup", "dram"} <= set(tier_epochs["tier"]):
        w = tier_epochs.pivot_table(index=["dataset", "model"], columns="tier", values="step_s")
        hr = tier_epochs[tier_epochs["tier"] == "hot_cold"].set_index(["dataset", "model"])["hit_rate"]
        extra = w["mmap_cgroup"] / w["dram"] - 1
        rec = (w["mmap_cgroup"] - w["hot_cold"]) / (w["mmap_cgroup"] - w["dram"])
        valid = extra > 0.1  # the slow tier must be measurably slower than DRAM for a recovery to mean anything
        ev = "; ".join(f"{m} {ds[:16]}: slow tier {r['mmap_cgroup'] / r['dram']:.2f}x DRAM, hot/cold "
                       f"{r['hot_cold'] / r['dram']:.2f}x" + (f" (recovers {rec[(ds, m)]:.0%} of the extra time" if
                                                              valid[(ds, m)] else " (the slow tier was not slower")
                       + f"; hit rate {hr.get((ds, m), float('nan')):.0%})" for (ds, m), r in w.iterrows())
        ok = rec[valid] >= 0.5
        if not valid.any():
            verdict = "not measured"
            ev += "; the emulated slow tier was not measurably slower than DRAM here (its files fit in the page cache)"
        else:
            verdict = "reproduced" if ok.all() else ("partly" if ok.any() else "not reproduced")
        add(4, verdict, ev)
    else:
        add(4, "not measured", "hot/cold, slow tier or DRAM tier not run (see the tier status table)")
    return pd.DataFrame(out)
