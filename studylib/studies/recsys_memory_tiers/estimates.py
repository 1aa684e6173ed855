"""Memory estimates of the configurations of ``04-recsys-memory-tiers`` (:mod:`studylib.memory`),
made before a configuration runs so that one that cannot fit is refused with the numbers instead of
being killed by the kernel."""

from __future__ import annotations

from studylib import memory
from studylib.data.recsys import SYNTHETIC_PRESETS

#: Saved ``N x d`` tensors per layer of a full-graph step (see :func:`full_graph_estimate`).
SAVED_PER_LAYER = {"lightgcn": 1.0, "ngcf": 8.0}


def full_graph_estimate(model: str, num_nodes: int, num_train: int, num_layers: int, dim: int,
                        batch_size: int = 2048) -> memory.Estimate:
    """Bytes of one full-graph training step of ``model`` (fp32, int64 ids), by part.

    ``E = 2 * num_train`` directed edges, ``N = num_nodes``, ``d = dim``, ``L = num_layers``:

    * ``graph``: COO ids, and the CSR and CSC DGL builds for the SpMM and its transpose
      (:func:`studylib.memory.graph_bytes`), plus one fp32 weight per edge;
    * ``embeddings``: the ``N x d`` table with its gradient and Adam's two moments
      (:func:`studylib.memory.optimizer_bytes`, 4 arrays);
    * ``activations``: LightGCN keeps ``L`` layer outputs plus two gradient buffers
      (``N d (L + 2)``); NGCF about eight ``N x d`` tensors per layer (neighbour sum, self + neighbour
      sum, the two linear maps, the element-wise term, their sum, LeakyReLU, normalised output) plus
      the SDDMM's two transient ``E x d`` edge tensors;
    * ``weights``: NGCF's ``2 L`` linear layers with gradients and Adam moments;
    * ``batch``: the batch's three gathered ``B x d`` embeddings and their gradients.

    Returns a :class:`studylib.memory.Estimate` whose total equals the tensor count of
    :func:`studylib.studies.recsys_memory_tiers.measure.predicted_footprint_bytes` (the model the
    footprint sweep calibrates). Raises ``ValueError`` for an unknown model or a negative count.
    """
    if model not in SAVED_PER_LAYER:
        raise ValueError(f"unknown model {model!r}; choose from {sorted(SAVED_PER_LAYER)}")
    n, e, d, L = int(num_nodes), 2 * int(num_train), int(dim), int(num_layers)
    if min(n, e, d, L, batch_size) < 0:
        raise ValueError(f"counts must be >= 0 (got nodes {n}, edges {e}, dim {d}, layers {L}, batch {batch_size})")
    parts = {"graph": memory.graph_bytes(n, e, formats=("coo", "csr", "csc")) + memory.feature_bytes(e, 1),
             "embeddings": memory.optimizer_bytes(n * d)}
    if model == "lightgcn":
        parts["activations"] = memory.activation_bytes(n, d, num_layers=1, saved_factor=L + 2)
    else:
        parts["activations"] = (memory.activation_bytes(n, d, num_layers=L, saved_factor=8.0)
                                + memory.activation_bytes(0, d, num_layers=1, edges=e, edge_tensors=2 * d))
        parts["weights"] = memory.optimizer_bytes(2 * L * (d * d + d))
    parts["batch"] = memory.feature_bytes(3 * 2 * batch_size, d)
    return memory.Estimate(parts)


def preset_counts(preset: str, scale: float) -> tuple[int, int]:
    """``(num_nodes, num_train)`` of :func:`studylib.data.recsys.synthetic_like` at ``scale``
    (80% of the interactions train), known before the graph is generated. Raises ``ValueError``
    for an unknown preset."""
    if preset not in SYNTHETIC_PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; known: {sorted(SYNTHETIC_PRESETS)}")
    p = SYNTHETIC_PRESETS[preset]
    nu, ni = max(2, round(p["num_users"] * scale)), max(2, round(p["num_items"] * scale))
    ne = max(1, min(round(p["num_interactions"] * scale), nu * ni // 2))
    return nu + ni, int(0.8 * ne)


def distributed_estimate(model: str, num_nodes: int, num_train: int, num_layers: int, dim: int, num_machines: int,
                         batch_size: int = 2048, fanout: int = 10) -> memory.Estimate:
    """Bytes of a one-host DistDGL run (all emulated machines share this host's memory), by part:
    ``partitions`` (:func:`studylib.memory.partition_bytes` with the random-assignment halo bound
    :func:`studylib.memory.random_partition_halo_nodes`, METIS gives fewer), ``embeddings`` (the
    distributed table and its sparse Adam state, 3 arrays of ``N x d``), and ``minibatches``: per
    trainer the sampled blocks' activations, at most ``min(N, seeds * 3 * (fanout + 1) ** L)``
    input nodes per layer with NGCF's or LightGCN's saved tensors. Raises ``ValueError`` for bad
    counts."""
    if model not in SAVED_PER_LAYER:
        raise ValueError(f"unknown model {model!r}; choose from {sorted(SAVED_PER_LAYER)}")
    n, e, p = int(num_nodes), 2 * int(num_train), int(num_machines)
    halo = memory.random_partition_halo_nodes(n, e, p)
    parts = {"partitions": memory.partition_bytes(p, n // p + 1, halo, e // p + 1),
             "embeddings": memory.feature_bytes(n, dim) * 3}
    seeds = max(1, batch_size // p)
    f = (fanout if fanout > 0 else max(1, e // max(1, n))) + 1
    nodes = min(n, seeds * 3 * f ** int(num_layers))
    parts["minibatches"] = p * memory.activation_bytes(nodes, dim, num_layers=num_layers,
                                                       saved_factor=SAVED_PER_LAYER[model] + 2)
    return memory.Estimate(parts)


def synthetic_graph_estimate(preset: str, scale: float) -> memory.Estimate:
    """Bytes of generating a ``synthetic-<preset>`` graph at ``scale``
    (:func:`studylib.data.recsys.synthetic_bipartite`), by part, known before it is generated:
    ``structure`` (the interactions as int64 COO, :func:`studylib.memory.graph_bytes`) and
    ``generator``: the Zipf weights of both sides (float64 per node) and the drawn pairs (two
    int64 draws of 1.3 times the interactions, their keys and ``np.unique``'s sorted copy, about
    48 bytes per interaction). Raises ``ValueError`` for an unknown preset."""
    n, n_train = preset_counts(preset, scale)
    inter = max(1, round(n_train / 0.8))
    return memory.Estimate({"structure": memory.graph_bytes(n, inter),
                            "generator": 8 * n + 48 * inter})


def interaction_file_estimate(num_nodes: int, num_interactions: int) -> memory.Estimate:
    """Bytes of reading ``num_interactions`` interactions from text files (the paper's datasets,
    by their published counts), by part: ``structure`` (int64 COO) and ``parsing`` -- about 100
    bytes of Python objects per interaction, the readers of :mod:`studylib.data.recsys` being
    line-by-line Python (the figure :func:`studylib.data.specs.estimate` uses for user files).
    Raises ``ValueError`` for negative counts."""
    if min(num_nodes, num_interactions) < 0:
        raise ValueError(f"counts must be >= 0 (got nodes {num_nodes}, interactions {num_interactions})")
    return memory.Estimate({"structure": memory.graph_bytes(num_nodes, num_interactions),
                            "parsing": 100 * int(num_interactions)})
