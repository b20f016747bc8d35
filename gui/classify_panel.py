"""The Classify panel: drop or open image files, see the top classes as bars and the image the model saw.
The selected run's model is loaded once (on a Task) and cached per run.

Trust (issue 10): answers the run's unknown check flags read "unknown (best guess X, 41 %)" with the reason; a
slider moves the target false-unknown rate and shows the coverage/accuracy it costs on held-out images; more
runs can be ticked so that each image shows each run's answer side by side; "Show heatmap" replaces the image
the model saw with the heatmap overlay (core.deploy.explain)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
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
    QVBoxLayout,
    QWidget,
)

from transferlab.gui.trust_views import UnknownRateControl
from transferlab.gui.widgets import ProbabilityBars, html_text, rgb_qimage, scaled_pixmap, thumbnail
from transferlab.gui.worker import KERAS_LOCK, Task

logger = logging.getLogger(__name__)

TOP_K = 5
SHOWN_SIZE = 112
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff)"


class ClassifierCache:
    """One loaded Classifier per run; safe to use from worker threads."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._classifiers: dict[str, Any] = {}
        self._explainers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Any:
        with self._lock:
            if run_id not in self._classifiers:
                from transferlab.core.deploy.predict import Classifier

                with KERAS_LOCK:  # loading builds the model: never at the same time as another build
                    self._classifiers[run_id] = Classifier(run_id, self.store)
            return self._classifiers[run_id]

    def loaded(self, run_id: str) -> bool:
        return run_id in self._classifiers

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._classifiers.pop(run_id, None)
            self._explainers.pop(run_id, None)

    def explainer(self, run_id: str) -> Any:
        classifier = self.get(run_id)
        with self._lock:
            if run_id not in self._explainers:
                from transferlab.core.deploy.explain import Explainer

                with KERAS_LOCK:
                    self._explainers[run_id] = Explainer(classifier)
            return self._explainers[run_id]


class ClassifyPanel(QWidget):
    classified = Signal(list)  # the Predictions on screen
    message = Signal(str, str)

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.cache = ClassifierCache(store)
        self.predictions: list[Any] = []  # the primary run's
        self.answers: dict[str, list[Any]] = {}  # run id -> its Predictions for the images on screen
        self.last_seconds = 0.0
        self._last_paths: list[str] = []
        self._rerun = False
        self._pending: list[str] = []
        self._task: Task | None = None
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
        self.more_runs = QListWidget()
        self.more_runs.setMaximumHeight(64)
        self.more_runs.setToolTip("Tick runs to see their answers beside the main run's")
        self.more_runs.itemChanged.connect(lambda _item: self._reclassify())
        self.heatmap_box = QCheckBox("Show heatmap")
        self.heatmap_box.setToolTip("Overlay where the model looked (class activation map, Grad-CAM or occlusion)")
        self.heatmap_box.toggled.connect(lambda _on: self._reclassify())
        self.unknown_control = UnknownRateControl()
        self.unknown_control.rateChanged.connect(lambda _rate: self._reclassify())
        extra = QHBoxLayout()
        extra.addWidget(QLabel("Also answer with:"))
        extra.addWidget(self.more_runs, 1)
        extra.addWidget(self.heatmap_box)
        self.results = QWidget()
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(extra)
        layout.addWidget(self.unknown_control)
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
                self.run_combo.addItem(f"{run.title()}{extra}  [{run.run_id}]", run.run_id)
        index = self.run_combo.findData(current) if current else 0
        self.run_combo.setCurrentIndex(max(index, 0) if self.run_combo.count() else -1)
        self.run_combo.blockSignals(False)
        ticked = set(self.extra_run_ids())
        self.more_runs.blockSignals(True)
        self.more_runs.clear()
        for i in range(self.run_combo.count()):
            item = QListWidgetItem(self.run_combo.itemText(i))
            item.setData(Qt.ItemDataRole.UserRole, self.run_combo.itemData(i))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if self.run_combo.itemData(i) in ticked
                               else Qt.CheckState.Unchecked)
            self.more_runs.addItem(item)
        self.more_runs.blockSignals(False)
        if not self.run_combo.count():
            self.status.setText("No trained model yet: train one first (Train button), then drop images here.")

    def run_id(self) -> str:
        return str(self.run_combo.currentData() or "")

    def extra_run_ids(self) -> list[str]:
        """The ticked runs besides the main one."""
        main = self.run_id()
        return [str(item.data(Qt.ItemDataRole.UserRole)) for item in
                (self.more_runs.item(i) for i in range(self.more_runs.count()))
                if item.checkState() == Qt.CheckState.Checked and item.data(Qt.ItemDataRole.UserRole) != main]

    def set_extra_runs(self, run_ids: list[str]) -> None:
        self.more_runs.blockSignals(True)
        for i in range(self.more_runs.count()):
            item = self.more_runs.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) in run_ids
                               else Qt.CheckState.Unchecked)
        self.more_runs.blockSignals(False)
        self._reclassify()

    def _reclassify(self) -> None:
        """Classify the images on screen again (runs, heatmap or unknown rate changed); once, after the task
        in flight, however many changes came meanwhile."""
        if self._task is not None and self._task.running:
            self._rerun = True
            return
        if self._last_paths:
            self.classify_files(list(self._last_paths))
        elif self.run_id():
            self.preload(self.run_id())

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
        if self.cache.loaded(run_id) or (self._task is not None and self._task.running):
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
        if self._task is not None and self._task.running:
            self._pending.extend(paths)
            return
        self.status.setText(f"Classifying {len(paths)} image(s) with run {run_id}…")
        self._last_paths = list(paths)
        self._start(run_id, list(paths))

    def _start(self, run_id: str, paths: list[str]) -> None:
        cache = self.cache
        runs = [run_id, *self.extra_run_ids()] if paths else [run_id]
        rate, heatmaps = self.unknown_control.rate(), self.heatmap_box.isChecked()

        def work(_report: Any, _stop: Any) -> Any:
            started = time.perf_counter()
            answers: dict[str, list[tuple[Any, Any]]] = {}
            for rid in runs:
                classifier = cache.get(rid)
                classifier.trust.set_rate(rate)
                if not paths:
                    continue
                if heatmaps:
                    explained = cache.explainer(rid).classify_with_heatmap(paths, top_k=TOP_K)
                    answers[rid] = [(e.prediction, e.overlay(), e.method) for e in explained]
                else:
                    answers[rid] = [(p, None, "") for p in classifier.classify(paths, top_k=TOP_K)]
            main = cache.get(run_id).trust
            thumbs = [thumbnail(p, SHOWN_SIZE) for p in paths]
            return {"run_id": run_id, "answers": answers, "thumbs": thumbs, "paths": list(paths),
                    "seconds": time.perf_counter() - started, "thresholds": main.thresholds, "note": main.note}

        task = Task(work, "classify", owner=self)
        task.returned.connect(self._on_classified)
        task.errored.connect(lambda error: self._on_error(run_id, error))
        task.finished.connect(self._on_finished)
        self._task = task
        task.start()

    def _on_error(self, run_id: str, error: str) -> None:
        self.cache.forget(run_id)
        self.status.setText(f"Could not classify with run {run_id}.")
        self.message.emit(f"Could not use the model of run {run_id}: {error}", "error")

    def _on_finished(self) -> None:
        self._task = None
        if self._rerun and not self._pending:
            self._rerun = False
            self._reclassify()
            return
        self._rerun = False
        if self._pending:
            paths, self._pending = self._pending, []
            self.classify_files(paths)

    def _on_classified(self, result: Any) -> None:
        if result is None:
            return
        self.unknown_control.show_tradeoff(result["thresholds"], result["note"])
        answers: dict[str, list[Any]] = result["answers"]
        if not answers:
            return
        seconds, run_id = result["seconds"], result["run_id"]
        self.last_seconds = seconds
        self.answers = {rid: [a[0] for a in rows] for rid, rows in answers.items()}
        self.predictions = list(self.answers[run_id])
        while self.results_layout.count() > 1:
            item = self.results_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for index, thumb in enumerate(result["thumbs"]):
            per_run = [(rid, *rows[index]) for rid, rows in answers.items()]
            self.results_layout.insertWidget(self.results_layout.count() - 1, self._row(per_run, thumb))
        ok = sum(1 for p in self.predictions if not p.error)
        unknown = sum(1 for p in self.predictions if p.unknown)
        runs = f"run {run_id}" if len(answers) == 1 else f"{len(answers)} runs"
        self.status.setText(f"{ok} of {len(self.predictions)} image(s) classified with {runs} in "
                            f"{1000 * seconds:.0f} ms" + (f"; {unknown} unknown." if unknown else ".")
                            + (f" Note: {result['note']}" if result["note"] else ""))
        self.classified.emit(self.predictions)

    def _row(self, per_run: list[tuple[str, Any, Any, str]], thumb: Any) -> QWidget:
        """One image: the file, then each run's answer (what it saw or its heatmap, answer, bars) side by side."""
        frame = QFrame()
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QGridLayout(frame)
        first = per_run[0][1]
        original = QLabel()
        original.setFixedSize(SHOWN_SIZE, SHOWN_SIZE)
        original.setAlignment(Qt.AlignmentFlag.AlignCenter)
        if not thumb.isNull():
            original.setPixmap(scaled_pixmap(thumb, SHOWN_SIZE, smooth=True))
        name = QLabel(f"<b>{html_text(Path(first.file).name)}</b>")
        name.setToolTip(first.file)
        grid.addWidget(name, 0, 0, 1, 1 + 2 * len(per_run))
        grid.addWidget(_caption("Your image"), 1, 0)
        grid.addWidget(original, 2, 0)
        for column, (run_id, prediction, overlay, method) in enumerate(per_run):
            seen = QLabel()
            seen.setFixedSize(SHOWN_SIZE, SHOWN_SIZE)
            seen.setAlignment(Qt.AlignmentFlag.AlignCenter)
            picture = overlay if overlay is not None else prediction.seen
            if picture is not None:
                seen.setPixmap(scaled_pixmap(rgb_qimage(picture), SHOWN_SIZE, smooth=overlay is not None))
            what = f"Heatmap ({method})" if overlay is not None else "What the model saw"
            caption = what if len(per_run) == 1 else f"{what} — {run_id}"
            grid.addWidget(_caption(caption), 1, 1 + 2 * column, 1, 2)
            grid.addWidget(seen, 2, 1 + 2 * column)
            grid.addLayout(_answer(prediction), 2, 2 + 2 * column)
            grid.setColumnStretch(2 + 2 * column, 1)
        return frame


def _answer(prediction: Any) -> QVBoxLayout:
    right = QVBoxLayout()
    if prediction.error:
        error = QLabel(f"<span style='color:#a00'>{html_text(prediction.error)}</span>")
        error.setWordWrap(True)
        right.addWidget(error)
        return right
    if prediction.unknown:
        answer = QLabel(f"<span style='font-size:13pt;color:#b35900'><b>unknown</b></span> "
                        f"(best guess {html_text(prediction.label)}, {100 * prediction.probability:.0f} %)")
        reason = QLabel(prediction.reason)
        reason.setTextFormat(Qt.TextFormat.PlainText)
        reason.setWordWrap(True)
        reason.setStyleSheet("color:#b35900;font-size:8pt;")
    else:
        answer = QLabel(f"<span style='font-size:13pt'><b>{html_text(prediction.label)}</b></span> "
                        f"({100 * prediction.probability:.1f} %)")
        reason = None
    bars = ProbabilityBars()
    bars.set_top(prediction.top)
    right.addWidget(answer)
    if reason is not None:
        right.addWidget(reason)
    right.addWidget(bars)
    right.addStretch(1)
    return right


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("color:#666;font-size:8pt;")
    return label
