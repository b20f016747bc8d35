"""The engine's Keras build lock covers building and loading models only: a model summary is built while
another run is fitting."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import keras
import numpy as np
import pytest
import tensorflow as tf

from transferlab.core.analysis.evaluation import classification_report
from transferlab.core.config import mnist_preset
from transferlab.core.events import Event, RunStarted
from transferlab.core.models.building import KERAS_BUILD_LOCK
from transferlab.core.records import DataSummary, EvaluationReport, ModelInfo
from transferlab.core.runs.store import RunStore
from transferlab.core.training.jobs import JobContext, Prepared
from transferlab.core.training.kinds import model_preview
from transferlab.core.training.loop import run_training

CLASSES = ("no", "yes")


class _HeldFitJob:
    """A tiny real model whose first training batch waits until the test lets it go."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
        self.y = (self.x[:, 0] > 0).astype(np.int32)

    def _batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.release.wait(60)
        yield self.x, self.y

    def prepare(self, ctx: JobContext) -> Prepared:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        spec = (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None,), tf.int32))
        train = tf.data.Dataset.from_generator(self._batches, output_signature=spec)
        summary = DataSummary(kind="mnist", classes=CLASSES, train_samples=32, validation_samples=0,
                              test_samples=0, train_split_counts=(16, 16), augment=False)
        return Prepared(model=model, train=train, val=None, steps_per_epoch=1, data_summary=summary,
                        model_info=ModelInfo("mnist", (28, 28), CLASSES))

    def evaluate(self, model: keras.Model, ctx: JobContext) -> EvaluationReport:
        return classification_report(self.y, model.predict(self.x, verbose=0), CLASSES, eval_set="train")


@pytest.mark.slow
def test_a_model_summary_is_built_while_another_run_fits(tmp_path) -> None:
    release, started = threading.Event(), threading.Event()

    def reporter(event: Event) -> None:
        if isinstance(event, RunStarted):
            started.set()

    results = []
    training = threading.Thread(target=lambda: results.append(run_training(
        mnist_preset("ann", epochs=1), reporter, store=RunStore(tmp_path / "runs"), job=_HeldFitJob(release))))
    training.start()
    try:
        assert started.wait(60), "the run never started fitting"
        previews = []
        summary = threading.Thread(target=lambda: previews.append(model_preview(mnist_preset("ann"), 10)))
        summary.start()
        summary.join(60)  # the fit is held: with the lock held while fitting, this would wait forever
        assert previews and previews[0].summary.trainable_params > 0
        assert KERAS_BUILD_LOCK.acquire(timeout=5)  # nobody holds it while the other run fits
        KERAS_BUILD_LOCK.release()
    finally:
        release.set()
        training.join(60)
    assert results and results[0].status == "finished", results
