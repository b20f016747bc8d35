"""Typed, frozen run configurations. One config describes one run completely and is stored with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

from transferlab.core.catalog import DEFAULT_BACKBONE, MNIST_MODELS, MnistModel
from transferlab.core.errors import ConfigError

TransferMode = Literal["frozen", "finetune"]
MAX_SEED = 2**32 - 1  # numpy's and Keras' seeds are unsigned 32-bit
Unfreeze = int | Literal["all"]
DEFAULT_LEARNING_RATE = 1e-3
FINETUNE_LEARNING_RATE = 1e-4  # unfrozen pretrained weights need small steps (Keras transfer-learning guide)
# A frozen run fits only a linear head on fixed features; on 100-2,000 images an epoch is a few steps, and at
# 1e-3 the head was still far from its best validation loss after 300 epochs on a small noisy set (at 1e-2:
# early stopping after ~190 epochs, within 0.3 % of the best of a run 10x as long).
FROZEN_LEARNING_RATE = 1e-2
FROZEN_EPOCH_CAP, FROZEN_PATIENCE = 300, 20  # a cap that early stopping, not the count, ends
FINETUNE_EPOCHS, FINETUNE_PATIENCE = 20, 3  # each fine-tuning epoch costs real time: stop soon after the best


@dataclass(frozen=True)
class FitOptions:
    """How to fit, whatever the data: shared by MNIST and folder runs."""

    epochs: int = 5
    batch_size: int = 128
    learning_rate: float | None = None  # None: the run kind's default (see default_learning_rate)
    validation_split: float = 0.1
    seed: int = 42
    early_stopping_patience: int | None = None  # epochs without val_loss improvement; None = off
    stop_at_accuracy: float | None = None  # stop once this metric passes the threshold; None = off
    stop_metric: str = "accuracy"
    lr_schedule: Literal["constant", "onecycle"] = "constant"
    label_smoothing: float = 0.0  # cross-entropy targets 1 - s + s/K and s/K; 0 = plain cross-entropy

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        _check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        if self.learning_rate is not None:
            _check(0 < self.learning_rate < 10, "learning_rate", "a number in (0, 10)", self.learning_rate)
        _check(0 <= self.validation_split < 1, "validation_split", "a fraction in [0, 1)", self.validation_split)
        _check(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= MAX_SEED,
               "seed", f"an integer in 0..{MAX_SEED}", self.seed)
        _check(0 <= self.label_smoothing < 1, "label_smoothing", "a fraction in [0, 1)", self.label_smoothing)
        if self.stop_at_accuracy is not None:
            _check(0 < self.stop_at_accuracy <= 1, "stop_at_accuracy", "a fraction in (0, 1]",
                   self.stop_at_accuracy)
        if self.early_stopping_patience is not None:
            _check(self.early_stopping_patience >= 0, "early_stopping_patience", "an integer >= 0",
                   self.early_stopping_patience)


Precision = Literal["auto", "float32", "mixed"]
PRECISIONS: tuple[Precision, ...] = ("auto", "float32", "mixed")


@dataclass(frozen=True)
class MnistConfig:
    """A scratch network trained on MNIST."""

    kind: ClassVar[Literal["mnist"]] = "mnist"
    model: MnistModel = "fast"
    augment: bool = False
    train_limit: int | None = None  # use the first N training digits (quick demos, tests)
    test_limit: int | None = None  # evaluate on the first N test digits
    precision: Precision = "auto"  # auto: mixed precision on GPUs with tensor cores (core.training.precision)
    fit: FitOptions = field(default_factory=FitOptions)
    name: str = ""

    def __post_init__(self) -> None:
        _check(self.model in MNIST_MODELS, "model", f"one of {', '.join(MNIST_MODELS)}", self.model)
        _check(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}", self.precision)
        for key in ("train_limit", "test_limit"):
            value = getattr(self, key)
            if value is not None:
                _check(value >= 10, key, "an integer >= 10 or None", value)

    def default_learning_rate(self) -> float:
        """The learning rate when FitOptions leave it unset."""
        return DEFAULT_LEARNING_RATE


@dataclass(frozen=True)
class FolderConfig:
    """Transfer learning on a folder of class subfolders, on top of a pretrained feature-vector model."""

    kind: ClassVar[Literal["folder"]] = "folder"
    data_dir: str = ""
    backbone: str = DEFAULT_BACKBONE  # a bundled name, a TF Hub URL or a local SavedModel directory
    mode: TransferMode = "frozen"
    unfreeze: Unfreeze = 1  # fine-tuning: top N blocks of the base, or "all"
    augment: bool = False
    test_split: float = 0.0
    val_dir: str | None = None  # a separate validation folder instead of a split
    split_from_run: str | None = None  # reuse exactly the split stored with that run
    init_from_run: str | None = None  # fine-tune starting from that (frozen) run's head
    dropout: float = 0.2
    class_weights: Literal["auto", "on", "off"] = "auto"
    skip_empty_classes: bool = False  # leave class folders without usable images out (else they are refused)
    # The frozen mode's recommended fit: a head on cached features costs milliseconds per epoch, so it trains
    # until the validation loss stops improving (best weights restored), up to a generous cap.
    fit: FitOptions = field(default_factory=lambda: FitOptions(
        epochs=FROZEN_EPOCH_CAP, batch_size=32, validation_split=0.2,
        early_stopping_patience=FROZEN_PATIENCE))
    cv_folds: int = 0  # > 1: also cross-validate a head on the cached features over this many folds
    name: str = ""

    def __post_init__(self) -> None:
        _check(bool(self.data_dir), "data_dir", "a folder of class subfolders", self.data_dir)
        _check(self.mode in ("frozen", "finetune"), "mode", "frozen or finetune", self.mode)
        _check(self.unfreeze == "all" or (isinstance(self.unfreeze, int) and self.unfreeze >= 0),
               "unfreeze", "an integer >= 0 or 'all'", self.unfreeze)
        _check(0 <= self.test_split < 1, "test_split", "a fraction in [0, 1)", self.test_split)
        if not self.val_dir and not self.split_from_run:  # the fractions split one folder
            held_out = self.fit.validation_split + self.test_split
            _check(held_out < 1, "validation_split + test_split", "less than 1 (some images must be left to "
                   "train on)", round(held_out, 6))
        _check(0 <= self.dropout < 1, "dropout", "a fraction in [0, 1)", self.dropout)
        _check(self.cv_folds == 0 or 2 <= self.cv_folds <= 20, "cv_folds", "0 (off) or an integer in 2..20",
               self.cv_folds)

    def default_learning_rate(self) -> float:
        """The learning rate when FitOptions leave it unset: smaller when pretrained weights are unfrozen."""
        return FINETUNE_LEARNING_RATE if self.mode == "finetune" else FROZEN_LEARNING_RATE


RunConfig = MnistConfig | FolderConfig
# config.kind → its config type (the run kinds themselves are described in transferlab.core.kinds)
_CONFIG_TYPES: dict[str, type[MnistConfig] | type[FolderConfig]] = {cls.kind: cls for cls in get_args(RunConfig)}
MODE_FIT_KEYS = ("learning_rate", "epochs", "early_stopping_patience")  # what each mode recommends itself


def recommended_fit(mode: TransferMode) -> dict[str, Any]:
    """A transfer mode's own settings: learning rate, epochs (a cap) and early-stopping patience."""
    # learning_rate None: the mode's default (default_learning_rate), stored as "unset" with the run
    if mode == "finetune":
        return {"learning_rate": None, "epochs": FINETUNE_EPOCHS, "early_stopping_patience": FINETUNE_PATIENCE}
    return {"learning_rate": None, "epochs": FROZEN_EPOCH_CAP, "early_stopping_patience": FROZEN_PATIENCE}


def folder_config_for(mode: TransferMode, base: FolderConfig, explicit: dict[str, Any] | None = None,
                      **changes: Any) -> FolderConfig:
    """`base` in `mode` with that mode's recommended fit settings, except the ones set explicitly."""
    fit_changes = {**recommended_fit(mode), **(explicit or {})}
    unknown = set(fit_changes) - {f.name for f in dataclasses.fields(FitOptions)}
    if unknown:
        raise ConfigError(f"expected fit options, got {', '.join(sorted(unknown))}")
    return dataclasses.replace(base, mode=mode, fit=dataclasses.replace(base.fit, **fit_changes), **changes)


def default_learning_rate(config: RunConfig) -> float:
    """The learning rate a run uses when its FitOptions leave it unset."""
    return config.default_learning_rate()


ACCURATE_EPOCHS = 12


def mnist_preset(model: MnistModel = "fast", **overrides: Any) -> MnistConfig:
    """The recommended settings for each MNIST model; keyword overrides go to FitOptions or MnistConfig."""
    fit_defaults: dict[MnistModel, dict[str, Any]] = {
        # The fast preset is tuned for a 2-core laptop CPU (see bench/mnist.py). Two epochs at batch 64 beat three
        # at batch 128 (or 256) in both time and accuracy: the CPU time per epoch barely depends on the batch size
        # there, and smaller batches make more updates per epoch.
        "fast": dict(epochs=2, batch_size=64, learning_rate=3e-3, validation_split=0.05,
                     lr_schedule="onecycle", label_smoothing=0.1),
        # The seed material's recipe.
        "cnn": dict(epochs=10, batch_size=32, learning_rate=1e-3, validation_split=0.3,
                    stop_at_accuracy=0.98),
        "ann": dict(epochs=5, batch_size=32, learning_rate=1e-3, validation_split=0.3),
        # Augmented (seeded); like the fast preset, small batches for more updates per epoch of CPU time:
        # 99.63-99.65 % on seeds 42, 0, 1 in 1.4-1.6x the Keras recipe's time (bench/mnist.py; 8 epochs without
        # the hidden layer ended at 99.50-99.56 %).
        "accurate": dict(epochs=ACCURATE_EPOCHS, batch_size=64, learning_rate=3e-3, validation_split=0.05,
                         lr_schedule="onecycle", label_smoothing=0.1),
    }
    config_defaults: dict[str, dict[str, Any]] = {"accurate": dict(augment=True)}
    fit_fields = {f.name for f in dataclasses.fields(FitOptions)}
    fit_args = {**fit_defaults[model], **{k: v for k, v in overrides.items() if k in fit_fields}}
    other = {**config_defaults.get(model, {}), **{k: v for k, v in overrides.items() if k not in fit_fields}}
    return MnistConfig(model=model, fit=FitOptions(**fit_args), **other)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["kind"] = config.kind
    return data


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a config stored with a run; unknown keys (from a newer version) are ignored."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in _CONFIG_TYPES:
        raise ConfigError(f"expected a run config of kind {' or '.join(_CONFIG_TYPES)}, got kind={kind!r}")
    cls = _CONFIG_TYPES[kind]
    fit_fields = {f.name for f in dataclasses.fields(FitOptions)}
    fit = FitOptions(**{k: v for k, v in (data.pop("fit", None) or {}).items() if k in fit_fields})
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(fit=fit, **{k: v for k, v in data.items() if k in known and k != "fit"})


def with_fit(config: RunConfig, **fit_changes: Any) -> RunConfig:
    """A copy of the config with some fit options changed."""
    return dataclasses.replace(config, fit=dataclasses.replace(config.fit, **fit_changes))


def _check(ok: bool, name: str, expected: str, received: Any) -> None:
    if not ok:
        raise ConfigError(f"{name}: expected {expected}, got {received!r}")
