"""The Results panel: evaluation accuracy and loss, the confusion matrix (click a cell → its images), the
misclassified images sorted by confidence, per-class precision and recall, and the calibration; heatmaps on the
images (transferlab.gui.trust_views)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.analysis.samples import EvaluationSamples
from transferlab.core.records import EvaluationReport, Mistake, SampleId
from transferlab.core.runs.store import RunInfo, RunStore
from transferlab.core.training.kinds import evaluation_samples
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.plots import ConfusionPlot
from transferlab.gui.trust_views import CalibrationPage, GalleryHeatmaps
from transferlab.gui.widgets import gray_qimage, html_text, thumbnail
from transferlab.gui.worker import TaskGroup, describe_error

logger = logging.getLogger(__name__)

MAX_SHOWN = 120
ZOOM = 336  # 28 × 12 pixels
NO_RUN_YET = "The images a run got wrong appear here once a run has been evaluated."
ICON = 72


@dataclass(frozen=True)
class LoadedResults:
    """What the panel shows of one run: the run, its evaluation, its samples and the mistakes' thumbnails."""

    info: RunInfo
    report: EvaluationReport | None = None
    samples: EvaluationSamples | None = None
    thumbs: dict[SampleId, QImage] = field(default_factory=dict)


def load_results(store: RunStore, run_id: str) -> LoadedResults:
    """Worker: the run, its report, its evaluation samples (transferlab.core.training.kinds.evaluation_samples)
    and the thumbnails of its most confident mistakes."""
    info = store.get(run_id)
    report = info.report
    if report is None:
        return LoadedResults(info)
    samples = evaluation_samples(store, run_id)
    thumbs = {m.id: _image(samples, m.id) for m in report.misclassified[:MAX_SHOWN]}
    return LoadedResults(info, report, samples, thumbs)


def _image(samples: EvaluationSamples | None, sample_id: SampleId) -> QImage:
    if samples is None:
        return QImage()
    array = samples.array(sample_id)
    if array is not None:
        return gray_qimage(array)
    path = samples.path(sample_id)
    return thumbnail(path, ICON) if path is not None else QImage()


class ResultsPanel(QWidget):
    shown = Signal(str)  # run id, once its results are on screen
    message = Signal(str, str)

    def __init__(self, store: RunStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.run_id = ""
        self.results: LoadedResults | None = None
        self.tasks = TaskGroup(self)
        self.header = QLabel("Train a model, or pick a run in <b>Runs</b>, to see how well it does.")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.confusion = ConfusionPlot(self, on_cell=self.show_cell)
        self.tabs = QTabWidget()
        self.misclassified = self._icon_list()
        self.cell_caption = QLabel("Click a cell of the confusion matrix.")
        self.cell_caption.setWordWrap(True)
        self.cell_list = self._icon_list()
        cell_page = QWidget()
        cell_layout = QVBoxLayout(cell_page)
        cell_layout.addWidget(self.cell_caption)
        cell_layout.addWidget(self.cell_list, 1)
        self.per_class = QTableWidget(0, 5)
        self.per_class.setHorizontalHeaderLabels(["Class", "Precision", "Recall", "F1", "Support"])
        self.per_class.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.per_class.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.per_class.verticalHeader().setVisible(False)
        self.misclassified_caption = QLabel(NO_RUN_YET)
        self.misclassified_caption.setWordWrap(True)
        wrong_page = QWidget()
        wrong_layout = QVBoxLayout(wrong_page)
        wrong_layout.addWidget(self.misclassified_caption)
        wrong_layout.addWidget(self.misclassified, 1)
        self.tabs.addTab(wrong_page, "Misclassified (most confident first)")
        self.tabs.addTab(cell_page, "Confusion cell")
        self.tabs.addTab(self.per_class, "Per class")
        self.calibration_page = CalibrationPage()
        self.tabs.addTab(self.calibration_page, "Calibration")
        self.heatmaps = GalleryHeatmaps(self.store, [self.misclassified, self.cell_list], self)
        self.heatmaps.message.connect(self.message)
        self.tabs.setCornerWidget(self.heatmaps.box)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("results_splitter")
        splitter.addWidget(self.confusion)
        splitter.addWidget(self.tabs)
        splitter.setSizes([480, 620])
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(splitter, 1)

    def _icon_list(self) -> QListWidget:
        widget = QListWidget()
        widget.setViewMode(QListWidget.ViewMode.IconMode)
        widget.setIconSize(QSize(ICON, ICON))
        widget.setGridSize(QSize(ICON + 56, ICON + 44))
        widget.setResizeMode(QListWidget.ResizeMode.Adjust)
        widget.setMovement(QListWidget.Movement.Static)
        widget.setWordWrap(True)
        widget.itemDoubleClicked.connect(self._open_item)
        return widget

    def _open_item(self, item: QListWidgetItem) -> None:
        """A digit opens enlarged in a small window; a folder run's image in the system's image viewer."""
        samples = self.results.samples if self.results is not None else None
        if samples is None:
            return
        sample_id = item.data(Qt.ItemDataRole.UserRole)
        if samples.array(sample_id) is not None:  # MNIST: the digit, enlarged, in a small window
            self.zoomed = _zoom_window(self, _image(samples, sample_id), f"Test digit #{sample_id}")
            return
        path = samples.path(sample_id)
        if path is None:
            return
        if path.is_file():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
        else:
            self.message.emit(f"{path} is no longer there.", "warning")

    def show_run(self, run_id: str) -> None:
        self.run_id = run_id
        self.header.setText(f"Loading the results of <b>{run_id}</b>…")
        store = self.store
        # A newer request supersedes this one: only the run asked for last is shown.
        self.tasks.start("load-results", lambda _report, _stop: load_results(store, run_id),
                         returned=self._on_loaded, errored=partial(self._on_load_error, run_id))

    def _on_load_error(self, run_id: str, error: BaseException) -> None:
        self.message.emit(f"Could not load run {run_id}: {describe_error(error)}", "error")

    def _on_loaded(self, results: LoadedResults) -> None:
        self.results = results
        info, report = results.info, results.report
        self.misclassified.clear()
        self.cell_list.clear()
        self.per_class.setRowCount(0)
        self.calibration_page.set_report(report)
        if report is None:
            self.header.setText(f"<b>{html_text(info.title())}</b> ({info.run_id}) — {info.status}"
                                f"{': ' + html_text(info.reason) if info.reason else ''}. No evaluation results.")
            self.confusion.set_matrix([], [], "This run has no evaluation results\n(it stopped before its first "
                                      "epoch ended,\nor the app was closed while it trained).")
            self.misclassified_caption.setText("This run has no evaluation results.")
            self.shown.emit(info.run_id)
            return
        self.misclassified_caption.setText(
            "The images the model got wrong, the most confident mistakes first; double-click one to see it full "
            "size."
            if report.misclassified
            else f"Nothing to show: every image of the {report.eval_set} set was classified correctly.")
        self.header.setText(
            f"<b>{html_text(info.title())}</b> ({info.run_id}) — on the {report.eval_set} set of {report.samples} "
            f"images: <span style='font-size:14pt'><b>accuracy {100 * report.accuracy:.2f} %</b></span>, "
            f"loss {report.loss:.4f}; {_misclassified_note(report)}.{_cv_note(report)}")
        self.confusion.set_matrix([list(row) for row in report.confusion_matrix], list(report.class_names))
        for mistake in report.misclassified[:MAX_SHOWN]:
            self._add_item(self.misclassified, mistake.id, self._caption(report, mistake))
        self.per_class.setRowCount(len(report.per_class))
        for r, row in enumerate(report.per_class):
            values = [row.name, f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.f1:.3f}", str(row.support)]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.per_class.setItem(r, c, item)
        self.tabs.setCurrentIndex(0)
        self.heatmaps.show_run(info.run_id, results.samples)
        self.shown.emit(info.run_id)

    def _caption(self, report: EvaluationReport, mistake: Mistake) -> str:
        true, predicted = report.class_names[mistake.true], report.class_names[mistake.predicted]
        return f"{_short(true)} → {_short(predicted)}\n{100 * mistake.probability:.1f} %"

    def _add_item(self, widget: QListWidget, sample_id: SampleId, caption: str) -> None:
        results = self.results
        image = results.thumbs.get(sample_id) if results is not None else None
        if image is None:
            image = _image(results.samples if results is not None else None, sample_id)
        item = QListWidgetItem(caption)
        if not image.isNull():
            item.setIcon(QIcon(QPixmap.fromImage(image.scaled(ICON, ICON, Qt.AspectRatioMode.KeepAspectRatio))))
        item.setToolTip(str(sample_id))
        item.setData(Qt.ItemDataRole.UserRole, sample_id)
        widget.addItem(item)

    def cell_ids(self, true: int, predicted: int) -> tuple[list[SampleId], str]:
        """The samples in one confusion cell, and a note when they can't all be listed."""
        results = self.results
        if results is None or results.report is None:
            return [], ""
        report = results.report
        if report.labels is not None and report.predictions is not None:  # every prediction stored: exact
            ids: Sequence[SampleId] = report.sample_ids or range(len(report.labels))
            return [i for i, t, p in zip(ids, report.labels, report.predictions, strict=True)
                    if t == true and p == predicted], ""
        wrong = report.misclassified
        if true != predicted:
            listed = [m.id for m in wrong if m.true == true and m.predicted == predicted]
            complete = len(listed) == report.confusion_matrix[true][predicted]
            return listed, "" if complete else " (the run stores only the most confident mistakes)"
        samples = results.samples
        if samples is None or not samples.ids or len(wrong) != report.wrong:
            return [], " (the run does not store which samples were classified correctly)"
        wrong_ids = {m.id for m in wrong}
        return [i for i, label in zip(samples.ids, samples.labels, strict=True)
                if label == true and i not in wrong_ids], ""

    def show_cell(self, true: int, predicted: int) -> None:
        if self.results is None or self.results.report is None:
            return
        names = self.results.report.class_names
        ids, note = self.cell_ids(true, predicted)
        self.cell_list.clear()
        self.cell_list.setUpdatesEnabled(False)
        for sample_id in ids[:MAX_SHOWN]:
            self._add_item(self.cell_list, sample_id, _short(Path(str(sample_id)).name, 16)
                           if isinstance(sample_id, str) else f"#{sample_id}")
        self.cell_list.setUpdatesEnabled(True)
        more = f", first {MAX_SHOWN} shown" if len(ids) > MAX_SHOWN else ""
        self.cell_caption.setText(f"True <b>{html_text(names[true])}</b>, "
                                  f"predicted <b>{html_text(names[predicted])}</b>: {len(ids)} images{more}{note}.")
        self.tabs.setCurrentIndex(1)
        self.heatmaps.refresh()


def _zoom_window(parent: QWidget, image: QImage, title: str) -> QDialog:
    """A non-modal window showing an image enlarged without smoothing (every pixel visible)."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    label = QLabel()
    label.setPixmap(QPixmap.fromImage(image.scaled(ZOOM, ZOOM, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.FastTransformation)))
    QVBoxLayout(dialog).addWidget(label)
    dialog.setFixedSize(dialog.sizeHint())  # a pixel view: nothing to gain from resizing it
    dialog.show()
    return dialog


def _misclassified_note(report: EvaluationReport) -> str:
    wrong = report.wrong
    shown = min(MAX_SHOWN, len(report.misclassified))
    return f"{wrong} misclassified" + (f" (the {shown} most confident shown)" if shown < wrong else "")


def _cv_note(report: EvaluationReport) -> str:
    """The cross-validated accuracy of a run that has one (report.extras["cv"]), as a second line."""
    text = cv_text_of(report.extras)
    if not text:
        return ""
    images = report.extras["cv"].get("samples", "?")
    return (f"<br>Cross-validated (a head on the cached features of {images} images): <span style='font-size:14pt'>"
            f"<b>{html_text(text)}</b></span> — one split's accuracy can move by about the spread.")


def _short(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
