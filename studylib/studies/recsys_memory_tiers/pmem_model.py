"""A persistent-memory tier model beside the emulation of ``04-recsys-memory-tiers``.

No Optane DC persistent memory is at hand, and the emulated slow tier (a file mapping under a
memory cgroup) is a block device, far slower than persistent memory. This module predicts the step
time on a tier from the bytes the step moves in that tier and the tier's latency and bandwidth:
either the published Optane figures (:data:`PUBLISHED`, with their sources) or a tier's own
figures measured here (STREAM kernels, a random-row gather and a pointer chase,
:func:`studylib.studies.recsys_memory_tiers.memory_tiers.measure_tier_bandwidth`). The prediction
for the emulated tier, set beside its measured slowdown, shows how far the model can be trusted;
the prediction for Optane is what only the model speaks to here.

The model (an additive memory-time model in the spirit of the roofline; the figures are the
tier's, the traffic is counted from the step):

* :func:`step_traffic` counts, per step, the accesses to the embedding state that lives in the
  tier (the ``N x d`` table and Adam's two moments), by kernel class: the first layer's SpMM reads
  one table row per directed edge (random rows), the batch gathers read ``2 x 3B`` rows (the
  output rows and the ego rows of the L2 term; random rows), NGCF reads the whole table once more
  for its element-wise term (sequential), and Adam reads and writes the table and both moments
  (sequential, 3 arrays each way).
* :func:`access_seconds`: a sequential read or write costs ``bytes / bandwidth``; on a memory tier
  (DRAM, persistent memory) a random row costs ``max(latency / outstanding, row_bytes /
  read_bandwidth)`` (``outstanding`` misses in flight per core times the cores; a row is
  contiguous, so beyond its first miss it streams). A file-backed tier (the emulation) is paged:
  the random rows of a step touch at most the pages of the array they land in, each page not held
  by the page cache (``1 - cached_share``) costs one fault at the tier's measured latency, and the
  bytes then come at its read bandwidth.
* :func:`predict`: the step on tier X = the step measured on DRAM + the traffic's time on X - its
  time on this machine's DRAM (figures measured here). With a hot/cold split at hit rate ``h``,
  a share ``h`` of the random rows and the hot share of the sequential bytes stay in DRAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from studylib import timing

#: Published latency and bandwidth of Intel Optane DC persistent memory (and the local DRAM of the
#: same machines), with their sources. Latency: random 64-byte load, idle (ns); bandwidth: GB/s
#: (1e9 bytes/s), the maximum over thread counts.
PUBLISHED = pd.DataFrame([
    {"device": "Optane DC PMM, 6 interleaved modules", "latency_ns": 305.0, "read_gb_s": 39.4, "write_gb_s": 13.9,
     "modules": 6, "source": "Izraelevitz et al., Basic Performance Measurements of the Intel Optane DC Persistent "
                             "Memory Module, arXiv 1903.05714 (2019), Sec. 3 (random load latency ~305 ns, ~3x DRAM; "
                             "6-module interleaved read <= 39.4 GB/s, write <= 13.9 GB/s)"},
    {"device": "Optane DC PMM, 1 module", "latency_ns": 305.0, "read_gb_s": 6.6, "write_gb_s": 2.3, "modules": 1,
     "source": "Izraelevitz et al., arXiv 1903.05714 (2019), Sec. 3 (one module: read 6.6 GB/s, write 2.3 GB/s)"},
    {"device": "Optane DC PMM, interleaved (Hirofuchi and Takano)", "latency_ns": 374.0, "read_gb_s": 38.0,
     "write_gb_s": float("nan"), "modules": 6,
     "source": "Hirofuchi and Takano, A Prompt Report on the Performance of Intel Optane DC Persistent Memory "
               "Module, IEICE Trans. Inf. & Syst. E103-D(5), 2020 (random read ~374 ns, read ~38 GB/s)"},
    {"device": "DRAM of the same machine (Izraelevitz et al.)", "latency_ns": 305.0 / 3, "read_gb_s": float("nan"),
     "write_gb_s": float("nan"), "modules": 6,
     "source": "Izraelevitz et al., arXiv 1903.05714 (2019): Optane's random load latency is about 3x local DRAM's"},
])

#: Optane device whose figures the model uses by default (a row of :data:`PUBLISHED`).
DEFAULT_OPTANE = "Optane DC PMM, 6 interleaved modules"
#: Cache misses in flight per core for a load/store memory (DRAM, persistent memory): about the
#: line-fill buffers of a server core (10 on Skylake-SP, Intel optimization manual).
OUTSTANDING_PER_CORE_MEMORY = 10
#: Misses in flight per core for a file-backed tier: a page fault blocks its thread.
OUTSTANDING_PER_CORE_FILE = 1
#: Page size of the file-backed tiers (bytes).
PAGE_BYTES = 4096


@dataclass(frozen=True)
class TierFigures:
    """A tier's latency and bandwidth: ``latency_s`` (one random access, s), ``read_bps`` and
    ``write_bps`` (bytes/s), ``outstanding`` (random accesses in flight at once, all cores),
    ``name`` and ``source`` (``"published"`` or ``"measured here"``); a paged (file-backed) tier
    has ``page_bytes`` (None for a load/store memory) and ``cached_share`` (the share of its pages
    the page cache holds). Missing write bandwidth (NaN) falls back to the read bandwidth / 2.83
    (Optane's read/write ratio, 39.4 / 13.9 GB/s, Izraelevitz et al.)."""

    name: str
    latency_s: float
    read_bps: float
    write_bps: float
    outstanding: float = OUTSTANDING_PER_CORE_MEMORY
    source: str = "measured here"
    page_bytes: int | None = None
    cached_share: float = 0.0

    def write(self) -> float:
        return self.write_bps if math.isfinite(self.write_bps) else self.read_bps / 2.83


def published_figures(device: str = DEFAULT_OPTANE, cores: int = 1) -> TierFigures:
    """The :class:`TierFigures` of a row of :data:`PUBLISHED` for ``cores`` cores (``outstanding`` =
    :data:`OUTSTANDING_PER_CORE_MEMORY` x cores; bandwidth is the device's, whatever the cores).
    Raises ``KeyError`` naming an unknown device."""
    rows = PUBLISHED[PUBLISHED["device"] == device]
    if rows.empty:
        raise KeyError(f"no published figures for {device!r}; known: {list(PUBLISHED['device'])}")
    r = rows.iloc[0]
    return TierFigures(device, r["latency_ns"] * 1e-9, r["read_gb_s"] * 1e9, r["write_gb_s"] * 1e9,
                       OUTSTANDING_PER_CORE_MEMORY * max(1, cores), "published")


def step_traffic(model: str, num_nodes: int, num_directed_edges: int, batch_size: int, dim: int) -> pd.DataFrame:
    """Accesses per full-graph step to the embedding state in the tier (fp32 table [N, d] and
    Adam's two moments), one row per part: ``part``, ``kernel_class`` (:mod:`studylib.timing`'s
    classes), ``access`` (``random`` rows, ``read`` or ``write`` sequential), ``count`` (rows for
    random accesses, 1 otherwise), ``bytes`` and ``span_bytes`` (the size of the array the accesses
    land in: the table). See the module docstring for the counting.
    Raises ``ValueError`` for an unknown model."""
    if model not in ("lightgcn", "ngcf"):
        raise ValueError(f"unknown model {model!r}")
    row = 4 * int(dim)
    table = int(num_nodes) * row
    rows = [
        {"part": "first-layer SpMM reads a table row per edge", "kernel_class": timing.SPMM, "access": "random",
         "count": int(num_directed_edges), "bytes": int(num_directed_edges) * row},
        {"part": "batch gathers (output rows and L2 ego rows)", "kernel_class": timing.INDEXING, "access": "random",
         "count": 6 * int(batch_size), "bytes": 6 * int(batch_size) * row},
        {"part": "Adam reads table and moments", "kernel_class": timing.ELEMENTWISE, "access": "read", "count": 1,
         "bytes": 3 * table},
        {"part": "Adam writes table and moments", "kernel_class": timing.ELEMENTWISE, "access": "write", "count": 1,
         "bytes": 3 * table},
    ]
    if model == "ngcf":
        rows.insert(2, {"part": "NGCF element-wise term reads the table", "kernel_class": timing.MEMORY,
                        "access": "read", "count": 1, "bytes": table})
    out = pd.DataFrame(rows)
    out["span_bytes"] = table
    return out


def access_seconds(traffic: pd.DataFrame, tier: TierFigures) -> pd.Series:
    """Seconds of each row of :func:`step_traffic` on ``tier`` (see the module docstring)."""
    out = []
    for r in traffic.itertuples():
        if r.access == "random" and tier.page_bytes:
            pages = min(r.count, math.ceil(r.span_bytes / tier.page_bytes))
            faults = pages * (1 - min(max(tier.cached_share, 0.0), 1.0))
            out.append(faults * tier.latency_s / max(tier.outstanding, 1e-9) + r.bytes / tier.read_bps)
        elif r.access == "random":
            per = max(tier.latency_s / max(tier.outstanding, 1e-9), (r.bytes / max(r.count, 1)) / tier.read_bps)
            out.append(r.count * per)
        elif r.access == "read":
            out.append(r.bytes / tier.read_bps)
        elif r.access == "write":
            out.append(r.bytes / tier.write())
        else:
            raise ValueError(f"unknown access {r.access!r}")
    return pd.Series(out, index=traffic.index, dtype=float)


def predict(dram_step_s: float, traffic: pd.DataFrame, tier: TierFigures, dram: TierFigures,
            hit_rate: float = 0.0, hot_fraction: float = 0.0) -> dict:
    """Predicted step time on ``tier`` from the step measured on DRAM (``dram_step_s``, s).

    ``hit_rate``: share of the random rows served by DRAM (a hot/cold split, measured);
    ``hot_fraction``: share of the table's rows (and of the sequential bytes) kept in DRAM.
    Returns ``{predicted_step_s, predicted_slowdown, extra_s, extra_<kernel class>_s}``. Raises
    ``ValueError`` when ``dram_step_s`` is not positive or a share is outside [0, 1].
    """
    if not dram_step_s > 0:
        raise ValueError(f"dram_step_s must be > 0 (got {dram_step_s})")
    for name, v in (("hit_rate", hit_rate), ("hot_fraction", hot_fraction)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be in [0, 1] (got {v})")
    cold = traffic["access"].map(lambda a: 1 - hit_rate if a == "random" else 1 - hot_fraction)
    # the cold rows live in an array of the cold share of the table (its pages, on a paged tier)
    on_tier = traffic.assign(span_bytes=traffic["span_bytes"] * (1 - hot_fraction))
    extra = (access_seconds(on_tier, tier) - access_seconds(traffic, dram)) * cold
    out = {"predicted_step_s": dram_step_s + float(extra.sum()),
           "predicted_slowdown": (dram_step_s + float(extra.sum())) / dram_step_s, "extra_s": float(extra.sum())}
    for cls, v in extra.groupby(traffic["kernel_class"]).sum().items():
        out[f"extra_{cls}_s"] = float(v)
    return out


def measured_figures(bandwidth: pd.DataFrame, tier: str, cores: int, cached_share: float = 0.0) -> TierFigures | None:
    """A tier's :class:`TierFigures` from the tier bandwidth table (median ``bytes_per_s`` of the
    ``read`` and ``write`` kernels, least ``latency_s`` of the ``latency`` kernel; rows ``tier``,
    ``kernel``); ``None`` when one of them is missing. File-backed tiers (``mmap_*``) are paged
    (4 KiB pages, ``cached_share`` of them in the page cache) with
    :data:`OUTSTANDING_PER_CORE_FILE` misses in flight per core, memory tiers get
    :data:`OUTSTANDING_PER_CORE_MEMORY`."""
    b = bandwidth[bandwidth["tier"] == tier]
    vals = {}
    for k, col in (("read", "bytes_per_s"), ("write", "bytes_per_s"), ("latency", "latency_s")):
        s = b.loc[b["kernel"] == k, col] if col in b else pd.Series(dtype=float)
        s = s.dropna()
        if s.empty:
            return None
        # latency: the least of the blocks (other load on the machine only adds to a chase, as in
        # lmbench); bandwidth: the median
        vals[k] = float(s.min()) if k == "latency" else float(s.median())
    paged = tier.startswith("mmap")
    per = OUTSTANDING_PER_CORE_FILE if paged else OUTSTANDING_PER_CORE_MEMORY
    return TierFigures(tier, vals["latency"], vals["read"], vals["write"], per * max(1, cores),
                       page_bytes=PAGE_BYTES if paged else None, cached_share=float(cached_share))


def cached_share(row: pd.Series) -> float:
    """The share of a file-backed tier's files the page cache can hold during the timed steps: 1
    without a cgroup limit, else ``(limit - anonymous memory) / file bytes`` clipped to [0, 1]
    (columns ``cgroup_limit_bytes``, ``cgroup_anon_bytes``, ``tier_file_bytes`` of the tier table)."""
    limit = float(row.get("cgroup_limit_bytes", float("nan")))
    files = float(row.get("tier_file_bytes", float("nan")))
    if not math.isfinite(limit) or not math.isfinite(files) or files <= 0:
        return 1.0
    anon = float(row.get("cgroup_anon_bytes", 0.0))
    anon = anon if math.isfinite(anon) else 0.0
    return min(1.0, max(0.0, (limit - anon) / files))


def figures_table(bandwidth: pd.DataFrame, tiers: list[str], cores: int) -> pd.DataFrame:
    """The tiers measured here beside the published Optane figures, one row each: ``tier``,
    ``source`` (``measured here`` / the publication), ``latency_ns``, ``read_gb_s``,
    ``write_gb_s``, ``gather_gb_s`` (measured tiers), ``latency_vs_dram`` and ``read_vs_dram``
    (ratios to this machine's measured DRAM)."""
    rows = []
    dram = measured_figures(bandwidth, "dram", cores) if not bandwidth.empty else None
    for t in tiers:
        f = measured_figures(bandwidth, t, cores) if not bandwidth.empty else None
        if f is None:
            continue
        g = bandwidth.loc[(bandwidth["tier"] == t) & (bandwidth["kernel"] == "gather"), "bytes_per_s"]
        rows.append({"tier": t, "source": "measured here (emulated)" if t != "dram" else "measured here",
                     "latency_ns": f.latency_s * 1e9, "read_gb_s": f.read_bps / 1e9, "write_gb_s": f.write_bps / 1e9,
                     "gather_gb_s": float(g.median()) / 1e9 if len(g) else float("nan")})
    for r in PUBLISHED.itertuples():
        rows.append({"tier": r.device, "source": r.source, "latency_ns": r.latency_ns, "read_gb_s": r.read_gb_s,
                     "write_gb_s": r.write_gb_s, "gather_gb_s": float("nan")})
    out = pd.DataFrame(rows, columns=["tier", "source", "latency_ns", "read_gb_s", "write_gb_s", "gather_gb_s"])
    if dram is not None:
        out["latency_vs_dram"] = out["latency_ns"] / (dram.latency_s * 1e9)
        out["read_vs_dram"] = out["read_gb_s"] / (dram.read_bps / 1e9)
    return out


def model_table(tier_epochs: pd.DataFrame, bandwidth: pd.DataFrame, graph_stats: dict[str, dict], batch_size: int,
                hot_fraction: float, cores: int, optane: str = DEFAULT_OPTANE) -> pd.DataFrame:
    """Per dataset and model: the measured slowdown of each emulated tier beside the model's
    prediction for it (from its own measured figures), and the model's predictions for Optane
    (``optane``) alone and behind the hot/cold split at the measured hit rate.

    ``tier_epochs``: :func:`~studylib.studies.recsys_memory_tiers.measure.tier_epoch_table`
    (``dataset``, ``model``, ``tier``, ``step_s``, ``slowdown``, ``hit_rate``, ``num_layers``,
    ``dim``); ``bandwidth``: the tier bandwidth table; ``graph_stats``: per dataset
    ``{num_nodes, num_edges}`` (directed edges of the propagation graph). Rows: ``dataset``,
    ``model``, ``target`` (the tier or device predicted), ``basis`` (whose figures), ``hit_rate``,
    ``measured_slowdown`` (NaN for Optane), ``predicted_slowdown``, ``predicted_step_s``,
    ``extra_<class>_s``. Empty when DRAM's figures or steps are missing.
    """
    dram = measured_figures(bandwidth, "dram", cores) if not bandwidth.empty else None
    if dram is None or tier_epochs.empty:
        return pd.DataFrame()
    optane_f = published_figures(optane, cores)
    rows = []
    for (ds, m), g in tier_epochs.groupby(["dataset", "model"]):
        d = g[g["tier"] == "dram"]
        if d.empty or ds not in graph_stats:
            continue
        st = graph_stats[ds]
        dim = int(d["dim"].iloc[0]) if "dim" in d else 64
        traffic = step_traffic(m, st["num_nodes"], st["num_edges"], batch_size, dim)
        dram_s = float(d["step_s"].iloc[0])
        base = {"dataset": ds, "model": m}
        for t in g["tier"]:
            if t in ("dram", "numa_remote"):
                continue
            fig_tier = "mmap_cgroup" if t == "hot_cold" else t
            r = g[g["tier"] == t].iloc[0]
            f = measured_figures(bandwidth, fig_tier, cores, cached_share(r))
            if f is None:
                continue
            h = float(r.get("hit_rate", float("nan"))) if t == "hot_cold" else 0.0
            if t == "hot_cold" and not math.isfinite(h):
                continue
            p = predict(dram_s, traffic, f, dram, hit_rate=h, hot_fraction=hot_fraction if t == "hot_cold" else 0.0)
            rows.append({**base, "target": t, "basis": f"{fig_tier} figures measured here, page-cache share "
                                                       f"{f.cached_share:.0%}", "hit_rate": h,
                         "measured_slowdown": float(r["slowdown"]), **p})
        rows.append({**base, "target": "optane", "basis": optane, "hit_rate": 0.0,
                     "measured_slowdown": float("nan"), **predict(dram_s, traffic, optane_f, dram)})
        hc = g[g["tier"] == "hot_cold"]
        if not hc.empty and math.isfinite(float(hc["hit_rate"].iloc[0])):
            h = float(hc["hit_rate"].iloc[0])
            rows.append({**base, "target": "hot_cold_optane", "basis": f"{optane}, DRAM hit rate measured here",
                         "hit_rate": h, "measured_slowdown": float("nan"),
                         **predict(dram_s, traffic, optane_f, dram, hit_rate=h, hot_fraction=hot_fraction)})
    return pd.DataFrame(rows)
