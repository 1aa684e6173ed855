"""``05-parallelism-analysis``: do the work-depth and communication models predict the measurements?

Paper: Besta, Hoefler, *Parallel and Distributed Graph Neural Networks: An In-Depth Concurrency
Analysis*, IEEE TPAMI 2024.
Notebook: ``notebooks/05-parallelism-analysis.ipynb``.
Own module: :mod:`.work_depth` (the work, depth and communication models).
Tables (``results/05-parallelism-analysis/``): ``graphs``, ``predictions``, ``step_times``,
``kernel_profile``, ``thread_scaling``, ``minibatch``, ``partitions``, ``communication``.
Figures (``figures/05-parallelism-analysis/``): ``predicted_vs_measured``, ``work_split``,
``communication_<model>``, ``parallelism``.
Findings: :mod:`.findings` (the paper's predictions, declared as data), written to
``results/05-parallelism-analysis/findings.*`` and ``figures/05-parallelism-analysis/findings.json``.
"""
