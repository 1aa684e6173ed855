"""Measurements of notebook ``04-recsys-memory-tiers``: one big-memory machine vs distributed
subgraph training for GNN recommenders, and what a slower memory tier costs.

Reproduces and extends Hu, Li, Yu, Zhang, *Benchmarking GNN-Based Recommender Systems on Intel
Optane Persistent Memory* (arXiv 2207.11918; v2: *Analysis and Optimization of GNN-Based
Recommender Systems on Persistent Memory*). NGCF and LightGCN (:mod:`studylib.models.recsys`) are
trained with BPR on user-item graphs (:mod:`studylib.data.recsys`):

* **single machine, full graph**: every step propagates over the whole graph;
* **distributed subgraph training**: DistDGL on 2 and 4 machines of the one-host namespace
  cluster (:mod:`studylib.distributed`), each trainer sampling the L-hop subgraphs of its seed
  edges (:mod:`studylib.studies.recsys_memory_tiers.recsys_trainer`);
* **memory tiers**: the embedding table (and its Adam state) in DRAM, in a file-backed mapping with
  and without a memory-cgroup limit (the emulated slow tier), and split hot (DRAM) / cold (slow
  tier) (:mod:`studylib.studies.recsys_memory_tiers.memory_tiers`), each tier's bandwidth measured beside;
* **memory footprint** vs graph scale (synthetic power-law graphs), against a server's DRAM
  (``server_dram_gib``) and this machine's.

The single machine and the whole cluster run on the same cores for each of ``core_budgets``
(:mod:`studylib.studies.recsys_memory_tiers.cores`); every row records the cores it used. Each
configuration's memory is estimated before it runs (:mod:`.estimates`); one that cannot fit is
recorded as refused. Every ``measure_*`` function returns tidy rows (one per raw sample); the
figures are drawn from the tables only; :mod:`.findings` declares the paper's findings.
Times are seconds of wall clock (device synchronised), memory is bytes.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

from studylib import distributed, memory, paths, timing
from studylib.data import specs
from studylib.data.graph_cache import GraphCache as GraphCacheBase
from studylib.data.recsys import PAPER_DATASETS, BipartiteGraph, synthetic_like
from studylib.models import recsys as rm
from studylib.results import ResultTable
from studylib.studies.recsys_memory_tiers import cores as cr
from studylib.studies.recsys_memory_tiers import estimates as es
from studylib.studies.recsys_memory_tiers import graphs as gr
from studylib.studies.recsys_memory_tiers import memory_tiers as mt
from studylib.studies.recsys_memory_tiers.params import NOTEBOOK
from studylib.studies.recsys_memory_tiers.tier_worker import _log, _regions_from_timer, weighted_dgl
from studylib.tables import ok_rows
from studylib.timing import SAMPLING, STEP_TOTAL, StageTimer, stage

warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")


#: Regions of a training step, in stacking order (single machine and distributed alike).
REGIONS = ("sampling", "fetch", "forward", "backward", "communication", "update")


class GraphCache(GraphCacheBase):
    """Loads each recommender graph once per notebook run (``cache[spec]``, see
    :func:`studylib.studies.recsys_memory_tiers.graphs.load_graph`: built-in names, synthetic graphs
    at ``params.synthetic_scale``, the user's ``ratings:`` / ``lightgcn:`` files); whatever the
    loader raises (``DataSpecError``, ``memory.Refused``, ``DatasetUnavailableError``) propagates,
    and a graph of ``params.datasets`` without test interactions is refused while the accuracy check
    is on (:func:`studylib.studies.recsys_memory_tiers.graphs.require_test_interactions`)."""

    def __init__(self, params):
        def load(name: str) -> BipartiteGraph:
            graph = gr.load_graph(name, synthetic_scale=params.synthetic_scale, seed=params.seed,
                                  download=getattr(params, "download", False))
            if getattr(params, "accuracy_epochs", 0) and name in params.datasets:
                gr.require_test_interactions(graph, name)
            return graph

        super().__init__(load)
        self.params = params
        self._dgl: dict[str, object] = {}

    def dgl(self, name: str):
        """The weighted DGL graph of ``name`` (edge data ``w``, see :func:`weighted_dgl`)."""
        if name not in self._dgl:
            self._dgl[name] = weighted_dgl(self[name])
        return self._dgl[name]


def dataset_table(graphs: GraphCache, names: list[str]) -> pd.DataFrame:
    """One row of :meth:`BipartiteGraph.statistics` per dataset (``dataset``: the spec text)."""
    return pd.DataFrame([{**graphs[n].statistics(), "dataset": n} for n in names])


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


def measure_single_machine(model_name: str, num_layers: int, dim: int, dataset: str, graphs: GraphCache, params,
                           device: torch.device, cores: tuple[int, ...] | None = None) -> list[dict]:
    """Full-graph training steps on one machine: ``params.warmup_steps`` untimed, then
    ``params.repeat_steps`` timed, every thread of this process pinned to ``cores`` with as many
    torch threads as cores (:func:`studylib.studies.recsys_memory_tiers.cores.pinned`; ``None``:
    this process's cores). Every row records ``cores`` (the ids in force, e.g. ``"0,1"``),
    ``core_count`` and ``num_threads``. The configuration's memory is estimated first
    (:func:`studylib.studies.recsys_memory_tiers.estimates.full_graph_estimate`); one that does not
    fit raises :class:`studylib.memory.Refused` before any work.

    Rows ``{kind: "step", step, region, seconds, steps_per_epoch}`` with regions ``sampling`` (the
    batch and its negatives), ``fetch`` (gathering the batch's ego embeddings), ``forward`` (the
    rest of the forward pass and the loss), ``backward``, ``communication`` (0: one process),
    ``update`` (Adam) and ``step_total``; and one ``{kind: "memory", peak_rss_bytes,
    baseline_rss_bytes}`` row: the process's peak resident set size during the timed steps and its
    size before the model was built.
    """

    graph = graphs[dataset]
    memory.require(es.full_graph_estimate(model_name, graph.num_nodes, graph.num_train, num_layers, dim,
                                          params.batch_size),
                   what=f"{NOTEBOOK}: {model_name} L={num_layers} d={dim} on {dataset}", device=device.type)
    with cr.pinned(cores or cr.available_cores()) as used:
        rows = _single_machine_steps(model_name, num_layers, dim, dataset, graphs, params, device)
        threads = torch.get_num_threads()
    return [{**r, "cores": cr.cores_text(used), "core_count": len(used), "num_threads": threads} for r in rows]


def _single_machine_steps(model_name: str, num_layers: int, dim: int, dataset: str, graphs: GraphCache, params,
                          device: torch.device) -> list[dict]:
    graph = graphs[dataset]
    g = graphs.dgl(dataset)
    timing.trim_heap()
    pm = timing.PeakMemory(device)
    base = pm.rss_bytes()
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


def measure_redundancy(dataset: str, num_layers: int, graphs: GraphCache, params) -> list[dict]:
    """Sample one epoch of mini-batches of the user->item training edges with the distributed
    trainers' sampler (``params.fanout`` neighbours per node and layer, one uniform negative item per
    edge, ``params.batch_size`` seed edges per batch) on one process, and count the redundancy per
    layer (:class:`studylib.models.recsys.RedundancyCounter`).

    Rows per layer: the counter's columns plus ``epoch_sampling_s`` (seconds to sample the epoch)
    and ``full_graph_edges_per_epoch`` (edges a full-graph epoch aggregates per layer: steps per
    epoch x directed edges, for comparison with ``sum_edges``).
    """
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

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


def distributed_available(params=None) -> tuple[bool, str]:
    """Whether the DistDGL namespace cluster can run here, and why not (real hosts,
    ``params.cluster_mode == "ssh"``, are checked by the launcher when it starts)."""
    if params is not None and params.cluster_mode == "ssh":
        return True, ""
    try:
        return distributed.namespaces_available()
    except Exception as e:  # noqa: BLE001 - report any probe failure as the reason
        return False, f"probing network namespaces failed: {type(e).__name__}: {e}"


def partition_graph(graph: BipartiteGraph, num_parts: int, name: str, cache_dir: Path | None = None) -> Path:
    """Partition the homogeneous user-item graph for DistDGL with METIS (cached), carrying the node
    data the trainer needs (``deg``, ``is_item``) and the edge mask ``user_to_item`` of the seed
    edges; ``feat``/``label``/``train_mask`` are the launcher's required placeholders (the
    embeddings are a DistEmbedding). Returns the partition JSON."""

    dg = graph.to_dgl()
    n = dg.num_nodes()
    dg.ndata["feat"] = torch.zeros(n, 1)
    dg.ndata["label"] = torch.zeros(n, dtype=torch.int64)
    dg.ndata["train_mask"] = (~dg.ndata["is_item"]).to(torch.uint8)
    dg.ndata["is_item"] = dg.ndata["is_item"].to(torch.uint8)
    dg.edata["user_to_item"] = dg.edata["user_to_item"].to(torch.uint8)
    return distributed.partition(dg, num_parts, method="metis", name=name, cache_dir=cache_dir)


def _graph_name(dataset: str) -> str:
    """DistDGL's graph name and the file key of ``dataset``: :func:`studylib.data.specs.dataset_key`
    (a built-in name itself, else a sanitised short name plus a hash of the spec text, so two specs
    never share one)."""
    return specs.dataset_key(dataset)


def measure_distributed(dataset: str, num_machines: int, configs: list[dict], graphs: GraphCache, params,
                        redundancy_layers: list[int] | None = None, cores: tuple[int, ...] | None = None) -> list[dict]:
    """Train every configuration of ``configs`` with DistDGL on ``num_machines`` emulated machines
    (one trainer and one server each) in one cluster run.

    ``cores``: the cores every server and trainer is pinned to (the whole cluster shares them, as
    the single machine does; ``ClusterSpec.cpus``), trainers with ``max(1, cores // machines)``
    threads; ``None`` = unpinned. Every row records ``cores`` (the union of the cores the launcher
    read back from its processes), ``core_count`` and ``cluster_processes``. The run's memory is
    estimated first (:func:`studylib.studies.recsys_memory_tiers.estimates.distributed_estimate`,
    the largest configuration); one that does not fit raises :class:`studylib.memory.Refused`.

    Returns the trainers' rows (``kind`` ``step``, ``counts``, ``traffic``, ``memory``,
    ``redundancy``; see :mod:`studylib.studies.recsys_memory_tiers.recsys_trainer`) plus, per configuration whose
    layer count is in ``redundancy_layers``, ``kind="redundancy_merged"`` rows: the redundancy over
    all trainers together (sums over ranks / the union of their distinct ids). Raises
    ``ClusterError`` / ``ClusterUnavailableError`` from the launcher.
    """

    graph = graphs[dataset]
    if params.cluster_mode != "ssh":  # real hosts have memory of their own
        worst = max((es.distributed_estimate(c["model"], graph.num_nodes, graph.num_train, c["num_layers"], c["dim"],
                                             num_machines, params.batch_size, params.fanout) for c in configs),
                    key=lambda e: e.total)
        memory.require(worst, what=f"{NOTEBOOK}: DistDGL on {num_machines} emulated machines, {dataset}")
    name = _graph_name(dataset)
    part = partition_graph(graph, num_machines, name)
    red = set(redundancy_layers or [])
    args = ["--graph-name", name, "--configs", json.dumps(configs), "--batch-size", params.batch_size,
            "--fanout", params.fanout, "--lr", params.lr, "--reg", params.reg, "--warmup-steps",
            params.warmup_steps, "--steps", params.repeat_steps, "--seed", params.seed]
    spec = distributed.ClusterSpec(num_machines, network=params.network, **params.cluster_spec_kwargs(),
                                   cpus=tuple(cores) if cores and params.cluster_mode != "ssh" else None)
    shared = paths.results_dir(NOTEBOOK) if params.cluster_mode == "ssh" else None  # real hosts write there
    with tempfile.TemporaryDirectory(prefix="recsys-cluster-", dir=shared) as tmp:
        rows = []
        # configurations that count redundancy run in their own pass with --redundancy
        for subset, flag in (([c for c in configs if c["num_layers"] not in red], False),
                             ([c for c in configs if c["num_layers"] in red], True)):
            if not subset:
                continue
            wd = Path(tmp) / ("red" if flag else "plain")
            res = distributed.run_cluster(part, "studylib.studies.recsys_memory_tiers.recsys_trainer",
                                          [*map(str, args[:3]), json.dumps(subset), *map(str, args[4:])]
                                          + (["--redundancy"] if flag else []),
                                          spec, timeout_s=params.cluster_timeout_s, workdir=wd)
            df = res.rows()
            df["cluster_seconds"] = res.seconds
            used = sorted({c for p in res.processes for c in (p.cpus or ())})
            df["cores"] = cr.cores_text(used) if used else None
            df["core_count"] = len(used) if used else float("nan")
            df["cluster_processes"] = len(res.processes)
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


def _run_tier_worker(job: dict, workdir: Path, timeout_s: float, numa=None) -> list[dict]:
    """Run the worker; when it dies in a unit (e.g. killed for memory), record that unit as failed
    with the reason and run a new worker for the units left. Returns every row."""

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
            fail = {"unit": e.current, "kind": "failed", "status": e.reason,
                    "error": str(e).split(":")[0] + ": ..." + str(e)[-400:]}
            fail.update(unit_fields(e.current))
            rows.append(fail)
            skip.append(e.current)
            _log(f"unit {e.current} failed ({e.reason}); continuing with a new worker. {str(e)[-1200:]}")
    return rows


def unit_fields(unit: str) -> dict:
    """The table columns of a tier worker unit name: ``bandwidth/<tier>`` -> ``{tier}``,
    ``<dataset>/<model>/<tier>`` -> ``{dataset, model, tier}`` (split from the right: a dataset
    spec may hold ``/``)."""
    if unit.count("/") == 1 and unit.startswith("bandwidth/"):
        return {"tier": unit.split("/", 1)[1]}
    dataset, model, tier = unit.rsplit("/", 2)
    return {"dataset": dataset, "model": model, "tier": tier}


def measure_tiers(params, graphs: GraphCache, workdir: Path | None = None) -> tuple[list[dict], list[dict]]:
    """Run the memory-tier worker over ``params.tier_datasets`` x ``params.tier_models`` x the tiers
    available here. Returns ``(rows, status_rows)``: the worker's rows, and one row per requested
    tier saying whether it ran and, if not, why (:func:`studylib.studies.recsys_memory_tiers.memory_tiers.tier_status`).
    A configuration whose memory estimate (:mod:`.estimates`) does not fit is not run: its rows say
    ``status="refused"`` with the estimate and the memory available. Raises ``RuntimeError`` when
    the worker fails."""

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
        configs, refused = [], []
        for ds in params.tier_datasets:
            for m in params.tier_models:
                c = {"dataset": ds, "model": m, "num_layers": params.tier_layers, "dim": params.tier_dim}
                g = graphs[ds]
                # the worker holds the graph and one configuration at a time (the tier files are mapped)
                dec = memory.decide(es.full_graph_estimate(m, g.num_nodes, g.num_train, params.tier_layers,
                                                           params.tier_dim, params.batch_size),
                                    what=f"{NOTEBOOK}: tier runs of {m} on {ds}")
                if dec.fits:
                    configs.append(c)
                else:
                    refused += [{**memory.refused_row(c, dec), "kind": "failed", "tier": t,
                                 "unit": f"{ds}/{m}/{t}"} for t in run_tiers if t != "numa_remote"]
        job = {"kind": "tiers", "tiers": [t for t in run_tiers if t != "numa_remote"], "configs": configs,
               "graph_files": graph_files, "seed": params.seed, "threads": torch.get_num_threads(),
               "lr": params.lr, "reg": params.reg, "batch_size": params.batch_size,
               "warmup_steps": params.warmup_steps, "steps": params.tier_steps, "profile_steps": params.profile_steps,
               "cache_fraction": params.cache_fraction, "hot_fraction": params.hot_fraction,
               "advice": params.tier_advice, "margin_mib": params.cgroup_margin_mib, "heap_reserve_mib": params.heap_reserve_mib,
               "bandwidth_mib": params.bandwidth_mib, "bandwidth_dim": params.tier_dim,
               "bandwidth_rounds": params.bandwidth_rounds, "bandwidth_min_run_time": params.bandwidth_min_run_time}
        rows = refused + _run_tier_worker(job, work / "main", params.tier_timeout_s)
        if numa is not None and configs:
            job_numa = {**job, "tiers": ["dram"]}
            nrows = _run_tier_worker(job_numa, work / "numa", params.tier_timeout_s, numa=numa)
            for r in nrows:
                r["tier"] = "numa_remote"
            rows.extend(nrows)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return rows, status


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

    An estimate to compare with measurements (:func:`measure_footprint`), not a bound; the parts
    are those of :func:`studylib.studies.recsys_memory_tiers.estimates.full_graph_estimate`.
    Raises ``ValueError`` for an unknown model.
    """
    return float(es.full_graph_estimate(model, num_nodes, num_train, num_layers, dim, batch_size).total)


def measure_footprint(preset: str, scale: float, model_name: str, params, device: torch.device) -> list[dict]:
    """Peak memory of full-graph training on a synthetic graph with ``preset``'s statistics at
    ``scale``: build the graph, the model and Adam, run ``max(1, warmup_steps) + 1`` steps, and
    record the process's peak resident set size above its size before (bytes). The estimate is
    held against the memory available before the graph is generated: a scale that cannot fit
    raises :class:`studylib.memory.Refused` (recorded by the sweep). One row:
    ``{num_users, num_items, num_nodes, num_train, footprint_bytes, predicted_bytes}``."""

    n, n_train = es.preset_counts(preset, scale)
    memory.require(es.full_graph_estimate(model_name, n, n_train, params.footprint_layers, params.footprint_dim,
                                          params.batch_size),
                   what=f"{NOTEBOOK}: footprint of {model_name} on {preset} x {scale:g}", device=device.type)
    graph = synthetic_like(preset, scale, seed=params.seed)
    timing.trim_heap()
    pm = timing.PeakMemory(device, interval_s=0.002)
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
    timing.trim_heap()
    return [row]


def run_measurement(name: str, params, device: torch.device, graphs: GraphCache | None = None) -> pd.DataFrame:
    """Run (or resume) one measurement into ``results/04-recsys-memory-tiers/<name>`` and return
    the whole table.

    ``name``: ``accuracy``, ``single_machine``, ``redundancy``, ``distributed``, ``footprint``
    (resumable per configuration) or ``tiers`` / ``tier_status`` (one worker run, re-measured
    unless the table already holds every configuration). Raises ``ValueError`` for other names.
    """

    graphs = graphs if graphs is not None else GraphCache(params)
    pdict = params.model_dump()

    def stamp(rows):
        return [{"num_threads": torch.get_num_threads(), **r, "device": device.type} for r in rows]

    core_sets, _ = core_plan(params)

    if name == "accuracy":
        cfg = ["dataset", "model"]
        configs = [{"dataset": ds, "model": m} for ds in params.datasets for m in params.models]
        measure = lambda c: measure_accuracy(c["model"], c["dataset"], graphs[c["dataset"]], params)  # noqa: E731
    elif name == "single_machine":
        cfg = ["dataset", "model", "num_layers", "dim", "core_budget"]
        configs = [{"dataset": ds, **c, "core_budget": b} for b in core_sets for ds in params.datasets
                   for c in sweep_configs(params)]
        measure = lambda c: measure_single_machine(c["model"], c["num_layers"], c["dim"], c["dataset"],  # noqa: E731
                                                   graphs, params, device, cores=core_sets[c["core_budget"]])
    elif name == "redundancy":
        cfg = ["dataset", "num_layers"]
        configs = [{"dataset": ds, "num_layers": int(L)} for ds in params.datasets for L in params.layer_counts]
        measure = lambda c: measure_redundancy(c["dataset"], c["num_layers"], graphs, params)  # noqa: E731
    elif name == "distributed":
        cfg = ["dataset", "num_machines", "core_budget"]
        configs = [{"dataset": ds, "num_machines": int(m), "core_budget": b} for b in core_sets
                   for ds in params.datasets for m in params.machine_counts]
        # redundancy does not depend on the cores: counted in the runs of the largest budget only
        top = max(core_sets) if core_sets else None
        measure = lambda c: measure_distributed(c["dataset"], c["num_machines"], sweep_configs(params),  # noqa: E731
                                                graphs, params, cores=core_sets[c["core_budget"]],
                                                redundancy_layers=params.layer_counts if c["core_budget"] == top
                                                else [])
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


def core_plan(params) -> tuple[dict[int, tuple[int, ...]], list[str]]:
    """The core set of each of ``params.core_budgets`` (the first N cores of this process) and
    the notes of budgets skipped because this machine has fewer cores
    (:func:`studylib.studies.recsys_memory_tiers.cores.core_sets`)."""
    return cr.core_sets(params.core_budgets)


def machine_dram_bytes() -> int:
    """This machine's physical memory (bytes)."""

    return int(psutil.virtual_memory().total)


def _with_budget(df: pd.DataFrame) -> pd.DataFrame:
    """Tables of runs before core budgets existed: budget = the recorded core count, else -1."""
    if "core_budget" not in df:
        df = df.assign(core_budget=df["core_count"] if "core_count" in df else -1)
    if "cores" not in df:
        df = df.assign(cores="")
    return df


def single_summary(single: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (dataset, model, layers, dim, core budget) and region: the median seconds
    per step and the epoch time (median step x steps per epoch); machines = 1; ``cores`` the core
    ids the process was pinned to."""
    s = _with_budget(ok_rows(single))
    s = s[s["kind"] == "step"]
    keys = ["dataset", "model", "num_layers", "dim", "core_budget"]
    med = s.groupby(keys + ["region"], as_index=False).agg(seconds=("seconds", "median"),
                                                          q1=("seconds", lambda x: x.quantile(0.25)),
                                                          q3=("seconds", lambda x: x.quantile(0.75)),
                                                          steps_per_epoch=("steps_per_epoch", "max"),
                                                          cores=("cores", "first"))
    med["num_machines"] = 1
    return med


def distributed_summary(dist: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, machine count and region: per step the slowest trainer (max over ranks),
    then the median over steps; ``steps_per_epoch`` per trainer (each trainer runs its own share
    of the seed edges, in parallel)."""
    d = _with_budget(ok_rows(dist))
    d = d[d["kind"] == "step"]
    keys = ["dataset", "model", "num_layers", "dim", "num_machines", "core_budget"]
    per = d.groupby(keys + ["region", "step"], as_index=False).agg(seconds=("seconds", "max"),
                                                                   steps_per_epoch=("steps_per_epoch", "max"),
                                                                   cores=("cores", "first"))
    med = per.groupby(keys + ["region"], as_index=False).agg(seconds=("seconds", "median"),
                                                            q1=("seconds", lambda x: x.quantile(0.25)),
                                                            q3=("seconds", lambda x: x.quantile(0.75)),
                                                            steps_per_epoch=("steps_per_epoch", "max"),
                                                            cores=("cores", "first"))
    for k in ("num_layers", "dim", "num_machines", "core_budget"):
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
    m["core_budget"] = m["core_budget"].astype(int)
    keys = ["dataset", "model", "num_layers", "dim", "num_machines", "core_budget"]
    tot = m[m["region"] == STEP_TOTAL].set_index(keys)
    out = pd.DataFrame({"step_s": tot["seconds"], "steps_per_epoch": tot["steps_per_epoch"],
                        "cores": tot["cores"].fillna("").astype(str)})
    out["core_count"] = [len([c for c in x.split(",") if c]) for x in out["cores"]]
    out["epoch_s"] = out["step_s"] * out["steps_per_epoch"]
    out["epoch_q1_s"] = tot["q1"] * tot["steps_per_epoch"]
    out["epoch_q3_s"] = tot["q3"] * tot["steps_per_epoch"]
    wide = m[m["region"].isin(REGIONS)].pivot_table(index=keys, columns="region", values="seconds", aggfunc="sum")
    for r in REGIONS:
        out[f"{r}_s"] = wide[r] if r in wide else 0.0
    return out.reset_index()


def speedup_table(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, core budget and machine count > 1: distributed epoch time /
    single-machine epoch time on the same core budget (> 1: the single machine is faster by that
    factor), with the cores each side ran on (``single_cores``, ``cluster_cores``, their counts)
    and ``equal_cores``: both sides were pinned to the same core ids."""
    keys = ["dataset", "model", "num_layers", "dim", "core_budget"]
    e = epochs if "core_budget" in epochs else epochs.assign(core_budget=-1, cores="", core_count=0)
    one = e[e["num_machines"] == 1].set_index(keys)[["epoch_s", "cores", "core_count"]].rename(
        columns={"epoch_s": "single_epoch_s", "cores": "single_cores", "core_count": "single_core_count"})
    multi = e[e["num_machines"] > 1].rename(columns={"cores": "cluster_cores", "core_count": "cluster_core_count"})
    multi = multi.join(one, on=keys)
    multi["single_machine_advantage"] = multi["epoch_s"] / multi["single_epoch_s"]
    multi["equal_cores"] = (multi["single_cores"].fillna("").astype(str) != "") & (
        multi["single_cores"] == multi["cluster_cores"])
    return multi[keys + ["num_machines", "epoch_s", "single_epoch_s", "single_machine_advantage", "single_cores",
                         "single_core_count", "cluster_cores", "cluster_core_count", "equal_cores"]].reset_index(drop=True)


def memory_summary(single: pd.DataFrame | None, dist: pd.DataFrame | None) -> pd.DataFrame:
    """Peak resident set size per process and in total per configuration and machine count (the
    cluster: per trainer and server over the whole run; shared memory counted by every process
    that maps it, so the total is an upper bound)."""
    rows = []
    if single is not None and not single.empty:
        s = ok_rows(single)
        m = s[s["kind"] == "memory"]
        for _, r in m.iterrows():
            rows.append({"dataset": r["dataset"], "model": r["model"], "num_layers": int(r["num_layers"]),
                         "dim": int(r["dim"]), "num_machines": 1, "processes": 1,
                         "core_budget": r.get("core_budget", -1),
                         "max_process_peak_bytes": r["peak_rss_bytes"], "total_peak_bytes": r["peak_rss_bytes"]})
    if dist is not None and not dist.empty and (dist["kind"] == "memory").any():
        d = ok_rows(dist)
        m = d[d["kind"] == "memory"]
        m = _with_budget(m)
        for (ds, nm, cb, pas), g in m.groupby(["dataset", "num_machines", "core_budget", "pass"]):
            rows.append({"dataset": ds, "model": "(all, one run)", "num_layers": -1, "dim": -1,
                         "num_machines": int(nm), "processes": len(g), "pass": pas, "core_budget": cb,
                         "max_process_peak_bytes": g["peak_rss_bytes"].max(),
                         "total_peak_bytes": g["peak_rss_bytes"].sum()})
    return pd.DataFrame(rows)


def redundancy_table(red: pd.DataFrame | None, dist: pd.DataFrame | None) -> pd.DataFrame:
    """Redundancy per dataset, layer count, layer and source: the local sampler (one process, the
    whole batch) and each cluster size (all trainers merged)."""
    parts = []
    if red is not None and not red.empty:
        r = ok_rows(red).copy()
        r["source"] = "1 process (local sampler)"
        parts.append(r)
    if dist is not None and not dist.empty and (dist["kind"] == "redundancy_merged").any():
        d = ok_rows(dist)
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
    t = ok_rows(tiers)
    steps = t[(t["kind"] == "step") & (t["region"] == STEP_TOTAL)]
    keys = ["dataset", "model", "tier"]
    out = steps.groupby(keys).agg(step_s=("seconds", "median"), steps_per_epoch=("steps_per_epoch", "max"),
                                  num_layers=("num_layers", "max"), dim=("dim", "max"),
                                  step_q1_s=("seconds", lambda x: x.quantile(0.25)),
                                  step_q3_s=("seconds", lambda x: x.quantile(0.75)))
    out["epoch_s"] = out["step_s"] * out["steps_per_epoch"]
    io = t[t["kind"] == "io"].groupby(keys)[["major_faults", "storage_read_bytes", "storage_write_bytes"]].median()
    info = t[t["kind"] == "tier_info"].set_index(keys)
    info = info[[c for c in ("tier_file_bytes", "cgroup_limit_bytes", "cgroup_anon_bytes", "hit_rate",
                             "resident_fraction") if c in info]]
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
    """Median bandwidth (bytes/s) and IQR per tier and kernel (read, write, copy, gather), and the
    least ``latency_s`` of the pointer-chase blocks (kernel ``latency``; NaN for the others)."""
    t = ok_rows(tiers)
    b = t[t["kind"] == "bandwidth"]
    if b.empty:
        return pd.DataFrame()
    if "latency_s" not in b:
        b = b.assign(latency_s=float("nan"))
    g = b.groupby(["tier", "kernel"])
    return pd.DataFrame({"bytes_per_s": g["bytes_per_s"].median(), "q1": g["bytes_per_s"].quantile(0.25),
                         "q3": g["bytes_per_s"].quantile(0.75), "latency_s": g["latency_s"].min(),
                         "blocks": g.size()}).reset_index()


def tier_kernel_table(tiers: pd.DataFrame) -> pd.DataFrame:
    """Seconds per profiled step and share per dataset, model, tier and kernel class."""
    t = ok_rows(tiers)
    k = t[t["kind"] == "kernels"]
    if k.empty:
        return pd.DataFrame()
    g = k.groupby(["dataset", "model", "tier", "kernel_class"], as_index=False)["seconds"].sum()
    g["share"] = g["seconds"] / g.groupby(["dataset", "model", "tier"])["seconds"].transform("sum")
    return g


def footprint_fit(foot: pd.DataFrame) -> pd.DataFrame:
    """Per model: the median ratio of measured to predicted footprint (the calibration of
    :func:`predicted_footprint_bytes`) over the sweep's points, with its range."""
    f = ok_rows(foot)
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
