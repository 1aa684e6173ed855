"""``01-hgnn-training``: where HGNN training time goes.

Paper: Han, Yan, Ye, Fan, *Characterizing and Understanding HGNN Training on GPUs*, ACM TACO 2025
(arXiv 2407.11790).
Notebook: ``notebooks/01-hgnn-training.ipynb``.
Tables (``results/01-hgnn-training/``): ``stage_times``, ``kernel_classes``, ``overhead``,
``reference``, ``han_metapaths``, ``minibatch``, ``data_parallel``, ``accuracy``.
Figures (``figures/01-hgnn-training/``): ``stage_shares``, ``kernel_classes``, ``peak_memory``,
``benchmarks``, ``han_metapaths``, ``minibatch``, ``data_parallel``.
Findings: :mod:`.findings` (five claims of the paper, declared as data), written to
``results/01-hgnn-training/findings.*`` and ``figures/01-hgnn-training/findings.json``.
"""
