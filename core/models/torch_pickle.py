"""Read a PyTorch state_dict (`torch.save(model.state_dict(), f)`) into numpy arrays, without torch.

A `.pth` file is a pickle, and a plain `pickle.load` lets the file call any importable function (for example
`os.system`). Here the unpickler resolves only the handful of names a state_dict needs
(`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the `torch.*Storage` classes), each mapped to
our own numpy rebuilder; any other name in the file raises ModelError before anything is called.
The pickle can't change those allow-listed objects either: BUILD (the opcode that sets attributes) is only
applied to OrderedDicts that this load itself created (torch stores a state_dict's `_metadata` that way), and
the opcodes that create instances of classes (INST, OBJ, NEWOBJ) are refused. Sizes are checked before anything
is allocated: a storage claiming more bytes than MAX_STORAGE_BYTES or than the file holds, or a tensor with more
elements than its storage, is a one-line ModelError, not a MemoryError.

Both formats are read:
- legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`): pickles in sequence — magic number,
  protocol version, system info, the main object (storages as persistent ids), the list of storage keys —
  then each storage's raw bytes, prefixed by its int64 element count;
- zip (torch >= 1.6): `<name>/data.pkl` plus one raw file per storage, `<name>/data/<key>`.
"""

from __future__ import annotations

import collections
import io
import logging
import math
import os
import pickle
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from transferlab.core.errors import ModelError

logger = logging.getLogger(__name__)

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
MAX_STORAGE_BYTES = 4 * 2**30  # one storage (the bundled EfficientNet-Lite0 has 18 MB in all)
MAX_FILE_BYTES = 8 * 2**30

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stands in for `torch.FloatStorage` & co. inside the pickle: only its dtype matters."""

    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor whose storage bytes are read after the main pickle (legacy format) or from the zip."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise ModelError(f"expected a tensor built from a storage, got a {type(storage).__name__}")
    if not (isinstance(storage_offset, int) and all(isinstance(n, int) and n >= 0 for n in (*size, *stride))):
        raise ModelError(f"expected integer tensor offset, size and stride, got {storage_offset!r}, "
                         f"{size!r}, {stride!r}")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    return data


def _make_ordered_dict(*args: Any) -> collections.OrderedDict[Any, Any]:
    return collections.OrderedDict(*args)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _make_ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle._Unpickler):  # the Python unpickler: its opcodes can be overridden
    """Resolves only the names in `allowed`; storages come back as `_StorageRef`s. BUILD only reaches the
    OrderedDicts this load created; no opcode can make an instance of a class or change an allowed object."""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)
    stack: list[Any]  # the unpickler's value stack (set by load(); typeshed leaves _Unpickler's internals out)

    def __init__(self, file: BinaryIO, source: str, allowed: dict[tuple[str, str], Any]) -> None:
        super().__init__(file)
        self._source = source
        self._allowed = allowed
        self._created: list[Any] = []  # what REDUCE made in this load (kept alive so ids stay unique)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ModelError(f"expected only tensors and OrderedDicts in weights file {self._source}, "
                             f"got a reference to {module}.{name} (refused: it could run code)") from None

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise ModelError(f"expected storage references in weights file {self._source}, got {pid!r:.80}")
        if len(pid) > 5 and pid[5] is not None:
            raise ModelError(f"expected plain storages in weights file {self._source}, got a storage view")
        dtype, numel = pid[1].dtype, pid[4]
        if not 0 <= numel * dtype.itemsize <= MAX_STORAGE_BYTES:
            raise ModelError(f"expected storages of 0..{MAX_STORAGE_BYTES:,} bytes in weights file {self._source}, "
                             f"got storage {pid[2]!r:.40} claiming {numel:,} elements")
        return _StorageRef(key=pid[2], dtype=dtype, numel=numel)

    def load_reduce(self) -> None:
        super().load_reduce()  # type: ignore[misc]  # typeshed omits _Unpickler's opcode methods
        self._created.append(self.stack[-1])

    def load_build(self) -> None:
        state, target = self.stack[-1], self.stack[-2]
        ours = any(target is made for made in self._created) and not any(
            target is value for value in self._allowed.values())
        if not (ours and type(target) is collections.OrderedDict and _is_attribute_state(state)):
            raise ModelError(f"expected attributes only for OrderedDicts in weights file {self._source}, got "
                             f"an attempt to set attributes of a {type(target).__name__} (refused)")
        super().load_build()  # type: ignore[misc]  # typeshed omits _Unpickler's opcode methods

    def _refuse_instance(self) -> None:
        raise ModelError(f"expected only tensors and OrderedDicts in weights file {self._source}, got an "
                         f"instruction to create an object of a class (refused)")

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.REDUCE[0]] = load_reduce
    for _opcode in (pickle.INST, pickle.OBJ, pickle.NEWOBJ, pickle.NEWOBJ_EX):
        dispatch[_opcode[0]] = _refuse_instance
    del _opcode


def _is_attribute_state(state: Any) -> bool:
    """A BUILD state that only sets plain attributes: {name: value} (optionally as (dict, None))."""
    if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
        state = state[0]
    return isinstance(state, dict) and all(isinstance(k, str) and not k.startswith("__") for k in state)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state_dict file, by name, as numpy arrays (in the file's order).

    Raises ModelError for a missing, truncated or malformed file, and for any pickle that refers to
    something other than tensors and OrderedDicts.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(_checked_file(path)):
            result = _load_zip(path)
        else:
            result = _load_legacy(io.BytesIO(path.read_bytes()), str(path))  # size checked: read it once
    except ModelError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, zipfile.BadZipFile, OSError, MemoryError, OverflowError, RecursionError) as exc:
        raise ModelError(f"expected a readable PyTorch weights file at {path}, got "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    logger.info("read %d tensors from %s", len(result), path)
    return result


def _checked_file(path: Path) -> Path:
    """`path`, after checking it is a regular file of at most MAX_FILE_BYTES (a FIFO would block a read)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"expected a PyTorch weights file at {path}, got no such file") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelError(f"expected a PyTorch weights file at {path}, got something that is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ModelError(f"expected a PyTorch weights file of at most {MAX_FILE_BYTES:,} bytes at {path}, "
                         f"got {info.st_size:,} bytes")
    return path


def _load_legacy(handle: BinaryIO, source: str) -> dict[str, np.ndarray]:
    header = _RestrictedUnpickler(handle, source, {})
    magic = header.load()
    if magic != LEGACY_MAGIC_NUMBER:
        raise ModelError(f"expected a PyTorch weights file (magic number {LEGACY_MAGIC_NUMBER:#x}) at {source}, "
                         f"got {magic!r:.40}")
    protocol = _RestrictedUnpickler(handle, source, {}).load()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise ModelError(f"expected PyTorch legacy protocol {LEGACY_PROTOCOL_VERSION} in {source}, got {protocol!r}")
    sys_info = _RestrictedUnpickler(handle, source, {}).load()
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
        raise ModelError(f"expected a little-endian PyTorch weights file at {source}, got sys info {sys_info!r}")
    obj = _RestrictedUnpickler(handle, source, _ALLOWED_GLOBALS).load()
    keys = _RestrictedUnpickler(handle, source, {}).load()
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise ModelError(f"expected a list of storage keys in {source}, got {type(keys).__name__}")
    refs = _storage_refs(obj, source)
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", _read_exact(handle, 8, source))
        ref = refs.get(key)
        if ref is None:
            raise ModelError(f"expected only storages the tensors use in {source}, got an unused storage {key!r}")
        if count != ref.numel:
            raise ModelError(f"expected {ref.numel} elements in storage {key!r} of {source}, got {count}")
        storages[key] = np.frombuffer(_read_exact(handle, count * ref.dtype.itemsize, source), dtype=ref.dtype)
    return _materialize(obj, storages, source)


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    source = str(path)
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ModelError(f"expected one data.pkl in zip weights file {source}, got {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), source, _ALLOWED_GLOBALS).load()
        storages: dict[str, np.ndarray] = {}
        for key, ref in _storage_refs(obj, source).items():
            entry = archive.getinfo(f"{prefix}data/{key}")
            if entry.file_size != ref.numel * ref.dtype.itemsize:  # checked before anything is unpacked
                raise ModelError(f"expected {ref.numel * ref.dtype.itemsize} bytes for storage {key!r} "
                                 f"in {source}, got {entry.file_size}")
            raw = archive.read(entry)
            storages[key] = np.frombuffer(raw, dtype=ref.dtype)
    return _materialize(obj, storages, source)


def _storage_refs(obj: Any, source: str) -> dict[str, _StorageRef]:
    if not isinstance(obj, dict):
        raise ModelError(f"expected a state_dict (a dict of tensors) in {source}, got a {type(obj).__name__}")
    refs: dict[str, _StorageRef] = {}
    for name, value in obj.items():
        if not isinstance(value, _TensorRef):
            raise ModelError(f"expected only tensors in the state_dict of {source}, got {type(value).__name__} "
                             f"for {name!r}")
        refs.setdefault(value.storage.key, value.storage)
    return refs


def _materialize(obj: dict[str, Any], storages: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    result: dict[str, np.ndarray] = {}
    for name, ref in obj.items():
        storage = storages.get(ref.storage.key)
        if storage is None:
            raise ModelError(f"expected the bytes of storage {ref.storage.key!r} in {source}, got none")
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True)) if all(
            ref.size) else ref.offset - 1
        if ref.offset < 0 or last >= storage.size:
            raise ModelError(f"expected tensor {name!r} inside its storage in {source}, got an out-of-range "
                             f"view (size {ref.size}, stride {ref.stride}, offset {ref.offset})")
        if math.prod(ref.size) > storage.size:  # e.g. a huge shape over a stride of 0: more than the data
            raise ModelError(f"expected tensor {name!r} to have at most the {storage.size:,} elements of its storage "
                             f"in {source}, got shape {ref.size} ({math.prod(ref.size):,} elements)")
        view = np.lib.stride_tricks.as_strided(
            storage[ref.offset:], shape=ref.size, strides=[s * storage.itemsize for s in ref.stride])
        result[str(name)] = np.array(view, copy=True)
    return result


def _read_exact(handle: BinaryIO, count: int, source: str) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise ModelError(f"expected {count} more bytes in {source}, got {len(data)} (the file is truncated)")
    return data
