"""The "Check data" panel: the data doctor (transferlab.core.analysis.doctor) on the chosen folder — likely
mislabelled images with the class the model suggests, near-duplicates (within a class, across classes, across a
run's split), class balance, unreadable files, and a learning curve with its reading — plus safe fixes on disk:
move a suspect to the suggested class, exclude it (into _excluded/, never deleted), undo. The check runs on a
Task; a second check after a fix reuses the cached embeddings (seconds), and "Retrain" asks the main window for
a frozen run, which reuses the same cached features. Fixes on disk are small and run on the GUI thread
(transferlab.core.data.fixes: journaled, undoable, never outside the folder, never over a changed file)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
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

from transferlab.core.data import fixes
from transferlab.core.errors import TransferlabError
from transferlab.core.events import PhaseProgress
from transferlab.core.kinds import KINDS, kind_named
from transferlab.core.stopping import StopFlag
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.widgets import html_text, scaled_pixmap, thumbnail
from transferlab.gui.worker import Report, Task, TaskFn, TaskGroup, describe_error

logger = logging.getLogger(__name__)

KIND_TITLES = {"within_class": "same class", "across_classes": "label conflict", "across_splits": "leakage"}
PREVIEW_SIZE = 160
DEFAULT_BACKBONE = "efficientnet-lite0"
CHECK_TASK = "data-check"


def doctor_fn(folder: str, backbone: str, split_run: str | None = None, store: Any = None) -> TaskFn:
    """Worker: the data check (transferlab.core.analysis.doctor.check_folder), progress as PhaseProgress; with
    `split_run`, near-duplicates across that run's train/val/test parts are reported as leakage."""

    def check(report: Report, stop: StopFlag) -> dict[str, Any]:
        from transferlab.core.analysis.doctor import check_folder
        from transferlab.core.runs.lineage import load_run_split

        split = load_run_split(store, split_run) if split_run else None
        return check_folder(folder, backbone, split=split, stop=stop,
                            progress=lambda phase, done, total: report(PhaseProgress(phase, done, total)))

    return check


TAB_TITLES = ("Likely mislabelled", "Near-duplicates", "Do I need more images?", "Unreadable files")


class DoctorPanel(QWidget):
    message = Signal(str, str)  # text, level
    checked = Signal(object)  # the report dict, once shown
    retrainRequested = Signal()  # a frozen run on the (fixed) folder; features come from the check's cache

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.folder = ""
        self.backbone = DEFAULT_BACKBONE
        self.report: dict[str, Any] | None = None
        self.tasks = TaskGroup(self)
        self.checking = False  # from the click until the report (or the error) is shown
        self._build()
        self._update_buttons()

    # ---- layout ----

    def _build(self) -> None:
        self.check_button = QPushButton("Check data")
        self.check_button.setToolTip("Find likely mislabelled images, near-duplicates, class balance problems "
                                     "and whether more images would help")
        self.check_button.clicked.connect(self.start_check)
        self.split_combo = QComboBox()
        self.split_combo.setToolTip("Also look for near-duplicates across the train/validation/test parts of "
                                    "this run's split (leakage)")
        self.status_label = QLabel("Choose a folder in Data, then check it.")
        self.status_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.check_button)
        top.addWidget(QLabel("Split of run:"))
        top.addWidget(self.split_combo, 1)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)

        self.suspects = self._table(["File", "Labelled", "Looks like", "Confidence in its label"])
        self.duplicates = self._table(["Kind", "Similarity", "Files", "Classes"], wide=2)
        self.curve = self._table(["Images per class", "Accuracy", "± spread"], wide=2)
        self.curve_label = QLabel("")
        self.curve_label.setWordWrap(True)
        curve_box = QWidget()
        curve_layout = QVBoxLayout(curve_box)
        curve_layout.addWidget(self.curve_label)
        curve_layout.addWidget(self.curve, 1)
        self.unreadable = self._table(["File", "Reason"])
        self.views = QTabWidget()
        for widget, title in zip((self.suspects, self.duplicates, curve_box, self.unreadable), TAB_TITLES,
                                 strict=True):
            self.views.addTab(widget, title)  # after a check, each title carries its count: "(0)" says none
        self.suspects.itemSelectionChanged.connect(self._on_selection)
        self.duplicates.itemSelectionChanged.connect(self._on_selection)

        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.move_button = QPushButton("Move to the suggested class")
        self.exclude_button = QPushButton("Exclude (to _excluded/)")
        self.undo_button = QPushButton("Undo last change")
        self.retrain_button = QPushButton("Retrain (frozen, cached features)")
        self.move_button.clicked.connect(self.move_selected)
        self.exclude_button.clicked.connect(self.exclude_selected)
        self.undo_button.clicked.connect(self.undo)
        self.retrain_button.clicked.connect(self.retrainRequested)
        side = QVBoxLayout()
        side.addWidget(self.preview)
        for button in (self.move_button, self.exclude_button, self.undo_button, self.retrain_button):
            side.addWidget(button)
        side.addStretch(1)
        side_widget = QWidget()
        side_widget.setLayout(side)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.views)
        splitter.addWidget(side_widget)
        splitter.setStretchFactor(0, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status_label)
        layout.addWidget(self.summary_label)
        layout.addWidget(splitter, 1)

    def _table(self, headers: list[str], wide: int = 0) -> QTableWidget:
        """Column `wide` (the file names) takes the spare width, empty or not; the others fit their contents."""
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().setVisible(False)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(wide, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        return table

    # ---- state ----

    def set_source(self, folder: str, backbone: str = DEFAULT_BACKBONE) -> None:
        """The folder to check ("" when the data is not a folder) and the backbone whose embeddings it uses."""
        new_folder = folder
        backbone = backbone or DEFAULT_BACKBONE
        changed = new_folder != self.folder or backbone != self.backbone
        self.folder, self.backbone = new_folder, backbone
        if changed:
            self.tasks.cancel(CHECK_TASK, "the folder or backbone changed")
            self.checking = False
            self.report = None
            self._clear()
            self.status_label.setText(f"Folder <b>{html_text(self.folder)}</b>: not checked yet." if self.folder
                                      else "The data check works on a folder of class subfolders: choose one in Data.")
        self._update_buttons()

    def set_runs(self, runs: list[Any]) -> None:
        """Runs whose split can be checked for leakage: folder runs of the current folder."""
        current = self.split_combo.currentData()
        self.split_combo.clear()
        self.split_combo.addItem("none", None)
        for run in runs:
            uses_folder = run.kind in KINDS and kind_named(run.kind).uses_folder
            if uses_folder and self.folder and _same_folder(run.config.get("data_dir", ""), self.folder):
                self.split_combo.addItem(f"{run.title()} ({run.run_id})", run.run_id)
        index = self.split_combo.findData(current)
        self.split_combo.setCurrentIndex(max(index, 0))

    def _update_buttons(self) -> None:
        busy = self.checking
        self.check_button.setEnabled(bool(self.folder) and not busy)
        has_report = self.report is not None and not busy
        file = self.selected_file()
        self.move_button.setEnabled(has_report and file is not None and self._suggested(file) is not None)
        self.exclude_button.setEnabled(has_report and file is not None)
        self.undo_button.setEnabled(bool(self.folder) and not busy)
        self.retrain_button.setEnabled(has_report)

    # ---- the check ----

    def start_check(self) -> Task | None:
        if not self.folder or self.checking:
            return None
        self.status_label.setText("Checking… (the first check computes the embeddings; later ones reuse them)")
        self.checking = True
        # The buttons follow the check itself (report or error), not the worker thread's end: a check started
        # by a fix supersedes the previous task, whose late "finished" must not re-enable anything.
        task = self.tasks.start(CHECK_TASK, doctor_fn(self.folder, self.backbone, self.split_combo.currentData(),
                                                      self.store),
                                reported=self._on_event, returned=self._on_report, errored=self._on_error)
        self._update_buttons()
        return task

    def _on_event(self, event: Any) -> None:
        if isinstance(event, PhaseProgress):
            self.status_label.setText(f"Checking: {event.phase}" + (f" {event.done}/{event.total}"
                                                                     if event.total > 1 else "") + "…")

    def _on_error(self, error: BaseException) -> None:
        self.checking = False
        text = describe_error(error)
        self.status_label.setText(f"<span style='color:#a00'>The check failed: {html_text(text)}</span>")
        self.message.emit(f"The data check failed: {text}", "error")
        self._update_buttons()

    def _on_report(self, report: dict[str, Any]) -> None:
        self.checking = False
        self.report = report
        self.show_report(report)
        self.checked.emit(report)

    def show_report(self, report: dict[str, Any]) -> None:
        self._clear()
        classes = ", ".join(f"{row['name']} {row['images']}" for row in report["classes"])
        parts = [f"<b>{report['images']}</b> images in {len(report['classes'])} classes ({html_text(classes)})."]
        if cv_text_of(report):
            parts.append(f"A head on these embeddings: <b>{html_text(cv_text_of(report))}</b>.")
        parts.append(f"<b>{report['suspects_total']}</b> likely mislabelled, <b>{len(report['near_duplicates'])}"
                     f"</b> near-duplicate groups, {len(report['unreadable'])} unreadable files.")
        notes = report["balance"]["notes"] + report["notes"]
        if notes:
            parts.append("<br>" + "<br>".join(f"⚠ {html_text(n)}" for n in notes))
        self.summary_label.setText(" ".join(parts))
        seconds = report["seconds"]["total"]
        cached = report["embeddings"]["cached"]
        self.status_label.setText(f"Checked in {seconds:.1f} s ({cached} of {report['images']} embeddings from "
                                  "the cache).")
        self._fill(self.suspects, [[row["file"], row["label"], row["suggested"], f"{row['self_confidence']:.2f}"]
                                   for row in report["suspects"]])
        self._fill(self.duplicates, [[KIND_TITLES.get(row["kind"], row["kind"]), f"{row['similarity']:.2f}",
                                      " · ".join(row["files"]), " · ".join(row["classes"])]
                                     for row in report["near_duplicates"]])
        self._fill(self.unreadable, [[row["file"], row["reason"]] for row in report["unreadable"]])
        curve = report.get("learning_curve") or {}
        self._fill(self.curve, [[f"{p['images_per_class']:.0f}", f"{100 * p['accuracy_mean']:.1f} %",
                                 f"{100 * p['accuracy_std']:.1f}"] for p in curve.get("points", [])])
        self.curve_label.setText(html_text(curve.get("reading", "No learning curve.")))
        for index, (title, count) in enumerate(((TAB_TITLES[0], len(report["suspects"])),
                                                (TAB_TITLES[1], len(report["near_duplicates"])),
                                                (TAB_TITLES[2], None),
                                                (TAB_TITLES[3], len(report["unreadable"])))):
            self.views.setTabText(index, title if count is None else f"{title} ({count})")
        self._update_buttons()

    def _clear(self) -> None:
        for table in (self.suspects, self.duplicates, self.curve, self.unreadable):
            table.setRowCount(0)
        self.summary_label.setText("")
        self.curve_label.setText("")
        self.preview.clear()

    @staticmethod
    def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(value))

    # ---- selection and fixes ----

    def selected_file(self) -> str | None:
        if self.report is None:
            return None
        if self.views.currentWidget() is self.suspects:
            rows = self.suspects.selectionModel().selectedRows()
            if rows and rows[0].row() < len(self.report["suspects"]):
                return self.report["suspects"][rows[0].row()]["file"]
        elif self.views.currentWidget() is self.duplicates:
            rows = self.duplicates.selectionModel().selectedRows()
            if rows and rows[0].row() < len(self.report["near_duplicates"]):
                return self.report["near_duplicates"][rows[0].row()]["files"][-1]  # keep the first, act on a copy
        return None

    def _suggested(self, file: str) -> str | None:
        for row in (self.report or {}).get("suspects", []):
            if row["file"] == file:
                return row["suggested"]
        return None

    def _on_selection(self) -> None:
        file = self.selected_file()
        if file is not None and self.folder:
            image = thumbnail(Path(self.folder) / file, PREVIEW_SIZE)
            if image.isNull():  # gone or unreadable since the check
                self.preview.clear()
            else:
                self.preview.setPixmap(scaled_pixmap(image, PREVIEW_SIZE))
        self._update_buttons()

    def move_selected(self) -> None:
        file = self.selected_file()
        target = self._suggested(file) if file else None
        if file and target:
            self._fix(lambda: fixes.move_file(self.folder, file, target), f"Moved {file} to {target}.")

    def exclude_selected(self) -> None:
        file = self.selected_file()
        if file:
            self._fix(lambda: fixes.exclude_file(self.folder, file), f"Excluded {file} (into _excluded/).")

    def undo(self) -> None:
        if self.folder:
            self._fix(lambda: fixes.undo_last(self.folder), "Undid the last change.")

    def _fix(self, change: Any, done: str) -> None:
        """Apply one change on disk (small and fast: the GUI thread), then check again (cached: seconds)."""
        try:
            change()
        except (TransferlabError, OSError) as exc:  # one line (changed file, name clash...): say it, keep going
            self.message.emit(f"Not changed: {exc}", "warning")
            return
        self.message.emit(done + " Checking again with the cached embeddings…", "success")
        self.start_check()


def _same_folder(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
