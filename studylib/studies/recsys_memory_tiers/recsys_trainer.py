"""The DistDGL trainer process of the recommender study (notebook ``04-recsys-memory-tiers``).

Started by :func:`studylib.distributed.run_cluster` as ``python -m
studylib.studies.recsys_memory_tiers.recsys_trainer <args>`` with the ``DGL_*`` / ``MASTER_*`` / ``RANK`` /
``WORLD_SIZE`` environment set. It trains NGCF or LightGCN (:mod:`studylib.models.recsys`) for link
prediction on a ``dgl.distributed.DistGraph`` of the user-item graph, the way distributed
*subgraph* training works: each trainer takes its share of the user->item training edges
(``edge_split``, the edges owned by its partition), and for every mini-batch of seed edges
``dgl.dataloading.DistEdgeDataLoader`` samples the L-hop neighbourhoods of their endpoints and of
one uniform negative item per edge (:class:`studylib.models.recsys.ItemNegativeSampler`) into DGL
blocks. The ego embeddings are a ``dgl.distributed.DistEmbedding`` (rows held by the servers,
pulled for a mini-batch's input nodes, updated by ``dgl.distributed.optim.SparseAdam``); NGCF's
dense weights are averaged over the trainers with ``torch.distributed.all_reduce`` (gloo) after
every backward pass.

Several configurations (``--configs``: model, layers, width) run one after the other in the same
process, each with its own embedding, optimizers and data loader. Per configuration and step,
device-synchronised wall times (seconds) of: ``sampling`` (the loader building the blocks),
``fetch`` (pulling the input nodes' embeddings and the blocks' node degrees from the servers),
``forward`` (with the BPR loss), ``backward``, ``communication`` (the dense all-reduce) and
``update`` (SparseAdam pushing the sparse gradients, Adam on the dense weights), plus ``step_total``
around all of them. With ``--redundancy`` every configuration also samples one whole epoch of its
seed edges and counts the redundancy of the blocks (:class:`studylib.models.recsys.RedundancyCounter`);
the distinct ids go to ``rank<r>.redundancy.npz`` so that the driver can merge the ranks.

Output ``$STUDYLIB_TRAINER_OUT/rank<r>.parquet``: rows with ``kind`` ``info`` (one), ``step``
(per configuration, step and region), ``memory`` (per process: this trainer and, when it can be
found, its machine's server; peak and current resident set size) and ``redundancy`` (per
configuration and layer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist

from studylib.distributed.trainer_io import write_rank_rows
from studylib.models.recsys import (
    DenseTable,
    ItemNegativeSampler,
    RedundancyCounter,
    block_bpr_loss,
    build_recommender,
    edge_weights,
    normal_init,
)
from studylib.timing import StageTimer, endless_batches, stage

REGIONS = ("sampling", "fetch", "forward", "backward", "communication", "update")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``--help`` lists them)."""
    ap = argparse.ArgumentParser(prog="python -m studylib.studies.recsys_memory_tiers.recsys_trainer")
    ap.add_argument("--graph-name", required=True, help="DistDGL graph name (the partition's graph_name)")
    ap.add_argument("--configs", required=True, help='JSON list of {"model", "num_layers", "dim"}')
    ap.add_argument("--batch-size", type=int, default=2048, help="seed edges per step over all trainers")
    ap.add_argument("--fanout", type=int, default=10, help="sampled neighbours per node and layer; -1 = all")
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--reg", type=float, default=1e-4, help="L2 weight on the batch's ego embeddings")
    ap.add_argument("--warmup-steps", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration (into the next epoch when one holds fewer)")
    ap.add_argument("--redundancy", action="store_true", help="sample one epoch per configuration and count")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    a.configs = json.loads(a.configs)
    for c in a.configs:
        if c.get("model") not in ("lightgcn", "ngcf") or int(c.get("num_layers", 0)) < 1 or int(c.get("dim", 0)) < 1:
            raise SystemExit(f"bad configuration {c}: model lightgcn|ngcf, num_layers >= 1, dim >= 1")
    return a


def _status_kb(pid: int | str, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _server_pid(machine: int) -> int | None:
    """The pid of this machine's DistDGL server (same ``DGL_IP_CONFIG`` and ``DGL_SERVER_ID``),
    found through ``/proc/<pid>/environ``; ``None`` when it cannot be read."""
    want = {b"DGL_ROLE=server", f"DGL_SERVER_ID={machine}".encode(),
            f"DGL_IP_CONFIG={os.environ.get('DGL_IP_CONFIG', '')}".encode()}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as fh:
                env = set(fh.read().split(b"\0"))
        except OSError:
            continue
        if want <= env:
            return int(d)
    return None


def _iface_bytes(iface: str) -> int:
    """rx + tx bytes of ``iface`` (this network namespace), 0 when unknown."""
    if not iface:
        return 0
    try:
        for line in open("/proc/net/dev"):
            name, _, rest = line.partition(":")
            if name.strip() == iface:
                f = rest.split()
                return int(f[0]) + int(f[8])
    except OSError:
        pass
    return 0


class _Trainer:
    def __init__(self, args: argparse.Namespace):
        import dgl  # lazy: DGL is a heavy optional dependency (studylib imports without it)

        self.args, self.dgl, self.torch, self.dist = args, dgl, torch, dist
        self.mode = os.environ.get("STUDYLIB_CLUSTER_MODE", "netns")
        self.iface = os.environ.get("STUDYLIB_NET_IFACE", "")
        self.network = json.loads(os.environ.get("STUDYLIB_NETWORK", "{}"))
        self.machine = int(os.environ.get("STUDYLIB_MACHINE_ID", "0"))
        self.threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or len(os.sched_getaffinity(0))
        torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        dgl.distributed.initialize(os.environ["DGL_IP_CONFIG"])
        dist.init_process_group("gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        part_config = os.environ.get("DGL_CONF_PATH") if self.mode == "standalone" else None
        self.g = dgl.distributed.DistGraph(args.graph_name, part_config=part_config)
        self.init_s = time.perf_counter() - t0
        self.pb = self.g.get_partition_book()
        n = self.g.num_nodes()
        is_item = torch.cat([self.g.ndata["is_item"][torch.arange(s, min(s + 1_000_000, n))]
                             for s in range(0, n, 1_000_000)])
        self.item_nodes = torch.nonzero(is_item.bool()).flatten()
        self.seeds = dgl.distributed.edge_split(self.g.edata["user_to_item"], self.pb, force_even=True)
        self.deg = self.g.ndata["deg"]
        self.rows: list[dict] = []
        self.rows.append({"kind": "info", "rank": self.rank, "machine": self.machine, "part": int(self.pb.partid),
                          "seed_edges": int(self.seeds.numel()), "num_nodes": int(n),
                          "num_edges": int(self.g.num_edges()), "init_s": self.init_s})

    def _loader(self, num_layers: int, seed: int):
        dgl = self.dgl
        sampler = dgl.dataloading.NeighborSampler([self.args.fanout] * num_layers)
        local_bs = max(1, self.args.batch_size // self.world)
        return dgl.dataloading.DistEdgeDataLoader(self.g, self.seeds, sampler, batch_size=local_bs, shuffle=True,
                                                  drop_last=False,
                                                  negative_sampler=ItemNegativeSampler(self.item_nodes, seed=seed))

    def _fetch(self, emb, input_nodes, blocks):
        """Pull the input nodes' embeddings and every block's node degrees (edge weights)."""

        x = emb(input_nodes)
        for b in blocks:
            src = b.srcdata[self.dgl.NID]
            d = self.deg[src]
            b.srcdata["deg"] = d
            b.dstdata["deg"] = d[: b.num_dst_nodes()]
            b.edata["w"] = edge_weights(b)
        return x

    def run_config(self, cfg: dict, index: int) -> None:
        import torch.nn.functional  # noqa: F401

        torch, dgl, dist, args = self.torch, self.dgl, self.dist, self.args
        model_name, L, d = cfg["model"], int(cfg["num_layers"]), int(cfg["dim"])
        seed = args.seed + 1000 * index
        torch.manual_seed(seed)
        placeholder = DenseTable(torch.zeros(1, d), trainable=False)
        model = build_recommender(model_name, 1, d, L, seed=seed, embedding=placeholder)
        dense = [p for p in model.parameters() if p.requires_grad]
        emb = dgl.distributed.DistEmbedding(self.g.num_nodes(), d, name=f"emb{index}_{model_name}_{L}_{d}",
                                            init_func=normal_init)  # importable: the servers unpickle it
        sparse_opt = dgl.distributed.optim.SparseAdam([emb], lr=args.lr)
        dense_opt = torch.optim.Adam(dense, lr=args.lr) if dense else None
        loader = self._loader(L, seed + self.rank)
        steps_per_epoch = int(loader.expected_idxs)
        # every rank runs warmup + steps steps, into the next epoch when one epoch holds fewer (a small
        # graph, a large batch): the timed steps are never silently all warm-up
        n_steps = args.warmup_steps + args.steps
        timer = StageTimer()
        batches = endless_batches(loader)
        rx0 = _iface_bytes(self.iface)
        with timer.activate():
            for step in range(n_steps):
                net0 = _iface_bytes(self.iface)
                with timer.step(step):
                    with stage("sampling"):
                        input_nodes, pair_graph, neg_graph, blocks = next(batches)
                    with stage("fetch"):
                        x = self._fetch(emb, input_nodes, blocks)
                    with stage("forward"):
                        loss = block_bpr_loss(model, blocks, x, pair_graph, neg_graph, args.reg)
                    with stage("backward"):
                        loss.backward()
                    with stage("communication"):
                        if dense and self.world > 1:
                            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                              for p in dense])
                            dist.all_reduce(flat)
                            flat /= self.world
                            off = 0
                            for p in dense:
                                k = p.numel()
                                if p.grad is not None:
                                    p.grad.copy_(flat[off:off + k].view_as(p))
                                off += k
                    with stage("update"):
                        sparse_opt.step()
                        if dense_opt is not None:
                            dense_opt.step()
                            dense_opt.zero_grad(set_to_none=True)
                net = _iface_bytes(self.iface) - net0
                if step >= args.warmup_steps:
                    self.rows.append({"kind": "counts", "config": index, "model": model_name, "num_layers": L,
                                      "dim": d, "rank": self.rank, "step": step - args.warmup_steps,
                                      "input_nodes": int(len(input_nodes)), "seed_edges": int(pair_graph.num_edges()),
                                      "block_edges": int(sum(b.num_edges() for b in blocks)),
                                      "network_bytes": net, "loss": float(loss.detach())})
        for r in timer.records:
            if r["step"] >= args.warmup_steps:
                self.rows.append({"kind": "step", "config": index, "model": model_name, "num_layers": L, "dim": d,
                                  "rank": self.rank, "step": r["step"] - args.warmup_steps, "region": r["name"],
                                  "seconds": r["seconds"], "steps_per_epoch": steps_per_epoch,
                                  "local_batch_size": max(1, args.batch_size // self.world)})
        self.rows.append({"kind": "traffic", "config": index, "model": model_name, "num_layers": L, "dim": d,
                          "rank": self.rank, "network_bytes": _iface_bytes(self.iface) - rx0, "steps": n_steps})
        if args.redundancy:
            counter = RedundancyCounter(L)
            t0 = time.perf_counter()
            for _, _, _, blocks in self._loader(L, seed + 7 + self.rank):
                counter.add(blocks)
            secs = time.perf_counter() - t0
            for row in counter.rows():
                self.rows.append({"kind": "redundancy", "config": index, "model": model_name, "num_layers": L,
                                  "dim": d, "rank": self.rank, "epoch_sampling_s": secs, **row})
            nodes, edges = counter.distinct()
            import numpy as np

            out = os.environ.get("STUDYLIB_TRAINER_OUT")
            if out:
                np.savez_compressed(os.path.join(out, f"rank{self.rank}.c{index}.redundancy.npz"),
                                    **{f"nodes{i + 1}": nodes[i] for i in range(L)},
                                    **{f"edges{i + 1}": edges[i] for i in range(L)})
        dist.barrier()

    def memory_rows(self) -> None:
        me = os.getpid()
        procs = [("trainer", me)]
        spid = _server_pid(self.machine) if self.rank % int(os.environ.get("STUDYLIB_TRAINERS_PER_MACHINE", "1")) == 0 \
            else None
        if spid is not None:
            procs.append(("server", spid))
        for role, pid in procs:
            self.rows.append({"kind": "memory", "rank": self.rank, "machine": self.machine, "role": role,
                              "peak_rss_bytes": _status_kb(pid, "VmHWM"), "rss_bytes": _status_kb(pid, "VmRSS"),
                              "rss_shmem_bytes": _status_kb(pid, "RssShmem")})

    def write(self) -> None:
        write_rank_rows(self.rows, self.rank, {**self.network, "threads": self.threads, "world_size": self.world,
                                               "mode": self.mode})


def main(argv: list[str] | None = None) -> int:
    """Run every configuration, then record memory, write the rows and leave the cluster."""
    args = parse_args(argv)
    tr = _Trainer(args)
    for i, cfg in enumerate(args.configs):
        tr.run_config(cfg, i)
        print(f"rank {tr.rank}: configuration {i} {cfg} done", flush=True)
    tr.memory_rows()
    tr.write()
    tr.dist.barrier()
    tr.dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
