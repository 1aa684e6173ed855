"""A table's parquet, CSV and JSON copies are written as one unit, and every file the suite
creates (tables, figures, sidecars, cached data) gets the user's umask."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from studylib import atomic, plotting, results  # noqa: E402


def _copies(folder: Path, name: str = "t"):
    parquet, csv, side = (folder / f"{name}.{e}" for e in ("parquet", "csv", "json"))
    return parquet, csv, side


def _assert_agree(folder: Path, name: str = "t") -> int:
    """The three copies hold the same rows and the sidecar's marker and checksums match."""
    parquet, csv, side = _copies(folder, name)
    meta = json.loads(side.read_text())
    a, b = pd.read_parquet(parquet), pd.read_csv(csv)
    assert len(a) == len(b) == meta["rows"]
    assert list(a["k"].astype(str)) == list(b["k"].astype(str))
    assert meta["copies"]["parquet"]["sha256"] == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert meta["copies"]["csv"]["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    in_parquet, in_sidecar = results._generations(parquet)
    assert in_parquet == in_sidecar == meta["generation"]
    return len(a)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _table(k_values=(1, 2)):
    t = results.ResultTable("nb", "t", ["k"], {"x": 1})
    t.add([{"k": k, "seconds": 0.5} for k in k_values])
    return t


def test_copies_agree_after_each_write(output_dirs):
    folder = output_dirs / "results" / "nb"
    t = _table()
    assert _assert_agree(folder) == 2
    t.add([{"k": 3, "seconds": 0.1}])
    assert _assert_agree(folder) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["t.csv", "t.json", "t.parquet"]  # no leftovers


@pytest.mark.parametrize("fail_at", ["csv", "json"])
def test_a_full_disk_in_the_middle_of_a_write_changes_nothing(output_dirs, monkeypatch, fail_at):
    folder = output_dirs / "results" / "nb"
    t = _table()
    before = _snapshot(folder)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m, pytest.raises(OSError, match="No space left"):
        if fail_at == "csv":
            m.setattr(pd.DataFrame, "to_csv", disk_full)
        else:
            m.setattr(results, "_json_text", disk_full)  # the sidecar, written after the parquet copy
        t.add([{"k": 3, "seconds": 0.1}])
    assert _snapshot(folder) == before  # old copies intact, no temporary files left
    assert _assert_agree(folder) == 2
    assert len(t.frame()) == 2  # the table in memory holds what is on disk
    t.add([{"k": 3, "seconds": 0.1}])
    assert _assert_agree(folder) == 3


@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_between_the_renames_is_finished_by_the_next_reader(output_dirs, monkeypatch, crash_at):
    folder = output_dirs / "results" / "nb"
    t = _table()
    real_replace = os.replace
    calls = []

    def crash_at_rename(src, dst):
        if Path(src).name.startswith(".t.") and not str(dst).endswith(".commit"):
            calls.append(dst)
            if len(calls) == crash_at:
                raise KeyboardInterrupt  # the process dies here
        return real_replace(src, dst)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(os, "replace", crash_at_rename)
        t.add([{"k": 3, "seconds": 0.1}])
    # on disk: the commit record and a mix (renames in order CSV, sidecar, parquet)
    assert atomic.commit_record(folder / "t.parquet").exists()
    assert len(pd.read_csv(folder / "t.csv")) == (3 if crash_at > 1 else 2)
    assert len(pd.read_parquet(folder / "t.parquet")) == 2  # the parquet copy is renamed last
    if crash_at == 3:  # new sidecar, old parquet: the markers tell the mix apart
        in_parquet, in_sidecar = results._generations(folder / "t.parquet")
        assert in_parquet != in_sidecar

    df = results.read_table("nb", "t")  # a reader finishes the write first
    assert len(df) == 3
    assert not atomic.commit_record(folder / "t.parquet").exists()
    assert _assert_agree(folder) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["t.csv", "t.json", "t.parquet"]


def test_stale_temporaries_of_a_committed_set_are_not_removed_before_it_is_finished(output_dirs, monkeypatch):
    """A killed writer's temporaries are removed by the next table, but not those a commit record
    still needs: the record is finished first."""
    folder = output_dirs / "results" / "nb"
    t = _table()
    real_replace = os.replace

    def crash(src, dst):
        if Path(src).name.startswith(".t.") and not str(dst).endswith(".commit"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(os, "replace", crash)
        t.add([{"k": 3, "seconds": 0.1}])
    for p in folder.glob(".t.*.tmp"):  # as if written by a process that has died since
        p.rename(p.with_name(p.name.replace(f".{os.getpid()}.", ".999999999.")))
    record = atomic.commit_record(folder / "t.parquet")
    record.write_text(record.read_text().replace(f".{os.getpid()}.", ".999999999."))
    t2 = results.ResultTable("nb", "t", ["k"], {"x": 1})
    assert len(t2.frame()) == 3
    assert _assert_agree(folder) == 3


def test_a_new_table_object_finishes_an_interrupted_write(output_dirs, monkeypatch):
    folder = output_dirs / "results" / "nb"
    t = _table()
    real_replace = os.replace

    def crash_at_first_rename(src, dst):
        if Path(src).name.startswith(".t.") and str(dst).endswith("t.parquet"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(os, "replace", crash_at_first_rename)
        t.add([{"k": 3, "seconds": 0.1}])
    t2 = results.ResultTable("nb", "t", ["k"], {"x": 1})
    assert len(t2.frame()) == 3 and t2.has({"k": 3})
    assert _assert_agree(folder) == 3


def test_atomic_paths_rejects_files_of_two_folders(tmp_path):
    with pytest.raises(ValueError, match="one folder"):
        with atomic.atomic_paths([tmp_path / "a.csv", tmp_path / "sub" / "a.json"]):
            pass


def test_failure_before_the_commit_leaves_a_set_untouched(tmp_path):
    a, b = tmp_path / "s.csv", tmp_path / "s.json"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError):
        with atomic.atomic_paths([a, b]) as tmp:
            tmp[a].write_text("new a")
            raise RuntimeError("failed half-way")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.json"]


# ------------------------------------------------------------------------------- file modes

@pytest.fixture(params=[0o022, 0o027])
def mask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_umask_is_read_without_changing_it(mask):
    assert atomic.umask() == mask
    assert atomic.file_mode() == 0o666 & ~mask
    assert os.umask(mask) == mask


def test_tables_and_sidecars_get_the_umask_mode(output_dirs, mask):
    _table()
    for p in _copies(output_dirs / "results" / "nb"):
        assert _mode(p) == 0o666 & ~mask, p
    results.write_json(output_dirs / "results" / "nb" / "extra.json", {"a": 1})
    assert _mode(output_dirs / "results" / "nb" / "extra.json") == 0o666 & ~mask


def test_figures_and_their_sidecars_get_the_umask_mode(output_dirs, mask):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    files = plotting.save_figure(fig, "nb", "line", footer=False)
    plt.close(fig)
    assert set(files) == {"png", "pdf", "json"}
    for p in files.values():
        assert _mode(p) == 0o666 & ~mask, p


def test_cached_data_files_get_the_umask_mode(tmp_path, mask):
    from studylib.data import registry

    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 100)
    fetched = tmp_path / "cache" / "raw" / "fetched.bin"
    registry._fetch(src.as_uri(), fetched)
    assert _mode(fetched) == 0o666 & ~mask
    copied = tmp_path / "cache" / "raw" / "copied.bin"
    registry._copy_verified(src, copied, hashlib.sha256(src.read_bytes()).hexdigest(), None, "copied.bin")
    assert _mode(copied) == 0o666 & ~mask
    registry._write_record(tmp_path / "cache", {"origin": "mirror"})
    assert _mode(tmp_path / "cache" / registry.SOURCE_RECORD) == 0o666 & ~mask


def test_made_folders_get_the_umask_mode(tmp_path, mask):
    import tempfile

    d = Path(tempfile.mkdtemp(dir=tmp_path))
    atomic.set_created_mode(d, directory=True)
    assert _mode(d) == 0o777 & ~mask
