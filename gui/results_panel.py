"""The Results panel: evaluation accuracy and loss, the confusion matrix (click a cell → its images), the
misclassified images sorted by confidence, and per-class precision and recall."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
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

from transferlab.gui.plots import ConfusionPlot
from transferlab.gui.widgets import gray_qimage, html_text, thumbnail
from transferlab.gui.worker import Task

logger = logging.getLogger(__name__)

MAX_SHOWN = 120
ICON = 72
_PARTS = {"validation": "val", "test": "test", "train": "train"}


def load_results(store: Any, run_id: str) -> dict[str, Any]:
    """Worker: the run, its metrics, the evaluation samples (ids and labels) and how to show them."""
    info = store.get(run_id)
    metrics = info.metrics or {}
    result: dict[str, Any] = {"info": info, "metrics": metrics, "ids": [], "labels": [], "images": None,
                              "root": ""}
    if not metrics:
        return result
    if info.kind == "mnist":
        from transferlab.core.data.mnist import load_mnist

        mnist = load_mnist()
        count = int(metrics.get("samples", len(mnist.test_labels)))
        result.update(ids=list(range(count)), labels=[int(v) for v in mnist.test_labels[:count]],
                      images=mnist.test_images)
    else:
        split = store.read_json(run_id, "split.json", default={}) or {}
        items = split.get(_PARTS.get(metrics.get("eval_set", ""), "val"), [])
        result.update(ids=[str(p) for p, _ in items], labels=[int(i) for _, i in items],
                      root=split.get("root") or info.config.get("data_dir", ""))
    result["thumbs"] = {m["id"]: _image(result, m["id"]) for m in metrics.get("misclassified", [])[:MAX_SHOWN]}
    return result


def _image(result: dict[str, Any], sample_id: Any) -> QImage:
    if result["images"] is not None:
        return gray_qimage(result["images"][int(sample_id)])
    return thumbnail(Path(result["root"]) / str(sample_id), ICON)


class ResultsPanel(QWidget):
    shown = Signal(str)  # run id, once its results are on screen
    message = Signal(str, str)

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.run_id = ""
        self.data: dict[str, Any] = {}
        self._tasks: list[Task] = []
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
        self.tabs.addTab(self.misclassified, "Misclassified (most confident first)")
        self.tabs.addTab(cell_page, "Confusion cell")
        self.tabs.addTab(self.per_class, "Per class")
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
        return widget

    def show_run(self, run_id: str) -> None:
        self.run_id = run_id
        self.header.setText(f"Loading the results of <b>{run_id}</b>…")
        task = Task(lambda _r, _s: load_results(self.store, run_id), "load-results", owner=self)
        task.returned.connect(lambda data: self._on_loaded(data) if run_id == self.run_id else None)
        task.errored.connect(lambda error: self.message.emit(f"Could not load run {run_id}: {error}", "error"))
        task.finished.connect(lambda: self._tasks.remove(task) if task in self._tasks else None)
        self._tasks.append(task)
        task.start()

    def _on_loaded(self, data: dict[str, Any]) -> None:
        self.data = data
        info, metrics = data["info"], data["metrics"]
        self.misclassified.clear()
        self.cell_list.clear()
        self.per_class.setRowCount(0)
        if not metrics:
            self.header.setText(f"<b>{html_text(info.title())}</b> ({info.run_id}) — {info.status}"
                                f"{': ' + html_text(info.reason) if info.reason else ''}. No evaluation results.")
            self.confusion.set_matrix([], [])
            self.shown.emit(info.run_id)
            return
        names = metrics.get("class_names", [])
        eval_set = metrics.get("eval_set", "evaluation")
        self.header.setText(
            f"<b>{html_text(info.title())}</b> ({info.run_id}) — on the {eval_set} set of "
            f"{metrics.get('samples', '?')} "
            f"images: <span style='font-size:14pt'><b>accuracy {100 * metrics.get('accuracy', 0):.2f} %</b></span>, "
            f"loss {metrics.get('loss', float('nan')):.4f}; {_misclassified_note(metrics)}.{_cv_note(metrics)}")
        self.confusion.set_matrix(metrics.get("confusion_matrix", []), names)
        for entry in metrics.get("misclassified", [])[:MAX_SHOWN]:
            self._add_item(self.misclassified, entry["id"], self._caption(entry))
        self.per_class.setRowCount(len(metrics.get("per_class", [])))
        for r, row in enumerate(metrics.get("per_class", [])):
            values = [row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                      str(row["support"])]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.per_class.setItem(r, c, item)
        self.tabs.setCurrentIndex(0)
        self.shown.emit(info.run_id)

    def _caption(self, entry: dict[str, Any]) -> str:
        names = self.data["metrics"].get("class_names", [])
        true, predicted = names[entry["true"]], names[entry["predicted"]]
        return f"{_short(true)} → {_short(predicted)}\n{100 * entry['probability']:.1f} %"

    def _add_item(self, widget: QListWidget, sample_id: Any, caption: str) -> None:
        image = self.data.get("thumbs", {}).get(sample_id)
        if image is None:
            image = _image(self.data, sample_id)
        item = QListWidgetItem(caption)
        if not image.isNull():
            item.setIcon(QIcon(QPixmap.fromImage(image.scaled(ICON, ICON, Qt.AspectRatioMode.KeepAspectRatio))))
        item.setToolTip(str(sample_id))
        item.setData(Qt.ItemDataRole.UserRole, sample_id)
        widget.addItem(item)

    def cell_ids(self, true: int, predicted: int) -> tuple[list[Any], str]:
        """The samples in one confusion cell, and a note when they can't all be listed."""
        metrics = self.data.get("metrics", {})
        if metrics.get("predictions") is not None:  # runs store every sample's prediction: exact cells
            labels, predictions = metrics["labels"], metrics["predictions"]
            ids = metrics.get("sample_ids") or range(len(labels))
            return [i for i, t, p in zip(ids, labels, predictions, strict=True) if t == true and p == predicted], ""
        wrong = metrics.get("misclassified", [])
        if true != predicted:
            ids = [m["id"] for m in wrong if m["true"] == true and m["predicted"] == predicted]
            matrix = np.asarray(metrics.get("confusion_matrix", [[0]]))
            note = "" if len(ids) == matrix[true, predicted] else " (the run stores only the most confident mistakes)"
            return ids, note
        matrix = np.asarray(metrics.get("confusion_matrix", [[0]]))
        complete = len(wrong) == int(matrix.sum() - np.trace(matrix))
        if not self.data.get("ids") or not complete:
            return [], " (the run does not store which samples were classified correctly)"
        wrong_ids = {m["id"] for m in wrong}
        return [i for i, label in zip(self.data["ids"], self.data["labels"], strict=True)
                if label == true and i not in wrong_ids], ""

    def show_cell(self, true: int, predicted: int) -> None:
        if not self.data.get("metrics"):
            return
        names = self.data["metrics"].get("class_names", [])
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


def _misclassified_note(metrics: dict[str, Any]) -> str:
    matrix = np.asarray(metrics.get("confusion_matrix", [[0]]))
    wrong = int(matrix.sum() - np.trace(matrix))
    shown = min(MAX_SHOWN, len(metrics.get("misclassified", [])))
    return f"{wrong} misclassified" + (f" (the {shown} most confident shown)" if shown < wrong else "")


def _short(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _cv_note(metrics: dict[str, Any]) -> str:
    """" Cross-validated: 93.6 % ± 1.0 over 5 folds." when the run was cross-validated."""
    cv = metrics.get("cv")
    if not isinstance(cv, dict) or not cv.get("text"):
        return ""
    return (f"<br>Cross-validated (a head on the cached features, {cv.get('samples', '?')} images): "
            f"<span style='font-size:14pt'><b>{html_text(cv['text'])}</b></span> — one split's accuracy can move "
            "by about the spread.")

