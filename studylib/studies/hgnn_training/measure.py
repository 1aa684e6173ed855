"""Measurements of notebook ``01-hgnn-training``: where HGNN training time goes.

Reproduces and extends Han, Yan, Ye, Fan, *Characterizing and Understanding HGNN Training on
GPUs*, ACM TACO 2025 (arXiv 2407.11790). Every ``measure_*`` function returns tidy rows (one per
raw sample) for a :class:`studylib.results.ResultTable`; the ``plot_*`` functions draw figures
from those tables only; :func:`evaluate_findings` turns the tables into a verdict per finding.

All times are seconds of wall clock, read after synchronising the device (see
:mod:`studylib.timing`). Memory is bytes.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass

import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils import benchmark

from studylib import memory, timing
from studylib.data import GraphCache as GraphCacheBase
from studylib.data import HeteroGraph
from studylib.data.hgnn_graphs import dataset_options, han_metapaths, load_graph, metapath_edges
from studylib.models import build_model, build_reference_model
from studylib.optional import dgl_available
from studylib.results import ResultTable
from studylib.studies.hgnn_training.params import NOTEBOOK, HgnnTrainingParams
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
    PeakMemory,
    StageTimer,
    endless_batches,
    phase,
    stage,
    trim_heap,
)

# DGL's data loader warns on every epoch that its CPU-affinity option is off; the option pins
# sampler workers, which these measurements do not use (num_workers=0).
warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")


#: Regions of one training step, in stacking order, that together make up the step.
STEP_REGIONS = (timing.FEATURE_PROJECTION, NEIGHBOR_AGGREGATION, timing.SEMANTIC_FUSION, LOSS, BACKWARD,
                OPTIMIZER_UPDATE)





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


def step_memory_estimate(model_name: str, graph: HeteroGraph, params) -> memory.Estimate:
    """Bytes one full-graph training step of ``model_name`` on ``graph`` needs, estimated before
    anything is built (:mod:`studylib.memory`): the relation graphs (COO, CSR and CSC) or, for HAN,
    its metapath graphs (edges counted by :func:`studylib.data.hgnn_graphs.metapath_edges`);
    float32 input features; activations kept for the backward pass (every node type's hidden
    output per layer, plus three per-edge tensors per head for the attention models: logits,
    softmax, dropout mask); the parameters with Adam's two moments (feature projection per type,
    one ``hidden x hidden`` weight per relation and layer). An estimate, not a bound: the
    frameworks' workspaces come on top."""
    hidden, layers, heads = params.hidden_dim, params.num_layers, params.num_heads
    if model_name == "han":
        metapaths = han_metapaths(graph, params.han_max_metapath_edges)[0]
        n_t = graph.num_nodes[graph.target]
        rel_edges = [metapath_edges(graph, path) for path in metapaths.values()]
        structure = sum(memory.graph_bytes(n_t, e, formats=("coo", "csr", "csc")) for e in rel_edges)
        out_nodes = n_t * (len(rel_edges) + 1)
    else:
        rel_edges = [graph.num_edges(et) for et in graph.edge_types]
        structure = sum(memory.graph_bytes(graph.num_nodes[et[0]] + graph.num_nodes[et[2]], graph.num_edges(et),
                                           formats=("coo", "csr", "csc")) for et in graph.edge_types)
        out_nodes = sum(graph.num_nodes.values())
    dims = graph.feature_dims()
    features = sum(memory.feature_bytes(graph.num_nodes[t], w) for t, w in dims.items() if w)
    attention = model_name in ("rgat", "han")
    activations = memory.activation_bytes(out_nodes, hidden, num_layers=layers, edges=sum(rel_edges),
                                          heads=heads if attention else 1, edge_tensors=3 if attention else 0)
    weights = sum((w or hidden) * hidden for w in dims.values()) + layers * len(rel_edges) * hidden * hidden
    return memory.Estimate({"graph structure": structure, "features": features, "activations": activations,
                            "parameters and optimizer": memory.optimizer_bytes(weights)})


def build_setup(model_name: str, framework: str, graph: HeteroGraph, params, device: torch.device,
                reference: bool = False, metapaths: dict | None = None) -> Setup:
    """Build the staged model (or, with ``reference=True``, the frameworks' own layers), its
    semantic graphs, inputs and Adam optimizer. Raises ``ValueError`` for an unknown model or
    framework and ``LookupError`` when no reference model exists for the pair."""

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




def measure_stage_times(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                        device: torch.device) -> list[dict]:
    """Time the semantic graph build and every region of ``params.repeat_steps`` training steps
    (after ``params.warmup_steps`` untimed ones).

    Returns rows ``{region, kind, step, seconds, loss}``: kind ``stage`` (the four stages and
    ``loss``), ``phase`` (forward, backward, optimizer_update), ``step`` (the whole step, timed
    around it), and ``build`` (the semantic graph build, repeated ``repeat_steps`` times).
    Also one ``memory`` row per phase (forward, backward): ``peak_bytes`` (peak during the phase),
    ``baseline_bytes`` (in use when the step's forward pass began) and ``phase_start_bytes`` (in
    use when the phase itself began: for backward, the memory the forward pass left, its retained
    activations included).
    """
    rows: list[dict] = []
    timer = StageTimer(device=device)

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
    # baseline: the memory in use when the step started (before forward); phase start: when the
    # phase began (the backward pass starts with the forward's retained activations alive)
    for name in (FORWARD, BACKWARD):
        rows.append({"kind": "memory", "region": name, "step": -1, "seconds": float("nan"),
                     "peak_bytes": pm.peaks[name], "baseline_bytes": pm.baselines[FORWARD],
                     "phase_start_bytes": pm.baselines[name]})
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


def measure_kernel_classes(model_name: str, framework: str, dataset: str, graph: HeteroGraph, params,
                           device: torch.device) -> list[dict]:
    """Profile ``params.profile_steps`` training steps with ``torch.profiler`` and attribute the
    self time of every op to (phase, stage, kernel class); rows ``{phase, stage, kernel_class,
    op, seconds}`` summed over the profiled steps and divided by their count (seconds per step)."""

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


def _blocked_times(fn, num_threads: int, min_run_time: float) -> list[float]:
    """Seconds per call of ``fn`` from ``torch.utils.benchmark.Timer.blocked_autorange``: the raw
    per-block means (each block runs ``number_per_run`` calls)."""

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


def minibatch_available(framework: str) -> tuple[bool, str]:
    """Whether neighbor-sampled mini-batch training can run in ``framework`` here, and why not.
    DGL: always (its sampler is built in). PyG: ``NeighborLoader`` needs ``pyg-lib`` or
    ``torch-sparse`` (``make setup``); the staged PyG models take full graphs only."""
    if framework == "dgl":
        return (True, "") if dgl_available() else (False, "DGL mini-batch is not measured: DGL is not installed")
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
    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

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
    batches = endless_batches(loader)
    with timer.activate():
        for i in range(steps):
            with timer.step(i):
                with stage(SAMPLING):
                    batch = next(batches)
                minibatch_step(s, batch, graph.target)
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


def _ddp_worker(rank: int, world_size: int, port: int, cfg: dict, out_path: str) -> None:
    """One data-parallel process: mini-batch training on its share of the training nodes, with a
    synchronous all-reduce of the flattened gradients after every backward (timed on its own)."""

    params = HgnnTrainingParams(**cfg["params"])
    torch.set_num_threads(cfg["threads_per_process"])
    device = torch.device(cfg["device"])
    if device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        graph = load_graph(cfg["dataset"], params.synthetic_scale, params.seed, dataset_options(params, cfg["dataset"]))
        s = build_setup(cfg["model"], cfg["framework"], graph, params, device)
        # strong scaling: the global batch stays params.batch_size, split over the processes
        local = minibatch_seed_nodes(graph, params)[rank::world_size]
        local_params = params.model_copy(update={"batch_size": max(1, params.batch_size // world_size)})
        loader = _dgl_loader(s, graph, local_params, device, local)
        grads = [p for p in s.model.parameters() if p.requires_grad]
        timer = StageTimer(device=device)
        steps = params.warmup_steps + params.ddp_steps
        batches = endless_batches(loader)
        with timer.activate():
            for i in range(steps):
                with timer.step(i):
                    with stage(SAMPLING):
                        batch = next(batches)
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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_data_parallel(model_name: str, framework: str, dataset: str, world_size: int, params,
                          device: torch.device, timeout_s: float = 600) -> list[dict]:
    """Data-parallel mini-batch training with ``world_size`` processes (spawned, gloo on CPU,
    NCCL on GPUs), each with ``cores // world_size`` threads (at least 1). Rows per rank and step:
    ``{rank, step, region, seconds, batches_per_epoch, gradient_bytes, threads_per_process,
    backend}``. Raises ``RuntimeError`` when a process fails or runs past ``timeout_s``."""

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


CONFIG = ["model", "framework", "dataset"]


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


def memory_summary(stage_times: pd.DataFrame) -> pd.DataFrame:
    """Peak memory per configuration and phase (forward, backward): ``peak_mib`` (absolute),
    ``increase_mib`` (peak minus the memory in use when the step began: the step's own demand) and
    ``own_mib`` (peak minus the memory in use when the phase began: what the phase itself adds;
    NaN for rows measured without ``phase_start_bytes``)."""
    m = stage_times[stage_times["kind"] == "memory"].copy()
    m["peak_mib"] = m["peak_bytes"] / 2**20
    m["increase_mib"] = (m["peak_bytes"] - m["baseline_bytes"]) / 2**20
    start = m["phase_start_bytes"] if "phase_start_bytes" in m else float("nan")
    m["own_mib"] = (m["peak_bytes"] - start) / 2**20
    return m[CONFIG + ["region", "peak_mib", "increase_mib", "own_mib"]]


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


class GraphCache(GraphCacheBase):
    """Loads each dataset of this notebook once per run (``cache[dataset]``, see :func:`load_graph`)."""

    def __init__(self, params):
        super().__init__(lambda name: load_graph(name, params.synthetic_scale, params.seed,
                                                 dataset_options(params, name)))


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
        if "model" in c:  # refused (a row with the estimate and the available memory) before anything is built
            memory.require(step_memory_estimate(c["model"], graphs[c["dataset"]], params),
                           what=f"{NOTEBOOK} {name}: {c['model']} ({c['framework']}) on {c['dataset']}", device=device)
        return [{**r, "device": device.type, "num_threads": torch.get_num_threads()} for r in measure(c)]

    return table.sweep(configs, measure_on_device, desc=name)
