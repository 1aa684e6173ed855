"""``03-op-microbenchmarks``: PyG's sparse and scatter operations against native PyTorch.

Paper: Hosseini, Simini, Vishwanath, *Operation-Level Performance Benchmarking of Graph Neural
Networks for Scientific Applications*, arXiv 2207.09955.
Notebook: ``notebooks/03-op-microbenchmarks.ipynb``.
Own modules: :mod:`.ops` (the operation registry), :mod:`.upstream` (the paper's operations and
numbers).
Tables (``results/03-op-microbenchmarks/``): ``op_times``, ``findings.json``.
Figures (``figures/03-op-microbenchmarks/``): ``ratio_heatmap``, ``time_vs_sparsity``, ``scaling``,
``roofline``.
"""
