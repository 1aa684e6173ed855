"""The in-memory form of a heterogeneous graph that every HGNN loader returns.

One :class:`HeteroGraph` holds the node counts, the typed edges, features, labels, splits and the
metapaths of a graph, framework-free (plain tensors); :meth:`HeteroGraph.to_dgl` and
:meth:`HeteroGraph.to_pyg` convert it to a DGL heterograph and a PyG ``HeteroData`` with the same
node ids, so that both frameworks train on exactly the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# A canonical edge type, as in DGL and PyG: (source node type, relation name, destination node type).
EdgeType = tuple[str, str, str]


@dataclass
class HeteroGraph:
    """A heterogeneous graph with node classification labels on one target node type.

    Attributes:
        name: dataset name (e.g. ``"acm"``).
        num_nodes: node count per node type.
        edges: per canonical edge type, ``(src, dst)``: two int64 tensors of shape ``[E]`` holding
            0-based node ids of the source and destination type. Both directions of every relation
            are present as separate edge types (the loaders add the reverse ones).
        features: per node type, a float32 tensor ``[num_nodes, width]``; node types without
            features are absent (models give them learnable embeddings).
        target: the node type that carries labels.
        labels: int64 tensor ``[num_nodes[target]]`` of class ids.
        num_classes: number of classes.
        train_idx, val_idx, test_idx: int64 tensors of target-node ids.
        metapaths: named metapaths for HAN, each a list of canonical edge types that starts and
            ends at ``target`` (e.g. ``{"PAP": [("paper","pa","author"), ("author","ap","paper")]}``).
        info: free-form provenance (source files, checksums, URL).
    """

    name: str
    num_nodes: dict[str, int]
    edges: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]]
    features: dict[str, torch.Tensor]
    target: str
    labels: torch.Tensor
    num_classes: int
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    test_idx: torch.Tensor
    metapaths: dict[str, list[EdgeType]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def node_types(self) -> list[str]:
        """Node types in a fixed (sorted) order."""
        return sorted(self.num_nodes)

    @property
    def edge_types(self) -> list[EdgeType]:
        """Canonical edge types in a fixed (sorted) order."""
        return sorted(self.edges)

    def num_edges(self, etype: EdgeType | None = None) -> int:
        """Edge count of one edge type, or of all edge types together."""
        if etype is not None:
            return int(self.edges[etype][0].numel())
        return sum(int(s.numel()) for s, _ in self.edges.values())

    def feature_dims(self) -> dict[str, int | None]:
        """Feature width per node type (``None`` for featureless types)."""
        return {t: (int(self.features[t].shape[1]) if t in self.features else None) for t in self.node_types}

    def statistics(self) -> dict:
        """Node and edge counts per type, as plain ints (for tables and checks)."""
        return {
            "num_nodes": dict(self.num_nodes),
            "num_edges": {"__".join(et): self.num_edges(et) for et in self.edge_types},
            "num_classes": self.num_classes,
            "split": (len(self.train_idx), len(self.val_idx), len(self.test_idx)),
        }

    def to_dgl(self):
        """Return a ``dgl.DGLHeteroGraph`` with the same node ids, features as ``ndata['feat']``,
        labels and boolean split masks as ``ndata['label' | 'train_mask' | ...]`` on the target type."""
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        g = dgl.heterograph(
            {et: (s, d) for et, (s, d) in self.edges.items()},
            num_nodes_dict=dict(self.num_nodes),
        )
        for t, x in self.features.items():
            g.nodes[t].data["feat"] = x
        n = self.num_nodes[self.target]
        g.nodes[self.target].data["label"] = self.labels
        for split, idx in (("train", self.train_idx), ("val", self.val_idx), ("test", self.test_idx)):
            mask = torch.zeros(n, dtype=torch.bool)
            mask[idx] = True
            g.nodes[self.target].data[f"{split}_mask"] = mask
        return g

    def to_pyg(self):
        """Return a ``torch_geometric.data.HeteroData`` with the same node ids: ``x`` per featured
        type, ``num_nodes`` per type, ``edge_index`` per edge type, ``y`` and split masks on the
        target type."""
        from torch_geometric.data import HeteroData  # lazy: PyG's import is heavy and loads its optional extensions

        data = HeteroData()
        for t in self.node_types:
            data[t].num_nodes = self.num_nodes[t]
            if t in self.features:
                data[t].x = self.features[t]
        for et, (s, d) in self.edges.items():
            data[et].edge_index = torch.stack([s, d])
        n = self.num_nodes[self.target]
        data[self.target].y = self.labels
        for split, idx in (("train", self.train_idx), ("val", self.val_idx), ("test", self.test_idx)):
            mask = torch.zeros(n, dtype=torch.bool)
            mask[idx] = True
            data[self.target][f"{split}_mask"] = mask
        return data
