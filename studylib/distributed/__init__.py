"""DistDGL on one host or many: partitioning, the cluster launcher and network models (used by
``02-distributed-caching`` and ``04-recsys-memory-tiers``, whose trainers live in their packages).

Public API (imported lazily, so that ``python -m studylib.distributed.netem`` stays light)::

    partition(graph, num_parts, *, method="metis", name, cache_dir=None) -> Path   # partition JSON
    ClusterSpec(num_machines, trainers_per_machine=1, network="loopback", ip_config=None)
    run_cluster(part_config, trainer_module, trainer_args, spec, *, timeout_s=600, workdir=None,
                env=None) -> ClusterResult        # .exit_codes, .log_paths, .rows(), .network
    run_standalone(part_config, trainer_module, trainer_args, ...) -> ClusterResult
    namespaces_available() -> (bool, reason)
    NETWORK_PRESETS: dict[str, NetworkModel]      # loopback, 25g-5us, 10g-50us, 1g-200us
    ClusterError, ClusterUnavailableError

Modules: :mod:`~studylib.distributed.partition`, :mod:`~studylib.distributed.cluster`,
:mod:`~studylib.distributed.netem`, :mod:`~studylib.distributed.trainer_io` (the trainers' output).

A trainer module for :func:`run_cluster` is any module runnable with ``python -m``: it calls
``dgl.distributed.initialize(os.environ["DGL_IP_CONFIG"])``, then
``torch.distributed.init_process_group("gloo")`` (the rendezvous variables are set), opens
``dgl.distributed.DistGraph(<graph name>)`` and writes its rows to
``$STUDYLIB_TRAINER_OUT/rank<RANK>.parquet``; ``ClusterResult.rows()`` concatenates them.
"""

from __future__ import annotations

# ``partition`` is both a submodule and the function of the API: the submodule is callable
# (``studylib.distributed.partition(graph, 2, name="g")`` calls ``partition.partition``), so the
# package attribute works either way, whichever import binds it.
from studylib.distributed import partition  # noqa: E402,F401

_EXPORTS = {
    "partition_statistics": "studylib.distributed.partition",
    "load_orig_nids": "studylib.distributed.partition",
    "ClusterSpec": "studylib.distributed.cluster",
    "ClusterResult": "studylib.distributed.cluster",
    "ClusterError": "studylib.distributed.cluster",
    "ClusterUnavailableError": "studylib.distributed.cluster",
    "ProcessRecord": "studylib.distributed.cluster",
    "run_cluster": "studylib.distributed.cluster",
    "run_standalone": "studylib.distributed.cluster",
    "namespaces_available": "studylib.distributed.cluster",
    "cleanup_stale": "studylib.distributed.cluster",
    "leftovers": "studylib.distributed.cluster",
    "NETWORK_PRESETS": "studylib.distributed.netem",
    "NetworkModel": "studylib.distributed.netem",
    "network_model": "studylib.distributed.netem",
    "netem_available": "studylib.distributed.netem",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'studylib.distributed' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
