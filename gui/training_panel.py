"""The Training panel: live loss and accuracy curves (per epoch, plus the within-epoch trace) and a log."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPlainTextEdit, QSplitter, QVBoxLayout, QWidget

from transferlab.core.events import BatchProgress, EpochEnded, PhaseProgress, RunFinished, RunStarted
from transferlab.core.kinds import kind_of
from transferlab.core.records import hardware_text
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.plots import ZOOM_EPOCHS, TrainingCurves
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
        self.log_check = QCheckBox("Log-scale loss")
        self.log_check.setToolTip("Show the loss on a log scale: small changes in the last epochs stay visible")
        self.log_check.toggled.connect(self.curves.set_log_loss)
        self.zoom_check = QCheckBox(f"Last {ZOOM_EPOCHS} epochs")
        self.zoom_check.setToolTip("Zoom to the last epochs, both axes scaled to their values (the first epochs' "
                                   "large loss no longer squashes the curves that matter)")
        self.zoom_check.toggled.connect(self.curves.set_zoom_last)
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.zoom_check)
        top.addWidget(self.log_check)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self._last_phase = ""
        self._last_elapsed = 0.0

    def begin(self, title: str, epochs: int) -> None:
        self.curves.begin(epochs)
        self.log.clear()
        self._last_phase = ""
        self._last_elapsed = 0.0
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
            took = event.elapsed - self._last_elapsed
            self._last_elapsed = event.elapsed
            self.append(f"epoch {event.epoch}/{event.epochs}: loss {m.get('loss', float('nan')):.4f}, "
                        f"accuracy {m.get('accuracy', float('nan')):.4f}{val} — took {took:.1f} s, "
                        f"{event.elapsed:.1f} s since training started")
        elif isinstance(event, PhaseProgress):
            if event.phase != self._last_phase:
                self._last_phase = event.phase
                self.append(f"{event.phase}…")
        elif isinstance(event, RunStarted):
            summary = event.model_summary
            self._last_elapsed = 0.0
            fixed = "frozen" if kind_of(event.config).uses_folder else "non-trainable (BatchNorm statistics)"
            self.header.setText(f"<b>{html_text(event.run_id)}</b> — {summary.total_params:,} parameters "
                                f"({summary.trainable_params:,} trainable, {summary.frozen_params:,} {fixed})")
            data = event.data_summary
            hardware = data.details.get("hardware")
            self.append(f"run {event.run_id}: {data.train_samples} training, {data.validation_samples} validation "
                        f"samples{', ' + hardware_text(hardware) if hardware else ''}")
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
