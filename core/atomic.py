"""Atomic, durable file writes: write a temp file in the same folder, fsync it, rename it over the target, then
fsync the folder so the rename itself survives a power cut.

A process killed mid-write, or a write that fails (disk full), leaves the previous file intact. Temp files are
named `.<stem>.<pid>-<random>.tmp<suffix>`; the pid lets a later start remove those of a process that died
(`remove_stale_temps`) without touching those another live process is still writing. Files are created with
mode 0o666 and folders with 0o777, so the user's umask decides who may read them (as for any other program).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from transferlab.core import processes
from transferlab.core.errors import RunStoreError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# A temp file untouched for this long whose writer is gone is a leftover (the age also protects writers that
# this process cannot see, e.g. in another container sharing the folder).
STALE_AFTER_S = 60.0
_FULL_FSYNC = getattr(fcntl, "F_FULLFSYNC", None)
_TEMP_NAME = re.compile(r"^\..*\.(?P<pid>\d{1,10})-[0-9a-f]{8}\.tmp(\.[^.]*)?$", re.DOTALL)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_target(path) as tmp, open(tmp, "wb") as handle:
        _write_all(handle, data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _write_all(handle: BinaryIO, data: bytes) -> None:
    # A seam for tests: simulating a full disk means making this raise OSError(ENOSPC).
    handle.write(data)


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new, empty temp file beside `path`; when the block succeeds, fsync it, rename it over `path` and
    fsync the folder.

    For libraries that write files themselves (e.g. `model.save(tmp)`). The temp name keeps the suffix,
    because some writers decide the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
        yield tmp
        fsync_tree(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise RunStoreError(f"expected to write {path}, got {type(exc).__name__}: {exc.strerror or exc}; "
                            "the previous file is unchanged") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def temp_sibling(path: Path, keep_suffix: bool = True) -> Path:
    """A fresh temp name beside `path` that `remove_stale_temps` recognises once its writer is gone."""
    stem, suffix = (path.stem, path.suffix) if keep_suffix else (path.name, "")
    return path.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")


def is_temp_name(name: str) -> bool:
    return _TEMP_NAME.match(name) is not None


def remove_stale_temps(folder: Path, now: float | None = None) -> int:
    """Remove the temp files and folders (named by `temp_sibling`) in `folder` whose writing process is gone
    and which have not changed for STALE_AFTER_S. Returns how many were removed; never raises."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        try:
            info = entry.stat(follow_symlinks=False)
            if match is None or processes.is_running(int(match["pid"])) or now - info.st_mtime < STALE_AFTER_S:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
            logger.info("removed %s, left behind by a process that ended", entry.path)
        except OSError as exc:
            logger.warning("could not remove the leftover temp %s: %s", entry.path, exc)
    return removed


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's data to the disk (F_FULLFSYNC on macOS, where fsync only reaches the drive's cache)."""
    fd = os.open(path, (os.O_RDWR | getattr(os, "O_BINARY", 0)) if os.name == "nt" else os.O_RDONLY)
    try:
        if _FULL_FSYNC is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _FULL_FSYNC)
                return
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the names in a folder (a rename, a new entry) durable. Windows has no folder fsync."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike[str]) -> None:
    """fsync a file, or every file and folder under a folder (e.g. a SavedModel written to a temp folder)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        fsync_file(path)
        return
    for folder, _dirs, files in os.walk(path):
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


def _json_default(value: object) -> object:
    # numpy scalars and arrays, Paths, tuples in dataclasses
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")
