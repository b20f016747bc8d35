"""The one training call shared by the CLI and the GUI:

    result = run_training(config, reporter, stop)

`config` is a frozen MnistConfig or FolderConfig, `reporter` receives plain-Python events
(transferlab.core.events), `stop` is a thread-safe StopFlag checked before every batch (a stop acts within the
running batch). Every run is stored by a RunStore. Failures never escape as exceptions: they end the run with
status "failed" and a one-line reason.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import keras
import tensorflow as tf

from transferlab.core.config import RunConfig, config_to_dict, default_learning_rate
from transferlab.core.errors import TransferlabError, first_line
from transferlab.core.events import (
    BatchProgress,
    EpochEnded,
    PhaseProgress,
    Reporter,
    RunFinished,
    RunStarted,
    RunStatus,
    null_reporter,
)
from transferlab.core.models.losses import SmoothedSparseCrossentropy
from transferlab.core.models.schedules import OneCycle
from transferlab.core.models.summary import summarize_model, summary_to_dict
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.jobs import Job, JobContext, LossIsNaN, Prepared, RunResult, StopRequested
from transferlab.core.training.kinds import make_job

logger = logging.getLogger(__name__)


BATCH_EVENT_INTERVAL = 0.05  # seconds: at most 20 batch events a second


def default_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored when TF_CONFIG is set, Mirrored over several GPUs, else the default strategy."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def run_training(config: RunConfig, reporter: Reporter | None = None, stop: StopFlag | None = None, *,
                 store: RunStore | None = None, strategy: tf.distribute.Strategy | None = None,
                 job: Job | None = None) -> RunResult:
    """Train, evaluate and store one run. Returns how it ended; never raises for a failed run."""
    reporter = reporter or null_reporter
    stop = stop or StopFlag()
    store = store or RunStore()
    run = store.create(config)
    ctx = JobContext(run.run_id, store, reporter, stop)
    recorder = _HistoryRecorder(store, run.run_id)
    status: RunStatus = "finished"
    reason = ""
    metrics: dict[str, Any] = {}
    try:
        keras.utils.set_random_seed(config.fit.seed)
        job = job or make_job(config)
        strategy = strategy or default_strategy()
        with strategy.scope():
            prepared = job.prepare(ctx)
            _compile(prepared, config)
        summary = summarize_model(prepared.summary_model or prepared.model)
        store.write_json(run.run_id, "summary.json", {"data": prepared.data_summary, "model": summary_to_dict(summary)})
        store.write_json(run.run_id, "model_info.json", prepared.model_info)
        reporter(RunStarted(run.run_id, config_to_dict(config), prepared.data_summary, summary))
        try:
            status, reason = _fit(prepared, config, ctx, recorder)
        except StopRequested as exc:  # keep what the finished epochs learned
            status, reason = "stopped", str(exc) or "stopped by user"
        if recorder.history:
            final_model = prepared.finalize(prepared.model)
            ctx.reporter(PhaseProgress("evaluating", 0, 1))
            metrics = job.evaluate(final_model, ctx)
            metrics["epochs_trained"] = len(recorder.history)
            store.save_model(run.run_id, final_model)
            store.write_json(run.run_id, "metrics.json", metrics)
    except StopRequested as exc:
        status, reason = "stopped", str(exc) or "stopped by user"
    except TransferlabError as exc:
        status, reason = "failed", str(exc)
    except Exception as exc:
        logger.exception("run %s failed", run.run_id)
        status, reason = "failed", f"{type(exc).__name__}: {first_line(exc, limit=300)}"
    try:
        store.set_status(run.run_id, status, reason)
    except TransferlabError as exc:  # the store itself failed (disk full): report, keep what is stored
        status, reason = "failed", str(exc)
    logger.info("run %s %s %s", run.run_id, status, reason)
    reporter(RunFinished(run.run_id, status, reason, metrics))
    return RunResult(run.run_id, run.path, status, reason, metrics, list(recorder.history))


def _compile(prepared: Prepared, config: RunConfig) -> None:
    fit = config.fit
    peak = prepared.learning_rate or fit.learning_rate or default_learning_rate(config)
    learning_rate: float | OneCycle = peak
    if fit.lr_schedule == "onecycle":
        learning_rate = OneCycle(peak, total_steps=fit.epochs * prepared.steps_per_epoch)
    loss: keras.losses.Loss = (SmoothedSparseCrossentropy(fit.label_smoothing) if fit.label_smoothing
                               else keras.losses.SparseCategoricalCrossentropy())
    prepared.model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                           metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def _fit(prepared: Prepared, config: RunConfig, ctx: JobContext,
         recorder: _HistoryRecorder) -> tuple[RunStatus, str]:
    fit = config.fit
    progress = _ProgressCallback(ctx, fit.epochs, prepared.steps_per_epoch, recorder)
    callbacks: list[keras.callbacks.Callback] = [progress]
    threshold = None
    if fit.stop_at_accuracy is not None:
        threshold = _ThresholdStop(fit.stop_metric, fit.stop_at_accuracy)
        callbacks.append(threshold)
    early = None
    if fit.early_stopping_patience is not None and prepared.val is not None:
        early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=fit.early_stopping_patience,
                                              restore_best_weights=True)
        callbacks.append(early)
    prepared.model.fit(prepared.train, validation_data=prepared.val, epochs=fit.epochs,
                       steps_per_epoch=prepared.steps_per_epoch, class_weight=prepared.class_weight,
                       callbacks=callbacks, shuffle=False, verbose=0)
    if threshold is not None and threshold.reason:
        return "finished", threshold.reason
    if early is not None and early.stopped_epoch > 0:
        return "finished", f"early stopping: val_loss did not improve for {fit.early_stopping_patience} epochs"
    return "finished", ""


class _HistoryRecorder:
    """Keeps per-epoch metrics and rewrites history.json (atomically) after every epoch."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.history: list[dict[str, Any]] = []

    def append(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        self.store.write_history(self.run_id, self.history)


class _ProgressCallback(keras.callbacks.Callback):
    """Reports batches (throttled), epochs (always), honours the stop flag and stops on a NaN loss.

    It hooks the START of each batch, never its end: Keras runs a fit synchronously, waiting for every batch's
    results, as soon as a callback overrides a batch-end hook; batch-begin hooks keep its asynchronous dispatch,
    exactly as a bare `model.fit` runs. At the start of batch k + 1 the batch k has been applied, so:
    - a stop request ends the fit before the next batch starts (within the batch that is running when the
      request comes), without the validation pass Keras would run after `stop_training`;
    - at most every BATCH_EVENT_INTERVAL seconds the running epoch metrics are read (one small read, the only
      point where the loop waits for the device) and reported as BatchProgress for the batches done so far;
      the epoch's last batch is reported at the epoch's end from the epoch's own training metrics.
    """

    def __init__(self, ctx: JobContext, epochs: int, steps: int, recorder: _HistoryRecorder) -> None:
        super().__init__()
        self.ctx, self.epochs, self.steps, self.recorder = ctx, epochs, steps, recorder
        self.started = time.monotonic()
        self.last_report = 0.0
        self.epoch = 0
        self.batches_done = 0  # batches of the current epoch applied so far

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.monotonic()
        self.ctx.check_stop()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.batches_done = epoch, 0
        self._check_stop()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.batches_done = batch
        now = time.monotonic()
        if batch and now - self.last_report >= BATCH_EVENT_INTERVAL:
            self.last_report = now
            metrics = self.model.get_metrics_result()
            self._report_batch(batch, float(metrics["loss"]), float(metrics.get("accuracy", float("nan"))), now)
        self._check_stop()

    def on_test_begin(self, logs: dict | None = None) -> None:  # the validation pass inside fit
        self._check_stop()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:  # a stop now acts at the next begin
        self.batches_done = self.steps
        metrics = {key: float(value) for key, value in (logs or {}).items()}
        metrics["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        now = time.monotonic()
        self.last_report = now
        self._report_batch(self.steps, metrics.get("loss", float("nan")), metrics.get("accuracy", float("nan")),
                           now)
        elapsed = now - self.started
        self.recorder.append({"epoch": epoch + 1, **metrics, "elapsed": elapsed})
        self.ctx.reporter(EpochEnded(epoch + 1, self.epochs, metrics, elapsed))

    def _check_stop(self) -> None:
        """Raise StopRequested naming the last batch applied, if a stop was requested."""
        if not self.ctx.stop.requested:
            return
        if self.batches_done:
            where = f"epoch {self.epoch + 1}, batch {self.batches_done}"
        elif self.epoch:
            where = f"epoch {self.epoch}, batch {self.steps}"
        else:
            where = "the start, before the first batch"
        raise StopRequested(f"{self.ctx.stop.reason} after {where}")

    def _report_batch(self, batch: int, loss: float, accuracy: float, now: float) -> None:
        if not math.isfinite(loss):
            raise LossIsNaN(f"expected a finite training loss, got {loss} at epoch {self.epoch + 1} batch "
                            f"{batch}; try a lower learning rate")
        self.ctx.reporter(BatchProgress(self.epoch + 1, self.epochs, batch, self.steps, loss, accuracy,
                                        now - self.started))


class _ThresholdStop(keras.callbacks.Callback):
    """Stops at the end of the first epoch whose metric reaches the threshold (seed recipe: accuracy > 98 %)."""

    def __init__(self, metric: str, threshold: float) -> None:
        super().__init__()
        self.metric, self.threshold, self.reason = metric, threshold, ""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.metric)
        if value is not None and float(value) >= self.threshold:
            self.reason = f"{self.metric} reached {float(value):.4f} >= {self.threshold} at epoch {epoch + 1}"
            self.model.stop_training = True

