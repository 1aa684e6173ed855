"""Model builders of the studies.

Heterogeneous GNNs (RGCN, RGAT, HAN) in DGL and PyG with Han et al.'s (ACM TACO 2025) training
stages marked, plus the frameworks' own reference layers: see :mod:`studylib.models.hgnn`.
"""

from studylib.models.hgnn import (
    FRAMEWORKS,
    HAN,
    HGNN,
    MODELS,
    RGAT,
    RGCN,
    PygHomogeneousGraph,
    PygSemanticGraph,
    ReferenceHGNN,
    block_input_nodes,
    build_model,
    build_reference_model,
    sample_dgl_blocks,
)

__all__ = [
    "FRAMEWORKS",
    "HAN",
    "HGNN",
    "MODELS",
    "RGAT",
    "RGCN",
    "PygHomogeneousGraph",
    "PygSemanticGraph",
    "ReferenceHGNN",
    "block_input_nodes",
    "build_model",
    "build_reference_model",
    "sample_dgl_blocks",
]
