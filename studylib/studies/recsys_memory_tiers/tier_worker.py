"""The memory-tier worker of ``04-recsys-memory-tiers``: the process that places embedding tables
in a memory tier (inside a memory cgroup where asked) and times training steps there.

:func:`studylib.studies.recsys_memory_tiers.memory_tiers.run_worker` starts it as
``python -m studylib.studies.recsys_memory_tiers.tier_worker JOB`` and collects its rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch
from torch.profiler import ProfilerActivity, profile

from studylib import timing
from studylib.data.recsys import BipartiteGraph
from studylib.models import recsys as rm
from studylib.studies.recsys_memory_tiers import memory_tiers as mt
from studylib.timing import BACKWARD, FORWARD, OPTIMIZER_UPDATE, SAMPLING, STEP_TOTAL, StageTimer, stage


def weighted_dgl(graph: BipartiteGraph):
    """``graph.to_dgl()`` with the symmetric normalisation weights as edge data ``w``."""
    g = graph.to_dgl()
    g.edata["w"] = rm.edge_weights(g)
    return g


def _regions_from_timer(records: list[dict], steps_per_epoch: int) -> list[dict]:
    """Map a full-graph step's timer records to :data:`REGIONS` (forward excludes the gather)."""
    df = pd.DataFrame(records)
    per = df.pivot_table(index="step", columns="name", values="seconds", aggfunc="sum").fillna(0.0)
    rows = []
    for step, r in per.iterrows():
        gather = float(r.get(rm.GATHER_STAGE, 0.0))
        vals = {"sampling": float(r.get(SAMPLING, 0.0)), "fetch": gather,
                "forward": float(r.get(FORWARD, 0.0)) - gather, "backward": float(r.get(BACKWARD, 0.0)),
                "communication": 0.0, "update": float(r.get(OPTIMIZER_UPDATE, 0.0)),
                STEP_TOTAL: float(r.get(STEP_TOTAL, 0.0))}
        for region, s in vals.items():
            rows.append({"kind": "step", "step": int(step), "region": region, "seconds": s,
                         "steps_per_epoch": steps_per_epoch})
    return rows


def tier_worker(job: dict, cg, out) -> None:
    """Body of the memory-tier worker (``python -m studylib.studies.recsys_memory_tiers.tier_worker JOB`` with ``kind="tiers"``):
    tier bandwidth, then training steps per configuration and tier. ``cg`` is the worker's
    :class:`studylib.studies.recsys_memory_tiers.memory_tiers.MemoryCgroup` (``None`` where cgroups are unusable: the cgroup tiers
    are then not in the job); ``out`` a :class:`studylib.studies.recsys_memory_tiers.memory_tiers.PartWriter` that receives the
    rows (``kind`` ``bandwidth``, ``step``, ``io``, ``kernels``, ``tier_info``) unit by unit. Units
    named in ``job["skip"]`` are left out (a rerun after a failed unit)."""

    torch.manual_seed(job["seed"])
    pid = os.getpid()
    workdir = Path(job["workdir"])
    margin = int(job["margin_mib"] * 2**20)
    skip = set(job.get("skip", []))

    @contextlib.contextmanager
    def in_cgroup(tier: str, reserve: int | None = None):
        if tier not in mt.CGROUP_TIERS:
            yield
            return
        mt.prefault_heap(max(int(job["heap_reserve_mib"] * 2**20), int(reserve or 0)))
        cg.set_limit(None)
        cg.add(pid)
        try:
            yield
        finally:
            cg.set_limit(None)
            cg.leave(pid)

    # import and run the timing harness once outside any cgroup (its imports allocate)
    timing.benchmark(lambda: torch.zeros(4).sum(), num_threads=job["threads"], min_run_time=0.01, warmup=1,
                     check_inputs=False, measure_memory=False)
    _log("bandwidth")
    # ---- bandwidth of each tier (hot_cold has no arrays of its own)
    nbytes = int(job["bandwidth_mib"] * 2**20)
    for tier in job["tiers"]:
        unit = f"bandwidth/{tier}"
        if tier == "hot_cold" or unit in skip:
            continue
        out.start(unit)
        rows = []
        d = job["bandwidth_dim"]
        rows_n = nbytes // 4 // d
        idx = torch.randperm(rows_n, generator=torch.Generator().manual_seed(job["seed"]))[: max(1, rows_n // 4)]
        gathered = torch.empty(len(idx), d)
        gathered.fill_(0.0)  # touched outside the cgroup: not charged to it
        tdir = workdir / f"bw-{tier}"
        # the arrays' files are written and evicted before the process joins the cgroup, so that
        # nothing but the measurement's own page faults is charged to it
        a, b = mt.tier_arrays(tier, nbytes, tdir)
        chain = mt.tier_chain(tier, nbytes, tdir, seed=job["seed"])
        if tier in mt.CGROUP_TIERS:
            mt.advise(a, job["advice"])
            mt.advise(b, job["advice"])
            mt.advise(chain, job["advice"])
        with in_cgroup(tier):
            if tier in mt.CGROUP_TIERS:
                cg.set_limit_at_least(margin + int(job["cache_fraction"] * 3 * nbytes))
            for r in mt.measure_tier_bandwidth(a, b, d, idx, gathered, threads=job["threads"],
                                               rounds=job["bandwidth_rounds"],
                                               min_run_time=job["bandwidth_min_run_time"]):
                rows.append({"kind": "bandwidth", "tier": tier, **r})
            # the pointer chase: one dependent load at a time, the tier's latency
            for r in mt.measure_tier_latency(chain, rounds=job["bandwidth_rounds"],
                                             min_run_time=job["bandwidth_min_run_time"], seed=job["seed"]):
                rows.append({"kind": "bandwidth", "tier": tier, "threads": 1, **r})
            del a, b, chain
        for pattern in ("*.f32", "*.i64"):
            for f in tdir.glob(pattern):
                f.unlink()
        out.done(unit, rows)

    # ---- training steps per configuration and tier
    graphs: dict[str, BipartiteGraph] = {}
    for cfg in job["configs"]:
        if all(tier_unit(cfg, t) in skip for t in job["tiers"]):
            continue
        ds = cfg["dataset"]
        if ds not in graphs:
            graphs[ds] = BipartiteGraph.load(job["graph_files"][ds])
        graph = graphs[ds]
        g = weighted_dgl(graph)
        deg = graph.node_degrees()
        hot_ids = mt.hot_rows(deg, job["hot_fraction"])
        for tier in job["tiers"]:
            unit = tier_unit(cfg, tier)
            if unit in skip:
                continue
            out.start(unit)
            out.done(unit, _tier_config(job, cfg, tier, graph, g, hot_ids, cg, in_cgroup, margin))


def tier_unit(cfg: dict, tier: str) -> str:
    """Name of one unit of the tier worker's work: ``<dataset>/<model>/<tier>``."""
    return f"{cfg['dataset']}/{cfg['model']}/{tier}"


def _log(msg: str) -> None:
    print(f"[tier worker {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _tier_config(job, cfg, tier, graph, g, hot_ids, cg, in_cgroup, margin) -> list[dict]:
    _log(f"{cfg} tier {tier}: start")

    model_name, L, d = cfg["model"], int(cfg["num_layers"]), int(cfg["dim"])
    torch.manual_seed(job["seed"])
    init = rm.build_recommender(model_name, graph.num_nodes, d, L, seed=job["seed"]).embedding.full().detach()
    # the graph file's stem is the dataset's file-safe key (measure._graph_name): a spec may hold ':' and '/'
    tdir = Path(job["workdir"]) / f"{Path(job['graph_files'][cfg['dataset']]).stem}-{model_name}-{tier}"
    rows = []
    base = {"dataset": cfg["dataset"], "model": model_name, "num_layers": L, "dim": d, "tier": tier}

    rss0 = psutil.Process().memory_info().rss
    # the tier files are written and evicted before the process joins the cgroup (see tier_worker)
    table = mt.place_table(init, tier, tdir, hot_ids=hot_ids)
    model = rm.build_recommender(model_name, graph.num_nodes, d, L, seed=job["seed"], embedding=table)
    opt = mt.tier_optimizer(model, table, tier, tdir, job["lr"])
    files = sorted(tdir.glob("*.f32")) if tdir.exists() else []
    mapped = [(p.data, mt.mapping_of(p.data)) for p in table.parameters()]
    mapped += [(st[k], mt.mapping_of(st[k])) for st in opt.state.values() for k in ("exp_avg", "exp_avg_sq")
               if k in st]
    mapped = [(t, path.removesuffix(" (deleted)")) for t, path in mapped if path is not None]
    if tier in mt.CGROUP_TIERS:
        for t, _ in mapped:
            mt.advise(t, job["advice"])
    tier_bytes = sum(f.stat().st_size for f in files)
    sampler = rm.BatchSampler(graph, job["batch_size"], seed=job["seed"])
    batches = sampler.forever()

    def next_batch():
        return next(batches)

    def profiled_steps(n):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(n):
                rm.full_graph_step(model, g, next_batch(), opt, graph.num_users, job["reg"])
        return prof

    # warm-up outside the cgroup: the heap grows to its working size here (see WORKER_MALLOC_ENV),
    # so that inside the cgroup almost only the tier files' page cache is charged to it
    for _ in range(max(2, job["warmup_steps"])):
        rm.full_graph_step(model, g, next_batch(), opt, graph.num_users, job["reg"])
    # heap reserve for the cgroup phase: twice what model, optimizer and steps added to the heap
    reserve = 2 * max(0, psutil.Process().memory_info().rss - rss0)
    limit = None
    if tier in mt.CGROUP_TIERS:
        for t, path in mapped:
            mt.evict(t, path)
    resident_before = float(np.nanmean([mt.resident_fraction(f) for f in files])) if files else float("nan")
    flusher = mt.Flusher([p for _, p in mapped]) if tier in mt.CGROUP_TIERS else contextlib.nullcontext()
    with in_cgroup(tier, reserve), flusher:
        if tier in mt.CGROUP_TIERS:
            # two more warm-up steps inside the unlimited cgroup charge to it whatever anonymous
            # memory the steady state still needs; then the tier's pages are evicted again and the
            # limit leaves the page cache ``cache_fraction`` of the tier files (+ margin)
            for _ in range(2):
                rm.full_graph_step(model, g, next_batch(), opt, graph.num_users, job["reg"])
            _log(f"  in-cgroup warm-up steps: {cg.stats()}")
            for t, path in mapped:
                mt.evict(t, path)
            anon = cg.stats()["anon"]
            limit = cg.set_limit_at_least(int(anon + margin + job["cache_fraction"] * tier_bytes))
            _log(f"  joined the cgroup, limit {limit} bytes for {tier_bytes} tier bytes; {cg.stats()}")
        timer = StageTimer()
        io = mt.IOCounter()
        with timer.activate():
            for i in range(job["steps"]):
                io.start()
                with timer.step(i):
                    with stage(SAMPLING):
                        batch = next_batch()
                    rm.full_graph_step(model, g, batch, opt, graph.num_users, job["reg"])
                ioc = io.read()
                rows.append({**base, "kind": "io", "step": i, **ioc})
        for r in _regions_from_timer(timer.records, sampler.steps_per_epoch()):
            rows.append({**base, **r})
        hit = getattr(table, "last_hit_rate", float("nan"))
        _log(f"  timed steps done; {cg.stats() if tier in mt.CGROUP_TIERS else ''}")
        stats = cg.stats() if tier in mt.CGROUP_TIERS else {}
        resident = [mt.resident_fraction(f) for f in files]
        if job["profile_steps"]:
            # the profiler allocates memory of its own: under the strict limit it would be killed, so
            # the profiled steps start with the tier's pages evicted and the limit lifted (each tier
            # page is then read from storage once per step, as in a step whose cache is cold)
            if tier in mt.CGROUP_TIERS:
                cg.set_limit(None)
                for t, path in mapped:
                    mt.evict(t, path)
            prof = profiled_steps(job["profile_steps"])
            kc = timing.kernel_class_breakdown(prof, "cpu")
            for (cls,), part in kc.groupby(["kernel_class"]):
                rows.append({**base, "kind": "kernels", "kernel_class": cls,
                             "seconds": float(part["self_us"].sum()) * 1e-6 / job["profile_steps"]})
        rows.append({**base, "kind": "tier_info", "tier_file_bytes": tier_bytes, "cgroup_limit_bytes": limit,
                     "resident_before": resident_before, "cgroup_anon_bytes": stats.get("anon"), "hit_rate": hit,
                     "hot_rows": int(len(hot_ids)) if tier == "hot_cold" else 0,
                     "resident_fraction": float(np.nanmean(resident)) if resident else float("nan"),
                     "file_backed": bool(files), "limit_hits": stats.get("limit_hits"),
                     "cgroup_file_bytes": stats.get("file"), "steps_per_epoch": sampler.steps_per_epoch()})
    for f in files:
        with contextlib.suppress(OSError):
            f.unlink()
    return rows


def main(job_path: str) -> None:
    """Entry of ``python -m studylib.studies.recsys_memory_tiers.tier_worker JOB``: dispatch on ``job["kind"]``."""
    job = json.loads(Path(job_path).read_text())
    torch.set_num_threads(int(job.get("threads", 1)))
    kind = job["kind"]
    cg = None
    if job.get("cgroup"):
        support = mt.CgroupSupport(job["cgroup_version"], Path(job["cgroup"]).parent)
        cg = object.__new__(mt.MemoryCgroup)
        cg.support, cg.path, cg.limit_bytes = support, Path(job["cgroup"]), None
    out = mt.PartWriter(job["workdir"])
    if kind == "sleep":  # tests: join the cgroup and wait to be stopped
        if cg is not None:
            cg.add(os.getpid())
        Path(job["workdir"], "ready").write_text(str(os.getpid()))
        time.sleep(float(job.get("seconds", 60)))
        return
    if kind == "fail":  # tests: a failing worker
        out.start("fail")
        if cg is not None:
            cg.add(os.getpid())
        raise RuntimeError("worker failure requested by the job")
    if kind == "place":  # tests: place a table in a tier and report where its memory is
        if cg is not None:
            cg.add(os.getpid())
        init = torch.arange(float(job["rows"] * job["dim"])).view(job["rows"], job["dim"])
        table = mt.place_table(init, job["tier"], Path(job["workdir"]) / "t", hot_ids=torch.arange(job.get("hot", 1)))
        rows = [{"param": n, "mapping": mt.mapping_of(p.data), "file_backed": mt.is_file_backed(p.data),
                 "sum": float(p.data.sum())} for n, p in table.named_parameters()]
        out.done("place", rows)
        return
    if kind == "tiers":
        tier_worker(job, cg, out)
        return
    raise ValueError(f"unknown worker job kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1])
