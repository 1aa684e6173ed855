"""Homogeneous GNNs (GCN, GraphSAGE-mean, GIN, GAT) built from the frameworks' own layers.

One builder, :func:`build_homogeneous_model`, and one forward interface for both frameworks::

    model = build_homogeneous_model("gat", "pyg", in_dim=1433, hidden_dim=64, out_dim=7, num_layers=2)
    structure = model.prepare_graph(graph)          # DGL: a DGLGraph; PyG: edge_index [2, m]
    logits = model(structure, graph.features)       # float32 [n, out_dim]

======  ==========================================  ===========================================
model   PyG layer                                   DGL layer
======  ==========================================  ===========================================
gcn     ``GCNConv`` (symmetric norm, self-loops)    ``GraphConv(norm="both")`` on the graph with
                                                    self-loops added
sage    ``SAGEConv(aggr="mean")``                   ``SAGEConv("mean")``
gin     ``GINConv(MLP, eps=0)`` (sum)               ``GINConv(MLP, "sum")``
gat     ``GATConv`` (heads concatenated, adds       ``GATConv`` on the graph with self-loops added
        self-loops; last layer 1 head)              (last layer 1 head)
======  ==========================================  ===========================================

Between layers: ReLU (ELU for GAT, as in Velickovic et al., ICLR 2018) and dropout. GIN's MLP has
``gin_mlp_layers`` linear layers (``K`` of Besta and Hoefler) with ReLU between them. Hidden GAT
layers have ``num_heads`` heads of ``hidden_dim // num_heads`` features each (concatenated).

The layer widths, self-loop handling and head counts here are exactly what
:mod:`studylib.studies.parallelism_analysis.work_depth` counts flops and bytes for (:attr:`HomogeneousGNN.dims`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studylib.optional import require_dgl

MODELS = ("gcn", "sage", "gin", "gat")
FRAMEWORKS = ("dgl", "pyg")

#: Models whose layers aggregate over the graph with one self-loop per vertex added.
SELF_LOOP_MODELS = frozenset({"gcn", "gat"})


def _check(what: str, value: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


def _mlp(in_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = in_dim
    for i in range(layers):
        mods.append(nn.Linear(d, out_dim))
        if i < layers - 1:
            mods.append(nn.ReLU())
        d = out_dim
    return nn.Sequential(*mods)


def _make_conv(name: str, framework: str, f_in: int, f_out: int, heads: int, gin_mlp_layers: int) -> nn.Module:
    if framework == "pyg":
        from torch_geometric import nn as gnn  # lazy: PyG's import is heavy and loads its optional extensions

        if name == "gcn":
            return gnn.GCNConv(f_in, f_out)
        if name == "sage":
            return gnn.SAGEConv(f_in, f_out, aggr="mean")
        if name == "gin":
            return gnn.GINConv(_mlp(f_in, f_out, gin_mlp_layers), eps=0.0, train_eps=False)
        return gnn.GATConv(f_in, f_out // heads, heads=heads, concat=True)
    dglnn = require_dgl(f"the DGL {name} layer").nn

    if name == "gcn":
        return dglnn.GraphConv(f_in, f_out, norm="both", allow_zero_in_degree=True)
    if name == "sage":
        return dglnn.SAGEConv(f_in, f_out, "mean")
    if name == "gin":
        return dglnn.GINConv(_mlp(f_in, f_out, gin_mlp_layers), "sum", init_eps=0.0, learn_eps=False)
    return dglnn.GATConv(f_in, f_out // heads, heads, allow_zero_in_degree=True)


class HomogeneousGNN(nn.Module):
    """A stack of ``num_layers`` framework graph convolutions (see the module table).

    Attributes:
        name: ``"gcn" | "sage" | "gin" | "gat"``; framework: ``"dgl" | "pyg"``.
        dims: widths ``[in_dim, hidden, ..., out_dim]`` (``num_layers + 1`` entries).
        heads: heads per layer (GAT; 1 for the others and for GAT's last layer).
        gin_mlp_layers: linear layers per GIN MLP.
        self_loops: whether the layers aggregate over the graph with self-loops added.

    ``forward(structure, x)``: ``structure`` from :meth:`prepare_graph` (a ``DGLGraph`` or DGL
    block list for DGL; an int64 ``edge_index [2, m]`` for PyG), ``x`` float32 ``[n, in_dim]``
    (for DGL blocks: the first block's source vertices); returns float32 logits ``[n_out, out_dim]``.
    """

    def __init__(self, name: str, framework: str, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int,
                 *, num_heads: int = 4, gin_mlp_layers: int = 2, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        self.name = _check("model", name, MODELS)
        self.framework = _check("framework", framework, FRAMEWORKS)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        if min(in_dim, hidden_dim, out_dim) < 1:
            raise ValueError(f"in_dim, hidden_dim and out_dim must be >= 1 (got {in_dim}, {hidden_dim}, {out_dim})")
        if gin_mlp_layers < 1:
            raise ValueError(f"gin_mlp_layers must be >= 1 (got {gin_mlp_layers})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        if name == "gat" and num_layers > 1 and hidden_dim % num_heads:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})")
        self.dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.heads = [num_heads if (name == "gat" and i < num_layers - 1) else 1 for i in range(num_layers)]
        self.gin_mlp_layers = gin_mlp_layers
        self.num_layers, self.dropout = num_layers, dropout
        self.self_loops = name in SELF_LOOP_MODELS
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.convs = nn.ModuleList(
                _make_conv(name, framework, self.dims[i], self.dims[i + 1], self.heads[i], gin_mlp_layers)
                for i in range(num_layers))

    def prepare_graph(self, graph, device="cpu"):
        """The structure :meth:`forward` takes, built from a
        :class:`studylib.data.homogeneous.HomogeneousGraph`: DGL: ``graph.to_dgl(self_loops=...)``
        (self-loops for GCN and GAT, as PyG's layers add them); PyG: ``edge_index`` on ``device``
        (``GCNConv`` / ``GATConv`` add self-loops themselves)."""
        if self.framework == "dgl":
            return graph.to_dgl(self_loops=self.self_loops, device=device)
        return graph.edge_index().to(device)

    def forward(self, structure, x: Tensor) -> Tensor:
        blocks = structure if isinstance(structure, (list, tuple)) else [structure] * self.num_layers
        if len(blocks) != self.num_layers:
            raise ValueError(f"got {len(blocks)} blocks for a {self.num_layers}-layer model")
        h = x
        for i, (conv, g) in enumerate(zip(self.convs, blocks)):
            if self.framework == "dgl":
                if getattr(g, "is_block", False):
                    h = conv(g, (h, h[: g.num_dst_nodes()]))
                else:
                    h = conv(g, h)
                if h.dim() == 3:  # GATConv: [n, heads, out/heads]
                    h = h.flatten(1)
            else:
                h = conv(h, g)
            if i < self.num_layers - 1:
                h = F.elu(h) if self.name == "gat" else F.relu(h)
                if self.dropout:
                    h = F.dropout(h, self.dropout, self.training)
        return h

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, framework={self.framework!r}, dims={self.dims}, heads={self.heads}"


def build_homogeneous_model(name: str, framework: str, in_dim: int, hidden_dim: int, out_dim: int,
                            num_layers: int, *, num_heads: int = 4, gin_mlp_layers: int = 2, dropout: float = 0.0,
                            seed: int = 0) -> HomogeneousGNN:
    """Build a homogeneous GNN (see the module table) with weights drawn under ``seed`` (the global
    RNG is left as it was).

    Args:
        name: ``"gcn"``, ``"sage"`` (GraphSAGE, mean aggregator), ``"gin"`` or ``"gat"``.
        framework: ``"dgl"`` or ``"pyg"``.
        in_dim, hidden_dim, out_dim: input feature width, hidden width (all heads together for
            GAT), output width (classes).
        num_layers: message-passing layers ``L`` (>= 1).
        num_heads: GAT heads of the hidden layers (``hidden_dim`` divisible by it).
        gin_mlp_layers: linear layers ``K`` of each GIN MLP (>= 1).
        dropout: dropout between layers (0 = none).
        seed: weight-initialisation seed.

    Raises ``ValueError`` for unknown names or invalid sizes.
    """
    return HomogeneousGNN(name, framework, in_dim, hidden_dim, out_dim, num_layers, num_heads=num_heads,
                          gin_mlp_layers=gin_mlp_layers, dropout=dropout, seed=seed)
