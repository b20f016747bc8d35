"""The Runs panel: every stored run (it survives restarts); select two or more to compare curves, metrics,
per-class scores and configs (differences highlighted); export, delete, open a run's results.

Damaged runs are listed with the reason (they cannot be opened, compared or exported, only deleted). Delete asks
first, moves the runs to the store's trash and offers Undo; "Empty trash" removes them for good (it asks too)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.catalog import EXPORT_FORMATS
from transferlab.core.deploy.export_trust import EXTRA_FOLDER, LABELS_NAME
from transferlab.core.kinds import KINDS
from transferlab.core.runs.store import MAX_LABEL_CHARS
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.plots import ZOOM_EPOCHS, CompareCurves
from transferlab.gui.worker import TaskGroup, describe_error

logger = logging.getLogger(__name__)

EXPORT_FILTERS = {  # the save dialog's "file type" picks the format
    "keras": ("Keras model (*.keras)", ".keras"), "tflite": ("TensorFlow Lite model (*.tflite)", ".tflite"),
    "tflite-fp16": ("TensorFlow Lite, float16 weights (*.tflite)", ".tflite"),
    "tflite-int8": ("TensorFlow Lite, int8 quantized (*.tflite)", ".tflite"),
    "savedmodel": ("TF SavedModel folder (*)", ""),
}
EXPORT_FORMAT_KEY = "export/last_format"
EXPORT_FOLDER_KEY = "export/last_folder"
COLUMNS = ("Run", "Id", "Status", "Accuracy", "Epochs", "Created", "Compared as")
STATUS_COLUMN, ACCURACY_COLUMN, CREATED_COLUMN, PAIR_COLUMN = 2, 3, 5, 6
STATUS_WIDTH = 200
assert set(EXPORT_FILTERS) == set(EXPORT_FORMATS), "a save-dialog file type for every export format"
HIGHLIGHT = QColor("#fff1b8")
BETTER, WORSE = QColor("#d9f2dc"), QColor("#f8dcdc")


class RunsPanel(QWidget):
    showResults = Signal(str)
    classifyWith = Signal(str)
    message = Signal(str, str)
    compared = Signal(list)  # run ids now compared
    exported = Signal(str)  # path
    exportMessage = Signal(str, str)  # text, the folder to show ("Show in folder")
    changed = Signal()  # runs were deleted or restored
    listed = Signal()  # the list was read again (Classify lists the runs with a model)
    runChosen = Signal(str)  # the user selected exactly one run (Classify follows it)
    startFrom = Signal(str, str, str)  # data folder, reuse the split of this run, fine-tune from this run

    def __init__(self, store: Any, parent: QWidget | None = None, settings: Any = None) -> None:
        super().__init__(parent)
        self.store = store
        self.settings = settings
        self.runs: list[Any] = []
        self.comparison: dict[str, Any] = {}
        self.tasks = TaskGroup(self)
        self._undo_names: list[str] = []  # the runs the last Delete moved to the trash
        self._refreshing = False
        self._exporting = False
        self._build()

    def _build(self) -> None:
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(STATUS_COLUMN, QHeaderView.ResizeMode.Interactive)  # a long reason is elided
        header.resizeSection(STATUS_COLUMN, STATUS_WIDTH)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(CREATED_COLUMN, Qt.SortOrder.DescendingOrder)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemDoubleClicked.connect(lambda *_: self._on_results())

        self.refresh_button = QPushButton("Refresh")
        self.results_button = QPushButton("Show results")
        self.classify_button = QPushButton("Classify with this run")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the selected run's model where you choose, with labels.txt beside it")
        self.label_button = QPushButton("Rename / notes…")
        self.label_button.setToolTip("Give the selected run your own name and notes (F2)")
        self.label_button.setShortcut(QKeySequence(Qt.Key.Key_F2))
        self.label_button.clicked.connect(self.edit_label)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Move the selected runs to the trash (asks first; can be undone)")
        self.empty_trash_button = QPushButton("Empty trash")
        self.empty_trash_button.setToolTip("Remove the deleted runs for good")
        self.empty_trash_button.clicked.connect(self._on_empty_trash)
        self.refresh_button.clicked.connect(self.refresh)
        self.results_button.clicked.connect(self._on_results)
        self.classify_button.clicked.connect(self._on_classify)
        self.export_button.clicked.connect(self.export_selected)
        self.delete_button.clicked.connect(self._on_delete)
        buttons = QHBoxLayout()
        for widget in (self.refresh_button, self.results_button, self.classify_button, self.label_button):
            buttons.addWidget(widget)
        self.from_button = QToolButton()
        self.from_button.setText("Train from this run")
        self.from_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        from_menu = QMenu(self.from_button)
        self.finetune_from_action = from_menu.addAction("Fine-tune starting from this frozen run",
                                                        self.finetune_from_selected)
        self.reuse_split_action = from_menu.addAction("Reuse this run's split (same train/validation/test images)",
                                                      self.reuse_split_of_selected)
        self.from_button.setMenu(from_menu)
        self.from_button.setToolTip("Set up the next folder run in Model: the same split, or fine-tuning on top "
                                    "of this frozen run")
        buttons.addWidget(self.from_button)
        buttons.addStretch(1)
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
        self.zoom_check = QCheckBox(f"Last {ZOOM_EPOCHS} epochs")
        self.zoom_check.setToolTip("Zoom the curves to the last epochs, both axes scaled to them")
        self.zoom_check.toggled.connect(self.curves.set_zoom_last)
        self.compare_tabs.setCornerWidget(self.zoom_check)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.compare_hint)
        bottom_layout.addWidget(self.compare_tabs, 1)
        self.legend = QLabel(f"<span style='background:{BETTER.name()}'>&nbsp;green&nbsp;</span> better value"
                             f" (or an improvement) · <span style='background:{WORSE.name()}'>&nbsp;red&nbsp;</span>"
                             f" worse · <span style='background:{HIGHLIGHT.name()}'>&nbsp;yellow&nbsp;</span> a "
                             "setting that differs between the runs. Click a column header to sort.")
        self.legend.setStyleSheet("color:#555;")
        bottom_layout.addWidget(self.legend)

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
        self.table.setSortingEnabled(False)  # rows are filled in list order, then sorted by the chosen column
        self.table.setRowCount(len(self.runs))
        best = best_runs(self.runs)
        pairs = comparison_pairs(self.runs)
        for r, run in enumerate(self.runs):
            for c, (text, key) in enumerate(_row_values(run, run.run_id in best, pairs.get(run.run_id))):
                item = SortItem(text, key)
                item.setData(Qt.ItemDataRole.UserRole, run.run_id)
                item.setToolTip(_tooltip(run, c, run.run_id in best, pairs.get(run.run_id)))
                if c == STATUS_COLUMN and run.status not in ("finished",):
                    item.setForeground(QColor("#a60" if run.status == "stopped" else "#a00"))
                if run.run_id in best and c == ACCURACY_COLUMN:
                    item.setForeground(QColor("#0a6a1f"))
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.select(list(selected))
        self.table.blockSignals(False)
        self._refreshing = True
        try:
            self._on_selection()
        finally:
            self._refreshing = False
        self._update_trash_button()
        self.listed.emit()

    def _update_trash_button(self) -> None:
        try:
            count = len(self.store.trashed())
        except Exception:
            logger.exception("listing the trash")
            count = 0
        self.empty_trash_button.setText(f"Empty trash ({count})" if count else "Empty trash")
        self.empty_trash_button.setEnabled(count > 0)

    def row_id(self, row: int) -> str:
        item = self.table.item(row, 0)
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""

    def selected_ids(self) -> list[str]:
        """The selected runs, top to bottom as shown (the table may be sorted by any column)."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        known = {run.run_id for run in self.runs}
        return [run_id for run_id in (self.row_id(r) for r in rows) if run_id in known]

    def select(self, run_ids: list[str]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for r in range(self.table.rowCount()):
            if self.row_id(r) in run_ids:
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
        self.export_button.setEnabled(has_model and not self._exporting)
        self.label_button.setEnabled(bool(one and run is not None and not run.damaged))
        folder_run = run if one and run is not None and not run.damaged and _uses_folder(run) else None
        self.reuse_split_action.setEnabled(folder_run is not None and (folder_run.path / "split.json").is_file())
        self.finetune_from_action.setEnabled(folder_run is not None and has_model
                                             and folder_run.config.get("mode") == "frozen")
        self.from_button.setEnabled(self.reuse_split_action.isEnabled() or self.finetune_from_action.isEnabled())
        self.delete_button.setEnabled(bool(ids))

    def _on_selection(self) -> None:
        self._update_buttons()
        damaged = {run.run_id for run in self.runs if run.damaged}
        ids = [run_id for run_id in self.selected_ids() if run_id not in damaged]
        left_out = len(self.selected_ids()) - len(ids)
        if len(ids) == 1 and not self._refreshing:
            self.runChosen.emit(ids[0])
        if len(ids) >= 2:
            self.compare(ids)
            if left_out:
                self.compare_hint.setText(f"{self.compare_hint.text()} {left_out} damaged run(s) left out.")
        else:
            self.clear_comparison()
            self.compare_hint.setText("Select two or more runs (Ctrl/Shift-click) to compare them: their curves, "
                                      "metrics, per-class recall and settings appear here."
                                      + (" Damaged runs cannot be compared." if left_out else ""))

    def clear_comparison(self) -> None:
        """Fewer than two runs selected: nothing stale stays on screen."""
        self.comparison = {}
        self.curves.set_runs([], [])
        for table in (self.metrics_table, self.per_class_table, self.config_table):
            table.clear()
            table.clearSpans()
            table.setRowCount(0)
            table.setColumnCount(0)

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

    def _selected_run(self) -> Any:
        ids = self.selected_ids()
        return next((r for r in self.runs if len(ids) == 1 and r.run_id == ids[0]), None)

    def finetune_from_selected(self) -> None:
        """The next run fine-tunes starting from the selected frozen run, on its split."""
        run = self._selected_run()
        if run is not None:
            self.startFrom.emit(str(run.config.get("data_dir", "")), run.run_id, run.run_id)

    def reuse_split_of_selected(self) -> None:
        run = self._selected_run()
        if run is not None:
            self.startFrom.emit(str(run.config.get("data_dir", "")), run.run_id, "")

    def edit_label(self) -> None:
        """Rename / notes…: the user's own name and notes for the selected run."""
        ids = self.selected_ids()
        run = next((r for r in self.runs if ids and r.run_id == ids[0]), None)
        if run is None or run.damaged:
            return
        dialog = RunLabelDialog(run, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.set_label(run.run_id, dialog.name(), dialog.notes())

    def set_label(self, run_id: str, name: str, notes: str = "") -> bool:
        try:
            self.store.set_label(run_id, name, notes)
        except Exception as exc:
            logger.exception("labelling %s", run_id)
            self.message.emit(f"Could not rename run {run_id}: {exc}", "error")
            return False
        self.refresh()
        self.select([run_id])
        self.changed.emit()
        return True

    def _on_delete(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        titles = {run.run_id: run.title() for run in self.runs}
        listed = "\n".join(f"• {titles.get(run_id, run_id)}  [{run_id}]" for run_id in ids[:10])
        more = f"\n… and {len(ids) - 10} more" if len(ids) > 10 else ""
        what = "this run" if len(ids) == 1 else f"these {len(ids)} runs"
        if not self._confirmed("Delete runs", f"Delete {what}?\n\n{listed}{more}\n\nThey are moved to the trash: "
                               "you can undo this until the trash is emptied."):
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
        if not self._confirmed("Empty trash", f"Remove the {count} deleted run{'s' if count != 1 else ''} in the "
                               "trash for good?\n\nThis cannot be undone."):
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
        self._fill_per_class(titles, [runs.get(r) for r in data["runs"]])
        self._fill_config(titles, data["config_diff"])
        self.compared.emit(list(data["runs"]))

    def _fill_metrics(self, titles: list[str], data: dict[str, Any]) -> None:
        shown = _distinct_metrics({k: v for k, v in data["metrics"].items() if k not in ("samples",)})
        lower_is_better = {k for k in shown if "loss" in k}
        table = self.metrics_table
        table.clear()
        table.setColumnCount(len(titles))
        table.setHorizontalHeaderLabels(titles)
        rows = [*shown.items(), ("status", data["status"])]
        table.setRowCount(len(rows))
        table.setVerticalHeaderLabels([_metric_name(k) for k, _ in rows])
        for r, (key, values) in enumerate(rows):
            numbers = [v for v in values if isinstance(v, int | float)]
            best = (min(numbers) if key in lower_is_better else max(numbers)) if len(set(numbers)) > 1 else None
            for c, value in enumerate(values):
                text = f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value)
                item = QTableWidgetItem(text)
                if best is not None and value == best:
                    item.setBackground(BETTER)
                table.setItem(r, c, item)

    def _fill_per_class(self, titles: list[str], runs: list[Any]) -> None:
        """One row per class: the class, each run's recall and the difference; sortable by any column."""
        table = self.per_class_table
        table.setSortingEnabled(False)
        table.clear()
        per_run = [{row["class"]: row for row in (run.metrics if run else {}).get("per_class", [])} for run in runs]
        classes = list(dict.fromkeys(name for run in per_run for name in run))
        first, second, name = difference_pair(runs)
        table.setColumnCount(len(titles) + 2)
        table.setHorizontalHeaderLabels(["class", *titles, f"recall {name}"])
        header = table.horizontalHeaderItem(len(titles) + 1)
        if header is not None:
            header.setToolTip(f"Recall of {titles[second]} minus recall of {titles[first]}: green where it is higher "
                              "(better).")
        table.setRowCount(len(classes))
        table.verticalHeader().setVisible(False)
        for r, class_name in enumerate(classes):
            table.setItem(r, 0, SortItem(class_name, class_name.lower()))
            values = [run.get(class_name, {}).get("recall") for run in per_run]
            for c, value in enumerate(values, 1):
                table.setItem(r, c, SortItem("—" if value is None else f"{value:.3f}",
                                             -1.0 if value is None else value))
            if values[first] is not None and values[second] is not None:
                diff = values[second] - values[first]
                item = SortItem(f"{diff:+.3f}", diff)
                if abs(diff) >= 0.005:
                    item.setBackground(BETTER if diff > 0 else WORSE)  # higher recall is an improvement
                table.setItem(r, len(values) + 1, item)
        table.setSortingEnabled(True)
        table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # the class order first

    def _fill_config(self, titles: list[str], diff: dict[str, list[Any]]) -> None:
        table = self.config_table
        table.clear()
        table.clearSpans()
        table.setColumnCount(len(titles))
        table.setHorizontalHeaderLabels(titles)
        table.setRowCount(max(1, len(diff)))
        if not diff:
            table.setVerticalHeaderLabels([""])
            table.setSpan(0, 0, 1, len(titles))
            table.setItem(0, 0, QTableWidgetItem("The runs were trained with identical settings."))
            return
        table.setVerticalHeaderLabels(list(diff))
        for r, values in enumerate(diff.values()):
            first = json.dumps(values[0])
            for c, value in enumerate(values):
                item = QTableWidgetItem("—" if value is None else str(value))
                item.setBackground(HIGHLIGHT if json.dumps(value) != first or c == 0 else QColor("white"))
                table.setItem(r, c, item)

    def _confirmed(self, title: str, text: str) -> bool:
        """Ask Yes/No (No is the default); True for Yes."""
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # ---- export ----

    def export_selected(self) -> None:
        """Export…: a standard save dialog (it remembers the last folder), then the export on a Task, labels.txt
        beside it and a "Show in folder" button in the message."""
        ids = self.selected_ids()
        run = next((r for r in self.runs if len(ids) == 1 and r.run_id == ids[0]), None)
        if run is None or not run.has_model:
            self.message.emit("Select one run with a trained model in the list to export it.", "warning")
            return
        target, fmt = self._ask_export_path(run)
        if not target:
            return
        if fmt == "savedmodel" and Path(target).exists():
            self.message.emit(f"{target} already exists: choose a new name for the SavedModel folder (an existing "
                              "folder is never replaced).", "warning")
            return
        self._remember_export_folder(str(Path(target).parent))
        self._start_export(run.run_id, fmt, target)

    def _ask_export_path(self, run: Any) -> tuple[str, str]:
        """The path and the format (from the dialog's file type, else the file's suffix); ("", "") if cancelled."""
        last = str(self.settings.value(EXPORT_FORMAT_KEY, "keras") if self.settings is not None else "keras")
        last = last if last in EXPORT_FILTERS else "keras"
        stem = _file_stem(run.label or run.name or run.run_id)
        suggested = Path(self._export_folder()) / f"{stem}{EXPORT_FILTERS[last][1]}"
        path, chosen = QFileDialog.getSaveFileName(self, f"Export the model of run {run.run_id}", str(suggested),
                                                   ";;".join(f for f, _ in EXPORT_FILTERS.values()),
                                                   EXPORT_FILTERS[last][0])
        if not path:
            return "", ""
        fmt = export_format(path, chosen)
        suffix = EXPORT_FILTERS[fmt][1]
        if suffix and not path.endswith(suffix):
            path += suffix
        if self.settings is not None:
            self.settings.set_value(EXPORT_FORMAT_KEY, fmt)
        return path, fmt

    def _export_folder(self) -> str:
        folder = str(self.settings.value(EXPORT_FOLDER_KEY, "") or "") if self.settings is not None else ""
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def _remember_export_folder(self, folder: str) -> None:
        if self.settings is not None:
            self.settings.set_value(EXPORT_FOLDER_KEY, folder)

    def _start_export(self, run_id: str, fmt: str, target: str) -> None:
        self._exporting = True
        self._update_buttons()
        self.message.emit(f"Exporting run {run_id} as {EXPORT_FILTERS[fmt][0].split(' (')[0]} to {target}…", "info")
        store = self.store
        replace = fmt != "savedmodel" and Path(target).is_file()  # the save dialog asked before replacing

        def work(_report: Any, _stop: Any) -> Any:
            from transferlab.core.deploy.export import export_run

            return export_run(run_id, fmt, store, out=target, force=replace)  # under the engine's build lock

        self.tasks.start("export", work, returned=self._on_exported, errored=self._on_export_error,
                         finished=self._on_export_finished, supersede=False)

    def _on_export_error(self, error: BaseException) -> None:
        self.message.emit(f"Export failed: {describe_error(error)}", "error")

    def _on_export_finished(self) -> None:
        self._exporting = False
        self._update_buttons()

    def _on_exported(self, path: Path) -> None:
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        labels = folder / EXTRA_FOLDER / LABELS_NAME if path.is_dir() else folder / f"{path.stem}.{LABELS_NAME}"
        extra = f" (class names in {labels.relative_to(folder)})" if labels.is_file() else ""
        self.last_export = str(path)
        self.exportMessage.emit(f"Exported to {path}{extra}.", str(folder))
        self.exported.emit(str(path))


class RunLabelDialog(QDialog):
    """Your own name and notes for a run (stored with it in label.json)."""

    def __init__(self, run: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Rename run {run.run_id}")
        self.name_edit = QLineEdit(run.label or run.name)
        self.name_edit.setMaxLength(MAX_LABEL_CHARS)
        self.name_edit.setPlaceholderText(run.title())
        self.notes_edit = QPlainTextEdit(run.notes)
        self.notes_edit.setPlaceholderText("What you tried, what you noticed…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name_edit)
        form.addRow("Notes", self.notes_edit)
        form.addRow(buttons)
        self.resize(460, 260)

    def name(self) -> str:
        return self.name_edit.text().strip()

    def notes(self) -> str:
        return self.notes_edit.toPlainText().strip()


class SortItem(QTableWidgetItem):
    """A cell that sorts by a key (numbers as numbers, times as times), not by its text."""

    def __init__(self, text: str, key: Any) -> None:
        super().__init__(text)
        self.key = key

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, SortItem):
            try:
                return bool(self.key < other.key)
            except TypeError:
                return str(self.key) < str(other.key)
        return super().__lt__(other)


def _uses_folder(run: Any) -> bool:
    kind = KINDS.get(run.kind)
    return kind is not None and kind.uses_folder


def _data_set(run: Any) -> str:
    return str(run.config.get("data_dir", "")) if _uses_folder(run) else str(run.kind)


def best_runs(runs: list[Any]) -> set[str]:
    """Per data set with two or more finished runs: the runs with the highest accuracy (none when all tie)."""
    groups: dict[str, list[Any]] = {}
    for run in runs:
        if run.status == "finished" and isinstance(run.metrics.get("accuracy"), float):
            groups.setdefault(_data_set(run), []).append(run)
    best: set[str] = set()
    for group in groups.values():
        top = max(run.metrics["accuracy"] for run in group)
        if len(group) > 1 and any(run.metrics["accuracy"] < top for run in group):  # ties share the star
            best |= {run.run_id for run in group if run.metrics["accuracy"] == top}
    return best


def comparison_pairs(runs: list[Any]) -> dict[str, tuple[int, str, str]]:
    """The frozen and fine-tuned runs trained together (the fine-tuned one starts from the frozen one):
    run id → (pair number, "frozen" | "fine-tuned", the other run's id). Pairs are numbered oldest first."""
    ids = {run.run_id: run for run in runs}
    pairs = sorted(((ids[run.config.get("init_from_run")], run) for run in runs
                    if run.config.get("mode") == "finetune" and run.config.get("init_from_run") in ids),
                   key=lambda pair: pair[0].created)
    found: dict[str, tuple[int, str, str]] = {}
    for number, (frozen, tuned) in enumerate(pairs, 1):
        found[frozen.run_id] = (number, "frozen", tuned.run_id)
        found[tuned.run_id] = (number, "fine-tuned", frozen.run_id)
    return found


def difference_pair(runs: list[Any]) -> tuple[int, int, str]:
    """Which two compared runs a difference column subtracts, and its name: "fine-tuned − frozen" for a frozen
    and a fine-tuned run, else the newest minus the oldest run, named "B − A" by their titles."""
    modes = [run.config.get("mode") if run else None for run in runs]
    if len(runs) == 2 and sorted(map(str, modes)) == ["finetune", "frozen"]:
        tuned = modes.index("finetune")
        return 1 - tuned, tuned, "fine-tuned − frozen"
    order = sorted(range(len(runs)), key=lambda i: runs[i].created if runs[i] else 0.0)
    first, last = order[0], order[-1]
    names = [_short_title(runs[i]) for i in (last, first)]
    return first, last, f"{names[0]} − {names[1]}"


def _short_title(run: Any) -> str:
    if run is None:
        return "?"
    text = run.label or run.title()
    return text if len(text) <= 24 else text[:23] + "…"


def _row_values(run: Any, best: bool, pair: tuple[int, str, str] | None) -> list[tuple[str, Any]]:
    accuracy = run.metrics.get("accuracy")
    shown = f"{100 * accuracy:.2f} %" if isinstance(accuracy, float) else "—"
    shown += f" (cv {cv_text_of(run.metrics)})" if cv_text_of(run.metrics) else ""
    return [(run.title() + ("  ✎" if run.notes else ""), run.title().lower()),
            (run.run_id, run.run_id),
            (run.status + (f" ({run.reason})" if run.reason else ""), (run.status, run.reason)),
            (("★ " if best else "") + shown, accuracy if isinstance(accuracy, float) else -1.0),
            (str(run.epochs_done), run.epochs_done),
            (_when(run.created), run.created),
            (f"pair {pair[0]} · {pair[1]}" if pair else "", (pair[0], pair[1]) if pair else (0, ""))]


def _tooltip(run: Any, column: int, best: bool, pair: tuple[int, str, str] | None) -> str:
    if run.damaged:
        return f"This run is damaged: {run.reason}. It can only be deleted."
    if column == 0 and run.notes:
        return f"{run.title()}\n\n{run.notes}"
    if column == STATUS_COLUMN and run.reason:
        return f"{run.status}: {run.reason}"
    if column == ACCURACY_COLUMN and best:
        return "The best accuracy among the finished runs on this data set."
    if column == PAIR_COLUMN and pair:
        return f"Trained with run {pair[2]} as a frozen vs fine-tuned comparison on the same split."
    return ""


def _distinct_metrics(metrics: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Leave out a metric that repeats another one under a longer name (test_accuracy = accuracy)."""
    kept: dict[str, list[Any]] = {}
    for key, values in metrics.items():
        if any(key.endswith("_" + other) and values == seen for other, seen in kept.items()):
            continue
        kept = {k: v for k, v in kept.items() if not (k.endswith("_" + key) and v == values)}
        kept[key] = values
    return dict(sorted(kept.items()))


def _metric_name(key: str) -> str:
    """snake_case metric keys as words: val_accuracy → validation accuracy."""
    words = key.replace("val_", "validation_").split("_")
    return " ".join(words)


def export_format(path: str, chosen_filter: str) -> str:
    """The export format the user picked: the save dialog's file type, else the file's suffix (Keras)."""
    for fmt, (pattern, _suffix) in EXPORT_FILTERS.items():
        if chosen_filter == pattern:
            return fmt
    return "tflite" if path.endswith(".tflite") else "keras"


def _file_stem(text: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.")
    return safe[:80] or "model"


def _when(seconds: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "—"
