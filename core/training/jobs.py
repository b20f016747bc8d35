"""The contract between the training loop and a kind of run (a job): what a job gets, what it returns.

A job prepares data and model inside the distribution strategy's scope (`prepare`) and evaluates the final
model (`evaluate`); the loop (transferlab.core.training.loop) does everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import keras
import tensorflow as tf

from transferlab.core.errors import TransferlabError
from transferlab.core.events import PhaseProgress, Reporter, RunStatus
from transferlab.core.records import DataSummary, EvaluationReport, HistoryRow, ModelInfo
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag


class StopRequested(Exception):
    """Raised inside the run when the stop flag is set; ends it with status "stopped"."""


class LossIsNaN(TransferlabError):
    """The loss became NaN or infinite."""


@dataclass
class JobContext:
    """What a job gets from the shared loop."""

    run_id: str
    store: RunStore
    reporter: Reporter
    stop: StopFlag
    dtype_policy: str = "float32"  # the Keras dtype policy the job builds its trained model with

    def phase(self, name: str, done: int, total: int) -> None:
        self.check_stop()
        self.reporter(PhaseProgress(name, done, total))

    def check_stop(self) -> None:
        if self.stop.requested:
            raise StopRequested(self.stop.reason)


@dataclass
class Prepared:
    """Everything the loop needs to fit, built by a job inside the distribution strategy's scope."""

    model: keras.Model  # the model to fit (compiled by the loop)
    train: tf.data.Dataset  # batched
    val: tf.data.Dataset | None
    steps_per_epoch: int
    data_summary: DataSummary
    model_info: ModelInfo  # how to feed the stored model
    summary_model: keras.Model | None = None  # the model the user sees, when the fitted one is only a part
    class_weight: dict[int, float] | None = None
    learning_rate: float | None = None  # overrides config.fit.learning_rate (e.g. fine-tuning)
    finalize: Callable[[keras.Model], keras.Model] = field(default=lambda model: model)


class Job(Protocol):
    """A kind of run (MNIST, folder): prepares data and model, evaluates the final model."""

    def prepare(self, ctx: JobContext) -> Prepared: ...

    def evaluate(self, model: keras.Model, ctx: JobContext) -> EvaluationReport: ...


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: RunStatus
    reason: str
    report: EvaluationReport | None  # None when the run ended before a model was trained
    history: list[HistoryRow]

    @property
    def metrics(self) -> dict[str, Any]:
        """The report as stored in metrics.json ({} without one)."""
        return self.report.to_json() if self.report is not None else {}

