"""The Classify panel: drop or open image files, see the top classes as bars and the image the model saw.
The selected run's model is loaded once (on a Task) and cached per run. Several runs answering side by side,
heatmaps and the unknown rate: transferlab.gui.trust_views.ClassifyTrust."""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.catalog import image_file_filter
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.trust_views import ClassifyTrust, answer_label
from transferlab.gui.widgets import ProbabilityBars, html_text, scaled_pixmap, thumbnail
from transferlab.gui.worker import TaskGroup, describe_error

logger = logging.getLogger(__name__)

TOP_K = 5
SHOWN_SIZE = 112
IMAGE_FILTER = image_file_filter()


class ClassifierCache:
    """One loaded Classifier per run; safe to use from worker threads."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._classifiers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Any:
        with self._lock:
            if run_id not in self._classifiers:
                from transferlab.core.deploy.predict import Classifier

                # loading builds the model, under the engine's build lock (RunStore.load_model)
                self._classifiers[run_id] = Classifier(run_id, self.store)
            return self._classifiers[run_id]

    def loaded(self, run_id: str) -> bool:
        return run_id in self._classifiers

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._classifiers.pop(run_id, None)


class ClassifyPanel(QWidget):
    classified = Signal(list)  # the Predictions on screen
    message = Signal(str, str)

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.cache = ClassifierCache(store)
        self.predictions: list[Any] = []
        self.last_seconds = 0.0
        self._pending: list[str] = []
        self._rerun = False  # classify the shown images again once the task in flight is done
        self.tasks = TaskGroup(self)
        self._build()

    def _build(self) -> None:
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(360)
        self.run_combo.currentIndexChanged.connect(self._on_run_changed)
        self.open_button = QPushButton("Open images…")
        self.open_button.clicked.connect(self._on_open)
        self.status = QLabel("Drop image files anywhere on the window, or open them.")
        top = QHBoxLayout()
        top.addWidget(QLabel("Model from run:"))
        top.addWidget(self.run_combo, 1)
        top.addWidget(self.open_button)
        self.trust = ClassifyTrust(self.store, self.run_combo)
        self.trust.changed.connect(self.reclassify)
        self.results = QWidget()
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.trust)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)

    # ---- runs ----

    def refresh_runs(self, runs: list[Any]) -> None:
        current = self.run_id()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for run in runs:
            if run.has_model:
                accuracy = run.metrics.get("accuracy")
                extra = f" — {100 * accuracy:.1f} %" if isinstance(accuracy, float) else ""
                extra += f" (cv {cv_text_of(run.metrics)})" if cv_text_of(run.metrics) else ""
                self.run_combo.addItem(f"{run.title()}{extra}  [{run.run_id}]", run.run_id)
        index = self.run_combo.findData(current) if current else 0
        self.run_combo.setCurrentIndex(max(index, 0) if self.run_combo.count() else -1)
        self.run_combo.blockSignals(False)
        self.trust.refresh_runs()
        if not self.run_combo.count():
            self.status.setText("No trained model yet: train one first (Train button), then drop images here.")

    def run_id(self) -> str:
        return str(self.run_combo.currentData() or "")

    def set_extra_runs(self, run_ids: list[str]) -> None:
        """These runs answer each image beside the chosen run (the runs selected in the runs view)."""
        self.trust.set_extra_runs(run_ids)

    def reclassify(self) -> None:
        """Classify the images on screen again (other runs, heatmaps or unknown rate chosen)."""
        if self.tasks.running("classify"):
            self._rerun = True
        elif self.predictions:
            self.classify_files([p.file for p in self.predictions])

    def use_run(self, run_id: str) -> None:
        index = self.run_combo.findData(run_id)
        if index >= 0:
            self.run_combo.setCurrentIndex(index)

    def _on_run_changed(self) -> None:
        run_id = self.run_id()
        if run_id:
            self.status.setText(f"Using run {run_id}. Drop image files anywhere on the window, or open them.")
            self.preload(run_id)

    def preload(self, run_id: str) -> None:
        """Load the model in the background so the first drop is fast."""
        if self.cache.loaded(run_id) or self.tasks.running("classify"):
            return
        self._start(run_id, [])

    # ---- classifying ----

    def _on_open(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Images to classify", str(Path.home()), IMAGE_FILTER)
        if files:
            self.classify_files(files)

    def classify_files(self, paths: list[str]) -> None:
        run_id = self.run_id()
        if not run_id:
            self.message.emit("No trained model to classify with: train a model first.", "warning")
            return
        if self.tasks.running("classify"):  # one at a time: these images follow when it is done
            self._pending.extend(paths)
            return
        self.status.setText(f"Classifying {len(paths)} image(s) with run {run_id}…")
        self._start(run_id, list(paths))

    def _start(self, run_id: str, paths: list[str]) -> None:
        cache = self.cache
        request = self.trust.request(run_id)

        def work(_report: Any, _stop: Any) -> Any:
            cache.get(run_id)  # the model is loaded (all a preload asks for)
            if not paths:
                return None
            started = time.perf_counter()
            answers = request.run(cache.get, paths, TOP_K)  # every chosen run's, the selected run's first
            predictions = answers.primary
            thumbs = [thumbnail(p.file, SHOWN_SIZE) for p in predictions]
            return predictions, thumbs, time.perf_counter() - started, answers

        self.tasks.start("classify", work, returned=self._on_classified, errored=partial(self._on_error, run_id),
                         finished=self._on_finished, supersede=False)

    def _on_error(self, run_id: str, error: BaseException) -> None:
        self.cache.forget(run_id)
        self.status.setText(f"Could not classify with run {run_id}.")
        self.message.emit(f"Could not use the model of run {run_id}: {describe_error(error)}", "error")

    def _on_finished(self) -> None:
        rerun, self._rerun = self._rerun, False
        if self._pending:
            paths, self._pending = self._pending, []
            self.classify_files(paths)
        elif rerun:
            self.reclassify()

    def _on_classified(self, result: Any) -> None:
        if result is None:
            return
        predictions, thumbs, seconds, answers = result
        self.trust.show_answers(answers)
        self.last_seconds = seconds
        self.predictions = list(predictions)
        while self.results_layout.count() > 1:
            item = self.results_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for prediction, thumb in zip(predictions, thumbs, strict=True):
            self.results_layout.insertWidget(self.results_layout.count() - 1, self._row(prediction, thumb))
        ok = sum(1 for p in predictions if not p.error)
        self.status.setText(f"{ok} of {len(predictions)} image(s) classified with run {self.run_id()} "
                            f"in {1000 * seconds:.0f} ms.")
        self.classified.emit(self.predictions)

    def _row(self, prediction: Any, thumb: Any) -> QWidget:
        frame = QFrame()
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QGridLayout(frame)
        original = QLabel()
        original.setFixedSize(SHOWN_SIZE, SHOWN_SIZE)
        original.setAlignment(Qt.AlignmentFlag.AlignCenter)
        if not thumb.isNull():
            original.setPixmap(scaled_pixmap(thumb, SHOWN_SIZE, smooth=True))
        seen = QLabel()
        seen.setFixedSize(SHOWN_SIZE, SHOWN_SIZE)
        seen.setAlignment(Qt.AlignmentFlag.AlignCenter)
        picture = self.trust.seen_pixmap(prediction, SHOWN_SIZE)  # the heatmap overlay when asked for
        if picture is not None:
            seen.setPixmap(picture)
        name = QLabel(f"<b>{html_text(Path(prediction.file).name)}</b>")
        name.setToolTip(prediction.file)
        grid.addWidget(name, 0, 0, 1, 3)
        grid.addWidget(_caption("Your image"), 1, 0)
        grid.addWidget(_caption(self.trust.seen_caption(prediction)), 1, 1, 1, 2)
        grid.addWidget(original, 2, 0)
        grid.addWidget(seen, 2, 1)
        if prediction.error:
            error = QLabel(f"<span style='color:#a00'>{html_text(prediction.error)}</span>")
            error.setWordWrap(True)
            grid.addWidget(error, 2, 2)
        else:
            answer = answer_label(prediction)  # "unknown (best guess X, 41 %)" and why, when flagged
            bars = ProbabilityBars()
            bars.set_top(prediction.top)
            right = QVBoxLayout()
            right.addWidget(answer)
            right.addWidget(bars)
            right.addStretch(1)
            grid.addLayout(right, 2, 2)
        grid.setColumnStretch(2, 1)
        self.trust.add_other_runs(grid, prediction, 3, SHOWN_SIZE)
        return frame


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("color:#666;font-size:8pt;")
    return label
