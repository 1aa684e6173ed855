"""Data layer hardening: nothing from a mirror or an unrecorded cache file is unpickled, tensor
files load with ``weights_only=True``, and only ``python -m studylib data`` (or an explicit
``download=True``) touches the network.

The cache is a temporary folder; the real mirror is read only where a test says so (skipped
without one). Network access is replaced by recorders that fail the test when called.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import mirror_path

from studylib import paths
from studylib.__main__ import main
from studylib.data import DatasetUnavailableError, load_hetero, resolve, resolve_details
from studylib.data import registry as registry_module
from studylib.data.hgnn_datasets import load_acm, load_imdb, load_ogbn_mag
from studylib.data.homogeneous import load_cora
from studylib.data.recsys import BipartiteGraph, load_paper_dataset
from studylib.data.registry import DatasetSpec, DatasetStatistics, drop_untrusted_processed


class _Payload:
    """Unpickling it creates the folder ``marker`` (stands for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("STUDYLIB_DATA_DIR", str(d))
    monkeypatch.delenv(paths.MIRROR_VARIABLE, raising=False)
    return d


@pytest.fixture
def network(monkeypatch) -> list:
    """Every way studylib's data layer could reach the network records the call and fails."""
    calls: list = []

    def refuse(*args, **kwargs):
        calls.append(args[:2])
        raise OSError("network access in a test")

    monkeypatch.setattr(registry_module, "_fetch", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    import ogb.nodeproppred.dataset as ogb_dataset

    monkeypatch.setattr(ogb_dataset, "download_url", refuse)
    return calls


@pytest.fixture
def toy(monkeypatch):
    files = {"a.txt": b"hello\n"}
    calls: list[Path] = []

    def download(folder: Path) -> None:
        calls.append(folder)
        (folder / "raw").mkdir(parents=True, exist_ok=True)
        (folder / "raw" / "a.txt").write_bytes(files["a.txt"])

    spec = DatasetSpec(name="toy", url="https://example.org/toy.zip", folder="toy",
                       raw_files={k: hashlib.sha256(v).hexdigest() for k, v in files.items()}, loader=None,
                       statistics=DatasetStatistics(num_nodes={"n": 1}, num_edges={}, feature_dims={"n": None}),
                       download=download)
    monkeypatch.setitem(registry_module.REGISTRY, "toy", spec)
    return calls


# ------------------------------------------------------------------------------ network (item 3)
@pytest.mark.parametrize("load, name", [
    (lambda: load_acm(), "acm"),
    (lambda: load_imdb(), "imdb"),
    (lambda: load_hetero("dblp"), "dblp"),
    (lambda: load_ogbn_mag(), "ogbn-mag"),
    (lambda: load_cora(), "cora"),
    (lambda: resolve("acm"), "acm"),
    (lambda: load_paper_dataset("gowalla"), "gowalla"),
])
def test_loaders_never_download_by_default(cache, network, load, name):
    with pytest.raises(DatasetUnavailableError) as err:
        load()
    assert network == [], f"{name}: the loader went to the network"
    msg = str(err.value)
    assert name in msg and paths.MIRROR_VARIABLE in msg and "http" in msg


@pytest.mark.parametrize("mirror_kind", ["missing", "empty", "incomplete"])
def test_mis_set_mirror_never_falls_through_to_a_download(cache, network, toy, tmp_path, monkeypatch, mirror_kind):
    mirror = tmp_path / "mirror"
    if mirror_kind != "missing":
        mirror.mkdir()
    if mirror_kind == "incomplete":
        (mirror / "toy" / "raw").mkdir(parents=True)
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(mirror))
    with pytest.raises(DatasetUnavailableError) as err:
        resolve("toy", download=True)
    assert toy == [] and network == []
    msg = str(err.value)
    assert "toy" in msg and "https://example.org/toy.zip" in msg and paths.MIRROR_VARIABLE in msg
    with pytest.raises(DatasetUnavailableError, match="Nothing is downloaded"):
        load_paper_dataset("gowalla", download=True)
    assert network == []


def test_only_the_data_command_downloads(cache, toy, capsys):
    with pytest.raises(DatasetUnavailableError, match="python -m studylib data toy"):
        resolve("toy")
    assert toy == []
    assert main(["data", "toy"]) == 0
    assert toy == [cache / "toy"]
    assert resolve_details("toy").origin == "cache"


# ------------------------------------------------------------------------------ pickles (item 2)
def _mag_mirror(tmp_path: Path, marker: Path) -> Path:
    mirror = tmp_path / "mirror"
    folder = mirror / "ogbn_mag"
    (folder / "raw").mkdir(parents=True)
    (folder / "raw" / "triplet-type-list.csv.gz").write_bytes(b"not really gzip")
    (folder / "RELEASE_v2.txt").write_text("")
    (folder / "processed").mkdir()
    with open(folder / "processed" / "data_processed", "wb") as fh:
        pickle.dump(_Payload(marker), fh)
    return mirror


def test_ogbn_mag_mirror_processed_folder_is_never_linked_nor_unpickled(cache, network, tmp_path, monkeypatch):
    marker = tmp_path / "payload-ran"
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(_mag_mirror(tmp_path, marker)))
    res = resolve_details("ogbn-mag")
    assert res.origin == "mirror"
    assert (cache / "ogbn_mag" / "raw" / "triplet-type-list.csv.gz").is_symlink()
    assert not os.path.lexists(cache / "ogbn_mag" / "processed")
    with pytest.raises((OSError, EOFError, ValueError, RuntimeError)):  # ogb fails on the fake raw file
        load_ogbn_mag()
    assert not marker.exists(), "a pickle from the mirror was unpickled"
    assert network == []


def test_unrecorded_processed_files_in_the_cache_are_removed(cache, network, tmp_path, monkeypatch):
    """A cache made by the earlier code (processed/ linked to the mirror) or tampered with."""
    marker = tmp_path / "payload-ran"
    mirror = _mag_mirror(tmp_path, marker)
    folder = cache / "ogbn_mag"
    (folder / "raw").mkdir(parents=True)
    (folder / "raw" / "triplet-type-list.csv.gz").symlink_to(mirror / "ogbn_mag" / "raw" / "triplet-type-list.csv.gz")
    (folder / "RELEASE_v2.txt").write_text("")
    (folder / "processed").symlink_to(mirror / "ogbn_mag" / "processed")
    with pytest.raises((OSError, EOFError, ValueError, RuntimeError)):
        load_ogbn_mag()
    assert not marker.exists(), "a pickle linked into the cache was unpickled"
    assert not os.path.lexists(folder / "processed") and (mirror / "ogbn_mag" / "processed").is_dir()
    # a regular file with no record is removed too; a recorded one is kept
    (folder / "processed").mkdir()
    (folder / "processed" / "data_processed").write_bytes(b"x")
    assert drop_untrusted_processed(folder) and not (folder / "processed").exists()
    (folder / "processed").mkdir()
    (folder / "processed" / "data_processed").write_bytes(b"x")
    registry_module.record_processed(folder)
    assert not drop_untrusted_processed(folder) and (folder / "processed" / "data_processed").is_file()
    (folder / "processed" / "data_processed").write_bytes(b"changed")
    assert drop_untrusted_processed(folder)


def test_pyg_processed_file_replaced_in_the_cache_is_rebuilt(cache, tmp_path, monkeypatch):
    mirror = mirror_path()
    if mirror is None or not (mirror / "imdb" / "raw").is_dir():
        pytest.skip("no dataset mirror with imdb/raw")
    monkeypatch.setenv(paths.MIRROR_VARIABLE, str(mirror))
    first = load_imdb()
    processed = cache / "imdb" / "processed"
    data_files = [p for p in processed.iterdir() if p.name.startswith("data")]
    assert data_files, sorted(processed.iterdir())
    marker = tmp_path / "payload-ran"
    with open(data_files[0], "wb") as fh:
        pickle.dump(_Payload(marker), fh)
    again = load_imdb()
    assert not marker.exists(), "a processed file not built by the loader was unpickled"
    assert again.num_nodes == first.num_nodes and again.edge_types == first.edge_types


def test_bipartite_graph_files_load_weights_only(tmp_path):
    g = BipartiteGraph("toy", 2, 3, torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([1]),
                       torch.tensor([1]), {"source": "test"})
    g.save(tmp_path / "g.pt")
    back = BipartiteGraph.load(tmp_path / "g.pt")
    assert back.num_users == 2 and back.train_items.tolist() == [2, 0] and back.info == g.info and back.info["source"] == "test"
    marker = tmp_path / "payload-ran"
    torch.save({"name": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        BipartiteGraph.load(tmp_path / "evil.pt")
    assert not marker.exists()
