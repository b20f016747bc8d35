"""The shared training call on small real MNIST slices: it learns, reports, stops, and stores."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from transferlab.core.analysis.evaluation import classification_report
from transferlab.core.config import mnist_preset
from transferlab.core.events import BatchProgress, EpochEnded, EventLog, PhaseProgress, RunFinished, RunStarted
from transferlab.core.models.mnist import build_mnist_model
from transferlab.core.records import DataSummary, EvaluationReport, ModelInfo
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.jobs import JobContext, Prepared
from transferlab.core.training.loop import run_training


@pytest.fixture()
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


TWO_CLASSES = ("no", "yes")


def _fake_prepared(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset | None, steps: int,
                   samples: int) -> Prepared:
    """What a fake job on a tiny two-class problem hands the loop."""
    summary = DataSummary(kind="mnist", classes=TWO_CLASSES, train_samples=samples, validation_samples=0,
                          test_samples=0, train_split_counts=(0, 0), augment=False)
    return Prepared(model=model, train=train, val=val, steps_per_epoch=steps, data_summary=summary,
                    model_info=ModelInfo("mnist", (28, 28), TWO_CLASSES))


@pytest.mark.slow
def test_cnn_learns_on_2000_digits_and_reports_every_epoch(store):
    log = EventLog()
    config = mnist_preset("cnn", epochs=2, train_limit=2000, test_limit=1000, stop_at_accuracy=None)
    result = run_training(config, log, store=store)
    assert result.status == "finished", result.reason
    assert result.metrics["test_accuracy"] > 0.8  # chance is 0.1
    assert [type(e) for e in log.events if not isinstance(e, BatchProgress | PhaseProgress)] == [
        RunStarted, EpochEnded, EpochEnded, RunFinished]
    epochs = log.of_type(EpochEnded)
    assert [e.epoch for e in epochs] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(epochs[0].metrics)
    started = log.of_type(RunStarted)[0]
    assert started.model_summary.trainable_params == build_mnist_model("cnn").count_params()
    assert started.data_summary.train_samples == 1400  # 30 % of 2,000 held out for validation
    stored = store.get(result.run_id)
    assert stored.status == "finished" and stored.epochs_done == 2 and stored.has_model
    assert store.history(result.run_id)[1]["val_accuracy"] == pytest.approx(epochs[1].metrics["val_accuracy"])


@pytest.mark.slow
def test_batch_events_are_throttled_to_20_per_second(store):
    log = EventLog()
    run_training(mnist_preset("ann", epochs=2, batch_size=16, train_limit=2000, test_limit=100), log, store=store)
    batches = log.of_type(BatchProgress)
    elapsed = log.of_type(EpochEnded)[-1].elapsed
    assert 1 <= len(batches) <= elapsed * 20 + 2 * 2  # plus the last batch of each epoch
    assert all(math.isfinite(b.loss) and b.batches == 88 for b in batches)


@pytest.mark.slow
def test_stop_request_ends_training_within_one_batch(store):
    stop = StopFlag()

    def reporter(event: Any) -> None:
        if isinstance(event, EpochEnded) and event.epoch == 1:
            stop.request("stopped by test")

    result = run_training(mnist_preset("ann", epochs=5, train_limit=1000, test_limit=100), reporter, stop,
                          store=store)
    assert result.status == "stopped"
    assert result.reason == "stopped by test after epoch 2, batch 1"  # the next batch, then no more
    assert len(result.history) == 1
    assert store.get(result.run_id).status == "stopped"
    assert store.get(result.run_id).has_model  # the epoch that finished is kept


@pytest.mark.slow
def test_stop_at_accuracy_threshold_ends_the_run(store):
    config = mnist_preset("cnn", epochs=6, train_limit=2000, test_limit=200, stop_at_accuracy=0.6)
    result = run_training(config, store=store)
    assert result.status == "finished"
    assert "accuracy reached" in result.reason
    assert len(result.history) < 6
    assert result.history[-1]["accuracy"] >= 0.6


def test_same_seed_gives_same_split_and_same_initial_weights():
    from transferlab.core.training.mnist_job import split_indices

    assert all(np.array_equal(a, b) for a, b in zip(split_indices(1000, 0.3, 7), split_indices(1000, 0.3, 7),
                                                    strict=True))
    assert not np.array_equal(split_indices(1000, 0.3, 7)[1], split_indices(1000, 0.3, 8)[1])
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        weights.append(build_mnist_model("fast").get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))


class _NanJob:
    """A real tiny model on data containing NaN: the loss becomes NaN in the first batch."""

    def prepare(self, ctx: JobContext) -> Prepared:
        x = np.full((64, 4), np.nan, dtype=np.float32)
        y = np.zeros(64, dtype=np.int32)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        return _fake_prepared(model, train, None, 4, 64)

    def evaluate(self, model: keras.Model, ctx: JobContext) -> EvaluationReport:
        raise AssertionError("a run whose loss is NaN is never evaluated")


def test_nan_loss_stops_and_reports(store):
    log = EventLog()
    result = run_training(mnist_preset("ann", epochs=3), log, store=store, job=_NanJob())
    assert result.status == "failed"
    assert result.reason.startswith("expected a finite training loss, got nan")
    assert log.of_type(RunFinished)[0].status == "failed"
    assert store.get(result.run_id).status == "failed"


@pytest.mark.slow
def test_a_failed_write_mid_run_fails_the_run_and_damages_nothing(store, monkeypatch):
    import errno

    import transferlab.core.atomic
    from transferlab.core.errors import RunStoreError

    def disk_full(handle, data):
        handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def fill_the_disk_once_training_starts(event: Any) -> None:
        if isinstance(event, RunStarted):
            monkeypatch.setattr(transferlab.core.atomic, "_write_all", disk_full)

    earlier = run_training(mnist_preset("ann", epochs=1, train_limit=500, test_limit=100), store=store)
    result = run_training(mnist_preset("ann", epochs=2, train_limit=500, test_limit=100),
                          fill_the_disk_once_training_starts, store=store)
    assert result.status == "failed"
    assert "No space left on device" in result.reason and "previous file is unchanged" in result.reason
    assert store.history(result.run_id) == []  # the last complete history.json, not half a file
    assert not [p for p in (store.root / result.run_id).iterdir() if ".tmp" in p.name]
    with pytest.raises(RunStoreError, match="No space left on device"):
        store.create(mnist_preset("ann"))  # a run that cannot be created leaves no folder behind
    monkeypatch.undo()
    assert len(store.list()) == 2
    assert store.get(earlier.run_id).status == "finished"  # nothing stored before was damaged
    assert store.history(earlier.run_id)[0]["epoch"] == 1


class _OverfitJob:
    """Validation labels are the training labels flipped: the better the fit, the worse val_loss gets."""

    def prepare(self, ctx: JobContext) -> Prepared:
        x = np.random.default_rng(0).normal(size=(512, 8)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
        val = tf.data.Dataset.from_tensor_slices((x, 1 - y)).batch(512)
        self.x, self.y = x, y
        return _fake_prepared(model, train, val, 8, 512)

    def evaluate(self, model: keras.Model, ctx: JobContext) -> EvaluationReport:
        return classification_report(self.y, model.predict(self.x, verbose=0), TWO_CLASSES, eval_set="train")


@pytest.mark.slow
def test_early_stopping_on_val_loss(store):
    config = mnist_preset("ann", epochs=20, learning_rate=0.05, early_stopping_patience=1)
    result = run_training(config, store=store, job=_OverfitJob())
    assert result.status == "finished"
    assert result.reason == "early stopping: val_loss did not improve for 1 epochs"
    assert len(result.history) == 2  # epoch 1 sets the best val_loss, epoch 2 is worse: stop
    assert result.history[0]["val_loss"] < result.history[1]["val_loss"]
