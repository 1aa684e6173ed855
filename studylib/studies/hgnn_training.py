"""Measurements of notebook ``01-hgnn-training``: where HGNN training time goes.

Reproduces and extends Han, Yan, Ye, Fan, *Characterizing and Understanding HGNN Training on
GPUs*, ACM TACO 2025 (arXiv 2407.11790). Every ``measure_*`` function returns tidy rows (one per
raw sample) for a :class:`studylib.results.ResultTable`; the ``plot_*`` functions draw figures
from those tables only; :func:`evaluate_findings` turns the tables into a verdict per finding.

All times are seconds of wall clock, read after synchronising the device (see
:mod:`studylib.timing`). Memory is bytes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psutil
import torch
import torch.nn.functional as F

from studylib import timing
from studylib.data import GraphCache as GraphCacheBase
from studylib.data import HeteroGraph
from studylib.timing import (
    BACKWARD,
    DATA_PREPARATION,
    FORWARD,
    GRADIENT_ALLREDUCE,
    LOSS,
    NEIGHBOR_AGGREGATION,
    OPTIMIZER_UPDATE,
    SAMPLING,
    SEMANTIC_GRAPH_BUILD,
    STEP_TOTAL,
    StageTimer,
    phase,
    stage,
)

NOTEBOOK = "01-hgnn-training"

# DGL's data loader warns on every epoch that its CPU-affinity option is off; the option pins
# sampler workers, which these measurements do not use (num_workers=0).
warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")

#: Regions of one training step, in stacking order, that together make up the step.
STEP_REGIONS = (timing.FEATURE_PROJECTION, NEIGHBOR_AGGREGATION, timing.SEMANTIC_FUSION, LOSS, BACKWARD,
                OPTIMIZER_UPDATE)


# --------------------------------------------------------------------------------------------
# Graph and model set-up
# --------------------------------------------------------------------------------------------

def load_graph(dataset: str, synthetic_scale: float = 1.0, seed: int = 0) -> HeteroGraph:
    """The graph of one configuration: a real dataset by name, or ``"synthetic"`` (ACM's schema,
    node counts times ``synthetic_scale``). Raises what the loaders raise
    (``DatasetUnavailableError`` naming the dataset, URL and mirror variable), and
    :class:`studylib.memory.Refused` (estimate and available memory) for a synthetic graph that
    would not fit in memory."""
    from studylib import data

    if dataset == "synthetic":
        from studylib import memory  # refuse a graph that cannot fit before generating it

        memory.require(memory.synthetic_hetero_estimate("acm", synthetic_scale),
                       what=f"{NOTEBOOK}: synthetic graph at synthetic_scale={synthetic_scale:g}")
        return data.synthetic_hetero("acm", scale=synthetic_scale, seed=seed)
    return data.load_hetero(dataset)


def metapath_edges(graph: HeteroGraph, metapath: list) -> int:
    """Edges of the metapath-reachable graph of ``metapath`` (distinct node pairs), counted with
    DGL's ``metapath_reachable_graph``; cached on the graph's ``info`` dict."""
    import dgl

    cache = graph.info.setdefault("_metapath_edges", {})
    key = tuple(tuple(et) for et in metapath)
    if key not in cache:
        dg = graph.info.get("_dgl") or graph.to_dgl()
        graph.info["_dgl"] = dg
        cache[key] = int(dgl.metapath_reachable_graph(dg, [tuple(et) for et in metapath]).num_edges())
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


def metapath_table(graphs: dict, params) -> pd.DataFrame:
    """One row per dataset and named metapath: its hops, the edges of its metapath-reachable graph
    and whether HAN uses it under ``params.han_max_metapath_edges``."""
    rows = []
    for ds in params.datasets:
        g = graphs[ds]
        kept, _ = han_metapaths(g, params.han_max_metapath_edges)
        for name, path in g.metapaths.items():
            rows.append({"dataset": ds, "metapath": name, "hops": len(path), "edges": metapath_edges(g, path),
                         "used_by_han": name in kept})
    return pd.DataFrame(rows)


@dataclass
class Setup:
    """A model ready to train on a graph: semantic graphs built, inputs and labels on the device."""

    model: torch.nn.Module
    sem: object
    inputs: dict
    labels: torch.Tensor
    train_idx: torch.Tensor
    test_idx: torch.Tensor
    optimizer: torch.optim.Optimizer


def build_setup(model_name: str, framework: str, graph: HeteroGraph, params, device: torch.device,
                reference: bool = False, metapaths: dict | None = None) -> Setup:
    """Build the staged model (or, with ``reference=True``, the frameworks' own layers), its
    semantic graphs, inputs and Adam optimizer. Raises ``ValueError`` for an unknown model or
    framework and ``LookupError`` when no reference model exists for the pair."""
    from studylib.models import build_model, build_reference_model

    kwargs = dict(hidden_dim=params.hidden_dim, num_layers=params.num_layers, num_heads=params.num_heads,
                  seed=params.seed)
    if metapaths is None and model_name == "han":
        metapaths = han_metapaths(graph, params.han_max_metapath_edges)[0]
    if metapaths is not None:
        kwargs["metapaths"] = metapaths
    if reference:
        model = build_reference_model(model_name, framework, graph, **kwargs)
        if model is None:
            raise LookupError(f"{framework} has no reference layer for {model_name}")
    else:
        model = build_model(model_name, framework, graph, **kwargs)
    model = model.to(device)
    sem = model.build_semantic_graphs(graph, device)
    inputs = model.input_features(graph, device)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    return Setup(model, sem, inputs, graph.labels.to(device), graph.train_idx.to(device), graph.test_idx.to(device),
                 opt)


def train_step(s: Setup) -> float:
    """One full-batch training step (forward, cross-entropy on the training nodes, backward, Adam),
    with its phases and the loss marked for :mod:`studylib.timing`. Returns the loss."""
    with phase(FORWARD):
        logits = s.model(s.sem, s.inputs)
        with stage(LOSS):
            loss = F.cross_entropy(logits[s.train_idx], s.labels[s.train_idx])
    with phase(BACKWARD):
        loss.backward()
    with phase(OPTIMIZER_UPDATE):
        s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


@torch.no_grad()
def accuracy(s: Setup, idx: torch.Tensor | None = None) -> float:
    """Accuracy of the model's predictions on ``idx`` (default: the test nodes)."""
    s.model.eval()
    pred = s.model(s.sem, s.inputs).argmax(-1)
    s.model.train()
    idx = s.test_idx if idx is None else idx
    return float((pred[idx] == s.labels[idx]).float().mean())


# --------------------------------------------------------------------------------------------
# Memory: peak resident set size per phase (CPU) or peak allocated device memory (GPU)
# --------------------------------------------------------------------------------------------

def trim_heap() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``) so that the resident
    set size reflects live memory again; ``False`` where glibc is not available."""
    import ctypes
    import gc

    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


class PeakMemory:
    """Peak memory of regions of code: device memory on CUDA (``max_memory_allocated``), the
    process's resident set size on CPU, sampled every ``interval_s`` seconds by a thread.

    Use ``with pm.region("forward"): ...``; :attr:`peaks` maps region name -> peak bytes and
    :attr:`baselines` region name -> bytes in use when the region started. On CPU, call
    :func:`trim_heap` before the first region so that memory freed earlier but kept by the C
    allocator does not hide new allocations.
    """

    def __init__(self, device: torch.device, interval_s: float = 0.0005):
        self.device, self.interval_s = device, interval_s
        self.peaks: dict[str, int] = {}
        self.baselines: dict[str, int] = {}
        self._proc = psutil.Process()

    @contextlib.contextmanager
    def region(self, name: str):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baselines[name] = torch.cuda.memory_allocated(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.peaks[name] = max(self.peaks.get(name, 0), torch.cuda.max_memory_allocated(self.device))
            return
        peak = [self._proc.memory_info().rss]
        self.baselines[name] = peak[0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], self._proc.memory_info().rss)
                time.sleep(self.interval_s)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()
            peak[0] = max(peak[0], self._proc.memory_info().rss)
            self.peaks[name] = max(self.peaks.get(name, 0), peak[0])


# --------------------------------------------------------------------------------------------
# 1. Stage and phase times of full-batch training steps
# --------------------------------------------------------------------------------------------

def measure_stage_times(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                        device: torch.device) -> list[dict]:
    """Time the semantic graph build and every region of ``params.repeat_steps`` training steps
    (after ``params.warmup_steps`` untimed ones).

    Returns rows ``{region, kind, step, seconds, loss}``: kind ``stage`` (the four stages and
    ``loss``), ``phase`` (forward, backward, optimizer_update), ``step`` (the whole step, timed
    around it), and ``build`` (the semantic graph build, repeated ``repeat_steps`` times).
    Also one ``memory`` row per phase (forward, backward): ``peak_bytes`` (peak during the phase)
    and ``baseline_bytes`` (in use when the step's forward pass began).
    """
    rows: list[dict] = []
    timer = StageTimer(device=device)
    from studylib.models import build_model

    # the semantic graph build is a one-time cost of full-batch training: time it on its own
    extra = {"metapaths": han_metapaths(graph, params.han_max_metapath_edges)[0]} if model_name == "han" else {}
    model = build_model(model_name, framework, graph, hidden_dim=params.hidden_dim, num_layers=params.num_layers,
                        num_heads=params.num_heads, seed=params.seed, **extra)
    for i in range(params.repeat_steps):
        timing.synchronize(device)
        t0 = time.perf_counter()
        model.build_semantic_graphs(graph, device)
        timing.synchronize(device)
        rows.append({"kind": "build", "region": SEMANTIC_GRAPH_BUILD, "step": i,
                     "seconds": time.perf_counter() - t0})
    del model

    s = build_setup(model_name, framework, graph, params, device)
    for _ in range(params.warmup_steps):
        train_step(s)
    with timer.activate():
        for i in range(params.repeat_steps):
            with timer.step(i):
                loss = train_step(s)
            rows.append({"kind": "loss", "region": "loss_value", "step": i, "seconds": float("nan"), "loss": loss})
    for r in timer.records:
        rows.append({"kind": r["kind"], "region": r["name"], "step": r["step"], "seconds": r["seconds"]})

    pm = PeakMemory(device)
    for _ in range(2):
        trim_heap()
        with pm.region(FORWARD):
            logits = s.model(s.sem, s.inputs)
            loss = F.cross_entropy(logits[s.train_idx], s.labels[s.train_idx])
        with pm.region(BACKWARD):
            loss.backward()
        s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
        del logits, loss
    # both peaks are taken relative to the memory in use when the step started (before forward)
    for name in (FORWARD, BACKWARD):
        rows.append({"kind": "memory", "region": name, "step": -1, "seconds": float("nan"),
                     "peak_bytes": pm.peaks[name], "baseline_bytes": pm.baselines[FORWARD]})
    return rows


def step_regions_table(stage_times: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and step: the seconds of each region of :data:`STEP_REGIONS` (regions
    entered once per layer are summed), the whole step measured around it (``step_total``) and
    the regions' sum (``regions_sum``). The two agree up to the timer's own overhead and the
    untimed Python between regions."""
    cfg = ["model", "framework", "dataset"]
    t = stage_times[stage_times["kind"].isin(["stage", "phase", "step"])]
    t = t[t["region"].isin((*STEP_REGIONS, STEP_TOTAL))]
    wide = t.pivot_table(index=cfg + ["step"], columns="region", values="seconds", aggfunc="sum").reset_index()
    for r in STEP_REGIONS:
        if r not in wide:
            wide[r] = 0.0
    wide["regions_sum"] = wide[list(STEP_REGIONS)].sum(axis=1)
    return wide


def stage_summary(stage_times: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and region: median and IQR of its seconds per step (``median_s``,
    ``iqr_s``, ``noisy``) and its ``share``: the median over steps of region time / that step's
    total (:data:`STEP_TOTAL`). Shares are taken within a step, so a region's share is not thrown
    off by another step's noise; the shares of :data:`STEP_REGIONS` add up to at most about 1,
    the rest being untimed Python between regions. ``step_median_s`` is the median step time."""
    cfg = ["model", "framework", "dataset"]
    t = stage_times[stage_times["kind"].isin(["stage", "phase", "step", "build"])]
    per_step = t.groupby(cfg + ["kind", "region", "step"], as_index=False)["seconds"].sum()
    totals = per_step[per_step["region"] == STEP_TOTAL].set_index(cfg + ["step"])["seconds"].rename("step_s")
    per_step = per_step.join(totals, on=cfg + ["step"])
    per_step["share"] = per_step["seconds"] / per_step["step_s"]
    rows = []
    for key, g in per_step.groupby(cfg + ["kind", "region"]):
        s = timing.summarize(g["seconds"])
        rows.append({**dict(zip(cfg + ["kind", "region"], key)), "median_s": s["median"], "iqr_s": s["iqr"],
                     "noisy": s["noisy"], "n": s["n"], "share": float(g["share"].median())})
    out = pd.DataFrame(rows)
    step = out[out["region"] == STEP_TOTAL].set_index(cfg)["median_s"].rename("step_median_s")
    return out.join(step, on=cfg)


# --------------------------------------------------------------------------------------------
# 2. Kernel classes
# --------------------------------------------------------------------------------------------

def measure_kernel_classes(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                           device: torch.device) -> list[dict]:
    """Profile ``params.profile_steps`` training steps with ``torch.profiler`` and attribute the
    self time of every op to (phase, stage, kernel class); rows ``{phase, stage, kernel_class,
    op, seconds}`` summed over the profiled steps and divided by their count (seconds per step)."""
    from torch.profiler import ProfilerActivity, profile

    s = build_setup(model_name, framework, graph, params, device)
    for _ in range(max(1, params.warmup_steps)):
        train_step(s)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(params.profile_steps):
            train_step(s)
        timing.synchronize(device)
    df = timing.kernel_class_breakdown(prof, device)
    df["seconds"] = df.pop("self_us") * 1e-6 / params.profile_steps
    return df.to_dict("records")


# --------------------------------------------------------------------------------------------
# 3. Benchmarks: instrumentation overhead, staged vs reference layers (torch.utils.benchmark)
# --------------------------------------------------------------------------------------------

def _blocked_times(fn, num_threads: int, min_run_time: float) -> list[float]:
    """Seconds per call of ``fn`` from ``torch.utils.benchmark.Timer.blocked_autorange``: the raw
    per-block means (each block runs ``number_per_run`` calls)."""
    from torch.utils import benchmark

    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=num_threads).blocked_autorange(
        min_run_time=min_run_time)
    return list(m.times)


def measure_overhead(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                     device: torch.device, rounds: int = 3, min_run_time: float = 0.5) -> list[dict]:
    """Training-step time without instrumentation vs with an active :class:`StageTimer`,
    alternating the two variants ``rounds`` times (``torch.utils.benchmark``). Rows
    ``{variant, round, sample, seconds}``; variant ``plain`` or ``instrumented``."""
    s = build_setup(model_name, framework, graph, params, device)
    for _ in range(max(1, params.warmup_steps)):
        train_step(s)
    timer = StageTimer(device=device)
    threads = torch.get_num_threads()

    def instrumented():
        with timer.activate():
            train_step(s)
        timer.clear()

    rows = []
    for r in range(rounds):
        for variant, fn in (("plain", lambda: train_step(s)), ("instrumented", instrumented)):
            for i, t in enumerate(_blocked_times(fn, threads, min_run_time)):
                rows.append({"variant": variant, "round": r, "sample": i, "seconds": t})
    return rows


def measure_reference(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                      device: torch.device, rounds: int = 3, min_run_time: float = 0.5) -> list[dict]:
    """Training-step time of the staged model vs the frameworks' own layers for the same model
    (PyG ``RGCNConv`` / ``HeteroConv(GATConv)`` / ``HANConv``; DGL ``HeteroGraphConv``), built from
    the same seed, alternated ``rounds`` times. Returns no rows when no reference exists (DGL HAN).
    Rows ``{variant, round, sample, seconds}``; variant ``staged`` or ``reference``."""
    try:
        ref = build_setup(model_name, framework, graph, params, device, reference=True)
    except LookupError:
        return []
    staged = build_setup(model_name, framework, graph, params, device)
    for s in (staged, ref):
        for _ in range(max(1, params.warmup_steps)):
            train_step(s)
    threads = torch.get_num_threads()
    rows = []
    for r in range(rounds):
        for variant, s in (("staged", staged), ("reference", ref)):
            for i, t in enumerate(_blocked_times(lambda s=s: train_step(s), threads, min_run_time)):
                rows.append({"variant": variant, "round": r, "sample": i, "seconds": t})
    return rows


# --------------------------------------------------------------------------------------------
# 4. HAN: number and length of metapaths
# --------------------------------------------------------------------------------------------

def metapath_variants(graph: HeteroGraph, max_length: int = 6, max_edges: int = 0) -> list[tuple[str, dict]]:
    """Metapath sets for the HAN sweep on ``graph``: the first 1, 2, ... of the graph's named
    metapaths whose graphs have at most ``max_edges`` edges (number sweep), and the first such
    metapath repeated to 2, 3, ... times its length up to ``max_length`` hops while under the cap
    (length sweep; e.g. APA -> APAPA -> APAPAPA). Returns ``[(label, {name: [edge types]})]`` with
    labels ``"count=2"`` or ``"length=4"``."""
    names = [n for n, p in graph.metapaths.items() if not max_edges or metapath_edges(graph, p) <= max_edges]
    if not names:
        return []
    variants = [(f"count={k}", {n: graph.metapaths[n] for n in names[:k]}) for k in range(1, len(names) + 1)]
    base_name, base = names[0], graph.metapaths[names[0]]
    hops, reps = len(base), 1
    while hops * reps <= max_length:
        path = base * reps
        if max_edges and metapath_edges(graph, path) > max_edges:
            break
        # APA x 2 -> APAPA: the letters of the base name, its last letter shared between repeats
        name = base_name[:-1] * reps + base_name[-1] if len(base_name) == hops + 1 else f"{base_name}x{reps}"
        variants.append((f"length={hops * reps}", {name: path}))
        reps += 1
    return variants


def measure_han_metapaths(framework: str, dataset: str, graph: HeteroGraph, params,
                          device: torch.device) -> list[dict]:
    """Neighbor-aggregation time of HAN training steps per metapath set of
    :func:`metapath_variants`: rows ``{variant, sweep, num_metapaths, metapath_length,
    metapath_edges, step, region, seconds}`` (regions: the four stages, backward, step)."""
    rows = []
    for label, mps in metapath_variants(graph, max_edges=params.han_max_metapath_edges):
        s = build_setup("han", framework, graph, params, device, metapaths=mps)
        edges = _semantic_edge_count(s.sem)
        for _ in range(params.warmup_steps):
            train_step(s)
        timer = StageTimer(device=device)
        with timer.activate():
            for i in range(params.repeat_steps):
                with timer.step(i):
                    train_step(s)
        sweep, _, value = label.partition("=")
        for r in timer.records:
            rows.append({"variant": label, "sweep": sweep, "num_metapaths": len(mps),
                         "metapath_length": max(len(p) for p in mps.values()), "metapath_edges": edges,
                         "step": r["step"], "region": r["name"], "seconds": r["seconds"]})
        del s
    return rows


def _semantic_edge_count(sem) -> int:
    """Edges of a semantic graph (DGL heterograph or the PyG structure with ``edge_index``)."""
    if hasattr(sem, "num_edges") and callable(sem.num_edges):
        return int(sem.num_edges())
    ei = getattr(sem, "edge_index", None) or getattr(sem, "edge_index_dict", None)
    if isinstance(ei, dict):
        return int(sum(v.shape[1] for v in ei.values()))
    return -1


# --------------------------------------------------------------------------------------------
# 5. Full batch vs mini-batch (neighbor sampling, DGL)
# --------------------------------------------------------------------------------------------

def minibatch_available(framework: str) -> tuple[bool, str]:
    """Whether neighbor-sampled mini-batch training can run in ``framework`` here, and why not.
    DGL: always (its sampler is built in). PyG: ``NeighborLoader`` needs ``pyg-lib`` or
    ``torch-sparse`` (``make setup``); the staged PyG models take full graphs only."""
    if framework == "dgl":
        return True, ""
    return False, ("PyG mini-batch is not measured: the staged PyG models run on full graphs, and PyG's "
                   "NeighborLoader needs pyg-lib or torch-sparse (make setup)")


def minibatch_seed_nodes(graph: HeteroGraph, params) -> torch.Tensor:
    """Seed (target) nodes of a mini-batch epoch: the training split, or with
    ``params.minibatch_seeds == "all"`` every target node (a throughput benchmark: the small
    graphs' training splits hold only 60-400 nodes, less than one or two batches)."""
    if params.minibatch_seeds == "all":
        return torch.arange(graph.num_nodes[graph.target])
    return graph.train_idx


def _dgl_loader(s: Setup, graph: HeteroGraph, params, device, seeds: torch.Tensor, shuffle: bool = True):
    import dgl

    sampler = dgl.dataloading.NeighborSampler([int(f) for f in params.fanouts[: params.num_layers]]
                                              + [params.fanouts[-1]] * max(0, params.num_layers - len(params.fanouts)))
    return dgl.dataloading.DataLoader(s.sem, {graph.target: seeds}, sampler, batch_size=params.batch_size,
                                      shuffle=shuffle, drop_last=False, num_workers=0)


def _gather_inputs(s: Setup, input_nodes) -> dict:
    """Input features/ids of a mini-batch's input nodes (data preparation)."""
    if not isinstance(input_nodes, dict):
        input_nodes = {next(iter(s.inputs)): input_nodes}
    return {t: s.inputs[t][ids] for t, ids in input_nodes.items() if t in s.inputs}


def minibatch_step(s: Setup, batch, target: str) -> float:
    """One mini-batch step on DGL blocks: data preparation (gather the input nodes' features and
    the seeds' labels), forward, loss, backward, update. Returns the loss."""
    input_nodes, output_nodes, blocks = batch
    with stage(DATA_PREPARATION):
        inputs = _gather_inputs(s, input_nodes)
        seeds = output_nodes[target] if isinstance(output_nodes, dict) else output_nodes
        y = s.labels[seeds]
    with phase(FORWARD):
        logits = s.model(blocks, inputs)
        with stage(LOSS):
            loss = F.cross_entropy(logits, y)
    with phase(BACKWARD):
        loss.backward()
    with phase(OPTIMIZER_UPDATE):
        s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def measure_minibatch(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                      device: torch.device) -> list[dict]:
    """Mini-batch (DGL neighbor sampling with ``params.fanouts``, ``params.batch_size`` seeds) vs
    full-batch training of the same model. Rows ``{mode, step, region, seconds, seeds}``: mode
    ``minibatch`` (regions sampling, data_preparation, the stages, phases, step) and
    ``fullbatch`` (the same regions of full-batch steps; sampling and data preparation are 0).
    Returns no rows when :func:`minibatch_available` says no."""
    ok, _ = minibatch_available(framework)
    if not ok:
        return []
    rows = []
    s = build_setup(model_name, framework, graph, params, device)
    loader = _dgl_loader(s, graph, params, device, minibatch_seed_nodes(graph, params))
    timer = StageTimer(device=device)
    steps = params.warmup_steps + params.minibatch_steps
    it = iter(loader)
    done = 0
    with timer.activate():
        while done < steps:
            with timer.step(done):
                with stage(SAMPLING):
                    try:
                        batch = next(it)
                    except StopIteration:
                        it = iter(loader)
                        batch = next(it)
                minibatch_step(s, batch, graph.target)
            done += 1
    for r in timer.records:
        if r["step"] >= params.warmup_steps:
            rows.append({"mode": "minibatch", "step": r["step"] - params.warmup_steps, "region": r["name"],
                         "seconds": r["seconds"], "seeds": params.batch_size})
    full = StageTimer(device=device)
    for _ in range(params.warmup_steps):
        train_step(s)
    with full.activate():
        for i in range(params.minibatch_steps):
            with full.step(i):
                train_step(s)
    for r in full.records:
        rows.append({"mode": "fullbatch", "step": r["step"], "region": r["name"], "seconds": r["seconds"],
                     "seeds": int(graph.train_idx.numel())})
    return rows


# --------------------------------------------------------------------------------------------
# 6. Data-parallel training (torch.distributed: gloo on CPU, NCCL on GPUs)
# --------------------------------------------------------------------------------------------

def _ddp_worker(rank: int, world_size: int, port: int, cfg: dict, out_path: str) -> None:
    """One data-parallel process: mini-batch training on its share of the training nodes, with a
    synchronous all-reduce of the flattened gradients after every backward (timed on its own)."""
    import torch.distributed as dist

    from studylib.params import HgnnTrainingParams

    params = HgnnTrainingParams(**cfg["params"])
    torch.set_num_threads(cfg["threads_per_process"])
    device = torch.device(cfg["device"])
    if device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        graph = load_graph(cfg["dataset"], params.synthetic_scale, params.seed)
        s = build_setup(cfg["model"], cfg["framework"], graph, params, device)
        # strong scaling: the global batch stays params.batch_size, split over the processes
        local = minibatch_seed_nodes(graph, params)[rank::world_size]
        local_params = params.model_copy(update={"batch_size": max(1, params.batch_size // world_size)})
        loader = _dgl_loader(s, graph, local_params, device, local)
        grads = [p for p in s.model.parameters() if p.requires_grad]
        timer = StageTimer(device=device)
        steps = params.warmup_steps + params.ddp_steps
        it = iter(loader)
        with timer.activate():
            for i in range(steps):
                with timer.step(i):
                    with stage(SAMPLING):
                        try:
                            batch = next(it)
                        except StopIteration:
                            it = iter(loader)
                            batch = next(it)
                    input_nodes, output_nodes, blocks = batch
                    with stage(DATA_PREPARATION):
                        inputs = _gather_inputs(s, input_nodes)
                        y = s.labels[output_nodes[graph.target]]
                    with phase(FORWARD):
                        loss = F.cross_entropy(s.model(blocks, inputs), y)
                    with phase(BACKWARD):
                        loss.backward()
                    with stage(GRADIENT_ALLREDUCE):
                        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                          for p in grads])
                        dist.all_reduce(flat)
                        flat /= world_size
                        offset = 0
                        for p in grads:
                            n = p.numel()
                            if p.grad is not None:
                                p.grad.copy_(flat[offset:offset + n].view_as(p))
                            offset += n
                    with phase(OPTIMIZER_UPDATE):
                        s.optimizer.step()
                        s.optimizer.zero_grad(set_to_none=True)
        batches_per_epoch = len(loader)
        rows = [{"rank": rank, "step": r["step"] - params.warmup_steps, "region": r["name"], "seconds": r["seconds"],
                 "batches_per_epoch": batches_per_epoch, "gradient_bytes": int(flat.numel() * flat.element_size()),
                 "threads_per_process": cfg["threads_per_process"], "backend": backend}
                for r in timer.records if r["step"] >= params.warmup_steps]
        pd.DataFrame(rows).to_parquet(f"{out_path}.rank{rank}.parquet")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_data_parallel(model_name: str, framework: str, dataset: str, world_size: int, params,
                          device: torch.device, timeout_s: float = 600) -> list[dict]:
    """Data-parallel mini-batch training with ``world_size`` processes (spawned, gloo on CPU,
    NCCL on GPUs), each with ``cores // world_size`` threads (at least 1). Rows per rank and step:
    ``{rank, step, region, seconds, batches_per_epoch, gradient_bytes, threads_per_process,
    backend}``. Raises ``RuntimeError`` when a process fails or runs past ``timeout_s``."""
    import tempfile

    import torch.multiprocessing as mp

    ok, why = minibatch_available(framework)
    if not ok:
        return []
    cores = len(os.sched_getaffinity(0))
    cfg = {"params": params.model_dump(), "model": model_name, "framework": framework, "dataset": dataset,
           "device": device.type, "threads_per_process": max(1, cores // world_size)}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ddp")
        ctx = mp.start_processes(_ddp_worker, args=(world_size, _free_port(), cfg, out), nprocs=world_size,
                                 join=False, start_method="spawn")
        deadline = time.monotonic() + timeout_s
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                raise RuntimeError(f"data-parallel run ({world_size} processes) exceeded {timeout_s} s")
        frames = [pd.read_parquet(f"{out}.rank{r}.parquet") for r in range(world_size)]
    return pd.concat(frames, ignore_index=True).to_dict("records")


# --------------------------------------------------------------------------------------------
# 7. Accuracy (shows that the timed models learn)
# --------------------------------------------------------------------------------------------

def measure_accuracy(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                     device: torch.device) -> list[dict]:
    """Train ``params.train_epochs`` full-batch epochs; rows ``{epoch, loss, test_accuracy}``
    every 5 epochs and at the end, plus the chance level ``1 / num_classes``."""
    s = build_setup(model_name, framework, graph, params, device)
    rows = []
    for epoch in range(1, params.train_epochs + 1):
        loss = train_step(s)
        if epoch % 5 == 0 or epoch == params.train_epochs:
            rows.append({"epoch": epoch, "loss": loss, "test_accuracy": accuracy(s),
                         "chance_accuracy": 1.0 / graph.num_classes})
    return rows


# --------------------------------------------------------------------------------------------
# Summaries, figures and findings (from the tables only)
# --------------------------------------------------------------------------------------------

CONFIG = ["model", "framework", "dataset"]


def _label(df: pd.DataFrame) -> pd.Series:
    return df["model"].str.upper() + " · " + df["framework"].map({"dgl": "DGL", "pyg": "PyG"})


def kernel_class_shares(kernels: pd.DataFrame, by: str = "kernel_class") -> pd.DataFrame:
    """Seconds per step and share of the profiled step per configuration and ``by`` (a column of
    the kernel-class table: ``kernel_class``, ``stage`` or ``phase``)."""
    g = kernels.groupby(CONFIG + [by], as_index=False)["seconds"].sum()
    g["share"] = g["seconds"] / g.groupby(CONFIG)["seconds"].transform("sum")
    return g


def profiled_stage_shares(kernels: pd.DataFrame) -> pd.DataFrame:
    """Share of each stage in the profiled step with backward time attributed to the stage whose
    forward created it (see :func:`studylib.timing.kernel_class_breakdown`); the optimizer update
    and everything outside the stages count as ``other``."""
    k = kernels.copy()
    k.loc[k["phase"] == OPTIMIZER_UPDATE, "stage"] = "other"
    return kernel_class_shares(k, by="stage")


def plot_stage_shares(stage_times: pd.DataFrame):
    """Stacked bars: share of the median training step per region (:data:`STEP_REGIONS`), one
    panel per dataset, one bar per model x framework, the step time in ms written on each bar."""
    import matplotlib.pyplot as plt

    from studylib.plotting import STAGE_PALETTE

    summ = stage_summary(stage_times)
    summ = summ[summ["region"].isin(STEP_REGIONS)]
    datasets = list(pd.unique(stage_times["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(6.0, 4.2 * len(datasets)), 3.8), sharey=True,
                             squeeze=False, layout="constrained")
    for ax, ds in zip(axes[0], datasets):
        d = summ[summ["dataset"] == ds].copy()
        d["label"] = _label(d)
        wide = d.pivot_table(index="label", columns="region", values="share").reindex(columns=list(STEP_REGIONS))
        steps = d.groupby("label")["step_median_s"].first()
        wide["untimed"] = (1 - wide.fillna(0).sum(axis=1)).clip(lower=0)
        left = np.zeros(len(wide))
        for region in (*STEP_REGIONS, "untimed"):
            vals = wide[region].fillna(0).to_numpy()
            ax.barh(wide.index, vals, left=left, color=STAGE_PALETTE.get(region, "#e5e5e5"),
                    label=region.replace("_", " "))
            left += vals
        for y, lab in enumerate(wide.index):
            ax.text(min(left[y], 1.0) + 0.01, y, f"{steps[lab] * 1e3:.0f} ms", va="center", fontsize=7)
        ax.set_title(ds.upper())
        ax.set_xlim(0, 1.3)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xlabel("share of step time (median over steps)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", ncol=1, fontsize=7, frameon=False)
    fig.suptitle("Where a full-batch HGNN training step goes (stage timers; backward and update as a whole)")
    return fig


def plot_kernel_classes(kernels: pd.DataFrame):
    """Two rows of stacked bars from the profiler: share of the step per kernel class, and per
    stage with backward time attributed to its stage; one panel per dataset."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from studylib.plotting import STAGE_PALETTE

    datasets = list(dict.fromkeys(kernels["dataset"]))
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.2 * len(datasets), 6.2), sharey="row", squeeze=False)
    colors = dict(zip(timing.KERNEL_CLASSES, sns.color_palette("tab10", len(timing.KERNEL_CLASSES))))
    stage_order = [timing.FEATURE_PROJECTION, NEIGHBOR_AGGREGATION, timing.SEMANTIC_FUSION, LOSS, "other"]
    for row, (by, order, palette) in enumerate((("kernel_class", timing.KERNEL_CLASSES, colors),
                                                ("stage", stage_order, STAGE_PALETTE))):
        shares = profiled_stage_shares(kernels) if by == "stage" else kernel_class_shares(kernels, by)
        for ax, ds in zip(axes[row], datasets):
            d = shares[shares["dataset"] == ds].copy()
            d["label"] = _label(d)
            wide = d.pivot_table(index="label", columns=by, values="share").reindex(columns=list(order)).fillna(0)
            left = np.zeros(len(wide))
            for c in order:
                ax.barh(wide.index, wide[c], left=left, color=palette.get(c), label=c.replace("_", " "))
                left += wide[c].to_numpy()
            ax.set_xlim(0, 1)
            ax.set_title(f"{ds.upper()}: by {by.replace('_', ' ')}")
            ax.set_xlabel("share of profiled step time")
        axes[row][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.suptitle("Kernel classes and stages of a training step (torch.profiler self time of forward, backward "
                 "and update; backward attributed to its forward stage)")
    return fig


def memory_summary(stage_times: pd.DataFrame) -> pd.DataFrame:
    """Peak memory per configuration and phase (forward, backward): ``peak_mib`` (absolute) and
    ``increase_mib`` (peak minus the memory in use when the step began: the step's own demand)."""
    m = stage_times[stage_times["kind"] == "memory"].copy()
    m["peak_mib"] = m["peak_bytes"] / 2**20
    m["increase_mib"] = (m["peak_bytes"] - m["baseline_bytes"]) / 2**20
    return m[CONFIG + ["region", "peak_mib", "increase_mib"]]


def plot_memory(stage_times: pd.DataFrame, device: str = "cpu"):
    """Grouped bars: peak memory of the forward and the backward pass per configuration."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    m = memory_summary(stage_times)
    m["label"] = _label(m)
    datasets = list(dict.fromkeys(m["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.2), squeeze=False)
    what = "resident set size" if device == "cpu" else "allocated device memory"
    for ax, ds in zip(axes[0], datasets):
        sns.barplot(data=m[m["dataset"] == ds], y="label", x="increase_mib", hue="region", ax=ax,
                    palette={FORWARD: "#1f77b4", BACKWARD: "#9467bd"})
        ax.set_title(ds.upper())
        ax.set_xlabel(f"peak {what} above step start (MiB)")
        ax.set_ylabel("")
    fig.suptitle("Peak memory: forward vs backward pass")
    return fig


def plot_han_metapaths(han: pd.DataFrame):
    """Neighbor-aggregation time (forward, median per step, IQR bars) of HAN vs the number of
    metapaths and vs metapath length, one line per dataset and framework, with the metapath
    graphs' edge counts annotated."""
    import matplotlib.pyplot as plt

    keys = ["dataset", "framework", "sweep", "num_metapaths", "metapath_length", "metapath_edges"]
    d = han[han["region"] == NEIGHBOR_AGGREGATION].groupby(keys + ["step"], as_index=False)["seconds"].sum()
    g = d.groupby(keys)["seconds"]
    s = pd.concat([g.median().rename("median"), g.quantile(0.25).rename("q1"), g.quantile(0.75).rename("q3")],
                  axis=1).reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    for ax, sweep, x, xl in ((axes[0], "count", "num_metapaths", "number of metapaths"),
                             (axes[1], "length", "metapath_length", "metapath length (hops)")):
        part = s[s["sweep"] == sweep]
        for (ds, fw), f in part.groupby(["dataset", "framework"]):
            f = f.sort_values(x)
            ax.errorbar(f[x], f["median"] * 1e3, yerr=[(f["median"] - f["q1"]) * 1e3, (f["q3"] - f["median"]) * 1e3],
                        marker="o", capsize=3, label=f"{ds.upper()} · {'DGL' if fw == 'dgl' else 'PyG'}")
            for _, r in f.iterrows():
                ax.annotate(f"{r['metapath_edges'] / 1e3:.0f}k", (r[x], r["median"] * 1e3), fontsize=6,
                            textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel(xl)
        ax.set_ylabel("neighbor aggregation, forward (ms/step)")
        ax.set_yscale("log")
        if not part.empty:
            ax.set_xticks(sorted(part[x].unique()))
        ax.legend(fontsize=7)
    fig.suptitle("HAN: neighbor aggregation vs number and length of metapaths (labels: metapath-graph edges)")
    return fig


MINIBATCH_REGIONS = (SAMPLING, DATA_PREPARATION, FORWARD, BACKWARD, OPTIMIZER_UPDATE)


def minibatch_summary(mb: pd.DataFrame) -> pd.DataFrame:
    """Median seconds per step and share of the step per mode (minibatch / fullbatch) and region
    of :data:`MINIBATCH_REGIONS`, per configuration."""
    per = mb.groupby(CONFIG + ["mode", "region", "step"], as_index=False)["seconds"].sum()
    med = per.groupby(CONFIG + ["mode", "region"], as_index=False)["seconds"].median()
    total = med[med["region"] == STEP_TOTAL].set_index(CONFIG + ["mode"])["seconds"].rename("step_s")
    med = med[med["region"].isin(MINIBATCH_REGIONS)].join(total, on=CONFIG + ["mode"])
    med["share"] = med["seconds"] / med["step_s"]
    return med


def plot_minibatch(mb: pd.DataFrame):
    """Stacked bars: share of a step spent in sampling, data preparation, forward, backward and
    update, mini-batch vs full-batch, per model (one panel per dataset)."""
    import matplotlib.pyplot as plt

    from studylib.plotting import STAGE_PALETTE

    med = minibatch_summary(mb)
    datasets = list(pd.unique(mb["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.2), sharey=True, squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        d = med[med["dataset"] == ds].copy()
        d["label"] = _label(d) + " · " + d["mode"]
        wide = d.pivot_table(index="label", columns="region", values="share").reindex(
            columns=list(MINIBATCH_REGIONS)).fillna(0)
        steps = d.groupby("label")["step_s"].first()
        left = np.zeros(len(wide))
        for r in MINIBATCH_REGIONS:
            ax.barh(wide.index, wide[r], left=left, color=STAGE_PALETTE.get(r), label=r.replace("_", " "))
            left += wide[r].to_numpy()
        for y, lab in enumerate(wide.index):
            ax.text(min(left[y], 1.0) + 0.01, y, f"{steps[lab] * 1e3:.0f} ms", va="center", fontsize=7)
        ax.set_xlim(0, 1.3)
        ax.set_title(ds.upper())
        ax.set_xlabel("share of step time (median)")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.suptitle("Full batch vs neighbor-sampled mini-batch (DGL sampler)")
    return fig


def data_parallel_summary(ddp: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and process count: median step time (slowest rank per step), the epoch
    time (median step x batches per epoch), scaling efficiency ``T(1) / (N * T(N))`` of the epoch
    time, and the all-reduce share of the step."""
    per = ddp.groupby(CONFIG + ["world_size", "step", "region"], as_index=False)["seconds"].max()
    step = per[per["region"] == STEP_TOTAL].groupby(CONFIG + ["world_size"])["seconds"].median().rename("step_s")
    ar = per[per["region"] == GRADIENT_ALLREDUCE].groupby(CONFIG + ["world_size"])["seconds"].median().rename(
        "allreduce_s")
    bpe = ddp.groupby(CONFIG + ["world_size"])["batches_per_epoch"].max()
    out = pd.concat([step, ar, bpe], axis=1).reset_index()
    out["epoch_s"] = out["step_s"] * out["batches_per_epoch"]
    out["allreduce_share"] = out["allreduce_s"] / out["step_s"]
    base = out[out["world_size"] == 1].set_index(CONFIG)["epoch_s"].rename("epoch_s_1")
    out = out.join(base, on=CONFIG)
    out["speedup"] = out["epoch_s_1"] / out["epoch_s"]
    out["scaling_efficiency"] = out["speedup"] / out["world_size"]
    return out


def plot_data_parallel(ddp: pd.DataFrame):
    """Three panels vs number of processes: epoch time, scaling efficiency, all-reduce share."""
    import matplotlib.pyplot as plt

    s = data_parallel_summary(ddp)
    s["label"] = _label(s) + " · " + s["dataset"].str.upper()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for lab, d in s.groupby("label"):
        d = d.sort_values("world_size")
        axes[0].plot(d["world_size"], d["epoch_s"], marker="o", label=lab)
        axes[1].plot(d["world_size"], d["scaling_efficiency"], marker="o", label=lab)
        axes[2].plot(d["world_size"], d["allreduce_share"] * 100, marker="o", label=lab)
    axes[0].set_ylabel("epoch time (s)")
    axes[1].set_ylabel("scaling efficiency T1 / (N·TN)")
    axes[1].axhline(1.0, color="0.5", lw=0.8, ls="--")
    axes[2].set_ylabel("gradient all-reduce (% of step)")
    for ax in axes:
        ax.set_xlabel("data-parallel processes")
        ax.set_xticks(sorted(s["world_size"].unique()))
    axes[2].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle("Data-parallel mini-batch training (torch.distributed, synchronous gradient all-reduce)")
    return fig


def ratio_summary(bench: pd.DataFrame, numerator: str, denominator: str) -> pd.DataFrame:
    """Median time ratio ``numerator / denominator`` per configuration with an interquartile band,
    computed from the per-round medians of two alternated variants (``variant`` column)."""
    per = bench.groupby(CONFIG + ["variant", "round"])["seconds"].median().unstack("variant")
    per = per.dropna(subset=[numerator, denominator])
    per["ratio"] = per[numerator] / per[denominator]
    g = per.groupby(CONFIG)
    out = pd.DataFrame({
        "ratio": g["ratio"].median(), "ratio_q1": g["ratio"].quantile(0.25), "ratio_q3": g["ratio"].quantile(0.75),
        f"{numerator}_ms": g[numerator].median() * 1e3, f"{denominator}_ms": g[denominator].median() * 1e3,
        "rounds": g["ratio"].size()}).reset_index()
    return out


def plot_ratios(overhead: pd.DataFrame | None, reference: pd.DataFrame | None):
    """Two panels: step time with stage instrumentation / without (goal <= 1.05), and staged model
    / the frameworks' reference layers (goal <= 1.10); medians over alternated rounds, IQR bars."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=False)
    for ax, df, num, den, goal, title in (
            (axes[0], overhead, "instrumented", "plain", 1.05, "stage instrumentation overhead"),
            (axes[1], reference, "staged", "reference", 1.10, "staged model vs framework reference layers")):
        ax.set_title(title)
        if df is None or df.empty:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        r = ratio_summary(df, num, den)
        r["label"] = _label(r) + " · " + r["dataset"].str.upper()
        y = np.arange(len(r))
        ax.errorbar(r["ratio"], y, xerr=[r["ratio"] - r["ratio_q1"], r["ratio_q3"] - r["ratio"]], fmt="o",
                    capsize=3)
        ax.set_yticks(y, r["label"], fontsize=7)
        ax.axvline(1.0, color="0.5", lw=0.8)
        ax.axvline(goal, color="#d62728", lw=0.8, ls="--", label=f"goal ≤ {goal:.2f}")
        ax.set_xlabel(f"time per step: {num} / {den}")
        ax.legend(fontsize=7)
    fig.suptitle("Benchmarks (torch.utils.benchmark, alternated rounds)")
    return fig


def evaluate_findings(stage_times: pd.DataFrame | None, kernels: pd.DataFrame | None, han: pd.DataFrame | None,
                      minibatch: pd.DataFrame | None, ddp: pd.DataFrame | None) -> pd.DataFrame:
    """The paper's findings (Han et al., TACO 2025, Sec. 5-6) checked against this run's tables.

    Returns one row per finding: ``finding``, ``verdict`` (``reproduced``, ``partly``,
    ``not reproduced``, ``not measured``) and ``evidence`` (the numbers behind the verdict).
    A verdict is computed from the numbers only; nothing is assumed.
    """
    out = []

    def add(finding, verdict, evidence):
        out.append({"finding": finding, "verdict": verdict, "evidence": evidence})

    # F1: neighbor aggregation dominates training time
    f1 = "Neighbor aggregation is the largest stage of HGNN training"
    if kernels is not None and not kernels.empty:
        st = profiled_stage_shares(kernels)
        st = st[st["stage"] != "other"]
        top = st.loc[st.groupby(CONFIG)["share"].idxmax()]
        n_na = int((top["stage"] == NEIGHBOR_AGGREGATION).sum())
        na = st[st["stage"] == NEIGHBOR_AGGREGATION]["share"]
        fp = st[st["stage"] == timing.FEATURE_PROJECTION]["share"]
        verdict = "reproduced" if n_na == len(top) else ("partly" if n_na > 0 else "not reproduced")
        per_model = st.pivot_table(index="model", columns="stage", values="share", aggfunc="median")
        detail = "; ".join(f"{m.upper()}: aggregation {r.get(NEIGHBOR_AGGREGATION, 0):.0%}, projection "
                           f"{r.get(timing.FEATURE_PROJECTION, 0):.0%}" for m, r in per_model.iterrows())
        add(f1, verdict, f"largest stage (forward + backward, profiler) is neighbor aggregation in {n_na} of "
                         f"{len(top)} configurations; aggregation share median {na.median():.0%} "
                         f"(range {na.min():.0%}-{na.max():.0%}), feature projection median {fp.median():.0%}; "
                         f"median per model: {detail}")
    else:
        add(f1, "not measured", "no kernel-class table")

    # F2: aggregation time grows with number and length of metapaths
    f2 = "HAN's aggregation time grows with the number and the length of metapaths"
    if han is not None and not han.empty:
        d = han[han["region"] == NEIGHBOR_AGGREGATION].groupby(
            ["dataset", "framework", "sweep", "num_metapaths", "metapath_length", "step"])["seconds"].sum().groupby(
            ["dataset", "framework", "sweep", "num_metapaths", "metapath_length"]).median().reset_index()
        ev, ok = [], []
        for (ds, fw, sweep), g in d.groupby(["dataset", "framework", "sweep"]):
            x = "num_metapaths" if sweep == "count" else "metapath_length"
            g = g.sort_values(x)
            if len(g) < 2:
                ev.append(f"{ds} {fw} {sweep}: one point only (larger metapaths over the edge cap)")
                continue
            inc = bool(np.all(np.diff(g["seconds"].to_numpy()) > 0))
            ok.append(inc)
            ev.append(f"{ds} {fw} {sweep} {'/'.join(str(v) for v in g[x])}: "
                      + " → ".join(f"{v * 1e3:.1f}" for v in g["seconds"]) + " ms")
        verdict = ("not measured" if not ok else "reproduced" if all(ok) else "partly" if any(ok)
                   else "not reproduced")
        add(f2, verdict, "; ".join(ev))
    else:
        add(f2, "not measured", "HAN metapath sweep not run")

    # F3: the backward pass raises memory demand
    f3 = "The backward pass raises memory demand above the forward pass"
    if stage_times is not None and (stage_times["kind"] == "memory").any():
        m = memory_summary(stage_times).pivot_table(index=CONFIG, columns="region", values="increase_mib")
        higher = int((m[BACKWARD] > m[FORWARD]).sum())
        ratio = (m[BACKWARD] / m[FORWARD])
        verdict = "reproduced" if higher == len(m) else ("partly" if higher > 0 else "not reproduced")
        add(f3, verdict, f"peak memory above the step's start is higher in backward than in forward in {higher} of "
                         f"{len(m)} configurations; backward/forward ratio median {ratio.median():.2f} "
                         f"(range {ratio.min():.2f}-{ratio.max():.2f})")
    else:
        add(f3, "not measured", "no memory rows")

    # F4: mini-batch training is dominated by sampling and data preparation
    f4 = "Mini-batch training time is dominated by sampling and data preparation"
    if minibatch is not None and not minibatch.empty:
        med = minibatch_summary(minibatch)
        mbm = med[med["mode"] == "minibatch"]
        prep = mbm[mbm["region"].isin([SAMPLING, DATA_PREPARATION])].groupby(CONFIG)["share"].sum()
        dom = int((prep > 0.5).sum())
        verdict = "reproduced" if dom == len(prep) else ("partly" if dom > 0 else "not reproduced")
        add(f4, verdict, f"sampling + data preparation exceed half of the mini-batch step in {dom} of {len(prep)} "
                         f"configurations; share median {prep.median():.0%} (range {prep.min():.0%}-{prep.max():.0%})")
    else:
        add(f4, "not measured", "mini-batch comparison not run")

    # F5: multi-device training adds communication
    f5 = "Data-parallel training adds gradient communication that limits scaling"
    if ddp is not None and not ddp.empty:
        s = data_parallel_summary(ddp)
        multi = s[s["world_size"] > 1]
        if multi.empty:
            add(f5, "not measured", "only one process was run")
        else:
            share = multi["allreduce_share"]
            eff = multi["scaling_efficiency"]
            verdict = "reproduced" if (share > 0.05).all() and (eff < 1).all() else (
                "partly" if (share > 0.05).any() or (eff < 1).any() else "not reproduced")
            add(f5, verdict, f"with >1 process, gradient all-reduce takes median {share.median():.0%} of a step "
                             f"(range {share.min():.0%}-{share.max():.0%}); scaling efficiency median "
                             f"{eff.median():.2f} (range {eff.min():.2f}-{eff.max():.2f})")
    else:
        add(f5, "not measured", "data-parallel runs not made")
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# Driver: one call per measurement table, resumable
# --------------------------------------------------------------------------------------------

class GraphCache(GraphCacheBase):
    """Loads each dataset of this notebook once per run (``cache[dataset]``, see :func:`load_graph`)."""

    def __init__(self, params):
        super().__init__(lambda name: load_graph(name, params.synthetic_scale, params.seed))


def _configs(params, models=None, frameworks=None, datasets=None, **extra) -> list[dict]:
    out = []
    for ds in datasets or params.datasets:
        for m in models or params.models:
            for fw in frameworks or params.frameworks:
                out.append({"model": m, "framework": fw, "dataset": ds, **extra})
    return out


def run_measurement(name: str, params, device: torch.device, graphs: GraphCache | None = None) -> pd.DataFrame:
    """Run (or resume) one measurement of this notebook into ``results/01-hgnn-training/<name>``
    and return the whole table.

    ``name`` is one of ``stage_times``, ``kernel_classes``, ``overhead``, ``reference``,
    ``han_metapaths``, ``minibatch``, ``data_parallel``, ``accuracy``. Configurations already in
    the table (same parameters, same machine) are not measured again. Raises ``ValueError`` for
    an unknown name.
    """
    from studylib.results import ResultTable

    graphs = graphs if graphs is not None else GraphCache(params)
    cfg = ["model", "framework", "dataset"]
    rounds, mrt = params.benchmark_rounds, params.benchmark_min_run_time

    def per_config(fn, **kw):
        return lambda c: fn(c["model"], c["framework"], c["dataset"], graphs[c["dataset"]], params, device, **kw)

    if name == "stage_times":
        configs, measure = _configs(params), per_config(measure_stage_times)
    elif name == "kernel_classes":
        configs, measure = _configs(params), per_config(measure_kernel_classes)
    elif name == "overhead":
        configs = _configs(params, datasets=params.benchmark_datasets)
        measure = per_config(measure_overhead, rounds=rounds, min_run_time=mrt)
    elif name == "reference":
        configs = _configs(params, datasets=params.benchmark_datasets)
        measure = per_config(measure_reference, rounds=rounds, min_run_time=mrt)
    elif name == "han_metapaths":
        configs = _configs(params, models=["han"], datasets=params.han_sweep_datasets or params.datasets[:1])
        measure = lambda c: measure_han_metapaths(c["framework"], c["dataset"], graphs[c["dataset"]], params, device)  # noqa: E731
    elif name == "minibatch":
        configs = _configs(params, frameworks=[f for f in params.frameworks if minibatch_available(f)[0]])
        measure = per_config(measure_minibatch)
    elif name == "data_parallel":
        fws = [f for f in params.frameworks if minibatch_available(f)[0]]
        configs = [{**c, "world_size": w} for c in _configs(params, frameworks=fws, datasets=[params.datasets[0]])
                   for w in params.ddp_world_sizes]
        cfg = cfg + ["world_size"]
        measure = lambda c: measure_data_parallel(c["model"], c["framework"], c["dataset"], c["world_size"],  # noqa: E731
                                                  params, device, timeout_s=params.ddp_timeout_s)
    elif name == "accuracy":
        configs, measure = _configs(params, datasets=params.accuracy_datasets), per_config(measure_accuracy)
    else:
        raise ValueError(f"unknown measurement {name!r} of {NOTEBOOK}")
    table = ResultTable(NOTEBOOK, name, cfg, params.model_dump())

    def measure_on_device(c: dict) -> list[dict]:
        return [{**r, "device": device.type, "num_threads": torch.get_num_threads()} for r in measure(c)]

    return table.sweep(configs, measure_on_device, desc=name)
