"""Atomic file writes: write a temp file in the same folder, flush it to disk, then rename over the target.

A process killed mid-write, or a write that fails (disk full), leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from transferlab.core.errors import RunStoreError


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    path = Path(path)
    with atomic_target(path) as tmp, open(tmp, "wb") as handle:
        _write_all(handle, data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _write_all(handle: BinaryIO, data: bytes) -> None:
    # A seam for tests: simulating a full disk means making this raise OSError(ENOSPC).
    handle.write(data)


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block succeeds, rename it over `path`.

    For libraries that write files themselves (e.g. `model.save(tmp)`). The temp name keeps the suffix,
    because some writers decide the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise RunStoreError(f"expected to write {path}, got {type(exc).__name__}: {exc.strerror or exc}; "
                            "the previous file is unchanged") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _json_default(value: object) -> object:
    # numpy scalars and arrays, Paths, tuples in dataclasses
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")
