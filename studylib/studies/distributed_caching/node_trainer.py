"""The DistDGL trainer process of the distributed-caching study (one per trainer rank).

Started by :func:`studylib.distributed.run_cluster` as ``python -m studylib.studies.distributed_caching.node_trainer
<args>`` with the ``DGL_*`` / ``MASTER_*`` / ``RANK`` / ``WORLD_SIZE`` environment set. It trains
node classification (GraphSAGE with the mean aggregator, or GAT; 2 layers; Adam) on a
``dgl.distributed.DistGraph`` with ``DistNodeDataLoader`` mini-batches over this rank's share of
the training nodes (``node_split(force_even=True)``), gradients all-reduced with
``torch.distributed`` (gloo on CPU, NCCL on GPUs) after every backward pass.

Several *variants* (``--variants``, a JSON list; see :data:`VARIANT_DEFAULTS`) train side by side in
the same process, each with its own model, optimizer, data loader and feature cache, alternating
epoch by epoch (the order is reversed every other epoch: A B C, C B A, ...), so that every variant is measured in the same run
under the same conditions, as "speedup over plain DistDGL measured in the same run" needs. A
variant is ``policy`` (``none`` = plain DistDGL pulls, or a cache of
:mod:`studylib.studies.distributed_caching.cache`) plus ``pipeline`` (the next mini-batch is sampled and its
features fetched in a background thread while the current one trains, as MassiveGNN does).

Per mini-batch, input nodes are split into this partition's own (**local**, read from the local
server's shared memory) and the others' (**remote**: served by the cache or pulled over the
network). Times (seconds, ``time.perf_counter``, device synchronised before every clock read):
``sampling``, ``local_fetch``, ``remote_fetch`` (inside the pull), ``cache_lookup``,
``cache_eviction`` (in the background thread when pipelined), ``wait`` (the training loop blocked on
the next mini-batch), ``forward`` (with the loss), ``backward``, ``allreduce``, ``update``.

Seed order (``--seed-order``): ``shuffle`` (a uniform shuffle every epoch, as DistDGL's
``DistNodeDataLoader(shuffle=True)`` and the MassiveGNN authors' trainer) or ``clustered`` (the
partition's own nodes split into METIS sub-clusters of about one mini-batch of training seeds
each, ``dgl.metis_partition_assignment``; seeds grouped by sub-cluster, sub-clusters in a random
order fixed for the run, seeds shuffled within each), so that the set of halo nodes a mini-batch
needs drifts during an epoch.

Output: ``$STUDYLIB_TRAINER_OUT/rank<r>.parquet``, rows with a ``kind`` column: ``info`` (one),
``setup`` (per variant: cache warm-up, pre-sampling), ``batch`` (per mini-batch), ``epoch`` (per
epoch), ``accuracy`` (per variant, after the last epoch, over all ranks' test nodes). With
``--record-access``: ``$STUDYLIB_TRAINER_OUT/access_rank<r>_<order>.pt`` per seed order, a dict
of ``halo_ids`` (int64 ``[H]``, ascending), ``in_degrees`` (``[H]``), ``batches`` (a list of
int64 arrays: each mini-batch's remote input node ids), ``batches_per_epoch`` and ``order``,
sampled after training (``--record-batches`` mini-batches, no training) for the offline replay
(:mod:`studylib.studies.distributed_caching.replay`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from studylib import timing
from studylib.distributed.trainer_io import write_rank_rows
from studylib.models.homogeneous import build_homogeneous_model
from studylib.studies.distributed_caching.cache import make_cache

#: Keys of one variant and their defaults.
VARIANT_DEFAULTS = {"label": None, "model": "sage", "policy": "none", "pipeline": False, "fraction": 0.25,
                    "alpha": 0.5, "delta": 8, "eviction": True}

#: Orders of the training seeds (see the module docstring).
SEED_ORDERS = ("shuffle", "clustered")

#: Timed regions of a mini-batch, in stacking order.
PREPARE_REGIONS = ("sampling", "local_fetch", "remote_fetch", "cache_lookup", "cache_eviction")
TRAIN_REGIONS = ("wait", "forward", "backward", "allreduce", "update")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``--help`` lists them)."""
    ap = argparse.ArgumentParser(prog="python -m studylib.studies.distributed_caching.node_trainer")
    ap.add_argument("--graph-name", required=True, help="DistDGL graph name (the partition's graph_name)")
    ap.add_argument("--variants", required=True, help="JSON list of variants (see VARIANT_DEFAULTS)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--fanouts", default="10,25", help="sampled neighbours per layer, input layer first")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--num-heads", type=int, default=4, help="GAT heads of the hidden layer")
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--max-batches", type=int, default=0, help="mini-batches per epoch and rank; 0 = all")
    ap.add_argument("--eval-max-nodes", type=int, default=2000, help="test nodes per rank for the accuracy")
    ap.add_argument("--eval-batch-size", type=int, default=1000)
    ap.add_argument("--num-classes", type=int, default=0, help="classes; 0 = 1 + the largest label")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--verify", action="store_true", help="compare every fetch with a plain pull")
    ap.add_argument("--seed-order", default="shuffle", choices=SEED_ORDERS, help="order of the training seeds")
    ap.add_argument("--record-access", default="", help="comma-separated seed orders whose access sequence to record")
    ap.add_argument("--record-batches", type=int, default=0,
                    help="mini-batches per recorded access sequence; 0 = epochs x mini-batches per epoch")
    a = ap.parse_args(argv)
    a.record_access = [o for o in str(a.record_access).split(",") if o.strip()]
    bad = [o for o in a.record_access if o not in SEED_ORDERS]
    if bad:
        raise SystemExit(f"--record-access: unknown seed order(s) {bad}; choose among {SEED_ORDERS}")
    a.fanouts = [int(x) for x in str(a.fanouts).split(",") if x.strip()]
    variants = json.loads(a.variants)
    if not isinstance(variants, list) or not variants:
        raise SystemExit("--variants must be a non-empty JSON list")
    full = []
    for i, v in enumerate(variants):
        unknown = set(v) - set(VARIANT_DEFAULTS)
        if unknown:
            raise SystemExit(f"variant {i}: unknown key(s) {sorted(unknown)}")
        v = {**VARIANT_DEFAULTS, **v}
        v["label"] = v["label"] or f"{v['model']}-{v['policy']}-{i}"
        full.append(v)
    labels = [v["label"] for v in full]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"variant labels must be unique (got {labels})")
    a.variants = full
    return a


def _iface_bytes(iface: str) -> tuple[int, int]:
    """(rx, tx) bytes of ``iface`` from ``/proc/net/dev`` (this process's network namespace);
    (0, 0) when unknown."""
    if not iface:
        return 0, 0
    try:
        for line in open("/proc/net/dev"):
            name, _, rest = line.partition(":")
            if name.strip() == iface:
                f = rest.split()
                return int(f[0]), int(f[8])
    except OSError:
        pass
    return 0, 0


@dataclass
class _Batch:
    index: int
    blocks: list
    x: object
    y: object
    times: dict
    counts: dict


class _Trainer:
    """State of one rank (see the module docstring)."""

    def __init__(self, args: argparse.Namespace):
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        self.args = args
        self.dgl, self.torch, self.dist, self.np, self.timing = dgl, torch, dist, np, timing
        self.mode = os.environ.get("STUDYLIB_CLUSTER_MODE", "netns")
        self.iface = os.environ.get("STUDYLIB_NET_IFACE", "")
        self.network = json.loads(os.environ.get("STUDYLIB_NETWORK", "{}"))
        self.machine = int(os.environ.get("STUDYLIB_MACHINE_ID", "0"))
        threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or len(os.sched_getaffinity(0))
        torch.set_num_threads(threads)
        self.threads = threads
        self.device = torch.device(args.device)
        if self.device.type == "cuda":
            from studylib.machine import dgl_has_cuda

            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda: torch sees no GPU")
            if not dgl_has_cuda():
                raise RuntimeError("--device cuda needs DGL's CUDA build (this DGL is the CPU wheel from the package "
                                   "index); install DGL's CUDA wheel from DGL's own wheel index, or use --device cpu")
        t0 = self.t0 = time.perf_counter()
        dgl.distributed.initialize(os.environ["DGL_IP_CONFIG"])
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
            torch.cuda.set_device(self.device)
        self.backend = backend
        part_config = os.environ.get("DGL_CONF_PATH") if self.mode == "standalone" else None
        self.g = dgl.distributed.DistGraph(args.graph_name, part_config=part_config)
        self.init_s = time.perf_counter() - t0
        self.pb = self.g.get_partition_book()
        self.part = int(self.pb.partid)
        lp = self.g.local_partition
        inner = lp.ndata["inner_node"].bool()
        gids = lp.ndata[dgl.NID]
        self.num_inner = int(inner.sum())
        self.halo_ids = torch.sort(gids[~inner]).values
        self.feat = self.g.ndata["feat"]
        self.labels = self.g.ndata["label"]
        self.F = int(self.feat.shape[1])
        self.num_classes = args.num_classes or int(self._global_max_label()) + 1
        self.train_nids = dgl.distributed.node_split(self.g.ndata["train_mask"], self.pb, force_even=True)
        self.test_nids = dgl.distributed.node_split(self.g.ndata["test_mask"], self.pb, force_even=True)
        self.rows: list[dict] = []
        self.sampler = dgl.dataloading.NeighborSampler(args.fanouts)
        self._orders = {}
        loader = self._loader(self.train_nids, args.batch_size, shuffle=True)
        nb = loader.expected_idxs if not args.max_batches else min(loader.expected_idxs, args.max_batches)
        t = torch.tensor([nb])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)  # every rank runs the same number of all-reduces
        self.n_batches = int(t.item())
        t1 = time.perf_counter()
        self.halo_degrees = self.g.in_degrees(self.halo_ids) if self.halo_ids.numel() else torch.zeros(0)
        self.degree_s = time.perf_counter() - t1
        self._hot_counts = None
        self.presample_s = 0.0

    # ------------------------------------------------------------------ helpers
    def _global_max_label(self) -> int:
        # the label range: max over this rank's own nodes, then over ranks
        torch, dist = self.torch, self.dist
        start, end = self._local_range()
        local = self.labels[torch.arange(start, end)] if end > start else torch.zeros(1, dtype=torch.int64)
        t = torch.tensor([int(local.max())])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def _local_range(self) -> tuple[int, int]:
        # DistDGL reshuffles ids so that each partition owns one contiguous range
        lp = self.g.local_partition
        ids = lp.ndata[self.dgl.NID][lp.ndata["inner_node"].bool()]
        return (int(ids.min()), int(ids.max()) + 1) if ids.numel() else (0, 0)

    def _loader(self, nids, batch_size, shuffle):
        return self.dgl.dataloading.DistNodeDataLoader(self.g, nids, self.sampler, batch_size=batch_size,
                                                       shuffle=shuffle, drop_last=False)

    def clustered_order(self) -> torch.Tensor:
        """This rank's training seeds grouped by METIS sub-clusters of the partition's own nodes
        (about one mini-batch of seeds per sub-cluster), sub-clusters in a random order, seeds
        shuffled within each (seeded; fixed for the run)."""
        if "clustered" in self._orders:
            return self._orders["clustered"]
        torch, dgl = self.torch, self.dgl
        nids = self.train_nids
        gen = torch.Generator().manual_seed(self.args.seed + 101 * self.rank)
        lp = self.g.local_partition
        inner = torch.nonzero(lp.ndata["inner_node"].bool()).flatten()
        k = min(int(inner.numel()), max(2, -(-int(nids.numel()) // max(1, self.args.batch_size))))
        if k < 2 or nids.numel() < 2:
            order = nids
        else:
            sub = dgl.node_subgraph(lp, inner)
            assign = dgl.metis_partition_assignment(sub, k)
            gids = lp.ndata[dgl.NID][inner]
            sorted_g, perm = torch.sort(gids)
            pos = torch.searchsorted(sorted_g, nids).clamp_(max=sorted_g.numel() - 1)
            found = sorted_g[pos] == nids
            cluster = torch.where(found, assign[perm[pos]], torch.full_like(pos, k))  # unknown seeds last
            rank_of = torch.cat([torch.randperm(k, generator=gen), torch.tensor([k])])
            key = rank_of[cluster].to(torch.float64) + torch.rand(nids.numel(), generator=gen, dtype=torch.float64)
            order = nids[torch.argsort(key)]
        self._orders["clustered"] = order
        return order

    def train_loader(self, order: str | None = None):
        """The training loader of a seed order (default ``--seed-order``)."""
        order = order or self.args.seed_order
        if order == "shuffle":
            return self._loader(self.train_nids, self.args.batch_size, shuffle=True)
        return self._loader(self.clustered_order(), self.args.batch_size, shuffle=False)

    def record_access(self) -> None:
        """Sample ``--record-batches`` mini-batches per seed order of ``--record-access`` (no
        training) and save each rank's remote input nodes per mini-batch (module docstring)."""
        out = os.environ.get("STUDYLIB_TRAINER_OUT")
        if not out or not self.args.record_access:
            return
        torch = self.torch
        want = self.args.record_batches if self.args.record_batches > 0 else self.args.epochs * self.n_batches
        for order in self.args.record_access:
            seq = []
            while len(seq) < want:
                it = iter(self.train_loader(order))
                for _ in range(self.n_batches):
                    input_nodes, _, _ = next(it)
                    remote = input_nodes[self.pb.nid2partid(input_nodes) != self.part]
                    seq.append(remote.to(torch.int64).numpy())
                    if len(seq) >= want:
                        break
            path = os.path.join(out, f"access_rank{self.rank}_{order}.pt")
            torch.save({"halo_ids": self.halo_ids.clone(), "in_degrees": self.halo_degrees.clone(), "batches": seq,
                        "batches_per_epoch": self.n_batches, "order": order, "rank": self.rank,
                        "part": self.part}, path + ".tmp")
            os.replace(path + ".tmp", path)

    def _pull(self, ids):
        return self.feat[ids]

    def _sync(self):
        self.timing.synchronize(self.device)

    def hot_counts(self):
        """Accesses of each halo node over one pre-sampled epoch (the static policy's input)."""
        torch = self.torch
        if self._hot_counts is None:
            t0 = time.perf_counter()
            counts = torch.zeros(self.halo_ids.numel(), dtype=torch.int64)
            it = iter(self.train_loader())
            for _ in range(self.n_batches):
                input_nodes, _, _ = next(it)
                if self.halo_ids.numel():
                    pos = torch.searchsorted(self.halo_ids, input_nodes).clamp_(max=self.halo_ids.numel() - 1)
                    hit = self.halo_ids[pos] == input_nodes
                    counts += torch.bincount(pos[hit], minlength=self.halo_ids.numel())
            self._hot_counts = counts
            self.presample_s = time.perf_counter() - t0
        return self._hot_counts

    # ------------------------------------------------------------------ variants
    def build(self, v: dict) -> dict:
        """Model, optimizer, loader and warmed cache of one variant; records a ``setup`` row."""
        torch = self.torch

        a = self.args
        model = build_homogeneous_model(v["model"], "dgl", self.F, a.hidden, self.num_classes, len(a.fanouts),
                                        num_heads=a.num_heads, seed=a.seed).to(self.device)
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        kw = {}
        presample = 0.0
        if v["policy"] == "static":
            had = self._hot_counts is not None
            kw["hot_counts"] = self.hot_counts()
            presample = 0.0 if had else self.presample_s
        if v["policy"] in ("massivegnn", "lru", "decayed-use"):
            kw["degrees"] = self.halo_degrees
        t0 = time.perf_counter()
        cache, warm = make_cache(v["policy"], self.halo_ids, self._pull, self.F, fraction=v["fraction"],
                                 alpha=v["alpha"], delta=v["delta"], eviction=v["eviction"], **kw)
        warm_s = time.perf_counter() - t0
        self.rows.append({**self._base(v), "kind": "setup", "capacity": cache.S, "num_halo": cache.H,
                          "warm_rows": warm.pulled_rows, "warm_bytes": warm.pulled_rows * self.F * 4,
                          "warm_s": warm_s, "presample_s": presample, "degree_s": self.degree_s})
        return {"v": v, "model": model, "opt": opt, "cache": cache,
                "loader": self.train_loader(),
                "pool": ThreadPoolExecutor(1, thread_name_prefix=f"prefetch-{v['label']}") if v["pipeline"] else None}

    def _base(self, v: dict) -> dict:
        return {"rank": self.rank, "machine": self.machine, "part": self.part, "variant": v["label"],
                "model": v["model"], "policy": v["policy"], "pipeline": bool(v["pipeline"]),
                "fraction": float(v["fraction"]) if v["policy"] != "none" else 0.0, "alpha": float(v["alpha"]),
                "delta": int(v["delta"]), "eviction": bool(v["eviction"]), "seed_order": self.args.seed_order}

    # ------------------------------------------------------------------ one mini-batch
    def prepare(self, st: dict, it, index: int) -> _Batch:
        """Sample a mini-batch and gather its input features (local rows, then remote rows
        through the variant's cache)."""
        torch = self.torch
        t0 = time.perf_counter()
        input_nodes, seeds, blocks = next(it)
        t1 = time.perf_counter()
        is_local = self.pb.nid2partid(input_nodes) == self.part
        local_ids, remote_ids = input_nodes[is_local], input_nodes[~is_local]
        x_local = self.feat[local_ids]
        y = self.labels[seeds]
        t2 = time.perf_counter()
        cache = st["cache"]
        x_remote = cache.fetch(remote_ids)
        s = cache.last
        t3 = time.perf_counter()
        x = torch.empty((input_nodes.numel(), self.F), dtype=x_remote.dtype)
        x[is_local] = x_local
        x[~is_local] = x_remote
        if self.device.type != "cpu":
            blocks = [b.to(self.device) for b in blocks]
            x, y = x.to(self.device), y.to(self.device)
            self._sync()
        t4 = time.perf_counter()
        in_fetch_other = max(0.0, (t3 - t2) - (s.remote_s + s.lookup_s + s.eviction_s))
        times = {"sampling": t1 - t0, "local_fetch": (t2 - t1) + (t4 - t3), "remote_fetch": s.remote_s,
                 "cache_lookup": s.lookup_s + in_fetch_other, "cache_eviction": s.eviction_s, "prepare": t4 - t0}
        counts = {"input_nodes": int(input_nodes.numel()), "local_nodes": int(local_ids.numel()),
                  "remote_nodes": int(remote_ids.numel()), "halo": s.halo, "hits": s.hits,
                  "halo_misses": s.halo_misses, "nonhalo": s.nonhalo, "pulled_rows": s.pulled_rows,
                  "admitted": s.admitted, "remote_bytes": s.pulled_rows * self.F * x_remote.element_size(),
                  "seeds": int(seeds.numel())}
        if self.args.verify:
            ref = self.feat[input_nodes]
            counts["mismatched_rows"] = int((x.cpu() != ref).any(dim=1).sum())
        return _Batch(index, blocks, x, y, times, counts)

    def train_step(self, st: dict, b: _Batch) -> dict:
        """Forward (with the loss), backward, gradient all-reduce, Adam update; returns times and loss."""
        torch, dist = self.torch, self.dist

        model, opt = st["model"], st["opt"]
        model.train()
        self._sync()
        t0 = time.perf_counter()
        logits = model(b.blocks, b.x)
        loss = F.cross_entropy(logits, b.y)
        self._sync()
        t1 = time.perf_counter()
        loss.backward()
        self._sync()
        t2 = time.perf_counter()
        params = [p for p in model.parameters() if p.requires_grad]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
        if self.world > 1:
            dist.all_reduce(flat)
            flat /= self.world
        off = 0
        for p in params:
            n = p.numel()
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.copy_(flat[off:off + n].view_as(p))
            off += n
        self._sync()
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        self._sync()
        t4 = time.perf_counter()
        return {"forward": t1 - t0, "backward": t2 - t1, "allreduce": t3 - t2, "update": t4 - t3,
                "loss": float(loss.detach())}

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self, st: dict, epoch: int, slot: int) -> None:
        """One epoch of one variant (``n_batches`` mini-batches); appends batch and epoch rows."""
        v = st["v"]
        it = iter(st["loader"])
        pool = st["pool"]
        self.dist.barrier()
        rx0, tx0 = _iface_bytes(self.iface)
        t_start = time.perf_counter()
        batch_rows = []
        fut = pool.submit(self.prepare, st, it, 0) if pool else None
        for i in range(self.n_batches):
            if pool:
                tw = time.perf_counter()
                b = fut.result()
                wait = time.perf_counter() - tw
                if i + 1 < self.n_batches:
                    fut = pool.submit(self.prepare, st, it, i + 1)
            else:
                b = self.prepare(st, it, i)
                wait = 0.0
            r = self.train_step(st, b)
            batch_rows.append({**self._base(v), "kind": "batch", "epoch": epoch, "slot": slot, "batch": i,
                               **{f"{k}_s": t for k, t in b.times.items()}, "wait_s": wait,
                               **{f"{k}_s": r[k] for k in ("forward", "backward", "allreduce", "update")},
                               "loss": r["loss"], **b.counts})
        epoch_s = time.perf_counter() - t_start
        rx1, tx1 = _iface_bytes(self.iface)
        self.rows.extend(batch_rows)
        agg = {}
        for key in [f"{k}_s" for k in (*PREPARE_REGIONS, "prepare", *TRAIN_REGIONS)] + [
                "input_nodes", "local_nodes", "remote_nodes", "halo", "hits", "halo_misses", "nonhalo",
                "pulled_rows", "admitted", "remote_bytes"] + (["mismatched_rows"] if self.args.verify else []):
            agg[key] = sum(r[key] for r in batch_rows)
        self.rows.append({**self._base(v), "kind": "epoch", "epoch": epoch, "slot": slot, "epoch_s": epoch_s,
                          "start_s": t_start - self.t0,
                          "n_batches": self.n_batches, "net_rx_bytes": rx1 - rx0, "net_tx_bytes": tx1 - tx0,
                          "train_loss": sum(r["loss"] for r in batch_rows) / max(1, len(batch_rows)), **agg})

    # ------------------------------------------------------------------ accuracy
    def accuracy(self, st: dict) -> None:
        """Test accuracy over all ranks' test nodes (at most ``eval_max_nodes`` per rank, the same
        nodes for every variant), features by plain pulls; appends an ``accuracy`` row."""
        torch, dist = self.torch, self.dist
        gen = torch.Generator().manual_seed(self.args.seed + 7)
        nids = self.test_nids[torch.randperm(self.test_nids.numel(), generator=gen)[: self.args.eval_max_nodes]]
        correct = count = 0
        model = st["model"]
        model.eval()
        if nids.numel():
            loader = self._loader(nids, self.args.eval_batch_size, shuffle=False)
            with torch.no_grad():
                for input_nodes, seeds, blocks in loader:
                    x = self.feat[input_nodes].to(self.device)
                    y = self.labels[seeds].to(self.device)
                    blocks = [b.to(self.device) for b in blocks] if self.device.type != "cpu" else blocks
                    pred = model(blocks, x).argmax(-1)
                    correct += int((pred == y).sum())
                    count += int(y.numel())
        t = torch.tensor([correct, count], dtype=torch.int64)
        dist.all_reduce(t)
        self.rows.append({**self._base(st["v"]), "kind": "accuracy", "epoch": self.args.epochs - 1,
                          "test_correct": int(t[0]), "test_count": int(t[1]),
                          "test_accuracy": float(t[0]) / max(1, int(t[1])), "chance_accuracy": 1.0 / self.num_classes})

    def write(self) -> None:
        write_rank_rows(self.rows, self.rank, {**self.network, "threads": self.threads, "device": self.device.type,
                                               "backend": self.backend, "world_size": self.world, "mode": self.mode})


def main(argv: list[str] | None = None) -> int:
    """Run every variant for ``--epochs`` epochs, alternating, then the accuracy; write the rows."""
    args = parse_args(argv)
    tr = _Trainer(args)
    torch = tr.torch
    torch.manual_seed(args.seed + tr.rank)
    tr.np.random.seed((args.seed + tr.rank) % 2**32)  # numpy's legacy seeding takes 32 bits
    tr.rows.append({"kind": "info", "rank": tr.rank, "machine": tr.machine, "part": tr.part,
                    "num_inner": tr.num_inner, "num_halo": int(tr.halo_ids.numel()),
                    "train_nodes": int(tr.train_nids.numel()), "test_nodes": int(tr.test_nids.numel()),
                    "n_batches": tr.n_batches, "feature_dim": tr.F, "num_classes": tr.num_classes,
                    "init_s": tr.init_s, "degree_s": tr.degree_s})
    states = [tr.build(v) for v in args.variants]
    if tr._hot_counts is not None:
        tr.rows.append({"kind": "presample", "rank": tr.rank, "presample_s": tr.presample_s})
    for epoch in range(args.epochs):
        # counterbalanced (ABC CBA): every variant keeps its neighbours, and over two epochs every
        # variant has the same mean position, so slow drifts of the machine's load cancel in pairs
        order = states if epoch % 2 == 0 else states[::-1]
        for slot, st in enumerate(order):
            tr.run_epoch(st, epoch, slot)
        print(f"rank {tr.rank}: epoch {epoch} done", flush=True)
    for st in states:
        tr.accuracy(st)
        if st["pool"]:
            st["pool"].shutdown()
    tr.record_access()
    tr.write()
    tr.dist.barrier()
    tr.dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
