"""Everything about a run that can be checked before its folder is created.

    checked = check_run(config, store)          # ConfigError / DataError / ModelError / RunStoreError
    result = run_training(config, reporter, stop, checked=checked)

`run_training` calls `check_run` itself when it is not given `checked`, so the CLI and the GUI refuse the same
inputs with the same one-line messages, and a refused input never leaves a run behind. The checks, cheapest
first: the backbone (bundled name, a well-formed URL, or a local folder holding a SavedModel; `unfreeze` within
the bundled backbone's blocks), the data and validation folders, the runs named by `split_from_run` and
`init_from_run` (they exist, are folder runs with a split / a model, same backbone), the run store (an existing
or creatable folder that can be written), then the scan of the folders (every image decoded cheaply; empty or
unreadable class folders refused, see core.folder_data.classes_to_train) and the classes of both runs.

The folder scans are handed on in `Checked`, so the run never scans twice. This module imports neither
TensorFlow nor Keras: the CLI calls it first, so bad input is refused in well under a second.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from transferlab.core.config import FolderConfig, RunConfig
from transferlab.core.data.folders import DataSplit, FolderScan, classes_to_train, scan_folder
from transferlab.core.errors import ConfigError, DataError, ModelError, RunStoreError
from transferlab.core.runs.store import RunStore

logger = logging.getLogger(__name__)

# Unfreezable blocks of the bundled backbones (core.backbones reads the same number from the model;
# tests/core/test_bad_input.py checks the two agree). Kept here so checking needs no Keras.
BUNDLED_BLOCKS: dict[str, int] = {"efficientnet-lite0": 17}
SAVEDMODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
PROGRESS_INTERVAL = 0.1  # seconds between scan progress reports

# (phase, done, total), e.g. ("scanning folder", 120, 800)
PhaseCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Checked:
    """What the checks found, handed to the run so nothing is scanned twice."""

    scan: FolderScan | None = None  # the data folder as it will be trained (empty classes left out if asked)
    val_scan: FolderScan | None = None


def check_run(config: RunConfig, store: RunStore, progress: PhaseCallback | None = None) -> Checked:
    """Raise a one-line TransferlabError for anything wrong with `config` that shows before training starts;
    create nothing. MNIST configs are checked by their dataclass; only the store is left to check here."""
    if not isinstance(config, FolderConfig):
        check_store_writable(store.root)
        return Checked()
    check_backbone(config.backbone, config.unfreeze)
    check_data_folder(config.data_dir, "the data folder")
    if config.val_dir:
        check_data_folder(config.val_dir, "the validation folder (--val-dir)")
    split = _split_of_run(store, config.split_from_run) if config.split_from_run else None
    theirs = _classes_of_run(store, config.init_from_run, config.backbone) if config.init_from_run else None
    check_store_writable(store.root)

    scan = classes_to_train(scan_folder(config.data_dir, progress=_throttled(progress, "scanning folder")),
                            config.skip_empty_classes)
    val_scan = None
    if config.val_dir and not split:
        val_scan = classes_to_train(scan_folder(config.val_dir, progress=_throttled(
            progress, "scanning validation folder")), config.skip_empty_classes)
        if val_scan.class_names != scan.class_names:
            raise DataError(f"expected the same class folders in {config.val_dir} as in {config.data_dir} "
                            f"({', '.join(scan.class_names)}), got {', '.join(val_scan.class_names)}")
    if split is not None and split.class_names != scan.class_names:
        raise DataError(f"split_from_run: expected the classes of run {config.split_from_run}'s split "
                        f"({', '.join(split.class_names)}) in {config.data_dir}, got {', '.join(scan.class_names)}")
    classes = split.class_names if split is not None else scan.class_names
    if theirs is not None and list(theirs) != list(classes):
        raise ConfigError(f"init_from_run: expected a run with the classes {', '.join(classes)}, got run "
                          f"{config.init_from_run} with {', '.join(theirs) or 'none'}")
    return Checked(scan=scan, val_scan=val_scan)


# ---- single checks ----

def check_backbone(spec: Any, unfreeze: int | str = 0) -> None:
    """A bundled name, an http(s) URL or a local folder holding a SavedModel; `unfreeze` within the bundled
    backbone's blocks. Whether a URL or SavedModel really is a feature-vector model shows only when it loads."""
    expected = f"{', '.join(BUNDLED_BLOCKS)}, an https URL or a local TF2 SavedModel folder"
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError(f"backbone: expected {expected}, got {spec!r}")
    spec = spec.strip()
    blocks = BUNDLED_BLOCKS.get(spec.lower())
    if blocks is not None:
        if isinstance(unfreeze, int) and not 0 <= unfreeze <= blocks:
            raise ConfigError(f"unfreeze: expected 0..{blocks} or 'all' for {spec} ({blocks} blocks), "
                              f"got {unfreeze}")
        return
    if "://" in spec:
        check_url(spec)
        return
    folder = Path(spec).expanduser()
    if not folder.exists():
        if os.sep not in spec and "/" not in spec:
            raise ModelError(f"backbone: expected {expected}, got {spec!r}, which is neither a bundled "
                             "backbone nor an existing folder")
        raise ModelError(f"backbone: expected a TF Hub handle (an https URL or a SavedModel folder), got "
                         f"{spec!r}, which does not exist")
    if not folder.is_dir() or not any((folder / name).is_file() for name in SAVEDMODEL_FILES):
        what = "a file" if not folder.is_dir() else "a folder without saved_model.pb"
        raise ModelError(f"backbone: expected a TF2 SavedModel folder (with saved_model.pb), got {spec!r}, "
                         f"which is {what}")


def check_url(url: str) -> None:
    """An http(s) URL with a host and nothing that needs quoting (spaces, control characters)."""
    bad = next((c for c in url if c.isspace() or ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ModelError(f"backbone: expected a URL without spaces or control characters, got {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ModelError(f"backbone: expected a well-formed https URL, got {url!r} ({exc})") from None
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        raise ModelError(f"backbone: expected an https:// URL with a host name, got {url!r}")
    del port


def check_data_folder(path: str, what: str) -> None:
    """An existing folder (the scan then checks what is in it)."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"expected {what} with one subfolder per class at {path}, got no such folder")
    if not folder.is_dir():
        raise DataError(f"expected {what} with one subfolder per class at {path}, got a file")


def check_store_folder(root: str | os.PathLike[str]) -> None:
    """The run store is a folder or can become one: nothing on the way to it is a file."""
    root = Path(root)
    existing = _nearest_existing(root)
    if not existing.is_dir():
        raise RunStoreError(f"expected a folder for the run store at {root}, got {existing}, which is a file "
                            "(choose another --runs-dir)")


def check_store_writable(root: str | os.PathLike[str]) -> None:
    """The run store can hold a new run: it (or the folder it will be made in) can be written. Creates nothing."""
    check_store_folder(root)
    existing = _nearest_existing(Path(root))
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "a read-only file system" if _read_only_fs(existing) else "no permission to write there"
        raise RunStoreError(f"expected a writable run store at {root}, got {reason} ({existing}; choose "
                            "another --runs-dir)")


def _nearest_existing(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _split_of_run(store: RunStore, run: str) -> DataSplit:
    run_id = store.resolve(run)
    data = store.read_json(run_id, "split.json")
    if not isinstance(data, dict):
        raise DataError(f"split_from_run: expected a folder run with split.json, got run {run_id} without one")
    return DataSplit.from_dict(data)


def _classes_of_run(store: RunStore, run: str, backbone: str) -> list[str]:
    """The classes of the run whose head a fine-tuned run starts from; it must have a model and the backbone."""
    run_id = store.resolve(run)
    info = store.read_json(run_id, "model_info.json", default={})
    if not isinstance(info, dict) or not isinstance(info.get("class_names"), list):
        raise ConfigError(f"init_from_run: expected a folder run with a trained model, got run {run_id} "
                          "without model_info.json")
    store.model_path(run_id)  # RunStoreError when the run stopped before saving a model
    if info.get("backbone") != backbone:
        raise ConfigError(f"init_from_run: expected a run with the backbone {backbone}, got run {run_id} with "
                          f"{info.get('backbone')}")
    return [str(name) for name in info["class_names"]]


def _throttled(progress: PhaseCallback | None, phase: str) -> Callable[[int, int], None] | None:
    """scan_folder's progress(done, total) → progress(phase, done, total), at most every PROGRESS_INTERVAL."""
    if progress is None:
        return None
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or done == 1 or now - last[0] >= PROGRESS_INTERVAL:
            last[0] = now
            progress(phase, done, total)

    return report
