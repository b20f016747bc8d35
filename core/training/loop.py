"""The one training call shared by the CLI and the GUI:

    result = run_training(config, reporter, stop)

`config` is a frozen MnistConfig or FolderConfig, `reporter` receives plain-Python events
(transferlab.core.events), `stop` is a thread-safe StopFlag checked after every batch. Every run is stored by a
RunStore.

Bad input is refused before a run exists: `transferlab.core.training.preflight.check_run` raises a one-line
ConfigError, DataError, ModelError or RunStoreError and nothing is added to the store. Once the run exists,
failures never escape as exceptions: they end the run with status "failed" and a one-line reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from transferlab.core.config import RunConfig, default_learning_rate
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
from transferlab.core.models.building import building_models
from transferlab.core.models.losses import SmoothedSparseCrossentropy
from transferlab.core.models.schedules import OneCycle
from transferlab.core.models.summary import summarize_model, summary_to_dict
from transferlab.core.records import EvaluationReport, HistoryRow
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.distribute import default_strategy, is_chief
from transferlab.core.training.jobs import Job, JobContext, LossIsNaN, Prepared, RunResult, StopRequested
from transferlab.core.training.kinds import make_job
from transferlab.core.training.precision import hardware_summary, run_precision
from transferlab.core.training.preflight import Checked, check_run
from transferlab.core.training.trust_fit import fit_trust

logger = logging.getLogger(__name__)


BATCH_EVENT_INTERVAL = 0.05  # seconds: at most 20 batch events a second


def preflight(config: RunConfig, store: RunStore, reporter: Reporter | None = None,
              stop: StopFlag | None = None) -> Checked:
    """core.preflight.check_run with its scan progress sent to `reporter` as PhaseProgress events; raises
    StopRequested when `stop` is set while scanning."""

    def progress(phase: str, done: int, total: int) -> None:
        if stop is not None and stop.requested:
            raise StopRequested(stop.reason)
        if reporter is not None:
            reporter(PhaseProgress(phase, done, total))

    return check_run(config, store, progress)


def run_training(config: RunConfig, reporter: Reporter | None = None, stop: StopFlag | None = None, *,
                 store: RunStore | None = None, strategy: tf.distribute.Strategy | None = None,
                 job: Job | None = None, checked: Checked | None = None) -> RunResult:
    """Check, train, evaluate and store one run. Returns how it ended; never raises for a failed run. Bad input
    raises before the run exists (see the module docstring); `checked` skips checks the caller already made."""
    reporter = reporter or null_reporter
    stop = stop or StopFlag()
    store = store or RunStore()
    if checked is None:
        try:
            checked = preflight(config, store, reporter, stop)
        except StopRequested as exc:  # stopped while scanning: no run was made
            reason = str(exc) or "stopped by user"
            reporter(RunFinished("", "stopped", reason, None))
            return RunResult("", store.root, "stopped", reason, None, [])
    strategy = strategy or default_strategy()
    if not is_chief(strategy):  # every worker trains; only the chief stores the run
        with _worker_store() as scratch:
            return _run(config, reporter, stop, scratch, strategy, job, checked)
    return _run(config, reporter, stop, store, strategy, job, checked)


def _run(config: RunConfig, reporter: Reporter, stop: StopFlag, store: RunStore, strategy: tf.distribute.Strategy,
         job: Job | None, checked: Checked) -> RunResult:
    run = store.create(config)
    precision = run_precision(config)
    ctx = JobContext(run.run_id, store, reporter, stop, dtype_policy=precision.policy)
    recorder = _HistoryRecorder(store, run.run_id)
    status: RunStatus = "finished"
    reason = ""
    report: EvaluationReport | None = None
    try:
        keras.utils.set_random_seed(config.fit.seed)
        job = job or make_job(config, checked)
        with strategy.scope():
            prepared = job.prepare(ctx)  # jobs build their models inside building_models()
            with building_models():
                _compile(prepared, config)
        prepared.data_summary = dataclasses.replace(prepared.data_summary, details={
            **prepared.data_summary.details, "hardware": hardware_summary(strategy, precision)})
        summary = summarize_model(prepared.summary_model or prepared.model)
        store.write_json(run.run_id, "summary.json", {"data": prepared.data_summary.to_json(),
                                                      "model": summary_to_dict(summary)})
        store.write_model_info(run.run_id, prepared.model_info)
        reporter(RunStarted(run.run_id, config, prepared.data_summary, summary))
        try:
            status, reason = _fit(prepared, config, ctx, recorder)
        except StopRequested as exc:  # keep what the finished epochs learned
            status, reason = "stopped", str(exc) or "stopped by user"
        if recorder.history:
            final_model = prepared.finalize(prepared.model)
            if status == "stopped" and stop.skip_evaluation:  # closing: keep the epochs and model, now
                reason += "; not evaluated (the app was closing)"
            else:
                ctx.reporter(PhaseProgress("evaluating", 0, 1))
                report = job.evaluate(final_model, ctx)
                extras = fit_trust(job, final_model, ctx)  # calibration and the unknown check
                report = dataclasses.replace(report, epochs_trained=len(recorder.history),
                                             extras={**report.extras, **extras})
            store.save_model(run.run_id, final_model)
            if report is not None:
                store.write_json(run.run_id, "metrics.json", report.to_json())
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
    reporter(RunFinished(run.run_id, status, reason, report))
    return RunResult(run.run_id, run.path, status, reason, report, list(recorder.history))


@contextlib.contextmanager
def _worker_store() -> Iterator[RunStore]:
    """A run store for a non-chief worker: a temporary folder this process creates and removes."""
    folder = tempfile.mkdtemp(prefix="transferlab-worker-")
    try:
        yield RunStore(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
        self.history: list[HistoryRow] = []

    def append(self, row: HistoryRow) -> None:
        self.history.append(row)
        self.store.write_history(self.run_id, self.history)


class _ProgressCallback(keras.callbacks.Callback):
    """Reports batches (throttled), epochs (always), honours the stop flag and stops on a NaN loss."""

    def __init__(self, ctx: JobContext, epochs: int, steps: int, recorder: _HistoryRecorder) -> None:
        super().__init__()
        self.ctx, self.epochs, self.steps, self.recorder = ctx, epochs, steps, recorder
        self.started = time.monotonic()
        self.last_report = 0.0
        self.epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.monotonic()
        self.ctx.check_stop()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.ctx.stop.requested:  # end fit now, without the validation pass Keras runs after a stop
            raise StopRequested(f"{self.ctx.stop.reason} after epoch {self.epoch + 1}, batch {batch + 1}")
        now = time.monotonic()
        if now - self.last_report < BATCH_EVENT_INTERVAL and batch + 1 < self.steps:
            return
        self.last_report = now
        logs = logs or {}
        loss = float(logs.get("loss", float("nan")))
        if not math.isfinite(loss):
            raise LossIsNaN(f"expected a finite training loss, got {loss} at epoch {self.epoch + 1} batch "
                            f"{batch + 1}; try a lower learning rate")
        self.ctx.reporter(BatchProgress(self.epoch + 1, self.epochs, batch + 1, self.steps, loss,
                                        float(logs.get("accuracy", float("nan"))), now - self.started))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {key: float(value) for key, value in (logs or {}).items()}
        metrics["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if not math.isfinite(metrics.get("loss", 0.0)):
            raise LossIsNaN(f"expected a finite training loss, got {metrics['loss']} at epoch {epoch + 1}; "
                            "try a lower learning rate")
        elapsed = time.monotonic() - self.started
        self.recorder.append({"epoch": epoch + 1, **metrics, "elapsed": elapsed})
        self.ctx.reporter(EpochEnded(epoch + 1, self.epochs, metrics, elapsed))


class _ThresholdStop(keras.callbacks.Callback):
    """Stops at the end of the first epoch whose metric reaches the threshold (seed recipe: accuracy > 98 %)."""

    def __init__(self, metric: str, threshold: float) -> None:
        super().__init__()
        self.metric, self.threshold, self.reason = metric, threshold, ""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.metric)
        if value is not None and float(value) >= self.threshold:
            self.reason = f"{self.metric} reached {float(value):.4f} >= {self.threshold} at epoch {epoch + 1}"
            self.model.stop_training = True

