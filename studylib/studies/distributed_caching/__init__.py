"""``02-distributed-caching``: a prefetch and eviction cache of remote (halo) features on DistDGL.

Paper: Sarkar, Ghosh, Tallent, Jannesari, *MassiveGNN: Efficient Training via Prefetching for
Massively Connected Distributed Graphs*, IEEE CLUSTER 2024.
Notebook: ``notebooks/02-distributed-caching.ipynb``.
Own modules: :mod:`.cache` (the cache policies: MassiveGNN's published rule, static, LRU and the
``decayed-use`` ablation), :mod:`.replay` (every policy replayed offline on a sequence of
mini-batches), :mod:`.node_trainer` (the DistDGL trainer process).
Tables (``results/02-distributed-caching/``): ``epochs``, ``batches``, ``setup``, ``accuracy``,
``links``, ``partitions``, ``replay``, ``findings``; recorded access sequences under ``access/``.
Figures (``figures/02-distributed-caching/``): ``epoch_breakdown``, ``speedup_vs_fraction``,
``sensitivity_alpha_delta``, ``speedup_vs_network``, ``hit_rate_over_batches``, ``remote_bytes``.
"""
