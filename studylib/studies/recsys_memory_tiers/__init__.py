"""``04-recsys-memory-tiers``: GNN recommenders on one big-memory machine vs distributed subgraph
training, and the cost of a slower memory tier.

Paper: Hu, Li, Yu, Zhang, *Benchmarking GNN-Based Recommender Systems on Intel Optane Persistent
Memory*, arXiv 2207.11918.
Notebook: ``notebooks/04-recsys-memory-tiers.ipynb``.
Own modules: :mod:`.memory_tiers` (tiers, cgroups, placement, bandwidth and pointer-chase latency),
:mod:`.tier_worker` (the tier worker process), :mod:`.recsys_trainer` (the DistDGL trainer
process), :mod:`.cores` (equal core sets of the single machine and the cluster), :mod:`.pmem_model`
(the persistent-memory tier model and the published Optane figures), :mod:`.estimates` (memory
estimates of the configurations), :mod:`.graphs` (the graphs by dataset spec, the user's own included,
and their file- and DistDGL-safe keys).
Tables (``results/04-recsys-memory-tiers/``): ``accuracy``, ``single_machine``, ``distributed``,
``redundancy``, ``tiers``, ``tier_status``, ``footprint``.
Figures (``figures/04-recsys-memory-tiers/``): ``epoch_time``, ``time_breakdown``, ``redundancy``,
``tier_slowdown``, ``tier_kernels``, ``memory_footprint``, ``equal_cores``, ``tier_model``.
Findings: :mod:`.findings` (``results/04-recsys-memory-tiers/findings.*``).
"""
