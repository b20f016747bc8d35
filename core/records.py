"""The typed records that cross module boundaries, and their JSON form in the run store.

    ModelInfo         how to feed a stored model (model_info.json)
    DataSummary       what a run trains and evaluates on (summary.json "data", the RunStarted event)
    EvaluationReport  loss, accuracy, confusion matrix, per-class scores, mistakes (metrics.json)
    Comparison        a frozen and a fine-tuned run on the same split, and their differences

Each has `to_json()` (plain JSON-able data, in the layout the store has always used) and `from_json(data)`, which
also reads what older versions stored. Plain Python: no TensorFlow, no numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transferlab.core.errors import ModelError, RunStoreError

JsonDict = dict[str, Any]
SampleId = int | str  # MNIST: the index in the test set; folders: the image path relative to the data folder
HistoryRow = dict[str, float]  # one finished epoch: epoch, loss, accuracy, val_loss, ..., elapsed

# model_info.json before the run kinds were unified named the input instead of the kind.
_LEGACY_INPUTS = {"digits28": "mnist", "rgb": "folder"}


@dataclass(frozen=True)
class ModelInfo:
    """How to feed a stored model: the run kind (transferlab.core.kinds), the input size, the classes."""

    kind: str
    image_size: tuple[int, int]  # (height, width)
    class_names: tuple[str, ...]
    backbone: str | None = None  # folder runs: the backbone spec

    def to_json(self) -> JsonDict:
        data: JsonDict = {"kind": self.kind, "image_size": list(self.image_size),
                          "class_names": list(self.class_names)}
        if self.backbone is not None:
            data["backbone"] = self.backbone
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "model_info.json") -> ModelInfo:
        kind = data.get("kind") or _LEGACY_INPUTS.get(str(data.get("input")))
        if not isinstance(kind, str) or not kind:
            raise ModelError(f"expected {where} with a run kind, got {dict(data) or 'none'}")
        try:
            height, width = (int(s) for s in data.get("image_size", ()))
            class_names = tuple(str(c) for c in data.get("class_names", ()))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"expected {where} with image_size [h, w] and class_names, got "
                             f"{data.get('image_size')!r}, {data.get('class_names')!r}") from exc
        backbone = data.get("backbone")
        return cls(kind, (height, width), class_names, None if backbone is None else str(backbone))


@dataclass(frozen=True)
class DataSummary:
    """What a run trains and evaluates on. `details` holds what only its kind reports (the MNIST archive's
    shapes; a folder's scan, skipped files, backbone, split source, class weights)."""

    kind: str
    classes: tuple[str, ...]
    train_samples: int
    validation_samples: int
    test_samples: int
    train_split_counts: tuple[int, ...]
    augment: bool
    eval_set: str = "test"
    training: str = ""  # how the run trains, when it is worth saying (cached features, end to end)
    note: str = ""  # a warning for the user (e.g. augmentation makes a folder run much slower)
    details: Mapping[str, Any] = field(default_factory=dict)

    _FIELDS = ("kind", "classes", "train_samples", "validation_samples", "test_samples", "train_split_counts",
               "augment", "eval_set", "training", "note")

    def to_json(self) -> JsonDict:
        data: JsonDict = {**self.details, "kind": self.kind, "classes": list(self.classes),
                          "train_samples": self.train_samples, "validation_samples": self.validation_samples,
                          "test_samples": self.test_samples, "train_split_counts": list(self.train_split_counts),
                          "augment": self.augment, "eval_set": self.eval_set}
        for key in ("training", "note"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataSummary:
        return cls(kind=str(data.get("kind", "")), classes=tuple(str(c) for c in data.get("classes", ())),
                   train_samples=int(data.get("train_samples", 0)),
                   validation_samples=int(data.get("validation_samples", 0)),
                   test_samples=int(data.get("test_samples", 0)),
                   train_split_counts=tuple(int(c) for c in data.get("train_split_counts", ())),
                   augment=bool(data.get("augment", False)), eval_set=str(data.get("eval_set", "test")),
                   training=str(data.get("training", "")), note=str(data.get("note", "")),
                   details={k: v for k, v in data.items() if k not in cls._FIELDS})


@dataclass(frozen=True)
class ClassScores:
    name: str
    precision: float
    recall: float
    f1: float
    support: int

    def to_json(self) -> JsonDict:
        return {"class": self.name, "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "support": self.support}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClassScores:
        return cls(str(data["class"]), float(data["precision"]), float(data["recall"]), float(data["f1"]),
                   int(data["support"]))


@dataclass(frozen=True)
class Mistake:
    """One misclassified sample: its position in the evaluation set, its id, true and predicted class."""

    index: int
    id: SampleId
    true: int
    predicted: int
    probability: float  # of the predicted class

    def to_json(self) -> JsonDict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mistake:
        sample_id = data.get("id", data.get("index", 0))
        return cls(int(data.get("index", 0)), sample_id if isinstance(sample_id, str) else int(sample_id),
                   int(data["true"]), int(data["predicted"]), float(data["probability"]))


# eval_set → the prefix of its metric names in metrics.json (test_accuracy, val_loss, ...)
_EVAL_PREFIXES = {"test": "test", "validation": "val", "train": "train"}


@dataclass(frozen=True)
class EvaluationReport:
    """How a trained model did on its evaluation set (metrics.json)."""

    eval_set: str  # "test", "validation" or "train"
    loss: float
    accuracy: float
    samples: int
    class_names: tuple[str, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]  # [true][predicted]
    per_class: tuple[ClassScores, ...]
    misclassified: tuple[Mistake, ...]  # most confident first, at most MAX_MISCLASSIFIED
    # Every sample's true and predicted class (runs stored before these were kept have None).
    labels: tuple[int, ...] | None = None
    predictions: tuple[int, ...] | None = None
    sample_ids: tuple[SampleId, ...] | None = None  # None: the ids are the indices
    epochs_trained: int | None = None
    # What later analyses add to metrics.json (calibration, the unknown check, cross-validation), as stored.
    extras: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("eval_set", "loss", "accuracy", "samples", "class_names", "confusion_matrix", "per_class",
             "misclassified", "labels", "predictions", "sample_ids", "epochs_trained")

    @property
    def wrong(self) -> int:
        """How many samples were misclassified."""
        return sum(sum(row) for row in self.confusion_matrix) - sum(
            row[i] for i, row in enumerate(self.confusion_matrix))

    def scalars(self) -> JsonDict:
        """The scalar metrics (what `transferlab train --json` prints as "metrics")."""
        return {k: v for k, v in self.to_json().items() if isinstance(v, int | float | str)}

    def to_json(self) -> JsonDict:
        data: JsonDict = {"eval_set": self.eval_set}
        prefix = _EVAL_PREFIXES.get(self.eval_set)
        if prefix:
            data[f"{prefix}_loss"] = self.loss
            data[f"{prefix}_accuracy"] = self.accuracy
        data.update({
            "loss": self.loss, "accuracy": self.accuracy, "samples": self.samples,
            "class_names": list(self.class_names),
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "per_class": [row.to_json() for row in self.per_class],
            "misclassified": [m.to_json() for m in self.misclassified],
            "labels": _list_or_none(self.labels), "predictions": _list_or_none(self.predictions),
            "sample_ids": _list_or_none(self.sample_ids)})
        if self.epochs_trained is not None:
            data["epochs_trained"] = self.epochs_trained
        return {**self.extras, **data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationReport:
        try:
            epochs = data.get("epochs_trained")
            return cls(
                eval_set=str(data.get("eval_set", "evaluation")), loss=float(data["loss"]),
                accuracy=float(data["accuracy"]), samples=int(data.get("samples", 0)),
                class_names=tuple(str(c) for c in data.get("class_names", ())),
                confusion_matrix=tuple(tuple(int(v) for v in row) for row in data.get("confusion_matrix", ())),
                per_class=tuple(ClassScores.from_json(row) for row in data.get("per_class", ())),
                misclassified=tuple(Mistake.from_json(m) for m in data.get("misclassified", ())),
                labels=_ints_or_none(data.get("labels")), predictions=_ints_or_none(data.get("predictions")),
                sample_ids=None if data.get("sample_ids") is None else tuple(data["sample_ids"]),
                epochs_trained=None if epochs is None else int(epochs),
                extras={k: v for k, v in data.items()
                        if k not in cls._KEYS and not k.endswith(("_loss", "_accuracy"))})
        except (KeyError, TypeError, ValueError) as exc:
            raise RunStoreError(f"expected evaluation metrics (loss, accuracy, per_class, ...), got "
                                f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class RunEntry:
    """One side of a comparison: how the run ended, its curves and its evaluation (run_id None: not started)."""

    run_id: str | None
    status: str | None
    reason: str = ""
    history: tuple[HistoryRow, ...] = ()
    report: EvaluationReport | None = None

    def to_json(self) -> JsonDict:
        return {"run_id": self.run_id, "status": self.status, "reason": self.reason,
                "history": [dict(row) for row in self.history],
                "metrics": self.report.to_json() if self.report is not None else {}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunEntry:
        metrics = data.get("metrics") or {}
        return cls(data.get("run_id"), data.get("status"), str(data.get("reason", "")),
                   tuple(dict(row) for row in data.get("history", ())),
                   EvaluationReport.from_json(metrics) if metrics else None)


@dataclass(frozen=True)
class ClassDifference:
    """One class in both runs: (precision, recall, f1) of each, and fine-tuned minus frozen."""

    name: str
    support: int
    frozen: tuple[float, float, float]
    finetune: tuple[float, float, float]

    _SCORES = ("precision", "recall", "f1")

    def to_json(self) -> JsonDict:
        data: JsonDict = {"class": self.name, "support": self.support}
        for i, key in enumerate(self._SCORES):
            data[f"frozen_{key}"] = self.frozen[i]
            data[f"finetune_{key}"] = self.finetune[i]
            data[f"{key}_diff"] = self.finetune[i] - self.frozen[i]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClassDifference:
        frozen = (float(data["frozen_precision"]), float(data["frozen_recall"]), float(data["frozen_f1"]))
        tuned = (float(data["finetune_precision"]), float(data["finetune_recall"]), float(data["finetune_f1"]))
        return cls(str(data["class"]), int(data["support"]), frozen, tuned)


@dataclass(frozen=True)
class Comparison:
    """Frozen vs fine-tuned on the same split (transferlab.core.training.compare)."""

    frozen: RunEntry
    finetune: RunEntry
    per_class: tuple[ClassDifference, ...] = ()
    differences: Mapping[str, float] = field(default_factory=dict)  # accuracy, loss: fine-tuned minus frozen
    # What each arm really trained with ({"frozen": {learning_rate, epochs, early_stopping_patience}, ...})
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    headline: str = ""  # the accuracy difference with its uncertainty, and whether it is within the noise

    @property
    def run_ids(self) -> list[str]:
        return [entry.run_id for entry in (self.frozen, self.finetune) if entry.run_id]

    def to_json(self) -> JsonDict:
        return {"frozen": self.frozen.to_json(), "finetune": self.finetune.to_json(),
                "per_class": [row.to_json() for row in self.per_class], "differences": dict(self.differences),
                "settings": {arm: dict(values) for arm, values in self.settings.items()}, "headline": self.headline}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(RunEntry.from_json(data["frozen"]), RunEntry.from_json(data["finetune"]),
                   tuple(ClassDifference.from_json(row) for row in data.get("per_class", ())),
                   {str(k): float(v) for k, v in (data.get("differences") or {}).items()},
                   {str(k): dict(v) for k, v in (data.get("settings") or {}).items()}, str(data.get("headline", "")))


def _list_or_none(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def _ints_or_none(values: Sequence[Any] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(int(v) for v in values)


def hardware_text(hardware: Mapping[str, Any]) -> str:
    """A DataSummary's "hardware" detail (core.training.precision.hardware_summary) in words: 'on CPU, float32',
    'on 2 GPUs (MirroredStrategy, 2 replicas), mixed precision'."""
    where = str(hardware.get("devices", "CPU"))
    if hardware.get("workers"):
        where += f" x {hardware['workers']} workers"
    if int(hardware.get("replicas", 1)) > 1:
        where += f" ({hardware.get('strategy')}, {hardware['replicas']} replicas)"
    return f"on {where}, {'mixed precision' if hardware.get('precision') == 'mixed_float16' else 'float32'}"
