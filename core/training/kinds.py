"""The heavy half of the run-kind registry: what a kind needs the engine for (the light half, with names, titles
and config types, is transferlab.core.kinds).

    job = make_job(config)                            # the Job that prepares and evaluates a run of config's kind
    preview = model_preview(config, n_classes)        # the model summary before training (builds the model)
    samples = evaluation_samples(store, run_id)       # where a run's evaluation images live
    image = parts_named(info.kind).feed_file(info, path)   # an image file as a stored model of that kind takes it

Importing this module imports no TensorFlow: each part imports what it needs when it is called, so the GUI can
import it at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic

import numpy as np

from transferlab.core.config import FolderConfig, MnistConfig, RunConfig
from transferlab.core.events import ModelSummary
from transferlab.core.kinds import FOLDER, MNIST, C, RunKind, kind_named, kind_of
from transferlab.core.records import EvaluationReport, ModelInfo

if TYPE_CHECKING:
    from transferlab.core.analysis.samples import EvaluationSamples
    from transferlab.core.models.backbones import BackboneInfo
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.jobs import Job
    from transferlab.core.training.preflight import Checked


@dataclass(frozen=True)
class ModelPreview:
    """The model a run will train, before training: its summary, and its backbone when it has one."""

    summary: ModelSummary
    backbone: BackboneInfo | None = None


@dataclass(frozen=True)
class KindParts(Generic[C]):
    """What the engine does differently for one kind of run."""

    kind: RunKind[C]
    job: Callable[[C, Checked | None], Job]  # (config, what preflight already checked) -> the job
    preview: Callable[[C, int], ModelPreview]  # the model summary for N classes
    evaluation_samples: Callable[[RunStore, str, EvaluationReport | None], EvaluationSamples]
    evaluate_again: Callable[[RunStore, str], EvaluationReport] | None  # None: report the stored evaluation
    training_samples: Callable[[RunStore, str], EvaluationSamples]  # e.g. to calibrate an int8 export
    # Why an image (original RGB, as prepared) doesn't look like this kind's input, or "" (None: no such check)
    input_check: Callable[[np.ndarray, np.ndarray], str] | None
    feed_file: Callable[[ModelInfo, str | os.PathLike[str]], np.ndarray]  # uint8, as the stored model takes it
    feed_array: Callable[[ModelInfo, np.ndarray, str], np.ndarray]


# ---- MNIST ----

def _mnist_job(config: MnistConfig, checked: Checked | None = None) -> Job:
    from transferlab.core.training.mnist_job import MnistJob

    return MnistJob(config)


def _mnist_preview(config: MnistConfig, n_classes: int) -> ModelPreview:
    from transferlab.core.models.building import building_models
    from transferlab.core.models.mnist import build_mnist_model
    from transferlab.core.models.summary import summarize_model

    with building_models():
        model = build_mnist_model(config.model)
    return ModelPreview(summarize_model(model))


def _mnist_samples(store: RunStore, run_id: str, report: EvaluationReport | None) -> EvaluationSamples:
    from transferlab.core.analysis.samples import mnist_samples

    return mnist_samples(report)


def _mnist_training_samples(store: RunStore, run_id: str) -> EvaluationSamples:
    from transferlab.core.analysis.samples import mnist_training_samples

    return mnist_training_samples()


def _not_a_digit(original: np.ndarray, prepared: np.ndarray) -> str:
    from transferlab.core.analysis.digit_check import not_a_digit

    return not_a_digit(original, prepared)


def _mnist_evaluate_again(store: RunStore, run_id: str) -> EvaluationReport:
    from transferlab.core.training.mnist_job import evaluate_on_test_set

    config = MNIST.config(store.get(run_id).config)
    return evaluate_on_test_set(store.load_model(run_id), config.test_limit)


def _digit_file(info: ModelInfo, path: str | os.PathLike[str]) -> np.ndarray:
    from transferlab.core.data.feed import digit_from_file

    return digit_from_file(path)


def _digit_array(info: ModelInfo, image: np.ndarray, name: str) -> np.ndarray:
    from transferlab.core.data.feed import digit_from_array

    return digit_from_array(image, name)


# ---- folders ----

def _folder_job(config: FolderConfig, checked: Checked | None = None) -> Job:
    from transferlab.core.training.folder_job import FolderJob

    return FolderJob(config, checked)


def _folder_preview(config: FolderConfig, n_classes: int) -> ModelPreview:
    from transferlab.core.models.backbones import resolve_backbone
    from transferlab.core.models.building import building_models
    from transferlab.core.models.summary import summarize_model
    from transferlab.core.models.transfer import preview_model

    with building_models():
        backbone = resolve_backbone(config.backbone)
        model = preview_model(config, n_classes, backbone)
    return ModelPreview(summarize_model(model), backbone.info)


def _folder_samples(store: RunStore, run_id: str, report: EvaluationReport | None) -> EvaluationSamples:
    from transferlab.core.analysis.samples import folder_samples

    return folder_samples(store, run_id, report)


def _folder_training_samples(store: RunStore, run_id: str) -> EvaluationSamples:
    from transferlab.core.analysis.samples import folder_training_samples

    return folder_training_samples(store, run_id)


def _rgb_file(info: ModelInfo, path: str | os.PathLike[str]) -> np.ndarray:
    from transferlab.core.data.feed import rgb_from_file

    return rgb_from_file(path, info.image_size)


def _rgb_array(info: ModelInfo, image: np.ndarray, name: str) -> np.ndarray:
    from transferlab.core.data.feed import rgb_from_array

    return rgb_from_array(image, info.image_size, name)


PARTS: dict[str, KindParts[Any]] = {parts.kind.name: parts for parts in (
    KindParts(MNIST, job=_mnist_job, preview=_mnist_preview, evaluation_samples=_mnist_samples,
              evaluate_again=_mnist_evaluate_again, training_samples=_mnist_training_samples,
              input_check=_not_a_digit, feed_file=_digit_file, feed_array=_digit_array),
    KindParts(FOLDER, job=_folder_job, preview=_folder_preview, evaluation_samples=_folder_samples,
              evaluate_again=None, training_samples=_folder_training_samples, input_check=None,
              feed_file=_rgb_file, feed_array=_rgb_array),
)}


def parts_named(name: str) -> KindParts[Any]:
    """The engine parts of the kind called `name` (ConfigError for an unknown kind)."""
    return PARTS[kind_named(name).name]


def make_job(config: RunConfig, checked: Checked | None = None) -> Job:
    """The job for a run of `config`; `checked` holds what preflight already scanned (folder runs reuse it)."""
    return PARTS[kind_of(config).name].job(config, checked)


def model_preview(config: RunConfig, n_classes: int) -> ModelPreview:
    """The summary of the model a run of `config` trains (for `n_classes` classes), built without data."""
    return PARTS[kind_of(config).name].preview(config, n_classes)


def evaluation_samples(store: RunStore, run_id: str) -> EvaluationSamples:
    """Where the samples of a run's evaluation set live (ids and labels in evaluation order)."""
    run = store.get(store.resolve(run_id))
    return parts_named(run.kind).evaluation_samples(store, run.run_id, run.report)
