"""Tests of the recommender data, models, loss, metrics and redundancy (notebook 04-recsys-memory-tiers):
studylib.data.recsys, studylib.models.recsys, the parameters and the study helpers.

MovieLens 100K is read from the dataset mirror (``$STUDYLIB_DATA_MIRROR`` or ``../shared/data``) into
a temporary cache; those tests are skipped when there is no mirror."""

from __future__ import annotations

import math

import dgl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import mirror_path

from studylib import params
from studylib.data import recsys
from studylib.models import recsys as rm


# --------------------------------------------------------------------------- a hand-made graph
def tiny_graph() -> recsys.BipartiteGraph:
    """3 users, 4 items; user 0 -> items 0, 1; user 1 -> items 1, 2; user 2 -> items 2, 3, 0."""
    tu = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    ti = torch.tensor([0, 1, 1, 2, 2, 3, 0])
    return recsys.BipartiteGraph("tiny", 3, 4, tu, ti, torch.tensor([0, 1]), torch.tensor([3, 0]))


def dense_norm_adjacency(g: recsys.BipartiteGraph) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the user-item graph as a dense [N, N] matrix (users first)."""
    n = g.num_nodes
    a = torch.zeros(n, n)
    a[g.train_users, g.num_users + g.train_items] = 1
    a[g.num_users + g.train_items, g.train_users] = 1
    d = a.sum(1).clamp(min=1)
    return a / torch.sqrt(d[:, None] * d[None, :])


def test_lightgcn_forward_matches_dense_reference():
    g = tiny_graph()
    dg = g.to_dgl()
    model = rm.LightGCN(g.num_nodes, 5, 3)
    e0 = model.embedding.full().detach()
    lap = dense_norm_adjacency(g)
    layers = [e0]
    for _ in range(3):
        layers.append(lap @ layers[-1])
    ref = torch.stack(layers).mean(0)
    out = model(dg)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    idx = torch.tensor([4, 0, 6])
    torch.testing.assert_close(model(dg, out_idx=idx), ref[idx], rtol=1e-5, atol=1e-6)


def test_ngcf_forward_matches_dense_reference():
    g = tiny_graph()
    dg = g.to_dgl()
    model = rm.NGCF(g.num_nodes, 4, 2)
    e = model.embedding.full().detach()
    lap = dense_norm_adjacency(g)
    outs = [e]
    for k in range(2):
        side = lap @ e
        e = F.leaky_relu(model.W1[k](side + e) + model.W2[k](side * e), 0.2)
        outs.append(F.normalize(e, dim=1))
    ref = torch.cat(outs, 1)
    torch.testing.assert_close(model(dg), ref, rtol=1e-4, atol=1e-5)
    assert model.out_dim == 4 * 3


@pytest.mark.parametrize("name", ["lightgcn", "ngcf"])
def test_blocks_with_all_neighbours_equal_full_graph(name):
    """Sampled blocks with every neighbour (fanout -1) reproduce the full-graph representations of
    the seed nodes: the block path and its edge weights are right."""
    g = tiny_graph()
    dg = g.to_dgl()
    model = rm.build_recommender(name, g.num_nodes, 4, 2, seed=3)
    seeds = torch.tensor([1, 5])
    sampler = dgl.dataloading.NeighborSampler([-1, -1])
    input_nodes, output_nodes, blocks = sampler.sample_blocks(dg, seeds)
    for b in blocks:
        b.srcdata["deg"] = dg.ndata["deg"][b.srcdata[dgl.NID]]
        b.dstdata["deg"] = dg.ndata["deg"][b.dstdata[dgl.NID]]
    x = model.embedding.full().detach()[input_nodes]
    out = model(blocks, x)
    full = model(dg).detach()
    torch.testing.assert_close(out, full[output_nodes], rtol=1e-4, atol=1e-5)


def test_split_table_equals_dense_table_and_trains_both_parts():
    g = tiny_graph()
    dg = g.to_dgl()
    w = rm.edge_weights(dg)
    e = torch.randn(g.num_nodes, 3)
    hot_ids = torch.tensor([2, 5])
    is_hot = torch.zeros(g.num_nodes, dtype=torch.bool)
    is_hot[hot_ids] = True
    split = rm.SplitTable(e[hot_ids].clone(), e[~is_hot].clone(), hot_ids)
    dense = rm.DenseTable(e.clone())
    torch.testing.assert_close(split.full(), e)
    idx = torch.tensor([5, 0, 2, 6])
    torch.testing.assert_close(split.rows(idx), e[idx])
    torch.testing.assert_close(split.aggregate(dg, w), dense.aggregate(dg, w))
    # the share of edge reads whose source row is hot
    src, _ = dg.edges()
    assert split.last_hit_rate == pytest.approx(float(is_hot[src].float().mean()))
    model = rm.LightGCN(g.num_nodes, 3, 2, embedding=split)
    model(dg).sum().backward()
    assert split.hot.grad is not None and split.cold.grad is not None
    assert split.hot.grad.abs().sum() > 0 and split.cold.grad.abs().sum() > 0


def test_bpr_loss_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    n = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    # x = <u,p> - <u,n> = [1, 2]; loss = mean(-log sigmoid(x))
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))) / 2
    assert float(rm.bpr_loss(u, p, n)) == pytest.approx(expected, rel=1e-6)
    reg = float(rm.bpr_loss(u, p, n, ego=(u, p, n), reg=0.1))
    assert reg == pytest.approx(expected + 0.1 * 0.5 * (5 + 2 + 1) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        rm.bpr_loss(u, p, n[:1])


def test_recall_and_ndcg_by_hand():
    topk = np.array([[1, 2, 3], [7, 8, 9]])
    rec, ndcg = rm.topk_metrics(topk, [np.array([2, 5]), np.array([7])], k=3)
    assert rec.tolist() == pytest.approx([0.5, 1.0])
    # user 0: one hit at rank 2 -> DCG 1/log2(3); ideal: two hits at ranks 1, 2
    assert ndcg[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg[1] == pytest.approx(1.0)
    rec, ndcg = rm.topk_metrics(np.array([[4, 5]]), [np.array([1])], k=2)
    assert rec[0] == 0 and ndcg[0] == 0
    with pytest.raises(ValueError, match="no test items"):
        rm.topk_metrics(topk, [np.array([1]), np.array([], dtype=np.int64)], k=3)


def test_evaluate_topk_excludes_training_items():
    g = tiny_graph()
    # user 0 trained on items 0 and 1, test item 3; user 1 trained on 1, 2, test item 0
    items = torch.tensor([[9.0, 0, 0, 0], [8.0, 0, 0, 0], [7.0, 0, 0, 0], [1.0, 0, 0, 0]])
    top0 = rm.evaluate_topk(torch.tensor([[1.0, 0, 0, 0]]).expand(3, 4).contiguous(), items, g, k=2)
    # user 0: items 2 (7) then 3 (1) -> hit at rank 2; user 1: items 0 (9) then 3 (1) -> hit at rank 1
    assert top0["recall"] == pytest.approx(1.0)
    assert top0["ndcg"] == pytest.approx(((1 / math.log2(3)) + 1.0) / 2)


def test_negative_sampler_avoids_positives():
    g = tiny_graph()
    s = rm.UniformNegativeSampler(g.train_keys(), g.num_items, seed=0, max_rounds=200)
    users = torch.tensor([0, 1, 2] * 200)
    neg = s.sample(users).numpy()
    assert not s.is_positive(users.numpy(), neg).any()
    assert set(np.unique(neg[users.numpy() == 0])) == {2, 3}
    assert set(np.unique(neg[users.numpy() == 2])) == {1}
    assert s.collisions == 0
    # with no redraws, the positives that remain are counted, not hidden
    s0 = rm.UniformNegativeSampler(g.train_keys(), g.num_items, seed=0, max_rounds=0)
    neg0 = s0.sample(users).numpy()
    assert s0.collisions == int(s0.is_positive(users.numpy(), neg0).sum()) > 0


def test_redundancy_on_hand_made_blocks():
    def block(src_ids, eids):
        b = dgl.create_block((torch.arange(len(eids)) % len(src_ids), torch.zeros(len(eids), dtype=torch.int64)),
                             num_src_nodes=len(src_ids), num_dst_nodes=1)
        b.srcdata[dgl.NID] = torch.tensor(src_ids)
        b.edata[dgl.EID] = torch.tensor(eids)
        return b

    c = rm.RedundancyCounter(1)
    c.add([block([0, 1, 2], [10, 11])])
    c.add([block([1, 2, 3], [11, 12])])
    (row,) = c.rows()
    assert (row["sum_nodes"], row["distinct_nodes"]) == (6, 4)
    assert row["node_redundancy"] == pytest.approx(1.5)
    assert (row["sum_edges"], row["distinct_edges"]) == (4, 3)
    assert row["edge_redundancy"] == pytest.approx(4 / 3)
    other = rm.RedundancyCounter(1)
    other.add([block([3, 4], [12, 13])])
    (m,) = c.merge(other).rows()
    assert (m["sum_nodes"], m["distinct_nodes"], m["batches"]) == (8, 5, 3)
    assert m["edge_redundancy"] == pytest.approx(6 / 4)
    with pytest.raises(ValueError):
        c.add([block([0], [1]), block([0], [1])])


def test_redundancy_of_disjoint_batches_is_one():
    c = rm.RedundancyCounter(2)
    g = dgl.graph((torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 3, 2])))
    sampler = dgl.dataloading.NeighborSampler([-1, -1])
    for seeds in (torch.tensor([0]), torch.tensor([2])):
        c.add(sampler.sample_blocks(g, seeds)[2])
    assert all(r["node_redundancy"] == 1 and r["edge_redundancy"] == 1 for r in c.rows())


# --------------------------------------------------------------------------- loaders
def test_rating_loader_formats(tmp_path):
    train = tmp_path / "ratings.base"
    train.write_text("10\t100\t5\t881250949\n10\t101\t3\t881250950\n20\t100\t4\t881250951\n\n30\t102\t1\t1\n")
    test = tmp_path / "ratings.test"
    test.write_text("10\t102\t4\t881250999\n20\t103\t5\t881251000\n")
    g = recsys.load_ratings(train, test)
    assert (g.num_users, g.num_items, g.num_train, g.num_test) == (3, 4, 4, 2)
    assert g.info["format"] == "ratings"
    # ids are remapped in sorted order: user 10 -> 0, item 103 -> 3
    assert sorted(zip(g.test_users.tolist(), g.test_items.tolist())) == [(0, 2), (1, 3)]
    kept = recsys.load_ratings(train, test, min_rating=4)
    assert kept.num_train == 2
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n1,5,4.0,10\n1,6,3.5,20\n2,5,5.0,30\n2,7,2.0,40\n")
    one = recsys.load_ratings(csv, test_fraction=0.5)
    assert one.num_train + one.num_test == 4 and one.num_test == 2
    assert one.info["split"] == "temporal"
    ml10m = tmp_path / "ratings.dat"
    ml10m.write_text("1::122::5::838985046\n1::185::5::838983525\n2::122::3::868245777\n")
    assert recsys.load_ratings(ml10m, test_fraction=0.0).num_train == 3


def test_lightgcn_format_loader(tmp_path):
    (tmp_path / "train.txt").write_text("0 0 1 2\n1 2 3\n2\n3 1\n")
    (tmp_path / "test.txt").write_text("0 3\n1 0 1\n")
    g = recsys.load_interactions(tmp_path)
    assert (g.num_users, g.num_items, g.num_train, g.num_test) == (4, 4, 6, 3)
    assert g.user_degrees().tolist() == [3, 2, 0, 1]
    with pytest.raises(FileNotFoundError, match="test.txt"):
        (tmp_path / "test.txt").unlink()
        recsys.load_lightgcn(tmp_path)


@pytest.mark.parametrize("text, line, match", [
    ("1\t2\t3\t4\n1\t2\t3\n", 2, "expected 4 columns"),
    ("1 2\n", 1, "expected 3 or 4 columns"),
    ("1\t2\t3\n1\tx7\t3\n", 2, "item id must be an integer"),
    ("1.5\t2\t3\n", 1, "user id must be an integer"),
    ("1\t2\tgood\n", 1, "rating must be a number"),
])
def test_malformed_rating_file_names_file_and_line(tmp_path, text, line, match):
    f = tmp_path / "bad.data"
    f.write_text(text)
    with pytest.raises(recsys.RatingFormatError, match=match) as err:
        recsys.read_rating_file(f)
    assert f"{f}:{line}:" in str(err.value)


def test_malformed_lightgcn_file_names_file_and_line(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("0 1 2\n1 3 four\n")
    with pytest.raises(recsys.RatingFormatError, match=rf"{f}:2: item id must be an integer"):
        recsys.read_lightgcn_file(f)


def test_split_per_user():
    users = np.array([0] * 10 + [1] * 1 + [2] * 5)
    items = np.arange(16)
    stamps = np.arange(16)[::-1].copy()
    train, test = recsys.split_per_user(users, items, 0.2, timestamps=stamps)
    assert test.sum() == 2 + 0 + 1
    assert not (train & test).any()
    # temporal: user 0's test items are its latest (smallest index here, largest stamp)
    assert set(items[test & (users == 0)]) == {0, 1}
    with pytest.raises(ValueError):
        recsys.split_per_user(users, items, 1.0)


def test_synthetic_generator_sizes_skew_and_determinism():
    a = recsys.synthetic_bipartite(200, 300, 3000, user_skew=0.0, item_skew=0.0, seed=1)
    b = recsys.synthetic_bipartite(200, 300, 3000, user_skew=1.2, item_skew=1.2, seed=1)
    for g in (a, b):
        assert g.num_train + g.num_test == 3000
        assert g.num_users == 200 and g.num_items == 300
    assert b.statistics()["item_degree_gini"] > a.statistics()["item_degree_gini"] + 0.2
    c = recsys.synthetic_bipartite(200, 300, 3000, user_skew=1.2, item_skew=1.2, seed=1)
    assert torch.equal(b.train_items, c.train_items)
    like = recsys.synthetic_like("gowalla", 0.01)
    p = recsys.SYNTHETIC_PRESETS["gowalla"]
    assert like.num_users == round(p["num_users"] * 0.01)
    assert like.num_train + like.num_test == round(p["num_interactions"] * 0.01)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        recsys.synthetic_like("yelp")
    with pytest.raises(ValueError):
        recsys.synthetic_bipartite(5, 5, 20)


def test_graph_validation_and_save(tmp_path):
    with pytest.raises(ValueError, match="item ids"):
        recsys.BipartiteGraph("x", 2, 2, torch.tensor([0]), torch.tensor([2]), torch.tensor([]), torch.tensor([]))
    g = tiny_graph()
    g.save(tmp_path / "g.pt")
    h = recsys.BipartiteGraph.load(tmp_path / "g.pt")
    assert torch.equal(h.train_items, g.train_items) and h.num_users == 3
    dg = g.to_dgl()
    assert dg.num_edges() == 2 * g.num_train and int(dg.edata["user_to_item"].sum()) == g.num_train


# --------------------------------------------------------------------------- MovieLens 100K
@pytest.fixture
def movielens(tmp_path, monkeypatch):
    mirror = mirror_path()
    if mirror is None or not (mirror / "movielens-100k" / "raw" / "u1.base").is_file():
        pytest.skip("no dataset mirror with movielens-100k")
    monkeypatch.setenv("STUDYLIB_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(tmp_path / "cache"))
    return recsys.load_movielens_100k()


def test_movielens_100k_statistics(movielens):
    g = movielens
    assert (g.num_users, g.num_items, g.num_train, g.num_test) == (943, 1682, 80000, 20000)
    assert g.info["checksums_verified"]


def test_models_beat_popularity_on_movielens(movielens):
    torch.set_num_threads(1)
    g = movielens
    pop = rm.evaluate_topk(*rm.popularity_scores(g), g, k=20)
    for name, lr, epochs in (("lightgcn", 0.01, 3), ("ngcf", 0.01, 4)):
        model = rm.build_recommender(name, g.num_nodes, 32, 1, seed=0)
        last = rm.fit(model, g, epochs=epochs, batch_size=4096, lr=lr, seed=0)[-1]
        assert last["recall"] > pop["recall"], (name, last, pop)
        assert last["ndcg"] > pop["ndcg"], (name, last, pop)


# --------------------------------------------------------------------------- parameters and helpers
def test_parameters_validate():
    p = params.validate("04-recsys-memory-tiers", {})
    assert p.machine_counts == [2, 4]
    with pytest.raises(ValueError, match="dataset 'yelp': unknown name"):
        params.validate("04-recsys-memory-tiers", {"datasets": ["yelp"]})
    with pytest.raises(ValueError, match="fanout"):
        params.validate("04-recsys-memory-tiers", {"fanout": 0})
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        params.validate("04-recsys-memory-tiers", {"batch_size": -3})
    for profile in params.PROFILES:
        params.load_profile("04-recsys-memory-tiers", profile)


def test_footprint_model_and_sweep_configs():
    from studylib.studies.recsys_memory_tiers import measure as rs

    a = rs.predicted_footprint_bytes("lightgcn", 1000, 10000, 2, 64, batch_size=0)
    assert rs.predicted_footprint_bytes("lightgcn", 2000, 20000, 2, 64, batch_size=0) == pytest.approx(2 * a, rel=0.01)
    assert rs.predicted_footprint_bytes("ngcf", 1000, 10000, 2, 64) > a
    p = params.validate("04-recsys-memory-tiers", {"models": ["lightgcn"], "layer_counts": [1, 2], "dims": [32, 64],
                                                   "base_layers": 2, "base_dim": 64})
    cfgs = rs.sweep_configs(p)
    assert {(c["num_layers"], c["dim"]) for c in cfgs} == {(1, 64), (2, 64), (2, 32)}
