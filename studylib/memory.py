"""Memory estimated before work: bytes of a configuration from its parts, held against the
memory available, and configurations that will not fit refused with the numbers.

Every study builds one :class:`Estimate` per configuration from the part functions below (all
sizes are counted in bytes from element counts and dtypes, Python integers, no overflow):

- :func:`graph_bytes`: graph structure (COO, CSR, CSC arrays of an index dtype);
- :func:`feature_bytes`: node (or edge) features, ``rows x width x dtype``;
- :func:`activation_bytes`: what a training step keeps per layer for the backward pass;
- :func:`optimizer_bytes`: weights, gradients and optimizer state;
- :func:`partition_bytes`: DistDGL partitions (local + halo nodes and their edges);
- :func:`synthetic_hetero_estimate`: a synthetic heterogeneous graph before it is generated.

:func:`decide` compares an estimate with :func:`available_bytes` (psutil's available memory,
bounded by the process's cgroup limit, or a CUDA device's free memory) and returns a
:class:`Decision`; :func:`require` raises :class:`Refused` (a ``MemoryError``) when it does not
fit. In a sweep, :meth:`studylib.results.ResultTable.sweep` records a refused configuration as a
row with ``status="refused"`` (:func:`refused_row`) and goes on; a notebook whose every
configuration was refused ends with :func:`end_if_all_refused`, one line, no traceback.

The estimates are deliberately simple upper-bound-leaning sums, not a model of any allocator:
they exist to refuse a configuration that is orders of magnitude too large within a second,
instead of being killed by the kernel's OOM killer minutes later. A configuration that fits the
estimate can still run out of memory (allocator fragmentation, library workspaces); those are
recorded as ``status="oom"`` as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Share of the available memory a configuration may take (the rest: the interpreter, libraries,
#: allocator slack, the estimate's error). The same default as 03's ``max_memory_fraction``.
DEFAULT_FRACTION = 0.8

#: Tensors of a layer's output size that autograd keeps for the backward pass, per layer. A
#: message-passing layer saves the input of its feature projection (for the weight gradient),
#: the projection's output (the input of the neighbor aggregation), the aggregation's output,
#: and the non-linearity's output or mask; the backward pass then allocates gradients of the
#: same sizes one layer at a time. Four is this module's rule of thumb for that count (the
#: accounting follows Chen, Xu, Zhang, Guestrin, "Training Deep Nets with Sublinear Memory
#: Cost", arXiv 1604.06174, sec. 3: memory = sum of the feature maps kept for backward), not a
#: measured constant; pass ``saved_factor`` to change it.
SAVED_TENSORS_FACTOR = 4

#: Arrays per node and per edge of a DistDGL partition, counted at the index width (an upper
#: bound: ``inner_node``/``inner_edge`` are narrower). Per node: ``_ID`` (id in the partitioned
#: graph), ``orig_id``, ``inner_node``; per edge: source and destination (COO), ``_ID``,
#: ``orig_id``, ``inner_edge``. DGL's partition format (``dgl.distributed.partition_graph``;
#: Zheng et al., "DistDGL", IA3 2020).
PARTITION_NODE_ARRAYS = 3
PARTITION_EDGE_ARRAYS = 5

#: Per-parameter arrays of an optimizer, weights and gradients included (``torch.optim``:
#: SGD keeps none, momentum SGD one buffer, Adagrad the sum of squares, Adam/AdamW
#: ``exp_avg`` and ``exp_avg_sq``).
OPTIMIZER_ARRAYS = {"sgd": 2, "sgd_momentum": 3, "adagrad": 3, "adam": 4, "adamw": 4}

_DTYPE_BYTES = {"float64": 8, "double": 8, "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2,
                "int64": 8, "long": 8, "int32": 4, "int": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


def dtype_bytes(dtype) -> int:
    """Bytes per element of ``dtype``: a name (``"float32"``, ``"int64"``, ``"bfloat16"`` ...), a
    ``torch.dtype`` or a numpy dtype. Raises ``ValueError`` naming an unknown dtype."""
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
    else:
        size = getattr(dtype, "itemsize", None)  # torch >= 2.1 and numpy dtypes
        if isinstance(size, int) and size > 0:
            return size
        name = str(dtype).removeprefix("torch.")
    try:
        return _DTYPE_BYTES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(_DTYPE_BYTES)}") from None


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
    return int(math.ceil(value))


def _per_part(name: str, value, num_parts: int) -> list[int]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [_count(name, value)] * num_parts
    values = list(value)
    if len(values) != num_parts:
        raise ValueError(f"{name} must give one count per partition ({num_parts}), got {len(values)}")
    return [_count(f"{name}[{i}]", v) for i, v in enumerate(values)]


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------

def graph_bytes(num_nodes: int, num_edges: int, *, index_dtype="int64", formats: Iterable[str] = ("coo",)) -> int:
    """Bytes of a graph's structure.

    Per format: ``"coo"`` = source and destination per edge (``2 E``); ``"csr"`` and ``"csc"``
    = a pointer per node plus one (``N + 1``), the neighbor per edge and the edge id per edge
    (``2 E``; DGL keeps edge ids with its CSR/CSC, PyG's ``SparseTensor`` a permutation of the
    same size). All at the width of ``index_dtype``.

    Args:
        num_nodes: N, nodes (for a heterogeneous graph: the sum over relations of the destination
            (CSC) or source (CSR) counts, or simply all nodes).
        num_edges: E, edges (all relations together).
        index_dtype: dtype of the index arrays (``"int64"`` in PyG and DGL by default).
        formats: which of ``"coo"``, ``"csr"``, ``"csc"`` are materialised.

    Returns bytes (int). Raises ``ValueError`` for a negative count or an unknown format.

    Example: 100 nodes, 1000 edges, int64, COO + CSC: ``8 * (2*1000 + 101 + 2*1000) = 32808``.
    """
    n, e, w = _count("num_nodes", num_nodes), _count("num_edges", num_edges), dtype_bytes(index_dtype)
    elements = 0
    for f in formats:
        if f == "coo":
            elements += 2 * e
        elif f in ("csr", "csc"):
            elements += n + 1 + 2 * e
        else:
            raise ValueError(f"unknown graph format {f!r}; use coo, csr or csc")
    return elements * w


def feature_bytes(rows: int, width: int, dtype="float32") -> int:
    """Bytes of a feature matrix ``[rows, width]`` of ``dtype``: ``rows * width * dtype_bytes``.
    Raises ``ValueError`` for a negative count."""
    return _count("rows", rows) * _count("width", width) * dtype_bytes(dtype)


def activation_bytes(nodes: int | Sequence[int], width: int, *, num_layers: int = 1, heads: int = 1,
                     dtype="float32", saved_factor: float = SAVED_TENSORS_FACTOR,
                     edges: int | Sequence[int] = 0, edge_tensors: int = 0) -> int:
    """Bytes a training step keeps for the backward pass (activations), summed over layers.

    Per layer ``l``: ``nodes_l * width * heads * dtype_bytes * saved_factor`` (node outputs, see
    :data:`SAVED_TENSORS_FACTOR`) plus ``edges_l * heads * dtype_bytes * edge_tensors`` (per-edge
    values such as attention logits, their softmax and dropout mask: GAT-like layers keep about
    3 per edge and head; 0 for GCN/SAGE/RGCN).

    Args:
        nodes: output nodes per layer, one count for every layer (then ``num_layers`` layers) or
            a sequence (one per layer, e.g. the nodes of each mini-batch block).
        width: output width per head (the hidden width when ``heads=1``).
        num_layers: layers when ``nodes`` is one count.
        heads: attention heads (1 for non-attention layers).
        dtype: activation dtype.
        saved_factor: tensors of the output's size kept per layer.
        edges: edges per layer (one count or a sequence as ``nodes``).
        edge_tensors: per-edge tensors kept per head.

    Returns bytes (int). Raises ``ValueError`` for a negative count or mismatched lengths.

    Example: 1000 nodes, width 16, 2 layers, 1 head, float32, factor 4: ``2 * 1000*16*4*4 = 512000``.
    """
    if isinstance(nodes, (int, float)) and not isinstance(nodes, bool):
        per_nodes = [_count("nodes", nodes)] * _count("num_layers", num_layers)
    else:
        per_nodes = [_count(f"nodes[{i}]", v) for i, v in enumerate(nodes)]
    per_edges = _per_part("edges", edges, len(per_nodes)) if edge_tensors else [0] * len(per_nodes)
    b, h, w = dtype_bytes(dtype), _count("heads", heads), _count("width", width)
    if not saved_factor >= 0:
        raise ValueError(f"saved_factor must be >= 0 (got {saved_factor})")
    node_part = sum(n * w * h * b for n in per_nodes) * saved_factor
    edge_part = sum(e * h * b * _count("edge_tensors", edge_tensors) for e in per_edges)
    return int(math.ceil(node_part)) + edge_part


def optimizer_bytes(num_params: int, *, dtype="float32", optimizer: str = "adam") -> int:
    """Bytes of a model's weights, gradients and optimizer state: ``num_params * arrays *
    dtype_bytes`` with ``arrays`` from :data:`OPTIMIZER_ARRAYS` (Adam: 4). Raises ``ValueError``
    naming an unknown optimizer."""
    try:
        arrays = OPTIMIZER_ARRAYS[optimizer]
    except KeyError:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZER_ARRAYS)}") from None
    return _count("num_params", num_params) * arrays * dtype_bytes(dtype)


def partition_bytes(num_parts: int, local_nodes: int | Sequence[int], halo_nodes: int | Sequence[int],
                    local_edges: int | Sequence[int], *, feature_width: int = 0, feature_dtype="float32",
                    index_dtype="int64") -> int:
    """Bytes of DistDGL partitions, all partitions together (on one host they all live in the
    same memory).

    Per partition: ``(local + halo) * PARTITION_NODE_ARRAYS`` and ``edges * PARTITION_EDGE_ARRAYS``
    index-width arrays (:data:`PARTITION_NODE_ARRAYS`), plus the features of its local (owned)
    nodes, ``local * feature_width * dtype``; halo features are pulled on demand, not stored.

    Args:
        num_parts: partitions P (> 0).
        local_nodes, halo_nodes, local_edges: per partition, one count for all or a sequence of
            P counts; ``local_edges`` are the edges stored in a partition (with ``num_hops=1``:
            the in-edges of its local nodes). :func:`random_partition_halo_nodes` gives an
            upper-bound halo count when the partitions are not made yet.
        feature_width, feature_dtype: node features stored with the partitions.
        index_dtype: id arrays' dtype.

    Returns bytes (int). Raises ``ValueError`` for P <= 0, a negative count or a sequence of the
    wrong length.

    Example: 2 partitions of 50 local + 10 halo nodes and 300 edges, width 8, int64/float32:
    ``2 * (8*(60*3 + 300*5) + 50*8*4) = 30080``.
    """
    p = _count("num_parts", num_parts)
    if p <= 0:
        raise ValueError(f"num_parts must be > 0 (got {num_parts})")
    local = _per_part("local_nodes", local_nodes, p)
    halo = _per_part("halo_nodes", halo_nodes, p)
    edges = _per_part("local_edges", local_edges, p)
    w = dtype_bytes(index_dtype)
    total = 0
    for n_l, n_h, e in zip(local, halo, edges):
        total += w * ((n_l + n_h) * PARTITION_NODE_ARRAYS + e * PARTITION_EDGE_ARRAYS)
        total += feature_bytes(n_l, feature_width, feature_dtype)
    return total


def random_partition_halo_nodes(num_nodes: int, num_edges: int, num_parts: int) -> int:
    """Expected halo nodes of one partition when nodes are assigned to ``num_parts`` partitions
    uniformly at random: ``(N - N/P) * (1 - (1 - 1/P) ** (E/N))``, the nodes outside the
    partition with at least one edge into it, each of their ``E/N`` edges landing inside with
    probability ``1/P``. Using the mean degree makes it an upper bound for random assignment
    (the expression is concave in the degree, Jensen's inequality), and METIS, which minimises
    the edge cut, gives fewer. Returns an int (0 for one partition)."""
    n, e, p = _count("num_nodes", num_nodes), _count("num_edges", num_edges), _count("num_parts", num_parts)
    if p <= 1 or n == 0:
        return 0
    return int(math.ceil((n - n / p) * (1 - (1 - 1 / p) ** (e / n))))


# --------------------------------------------------------------------------------------------
# Estimates and decisions
# --------------------------------------------------------------------------------------------

def format_bytes(n: float) -> str:
    """``n`` bytes in binary units with three significant digits: ``'1.50 GiB'``, ``'512 B'``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Estimate:
    """Estimated bytes of one configuration, by part (``{"structure": ..., "features": ...}``).

    ``a + b`` adds two estimates part by part. :attr:`total` is the sum of the parts."""

    parts: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def __add__(self, other: Estimate) -> Estimate:
        merged = dict(self.parts)
        for k, v in other.parts.items():
            merged[k] = merged.get(k, 0) + int(v)
        return Estimate(merged)

    def describe(self) -> str:
        """``'2.31 GiB (features 2.0 GiB, structure 310 MiB)'``: the total and the parts, largest first."""
        parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in sorted(self.parts.items(), key=lambda kv: -kv[1]) if v)
        return format_bytes(self.total) + (f" ({parts})" if parts else "")


@dataclass(frozen=True)
class Decision:
    """Whether a configuration fits: the estimate held against the memory available.

    Attributes:
        what: the configuration in words (``"01-hgnn-training: synthetic graph at synthetic_scale=1e+05"``).
        estimate_bytes: the estimate's total.
        available_bytes: memory available on ``device`` when decided.
        fraction: the share of it a configuration may take.
        fits: ``estimate_bytes <= fraction * available_bytes``.
        breakdown: the estimate's parts (name -> bytes).
        device: ``"cpu"`` or ``"cuda:0"`` ...
    """

    what: str
    estimate_bytes: int
    available_bytes: int
    fraction: float
    fits: bool
    breakdown: dict[str, int]
    device: str

    def message(self) -> str:
        """One line naming the configuration, the estimate with its parts and the memory available."""
        est = Estimate(self.breakdown).describe() if self.breakdown else format_bytes(self.estimate_bytes)
        verdict = "fits in" if self.fits else "does not fit in"
        return (f"{self.what}: estimated {est}; {verdict} {self.fraction:.0%} of the "
                f"{format_bytes(self.available_bytes)} available on {self.device}")

    def row(self) -> dict:
        """Columns for a result row: ``memory_estimate_bytes``, ``memory_available_bytes``."""
        return {"memory_estimate_bytes": int(self.estimate_bytes), "memory_available_bytes": int(self.available_bytes)}


def _cgroup_limit_left() -> int | None:
    """Bytes the process's cgroup v2 may still use (``memory.max - memory.current``), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        rel = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        folder = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def available_bytes(device="cpu") -> int:
    """Memory available now on ``device`` (bytes).

    CPU: ``psutil.virtual_memory().available`` (free memory plus reclaimable page cache), or less
    when the process's cgroup v2 limit leaves less (containers, ``systemd-run -p MemoryMax``).
    CUDA: ``torch.cuda.mem_get_info(device)[0]`` (free device memory).
    """
    kind = str(device)
    if kind.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(kind))
        return int(free)
    import psutil

    avail = int(psutil.virtual_memory().available)
    left = _cgroup_limit_left()
    return min(avail, left) if left is not None else avail


def _as_estimate(estimate: Estimate | Mapping[str, int] | int) -> Estimate:
    if isinstance(estimate, Estimate):
        return estimate
    if isinstance(estimate, Mapping):
        return Estimate({str(k): int(v) for k, v in estimate.items()})
    return Estimate({"total": int(estimate)})


def decide(estimate: Estimate | Mapping[str, int] | int, *, what: str, device="cpu",
           fraction: float = DEFAULT_FRACTION, available: int | None = None) -> Decision:
    """Hold ``estimate`` (an :class:`Estimate`, a dict of parts or a byte count) against
    ``fraction`` of the memory ``available`` on ``device`` (default: :func:`available_bytes`
    now). Returns the :class:`Decision`. Raises ``ValueError`` for a fraction outside (0, 1]."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1] (got {fraction})")
    est = _as_estimate(estimate)
    avail = int(available if available is not None else available_bytes(device))
    return Decision(what=what, estimate_bytes=est.total, available_bytes=avail, fraction=float(fraction),
                    fits=est.total <= fraction * avail, breakdown=dict(est.parts), device=str(device))


class _OneLine:
    """IPython shows ``_render_traceback_()`` instead of the traceback: the message alone."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class Refused(_OneLine, MemoryError):
    """A configuration refused before it ran: its estimate exceeds the memory available.

    A ``MemoryError`` so that code which already treats running out of memory as an outcome
    (not a crash) does so for a refusal too. ``decision`` holds the numbers."""

    def __init__(self, decision: Decision):
        super().__init__(decision.message())
        self.decision = decision


class AllRefused(_OneLine, RuntimeError):
    """Every configuration of a notebook (or of one of its measurements) was refused."""


def require(estimate: Estimate | Mapping[str, int] | int, *, what: str, device="cpu",
            fraction: float = DEFAULT_FRACTION, available: int | None = None) -> Decision:
    """:func:`decide`, raising :class:`Refused` (message: the estimate with its parts and the
    memory available) when the configuration does not fit; returns the decision otherwise."""
    decision = decide(estimate, what=what, device=device, fraction=fraction, available=available)
    if not decision.fits:
        raise Refused(decision)
    return decision


def refused_row(config: Mapping, decision: Decision, metric_columns: Iterable[str] = ()) -> dict:
    """The result row of a refused configuration: ``config``'s columns, ``status="refused"``, the
    decision's message as ``error``, ``memory_estimate_bytes``, ``memory_available_bytes``, and
    NaN for every metric column."""
    return {**config, "status": "refused", "error": decision.message(), **decision.row(),
            **{c: float("nan") for c in metric_columns}}


def end_if_all_refused(frame, what: str) -> None:
    """End a notebook with one clear line when every row of ``frame`` (a result table with a
    ``status`` column) is ``"refused"``: raises :class:`AllRefused` naming the count, the smallest
    estimate and the memory available (shown without a traceback in Jupyter). Returns ``None``
    when the frame is empty or anything was measured."""
    if frame is None or len(frame) == 0 or "status" not in frame:
        return
    status = frame["status"].astype(str)
    if not (status == "refused").all():
        return
    n = len(frame)
    text = f"{what}: all {n} configuration(s) refused for memory"
    if "memory_estimate_bytes" in frame and "memory_available_bytes" in frame:
        est = frame["memory_estimate_bytes"].astype(float)
        i = est.idxmin()
        text += (f"; the smallest needs an estimated {format_bytes(est[i])}, "
                 f"{format_bytes(float(frame['memory_available_bytes'].loc[i]))} available")
    raise AllRefused(text + "; choose smaller sizes")


# --------------------------------------------------------------------------------------------
# Estimates of the suite's graphs
# --------------------------------------------------------------------------------------------

def synthetic_hetero_estimate(like: str = "acm", scale: float = 1.0, *, avg_degree: float | None = None,
                              feature_dim: int | None = None) -> Estimate:
    """Bytes of :func:`studylib.data.synthetic.synthetic_hetero` with the same arguments, from the
    schema alone (nothing is generated; milliseconds at any scale).

    Parts: ``structure`` (int64 source and destination per edge, reverse relations included),
    ``features`` (float32, every typed node), ``labels`` (int64 labels and split of the target
    type), ``generation`` (the generator's largest temporaries: the ``n x w`` float32 product of a
    feature matrix with its latents and mixing matrix, about six int64 arrays of the largest
    relation while drawing its edges, or five float64 copies of the ``n x classes`` label scores).
    Checked against the generator's traced peak (``tracemalloc``) in ``tests/test_memory.py``.

    Raises ``ValueError`` for an unknown ``like`` or a non-positive scale.
    """
    from studylib.data.synthetic import schema_of

    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0 (got {scale!r})")
    schema = schema_of(like)
    n = {t: max(2, int(round(c * scale))) for t, c in schema.num_nodes.items()}
    dims = {t: (int(feature_dim) if (feature_dim and w) else w) for t, w in schema.feature_dims.items()}
    edges, largest = 0, 0
    for (s_t, _, d_t), rev, count in schema.relations:
        m = round(avg_degree * n[s_t]) if avg_degree is not None else round(count * scale)
        m = int(min(max(m, 1), n[s_t] * n[d_t]))
        edges += m * (2 if rev is not None else 1)
        largest = max(largest, m)
    feats = {t: feature_bytes(n[t], w) for t, w in dims.items() if w}
    # features of type t: latent z of the target (float64, kept), a latent (float64) and its float32
    # copy, the k x w mixing matrix (float64 and float32 copies), and the product n x w (float32)
    k = min(int(schema.num_classes if schema.num_classes else 2), 32)
    feature_temps = [8 * n[schema.target] * k + 12 * n[t] * k + 20 * k * w + 4 * n[t] * w
                     for t, w in dims.items() if w]
    # labels: class scores n x C (float64) with their standardised, noise and centred copies
    label_temps = 5 * 8 * n[schema.target] * max(int(schema.num_classes), k)
    return Estimate({
        "structure": graph_bytes(sum(n.values()), edges),
        "features": sum(feats.values()),
        "labels": 8 * 2 * n[schema.target],
        "generation": max(max(feature_temps, default=0), 6 * 8 * largest, label_temps),
    })
