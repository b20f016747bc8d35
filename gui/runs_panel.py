"""The Runs panel: every stored run (it survives restarts); select two or more to compare curves, metrics,
per-class scores and configs (differences highlighted); export, delete, open a run's results."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from transferlab.gui.plots import CompareCurves
from transferlab.gui.worker import KERAS_LOCK, Task

logger = logging.getLogger(__name__)

EXPORT_FORMATS = (("keras", "Keras (.keras)"), ("savedmodel", "TF SavedModel"), ("tflite", "TensorFlow Lite"))
HIGHLIGHT = QColor("#fff1b8")
BETTER, WORSE = QColor("#d9f2dc"), QColor("#f8dcdc")


class RunsPanel(QWidget):
    showResults = Signal(str)
    classifyWith = Signal(str)
    message = Signal(str, str)
    compared = Signal(list)  # run ids now compared
    exported = Signal(str)  # path

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.runs: list[Any] = []
        self.comparison: dict[str, Any] = {}
        self._tasks: list[Task] = []
        self._build()

    def _build(self) -> None:
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["Run", "Id", "Status", "Accuracy", "Epochs", "Created"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemDoubleClicked.connect(lambda *_: self._on_results())

        self.refresh_button = QPushButton("Refresh")
        self.results_button = QPushButton("Show results")
        self.classify_button = QPushButton("Classify with this run")
        self.export_combo = QComboBox()
        for key, label in EXPORT_FORMATS:
            self.export_combo.addItem(label, key)
        self.export_button = QPushButton("Export")
        self.delete_button = QPushButton("Delete")
        self.refresh_button.clicked.connect(self.refresh)
        self.results_button.clicked.connect(self._on_results)
        self.classify_button.clicked.connect(self._on_classify)
        self.export_button.clicked.connect(self._on_export)
        self.delete_button.clicked.connect(self._on_delete)
        buttons = QHBoxLayout()
        for widget in (self.refresh_button, self.results_button, self.classify_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        buttons.addWidget(self.export_combo)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.delete_button)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(buttons)

        self.compare_hint = QLabel("Select two or more runs (Ctrl/Shift-click) to compare them.")
        self.compare_tabs = QTabWidget()
        self.curves = CompareCurves(self)
        self.metrics_table = self._table()
        self.per_class_table = self._table()
        self.config_table = self._table()
        self.compare_tabs.addTab(self.curves, "Curves")
        self.compare_tabs.addTab(self.metrics_table, "Metrics")
        self.compare_tabs.addTab(self.per_class_table, "Per-class recall")
        self.compare_tabs.addTab(self.config_table, "Config differences")
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.compare_hint)
        bottom_layout.addWidget(self.compare_tabs, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("runs_splitter")
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setSizes([260, 420])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self._update_buttons()

    def _table(self) -> QTableWidget:
        table = QTableWidget(0, 0)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        return table

    # ---- the list ----

    def refresh(self) -> None:
        selected = set(self.selected_ids())
        try:
            self.runs = self.store.list()
        except Exception as exc:
            logger.exception("listing runs")
            self.message.emit(f"Could not list the runs in {self.store.root}: {exc}", "error")
            self.runs = []
        self.table.blockSignals(True)
        self.table.clearSelection()
        self.table.setRowCount(len(self.runs))
        for r, run in enumerate(self.runs):
            accuracy = run.metrics.get("accuracy")
            shown = f"{100 * accuracy:.2f} %" if isinstance(accuracy, float) else "—"
            cv = run.metrics.get("cv")
            if isinstance(cv, dict) and cv.get("text"):
                shown += f" (cv {cv['text']})"
            values = [run.title(), run.run_id, run.status + (f" ({run.reason})" if run.reason else ""),
                      shown, str(run.epochs_done),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, run.run_id)
                if c == 2 and run.status not in ("finished",):
                    item.setForeground(QColor("#a60" if run.status == "stopped" else "#a00"))
                self.table.setItem(r, c, item)
        self.select(list(selected))
        self.table.blockSignals(False)
        self._on_selection()

    def selected_ids(self) -> list[str]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.runs[r].run_id for r in rows if r < len(self.runs)]

    def select(self, run_ids: list[str]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for r, run in enumerate(self.runs):
            if run.run_id in run_ids:
                self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    def _update_buttons(self) -> None:
        ids = self.selected_ids()
        one = len(ids) == 1
        run = next((r for r in self.runs if ids and r.run_id == ids[0]), None)
        self.results_button.setEnabled(one)
        has_model = bool(one and run is not None and run.has_model)
        self.classify_button.setEnabled(has_model)
        self.export_button.setEnabled(has_model)
        self.delete_button.setEnabled(bool(ids))

    def _on_selection(self) -> None:
        self._update_buttons()
        ids = self.selected_ids()
        if len(ids) >= 2:
            self.compare(ids)
        else:
            self.compare_hint.setText("Select two or more runs (Ctrl/Shift-click) to compare them.")

    def _on_results(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.showResults.emit(ids[0])

    def _on_classify(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.classifyWith.emit(ids[0])

    def _on_delete(self) -> None:
        for run_id in self.selected_ids():
            try:
                self.store.delete(run_id)
            except Exception as exc:
                logger.exception("deleting %s", run_id)
                self.message.emit(f"Could not delete run {run_id}: {exc}", "error")
        self.refresh()

    # ---- compare ----

    def compare(self, run_ids: list[str]) -> None:
        try:
            data = self.store.compare(run_ids)
        except Exception as exc:
            logger.exception("comparing %s", run_ids)
            self.message.emit(f"Could not compare the runs: {exc}", "error")
            return
        self.comparison = data
        runs = {run.run_id: run for run in self.runs}
        titles = [f"{t} [{r[-4:]}]" for t, r in zip(data["titles"], data["runs"], strict=True)]
        self.compare_hint.setText(f"Comparing {len(run_ids)} runs. Differences are highlighted.")
        self.curves.set_runs(titles, data["histories"])
        self._fill_metrics(titles, data)
        self._fill_per_class(titles, [runs[r].metrics if r in runs else {} for r in data["runs"]])
        self._fill_config(titles, data["config_diff"])
        self.compared.emit(list(data["runs"]))

    def _fill_metrics(self, titles: list[str], data: dict[str, Any]) -> None:
        shown = {k: v for k, v in data["metrics"].items() if k not in ("samples",)}
        lower_is_better = {k for k in shown if "loss" in k}
        table = self.metrics_table
        table.clear()
        table.setColumnCount(len(titles))
        table.setHorizontalHeaderLabels(titles)
        rows = [*shown.items(), ("status", data["status"])]
        table.setRowCount(len(rows))
        table.setVerticalHeaderLabels([k for k, _ in rows])
        for r, (key, values) in enumerate(rows):
            numbers = [v for v in values if isinstance(v, int | float)]
            best = (min(numbers) if key in lower_is_better else max(numbers)) if len(set(numbers)) > 1 else None
            for c, value in enumerate(values):
                text = f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value)
                item = QTableWidgetItem(text)
                if best is not None and value == best:
                    item.setBackground(BETTER)
                table.setItem(r, c, item)

    def _fill_per_class(self, titles: list[str], metrics: list[dict[str, Any]]) -> None:
        table = self.per_class_table
        table.clear()
        per_run = [{row["class"]: row for row in m.get("per_class", [])} for m in metrics]
        classes = list(dict.fromkeys(name for run in per_run for name in run))
        table.setColumnCount(len(titles) + 1)
        table.setHorizontalHeaderLabels([*titles, "difference (last − first)"])
        table.setRowCount(len(classes))
        table.setVerticalHeaderLabels(classes)
        for r, name in enumerate(classes):
            values = [run.get(name, {}).get("recall") for run in per_run]
            for c, value in enumerate(values):
                table.setItem(r, c, QTableWidgetItem("—" if value is None else f"{value:.3f}"))
            if values[0] is not None and values[-1] is not None:
                diff = values[-1] - values[0]
                item = QTableWidgetItem(f"{diff:+.3f}")
                if abs(diff) >= 0.005:
                    item.setBackground(BETTER if diff > 0 else WORSE)
                table.setItem(r, len(values), item)

    def _fill_config(self, titles: list[str], diff: dict[str, list[Any]]) -> None:
        table = self.config_table
        table.clear()
        table.setColumnCount(len(titles))
        table.setHorizontalHeaderLabels(titles)
        table.setRowCount(max(1, len(diff)))
        if not diff:
            table.setVerticalHeaderLabels(["(none)"])
            table.setItem(0, 0, QTableWidgetItem("The configs are identical."))
            return
        table.setVerticalHeaderLabels(list(diff))
        for r, values in enumerate(diff.values()):
            first = json.dumps(values[0])
            for c, value in enumerate(values):
                item = QTableWidgetItem("—" if value is None else str(value))
                item.setBackground(HIGHLIGHT if json.dumps(value) != first or c == 0 else QColor("white"))
                table.setItem(r, c, item)

    # ---- export ----

    def _on_export(self) -> None:
        ids = self.selected_ids()
        if len(ids) != 1:
            return
        run_id, fmt = ids[0], str(self.export_combo.currentData())
        self.export_button.setEnabled(False)
        self.message.emit(f"Exporting run {run_id} as {self.export_combo.currentText()}…", "info")

        def work(_report: Any, _stop: Any) -> Any:
            from transferlab.core.deploy.export import export_run

            with KERAS_LOCK:
                return export_run(run_id, fmt, self.store)

        task = Task(work, "export", owner=self)
        task.returned.connect(self._on_exported)
        task.errored.connect(lambda error: self.message.emit(f"Export failed: {error}", "error"))
        task.finished.connect(self._update_buttons)
        task.finished.connect(lambda: self._tasks.remove(task) if task in self._tasks else None)
        self._tasks.append(task)
        task.start()

    def _on_exported(self, path: Any) -> None:
        self.message.emit(f"Exported to {path}", "success")
        self.exported.emit(str(path))
