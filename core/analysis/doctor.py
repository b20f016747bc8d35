"""The data doctor: what is wrong with a folder data set, from the backbone's embeddings and out-of-fold
predictions of a logistic head on them.

    report = check_folder("photos", backbone="efficientnet-lite0", split=None, progress=None, stop=None)

The report (plain JSON-able data; file paths relative to the folder, "/" separators):
- "suspects": likely mislabelled images, most suspect first: {"file", "label", "suggested",
  "self_confidence"} — the confident-learning ranking (Northcutt et al., "Confident Learning", 2021; the
  method cleanlab implements): an image is flagged when the out-of-fold head gives its own label less than
  the average self-confidence of that class AND another class at least that class's average (or simply
  predicts another class); flagged images are ranked by self-confidence, lowest first. Folds are
  group-aware: near-duplicates never sit on both sides, so a copy can't vouch for its twin's label.
- "near_duplicates": {"files", "classes", "similarity", "hash_bits", "kind"} with kind "within_class",
  "across_classes" (a label conflict) or "across_splits" (leakage between the parts of `split`, e.g. a
  stored run's split; then also "splits").
- "classes": [{"name", "images", "share"}], "balance": {"largest_to_smallest", "tiny_classes"},
  "unreadable": the scan's skipped files with reasons.
- "cv": accuracy mean ± std and per-class recall over the folds (transferlab.core.analysis.crossval).
- "learning_curve": accuracy against images per class, 3 seeds, with an honest reading.
- "embeddings": {"cached", "computed"}; "seconds": per phase.

Embeddings and perceptual hashes are cached on disk by file content (transferlab.core.analysis.embeddings),
so a second check after a fix costs seconds. The check records the content hash of every file it saw in
the data set's journal (transferlab.core.data.fixes), so a fix refuses a file changed since.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.core.analysis.crossval import cv_report, learning_curve, out_of_fold, usable_folds
from transferlab.core.analysis.duplicates import (
    NearDuplicateGroup,
    cached_perceptual_hashes,
    group_labels,
    near_duplicate_groups,
)
from transferlab.core.analysis.embeddings import embed_files
from transferlab.core.data.fixes import record_check
from transferlab.core.data.folders import DataSplit, content_hash, scan_folder
from transferlab.core.errors import TransferlabError
from transferlab.core.stopping import StopFlag

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (phase, done, total)
TINY_CLASS = 10  # images: fewer and a class can't be learned or measured reliably
IMBALANCE = 3.0  # largest / smallest class above this is reported
MAX_SUSPECTS = 100


class CheckStopped(TransferlabError):
    """The data check was asked to stop."""


def check_folder(root: str | os.PathLike[str], backbone: str = "efficientnet-lite0", *,
                 split: DataSplit | None = None, folds: int = 5, seed: int = 42, with_curve: bool = True,
                 progress: Progress | None = None, stop: StopFlag | None = None,
                 use_cache: bool = True) -> dict[str, Any]:
    """Check a folder of class subfolders (see the module docstring); DataError for an unusable folder."""
    progress = progress or (lambda phase, done, total: None)
    stop = stop or StopFlag()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        if stop.requested:
            raise CheckStopped(stop.reason or "stopped")
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    scan = scan_folder(root, progress=lambda done, total: _tick(progress, stop, "scanning folder", done, total))
    paths = [p for p, _ in scan.items]
    labels = scan.labels
    names = list(scan.class_names)
    keys = [content_hash(Path(scan.root) / p) for p in paths]
    lap("scan")
    embeddings, cache_counts = embed_files(scan.root, paths, backbone,
                                           lambda d, t: _tick(progress, stop, "computing embeddings", d, t),
                                           use_cache=use_cache, keys=keys)
    lap("embeddings")
    hashes = cached_perceptual_hashes(scan.root, paths, lambda d, t: _tick(progress, stop, "hashing", d, t),
                                      use_cache=use_cache, keys=keys)
    lap("hashes")
    groups = near_duplicate_groups(hashes, embeddings)
    group_ids = group_labels(len(paths), groups)
    lap("near_duplicates")
    progress("cross-validating", 0, 1)
    report_cv: dict[str, Any] | None = None
    suspects: list[dict[str, Any]] = []
    curve: dict[str, Any] | None = None
    notes: list[str] = []
    try:
        usable_folds(labels, folds)
    except TransferlabError as exc:
        notes.append(f"no cross-validation, suspects or learning curve: {exc}")
    else:
        probabilities, fold_of = out_of_fold(embeddings, labels, folds, seed, group_ids)
        suspects = rank_suspects(probabilities, labels, paths, names)
        report_cv = cv_report(probabilities, labels, fold_of, names)
        report_cv["grouped"] = bool(groups)
        lap("cross_validation")
        if with_curve:
            progress("learning curve", 0, 1)
            try:
                curve = learning_curve(embeddings, labels, names)
            except TransferlabError as exc:
                notes.append(f"no learning curve: {exc}")
            lap("learning_curve")
    progress("done", 1, 1)
    try:
        record_check(scan.root, dict(zip(paths, keys, strict=True)))
    except TransferlabError as exc:  # a read-only data set can still be checked, just not fixed
        notes.append(f"the check could not be recorded in the data set, so fixes are off: {exc}")
    return {
        "root": scan.root, "backbone": backbone, "images": len(paths),
        "classes": class_rows(names, scan.counts), "balance": balance(names, scan.counts),
        "unreadable": [{"file": s.path, "reason": s.reason} for s in scan.skipped],
        "suspects": suspects[:MAX_SUSPECTS], "suspects_total": len(suspects),
        "near_duplicates": describe_groups(groups, paths, labels, names, split, scan.root),
        "cv": report_cv, "learning_curve": curve, "embeddings": cache_counts, "notes": notes,
        "seconds": {**seconds, "total": round(sum(seconds.values()), 3)},
    }


def _tick(progress: Progress, stop: StopFlag, phase: str, done: int, total: int) -> None:
    if stop.requested:
        raise CheckStopped(stop.reason or "stopped")
    progress(phase, done, total)


def rank_suspects(probabilities: np.ndarray, labels: np.ndarray, paths: Sequence[str],
                  names: Sequence[str]) -> list[dict[str, Any]]:
    """Confident-learning flags ranked by self-confidence (lowest first); see the module docstring."""
    n, k = probabilities.shape
    self_confidence = probabilities[np.arange(n), labels]
    thresholds = np.array([probabilities[labels == c, c].mean() if (labels == c).any() else 1.0
                           for c in range(k)])
    above = probabilities >= thresholds[None, :]
    above[np.arange(n), labels] = False
    confident_other = np.where(above, probabilities, -1.0).argmax(1)
    has_other = above.any(1)
    predicted = probabilities.argmax(1)
    flagged = (has_other & (self_confidence < thresholds[labels])) | (predicted != labels)
    others = probabilities.copy()
    others[np.arange(n), labels] = -1.0
    suggested = np.where(has_other, confident_other, others.argmax(1))
    order = sorted(np.nonzero(flagged)[0].tolist(), key=lambda i: (self_confidence[i], paths[i]))
    return [{"file": paths[i], "label": names[labels[i]], "suggested": names[suggested[i]],
             "self_confidence": round(float(self_confidence[i]), 4),
             "suggested_confidence": round(float(probabilities[i, suggested[i]]), 4)} for i in order]


def describe_groups(groups: Sequence[NearDuplicateGroup], paths: Sequence[str], labels: np.ndarray,
                    names: Sequence[str], split: DataSplit | None, root: str) -> list[dict[str, Any]]:
    part_of = split_parts(split, root)
    rows = []
    for group in groups:
        files = [paths[i] for i in group.members]
        classes = [names[labels[i]] for i in group.members]
        parts = [part_of.get(f, "") for f in files]
        kind = ("across_splits" if len({p for p in parts if p}) > 1 else
                "across_classes" if len(set(classes)) > 1 else "within_class")
        row: dict[str, Any] = {"files": files, "classes": classes, "similarity": round(group.similarity, 4),
                               "hash_bits": group.hash_bits, "kind": kind}
        if part_of:
            row["splits"] = parts
        rows.append(row)
    order = {"across_splits": 0, "across_classes": 1, "within_class": 2}
    return sorted(rows, key=lambda r: (order[r["kind"]], -r["similarity"]))


def split_parts(split: DataSplit | None, root: str) -> dict[str, str]:
    """{file relative to root: "train" | "val" | "test"} for a split of the same folder."""
    if split is None:
        return {}
    base = Path(split.root or root).resolve()
    here = Path(root).resolve()
    mapping = {}
    for part in ("train", "val", "test"):
        for path, _ in getattr(split, part):
            full = (base / path).resolve() if not os.path.isabs(path) else Path(path).resolve()
            try:
                mapping[full.relative_to(here).as_posix()] = part
            except ValueError:
                continue  # a file of another folder (a separate validation folder)
    return mapping


def class_rows(names: Sequence[str], counts: Sequence[int]) -> list[dict[str, Any]]:
    total = max(sum(counts), 1)
    return [{"name": name, "images": int(c), "share": round(c / total, 4), "tiny": int(c) < TINY_CLASS}
            for name, c in zip(names, counts, strict=True)]


def balance(names: Sequence[str], counts: Sequence[int]) -> dict[str, Any]:
    present = [c for c in counts if c]
    ratio = max(present) / min(present) if present else 0.0
    tiny = [name for name, c in zip(names, counts, strict=True) if c < TINY_CLASS]
    notes = []
    if ratio > IMBALANCE:
        notes.append(f"the largest class has {ratio:.1f}× the images of the smallest: accuracy favours the large "
                     "classes (training weights classes when the ratio is above 1.5)")
    if tiny:
        notes.append(f"tiny classes (fewer than {TINY_CLASS} images): {', '.join(tiny)}; their recall can't be "
                     "measured reliably")
    return {"largest_to_smallest": round(ratio, 2), "tiny_classes": tiny, "notes": notes}
