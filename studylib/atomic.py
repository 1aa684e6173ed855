"""Files written whole, with the user's umask, alone or as a set of copies that agree.

- :func:`atomic_path`: one file through a temporary file in the same folder, ``fsync`` and
  ``os.replace``: a reader sees the old file or the new one, never a half-written one.
- :func:`atomic_paths`: several files of one folder (a table's parquet, CSV and JSON copies) as
  one unit. All temporary files are written and ``fsync``-ed first; then a commit record
  (``.<name>.commit``, itself written atomically) lists the renames; then the renames run and the
  record is deleted. A failure before the record exists leaves every old file as it was; a
  crash between the renames leaves the record, and :func:`recover` (called by every reader of
  the set and by the next write) finishes the renames, so the set is all new.
- :func:`file_mode`: the mode a plain ``open()`` would give (``0o666 & ~umask``, 0644 under the
  usual umask 022); ``tempfile.mkstemp`` creates 0600, so every file made through it is set to
  this mode before it is renamed into place.

The protocol is the write-ahead ("redo") log of file systems and databases reduced to one record
per set: the renames are idempotent, so finishing them twice (by the writer and a reader at once)
is harmless. POSIX ``rename(2)`` is atomic per file, not per set; the record is what makes the set
one unit for readers that call :func:`recover` first.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Suffix of a set's commit record: ``<folder>/.<name>.commit``.
COMMIT_SUFFIX = ".commit"


def umask() -> int:
    """The process's umask, e.g. ``0o022``: from ``/proc/self/status`` (Linux >= 4.7) without
    touching it, else by setting and restoring it (``os.umask``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new regular file gets from ``open()`` under the current umask: ``0o666 & ~umask``
    (0644 under umask 022, 0640 under 027)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode a new folder gets from ``mkdir`` under the current umask: ``0o777 & ~umask``."""
    return 0o777 & ~umask()


def set_created_mode(path: Path | str, *, directory: bool = False) -> None:
    """Give ``path`` (made by ``mkstemp``/``mkdtemp``, mode 0600/0700) the mode of :func:`file_mode`
    (or :func:`dir_mode` when ``directory``)."""
    os.chmod(path, dir_mode() if directory else file_mode())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # a file system or platform without directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary(target: Path, tag: str = "") -> Path:
    """``.<name>.<pid>.<tag><random>.tmp`` next to ``target``: the writer's pid lets a later writer
    remove what a killed one left (:func:`studylib.results.remove_stale_temporaries`)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.{tag}", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(tmp)


def _seal(tmp: Path) -> None:
    """Mode as by ``open()``, contents on disk."""
    set_created_mode(tmp)
    _fsync_file(tmp)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; write the file there. On success it gets
    :func:`file_mode`, is ``fsync``-ed and replaces ``target`` atomically; on an exception it is
    deleted and ``target`` is left as it was. Creates the folder when missing."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(target)
    try:
        yield tmp
        _seal(tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def commit_record(target: Path | str, name: str | None = None) -> Path:
    """The commit record of the set holding ``target``: ``<folder>/.<name>.commit``, ``name``
    defaulting to the file stem (``results/nb/.stage_times.commit`` for ``stage_times.csv``)."""
    target = Path(target)
    return target.parent / f".{name or target.stem}{COMMIT_SUFFIX}"


def _apply(record: Path) -> None:
    """Finish the renames listed in ``record`` (idempotent), then delete it."""
    try:
        plan = json.loads(record.read_text())
        renames = [(str(a), str(b)) for a, b in plan["renames"]]
    except FileNotFoundError:
        return  # finished meanwhile by another process
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RuntimeError(f"{record}: unreadable commit record of a file set ({err}); "
                           f"delete it and the set's temporary files to go on") from None
    for tmp_name, target_name in renames:
        if "/" in tmp_name or "/" in target_name:
            raise RuntimeError(f"{record}: names outside its folder ({tmp_name!r}, {target_name!r})")
        try:
            os.replace(record.parent / tmp_name, record.parent / target_name)
        except FileNotFoundError:
            pass  # renamed already (by an earlier try or a concurrent reader)
    _fsync_dir(record.parent)
    record.unlink(missing_ok=True)
    _fsync_dir(record.parent)


def recover(target: Path | str, name: str | None = None) -> bool:
    """Finish a set whose renames were interrupted (the writer crashed between them): when the
    commit record of ``target``'s set exists, do its remaining renames and delete it. Readers of
    a set call this before reading. Returns whether there was anything to finish.

    Raises ``RuntimeError`` naming the record when it cannot be read."""
    record = commit_record(target, name)
    if not record.exists():
        return False
    _apply(record)
    return True


@contextlib.contextmanager
def atomic_paths(targets: Iterable[Path | str], name: str | None = None) -> Iterator[dict[Path, Path]]:
    """Write several files of one folder as one unit: all replaced, or none.

    Yields ``{target: temporary path}``; write every file at its temporary path. On success the
    temporaries get :func:`file_mode` and are ``fsync``-ed, the commit record is written, and the
    targets are replaced in the given order (put the file that describes the others last); on an
    exception before that, the temporaries are deleted and every target is left as it was.

    Args:
        targets: the files of the set (one folder; created when missing).
        name: the set's name in its commit record (default: the first target's stem).

    Raises ``ValueError`` when the targets are not in one folder or repeat; ``RuntimeError``
    from :func:`recover` when an earlier set's record is unreadable.
    """
    targets = [Path(t) for t in targets]
    if not targets:
        raise ValueError("atomic_paths: no files given")
    folder = targets[0].parent
    if any(t.parent != folder for t in targets) or len(set(targets)) != len(targets):
        raise ValueError(f"atomic_paths: the files of a set must be distinct and in one folder (got {targets})")
    folder.mkdir(parents=True, exist_ok=True)
    record = commit_record(targets[0], name)
    recover(targets[0], name)  # an earlier set first, or its record would be overwritten
    tag = secrets.token_hex(4) + "."
    tmps: dict[Path, Path] = {}
    committed = False
    try:
        for t in targets:
            tmps[t] = _temporary(t, tag)
        yield dict(tmps)
        for tmp in tmps.values():
            _seal(tmp)
        _fsync_dir(folder)
        with atomic_path(record) as rec:
            rec.write_text(json.dumps({"renames": [[tmps[t].name, t.name] for t in targets]}))
        committed = True
    finally:
        if not committed:
            for tmp in tmps.values():
                tmp.unlink(missing_ok=True)
    _apply(record)
