"""Measurements and checks of notebook ``05-parallelism-analysis``: do the work-depth and
communication models of Besta and Hoefler (IEEE TPAMI 2024, arXiv 2205.09702) predict what this
machine measures?

The models live in :mod:`studylib.studies.parallelism_analysis.work_depth`; this module measures GCN, GraphSAGE, GIN and GAT
training steps (PyG and DGL) over a grid of synthetic graphs and the real graphs of the mirror,
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

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from studylib import timing
from studylib.studies.parallelism_analysis import work_depth as analysis
from studylib.data.graph_cache import GraphCache as GraphCacheBase
from studylib.data.homogeneous import HomogeneousGraph, load_cora, synthetic_homogeneous

NOTEBOOK = "05-parallelism-analysis"
MODEL_LABELS = {"gcn": "GCN", "sage": "GraphSAGE", "gin": "GIN", "gat": "GAT"}
FRAMEWORK_LABELS = {"dgl": "DGL", "pyg": "PyG"}
REAL_DATASETS = ("cora",)
#: R^2 (log-log) at or above which one machine constant per model "explains" the measured step
#: times; at or above :data:`R2_PARTLY` it explains them "partly". Declared before measuring.
R2_EXPLAINS = 0.90
R2_PARTLY = 0.70
STEP_CONFIG = ["graph", "model", "framework", "num_layers"]


# ------------------------------------------------------------------------------------------------
# Graphs
# ------------------------------------------------------------------------------------------------

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
    ``feature_dims``) then the real datasets, in that order."""
    names = [synthetic_name(n, d, k) for n in params.synthetic_nodes for d in params.synthetic_degrees
             for k in params.feature_dims]
    return names + list(params.real_datasets)


def largest_synthetic(params) -> str:
    """The grid graph with the most edges, then the widest features (thread scaling, mini-batch,
    kernel profile)."""
    return synthetic_name(max(params.synthetic_nodes), max(params.synthetic_degrees), max(params.feature_dims))


def load_graph(name: str, params) -> HomogeneousGraph:
    """A grid graph (:func:`studylib.data.homogeneous.synthetic_homogeneous` with the run's
    ``num_classes``, ``degree_skew`` and ``seed``) or a real dataset (``"cora"``). Raises what the
    loaders raise (``DatasetUnavailableError`` names the dataset and the mirror variable)."""
    if name == "cora":
        return load_cora()
    n, d, k = parse_synthetic_name(name)
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


# ------------------------------------------------------------------------------------------------
# Training steps
# ------------------------------------------------------------------------------------------------

def dgl_usable(device: torch.device) -> bool:
    """Whether DGL models can run on ``device`` (the package index's DGL wheel is CPU-only)."""
    from studylib import machine

    return device.type == "cpu" or machine.dgl_has_cuda()


def build_training(model_name: str, framework: str, graph: HomogeneousGraph, hidden: int, num_layers: int, params,
                   device: torch.device, structure=None):
    """A model, its graph structure, inputs and an Adam optimizer on ``device``; returns
    ``(model, step)`` where ``step()`` runs one full-batch training step (forward on all vertices,
    cross-entropy on the training vertices, backward, Adam update, gradients cleared)."""
    from studylib.models.homogeneous import build_homogeneous_model

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
    import time

    from torch.utils import benchmark

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
BUCKET_LABELS = {"dense": "dense GEMM (update)", "sparse": "gather, scatter, SpMM, SDDMM, indexing (aggregation)",
                 "elementwise": "element-wise, softmax, loss, optimizer", "overhead": "framework overhead, other"}
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
    from torch.profiler import ProfilerActivity, profile

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


# ------------------------------------------------------------------------------------------------
# Sampled mini-batch (DGL NeighborSampler)
# ------------------------------------------------------------------------------------------------

def measure_minibatch(graph_name: str, model_name: str, graph: HomogeneousGraph, params,
                      device: torch.device) -> list[dict]:
    """DGL neighbour-sampled mini-batch training (``params.batch_size`` seeds, ``params.fanouts``;
    the paper's GraphSAGE-style sampled scheme) with the model of the grid. Per timed step:
    ``sampling_seconds`` (the sampler), ``compute_seconds`` (gather inputs, forward, loss,
    backward, Adam) and the measured block shapes ``block_shapes`` (JSON: per layer
    ``[n_src, n_dst, m, max_in_degree]``, first layer first). GCN and GAT sample from the graph
    with self-loops, as their full-batch models aggregate over it."""
    import time

    import dgl

    from studylib.models.homogeneous import SELF_LOOP_MODELS, build_homogeneous_model

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
    from studylib.models.homogeneous import SELF_LOOP_MODELS

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


# ------------------------------------------------------------------------------------------------
# Partitions and communication
# ------------------------------------------------------------------------------------------------

def partition_assignment(graph: HomogeneousGraph, num_parts: int, method: str, seed: int = 0) -> np.ndarray:
    """Vertex -> partition: ``"metis"`` (``dgl.metis_partition_assignment``, edge-cut
    minimising, balanced vertex counts) or ``"random"`` (uniform, the hash partitioning baseline).
    Raises ``ValueError`` for another method."""
    if num_parts == 1:
        return np.zeros(graph.n, dtype=np.int64)
    if method == "metis":
        import dgl

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
    import tempfile

    import dgl

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
    module's halo count on the same assignment, which must agree."""
    rows = []
    for P in params.partition_counts:
        for method in ("metis", "random"):
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
    from studylib import results

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


# ------------------------------------------------------------------------------------------------
# Machine limits (00-hardware) when present
# ------------------------------------------------------------------------------------------------

def machine_limits(device: torch.device | str = "cpu", num_threads: int | None = None) -> tuple[dict | None, str]:
    """This machine's peaks from ``00-hardware``
    (:func:`studylib.studies.hardware.measure.machine_limits`, which reads
    ``results/00-hardware/limits``), when that notebook has run here.

    Returns ``({"peak_flops_per_s", "peak_bytes_per_s", "threads", "run_id", "note"}, note)``
    with the float32 GEMM peak and the best STREAM bandwidth, or ``(None, reason)``.
    """
    try:
        from studylib.studies.hardware import measure as ml  # built by 00-hardware
    except ImportError:
        return None, "00-hardware is not built (studylib.studies.hardware.measure is missing)"
    dev = torch.device(device).type
    lim = ml.machine_limits(dev, num_threads, quiet=True)
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


# ------------------------------------------------------------------------------------------------
# HGNNs: predictions held against 01-hgnn-training
# ------------------------------------------------------------------------------------------------

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
    from studylib import paths, results
    from studylib.studies.hgnn_training import measure as hgnn_training

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
            graph = hgnn_training.load_graph(ds, p.get("synthetic_scale", 1.0), p.get("seed", 0))
        except Exception as exc:  # dataset unavailable here: say so
            skipped.append(f"{ds} ({type(exc).__name__})")
            continue
        # HAN's metapaths as 01 chose them (its edge cap, when it has one), else all of the graph's
        select = getattr(hgnn_training, "han_metapaths", None)
        mps = select(graph, p.get("han_max_metapath_edges", 0) or 0)[0] if select else graph.metapaths
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


# ------------------------------------------------------------------------------------------------
# Summaries and fits (tables only)
# ------------------------------------------------------------------------------------------------

def ok_rows(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows of a measurement table whose ``status`` is ``ok`` (all rows when it has none)."""
    if df is None or "status" not in df:
        return df
    return df[df["status"] == "ok"]


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
    from scipy.optimize import nnls

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


# ------------------------------------------------------------------------------------------------
# Figures (from tables only)
# ------------------------------------------------------------------------------------------------

#: One colour per model in every figure (colour-blind palette: blue, orange, green, purple).
MODEL_COLORS = {"gcn": "#0173b2", "sage": "#de8f05", "gin": "#029e73", "gat": "#cc78bc"}
SHORT_LABELS = {"gcn": "GCN", "sage": "SAGE", "gin": "GIN", "gat": "GAT"}


def _model_colors() -> dict[str, str]:
    return dict(MODEL_COLORS)


def _plain_log_ticks(ax, axis: str = "y") -> None:
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(FormatStrFormatter("%g"))
    a.set_minor_formatter(NullFormatter())


def plot_predicted_vs_measured(summary: pd.DataFrame, fits: pd.DataFrame, roof: pd.DataFrame | None = None):
    """Left: measured median step time vs counted work (log-log), one colour per model, marker per
    framework (``o`` DGL, ``s`` PyG, hollow = real graph), IQR bars, and each model's fitted line
    ``t = c W`` with its R^2 in the legend. Right: measured / predicted time of that fit vs
    arithmetic intensity (flops per byte): where the work model fails (points far from 1), with
    the machine balance of ``00-hardware`` when known."""
    import matplotlib.pyplot as plt

    colors = _model_colors()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4))
    ax, ax2 = axes
    work = fits[fits["fit"] == "work"].set_index("model")
    for model, g in summary.groupby("model"):
        c = colors.get(model)
        for fw, marker in (("dgl", "o"), ("pyg", "s")):
            for real in (False, True):
                d = g[(g["framework"] == fw) & (g["graph"].str.startswith("syn-") != real)]
                if d.empty:
                    continue
                ax.errorbar(d["flops"], d["median_s"], yerr=[d["median_s"] - d["q1_s"], d["q3_s"] - d["median_s"]],
                            fmt=marker, ms=4.5, color=c, mfc="none" if real else c, alpha=0.85, lw=0.8)
        if model in work.index:
            w = np.geomspace(g["flops"].min(), g["flops"].max(), 20)
            ax.plot(w, work.loc[model, "c_s_per_flop"] * w, color=c, lw=1.2,
                    label=f"{MODEL_LABELS.get(model, model)}: t = {work.loc[model, 'c_s_per_flop'] * 1e9:.3g} ns/flop"
                          f" · W, R² = {work.loc[model, 'r2_log']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted work W of a training step (flops, counted)")
    ax.set_ylabel("measured step time (s, median, IQR bars)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Work model: one machine constant per model")
    # residuals vs intensity
    for model, g in summary.groupby("model"):
        if model not in work.index:
            continue
        ratio = g["median_s"] / (work.loc[model, "c_s_per_flop"] * g["flops"])
        for fw, marker in (("dgl", "o"), ("pyg", "s")):
            sel = g["framework"] == fw
            ax2.scatter((g["flops"] / g["bytes"])[sel], ratio[sel], marker=marker, s=18, color=colors.get(model),
                        label=f"{MODEL_LABELS.get(model, model)} · {FRAMEWORK_LABELS[fw]}")
    ax2.axhline(1.0, color="0.4", lw=0.8)
    if roof is not None and "balance" in roof:
        ax2.axvline(float(roof["balance"].iloc[0]), color="#d62728", ls="--", lw=0.9, label="machine balance (00-hardware)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    _plain_log_ticks(ax2, "y")
    ax2.set_xlabel("arithmetic intensity W / Q (flops per byte, counted)")
    ax2.set_ylabel("measured / predicted (work fit)")
    ax2.set_title("Where the work model fails")
    ax2.legend(fontsize=6, ncol=2, loc="best")
    fig.suptitle("Predicted work vs measured training-step time (filled: synthetic grid, hollow: real graphs)")
    return fig


def plot_work_split(predictions: pd.DataFrame, split: pd.DataFrame | None):
    """Left: predicted work split into aggregation / update / other per model (median share over
    the configurations, bars split by framework), with the predicted traffic split as hatched
    bars. Right: for the profiled configurations, measured time share per kernel bucket next to
    the predicted flop share of the same bucket."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.0), gridspec_kw={"width_ratios": [1, 1.4]})
    ax = axes[0]
    p = predictions.copy()
    for part in ("aggregation", "update", "other"):
        p[f"share_{part}"] = p[f"flops_{part}"] / p["flops"]
        p[f"bshare_{part}"] = p[f"bytes_{part}"] / p["bytes"]
    med = p.groupby(["model", "framework"])[[c for c in p if c.startswith(("share_", "bshare_"))]].median()
    labels = [f"{SHORT_LABELS.get(m, m)}\n{FRAMEWORK_LABELS.get(f, f)}" for m, f in med.index]
    x = np.arange(len(med))
    cols = {"aggregation": "#d62728", "update": "#1f77b4", "other": "#7f7f7f"}
    for off, prefix, hatch, what in ((-0.2, "share_", None, "flops"), (0.2, "bshare_", "//", "bytes")):
        bottom = np.zeros(len(med))
        for part in ("aggregation", "update", "other"):
            v = med[f"{prefix}{part}"].to_numpy()
            ax.bar(x + off, v, 0.38, bottom=bottom, color=cols[part], hatch=hatch, edgecolor="white", lw=0.3,
                   label=f"{part} ({what})")
            bottom += v
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("share of a training step (median over configurations)")
    ax.set_title("Predicted: flops (solid) and bytes (hatched)")
    ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax = axes[1]
    if split is None or split.empty:
        ax.text(0.5, 0.5, "no kernel profile", ha="center", va="center", transform=ax.transAxes)
    else:
        s = split.copy()
        s["label"] = (s["model"].map(SHORT_LABELS) + " " + s["framework"].map(FRAMEWORK_LABELS) + " · "
                      + s["graph"].str.replace("syn-", "", regex=False))
        wide = s.pivot_table(index="label", columns="bucket", values="time_share").reindex(columns=list(BUCKETS))
        pred = s.pivot_table(index="label", columns="bucket", values="flop_share").reindex(columns=list(BUCKETS))
        bcol = {"dense": "#0173b2", "sparse": "#d55e00", "elementwise": "#ece133", "overhead": "#bbbbbb"}
        y = np.arange(len(wide)) * 1.0
        for vals, off, hatch, what in ((wide, 0.2, None, "measured time"), (pred, -0.2, "///", "predicted flops")):
            left = np.zeros(len(vals))
            for b in BUCKETS:
                v = vals[b].fillna(0).to_numpy()
                ax.barh(y + off, v, 0.38, left=left, color=bcol[b], hatch=hatch, edgecolor="white", lw=0.3,
                        label=f"{BUCKET_LABELS[b]} ({what})" if b != "overhead" or what == "measured time" else None)
                left += v
        ax.set_yticks(y, wide.index, fontsize=6)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of a training step (upper bar: measured time, profiler; lower hatched: predicted flops)")
        ax.set_title("Measured time vs predicted work per kernel bucket")
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.suptitle("Work split: aggregation (sparse) vs update (dense)")
    return fig


def plot_communication(comm: pd.DataFrame, partitions: pd.DataFrame, measured: pd.DataFrame | None, model: str):
    """Bytes per layer (forward, summed over layers) vs number of partitions for ``model`` with DGL's
    aggregation widths, one panel per graph: vertex-centric halo exchange (solid) and edge-centric
    messages (dashed) for METIS and random partitions, the paper's every-edge O(mk) bound (dotted), DistDGL's own METIS
    halo count (crosses), and bytes measured by ``02-distributed-caching`` when present."""
    import matplotlib.pyplot as plt

    c = comm[(comm["model"] == model) & (comm["layer"] > 0) & (comm["framework"] == "dgl")]
    graphs = list(dict.fromkeys(c["graph"]))
    fig, axes = plt.subplots(1, max(1, len(graphs)), figsize=(4.6 * max(1, len(graphs)) + 3.2, 4.0), squeeze=False,
                             layout="constrained")
    for ax, gname in zip(axes[0], graphs):
        d = c[c["graph"] == gname]
        for (method, fw), g in d.groupby(["method", "framework"]):
            per = g.groupby("num_parts")[["halo_bytes_forward", "edge_bytes_forward", "paper_bytes", "width"]].sum()
            col = "#1f77b4" if method == "metis" else "#ff7f0e"
            ax.plot(per.index, per["halo_bytes_forward"], "-o", color=col, ms=3,
                    label=f"{method}: halo vertices (vertex-centric)")
            ax.plot(per.index, per["edge_bytes_forward"], "--", color=col,
                    label=f"{method}: cut edges (edge-centric)")
            if method == "metis" and fw == "dgl":
                ax.plot(per.index, per["paper_bytes"], ":", color="0.3", label="paper O(mk): every edge")
        pm = partitions[(partitions["graph"] == gname) & (partitions["method"] == "metis")]
        if "dgl_halo_nodes" in pm and pm["dgl_halo_nodes"].notna().any():
            w = d[(d["method"] == "metis") & (d["framework"] == "dgl")].groupby("num_parts")["width"].sum()
            q = pm.dropna(subset=["dgl_halo_nodes"]).set_index("num_parts")["dgl_halo_nodes"]
            ax.plot(q.index, q * w.reindex(q.index) * analysis.FLOAT_BYTES, "x", color="k", ms=7,
                    label="DistDGL partition_graph: its halo vertices x width")
        if measured is not None and not measured.empty:
            mm = measured[(measured["graph"].str.lower() == gname.lower())]
            rb = mm[mm["quantity"] == "remote_bytes_per_epoch"]
            if not rb.empty:
                ax.plot(rb["num_parts"], rb["value"], "D", color="#2ca02c", ms=5,
                        label="02 measured: remote feature bytes per epoch (mini-batch DistDGL)")
            hn = mm[mm["quantity"] == "halo_nodes"]
            w = d[(d["method"] == "metis") & (d["framework"] == "dgl")].groupby("num_parts")["width"].sum()
            if not hn.empty:
                ax.plot(hn["num_parts"], hn["value"] * hn["num_parts"].map(w).to_numpy() * analysis.FLOAT_BYTES, "+",
                        color="#2ca02c", ms=9, label="02's DistDGL partitions: halo vertices x width")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("partitions P")
        ax.set_ylabel("bytes per training step, forward, all layers")
        ax.set_title(gname)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside right center")
    fig.suptitle(f"Communication volume of partitioned full-batch training ({MODEL_LABELS.get(model, model)}, DGL "
                 f"widths)")
    return fig


def plot_parallelism(predictions: pd.DataFrame, scaling: pd.DataFrame | None = None):
    """Left: available parallelism W / D of a training step per model and graph (log scale; one
    colour per model, grid graphs ordered by edges), with the machine's thread count as a line.
    Right: measured speedup with all threads vs 1 thread per model and framework, against the
    thread count (Brent: ``T_P <= W / P + D``, so ``W / D >> P`` predicts ``speedup ~ P``)."""
    import matplotlib.pyplot as plt

    colors = _model_colors()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.0), gridspec_kw={"width_ratios": [1.6, 1]})
    ax = axes[0]
    p = predictions[predictions["framework"] == "dgl"] if (predictions["framework"] == "dgl").any() else predictions
    order = p.groupby("graph")["m"].first().sort_values().index.tolist()
    Ls = sorted(p["num_layers"].unique())
    x = {g: i for i, g in enumerate(order)}
    for model, g in p.groupby("model"):
        for li, L in enumerate(Ls):
            d = g[g["num_layers"] == L]
            ax.plot([x[v] for v in d["graph"]], d["parallelism"], "o" if li == 0 else "^", color=colors.get(model),
                    ms=4, label=f"{MODEL_LABELS.get(model, model)} L={L}", ls="none")
    ax.axhline(torch.get_num_threads(), color="#d62728", ls="--", lw=0.8, label="threads here")
    ax.set_xticks(range(len(order)), [o.replace("syn-", "") for o in order], rotation=60, fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("available parallelism W / D (training step)")
    ax.set_title("Work / depth per model and graph (DGL kernels)")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    if scaling is None or scaling.empty:
        ax.text(0.5, 0.5, "thread scaling not measured", ha="center", va="center", transform=ax.transAxes)
    else:
        s = scaling.copy()
        s["label"] = s["model"].map(MODEL_LABELS) + " · " + s["framework"].map(FRAMEWORK_LABELS)
        y = np.arange(len(s))
        ax.barh(y, s["speedup"], color=[colors.get(m) for m in s["model"]])
        ax.axvline(float(s["threads"].iloc[0]), color="#d62728", ls="--", lw=0.8, label="ideal (P)")
        ax.axvline(1.0, color="0.5", lw=0.8)
        ax.set_yticks(y, s["label"], fontsize=7)
        ax.set_xlabel(f"speedup T(1) / T({int(s['threads'].iloc[0])}) on {s['graph'].iloc[0]}")
        ax.set_title("Measured thread scaling")
        ax.legend(fontsize=7)
    fig.suptitle("Available parallelism (work-depth model) and what this machine uses of it")
    return fig


# ------------------------------------------------------------------------------------------------
# Findings
# ------------------------------------------------------------------------------------------------

def evaluate_findings(summary: pd.DataFrame | None, fits: pd.DataFrame | None, fits_fw: pd.DataFrame | None,
                      split: pd.DataFrame | None, scaling: pd.DataFrame | None, partitions: pd.DataFrame | None,
                      comm: pd.DataFrame | None, measured_comm: pd.DataFrame | None, comm_note: str,
                      hgnn: pd.DataFrame | None,
                      hgnn_note: str, roof: pd.DataFrame | None = None, limits_note: str = "",
                      load: float | None = None, cores: int | None = None) -> pd.DataFrame:
    """The paper's claims (it has no experiments of its own) checked against this run's tables.

    One row per finding: ``finding``, ``verdict`` (``reproduced`` / ``partly`` / ``not reproduced``
    / ``not measured``), ``evidence`` (the numbers). The first findings are one per model: does
    training-step time follow the counted work with one machine constant (log-log R^2 of the
    ``work`` fit at least :data:`R2_EXPLAINS`: reproduced; at least :data:`R2_PARTLY`: partly)?
    Every configuration measured is in the fit. ``load`` (median 1-minute load average during the
    step timings) and ``cores`` (logical cores) add a caveat to the timing-based findings when
    other processes competed for the cores (load above the core count).
    """
    out = []
    caveat = ""
    if load is not None and cores and np.isfinite(load) and load > cores:
        caveat = (f" [caveat: the timings ran under a load average of {load:.1f} on {cores} logical cores, i.e. other "
                  f"processes competed for the cores]")

    def add(finding, verdict, evidence, timed=False):
        out.append({"finding": finding, "verdict": verdict, "evidence": evidence + (caveat if timed else "")})

    # F1 (per model): time proportional to work
    if fits is not None and not fits.empty:
        for model in [m for m in analysis.MODELS if m in set(fits["model"])]:
            f = fits[fits["model"] == model].set_index("fit")
            w = f.loc["work"]
            v = verdict_for_r2(w["r2_log"])
            verdict = {"explains": "reproduced", "partly": "partly", "does not explain": "not reproduced"}.get(v, v)
            ev = (f"{int(w['points'])} configurations, one constant c = {w['c_s_per_flop'] * 1e9:.3g} ns/flop: "
                  f"R² (log-log) = {w['r2_log']:.3f}, median |error| {w['median_abs_error']:.0%}, measured/predicted "
                  f"{w['min_ratio']:.2f}-{w['max_ratio']:.2f}; paper O-term instead of counted work: R² = "
                  f"{f.loc['paper_term', 'r2_log']:.3f}; with a fixed overhead t0 = {f.loc['work+overhead', 't0_s'] * 1e3:.2f} "
                  f"ms: R² = {f.loc['work+overhead', 'r2_log']:.3f}; flops + bytes + t0: R² = "
                  f"{f.loc['roofline-sum', 'r2_log']:.3f}")
            if fits_fw is not None and not fits_fw.empty:
                per = fits_fw[(fits_fw["model"] == model) & (fits_fw["fit"] == "work")]
                ev += "; per framework: " + ", ".join(
                    f"{FRAMEWORK_LABELS.get(r.framework, r.framework)} R² = {r.r2_log:.3f}" for r in per.itertuples())
            add(f"{MODEL_LABELS[model]}: training-step time is proportional to the work W = O(Lmk + Lnk²) "
                f"(the work-depth model {v} the measurements here)", verdict, ev, timed=True)
    else:
        add("Training-step time is proportional to the work W = O(Lmk + Lnk²)", "not measured", "no step times")

    # F2: the dense update dominates work when k exceeds the average degree -- does time follow?
    f2 = ("The dense update (O(nk²)) outweighs the sparse aggregation (O(mk)) when k exceeds the average degree, "
          "in work and in measured time")
    if split is not None and not split.empty:
        w = split.pivot_table(index=STEP_CONFIG, columns="bucket", values=["time_share", "flop_share"])
        w = w.reset_index()
        rows = []
        for _, r in w.iterrows():
            rows.append({"pred_dense_wins": r[("flop_share", "dense")] > r[("flop_share", "sparse")],
                         "meas_dense_wins": r[("time_share", "dense")] > r[("time_share", "sparse")],
                         "sparse_time": r[("time_share", "sparse")], "sparse_flops": r[("flop_share", "sparse")]})
        d = pd.DataFrame(rows)
        agree = int((d["pred_dense_wins"] == d["meas_dense_wins"]).sum())
        verdict = "reproduced" if agree == len(d) else ("partly" if agree > 0 else "not reproduced")
        add(f2, verdict, f"the larger of dense vs sparse matches between predicted flops and measured time in {agree} of "
                         f"{len(d)} profiled configurations; sparse kernels: median {d['sparse_flops'].median():.0%} of "
                         f"predicted flops but {d['sparse_time'].median():.0%} of measured time", timed=True)
    else:
        add(f2, "not measured", "no kernel profile")

    # F3: W/D >> P, so P threads give ~P speedup (Brent)
    f3 = "Available parallelism W/D far exceeds the cores, so P threads give close to P-fold speedup (Brent's bound)"
    if scaling is not None and not scaling.empty:
        P = int(scaling["threads"].iloc[0])
        eff = scaling["efficiency"]
        good = int((eff >= 0.8).sum())
        verdict = "reproduced" if good == len(eff) else ("partly" if good > 0 else "not reproduced")
        add(f3, verdict, f"W/D from {scaling['parallelism'].min():.3g} to {scaling['parallelism'].max():.3g} (>> {P}); "
                         f"speedup with {P} threads: median {scaling['speedup'].median():.2f} (efficiency "
                         f"{eff.min():.0%}-{eff.max():.0%}); efficiency >= 80% in {good} of {len(eff)} configurations",
            timed=True)
    else:
        add(f3, "not measured", "thread scaling not run (or only one thread available)")

    # F4: communication grows with the cut, bounded by O(mk)
    f4 = ("Communication of partitioned training follows the edge cut: it grows with the number of partitions "
          "and stays below the O(mk) bound; METIS cuts less than random partitioning")
    if partitions is not None and not partitions.empty:
        ev, oks = [], []
        for gname, g in partitions.groupby("graph"):
            for method, gm in g.groupby("method"):
                gm = gm.sort_values("num_parts")
                inc = bool(np.all(np.diff(gm["cut_edges"].to_numpy()) >= 0))
                below = bool((gm["cut_edges"] <= gm["m"]).all() and (gm["halo_nodes"] <= gm["cut_edges"]).all())
                oks.append(inc and below)
                ev.append(f"{gname} {method}: cut fraction " + " → ".join(f"{v:.2f}" for v in gm["edge_cut_fraction"]))
            me = g[g["method"] == "metis"].set_index("num_parts")["cut_edges"]
            ra = g[g["method"] == "random"].set_index("num_parts")["cut_edges"]
            both = me.index.intersection(ra.index)
            oks.append(bool((me[both] <= ra[both]).all()))
            if "dgl_halo_nodes" in g:
                chk = g.dropna(subset=["dgl_halo_nodes"])
                if not chk.empty:
                    same = bool((chk["dgl_halo_nodes"] == chk["halo_nodes_on_dgl_assignment"]).all())
                    oks.append(same)
                    ev.append(f"{gname}: DistDGL's halo counts {'equal' if same else 'differ from'} the predicted ones "
                              f"on its own partitions ({', '.join(str(int(v)) for v in chk['dgl_halo_nodes'])})")
        verdict = "reproduced" if all(oks) else ("partly" if any(oks) else "not reproduced")
        add(f4, verdict, "; ".join(ev) + f" (P = {', '.join(str(int(p)) for p in sorted(partitions['num_parts'].unique()))})")
    else:
        add(f4, "not measured", "no partitions")

    # F5: predicted vs measured bytes (02)
    f5 = ("The halo vertices predicted from a METIS partition (which set the bytes of each layer) match those of "
          "02-distributed-caching's DistDGL partitions (within 10%)")
    if measured_comm is None or measured_comm.empty:
        add(f5, "not measured", comm_note)
    elif partitions is None or partitions.empty:
        add(f5, "not measured", f"{comm_note}; no partitions here to compare with")
    else:
        mine = partitions[partitions["method"] == "metis"].set_index(["graph", "num_parts"])["halo_nodes"]
        theirs = measured_comm[measured_comm["quantity"] == "halo_nodes"]
        ratios, ev = [], []
        for r in theirs.itertuples():
            if (r.graph, r.num_parts) in mine.index:
                q = r.value / mine[(r.graph, r.num_parts)]
                ratios.append(q)
                ev.append(f"{r.graph} P={r.num_parts}: 02 {int(r.value)} vs predicted {int(mine[(r.graph, r.num_parts)])} "
                          f"halo vertices")
        rb = measured_comm[measured_comm["quantity"] == "remote_bytes_per_epoch"]
        if not rb.empty:
            ev.append("02's mini-batch remote feature traffic per epoch: " + ", ".join(
                f"{r.graph} P={r.num_parts}: {r.value / 2**20:.1f} MiB" for r in rb.itertuples())
                + " (sampled mini-batches fetch a subset of the halo per batch, so these bytes are shown, not fitted)")
        if not ratios:
            add(f5, "not measured", f"{comm_note}; none of its (graph, partitions) were partitioned here"
                + ("; " + "; ".join(ev) if ev else ""))
        else:
            within = sum(0.9 <= x <= 1.1 for x in ratios)
            verdict = "reproduced" if within == len(ratios) else ("partly" if within else "not reproduced")
            add(f5, verdict, f"{comm_note}; " + "; ".join(ev))

    # F6: HGNN sums over relations explain 01's steps
    f6 = "HGNN work summed over relations / metapaths orders 01-hgnn-training's models as their measured steps"
    if hgnn is None or hgnn.empty:
        add(f6, "not measured", hgnn_note)
    else:
        st = hgnn[hgnn["region"] == timing.STEP_TOTAL]
        ev, agree, total = [], 0, 0
        for (fw, ds), g in st.groupby(["framework", "dataset"]):
            if len(g) < 2:
                continue
            pr = g.sort_values("predicted_flops")["model"].tolist()
            me = g.sort_values("measured_s")["model"].tolist()
            total += 1
            agree += int(pr == me)
            ev.append(f"{fw}/{ds}: predicted order {' < '.join(pr)}, measured {' < '.join(me)}")
        na = hgnn[hgnn["region"] == timing.NEIGHBOR_AGGREGATION].set_index(["model", "framework", "dataset"])
        fwd = hgnn[hgnn["region"].isin(["feature_projection", "neighbor_aggregation", "semantic_fusion"])]
        tot = fwd.groupby(["model", "framework", "dataset"])[["measured_s", "predicted_flops"]].sum()
        if not na.empty:
            sh_t = (na["measured_s"] / tot["measured_s"]).median()
            sh_f = (na["predicted_flops"] / tot["predicted_flops"]).median()
            ev.append(f"neighbour aggregation: median {sh_f:.0%} of predicted forward flops, {sh_t:.0%} of measured "
                      f"forward time")
        verdict = "not measured" if total == 0 else (
            "reproduced" if agree == total else ("partly" if agree > 0 else "not reproduced"))
        add(f6, verdict, f"{hgnn_note}; " + "; ".join(ev))

    # F7: roofline with 00-hardware
    f7 = "Where the work model fails, the configuration is bandwidth bound (roofline with 00-hardware's peaks)"
    if roof is not None and "bound" in roof and fits is not None:
        add(f7, "partly" if (roof["bound"] == "bandwidth").any() else "not reproduced",
            f"{int((roof['bound'] == 'bandwidth').sum())} of {len(roof)} configurations have intensity below the "
            f"machine balance {float(roof['balance'].iloc[0]):.2f} flop/byte; measured / roofline time median "
            f"{roof['measured_over_roofline'].median():.1f}")
    else:
        add(f7, "not measured", limits_note or "00-hardware's limits are absent")
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------

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
    from studylib.results import ResultTable

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
    from studylib.results import ResultTable

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
        pg = [largest_synthetic(params)] + list(params.real_datasets)
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
