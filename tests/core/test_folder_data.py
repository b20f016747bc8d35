"""core.folder_data: scanning class folders, splits, class weights and the tf.data pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.core import imagefactory as factory
from transferlab.core.data import folders as fd
from transferlab.core.data.images import load_rgb
from transferlab.core.errors import ConfigError, DataError


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """Three classes, nested files, one of each broken kind, non-images, hidden files and folders."""
    root = factory.make_class_folder(tmp_path / "data", {"cat": 6, "dog": 9, "emu": 4}, size=(24, 32),
                                     fmt="png", nested=3)
    factory.add_broken_files(root / "dog")
    (root / "dog" / "readme.txt").write_text("not an image")
    (root / "labels.csv").write_text("a,b")
    factory.write_image(root / "cat" / ".hidden.png", np.zeros((20, 20, 3), np.uint8))
    factory.write_image(root / "cat" / ".thumbs" / "t.png", np.zeros((20, 20, 3), np.uint8))
    factory.write_image(root / ".git" / "x.png", np.zeros((20, 20, 3), np.uint8))
    return root


def test_scan_finds_classes_nested_files_and_skips_broken_ones(messy: Path) -> None:
    calls: list[tuple[int, int]] = []
    scan = fd.scan_folder(messy, progress=lambda done, total: calls.append((done, total)))
    assert scan.class_names == ("cat", "dog", "emu")
    assert scan.counts == (6, 9, 4)
    assert ("cat/sub/cat_0002.png", 0) in scan.items  # nested deeper: still its top-level class
    assert all(not p.split("/")[-1].startswith(".") and "/." not in p for p, _ in scan.items)
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    for kind, (name, _) in factory.BROKEN_WRITERS.items():
        assert factory.BROKEN_REASONS[kind] in reasons[name], kind
    assert len(scan.skipped) == len(factory.BROKEN_WRITERS)
    assert set(scan.ignored) == {"dog/readme.txt", "labels.csv"}
    assert scan.empty_classes == ()
    assert calls[-1] == (19 + len(factory.BROKEN_WRITERS),) * 2 and len(calls) == calls[-1][1]
    summary = scan.summary()
    json.dumps(summary)
    assert summary["counts"] == {"cat": 6, "dog": 9, "emu": 4}
    assert summary["height"] == {"min": 24, "median": 24, "max": 24}
    assert summary["width"]["max"] == 32
    assert {s["path"] for s in summary["skipped"]} == {f"dog/{n}" for n, _ in factory.BROKEN_WRITERS.values()}


def test_unicode_and_spaces_in_names(tmp_path: Path) -> None:
    root = tmp_path / "mes données ✓"
    factory.make_class_folder(root, {"chat noir 猫": 3, "éléphant": 2}, size=(16, 16), fmt="jpg")
    factory.write_image(root / "éléphant" / "gros plan ✓.JPG", factory.class_image(1, (16, 16)))
    scan = fd.scan_folder(root)
    assert scan.class_names == ("chat noir 猫", "éléphant")
    assert scan.counts == (3, 3)
    assert ("éléphant/gros plan ✓.JPG", 1) in scan.items
    x, _ = next(iter(fd.make_dataset(scan.root, scan.items, (16, 16), 8)))
    assert x.shape == (6, 16, 16, 3)


def test_fewer_than_two_usable_classes_is_refused_naming_the_empty_ones(tmp_path: Path) -> None:
    root = factory.make_class_folder(tmp_path / "d", {"cat": 3}, size=(16, 16))
    (root / "dog").mkdir()
    factory.add_broken_files(root / "owl")
    with pytest.raises(DataError) as info:
        fd.scan_folder(root)
    message = str(info.value)
    assert "got 1 (cat)" in message and "dog" in message
    assert f"owl ({len(factory.BROKEN_WRITERS)} unusable files)" in message
    with pytest.raises(DataError, match="no subfolders"):
        fd.scan_folder(tmp_path / "d" / "cat")
    with pytest.raises(DataError, match="no such folder"):
        fd.scan_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="got a file"):
        fd.scan_folder(root / "cat" / "cat_0000.jpg")


def test_empty_class_is_reported_when_two_others_are_usable(tmp_path: Path) -> None:
    root = factory.make_class_folder(tmp_path / "d", {"a": 2, "b": 2}, size=(16, 16))
    (root / "c").mkdir()
    scan = fd.scan_folder(root)
    assert scan.class_names == ("a", "b", "c") and scan.empty_classes == ("c",)
    assert scan.summary()["empty_classes"] == ["c"]


def test_duplicates_across_classes(tmp_path: Path) -> None:
    root = factory.make_class_folder(tmp_path / "d", {"a": 3, "b": 3}, size=(16, 16), fmt="png")
    (root / "b" / "copy.png").write_bytes((root / "a" / "a_0001.png").read_bytes())
    (root / "a" / "same.png").write_bytes((root / "a" / "a_0002.png").read_bytes())  # same class: fine
    scan = fd.scan_folder(root)
    assert scan.duplicates == (("a/a_0001.png", "b/copy.png"),)


def test_factory_classes_are_learnable(tmp_path: Path) -> None:
    """Even a nearest-mean-colour classifier separates the generated classes (so models can learn them)."""
    names = [f"c{k}" for k in range(6)]
    scan = fd.scan_folder(factory.make_class_folder(tmp_path / "d", dict.fromkeys(names, 8), size=(24, 24)))
    means = np.stack([load_rgb(Path(scan.root) / p).reshape(-1, 3).mean(axis=0) for p, _ in scan.items])
    centroids = np.stack([means[scan.labels == k].mean(axis=0) for k in range(len(names))])
    predicted = np.argmin(((means[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert (predicted == scan.labels).mean() == 1.0


def test_scan_is_fast(tmp_path: Path) -> None:
    root = factory.make_class_folder(tmp_path / "d", {"a": 150, "b": 150}, size=(96, 96), fmt="jpg")
    started = time.perf_counter()
    scan = fd.scan_folder(root)
    elapsed = time.perf_counter() - started
    assert len(scan.items) == 300
    assert elapsed < 3.0, elapsed  # ~0.1 s measured; generous for a shared 2-core machine


def _scan(tmp_path: Path, classes: dict[str, int]) -> fd.FolderScan:
    return fd.scan_folder(factory.make_class_folder(tmp_path / "d", classes, size=(12, 12), fmt="png"))


def test_split_is_stratified_seeded_and_complete(tmp_path: Path) -> None:
    scan = _scan(tmp_path, {"big": 40, "mid": 10, "pair": 2, "three": 3})
    split = fd.split_items(scan, val_fraction=0.2, test_fraction=0.1, seed=7)
    assert split.counts("val") == (8, 2, 1, 1)
    assert split.counts("test") == (4, 1, 0, 1)
    assert min(split.counts("train")) >= 1
    everything = split.train + split.val + split.test
    assert sorted(everything) == sorted(scan.items) and len(set(everything)) == len(everything)
    assert fd.split_items(scan, 0.2, 0.1, seed=7) == split
    assert fd.split_items(scan, 0.2, 0.1, seed=8).val != split.val
    assert fd.split_items(scan, 0.0).val == ()
    for bad in ((1.0, 0.0), (-0.1, 0.0), (0.6, 0.5)):
        with pytest.raises(ConfigError):
            fd.split_items(scan, *bad)


def test_split_round_trips_through_json_and_file(tmp_path: Path) -> None:
    scan = _scan(tmp_path, {"a": 5, "b": 7})
    split = fd.split_items(scan, 0.3, seed=1)
    assert fd.DataSplit.from_json(split.to_json()) == split
    path = tmp_path / "runs" / "r1" / "split.json"
    fd.save_split(split, path)
    fd.save_split(split, path)  # overwrite
    assert fd.load_split(path) == split
    assert [p.name for p in path.parent.iterdir()] == ["split.json"]  # no temp file left
    with pytest.raises(DataError, match="invalid JSON"):
        fd.DataSplit.from_json("{nope")
    with pytest.raises(DataError, match="class indices"):
        fd.DataSplit.from_json(json.dumps({"class_names": ["a"], "train": [["x.png", 3]]}))
    with pytest.raises(DataError, match="FileNotFoundError"):
        fd.load_split(tmp_path / "absent.json")


def test_split_from_folders(tmp_path: Path) -> None:
    train = fd.scan_folder(factory.make_class_folder(tmp_path / "set" / "train", {"a": 4, "b": 4},
                                                     size=(12, 12), fmt="png"))
    val = fd.scan_folder(factory.make_class_folder(tmp_path / "set" / "val", {"a": 2, "b": 2},
                                                   size=(12, 12), fmt="png", seed=1))
    split = fd.split_from_folders(train, val, test_fraction=0.25)
    assert Path(split.root) == (tmp_path / "set").resolve()
    assert ("val/a/a_0000.png", 0) in split.val and len(split.val) == 4
    assert split.counts("test") == (1, 1) and split.counts("train") == (3, 3)
    assert all((Path(split.root) / p).is_file() for p, _ in split.train + split.val + split.test)
    other = fd.scan_folder(factory.make_class_folder(tmp_path / "other", {"a": 2, "c": 2}, size=(12, 12)))
    with pytest.raises(DataError, match=r"same class folders.*\(a, b\), got a, c"):
        fd.split_from_folders(train, other)


def test_class_weights_modes() -> None:
    balanced_enough = [0] * 15 + [1] * 10  # 1.5× exactly: not imbalanced
    assert fd.class_weights(balanced_enough, 2) is None
    assert fd.class_weights(balanced_enough, 2, "off") is None
    weights = fd.class_weights([0] * 16 + [1] * 10, 2)
    assert weights is not None and weights[0] == pytest.approx(26 / 32) and weights[1] == pytest.approx(1.3)
    on = fd.class_weights(balanced_enough, 3, "on")
    assert on == pytest.approx({0: 25 / 30, 1: 1.25, 2: 1.0})
    assert all(type(v) is float for v in on.values())
    with pytest.raises(ConfigError):
        fd.class_weights([0, 1], 2, "sometimes")  # type: ignore[arg-type]


def test_make_dataset_shapes_values_and_shuffling(tmp_path: Path) -> None:
    root = factory.make_class_folder(tmp_path / "d", {"a": 7, "b": 5}, size=(20, 30), fmt="png")
    factory.write_mode_sample(root / "b" / "gray16.png", "I;16")
    factory.write_mode_sample(root / "b" / "cmyk.jpg", "CMYK")
    scan = fd.scan_folder(root)
    ds = fd.make_dataset(scan.root, scan.items, (16, 24), batch_size=5)
    batches = list(ds)
    assert [len(y) for _, y in batches] == [5, 5, 4]
    x, y = batches[0]
    assert x.dtype.name == "float32" and x.shape == (5, 16, 24, 3) and y.dtype.name == "int32"
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert labels.tolist() == [i for _, i in scan.items]
    expected = np.stack([load_rgb(root / p, (16, 24)) for p, _ in scan.items]).astype(np.float32)
    np.testing.assert_array_equal(images, expected)  # raw 0..255 pixels, no backbone scaling
    assert images.max() > 200

    shuffled = fd.make_dataset(scan.root, scan.items, (16, 24), batch_size=32, shuffle=True, seed=3)
    epochs = [next(iter(shuffled)) for _ in range(3)]
    orders = [tuple(e[0].numpy()[:, 0, 0, 0]) for e in epochs]  # first-pixel signature of each image
    assert len(set(orders)) > 1  # a new order each epoch (no frozen .cache() order)
    contents = [sorted(map(tuple, e[0].numpy().reshape(len(scan.items), -1)[:, :12])) for e in epochs]
    assert contents[0] == contents[1] == contents[2]
    uncached = fd.make_dataset(scan.root, scan.items, (16, 24), 32, shuffle=True, seed=3, cache=False)
    assert len(set(tuple(next(iter(uncached))[1].numpy()) for _ in range(3))) > 1

    repeated = fd.make_dataset(scan.root, scan.items, (16, 24), batch_size=5, repeat=True)
    assert len(list(repeated.take(7))) == 7


def test_make_dataset_refuses_missing_files_and_bad_arguments(tmp_path: Path) -> None:
    root = factory.make_class_folder(tmp_path / "d", {"a": 2, "b": 2}, size=(12, 12), fmt="png")
    with pytest.raises(DataError, match="1 missing"):
        fd.make_dataset(root, [("a/a_0000.png", 0), ("a/gone.png", 0)], (8, 8), 2)
    with pytest.raises(DataError, match="at least one image"):
        fd.make_dataset(root, [], (8, 8), 2)
    with pytest.raises(ConfigError, match="batch_size"):
        fd.make_dataset(root, [("a/a_0000.png", 0)], (8, 8), 0)
