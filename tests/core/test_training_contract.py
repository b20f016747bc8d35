"""The training loop's contract, driven with fake jobs on tiny tensors (a 2-layer model on 64 random samples):
event order, batch-event throttling, stop within a batch, the three statuses, a NaN loss. Each run takes
about a second, so this is the fast tier's cover for run_training; the real MNIST and folder runs are `slow`."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from transferlab.core.analysis.evaluation import classification_report
from transferlab.core.config import mnist_preset
from transferlab.core.errors import DataError
from transferlab.core.events import BatchProgress, EpochEnded, EventLog, PhaseProgress, RunFinished, RunStarted
from transferlab.core.records import DataSummary, EvaluationReport, ModelInfo
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training import loop
from transferlab.core.training.jobs import JobContext, Prepared
from transferlab.core.training.loop import run_training

SAMPLES = 64
CLASSES = ("no", "yes")


class TinyJob:
    """64 random 4-feature samples, labels from the first feature, Dense(8, tanh) → Dense(2): a second a run.

    `nan_from` puts NaN features in every sample from that index on (so the loss turns NaN mid-epoch);
    `fail` is raised by prepare, as a job does for bad data.
    """

    def __init__(self, batch_size: int = 8, nan_from: int | None = None, fail: Exception | None = None) -> None:
        self.batch_size, self.nan_from, self.fail = batch_size, nan_from, fail
        self.evaluated = 0

    def prepare(self, ctx: JobContext) -> Prepared:
        if self.fail is not None:
            raise self.fail
        rng = np.random.default_rng(0)
        x = rng.normal(size=(SAMPLES, 4)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32)
        if self.nan_from is not None:
            x[self.nan_from:] = np.nan
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.Dense(2, activation="softmax")])
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(self.batch_size)
        val = tf.data.Dataset.from_tensor_slices((x[:16], y[:16])).batch(16)
        summary = DataSummary(kind="mnist", classes=CLASSES, train_samples=SAMPLES, validation_samples=16,
                              test_samples=0, train_split_counts=(SAMPLES // 2, SAMPLES // 2), augment=False)
        self.x, self.y = x, y
        return Prepared(model=model, train=train, val=val, steps_per_epoch=SAMPLES // self.batch_size,
                        data_summary=summary, model_info=ModelInfo("mnist", (28, 28), CLASSES))

    def evaluate(self, model: keras.Model, ctx: JobContext) -> EvaluationReport:
        self.evaluated += 1
        return classification_report(self.y, model.predict(self.x, verbose=0), CLASSES, eval_set="train")


@pytest.fixture()
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def _config(epochs: int = 3) -> Any:
    return mnist_preset("ann", epochs=epochs, learning_rate=0.01)


def test_events_come_in_order_and_the_run_is_stored(store):
    log = EventLog()
    job = TinyJob()
    result = run_training(_config(epochs=3), log, store=store, job=job)
    assert result.status == "finished" and result.reason == ""
    kinds = [type(e) for e in log.events if not isinstance(e, PhaseProgress)]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert set(kinds[1:-1]) == {BatchProgress, EpochEnded}
    assert kinds.count(RunStarted) == kinds.count(RunFinished) == 1
    # Each epoch: its batch events (the last batch always among them), then its EpochEnded.
    for epoch in (1, 2, 3):
        ended = next(i for i, e in enumerate(log.events) if isinstance(e, EpochEnded) and e.epoch == epoch)
        batches = [e for e in log.events if isinstance(e, BatchProgress) and e.epoch == epoch]
        assert batches and all(log.events.index(b) < ended for b in batches)
        assert batches[-1].batch == batches[-1].batches == SAMPLES // 8
    epochs = log.of_type(EpochEnded)
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(epochs[0].metrics)
    assert [e.elapsed for e in epochs] == sorted(e.elapsed for e in epochs)
    started = log.of_type(RunStarted)[0]
    assert started.model_summary.trainable_params == 4 * 8 + 8 + 8 * 2 + 2
    assert started.data_summary.train_samples == SAMPLES and started.data_summary.validation_samples == 16
    finished = log.of_type(RunFinished)[0]
    assert finished.status == "finished" and finished.metrics["epochs_trained"] == 3
    assert job.evaluated == 1
    stored = store.get(result.run_id)
    assert stored.status == "finished" and stored.has_model and stored.epochs_done == 3
    assert [row["epoch"] for row in store.history(result.run_id)] == [1, 2, 3]


def test_batch_events_are_throttled(store, monkeypatch):
    log = EventLog()
    steps = SAMPLES // 2
    result = run_training(_config(epochs=2), log, store=store, job=TinyJob(batch_size=2))
    assert result.status == "finished"
    batches = log.of_type(BatchProgress)
    elapsed = log.of_type(EpochEnded)[-1].elapsed
    assert len(batches) <= elapsed / loop.BATCH_EVENT_INTERVAL + 2  # ≤ 20 a second, plus each epoch's last
    assert [b.epoch for b in batches if b.batch == steps] == [1, 2]  # every epoch's last batch is reported
    assert all(math.isfinite(b.loss) and 0 <= b.accuracy <= 1 for b in batches)

    monkeypatch.setattr(loop, "BATCH_EVENT_INTERVAL", 1e12)  # the throttle is what drops the others
    throttled = EventLog()
    run_training(_config(epochs=2), throttled, store=store, job=TinyJob(batch_size=2))
    assert [(b.epoch, b.batch) for b in throttled.of_type(BatchProgress)] == [(1, steps), (2, steps)]


def test_stop_takes_effect_within_one_batch(store, monkeypatch):
    monkeypatch.setattr(loop, "BATCH_EVENT_INTERVAL", 0.0)  # report every batch, to see exactly where it stops
    stop = StopFlag()
    log = EventLog()

    def reporter(event: Any) -> None:
        log(event)
        if isinstance(event, BatchProgress) and event.epoch == 2 and event.batch == 3:
            stop.request("stopped by test")

    result = run_training(_config(epochs=5), reporter, stop, store=store, job=TinyJob())
    assert result.status == "stopped"
    assert result.reason == "stopped by test after epoch 2, batch 4"  # the very next batch
    assert [(b.epoch, b.batch) for b in log.of_type(BatchProgress)][-1] == (2, 3)
    assert [e.epoch for e in log.of_type(EpochEnded)] == [1]
    assert log.events[-1] == RunFinished(result.run_id, "stopped", result.reason, result.report)
    stored = store.get(result.run_id)
    assert stored.status == "stopped" and stored.has_model  # the finished epoch is kept
    assert len(store.history(result.run_id)) == 1


def test_stop_before_fitting_keeps_nothing(store):
    stop = StopFlag()
    stop.request("stopped at once")
    job = TinyJob()
    result = run_training(_config(), None, stop, store=store, job=job)
    assert result.status == "stopped" and result.reason == "stopped at once"
    assert result.history == [] and job.evaluated == 0
    assert not store.get(result.run_id).has_model


@pytest.mark.parametrize(("error", "reason"), [
    (DataError("expected at least 2 classes in /photos, got 1"), "expected at least 2 classes in /photos, got 1"),
    (RuntimeError("something broke\nsecond line"), "RuntimeError: something broke"),
])
def test_a_failing_job_fails_the_run_with_one_line(store, error, reason):
    log = EventLog()
    result = run_training(_config(), log, store=store, job=TinyJob(fail=error))
    assert (result.status, result.reason) == ("failed", reason)
    assert [type(e) for e in log.events] == [RunFinished]
    assert log.events[0].status == "failed" and log.events[0].reason == reason
    assert store.get(result.run_id).status == "failed"


def test_a_nan_loss_fails_the_run_with_the_message(store):
    log = EventLog()
    result = run_training(_config(), log, store=store, job=TinyJob(nan_from=24))  # NaN from batch 4 on
    assert result.status == "failed"
    assert result.reason.startswith("expected a finite training loss, got nan at epoch 1 batch ")
    assert result.reason.endswith("; try a lower learning rate")
    assert not log.of_type(EpochEnded)
    assert all(math.isfinite(b.loss) for b in log.of_type(BatchProgress))  # no NaN ever reported as progress
    assert log.events[-1].status == "failed" and log.events[-1].reason == result.reason
    assert store.get(result.run_id).status == "failed"
