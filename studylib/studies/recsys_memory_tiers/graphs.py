"""The user-item graphs of ``04-recsys-memory-tiers``, named by dataset specs
(:mod:`studylib.data.specs`, kind :data:`studylib.data.specs.BIPARTITE`).

A spec is a built-in name (``movielens-100k``, ``gowalla``, ``amazon-book``, ``movielens-10m``), a
generated ``synthetic-<preset>`` graph, or the user's own files: ``ratings:<file>[,<test file>]``
or ``lightgcn:<folder>``, read in place. Result tables name a graph by its spec text; DistDGL's
graph name, the partition cache and the tier worker's files use
:func:`studylib.data.specs.dataset_key`.

Public API::

    load_estimate(dataset, synthetic_scale) -> memory.Estimate | None
    load_graph(dataset, *, synthetic_scale, seed, download) -> BipartiteGraph
    require_test_interactions(graph, dataset) -> None   # the accuracy check needs held-out interactions
"""

from __future__ import annotations

from studylib import memory
from studylib.data import specs
from studylib.data.recsys import PAPER_DATASETS, BipartiteGraph, load_recsys
from studylib.studies.recsys_memory_tiers import estimates as es


def load_estimate(dataset: str, synthetic_scale: float = 1.0) -> memory.Estimate | None:
    """Bytes of loading a built-in or generated graph that :func:`studylib.data.specs.estimate`
    cannot size: ``synthetic-<preset>`` (:func:`studylib.studies.recsys_memory_tiers.estimates.synthetic_graph_estimate`
    at ``synthetic_scale``) and the paper's datasets (:data:`studylib.data.recsys.PAPER_DATASETS`'
    published interaction counts, with the line readers' parsing cost of
    :func:`studylib.studies.recsys_memory_tiers.estimates.interaction_file_estimate`). ``None`` for
    every other spec (the core estimates user files and registered datasets itself). Raises
    :class:`studylib.data.specs.DataSpecError` for a bad spec."""
    spec = specs.parse(dataset, specs.BIPARTITE)
    if spec.scheme == "synthetic":
        return es.synthetic_graph_estimate(spec.arg[len("synthetic-"):], synthetic_scale)
    if spec.scheme == "builtin" and spec.arg in PAPER_DATASETS:
        users, items, interactions = PAPER_DATASETS[spec.arg].statistics
        return es.interaction_file_estimate(users + items, interactions)
    return None


def load_graph(dataset: str, *, synthetic_scale: float = 1.0, seed: int = 0, download: bool = False) -> BipartiteGraph:
    """The graph of ``dataset`` (a spec text), checked and sized before it is read or generated.

    Built-in names load through :func:`studylib.data.recsys.load_recsys` (MovieLens 100K from the
    registry and mirror with checksums; the paper's datasets from the cache or mirror, downloaded
    only when ``download``); ``synthetic-<preset>`` is generated at ``synthetic_scale`` with
    ``seed``; ``ratings:`` and ``lightgcn:`` files are read in place (a rating file without a test
    file is split per user, by time when it has timestamps, else at random with ``seed``).

    Raises:
        studylib.data.specs.DataSpecError: unknown name, malformed spec, another kind of graph
            (e.g. ``heco:``), a missing path, a folder given to ``ratings:``, a LightGCN folder
            without ``train.txt`` / ``test.txt``, a malformed line (file and line named).
        studylib.memory.Refused: the graph's estimate (:func:`load_estimate`, or the core's
            :func:`studylib.data.specs.estimate`) exceeds the memory available; raised before any
            file is read or any interaction generated. The message names the spec.
        studylib.data.DatasetUnavailableError: a built-in dataset that is neither cached nor in the
            mirror (and ``download`` is off).
    """
    spec = specs.check(dataset, specs.BIPARTITE)
    est = load_estimate(spec.text, synthetic_scale)
    if est is not None:
        memory.require(est, what=f"dataset {spec.text!r} (loaded"
                                 + (f" at synthetic_scale={synthetic_scale:g})" if spec.scheme == "synthetic" else ")"))
    return specs.load(spec, specs.BIPARTITE, synthetic_scale=synthetic_scale, seed=seed,
                      builtin=lambda name: load_recsys(name, scale=synthetic_scale, seed=seed, download=download))


def require_test_interactions(graph: BipartiteGraph, dataset: str) -> None:
    """Refuse a graph without test interactions for the accuracy check (recall and NDCG are means
    over the users that have test interactions). Raises :class:`studylib.data.specs.DataSpecError`
    naming ``dataset`` and the ways out: a test file, more interactions per user (a single rating
    file holds out ``floor(0.2 n)`` of each user's ``n``), or ``accuracy_epochs=0``."""
    if graph.num_test == 0:
        raise specs.DataSpecError(
            f"dataset {dataset!r}: no test interactions ({graph.num_train} training ones), which the accuracy "
            "check needs: give a test file (ratings:<train file>,<test file>; lightgcn: reads test.txt), "
            "at least 5 interactions per user (each user's latest 20% are held out), or set accuracy_epochs=0")
