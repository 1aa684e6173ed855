"""A per-run cache of loaded graphs, shared by every study's driver."""

from __future__ import annotations

from collections.abc import Callable


class GraphCache(dict):
    """Loads each graph once: ``cache[name]`` calls ``load(name)`` the first time and keeps the
    result (a notebook run measures many configurations on the same few graphs).

    Args:
        load: ``name -> graph``; whatever it raises (e.g. ``DatasetUnavailableError``) propagates.
    """

    def __init__(self, load: Callable[[str], object]):
        super().__init__()
        self.load = load

    def __missing__(self, name: str):
        graph = self.load(name)
        self[name] = graph
        return graph
