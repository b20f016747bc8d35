"""Plain-Python events sent from a training run to its reporter (the CLI's progress bar, the GUI's signals).

A reporter is any callable taking one event. It is called on the thread that runs the training, so a GUI
must hand events over to its own thread (see gui/worker.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from transferlab.core.config import RunConfig
from transferlab.core.records import DataSummary, EvaluationReport

RunStatus = Literal["finished", "stopped", "failed"]


@dataclass(frozen=True)
class ModelSummary:
    """What the user sees before training: layers, output shapes, parameter counts."""

    name: str
    layers: tuple[tuple[str, str, str, int], ...]  # (layer name, class name, output shape, params)
    trainable_params: int
    frozen_params: int

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.frozen_params


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    config: RunConfig
    data_summary: DataSummary
    model_summary: ModelSummary


@dataclass(frozen=True)
class PhaseProgress:
    """Work before or after fitting (loading data, extracting features, evaluating)."""

    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class BatchProgress:
    """Sent at most ~20 times a second while an epoch runs."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based, batches done in this epoch
    batches: int | None  # None when the number of batches is unknown
    loss: float
    accuracy: float
    elapsed: float  # seconds since fitting started

    @property
    def fraction(self) -> float:
        """The part of the whole fit done so far, 0..1 (only whole epochs when the batches are unknown)."""
        within = self.batch / self.batches if self.batches else 0.0
        return min(1.0, (self.epoch - 1 + within) / max(self.epochs, 1))

    def remaining(self, min_fraction: float = 0.0) -> float | None:
        """Seconds of fitting left at the pace so far; None until more than `min_fraction` of it is done."""
        done = self.fraction
        if done <= min_fraction or done <= 0.0:
            return None
        return self.elapsed * (1.0 - done) / done


@dataclass(frozen=True)
class EpochEnded:
    epoch: int  # 1-based
    epochs: int
    metrics: dict[str, float]  # loss, accuracy, val_loss, val_accuracy, learning_rate
    elapsed: float

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    status: RunStatus
    reason: str = ""
    report: EvaluationReport | None = None  # None when the run ended before a model was trained

    @property
    def metrics(self) -> dict[str, Any]:
        """The report as stored in metrics.json ({} without one)."""
        return self.report.to_json() if self.report is not None else {}


Event = RunStarted | PhaseProgress | BatchProgress | EpochEnded | RunFinished
Reporter = Callable[[Event], None]
E = TypeVar("E", RunStarted, PhaseProgress, BatchProgress, EpochEnded, RunFinished)


def null_reporter(event: Event) -> None:
    """A reporter that ignores everything."""


class EventLog:
    """A reporter that keeps every event; handy in tests and for headless runs."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, event_type: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, event_type)]
