"""Folder data sets: one subfolder per class, checked image by image, split reproducibly, fed to tf.data.

Public API
- ``scan_folder(root, *, min_size=8, max_pixels=64_000_000, progress=None) -> FolderScan``
  Classes are the top-level subfolders (sorted names); files nested deeper count for their top-level
  folder; dot-prefixed files and folders are ignored; other suffixes are listed in ``ignored``; every
  image is decoded (cheaply) and broken ones are listed in ``skipped`` with the reason. DataError when
  the root is unusable or fewer than 2 classes have usable images. The folder ``_excluded`` (images set
  aside by the data check, core.data.fixes) is never a class.
- ``FolderScan`` — root, class_names, items ((relative POSIX path, class index), ...), skipped, ignored,
  empty_classes, sizes, duplicates; ``counts``, ``labels``, ``summary()`` (JSON-able, for GUI and CLI).
- ``classes_to_train(scan, skip_empty_classes=False) -> FolderScan`` — the scan a run trains on: a class
  folder without usable images is refused by name (or left out when asked), an unreadable one is refused.
- ``split_items(scan, val_fraction, test_fraction=0.0, seed=42) -> DataSplit`` — stratified and seeded.
- ``split_from_folders(train_scan, val_scan, test_fraction=0.0, seed=42) -> DataSplit`` — a separate
  validation folder (same class names required).
- ``DataSplit`` — train / val / test item tuples, class_names, seed, root; ``to_json()`` / ``from_json()``;
  ``save_split(split, path)`` (atomic) / ``load_split(path)``.
- ``class_weights(labels, n_classes, mode="auto") -> dict[int, float] | None``.
- ``make_dataset(root, items, image_size, batch_size, *, shuffle=False, seed=42, cache=True, repeat=False)``
  — a tf.data.Dataset of (float32 [B, H, W, 3] raw 0..255 pixels, int32 [B] labels).

Item paths are relative to the split's / scan's root, with "/" separators; an absolute item path is used
as is. Sizes are (height, width), like Keras' ``image_size``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from transferlab.core.atomic import write_text_atomic
from transferlab.core.data.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    check_image,
    is_image_name,
    load_rgb,
    read_image_bytes,
)
from transferlab.core.errors import ConfigError, DataError, ImageError

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

Item = tuple[str, int]  # (relative path, class index)
ProgressCallback = Callable[[int, int], None]
SPLIT_FORMAT = 1
EXCLUDED_DIR = "_excluded"  # images the data check's user set aside (core.data.fixes); never a class


def content_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b-128 of a file's bytes, hex: the identity of an image's content (caches, the fixes journal)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class SkippedFile:
    """An image file that could not be used, and why (the ImageError message)."""

    path: str  # relative to the scanned root
    reason: str


@dataclass(frozen=True)
class FolderScan:
    """What scan_folder found. `items` and `sizes` are parallel and sorted by path."""

    root: str
    class_names: tuple[str, ...]
    items: tuple[Item, ...]
    skipped: tuple[SkippedFile, ...] = ()
    ignored: tuple[str, ...] = ()  # non-image files and files outside any class folder
    empty_classes: tuple[str, ...] = ()  # class folders without a single usable image
    sizes: tuple[tuple[int, int], ...] = ()  # (height, width) of each item, as displayed
    duplicates: tuple[tuple[str, ...], ...] = ()  # identical files found in different classes
    unreadable: tuple[SkippedFile, ...] = ()  # folders that could not be listed ("cat/" or "cat/sub/"), and why
    seconds: float = 0.0

    @property
    def counts(self) -> tuple[int, ...]:
        """Usable images per class, in class_names order."""
        return tuple(int(c) for c in np.bincount(self.labels, minlength=len(self.class_names)))

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.items], dtype=np.int32)

    def summary(self) -> dict[str, Any]:
        """Plain JSON-able data: per-class counts, skipped files with reasons, image sizes, duplicates."""
        sizes = np.array(self.sizes, dtype=np.int64).reshape(-1, 2)

        def stats(column: int) -> dict[str, int]:
            if not len(sizes):
                return {"min": 0, "median": 0, "max": 0}
            values = sizes[:, column]
            return {"min": int(values.min()), "median": int(np.median(values)), "max": int(values.max())}

        return {
            "root": self.root,
            "classes": list(self.class_names),
            "counts": dict(zip(self.class_names, self.counts, strict=True)),
            "images": len(self.items),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "ignored": list(self.ignored),
            "empty_classes": list(self.empty_classes),
            "height": stats(0),
            "width": stats(1),
            "duplicates": [list(group) for group in self.duplicates],
            "unreadable": [{"path": s.path, "reason": s.reason} for s in self.unreadable],
            "seconds": round(self.seconds, 3),
        }


def scan_folder(
    root: str | os.PathLike[str],
    *,
    min_size: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: ProgressCallback | None = None,
) -> FolderScan:
    """Find, check and label every image under root/<class>/ (see the module docstring)."""
    started = time.perf_counter()
    root_path = Path(root)
    if not root_path.exists():
        raise DataError(f"expected a folder of class subfolders at {root_path}, got no such folder")
    if not root_path.is_dir():
        raise DataError(f"expected a folder of class subfolders at {root_path}, got a file")
    try:
        entries = sorted(os.scandir(root_path), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"expected a readable folder at {root_path}, got {type(exc).__name__}: {exc}") from exc
    class_names = tuple(e.name for e in entries if e.is_dir() and not e.name.startswith(".")
                        and e.name != EXCLUDED_DIR)
    ignored = [e.name for e in entries if not e.is_dir() and not e.name.startswith(".")]
    candidates: list[tuple[str, int]] = []
    unreadable: list[SkippedFile] = []
    for index, name in enumerate(class_names):
        for relative in _walk_files(root_path, name, unreadable):
            if is_image_name(relative):
                candidates.append((relative, index))
            else:
                ignored.append(relative)

    items: list[Item] = []
    sizes: list[tuple[int, int]] = []
    skipped: list[SkippedFile] = []
    by_hash: dict[str, list[Item]] = {}
    total = len(candidates)
    for done, (relative, index) in enumerate(candidates, start=1):
        try:
            data = read_image_bytes(root_path / relative)
            sizes.append(check_image(data, name=relative, min_size=min_size, max_pixels=max_pixels))
        except ImageError as exc:
            skipped.append(SkippedFile(relative, str(exc)))
            logger.debug("skipped %s: %s", relative, exc)
        else:
            items.append((relative, index))
            by_hash.setdefault(hashlib.blake2b(data, digest_size=16).hexdigest(), []).append((relative, index))
        if progress is not None:
            progress(done, total)

    counts = np.bincount([i for _, i in items], minlength=len(class_names)) if class_names else np.array([])
    empty = tuple(name for name, n in zip(class_names, counts, strict=True) if n == 0)
    usable = len(class_names) - len(empty)
    if usable < 2:
        raise DataError(_too_few_classes_message(root_path, class_names, empty, skipped, unreadable))
    duplicates = tuple(tuple(p for p, _ in group) for group in by_hash.values()
                       if len({i for _, i in group}) > 1)
    scan = FolderScan(
        root=str(root_path), class_names=class_names, items=tuple(items), skipped=tuple(skipped),
        ignored=tuple(sorted(ignored)), empty_classes=empty, sizes=tuple(sizes), duplicates=duplicates,
        unreadable=tuple(unreadable), seconds=time.perf_counter() - started,
    )
    logger.info("scanned %s: %d images in %d classes, %d skipped, %d ignored, in %.2f s", root_path,
                len(items), usable, len(skipped), len(ignored), scan.seconds)
    return scan


def _walk_files(root: Path, class_name: str, unreadable: list[SkippedFile]) -> list[str]:
    """Relative POSIX paths of the non-hidden files under root/class_name, at any depth, sorted. Folders that
    cannot be listed are added to `unreadable` (os.walk would silently skip them)."""
    found: list[str] = []

    def note(exc: OSError) -> None:
        folder = Path(exc.filename or root / class_name)
        relative = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)
        unreadable.append(SkippedFile(f"{relative}/", f"unreadable folder ({_os_reason(exc)})"))
        logger.warning("cannot read folder %s: %s", folder, exc)

    for folder, dirs, files in os.walk(root / class_name, onerror=note):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder).relative_to(root).as_posix()
        found.extend(f"{base}/{f}" for f in files if not f.startswith("."))
    return sorted(found)


def _os_reason(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _too_few_classes_message(root: Path, class_names: Sequence[str], empty: Sequence[str],
                             skipped: Sequence[SkippedFile], unreadable: Sequence[SkippedFile] = ()) -> str:
    usable = [n for n in class_names if n not in empty]
    if not class_names:
        return (f"expected at least 2 class subfolders of images in {root}, got no subfolders "
                f"(put each class's images in its own folder, e.g. {root}/cat, {root}/dog)")
    return (f"expected at least 2 class folders with usable images in {root}, got {len(usable)}"
            f"{' (' + ', '.join(usable) + ')' if usable else ''}; empty class folders: "
            f"{_describe_empty(empty, skipped, unreadable) or 'none'}")


def _describe_empty(empty: Sequence[str], skipped: Sequence[SkippedFile],
                    unreadable: Sequence[SkippedFile]) -> str:
    """'dog, owl (3 unusable files), emu (unreadable folder (PermissionError: ...))'."""
    parts = []
    for name in empty:
        denied = next((u.reason for u in unreadable if u.path == f"{name}/"), "")
        broken = sum(1 for s in skipped if s.path.split("/", 1)[0] == name)
        parts.append(f"{name} ({denied})" if denied else f"{name} ({broken} unusable files)" if broken else name)
    return ", ".join(parts)


def classes_to_train(scan: FolderScan, skip_empty_classes: bool = False) -> FolderScan:
    """The scan a run trains on. A class folder that could not be read is refused; one without usable images
    is refused by name (it would become a model output that was never shown an image), unless
    `skip_empty_classes`: then it is left out and the other classes are renumbered."""
    root = Path(scan.root)
    denied = [u for u in scan.unreadable if u.path.count("/") == 1 and u.path[:-1] in scan.class_names]
    if denied:
        raise DataError(f"expected readable class folders in {root}, got {len(denied)} that cannot be read: "
                        + ", ".join(f"{u.path[:-1]} ({u.reason})" for u in denied))
    if not scan.empty_classes:
        return scan
    if not skip_empty_classes:
        raise DataError(f"expected images in every class folder of {root}, got none in "
                        f"{_describe_empty(scan.empty_classes, scan.skipped, ())} (add images, remove the "
                        "folder, or leave empty classes out: --skip-empty-classes, or the check box in the app)")
    kept = [name for name in scan.class_names if name not in scan.empty_classes]
    new_index = {scan.class_names.index(name): i for i, name in enumerate(kept)}
    logger.info("leaving out empty class folders: %s", ", ".join(scan.empty_classes))
    return dataclasses.replace(scan, class_names=tuple(kept),
                               items=tuple((path, new_index[label]) for path, label in scan.items))


# ---- splits ----

@dataclass(frozen=True)
class DataSplit:
    """Which files are for training, validation and testing; stored with a run so it can be reused."""

    class_names: tuple[str, ...]
    train: tuple[Item, ...]
    val: tuple[Item, ...] = ()
    test: tuple[Item, ...] = ()
    seed: int | None = None
    root: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # how it was made (fractions, folders)

    def to_dict(self) -> dict[str, Any]:
        return {"format": SPLIT_FORMAT, "root": self.root, "class_names": list(self.class_names),
                "seed": self.seed, "extra": dict(self.extra),
                **{part: [[p, int(i)] for p, i in getattr(self, part)] for part in ("train", "val", "test")}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSplit:
        try:
            if data.get("format", SPLIT_FORMAT) != SPLIT_FORMAT:
                raise DataError(f"expected a split of format {SPLIT_FORMAT}, got format {data.get('format')!r}")
            names = tuple(str(n) for n in data["class_names"])
            parts = {part: tuple((str(p), int(i)) for p, i in data.get(part, ())) for part in ("train", "val",
                                                                                              "test")}
            seed = data.get("seed")
            split = cls(class_names=names, seed=None if seed is None else int(seed), root=str(data.get("root", "")),
                        extra=dict(data.get("extra") or {}), **parts)
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"expected a data split (class_names, train, val, test), got unreadable data "
                            f"({type(exc).__name__}: {exc})") from exc
        labels = [i for part in (split.train, split.val, split.test) for _, i in part]
        if labels and not 0 <= min(labels) <= max(labels) < len(names):
            raise DataError(f"expected class indices in 0..{len(names) - 1} in the split, "
                            f"got {min(labels)}..{max(labels)}")
        return split

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> DataSplit:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"expected a JSON data split, got invalid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise DataError(f"expected a JSON object for a data split, got {type(data).__name__}")
        return cls.from_dict(data)

    def counts(self, part: Literal["train", "val", "test"]) -> tuple[int, ...]:
        labels = [i for _, i in getattr(self, part)]
        return tuple(int(c) for c in np.bincount(labels, minlength=len(self.class_names)))


def split_items(scan: FolderScan, val_fraction: float, test_fraction: float = 0.0, seed: int = 42) -> DataSplit:
    """Stratified, seeded split of scan.items. Per class: round(n × fraction) images, at least 1 validation
    image when val_fraction > 0 and the class has ≥ 2 images, at least 1 test image when test_fraction > 0
    and the class has ≥ 3, and always at least 1 training image. The same scan and seed give the same split."""
    train, val, test = _stratified(scan.items, len(scan.class_names), val_fraction, test_fraction, seed)
    return DataSplit(class_names=scan.class_names, train=train, val=val, test=test, seed=seed, root=scan.root,
                     extra={"val_fraction": val_fraction, "test_fraction": test_fraction})


def keep_groups_together(split: DataSplit, groups: Sequence[Sequence[str]]) -> tuple[DataSplit, int]:
    """Move every near-duplicate group that straddles the parts of `split` into its training part, so no copy
    of a validation or test image is trained on (leakage). Returns the split and how many groups were moved."""
    part_of = {path: part for part in ("train", "val", "test") for path, _ in getattr(split, part)}
    to_train: set[str] = set()
    moved = 0
    for group in groups:
        parts = {part_of[p] for p in group if p in part_of}
        if len(parts) > 1:
            moved += 1
            to_train.update(p for p in group if part_of.get(p) != "train")
    if not to_train:
        return split, 0
    val = tuple(item for item in split.val if item[0] not in to_train)
    test = tuple(item for item in split.test if item[0] not in to_train)
    moved_items = [item for item in (*split.val, *split.test) if item[0] in to_train]
    return dataclasses.replace(split, train=tuple(sorted([*split.train, *moved_items])), val=val, test=test), moved


def split_from_folders(train_scan: FolderScan, val_scan: FolderScan, test_fraction: float = 0.0,
                       seed: int = 42) -> DataSplit:
    """Training images from one folder, validation images from another with the same class names;
    `test_fraction` of the training folder (stratified) may be held out for testing."""
    if train_scan.class_names != val_scan.class_names:
        raise DataError(f"expected the same class folders in {val_scan.root} as in {train_scan.root} "
                        f"({', '.join(train_scan.class_names)}), got {', '.join(val_scan.class_names)}")
    train_root, val_root = Path(train_scan.root).resolve(), Path(val_scan.root).resolve()
    try:
        root = Path(os.path.commonpath([train_root, val_root]))
    except ValueError:  # different drives: keep absolute paths
        root = None

    def rebase(base: Path, items: Sequence[Item]) -> tuple[Item, ...]:
        prefix = base if root is None else base.relative_to(root)
        return tuple(((prefix / p).as_posix(), i) for p, i in items)

    train, _, test = _stratified(train_scan.items, len(train_scan.class_names), 0.0, test_fraction, seed)
    return DataSplit(class_names=train_scan.class_names, train=rebase(train_root, train),
                     val=rebase(val_root, val_scan.items), test=rebase(train_root, test), seed=seed,
                     root="" if root is None else str(root),
                     extra={"train_dir": str(train_root), "val_dir": str(val_root), "test_fraction": test_fraction})


def save_split(split: DataSplit, path: str | os.PathLike[str]) -> None:
    """Write the split as JSON atomically (a failed write leaves any previous file intact)."""
    write_text_atomic(path, split.to_json())


def load_split(path: str | os.PathLike[str]) -> DataSplit:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"expected a data split file at {path}, got {type(exc).__name__}: {exc}") from exc
    return DataSplit.from_json(text)


def _stratified(items: Sequence[Item], n_classes: int, val_fraction: float, test_fraction: float,
                seed: int) -> tuple[tuple[Item, ...], tuple[Item, ...], tuple[Item, ...]]:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"{name}: expected a fraction in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction: expected less than 1, got {val_fraction + test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[Item] = []
    val: list[Item] = []
    test: list[Item] = []
    for label in range(n_classes):
        members = sorted(p for p, i in items if i == label)
        order = [members[k] for k in rng.permutation(len(members))]
        n = len(order)
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n >= 2 else 0
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 and n >= 3 else 0
        n_test = min(n_test, max(0, n - 1 - n_val))
        n_val = min(n_val, max(0, n - 1 - n_test))
        val += [(p, label) for p in order[:n_val]]
        test += [(p, label) for p in order[n_val:n_val + n_test]]
        train += [(p, label) for p in order[n_val + n_test:]]
    return tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test))


# ---- class weights ----

def class_weights(labels: Sequence[int] | np.ndarray, n_classes: int,
                  mode: Literal["auto", "on", "off"] = "auto") -> dict[int, float] | None:
    """Balanced weights n / (k × count) for Keras' `class_weight` (k = classes present), or None.

    "auto": only when the largest class has more than 1.5× the images of the smallest; "on": always;
    "off": never. A class without images gets weight 1.0."""
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"class_weights: expected auto, on or off, got {mode!r}")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes]
    present = counts[counts > 0]
    if mode == "off" or not len(present):
        return None
    if mode == "auto" and present.max() <= 1.5 * present.min():
        return None
    total, k = float(present.sum()), len(present)
    return {i: (total / (k * float(c)) if c else 1.0) for i, c in enumerate(counts)}


# ---- tf.data ----

def make_dataset(
    root: str | os.PathLike[str],
    items: Sequence[Item],
    image_size: tuple[int, int],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 42,
    cache: bool = True,
    repeat: bool = False,
) -> tf.data.Dataset:
    """(images float32 [B, H, W, 3] with raw 0..255 values, labels int32 [B]) from image files.

    Files are decoded by core.images (any mode, EXIF-rotated, stretched to image_size = (height, width))
    on tf.data's parallel threads. Decoded images are cached as uint8 (a quarter of float32's memory) and
    shuffled after the cache, so every epoch gets a new order. No backbone scaling is applied here."""
    import tensorflow as tf  # ~4.5 s, only needed here

    if not items:
        raise DataError("expected at least one image for the data set, got none")
    if len(image_size) != 2 or min(image_size) < 1:
        raise ConfigError(f"image_size: expected (height, width) of positive integers, got {image_size!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    height, width = int(image_size[0]), int(image_size[1])
    paths = [os.path.join(root, p) for p, _ in items]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"expected {len(paths)} image files under {root}, got {len(missing)} missing "
                        f"(first: {missing[0]})")
    labels = np.array([i for _, i in items], dtype=np.int32)

    def decode(path: bytes) -> np.ndarray:
        return load_rgb(os.fsdecode(path), (height, width), min_size=1)

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape((height, width, 3))
        return image, label

    paths_tensor = tf.constant([os.fsencode(p) for p in paths], dtype=tf.string)
    ds = tf.data.Dataset.from_tensor_slices((paths_tensor, labels))
    if cache:  # decode once, then a new order every epoch (shuffling before .cache() would freeze it)
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    else:  # shuffle the file names, not decoded images (a full buffer of images would cost the same as a cache)
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)
