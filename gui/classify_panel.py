"""The Classify panel: drop or open image files, see the top classes as bars and the image the model saw.
The selected run's model is loaded once (on a Task) and cached per run. Several runs answering side by side,
heatmaps and the unknown rate: transferlab.gui.trust_views.ClassifyTrust."""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.atomic import write_text_atomic
from transferlab.core.catalog import image_file_filter
from transferlab.core.kinds import KINDS
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.trust_views import ClassifyTrust, answer_label
from transferlab.gui.widgets import ProbabilityBars, html_text, scaled_pixmap, thumbnail
from transferlab.gui.worker import TaskGroup, describe_error

logger = logging.getLogger(__name__)

TOP_K = 5
SHOWN_SIZE = 112
GRID_ICON = 72
IMAGE_FILTER = image_file_filter()
NO_MODEL_HINT = "No trained model yet: train one first (Train button), then drop images here."
DEFAULT_STATUSES = ("finished", "stopped")  # in this order; never interrupted, failed or damaged runs


def default_run(runs: list[Any]) -> str:
    """The run Classify uses when the user has not chosen one: the newest finished run (runs come newest
    first), else the newest stopped one that kept its model; "" when there is none."""
    for status in DEFAULT_STATUSES:
        for run in runs:
            if run.status == status and run.has_model:
                return str(run.run_id)
    return ""


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

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._classifiers)

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
        self._usable: set[str] = set()
        self._data_sets: dict[str, str] = {}  # run id → what it was trained on (MNIST or a folder)
        self._shown_run = ""  # the run whose predictions are on screen
        self.class_names: list[str] = []
        self.truths: dict[int, str] = {}  # prediction index → the true class the user entered
        self._build()

    def _build(self) -> None:
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(360)
        self.run_combo.currentIndexChanged.connect(self._on_run_changed)
        self.open_button = QPushButton("Open images…")
        self.open_button.clicked.connect(self.open_images)
        self.status = QLabel(NO_MODEL_HINT)
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model from run:"))
        top.addWidget(self.run_combo, 1)
        top.addWidget(self.open_button)
        self.trust = ClassifyTrust(self.store, self.run_combo)
        self.trust.changed.connect(self.reclassify)
        self.compact_check = QCheckBox("Compact grid")
        self.compact_check.setToolTip("Many images at once: small tiles with the answer, instead of cards")
        self.compact_check.toggled.connect(self._on_compact)
        self.csv_button = QPushButton("Save as CSV…")
        self.csv_button.setToolTip("Save every image's prediction (and the true class you entered) as a CSV file")
        self.csv_button.setEnabled(False)
        self.csv_button.clicked.connect(self.save_csv)
        self.tally = QLabel("")
        self.tally.setWordWrap(True)
        self.score = QLabel("")
        tools = QHBoxLayout()
        tools.addWidget(self.tally, 1)
        tools.addWidget(self.score)
        tools.addWidget(self.compact_check)
        tools.addWidget(self.csv_button)
        self.results = QWidget()
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.addStretch(1)
        self.results_scroll = QScrollArea()
        self.results_scroll.setWidgetResizable(True)
        self.results_scroll.setWidget(self.results)
        self.grid = QListWidget()
        self.grid.setViewMode(QListWidget.ViewMode.IconMode)
        self.grid.setIconSize(QSize(GRID_ICON, GRID_ICON))
        self.grid.setGridSize(QSize(GRID_ICON + 40, GRID_ICON + 46))
        self.grid.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.grid.setMovement(QListWidget.Movement.Static)
        self.grid.setWordWrap(True)
        self.views = QStackedWidget()
        self.views.addWidget(self.results_scroll)
        self.views.addWidget(self.grid)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.trust)
        layout.addWidget(self.status)
        layout.addLayout(tools)
        layout.addWidget(self.views, 1)

    def _on_compact(self, compact: bool) -> None:
        self.views.setCurrentWidget(self.grid if compact else self.results_scroll)

    # ---- runs ----

    def refresh_runs(self, runs: list[Any], follow: str = "") -> None:
        """List the runs that have a model. The choice stays where it was unless that run is gone; `follow`
        (a run that just finished, or the one selected in the runs view) is chosen when it has a model. With
        no earlier choice the newest finished run is used, never an interrupted or failed one."""
        previous = self.run_id()
        listed = [run for run in runs if run.has_model]
        self._usable = {run.run_id for run in listed}
        self._data_sets.update({run.run_id: _data_set(run) for run in listed})
        for run_id in list(self.cache.loaded_ids()):
            if run_id not in self._usable:  # deleted: its model is dropped too
                self.cache.forget(run_id)
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for run in listed:
            accuracy = run.metrics.get("accuracy")
            extra = f" — {100 * accuracy:.1f} %" if isinstance(accuracy, float) else ""
            extra += f" (cv {cv_text_of(run.metrics)})" if cv_text_of(run.metrics) else ""
            state = "" if run.status == "finished" else f" ({run.status})"
            self.run_combo.addItem(f"{run.title()}{extra}{state}  [{run.run_id}]", run.run_id)
            self.run_combo.setItemData(self.run_combo.count() - 1, run.title(), Qt.ItemDataRole.ToolTipRole)
        choice = follow if follow in self._usable else previous if previous in self._usable else default_run(listed)
        self.run_combo.setCurrentIndex(self.run_combo.findData(choice) if choice else -1)
        self.run_combo.blockSignals(False)
        self.trust.refresh_runs()
        if self.run_id() != previous or not listed:
            self._on_run_changed(preload=self.isVisible())  # the model loads when Classify is shown

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

    def _on_run_changed(self, *_args: Any, preload: bool = True) -> None:
        run_id = self.run_id()
        if not run_id:
            self._clear_results()
            self.status.setText(NO_MODEL_HINT)
            return
        files = [p.file for p in self.predictions]
        same_data = self._data_sets.get(self._shown_run) == self._data_sets.get(run_id)
        self._clear_results()
        if files and same_data:  # another model of the same classes: classify the same images again
            self.classify_files(files)
        elif files:  # a model of other classes: its answers on these images would mean nothing
            self.status.setText(f"Using run {run_id}: the images shown were for another model's classes. Drop "
                                "images anywhere on the window, or open them.")
        else:
            self.status.setText(f"Using run {run_id}. Drop image files anywhere on the window, or open them.")
            if preload:
                self.preload(run_id)

    def preload(self, run_id: str) -> None:
        """Load the model in the background so the first drop is fast."""
        if self.cache.loaded(run_id) or self.tasks.running("classify"):
            return
        self._start(run_id, [])

    # ---- classifying ----

    def open_images(self) -> None:
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
            classifier = cache.get(run_id)  # the model is loaded (all a preload asks for)
            if not paths:
                return None
            started = time.perf_counter()
            answers = request.run(cache.get, paths, TOP_K)  # every chosen run's, the selected run's first
            predictions = answers.primary
            thumbs = [thumbnail(p.file, SHOWN_SIZE) for p in predictions]
            return run_id, predictions, thumbs, time.perf_counter() - started, list(classifier.class_names), answers

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
        run_id, predictions, thumbs, seconds, class_names, answers = result
        if run_id != self.run_id():  # the model was changed meanwhile: classify again with the chosen one
            self._pending = [p.file for p in predictions] + self._pending
            return
        self.trust.show_answers(answers)
        self.last_seconds = seconds
        self._clear_results()
        self._shown_run = run_id
        self.predictions = list(predictions)
        self.class_names = class_names
        for index, (prediction, thumb) in enumerate(zip(predictions, thumbs, strict=True)):
            self.results_layout.insertWidget(self.results_layout.count() - 1, self._row(index, prediction, thumb))
            self._add_tile(prediction, thumb)
        self.results_scroll.verticalScrollBar().setValue(0)  # new results start at the top, not at the old offset
        self.grid.scrollToTop()
        ok = sum(1 for p in predictions if not p.error)
        others = [r for r in answers.run_ids if r != run_id]
        beside = f" (and beside it with {', '.join(others)})" if others else ""
        self.status.setText(f"{ok} of {len(predictions)} image(s) classified with run {run_id}{beside} "
                            f"in {1000 * seconds:.0f} ms.")
        self.tally.setText(tally_text(self.predictions))
        self.csv_button.setEnabled(bool(self.predictions))
        self._update_score()
        self.classified.emit(self.predictions)

    def _add_tile(self, prediction: Any, thumb: Any) -> None:
        name = Path(prediction.file).name
        text = (f"error\n{name}" if prediction.error
                else f"{prediction.label}  {100 * prediction.probability:.0f} %\n{name}")
        item = QListWidgetItem(text)
        if not thumb.isNull():
            item.setIcon(QIcon(scaled_pixmap(thumb, GRID_ICON, smooth=True)))
        top = ", ".join(f"{label} {100 * probability:.1f} %" for label, probability in prediction.top)
        item.setToolTip(f"{prediction.file}\n{prediction.error or top}")
        self.grid.addItem(item)

    # ---- your own labels: "does it read my handwriting?" ----

    def set_truth(self, index: int, label: str) -> None:
        """The true class of the index-th image, as the user entered it ("" to forget it)."""
        if label:
            self.truths[index] = label
        else:
            self.truths.pop(index, None)
        self._update_score()

    def _update_score(self) -> None:
        right, total = score(self.predictions, self.truths)
        self.score.setText(f"Your labels: <b>{right} of {total}</b> right ({100 * right / total:.0f} %)"
                           if total else "")

    def save_csv(self, path: str = "") -> str:
        """Every prediction shown (and the true class entered) as CSV; returns the path written ("" if none)."""
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save the predictions", str(Path.home() / "predictions.csv"),
                                                  "CSV files (*.csv)")
        if not path:
            return ""
        try:
            write_text_atomic(path, predictions_csv(self.predictions, self.truths))
        except Exception as exc:
            logger.exception("saving %s", path)
            self.message.emit(f"Could not save {path}: {exc}", "error")
            return ""
        self.message.emit(f"Saved {len(self.predictions)} predictions to {path}.", "success")
        return path

    def _clear_results(self) -> None:
        self.predictions = []
        self.truths = {}
        self.grid.clear()
        self.tally.setText("")
        self.score.setText("")
        self.csv_button.setEnabled(False)
        while self.results_layout.count() > 1:
            item = self.results_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()

    def _row(self, index: int, prediction: Any, thumb: Any) -> QWidget:
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
            truth = QComboBox()
            truth.addItem("—", "")
            for class_name in self.class_names:
                truth.addItem(class_name, class_name)
            truth.setToolTip("The true class: the score above counts how many the model got right")
            truth.currentIndexChanged.connect(lambda _i, box=truth, at=index: self.set_truth(at, box.currentData()))
            head = QHBoxLayout()
            head.addWidget(answer)
            head.addStretch(1)
            head.addWidget(QLabel("True class:"))
            head.addWidget(truth)
            right = QVBoxLayout()
            right.addLayout(head)
            right.addWidget(bars)
            right.addStretch(1)
            grid.addLayout(right, 2, 2)
        grid.setColumnStretch(2, 1)
        self.trust.add_other_runs(grid, prediction, 3, SHOWN_SIZE)
        return frame


def _data_set(run: Any) -> str:
    kind = KINDS.get(run.kind)
    return f"folder:{run.config.get('data_dir', '')}" if kind is not None and kind.uses_folder else str(run.kind)


def tally_text(predictions: list[Any]) -> str:
    """How many images went to each class, most first: "Predicted: 7 × 3, 1 × 1"."""
    counts = Counter(p.label for p in predictions if not p.error)
    errors = sum(1 for p in predictions if p.error)
    parts = [f"<b>{html_text(label)}</b> × {count}" for label, count in counts.most_common()]
    text = "Predicted: " + ", ".join(parts) if parts else ""
    return text + (f"{'; ' if text else ''}{errors} unreadable" if errors else "")


def score(predictions: list[Any], truths: dict[int, str]) -> tuple[int, int]:
    """(right, labelled): how many of the images the user labelled the model classified correctly."""
    labelled = [(predictions[i], label) for i, label in truths.items() if i < len(predictions)]
    return sum(1 for p, label in labelled if not p.error and p.label == label), len(labelled)


def predictions_csv(predictions: list[Any], truths: dict[int, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "predicted", "probability", "true", "correct", "top", "error"])
    for index, p in enumerate(predictions):
        true = truths.get(index, "")
        writer.writerow([p.file, p.label, f"{p.probability:.6f}" if not p.error else "", true,
                         ("yes" if p.label == true else "no") if true and not p.error else "",
                         "; ".join(f"{label} {prob:.4f}" for label, prob in p.top), p.error])
    return out.getvalue()


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("color:#666;font-size:8pt;")
    return label
