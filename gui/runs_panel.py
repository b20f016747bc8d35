"""The Runs panel: every stored run (it survives restarts); select two or more to compare curves, metrics,
per-class scores and configs (differences highlighted); export, delete, open a run's results.

Damaged runs are listed with the reason (they cannot be opened, compared or exported, only deleted). Delete asks
first, moves the runs to the store's trash and offers Undo; "Empty trash" removes them for good (it asks too)."""

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
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.catalog import EXPORT_FORMAT_TITLES
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.plots import CompareCurves
from transferlab.gui.worker import TaskGroup, describe_error

logger = logging.getLogger(__name__)

HIGHLIGHT = QColor("#fff1b8")
BETTER, WORSE = QColor("#d9f2dc"), QColor("#f8dcdc")


class RunsPanel(QWidget):
    showResults = Signal(str)
    classifyWith = Signal(str)
    message = Signal(str, str)
    compared = Signal(list)  # run ids now compared
    exported = Signal(str)  # path
    changed = Signal()  # runs were deleted or restored

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.runs: list[Any] = []
        self.comparison: dict[str, Any] = {}
        self.tasks = TaskGroup(self)
        self._undo_names: list[str] = []  # the runs the last Delete moved to the trash
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
        for key, label in EXPORT_FORMAT_TITLES.items():
            self.export_combo.addItem(label, key)
        self.export_button = QPushButton("Export")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Move the selected runs to the trash (asks first; can be undone)")
        self.empty_trash_button = QPushButton("Empty trash")
        self.empty_trash_button.setToolTip("Remove the deleted runs for good")
        self.empty_trash_button.clicked.connect(self._on_empty_trash)
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
        buttons.addWidget(self.empty_trash_button)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self._build_undo_bar())
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

    def _build_undo_bar(self) -> QFrame:
        self.undo_bar = QFrame()
        self.undo_bar.setStyleSheet("QFrame{background:#fff4d6;border-radius:4px;}")
        self.undo_label = QLabel()
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo_delete)
        layout = QHBoxLayout(self.undo_bar)
        layout.setContentsMargins(8, 2, 2, 2)
        layout.addWidget(self.undo_label, 1)
        layout.addWidget(self.undo_button)
        self.undo_bar.hide()
        return self.undo_bar

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
            values = [run.title(), run.run_id, run.status + (f" ({run.reason})" if run.reason else ""),
                      (f"{100 * accuracy:.2f} %" if isinstance(accuracy, float) else "—")
                      + (f" (cv {cv_text_of(run.metrics)})" if cv_text_of(run.metrics) else ""), str(run.epochs_done),
                      _when(run.created)]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, run.run_id)
                if c == 2 and run.status not in ("finished",):
                    item.setForeground(QColor("#a60" if run.status == "stopped" else "#a00"))
                if run.damaged:
                    item.setToolTip(f"This run is damaged: {run.reason}. It can only be deleted.")
                self.table.setItem(r, c, item)
        self.select(list(selected))
        self.table.blockSignals(False)
        self._on_selection()
        self._update_trash_button()

    def _update_trash_button(self) -> None:
        try:
            count = len(self.store.trashed())
        except Exception:
            logger.exception("listing the trash")
            count = 0
        self.empty_trash_button.setText(f"Empty trash ({count})" if count else "Empty trash")
        self.empty_trash_button.setEnabled(count > 0)

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
        self.results_button.setEnabled(bool(one and run is not None and not run.damaged))
        has_model = bool(one and run is not None and run.has_model)
        # several runs with models: their answers side by side in Classify (the first one is the chosen run)
        self.classify_button.setEnabled(bool(ids) and all(r.has_model for r in self.runs if r.run_id in ids))
        self.classify_button.setText("Classify with these runs" if len(ids) > 1 else "Classify with this run")
        self.export_button.setEnabled(has_model)
        self.delete_button.setEnabled(bool(ids))

    def _on_selection(self) -> None:
        self._update_buttons()
        damaged = {run.run_id for run in self.runs if run.damaged}
        ids = [run_id for run_id in self.selected_ids() if run_id not in damaged]
        left_out = len(self.selected_ids()) - len(ids)
        if len(ids) >= 2:
            self.compare(ids)
            if left_out:
                self.compare_hint.setText(f"{self.compare_hint.text()} {left_out} damaged run(s) left out.")
        else:
            self.compare_hint.setText("Select two or more runs (Ctrl/Shift-click) to compare them."
                                      + (" Damaged runs cannot be compared." if left_out else ""))

    def _on_results(self) -> None:
        ids = self.selected_ids()
        run = next((r for r in self.runs if ids and r.run_id == ids[0]), None)
        if run is not None and run.damaged:
            self.message.emit(f"Run {run.run_id} is damaged: {run.reason}", "error")
        elif ids:
            self.showResults.emit(ids[0])

    def _on_classify(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.classifyWith.emit(ids[0])

    def _on_delete(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        titles = {run.run_id: run.title() for run in self.runs}
        listed = "\n".join(f"• {titles.get(run_id, run_id)}  [{run_id}]" for run_id in ids[:10])
        more = f"\n… and {len(ids) - 10} more" if len(ids) > 10 else ""
        what = "this run" if len(ids) == 1 else f"these {len(ids)} runs"
        answer = QMessageBox.question(
            self, "Delete runs", f"Delete {what}?\n\n{listed}{more}\n\nThey are moved to the trash: you can undo "
            "this until the trash is emptied.", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            names = self.store.delete_runs(ids)  # all checked first: a run still training deletes nothing
        except Exception as exc:
            logger.exception("deleting %s", ids)
            self.message.emit(f"Nothing was deleted: {exc}", "error")
            return
        self._undo_names = names
        self.undo_label.setText(f"Deleted {len(names)} run{'s' if len(names) != 1 else ''} (moved to the trash).")
        self.undo_bar.show()
        self.refresh()
        self.changed.emit()

    def undo_delete(self) -> None:
        """Bring back the runs the last Delete moved to the trash."""
        restored, errors = [], []
        for name in self._undo_names:
            try:
                restored.append(self.store.restore(name))
            except Exception as exc:
                logger.exception("restoring %s", name)
                errors.append(str(exc))
        self._undo_names = []
        self.undo_bar.hide()
        self.refresh()
        self.select(restored)
        if errors:
            self.message.emit(f"Could not restore every run: {errors[0]}", "error")
        else:
            self.message.emit(f"Restored {len(restored)} run{'s' if len(restored) != 1 else ''}.", "success")
        self.changed.emit()

    def _on_empty_trash(self) -> None:
        try:
            count = len(self.store.trashed())
        except Exception as exc:
            logger.exception("listing the trash")
            self.message.emit(f"Could not read the trash: {exc}", "error")
            return
        if not count:
            return
        answer = QMessageBox.question(
            self, "Empty trash", f"Remove the {count} deleted run{'s' if count != 1 else ''} in the trash for "
            "good?\n\nThis cannot be undone.", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            removed = self.store.empty_trash()
        except Exception as exc:
            logger.exception("emptying the trash")
            self.message.emit(f"Could not empty the trash: {exc}", "error")
        else:
            self.message.emit(f"Removed {removed} run{'s' if removed != 1 else ''} for good.", "success")
        self._undo_names = []
        self.undo_bar.hide()
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

        store = self.store

        def work(_report: Any, _stop: Any) -> Any:
            from transferlab.core.deploy.export import export_run

            return export_run(run_id, fmt, store)  # loads the model under the engine's build lock

        self.tasks.start("export", work, returned=self._on_exported, errored=self._on_export_error,
                         finished=self._update_buttons, supersede=False)

    def _on_export_error(self, error: BaseException) -> None:
        self.message.emit(f"Export failed: {describe_error(error)}", "error")

    def _on_exported(self, path: Any) -> None:
        self.message.emit(f"Exported to {path}", "success")
        self.exported.emit(str(path))


def _when(seconds: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "—"
