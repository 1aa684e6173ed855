"""Measurements and checks of notebook ``05-parallelism-analysis``: do the work-depth and
communication models of Besta and Hoefler (IEEE TPAMI 2024, arXiv 2205.09702) predict what this
machine measures?

The models live in :mod:`studylib.studies.parallelism_analysis.work_depth`; this module measures GCN, GraphSAGE, GIN and GAT
training steps (PyG and DGL) over a grid of synthetic graphs and the real graphs of ``datasets``
(Cora from the mirror, or the user's own graph named by a spec, :mod:`studylib.data.specs`),
writes the predictions next to the measurements, fits one machine constant per model, partitions
graphs with METIS to predict communication, and reads what the other notebooks measured
(``00-hardware``'s machine limits, ``01-hgnn-training``'s stage times, ``02-distributed-caching``'s
communicated bytes) when their results exist.

Every ``measure_*`` function returns tidy rows (one per raw sample) for a
:class:`studylib.results.ResultTable`; every ``plot_*`` function draws from tables only;
:func:`evaluate_findings` computes a verdict per finding from the tables. Times are seconds of wall
clock (``torch.utils.benchmark.Timer`` with an explicit thread count, synchronised on CUDA), work
is flops, traffic is bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import nnls
from torch.profiler import ProfilerActivity, profile
from torch.utils import benchmark

from studylib import limits, machine, memory, paths, results, timing
from studylib.data import hgnn_graphs, specs
from studylib.data.graph_cache import GraphCache as GraphCacheBase
from studylib.data.homogeneous import HomogeneousGraph, random_split, synthetic_homogeneous
from studylib.models.homogeneous import SELF_LOOP_MODELS, build_homogeneous_model
from studylib.optional import dgl_available, require_dgl
from studylib.results import ResultTable
from studylib.studies.parallelism_analysis import work_depth as analysis
from studylib.studies.parallelism_analysis.params import NOTEBOOK
from studylib.tables import ok_rows  # noqa: F401  (the notebook filters its tables with it)

MODEL_LABELS = {"gcn": "GCN", "sage": "GraphSAGE", "gin": "GIN", "gat": "GAT"}


FRAMEWORK_LABELS = {"dgl": "DGL", "pyg": "PyG"}


#: R^2 (log-log) at or above which one machine constant per model "explains" the measured step
#: times; at or above :data:`R2_PARTLY` it explains them "partly". Declared before measuring.
R2_EXPLAINS = 0.90


R2_PARTLY = 0.70


STEP_CONFIG = ["graph", "model", "framework", "num_layers"]


def synthetic_name(n: int, avg_degree: float, k: int) -> str:
    """Name of a grid graph, e.g. ``syn-n8192-d16-k64``."""
    return f"syn-n{n}-d{avg_degree:g}-k{k}"


def parse_synthetic_name(name: str) -> tuple[int, float, int]:
    """``(n, avg_degree, k)`` of a :func:`synthetic_name`; ``ValueError`` for other names."""
    if not name.startswith("syn-"):
        raise ValueError(f"{name!r} is not a synthetic graph name (syn-n<n>-d<degree>-k<width>)")
    parts = dict((p[0], p[1:]) for p in name[4:].split("-"))
    return int(parts["n"]), float(parts["d"]), int(parts["k"])


def graph_names(params) -> list[str]:
    """The graphs of a run: the synthetic grid (``synthetic_nodes`` x ``synthetic_degrees`` x
    ``feature_dims``) then the real ``datasets`` (named by their spec text), in that order."""
    names = [synthetic_name(n, d, k) for n in params.synthetic_nodes for d in params.synthetic_degrees
             for k in params.feature_dims]
    return names + list(params.datasets)


def largest_synthetic(params) -> str:
    """The grid graph with the most edges, then the widest features (thread scaling, mini-batch,
    kernel profile)."""
    return synthetic_name(max(params.synthetic_nodes), max(params.synthetic_degrees), max(params.feature_dims))


#: Per-edge tensors a GAT layer keeps per head (attention logits, their softmax, dropout mask).
GAT_EDGE_TENSORS = 3


def graph_estimate(n: int, avg_degree: float, k: int) -> memory.Estimate:
    """Bytes of a grid graph before it is generated: its ``m = n * avg_degree`` edges in COO, CSR
    and CSC (int64; the frameworks build the compressed formats) and its ``n x k`` float32
    features (:mod:`studylib.memory`). Raises ``ValueError`` for a negative count."""
    m = int(round(n * avg_degree))
    return memory.Estimate({"structure": memory.graph_bytes(n, m, formats=("coo", "csr", "csc")),
                            "features": memory.feature_bytes(n, k)})


def step_estimate(model_name: str, n: int, m: int, k: int, hidden: int, num_layers: int, params) -> memory.Estimate:
    """Bytes of one full-batch training step of a configuration, before its model is built: the
    graph (:func:`graph_estimate`), the activations kept for the backward pass
    (:func:`studylib.memory.activation_bytes`; GAT: ``num_heads`` heads and
    :data:`GAT_EDGE_TENSORS` per-edge tensors), the per-edge messages of a gather-scatter layer
    (``m x width`` float32 per layer, PyG's message passing materialises them), and the weights,
    gradients and Adam state (:func:`studylib.memory.optimizer_bytes`)."""
    heads = params.num_heads if model_name == "gat" else 1
    width = max(hidden // heads, 1)
    act = memory.activation_bytes(n, width, num_layers=num_layers, heads=heads, edges=m,
                                  edge_tensors=GAT_EDGE_TENSORS if model_name == "gat" else 0)
    weights = num_layers * max(k, hidden) * hidden * (params.gin_mlp_layers if model_name == "gin" else 2)
    return graph_estimate(n, m / max(n, 1), k) + memory.Estimate({
        "activations": act, "messages": num_layers * memory.feature_bytes(m, max(k, hidden)),
        "optimizer": memory.optimizer_bytes(weights)})


def load_graph(name: str, params) -> HomogeneousGraph:
    """A grid graph (a :func:`synthetic_name`: :func:`studylib.data.homogeneous.synthetic_homogeneous`
    with the run's ``num_classes``, ``degree_skew`` and ``seed``) or a real dataset named by its
    spec (an entry of ``datasets``: ``cora`` from the mirror, ``ogb:<name>``, ``planetoid:...``,
    ``pyg:...``; :func:`studylib.data.specs.load`, the user's files read in place), given a
    seeded 60/20/20 split of its labelled vertices
    (:func:`studylib.data.homogeneous.random_split`) when it has none.

    Raises :class:`studylib.data.specs.DataSpecError` naming the spec (missing path, another
    format, not homogeneous, no labels, no vertex features), ``DatasetUnavailableError`` (names
    the dataset and the download step), and :class:`studylib.memory.Refused` (estimate and
    memory available) for a graph that would not fit (:func:`graph_estimate` for a grid graph,
    :func:`studylib.data.specs.estimate` for a dataset): refused before it is generated or read."""
    if not name.startswith("syn-"):
        g = specs.load(name, specs.HOMOGENEOUS, seed=params.seed)
        if g.feature_dim == 0:
            raise specs.DataSpecError(f"dataset {name!r}: the graph has no vertex features; {NOTEBOOK} trains "
                                      "GNNs on them (feature projection of width k)")
        return g if g.train_idx.numel() else random_split(g, seed=params.seed)
    n, d, k = parse_synthetic_name(name)
    memory.require(graph_estimate(n, d, k), what=f"{NOTEBOOK}: graph {name}")
    return synthetic_homogeneous(n, d, k, params.num_classes, params.degree_skew, params.seed, name=name)


class GraphCache(GraphCacheBase):
    """Loads each graph once per notebook run (``cache[name]``, see :func:`load_graph`)."""

    def __init__(self, params):
        super().__init__(lambda name: load_graph(name, params))


def hidden_dim_for(graph_name: str, graph: HomogeneousGraph, params) -> int:
    """Hidden width: the grid graphs use ``k`` for every layer (the paper's single feature width);
    real graphs keep their input width and use ``params.hidden_dim``."""
    return graph.feature_dim if graph_name.startswith("syn-") else params.hidden_dim


def graph_rows(name: str, graph: HomogeneousGraph, params) -> list[dict]:
    """One row of statistics for the ``graphs`` table (:meth:`HomogeneousGraph.statistics`)."""
    st = graph.statistics()
    st.pop("split", None)
    return [{"kind": "synthetic" if name.startswith("syn-") else "real", **st,
             "hidden_dim": hidden_dim_for(name, graph, params), "num_train": int(len(graph.train_idx))}]


def dgl_usable(device: torch.device) -> bool:
    """Whether DGL models can run on ``device`` (the package index's DGL wheel is CPU-only)."""

    return device.type == "cpu" or machine.dgl_has_cuda()


def build_training(model_name: str, framework: str, graph: HomogeneousGraph, hidden: int, num_layers: int, params,
                   device: torch.device, structure=None):
    """A model, its graph structure, inputs and an Adam optimizer on ``device``; returns
    ``(model, step)`` where ``step()`` runs one full-batch training step (forward on all vertices,
    cross-entropy on the training vertices, backward, Adam update, gradients cleared). Raises
    :class:`studylib.memory.Refused` before building anything when :func:`step_estimate` does not
    fit in the memory available on ``device``."""

    memory.require(step_estimate(model_name, graph.n, graph.m, graph.feature_dim, hidden, num_layers, params),
                   what=f"{NOTEBOOK}: {model_name}/{framework}, {num_layers} layers on a graph of {graph.n} vertices, "
                        f"{graph.m} edges, width {graph.feature_dim}", device=device)
    model = build_homogeneous_model(model_name, framework, graph.feature_dim, hidden, graph.num_classes, num_layers,
                                    num_heads=params.num_heads, gin_mlp_layers=params.gin_mlp_layers,
                                    seed=params.seed).to(device)
    s = structure if structure is not None else model.prepare_graph(graph, device)
    x, y, idx = graph.features.to(device), graph.labels.to(device), graph.train_idx.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)

    def step():
        out = model(s, x)
        loss = F.cross_entropy(out[idx], y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, step


def time_steps(step, threads: int, warmup: int, repeat: int, device: torch.device | str = "cpu",
               min_run_time: float = 0.05) -> tuple[list[float], int]:
    """Seconds per training step: ``torch.utils.benchmark.Timer(num_threads=threads)
    .blocked_autorange`` (which synchronises CUDA around its clock reads) after ``max(1, warmup)``
    untimed steps.

    One more step after the warm-up (run with ``threads`` threads, synchronised) estimates the step
    time ``t``; ``blocked_autorange`` then runs for ``max(min_run_time, repeat * t)`` seconds, so that
    it returns about ``repeat`` blocks, and is called again while fewer than ``repeat`` came back.
    A block holds ``number_per_run`` steps (1 for steps much longer than the timer's own overhead,
    more for sub-millisecond steps); its mean is one raw sample. Returns ``(samples,
    number_per_run)``.
    """

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(max(1, warmup)):
            step()
        timing.synchronize(device)
        t0 = time.perf_counter()
        step()  # one more untimed step, read only to size the measurement below
        timing.synchronize(device)
        est = time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous)
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    samples: list[float] = []
    per_run = 1
    for _ in range(5):
        missing = repeat - len(samples)
        if missing <= 0:
            break
        m = timer.blocked_autorange(min_run_time=max(min_run_time, missing * est * 0.999))
        samples += [float(t) for t in m.times]
        per_run = int(m.number_per_run)
    return samples, per_run


def measure_step_times(graph_name: str, model_name: str, framework: str, num_layers: int, graph: HomogeneousGraph,
                       params, device: torch.device, threads: int | None = None) -> list[dict]:
    """Time full-batch training steps of one configuration (:func:`time_steps`: about
    ``params.repeat_steps`` raw samples after ``params.warmup_steps`` untimed steps). Rows
    ``{sample, seconds, steps_per_sample, threads, n, m, k, hidden_dim}``."""
    threads = threads or torch.get_num_threads()
    hidden = hidden_dim_for(graph_name, graph, params)
    _, step = build_training(model_name, framework, graph, hidden, num_layers, params, device)
    samples, per_run = time_steps(step, threads, params.warmup_steps, params.repeat_steps, device)
    return [{"sample": i, "seconds": t, "steps_per_sample": per_run, "threads": threads, "n": graph.n, "m": graph.m,
             "k": graph.feature_dim, "hidden_dim": hidden} for i, t in enumerate(samples)]


def predict_step(graph_name: str, model_name: str, framework: str, num_layers: int, graph: HomogeneousGraph,
                 params) -> dict:
    """The models' predictions for one configuration (one row): the counted work, traffic and
    depth of a training step (:func:`studylib.studies.parallelism_analysis.work_depth.training_step_cost`, split into aggregation
    / update / other and forward / backward / optimizer), the dense / sparse / element-wise flop
    buckets, and the paper's O-terms (:func:`studylib.studies.parallelism_analysis.work_depth.paper_work`,
    :func:`studylib.studies.parallelism_analysis.work_depth.paper_depth`) with ``k`` the hidden width."""
    st = graph.statistics()
    hidden = hidden_dim_for(graph_name, graph, params)
    dims = analysis.model_dims(graph.feature_dim, hidden, graph.num_classes, num_layers)
    fw = framework
    cost = analysis.training_step_cost(model_name, fw, analysis.full_batch_shapes(st, num_layers), dims,
                                       num_heads=params.num_heads, gin_mlp_layers=params.gin_mlp_layers,
                                       num_train=len(graph.train_idx), existing_self_loops=st["self_loops"])
    fwd = analysis.training_step_cost(model_name, fw, analysis.full_batch_shapes(st, num_layers), dims,
                                      num_heads=params.num_heads, gin_mlp_layers=params.gin_mlp_layers,
                                      existing_self_loops=st["self_loops"], include_backward=False,
                                      include_optimizer=False)
    buckets = kernel_buckets(cost)
    k = hidden
    d = st["max_in_degree"]
    row = {"graph": graph_name, "model": model_name, "framework": framework, "num_layers": num_layers,
           "n": st["n"], "m": st["m"], "k": k, "k_in": graph.feature_dim, "max_in_degree": d,
           "avg_degree": st["avg_degree"], **cost.to_dict(),
           "forward_parallelism": fwd.flops / fwd.depth_forward if fwd.depth_forward else float("nan"),
           "paper_work": analysis.paper_work(model_name, st["n"], st["m"], k, num_layers, d=d, K=params.gin_mlp_layers),
           "paper_depth": analysis.paper_depth(k, d, num_layers),
           "params": analysis.num_parameters(model_name, dims, num_heads=params.num_heads,
                                             gin_mlp_layers=params.gin_mlp_layers)}
    row.update({f"flops_{b}": v for b, v in buckets.items()})
    return row


#: Kernel buckets shared by predictions and profiler measurements.
BUCKETS = ("dense", "sparse", "elementwise", "overhead")


_PRED_BUCKET = {"gemm": "dense", "spmm": "sparse", "gather": "sparse", "scatter": "sparse", "sddmm": "sparse"}


_PROF_BUCKET = {timing.GEMM: "dense", timing.SPMM: "sparse", timing.SDDMM: "sparse", timing.INDEXING: "sparse",
                timing.ELEMENTWISE: "elementwise", timing.REDUCTION: "elementwise", timing.MEMORY: "elementwise",
                timing.OVERHEAD: "overhead", timing.OTHER: "overhead", timing.COMMUNICATION: "overhead"}


def kernel_buckets(cost: analysis.StepCost) -> dict[str, float]:
    """Flops (forward + backward + optimizer) per bucket of :data:`BUCKETS` (``overhead`` is 0:
    the work model counts none)."""
    out = dict.fromkeys(BUCKETS, 0.0)
    for k in cost.kernels:
        out[_PRED_BUCKET.get(k.op, "elementwise")] += k.flops + k.bwd_flops
    return out


def measure_kernel_profile(graph_name: str, model_name: str, framework: str, num_layers: int,
                           graph: HomogeneousGraph, params, device: torch.device) -> list[dict]:
    """Profile ``params.profile_steps`` training steps (``torch.profiler``) and attribute every
    op's self time to a kernel class (:func:`studylib.timing.kernel_class_breakdown`) and a
    bucket of :data:`BUCKETS`. Rows ``{kernel_class, bucket, op, seconds}`` (seconds per step)."""

    hidden = hidden_dim_for(graph_name, graph, params)
    _, step = build_training(model_name, framework, graph, hidden, num_layers, params, device)
    for _ in range(max(1, params.warmup_steps)):
        step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(params.profile_steps):
            step()
        timing.synchronize(device)
    df = timing.kernel_class_breakdown(prof, device)
    df["seconds"] = df.pop("self_us") * 1e-6 / params.profile_steps
    df["bucket"] = df["kernel_class"].map(_PROF_BUCKET).fillna("overhead")
    df = df.groupby(["kernel_class", "bucket", "op"], as_index=False)["seconds"].sum()
    return df.to_dict("records")


def measure_minibatch(graph_name: str, model_name: str, graph: HomogeneousGraph, params,
                      device: torch.device) -> list[dict]:
    """DGL neighbour-sampled mini-batch training (``params.batch_size`` seeds, ``params.fanouts``;
    the paper's GraphSAGE-style sampled scheme) with the model of the grid. Per timed step:
    ``sampling_seconds`` (the sampler), ``compute_seconds`` (gather inputs, forward, loss,
    backward, Adam) and the measured block shapes ``block_shapes`` (JSON: per layer
    ``[n_src, n_dst, m, max_in_degree]``, first layer first). GCN and GAT sample from the graph
    with self-loops, as their full-batch models aggregate over it."""

    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    L = len(params.fanouts)
    hidden = hidden_dim_for(graph_name, graph, params)
    model = build_homogeneous_model(model_name, "dgl", graph.feature_dim, hidden, graph.num_classes, L,
                                    num_heads=params.num_heads, gin_mlp_layers=params.gin_mlp_layers,
                                    seed=params.seed).to(device)
    g = graph.to_dgl(self_loops=model_name in SELF_LOOP_MODELS)
    sampler = dgl.dataloading.NeighborSampler([int(f) for f in params.fanouts])
    gen = torch.Generator().manual_seed(params.seed)
    perm = graph.train_idx[torch.randperm(len(graph.train_idx), generator=gen)]
    x, y = graph.features.to(device), graph.labels.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    rows = []
    total = params.warmup_steps + params.minibatch_steps
    for i in range(total):
        lo = (i * params.batch_size) % max(1, len(perm) - params.batch_size + 1)
        seeds = perm[lo:lo + params.batch_size]
        timing.synchronize(device)
        t0 = time.perf_counter()
        input_nodes, output_nodes, blocks = sampler.sample_blocks(g, seeds)
        t1 = time.perf_counter()
        blocks = [b.to(device) for b in blocks]
        out = model(blocks, x[input_nodes.to(device)])
        loss = F.cross_entropy(out, y[output_nodes.to(device)])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        timing.synchronize(device)
        t2 = time.perf_counter()
        if i >= params.warmup_steps:
            shapes = [[int(b.num_src_nodes()), int(b.num_dst_nodes()), int(b.num_edges()),
                       int(b.in_degrees().max()) if b.num_edges() else 0] for b in blocks]
            rows.append({"step": i - params.warmup_steps, "sampling_seconds": t1 - t0, "compute_seconds": t2 - t1,
                         "seconds": t2 - t0, "block_shapes": json.dumps(shapes), "batch_size": params.batch_size,
                         "fanouts": json.dumps(list(params.fanouts)), "threads": torch.get_num_threads()})
    return rows


def minibatch_predictions(mb: pd.DataFrame, graphs: GraphCache, params) -> pd.DataFrame:
    """Per mini-batch step: predicted work from its measured block shapes, and the expected shapes
    of :func:`studylib.studies.parallelism_analysis.work_depth.expected_minibatch_shapes` from the graph's measured in-degrees
    (edges and source vertices per layer, measured vs expected)."""
    rows = []

    for _, r in mb.iterrows():
        g = graphs[r["graph"]]
        gg = g.with_self_loops() if r["model"] in SELF_LOOP_MODELS else g
        shapes = [analysis.LayerShape(*s[:3], max(1, s[3])) for s in json.loads(r["block_shapes"])]
        hidden = hidden_dim_for(r["graph"], g, params)
        dims = analysis.model_dims(g.feature_dim, hidden, g.num_classes, len(shapes))
        cost = analysis.training_step_cost(r["model"], "dgl", shapes, dims, num_heads=params.num_heads,
                                           gin_mlp_layers=params.gin_mlp_layers)
        exp = analysis.expected_minibatch_shapes(gg.in_degrees().numpy(), int(r["batch_size"]),
                                                 json.loads(r["fanouts"]))
        row = {"graph": r["graph"], "model": r["model"], "step": r["step"], "compute_seconds": r["compute_seconds"],
               "sampling_seconds": r["sampling_seconds"], "flops": cost.flops, "bytes": cost.bytes}
        for li, (s, e) in enumerate(zip(shapes, exp)):
            row[f"edges_measured_{li + 1}"] = s.m
            row[f"edges_expected_{li + 1}"] = e.m
            row[f"src_measured_{li + 1}"] = s.n_src
            row[f"src_expected_{li + 1}"] = e.n_src
        rows.append(row)
    return pd.DataFrame(rows)


def partition_assignment(graph: HomogeneousGraph, num_parts: int, method: str, seed: int = 0) -> np.ndarray:
    """Vertex -> partition: ``"metis"`` (``dgl.metis_partition_assignment``, edge-cut
    minimising, balanced vertex counts) or ``"random"`` (uniform, the hash partitioning baseline).
    Raises ``ValueError`` for another method."""
    if num_parts == 1:
        return np.zeros(graph.n, dtype=np.int64)
    if method == "metis":
        dgl = require_dgl("METIS partitioning")
        with contextlib.redirect_stdout(io.StringIO()):
            a = dgl.metis_partition_assignment(graph.to_dgl(), num_parts)
        return a.numpy().astype(np.int64)
    if method == "random":
        return np.random.default_rng(seed).integers(0, num_parts, graph.n).astype(np.int64)
    raise ValueError(f"unknown partition method {method!r}; choose metis or random")


def dgl_partition_halo(graph: HomogeneousGraph, num_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition ``graph`` with ``dgl.distributed.partition_graph`` (METIS, one halo hop, as
    DistDGL does) into a temporary folder and read back each partition's halo vertex count (the
    non-inner vertices DistDGL stores and fetches) and the vertex -> partition assignment it chose.
    Returns ``(halo_per_partition [P], assignment [n])``."""

    import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        orig_nids, _ = dgl.distributed.partition_graph(graph.to_dgl(), "g", num_parts, tmp, part_method="metis",
                                                       num_hops=1, balance_edges=False, return_mapping=True)
        halo = np.zeros(num_parts, dtype=np.int64)
        assign = np.full(graph.n, -1, dtype=np.int64)
        for p in range(num_parts):
            pg = dgl.distributed.load_partition(os.path.join(tmp, "g.json"), p)[0]
            inner = pg.ndata["inner_node"].bool()
            halo[p] = int((~inner).sum())
            assign[orig_nids[pg.ndata[dgl.NID][inner]].numpy()] = p
    return halo, assign


def measure_partitions(graph_name: str, graph: HomogeneousGraph, params) -> list[dict]:
    """Partition statistics for every ``params.partition_counts`` and method (METIS and random):
    rows ``{num_parts, method, cut_edges, halo_nodes, edge_cut_fraction, replication_factor,
    edge_imbalance, max_part_edges, max_part_halo}``; METIS rows also carry ``dgl_halo_nodes`` and
    ``halo_nodes_on_dgl_assignment``: DistDGL's own partition (``partition_graph``) and this
    module's halo count on the same assignment, which must agree. Without DGL only the random
    partitions are measured (METIS partitioning needs DGL)."""
    rows = []
    methods = ("metis", "random") if dgl_available() else ("random",)
    for P in params.partition_counts:
        for method in methods:
            a = partition_assignment(graph, P, method, params.seed)
            ps = analysis.partition_statistics(graph.src, graph.dst, graph.n, a, P)
            row = {"num_parts": P, "method": method, **ps.to_dict()}
            if method == "metis" and params.dgl_partition_check and P > 1:
                halo, assign = dgl_partition_halo(graph, P)
                ps2 = analysis.partition_statistics(graph.src, graph.dst, graph.n, assign, P)
                row["dgl_halo_nodes"] = int(halo.sum())
                row["halo_nodes_on_dgl_assignment"] = ps2.total_halo_nodes
            rows.append(row)
    return rows


def communication_rows(partitions: pd.DataFrame, graphs: GraphCache, params) -> pd.DataFrame:
    """Predicted bytes per layer (:func:`studylib.studies.parallelism_analysis.work_depth.partitioned_communication`) for every
    partition in ``partitions`` (recomputed from the same deterministic assignment), model and
    framework: rows ``{graph, method, num_parts, model, framework, layer, width,
    halo_bytes_forward, halo_bytes_backward, edge_bytes_forward, edge_bytes_backward,
    allreduce_bytes}``, plus the paper's O(mk) bound per layer (``paper_bytes``: every edge cut)."""
    rows = []
    for (gname, method, P), _ in partitions.groupby(["graph", "method", "num_parts"]):
        g = graphs[gname]
        a = partition_assignment(g, int(P), method, params.seed)
        ps = analysis.partition_statistics(g.src, g.dst, g.n, a, int(P))
        hidden = hidden_dim_for(gname, g, params)
        L = params.num_layers[0]
        dims = analysis.model_dims(g.feature_dim, hidden, g.num_classes, L)
        for model in params.models:
            for fw in ("dgl", "pyg"):
                for r in analysis.partitioned_communication(model, fw, ps, dims, num_heads=params.num_heads,
                                                            gin_mlp_layers=params.gin_mlp_layers):
                    w = r["width"]
                    rows.append({"graph": gname, "method": method, "num_parts": int(P), "model": model,
                                 "framework": fw, **r,
                                 "paper_bytes": analysis.paper_communication(g.m, w) * analysis.FLOAT_BYTES
                                 if r["layer"] else float("nan")})
    return pd.DataFrame(rows)


def read_measured_communication() -> tuple[pd.DataFrame | None, str]:
    """What ``02-distributed-caching`` measured on its DistDGL partitions, when its results exist.

    Reads ``results/02-distributed-caching/partitions`` (per partition of each graph and machine
    count: DistDGL's stored ``halo_nodes``) and ``.../epochs`` (per trainer and epoch:
    ``remote_bytes``, the feature bytes pulled from other machines), keeping the plain-DistDGL
    variant (no cache, no prefetch). Returns ``(frame, note)`` with rows ``{graph, num_parts,
    quantity, value, table}``: quantity ``halo_nodes`` (summed over partitions) and
    ``remote_bytes_per_epoch`` (summed over trainers, median over epochs); ``(None, reason)``
    when there is nothing to read.
    """

    folder = results.paths.results_dir("02-distributed-caching")
    if not folder.is_dir():
        return None, f"02-distributed-caching has no results here ({folder} does not exist)"
    rows, notes = [], []
    parts = results.read_table("02-distributed-caching", "partitions")
    if parts is not None and {"graph", "machines", "halo_nodes"} <= set(parts.columns):
        parts = ok_rows(parts)
        for (g, P), d in parts.groupby(["graph", "machines"]):
            rows.append({"graph": str(g), "num_parts": int(P), "quantity": "halo_nodes",
                         "value": float(d["halo_nodes"].sum()), "table": "partitions"})
    else:
        notes.append("no partitions table with graph, machines and halo_nodes")
    ep = results.read_table("02-distributed-caching", "epochs")
    if ep is not None and {"graph", "machines", "epoch", "remote_bytes"} <= set(ep.columns):
        ep = ok_rows(ep)
        if "variant" in ep:
            ep = ep[ep["variant"].astype(str) == "distdgl"]
        key = ["graph", "machines"] + [c for c in ("network", "run") if c in ep]
        per_epoch = ep.groupby(key + ["epoch"])["remote_bytes"].sum().groupby(key).median()
        for k, v in per_epoch.groupby(level=["graph", "machines"]).median().items():
            rows.append({"graph": str(k[0]), "num_parts": int(k[1]), "quantity": "remote_bytes_per_epoch",
                         "value": float(v), "table": "epochs"})
    else:
        notes.append("no epochs table with graph, machines, epoch and remote_bytes")
    if not rows:
        return None, "02-distributed-caching's results hold nothing to compare: " + "; ".join(notes)
    df = pd.DataFrame(rows)
    return df, (f"read 02-distributed-caching: {len(df)} values for graphs {sorted(df['graph'].unique())} and "
                f"partition counts {sorted(df['num_parts'].unique())}")


def machine_limits(device: torch.device | str = "cpu", num_threads: int | None = None) -> tuple[dict | None, str]:
    """This machine's peaks from ``00-hardware``
    (:func:`studylib.limits.machine_limits`, which reads
    ``results/00-hardware/limits``), when that notebook has run here.

    Returns ``({"peak_flops_per_s", "peak_bytes_per_s", "threads", "run_id", "note"}, note)``
    with the float32 GEMM peak and the best STREAM bandwidth, or ``(None, reason)``.
    """
    dev = torch.device(device).type
    lim = limits.machine_limits(dev, num_threads, quiet=True)
    if lim is None:
        return None, (f"00-hardware has no limits for {dev} here (results/00-hardware/limits is absent): run "
                      f"`python -m studylib run 00-hardware --profile small` first")
    flops, bw = lim.peak_flops("float32"), lim.memory_bandwidth
    if not flops or not bw:
        return None, f"00-hardware's limits lack a float32 GEMM peak or a bandwidth (run {lim.run_id})"
    note = (f"00-hardware (run {lim.run_id}, {lim.threads} threads): GEMM {flops / 1e9:.1f} GFLOP/s, "
            f"{lim.bandwidth_kernel} {bw / 1e9:.1f} GB/s" + (f"; {lim.note}" if lim.note else ""))
    return {"peak_flops_per_s": float(flops), "peak_bytes_per_s": float(bw), "threads": lim.threads,
            "run_id": lim.run_id, "note": lim.note}, note


def hgnn_check() -> tuple[pd.DataFrame | None, str]:
    """Predicted work per stage of the HGNN configurations that ``01-hgnn-training`` measured, next
    to their measured stage and step times (medians over steps).

    Reads ``results/01-hgnn-training/stage_times`` and its sidecar's parameters, rebuilds each
    dataset with 01's loader and parameters, and counts the staged models' kernels
    (:func:`studylib.studies.parallelism_analysis.work_depth.hgnn_step_cost`; HAN on the metapaths 01 kept under its
    ``han_max_metapath_edges`` cap). Rows ``{model, framework, dataset, region,
    measured_s, predicted_flops, predicted_bytes}`` with regions ``feature_projection``,
    ``neighbor_aggregation``, ``semantic_fusion`` (forward) and ``step_total`` (forward +
    backward + update). Returns ``(None, reason)`` when 01 has not run or its graphs cannot be
    loaded.
    """

    st = results.read_table("01-hgnn-training", "stage_times")
    if st is None or st.empty:
        return None, "01-hgnn-training has no stage_times table here (run that notebook first)"
    side = paths.results_dir("01-hgnn-training") / "stage_times.json"
    try:
        p = json.loads(side.read_text())["parameters"]
    except (OSError, KeyError, ValueError) as exc:
        return None, f"cannot read 01-hgnn-training's parameters from {side}: {exc}"
    st = st[(st.get("status", "ok") == "ok") & st["kind"].isin(["stage", "step"])]
    med = (st.groupby(["model", "framework", "dataset", "region", "step"])["seconds"].sum()
           .groupby(["model", "framework", "dataset", "region"]).median().rename("measured_s").reset_index())
    rows, skipped = [], []
    for ds in sorted(med["dataset"].unique()):
        try:
            graph = hgnn_graphs.load_graph(ds, p.get("synthetic_scale", 1.0), p.get("seed", 0),
                                           options=(p.get("dataset_options") or {}).get(ds))
        except Exception as exc:  # dataset unavailable here (a user's graph elsewhere, say): say so
            why = str(exc).removeprefix(f"dataset {ds!r}: ")  # the spec is named once
            skipped.append(f"{ds} ({type(exc).__name__}: {why[:200]})")
            continue
        # HAN's metapaths as 01 chose them (its edge cap, when it has one), else all of the graph's
        mps = hgnn_graphs.han_metapaths(graph, p.get("han_max_metapath_edges", 0) or 0)[0]
        rel = analysis.hetero_statistics(graph)
        stats = {"rgcn": rel, "rgat": rel, "han": analysis.hetero_statistics(graph, mps)}
        for (model, fw), _ in med[med["dataset"] == ds].groupby(["model", "framework"]):
            cost = analysis.hgnn_step_cost(model, fw, stats[model], hidden_dim=p["hidden_dim"],
                                           num_layers=p["num_layers"], num_heads=p["num_heads"])
            per = analysis.stage_costs(cost)
            m = med[(med["dataset"] == ds) & (med["model"] == model) & (med["framework"] == fw)]
            for region, s in m.set_index("region")["measured_s"].items():
                if region == timing.STEP_TOTAL:
                    f, b = cost.flops, cost.bytes
                elif region in per:
                    f, b = per[region]["flops"], per[region]["bytes"]
                else:
                    continue
                rows.append({"model": model, "framework": fw, "dataset": ds, "region": region, "measured_s": s,
                             "predicted_flops": f, "predicted_bytes": b})
    if not rows:
        return None, "01-hgnn-training's graphs could not be rebuilt here: " + ", ".join(skipped)
    note = f"01-hgnn-training: {len(med[['model', 'framework', 'dataset']].drop_duplicates())} configurations"
    if skipped:
        note += "; not rebuilt: " + ", ".join(skipped)
    return pd.DataFrame(rows), note


def step_summary(step_times: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: median, quartiles and IQR of the measured step seconds
    (:func:`studylib.timing.summarize`) joined with its predictions (every configuration kept)."""
    ok = ok_rows(step_times)
    rows = []
    for key, g in ok.groupby(STEP_CONFIG):
        s = timing.summarize(g["seconds"])
        rows.append({**dict(zip(STEP_CONFIG, key)), "median_s": s["median"], "q1_s": s["q1"], "q3_s": s["q3"],
                     "iqr_s": s["iqr"], "noisy": s["noisy"], "samples": s["n"]})
    out = pd.DataFrame(rows)
    return out.merge(predictions, on=STEP_CONFIG, how="left")


def r2_log(measured, predicted) -> float:
    """Coefficient of determination of ``log(predicted)`` for ``log(measured)``:
    ``1 - sum (log t - log t_hat)^2 / sum (log t - mean log t)^2``; NaN for fewer than 2 points
    or no spread."""
    t = np.log(np.asarray(measured, dtype=float))
    p = np.log(np.asarray(predicted, dtype=float))
    if t.size < 2:
        return float("nan")
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return 1.0 - float(((t - p) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def _nnls_relative(X: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Non-negative least squares of ``X b ~ t`` in relative error (rows divided by ``t``)."""

    coef, _ = nnls(X / t[:, None], np.ones_like(t))
    return coef


def fit_models(summary: pd.DataFrame, by: tuple[str, ...] = ("model",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit measured median step time against predicted work, per group ``by``.

    Four fits per group, all reported (no configuration is dropped):

    * ``work`` (the work-depth model): ``t = c W`` with one machine constant ``c`` (seconds per
      flop), the geometric-mean ratio ``c = exp(mean(log t - log W))`` (least squares in log space);
    * ``paper_term``: the same with the paper's O-term (constants 1) instead of the counted work;
    * ``work+overhead``: ``t = t0 + c W``; ``roofline-sum``: ``t = t0 + c W + b Q`` (``Q`` =
      bytes), both by non-negative least squares in relative error.

    Returns ``(fits, residuals)``: ``fits`` has per group and fit ``c_s_per_flop``,
    ``b_s_per_byte``, ``t0_s``, ``r2_log``, ``points``, ``median_abs_error`` (median of
    ``|t_hat / t - 1|``), ``max_ratio`` and ``min_ratio`` (measured / predicted);
    ``residuals`` has per configuration ``predicted_s`` of the ``work`` fit and ``ratio``
    (measured / predicted).
    """
    fits, res = [], []
    for key, g in summary.dropna(subset=["median_s", "flops"]).groupby(list(by)):
        key = key if isinstance(key, tuple) else (key,)
        base = dict(zip(by, key))
        t = g["median_s"].to_numpy(float)
        W = g["flops"].to_numpy(float)
        Q = g["bytes"].to_numpy(float)
        variants = {}
        c = float(np.exp(np.mean(np.log(t) - np.log(W))))
        variants["work"] = (c * W, {"c_s_per_flop": c})
        cp = float(np.exp(np.mean(np.log(t) - np.log(g["paper_work"].to_numpy(float)))))
        variants["paper_term"] = (cp * g["paper_work"].to_numpy(float), {"c_s_per_flop": cp})
        b1 = _nnls_relative(np.column_stack([np.ones_like(t), W]), t)
        variants["work+overhead"] = (b1[0] + b1[1] * W, {"t0_s": b1[0], "c_s_per_flop": b1[1]})
        b2 = _nnls_relative(np.column_stack([np.ones_like(t), W, Q]), t)
        variants["roofline-sum"] = (b2[0] + b2[1] * W + b2[2] * Q,
                                    {"t0_s": b2[0], "c_s_per_flop": b2[1], "b_s_per_byte": b2[2]})
        for name, (pred, coef) in variants.items():
            pred = np.maximum(pred, 1e-12)
            ratio = t / pred
            fits.append({**base, "fit": name, **coef, "r2_log": r2_log(t, pred), "points": int(t.size),
                         "median_abs_error": float(np.median(np.abs(pred / t - 1))),
                         "max_ratio": float(ratio.max()), "min_ratio": float(ratio.min())})
        pred = variants["work"][0]
        for (_, row), p_ in zip(g.iterrows(), pred):
            res.append({**{c_: row[c_] for c_ in STEP_CONFIG}, "measured_s": row["median_s"], "predicted_s": p_,
                        "ratio": row["median_s"] / p_, "flops": row["flops"], "bytes": row["bytes"],
                        "intensity": row["flops"] / row["bytes"]})
    return pd.DataFrame(fits), pd.DataFrame(res)


def verdict_for_r2(r2: float) -> str:
    """``explains`` / ``partly`` / ``does not explain`` by :data:`R2_EXPLAINS` and :data:`R2_PARTLY`."""
    if not np.isfinite(r2):
        return "not measured"
    return "explains" if r2 >= R2_EXPLAINS else ("partly" if r2 >= R2_PARTLY else "does not explain")


def roofline_table(summary: pd.DataFrame, limits: dict | None) -> pd.DataFrame:
    """Per configuration: achieved flop rate ``W / t`` and byte rate ``Q / t``, arithmetic
    intensity ``W / Q``, and, with ``00-hardware``'s limits, the machine balance
    ``peak_flops / peak_bytes``, the roofline time ``max(W / peak_flops, Q / peak_bytes)``, which
    bound it predicts (``compute`` when intensity >= balance, else ``bandwidth``) and the measured
    time over that roofline time."""
    s = summary.dropna(subset=["median_s"]).copy()
    s["flops_per_s"] = s["flops"] / s["median_s"]
    s["bytes_per_s"] = s["bytes"] / s["median_s"]
    s["intensity"] = s["flops"] / s["bytes"]
    if limits:
        pf, pb = limits["peak_flops_per_s"], limits["peak_bytes_per_s"]
        s["balance"] = pf / pb
        s["roofline_s"] = np.maximum(s["flops"] / pf, s["bytes"] / pb)
        s["bound"] = np.where(s["intensity"] >= s["balance"], "compute", "bandwidth")
        s["measured_over_roofline"] = s["median_s"] / s["roofline_s"]
    return s


def thread_scaling_summary(scaling: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: median step time per thread count, speedup ``T(1) / T(P)`` at the largest
    ``P``, parallel efficiency ``speedup / P``, and the predicted available parallelism ``W / D``."""
    ok = ok_rows(scaling)
    med = ok.groupby(STEP_CONFIG + ["threads"])["seconds"].median().unstack("threads")
    if med.empty or med.columns.size < 2:
        return pd.DataFrame()
    p_max = int(max(med.columns))
    out = pd.DataFrame({"t1_s": med[1], "tp_s": med[p_max]}).reset_index()
    out["threads"] = p_max
    out["speedup"] = out["t1_s"] / out["tp_s"]
    out["efficiency"] = out["speedup"] / p_max
    return out.merge(predictions[STEP_CONFIG + ["parallelism", "flops", "depth"]], on=STEP_CONFIG, how="left")


def profile_split(profile: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Per profiled configuration and bucket (:data:`BUCKETS`): the measured share of the step's
    profiled time and the predicted share of its flops."""
    prof = ok_rows(profile)
    t = prof.groupby(STEP_CONFIG + ["bucket"])["seconds"].sum().rename("seconds").reset_index()
    t["time_share"] = t["seconds"] / t.groupby(STEP_CONFIG)["seconds"].transform("sum")
    pred = predictions.melt(id_vars=STEP_CONFIG, value_vars=[f"flops_{b}" for b in BUCKETS], var_name="bucket",
                            value_name="bucket_flops")
    pred["bucket"] = pred["bucket"].str.replace("flops_", "", regex=False)
    pred["flop_share"] = pred["bucket_flops"] / pred.groupby(STEP_CONFIG)["bucket_flops"].transform("sum")
    return t.merge(pred, on=STEP_CONFIG + ["bucket"], how="left")


def step_configs(params, device: torch.device) -> list[dict]:
    """Every (graph, model, framework, layers) of the grid and the real graphs; DGL is left out
    on a GPU when the installed DGL is a CPU build."""
    fws = [f for f in params.frameworks if f != "dgl" or dgl_usable(device)]
    return [{"graph": g, "model": m, "framework": f, "num_layers": L} for g in graph_names(params)
            for L in params.num_layers for m in params.models for f in fws]


def _computed_table(name: str, config_columns: list[str], params, rows_for) -> pd.DataFrame:
    """Write computed (not measured) rows through :class:`studylib.results.ResultTable`
    (atomic files, JSON provenance sidecar); configurations already there with the same
    parameters are kept. ``rows_for()`` returns all rows; only the missing ones are added."""

    table = ResultTable(NOTEBOOK, name, config_columns, params.model_dump())
    rows = rows_for()
    table.add([r for r in rows if not table.has(r)])
    return table.frame()


def predictions_table(params, device: torch.device, graphs: GraphCache) -> pd.DataFrame:
    """Predictions (:func:`predict_step`) of every step configuration, in the ``predictions``
    table (computed from the graphs, not measured)."""
    return _computed_table("predictions", STEP_CONFIG, params, lambda: [
        predict_step(c["graph"], c["model"], c["framework"], c["num_layers"], graphs[c["graph"]], params)
        for c in step_configs(params, device)])


def communication_table(partitions: pd.DataFrame, graphs: GraphCache, params) -> pd.DataFrame:
    """:func:`communication_rows` of the measured partitions, in the ``communication`` table."""
    return _computed_table("communication", ["graph", "method", "num_parts", "model", "framework", "layer"], params,
                           lambda: communication_rows(partitions, graphs, params).to_dict("records"))


def run_measurement(name: str, params, device: torch.device, graphs: GraphCache | None = None) -> pd.DataFrame:
    """Run (or resume) one measurement into ``results/05-parallelism-analysis/<name>`` and return
    the table. ``name``: ``graphs``, ``step_times``, ``kernel_profile``, ``thread_scaling``,
    ``minibatch``, ``partitions``. Raises ``ValueError`` for an unknown name."""

    graphs = graphs if graphs is not None else GraphCache(params)
    threads = torch.get_num_threads()
    cfg = STEP_CONFIG
    if name == "graphs":
        configs = [{"graph": g} for g in graph_names(params)]
        cfg = ["graph"]
        measure = lambda c: graph_rows(c["graph"], graphs[c["graph"]], params)  # noqa: E731
    elif name == "step_times":
        # shuffled (seeded), so that slow drifts of a shared machine do not line up with the grid
        configs = step_configs(params, device)
        configs = [configs[i] for i in np.random.default_rng(params.seed).permutation(len(configs))]
        measure = lambda c: measure_step_times(c["graph"], c["model"], c["framework"], c["num_layers"],  # noqa: E731
                                               graphs[c["graph"]], params, device, threads)
    elif name == "kernel_profile":
        pg = [largest_synthetic(params)] + list(params.datasets)
        configs = [c for c in step_configs(params, device) if c["graph"] in pg and c["num_layers"] == params.num_layers[0]]
        measure = lambda c: measure_kernel_profile(c["graph"], c["model"], c["framework"], c["num_layers"],  # noqa: E731
                                                   graphs[c["graph"]], params, device)
    elif name == "thread_scaling":
        counts = sorted({1, threads})
        big = largest_synthetic(params)
        configs = [{**c, "threads": t} for c in step_configs(params, device)
                   if c["graph"] == big and c["num_layers"] == params.num_layers[0] for t in counts]
        cfg = STEP_CONFIG + ["threads"]
        short = params.model_copy(update={"repeat_steps": min(params.repeat_steps, 3)})
        measure = lambda c: measure_step_times(c["graph"], c["model"], c["framework"], c["num_layers"],  # noqa: E731
                                               graphs[c["graph"]], short, device, c["threads"])
    elif name == "minibatch":
        big = largest_synthetic(params)
        configs = [{"graph": big, "model": m} for m in params.models] if dgl_usable(device) else []
        cfg = ["graph", "model"]
        measure = lambda c: measure_minibatch(c["graph"], c["model"], graphs[c["graph"]], params, device)  # noqa: E731
    elif name == "partitions":
        configs = [{"graph": g} for g in resolve_partition_graphs(params)]
        cfg = ["graph"]
        measure = lambda c: measure_partitions(c["graph"], graphs[c["graph"]], params)  # noqa: E731
    else:
        raise ValueError(f"unknown measurement {name!r} of {NOTEBOOK}")
    table = ResultTable(NOTEBOOK, name, cfg, params.model_dump())

    def on_device(c: dict) -> list[dict]:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        try:
            rows = measure(c)
        except RuntimeError as exc:  # PyTorch's CPU allocator raises RuntimeError, not MemoryError
            if any(s in str(exc) for s in ("not enough memory", "can't allocate", "out of memory")):
                raise MemoryError(str(exc)[:200]) from exc
            raise
        return [{**r, "device": device.type, "num_threads": threads, "load_1min": load} for r in rows]

    return table.sweep(configs, on_device, desc=name, oom_metric_columns=["seconds"])


def resolve_partition_graphs(params) -> list[str]:
    """``params.partition_graphs`` with ``"largest"`` replaced by the largest grid graph."""
    return [largest_synthetic(params) if g == "largest" else g for g in params.partition_graphs]


def minibatch_summary(mbp: pd.DataFrame, fits_fw: pd.DataFrame | None) -> pd.DataFrame:
    """Per model: median measured compute and sampling seconds of the mini-batch steps, median
    predicted flops, the compute time the full-batch ``work`` fit of the DGL model predicts for
    them (``c * W``) and measured / predicted; and, per layer, the median measured vs expected
    edges and source vertices (:func:`studylib.studies.parallelism_analysis.work_depth.expected_minibatch_shapes`)."""
    if mbp is None or mbp.empty:
        return pd.DataFrame()
    agg = {c: "median" for c in mbp.columns if c not in ("graph", "model", "step")}
    out = mbp.groupby(["graph", "model"]).agg(agg).reset_index()
    if fits_fw is not None and not fits_fw.empty:
        c = fits_fw[(fits_fw["fit"] == "work") & (fits_fw["framework"] == "dgl")].set_index("model")["c_s_per_flop"]
        out["predicted_compute_s"] = out["model"].map(c) * out["flops"]
        out["measured_over_predicted"] = out["compute_seconds"] / out["predicted_compute_s"]
    return out
