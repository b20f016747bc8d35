"""The Training panel: live loss and accuracy curves (per epoch, plus the within-epoch trace) and a log."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QSplitter, QVBoxLayout, QWidget

from transferlab.core.events import BatchProgress, EpochEnded, PhaseProgress, RunFinished, RunStarted
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.plots import TrainingCurves
from transferlab.gui.widgets import html_text


class TrainingPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel("Press <b>Train</b> to start. Loss and accuracy appear here while the model learns.")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.curves = TrainingCurves(self)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(1000)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("training_splitter")
        splitter.addWidget(self.curves)
        splitter.addWidget(self.log)
        splitter.setSizes([480, 140])
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(splitter, 1)
        self._last_phase = ""

    def begin(self, title: str, epochs: int) -> None:
        self.curves.reset(epochs)
        self.curves.draw_now()  # the one full redraw, before the worker competes for the CPU
        self.log.clear()
        self._last_phase = ""
        self.header.setText(f"<b>{html_text(title)}</b> — starting…")
        self.append(f"Training {title}")

    def append(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def on_event(self, event: Any) -> None:
        if isinstance(event, BatchProgress):
            self.curves.add_batch(event.epoch, event.batch, event.batches, event.loss, event.accuracy)
        elif isinstance(event, EpochEnded):
            self.curves.add_epoch(event.epoch, event.metrics)
            m = event.metrics
            val = (f", val_loss {m['val_loss']:.4f}, val_accuracy {m['val_accuracy']:.4f}"
                   if "val_loss" in m and "val_accuracy" in m else "")
            self.append(f"epoch {event.epoch}/{event.epochs}: loss {m.get('loss', float('nan')):.4f}, "
                        f"accuracy {m.get('accuracy', float('nan')):.4f}{val} ({event.elapsed:.1f} s)")
        elif isinstance(event, PhaseProgress):
            if event.phase != self._last_phase:
                self._last_phase = event.phase
                self.append(f"{event.phase}…")
        elif isinstance(event, RunStarted):
            summary = event.model_summary
            self.header.setText(f"<b>{html_text(event.run_id)}</b> — {summary.total_params:,} parameters "
                                f"({summary.trainable_params:,} trainable, {summary.frozen_params:,} frozen)")
            data = event.data_summary
            self.append(f"run {event.run_id}: {data.train_samples} training, {data.validation_samples} validation "
                        "samples")
        elif isinstance(event, RunFinished):
            report = event.report
            result = f", {report.eval_set} accuracy {report.accuracy:.4f}" if report is not None else ""
            result += f"; cross-validated {cv_text_of(event.metrics)}" if cv_text_of(event.metrics) else ""
            reason = f" ({event.reason})" if event.reason else ""
            self.append(f"run {event.run_id} {event.status}{reason}{result}")
            color = {"finished": "#060", "stopped": "#a60"}.get(event.status, "#a00")
            self.header.setText(f"<b>{html_text(event.run_id)}</b> — <span style='color:{color}'>{event.status}"
                                f"</span>{html_text(reason)}{html_text(result)}")
            self.curves.fit_view()

    def show_history(self, title: str, history: list[dict[str, Any]]) -> None:
        self.curves.set_history(history)
        self.header.setText(f"<b>{html_text(title)}</b> — stored curves ({len(history)} epochs)")
