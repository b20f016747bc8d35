"""The folder run kind: transfer learning on a folder of class subfolders.

    result = run_training(FolderConfig(data_dir="photos", mode="frozen"), reporter, stop)

CPU time is the product, so the backbone never runs more often than it must:

- Frozen, no augmentation: every image goes through the feature extractor ONCE ("extracting features");
  only the head (Dropout + Dense softmax) is fitted, on the cached feature arrays. Evaluation reuses the
  cached features of the evaluation split. The stored model is the full one (extractor + trained head),
  taking raw 0..255 RGB images of the backbone's input size.
- Fine-tuned, no augmentation, backbone split at a cut point: the frozen bottom runs ONCE per image and its
  activations are cached ("caching activations"); only top + head are fitted. The stored model composes
  bottom + top + head. With "all" blocks unfrozen there is no bottom: the run is end to end.
- With augmentation the images change every epoch, so nothing can be cached: the run is end to end (the
  data summary says so), with Keras RandomFlip / RandomRotation / RandomZoom layers active only in training.

BatchNorm always runs in inference mode (the backbone parts are called with training=False), so unfreezing
never disturbs the pretrained statistics. Fine-tuning uses FINETUNE_LEARNING_RATE (1e-4) unless the config
sets a learning rate (transferlab.core.config.default_learning_rate). The model parts are assembled by
transferlab.core.models.transfer; a run's lineage (split_from_run, init_from_run) by transferlab.core.runs.lineage.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from transferlab.core.analysis.crossval import cross_validate
from transferlab.core.analysis.duplicates import split_groups
from transferlab.core.analysis.embeddings import cached_features
from transferlab.core.analysis.evaluation import classification_report
from transferlab.core.analysis.ood import BANK_SIZE
from transferlab.core.config import FolderConfig, default_learning_rate
from transferlab.core.data.folders import (
    DataSplit,
    Item,
    class_weights,
    classes_to_train,
    keep_groups_together,
    make_dataset,
    scan_folder,
    split_from_folders,
    split_items,
)
from transferlab.core.errors import DataError
from transferlab.core.events import PhaseProgress
from transferlab.core.models.backbones import resolve_backbone
from transferlab.core.models.building import building_models
from transferlab.core.models.transfer import (
    EXTRACT_BATCH,
    array_dataset,
    augmentation_layers,
    backbone_parts,
    build_head,
    chain,
    compose,
    inference_function,
    run_once,
)
from transferlab.core.records import DataSummary, EvaluationReport, ModelInfo
from transferlab.core.runs.lineage import copy_head_from_run, load_run_split
from transferlab.core.training.jobs import JobContext, Prepared
from transferlab.core.training.preflight import Checked
from transferlab.core.training.trust_fit import Source, TrustSamples

logger = logging.getLogger(__name__)


PHASE_INTERVAL = 0.1  # seconds between phase-progress events of per-image loops


AUGMENTATION_NOTE = ("augmentation is on: images change every epoch, so features cannot be cached and the "
                     "backbone runs end to end on every image, every epoch (much slower)")


class FolderJob:
    """A transfer-learning run on a folder of class subfolders (see the module docstring)."""

    def __init__(self, config: FolderConfig, checked: Checked | None = None) -> None:
        self.config = config
        self.checked = checked or Checked()  # the scans core.preflight already made, if any
        self.split: DataSplit | None = None
        self._fitted: keras.Model | None = None
        self._eval_cache: tuple[np.ndarray, np.ndarray] | None = None  # cached eval inputs of the fitted model
        self._eval_part = "val"
        self._cv_data: tuple[np.ndarray, np.ndarray] | None = None  # frozen features of train + val, for --cv
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # cached inputs of the fitted model

    # ---- Job protocol ----

    def prepare(self, ctx: JobContext) -> Prepared:

        config = self.config
        split, scan_summary = self._split(ctx)
        self.split = split
        ctx.store.write_json(ctx.run_id, "split.json", split.to_dict())
        n_classes = len(split.class_names)
        if not split.train:
            raise DataError(f"expected at least one training image in {split.root}, got none")
        self._eval_part = "test" if split.test else "val" if split.val else "train"

        ctx.phase("loading backbone", 0, 1)
        bottom: keras.Model | None
        with building_models():  # only the models: the backbone's weights, its parts, the head
            backbone = resolve_backbone(config.backbone)
            bottom, top = backbone_parts(backbone, config)
            head = build_head(backbone.info.feature_dim, n_classes, config.dropout)
            if config.init_from_run:
                copy_head_from_run(ctx.store, config.init_from_run, head, split.class_names, config.backbone)
        info = backbone.info
        image_size = (int(info.input_size[0]), int(info.input_size[1]))
        ctx.phase("loading backbone", 1, 1)

        labels = np.array([i for _, i in split.train], dtype=np.int32)
        weights = class_weights(labels, n_classes, config.class_weights)
        learning_rate = config.fit.learning_rate or default_learning_rate(config)

        details: dict[str, Any] = {
            **scan_summary, "validation_split_counts": list(split.counts("val")),
            "test_split_counts": list(split.counts("test")), "split": split.extra.get("source", ""),
            "class_weights": None if weights is None else {split.class_names[k]: round(v, 4)
                                                           for k, v in weights.items()},
            "backbone": dict(spec=info.spec, name=info.name, input_size=list(image_size),
                             feature_dim=int(info.feature_dim)),
            "mode": config.mode,
        }
        if config.mode == "finetune":
            details["unfreeze"] = config.unfreeze
            details["learning_rate"] = learning_rate
        if config.init_from_run:
            details["init_from_run"] = config.init_from_run
        details.pop("classes", None)
        summary = DataSummary(
            kind=config.kind, classes=tuple(split.class_names), train_samples=len(split.train),
            validation_samples=len(split.val), test_samples=len(split.test),
            train_split_counts=tuple(split.counts("train")), augment=config.augment,
            eval_set=_EVAL_SET_NAMES[self._eval_part], training=_training_text(config, bottom, top),
            note=AUGMENTATION_NOTE if config.augment else "", details=details)
        model_info = ModelInfo(config.kind, image_size, tuple(split.class_names), info.spec)

        if not config.augment and bottom is not None:
            prepared = self._prepare_cached(ctx, split, image_size, bottom, top, head, summary, model_info)
        else:
            prepared = self._prepare_end_to_end(split, image_size, [p for p in (bottom, top) if p is not None],
                                                head, summary, model_info)
        return dataclasses.replace(prepared, class_weight=weights, learning_rate=learning_rate)

    def evaluate(self, model: keras.Model, ctx: JobContext) -> EvaluationReport:
        assert self.split is not None
        items = getattr(self.split, self._eval_part)
        if self._eval_cache is not None and self._fitted is not None:
            inputs, labels = self._eval_cache
            probabilities = self._fitted.predict(array_dataset(inputs, labels, 256), verbose=0)
        else:
            image_size = (int(model.input_shape[1]), int(model.input_shape[2]))
            dataset = make_dataset(self.split.root, items, image_size, EXTRACT_BATCH, cache=False)
            labels = np.array([i for _, i in items], dtype=np.int32)
            probabilities = model.predict(dataset, verbose=0)
        report = classification_report(labels, probabilities, self.split.class_names,
                                       eval_set=_EVAL_SET_NAMES[self._eval_part], sample_ids=[p for p, _ in items])
        if self.config.cv_folds:
            report = dataclasses.replace(report, extras={**report.extras, **self._cross_validate(ctx)})
        return report

    def _cross_validate(self, ctx: JobContext) -> dict[str, Any]:
        """{"cv": the report} (also stored as crossval.json), or {"cv_note": why there is none}."""
        if self._cv_data is None:
            return {"cv_note": "cross-validation needs a frozen run without augmentation (cached features)"}
        ctx.reporter(PhaseProgress("cross-validating", 0, 1))
        features, labels = self._cv_data
        assert self.split is not None
        try:
            cv = cross_validate(features, labels, self.split.class_names, self.config.cv_folds, self.config.fit.seed)
        except DataError as exc:
            return {"cv_note": str(exc)}
        cv["images"] = "training and validation images (the test split stays untouched)"
        ctx.store.write_json(ctx.run_id, "crossval.json", cv)
        ctx.reporter(PhaseProgress("cross-validating", 1, 1))
        return {"cv": cv}

    def trust_samples(self, model: keras.Model, ctx: JobContext) -> TrustSamples:
        """Temperature and thresholds from the validation split (else the test split, else the training images,
        leave-one-out); the embedding bank from the training images; ECE on the test split when there is one.
        Cached runs reuse their cached inputs, so the backbone does not run again."""
        assert self.split is not None
        split, seed = self.split, self.config.fit.seed
        heldout_part = "val" if split.val else "test" if split.test else "train"
        report_part = "test" if heldout_part == "val" and split.test else None
        if self._cache is not None and self._fitted is not None:
            cache = self._cache
            probe_model = self._fitted

            def source(part: str) -> Source:
                return cache[part]
        else:
            image_size = (int(model.input_shape[1]), int(model.input_shape[2]))
            probe_model = model

            def source(part: str) -> Source:
                items = getattr(split, part)
                if part == "train" and len(items) > BANK_SIZE:
                    chosen = np.random.default_rng(seed).choice(len(items), BANK_SIZE, replace=False)
                    items = [items[i] for i in np.sort(chosen)]
                return make_dataset(split.root, items, image_size, EXTRACT_BATCH, cache=False)

        def name(part: str) -> str:
            return f"{_EVAL_SET_NAMES[part]} split ({len(getattr(split, part))} images)"

        return TrustSamples(
            model=probe_model, train=source("train"), heldout=source(heldout_part),
            heldout_name=name(heldout_part) + ("" if heldout_part != "train" else ", no held-out images"),
            report=source(report_part) if report_part else None, report_name=name(report_part) if report_part else "",
            heldout_is_train=heldout_part == "train", seed=seed)

    # ---- data ----

    def _split(self, ctx: JobContext) -> tuple[DataSplit, dict[str, Any]]:
        """The split to use, and the scan summary (per-class counts, skipped files) for the data summary."""
        config, fit = self.config, self.config.fit
        scan = self.checked.scan or classes_to_train(scan_folder(
            config.data_dir, progress=_PhaseReporter(ctx, "scanning folder")), config.skip_empty_classes)
        summary = scan.summary()
        if config.split_from_run:
            split = load_run_split(ctx.store, config.split_from_run)
            _check_same_classes(split.class_names, scan.class_names, f"the split of run {config.split_from_run}",
                                config.data_dir)
            same_root = Path(split.root).resolve() == Path(config.data_dir).resolve()
            missing = set(_all_items(split)) - set(scan.items) if same_root else set()
            if missing:
                raise DataError(f"expected the images of run {config.split_from_run}'s split in {config.data_dir}, "
                                f"got {len(missing)} missing or unusable (first: {sorted(missing)[0][0]})")
            source = f"reused from run {config.split_from_run}"
        elif config.val_dir:
            val_scan = self.checked.val_scan or classes_to_train(scan_folder(
                config.val_dir, progress=_PhaseReporter(ctx, "scanning validation folder")),
                config.skip_empty_classes)
            summary["validation_folder"] = val_scan.summary()
            split = split_from_folders(scan, val_scan, config.test_split, fit.seed)
            source = f"validation folder {config.val_dir}"
        else:
            split = split_items(scan, fit.validation_split, config.test_split, fit.seed)
            source = (f"stratified, seed {fit.seed}: validation {fit.validation_split:g}, "
                      f"test {config.test_split:g}")
            if split.val or split.test:  # near-duplicates on one side only: no copy of a held-out image trains
                groups = split_groups(scan.root, [p for p, _ in scan.items],
                                      _PhaseReporter(ctx, "looking for near-duplicates"))
                split, moved = keep_groups_together(split, groups)
                summary["near_duplicate_groups"] = len(groups)
                summary["groups_kept_together"] = (
                    f"{len(groups)} near-duplicate groups kept on one side of the split"
                    + (f" ({moved} moved into training)" if moved else ""))
        split = dataclasses.replace(split, extra={**split.extra, "source": source})
        return split, summary

    def _prepare_cached(self, ctx: JobContext, split: DataSplit, image_size: tuple[int, int],
                        bottom: keras.Model, top: keras.Model | None, head: keras.Sequential,
                        summary: DataSummary, model_info: ModelInfo) -> Prepared:
        fit = self.config.fit
        phase = "extracting features" if top is None else "caching activations"
        parts = {part: getattr(split, part) for part in ("train", "val", "test") if getattr(split, part)}
        if self._eval_part == "train":
            parts.setdefault("train", split.train)
        cache = self._checked_features(ctx, split, parts) if top is None else None
        if cache is None:
            total = sum(-(-len(items) // EXTRACT_BATCH) for items in parts.values())
            reporter = _BatchPhase(ctx, phase, total)
            forward = inference_function(bottom)
            cache = {part: run_once(forward, split.root, items, image_size, reporter)
                     for part, items in parts.items()}
            reporter.finish()
        if top is None and self.config.cv_folds:  # cross-validation reuses the features: no extra pass
            known = [cache[part] for part in ("train", "val") if part in cache]
            self._cv_data = (np.concatenate([x for x, _ in known]), np.concatenate([y for _, y in known]))
        train_x, train_y = cache["train"]
        train = array_dataset(train_x, train_y, fit.batch_size, shuffle=True, seed=fit.seed)
        val = array_dataset(*cache["val"], 256) if "val" in cache else None
        with building_models():
            fitted = head if top is None else chain(train_x.shape[1:], [top], head, "top_and_head")
            full = compose(image_size, [bottom] if top is None else [bottom, top], head)
        self._fitted, self._eval_cache, self._cache = fitted, cache[self._eval_part], cache

        def finalize(model: keras.Model) -> keras.Model:
            return full  # shares its layers (and trained weights) with the fitted model

        return Prepared(model=fitted, train=train, val=val, steps_per_epoch=-(-len(train_y) // fit.batch_size),
                        data_summary=summary, model_info=model_info, summary_model=full, finalize=finalize)

    def _checked_features(self, ctx: JobContext, split: DataSplit,
                          parts: dict[str, Sequence[Item]]) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """The features a data check already computed for every image (transferlab.core.analysis.embeddings:
        same decoding, same extractor), so a retrain after a check and a fix skips extraction; None unless
        all are there."""
        lookup = cached_features(split.root, [p for items in parts.values() for p, _ in items], self.config.backbone)
        if lookup is None:
            return None
        ctx.phase("reusing the data check's features", 1, 1)
        return {part: (np.stack([lookup[p] for p, _ in items]), np.array([i for _, i in items], dtype=np.int32))
                for part, items in parts.items()}

    def _prepare_end_to_end(self, split: DataSplit, image_size: tuple[int, int], parts: list[keras.Model],
                            head: keras.Sequential, summary: DataSummary, model_info: ModelInfo) -> Prepared:
        fit = self.config.fit
        train = make_dataset(split.root, split.train, image_size, fit.batch_size, shuffle=True, seed=fit.seed,
                             cache=len(split.train) <= 2000)
        val = make_dataset(split.root, split.val, image_size, EXTRACT_BATCH) if split.val else None
        with building_models():
            augmenter = augmentation_layers(fit.seed) if self.config.augment else None
            model = compose(image_size, parts, head, augmenter=augmenter)
            full = compose(image_size, parts, head) if augmenter is not None else model

        def finalize(trained: keras.Model) -> keras.Model:
            return full  # without the augmentation layers; same trained layers

        return Prepared(model=model, train=train, val=val, steps_per_epoch=-(-len(split.train) // fit.batch_size),
                        data_summary=summary, model_info=model_info, summary_model=model, finalize=finalize)


_EVAL_SET_NAMES = {"val": "validation", "test": "test", "train": "train"}


def _training_text(config: FolderConfig, bottom: keras.Model | None, top: keras.Model | None) -> str:
    """How the run trains, for the data summary."""
    if config.augment or bottom is None:
        return "end to end: the backbone runs on every image, every epoch"
    if top is None:
        return "cached features: each image goes through the frozen backbone once, then only the head is fitted"
    return ("cached activations: each image goes through the frozen bottom of the backbone once, then only the "
            "unfrozen top blocks and the head are fitted")


def _check_same_classes(expected: Sequence[str], got: Sequence[str], what: str, where: str) -> None:
    if list(expected) != list(got):
        raise DataError(f"expected the classes of {what} ({', '.join(expected)}) in {where}, "
                        f"got {', '.join(got)}")


def _all_items(split: DataSplit) -> list[Item]:
    return [*split.train, *split.val, *split.test]


class _PhaseReporter:
    """scan_folder's progress(done, total) → throttled ctx.phase (which also honours the stop flag)."""

    def __init__(self, ctx: JobContext, name: str) -> None:
        self.ctx, self.name, self.last = ctx, name, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last >= PHASE_INTERVAL:
            self.last = now
            self.ctx.phase(self.name, done, total)
        else:
            self.ctx.check_stop()


class _BatchPhase:
    """Counts batches across several passes and reports each one as ctx.phase(name, done, total)."""

    def __init__(self, ctx: JobContext, name: str, total: int) -> None:
        self.ctx, self.name, self.total, self.done = ctx, name, total, 0
        ctx.phase(name, 0, total)

    def __call__(self) -> None:
        self.done += 1
        self.ctx.phase(self.name, min(self.done, self.total), self.total)

    def finish(self) -> None:
        self.ctx.phase(self.name, self.total, self.total)

