"""The main window: a run bar (Train, Stop, progress, time remaining), an inline message bar and one tab per
view (Data, Model, Training, Results, Runs, Classify). Owns the training Task; drops of folders and images."""

from __future__ import annotations

import gc
import logging
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, Qt, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.catalog import is_image_name
from transferlab.core.events import BatchProgress, EpochEnded, PhaseProgress, RunFinished, RunStarted
from transferlab.core.kinds import kind_named, title_of
from transferlab.core.records import Comparison
from transferlab.core.runs.store import RunStore
from transferlab.gui.classify_panel import ClassifyPanel
from transferlab.gui.data_panel import DataPanel
from transferlab.gui.doctor_panel import DoctorPanel
from transferlab.gui.honest_numbers import cv_text_of
from transferlab.gui.model_panel import ModelPanel
from transferlab.gui.results_panel import ResultsPanel
from transferlab.gui.runs_panel import RunsPanel
from transferlab.gui.settings import AppSettings
from transferlab.gui.training_panel import TrainingPanel
from transferlab.gui.widgets import MessageBar, StatusArea, friendly_error, html_text
from transferlab.gui.worker import Task, TaskGroup, compare_fn, describe_error, training_fn, wait_for_tasks

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 60.0
WINDOW_TITLE = "Transferlab — train and try image classifiers"
ETA_AFTER = 0.02  # the time left is shown once this part of the fit is done (earlier guesses jump around)


class MainWindow(QMainWindow):
    trainingFinished = Signal(object)  # the RunResult (or the Comparison); None when the task itself failed

    def __init__(self, settings: AppSettings | None = None, store: RunStore | None = None) -> None:
        super().__init__()
        # The GUI thread gets the GIL back within 1 ms (default 5 ms) when a worker runs Python code.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self.settings = settings or AppSettings()
        self.store = store or RunStore()
        self.training: Task | None = None
        self.tasks = TaskGroup(self)
        self.last_result: Any = None
        self.setWindowTitle(WINDOW_TITLE)
        self.setAcceptDrops(True)
        self._build()
        self._only_the_window_takes_drops()
        self.resize(1200, 800)
        self.settings.restore_window(self)
        self.runs_panel.refresh()
        self.classify_panel.refresh_runs(self.runs_panel.runs)
        self.data_panel.start()

    # ---- layout ----

    def _build(self) -> None:
        self.data_panel = DataPanel(self.settings)
        self.model_panel = ModelPanel()
        self.training_panel = TrainingPanel()
        self.results_panel = ResultsPanel(self.store)
        self.runs_panel = RunsPanel(self.store, settings=self.settings)
        self.classify_panel = ClassifyPanel(self.store)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for widget, title in ((self.data_panel, "1 · Data"), (self.model_panel, "2 · Model"),
                              (self.training_panel, "3 · Training"), (self.results_panel, "4 · Results"),
                              (self.runs_panel, "5 · Runs && compare"), (self.classify_panel, "6 · Classify")):
            self.tabs.addTab(widget, title)
        self.doctor_panel = DoctorPanel(self.store)  # the data doctor (issue 9): optional, right after Data
        self.tabs.insertTab(1, self.doctor_panel, "Check data")

        self.train_button = QPushButton("▶  Train")
        self.train_button.setToolTip("Train the model on the chosen data (Ctrl+Return)")
        self.train_button.setStyleSheet("QPushButton{font-weight:bold;padding:4px 18px;}")
        self.stop_button = QPushButton("■  Stop")
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setTextVisible(True)
        self.eta_label = QLabel("")
        self.eta_label.setMinimumWidth(150)
        self.source_label = QLabel("")
        self.train_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.stop_training)
        self.stop_button.setToolTip("Stop the run; the finished epochs are kept (Esc)")
        bar = QHBoxLayout()
        bar.addWidget(self.train_button)
        bar.addWidget(self.stop_button)
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.eta_label)
        self.message_bar = MessageBar()
        self.source_label.setContentsMargins(2, 0, 0, 0)
        self.status_area = StatusArea(self.source_label, self.message_bar)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addLayout(bar)
        layout.addWidget(self.status_area)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._build_menus()
        for view in self.findChildren(QAbstractItemView):  # Tab leaves a table instead of walking its cells
            view.setTabKeyNavigation(False)

        for panel in (self.data_panel, self.results_panel, self.runs_panel, self.classify_panel):
            panel.message.connect(self.show_message)
        self.data_panel.sourceChanged.connect(self._on_source_changed)
        self.data_panel.loaded.connect(self._on_data_loaded)
        self.model_panel.compareRequested.connect(self.start_compare)
        self.model_panel.summaryShown.connect(self._update_train_button)
        self.model_panel.summaryShown.connect(self._freeze_startup_objects)
        self.runs_panel.showResults.connect(self.show_results)
        self.runs_panel.classifyWith.connect(self._on_classify_with)
        self.runs_panel.listed.connect(lambda: self.classify_panel.refresh_runs(self.runs_panel.runs))
        self.runs_panel.runChosen.connect(self.classify_panel.use_run)
        self.runs_panel.exportMessage.connect(self._on_export_message)
        self.runs_panel.startFrom.connect(self.start_from_run)
        self.tabs.currentChanged.connect(self._on_tab)
        self._connect_doctor()

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.open_folder_action = file_menu.addAction("&Open folder…", QKeySequence("Ctrl+O"),
                                                      self.data_panel.choose_folder)
        self.open_images_action = file_menu.addAction("Classify &images…", QKeySequence("Ctrl+I"),
                                                      self._on_open_images)
        file_menu.addSeparator()
        self.export_action = file_menu.addAction("&Export selected run…", QKeySequence("Ctrl+E"), self._on_export)
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit", QKeySequence("Ctrl+Q"), self.close)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        run_menu = menu.addMenu("&Run")
        self.train_action = run_menu.addAction("&Train", QKeySequence("Ctrl+Return"), self.start_training)
        self.compare_action = run_menu.addAction("Train frozen &and fine-tuned (compare)", self.start_compare)
        self.stop_action = run_menu.addAction("&Stop", QKeySequence(Qt.Key.Key_Escape), self.stop_training)
        self.stop_action.setEnabled(False)

        view_menu = menu.addMenu("&View")
        self.tab_actions = []
        for index in range(self.tabs.count()):
            title = self.tabs.tabText(index).replace("&&", "&").split("·", 1)[-1].strip()
            action = view_menu.addAction(title.replace("&", "&&"), QKeySequence(f"Ctrl+{index + 1}"),
                                         partial(self.tabs.setCurrentIndex, index))
            self.tab_actions.append(action)

        help_menu = menu.addMenu("&Help")
        self.shortcuts_action = help_menu.addAction("&Keyboard shortcuts", QKeySequence("F1"),
                                                    self.show_shortcuts)
        self.about_action = help_menu.addAction("&About Transferlab", self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

    def shortcut_lines(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every menu action with a shortcut, in menu order."""
        lines = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            for action in menu.actions() if isinstance(menu, QMenu) else []:
                keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                if keys:
                    lines.append((keys, action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")))
        return lines

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td style='padding-right:16px'><b>{html_text(keys)}</b></td><td>{html_text(text)}"
                       f"</td></tr>" for keys, text in self.shortcut_lines())
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table><p>Drop a folder on the window "
                                "to train on it, or image files to classify them.</p>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About Transferlab",
                          "<b>Transferlab</b><p>Train image classifiers on MNIST or your own folders of photos "
                          "(transfer learning from a pretrained backbone), compare runs, try the model on your own "
                          "images and export it.</p><p>Runs are stored in<br><code>"
                          f"{html_text(self.store.root)}</code></p>")

    def _on_open_images(self) -> None:
        self.tabs.setCurrentWidget(self.classify_panel)
        self.classify_panel.open_images()

    def _on_export(self) -> None:
        self.tabs.setCurrentWidget(self.runs_panel)
        self.runs_panel.export_selected()

    # ---- messages ----

    def show_message(self, text: str, level: str = "info", action: tuple[str, Any] | None = None) -> None:
        text = friendly_error(text)
        self.message_bar.show_message(text, level, action)
        if level == "error":
            logger.warning("%s", text)

    def _on_export_message(self, text: str, folder: str) -> None:
        self.show_message(text, "success", action=("Show in folder", lambda: show_in_folder(folder)))

    # ---- data source ----

    def start_from_run(self, folder: str, split_from: str, init_from: str) -> None:
        """Set up the next run on a stored run's folder: its split, and fine-tuning from it when asked."""
        if not Path(folder).is_dir():
            self.show_message(f"The data folder of that run, {folder}, is not there any more.", "error")
            return
        if self.data_panel.source() != ("folder", folder):
            self.data_panel.use_folder(folder)
        self.model_panel.start_from_run(split_from, init_from)
        self.tabs.setCurrentWidget(self.model_panel)

    def _on_source_changed(self, kind: str, folder: str) -> None:
        self.model_panel.start_from_run("", "")  # another data set: a stored run's split does not apply
        if not self.is_training():
            self.message_bar.clear()  # a message about the previous data set is outdated now
        self.model_panel.set_kind(kind)
        self.source_label.setText(f"Data: folder <b>{html_text(folder)}</b>" if kind_named(kind).uses_folder
                                  else f"Data: {html_text(kind_named(kind).source_title)}")

    def _on_data_loaded(self, kind: str) -> None:
        summary = self.data_panel.scan_summary
        if kind_named(kind).uses_folder and summary:
            self.model_panel.set_class_count(len(summary.get("classes", [])))
            self.model_panel.set_folder_size(int(summary.get("images", 0)))

    # ---- training ----

    def is_training(self) -> bool:
        return self.training is not None and self.training.running

    def _freeze_startup_objects(self) -> None:
        """Once TensorFlow, Keras and matplotlib are loaded (the first model summary needs all three), move the
        objects that live as long as the app out of the garbage collector's reach (gc.freeze). Otherwise a
        full collection, triggered on whatever thread allocates, walks them all while holding the GIL: a
        ~200 ms freeze of the window while the next run traces its training step (bench/gui.py)."""
        self.model_panel.summaryShown.disconnect(self._freeze_startup_objects)
        gc.collect()
        gc.freeze()
        logger.debug("froze %d long-lived objects", gc.get_freeze_count())

    def start_training(self) -> Task | None:
        return self._start(compare=False)

    def start_compare(self) -> Task | None:
        return self._start(compare=True)

    def _start(self, compare: bool) -> Task | None:
        if self.is_training():
            self.show_message("A training run is already going: stop it first.", "warning")
            return None
        kind, folder = self.data_panel.source()
        uses_folder = kind_named(kind).uses_folder
        if compare and not uses_folder:
            self.show_message("Frozen vs fine-tuned needs a folder data set: choose one in Data.", "warning")
            return None
        if uses_folder and self.model_panel.summary_error:
            self.show_message(f"This backbone can't be used: {self.model_panel.summary_error}. Choose another one "
                              "in Model.", "error")
            return None
        if uses_folder and self.data_panel.scan_error:
            self.show_message(f"This folder can't be used for training: {self.data_panel.scan_error}", "error")
            return None
        try:
            config = self.model_panel.compare_config(folder) if compare else self.model_panel.build_config(kind, folder)
        except Exception as exc:  # ConfigError (a bad value) or anything unexpected: show it, never crash
            logger.exception("building the run config")
            self.show_message(f"Check the settings: {exc}", "error")
            return None
        self.message_bar.clear()
        epochs = config.fit.epochs
        title = ("frozen vs fine-tuned on " + Path(folder).name) if compare else title_of(config)
        self.tabs.setCurrentWidget(self.training_panel)  # first: the curves' full redraw gets the final size
        self.training_panel.begin(title, epochs)  # before the worker starts and competes for the CPU
        self._runs_in_task = 2 if compare else 1
        self._run_index = 0
        self._epochs = epochs
        self._started = time.monotonic()
        self.progress.setValue(0)
        self.progress.setFormat("starting (loading TensorFlow)…")
        self.eta_label.setText("")
        self.training = self.tasks.start(
            "compare" if compare else "training",
            compare_fn(config, self.store, self.model_panel.explicit_fit()) if compare
            else training_fn(config, self.store),
            reported=self._on_training_event, returned=self._on_training_returned, errored=self._on_training_errored,
            finished=self._on_training_finished, supersede=False)
        self._set_running(True)
        return self.training

    def _update_train_button(self) -> None:
        """Train is greyed out while the Model view shows that the chosen backbone can't be built."""
        blocked = kind_named(self.model_panel.kind).uses_folder and bool(self.model_panel.summary_error)
        idle = not self.is_training()
        self.train_button.setEnabled(idle and not blocked)
        self.train_action.setEnabled(idle and not blocked)
        self.model_panel.compare_button.setEnabled(idle and not blocked)
        self.train_button.setToolTip(f"The backbone can't be used: {self.model_panel.summary_error}" if blocked
                                     else "Train the model on the chosen data (Ctrl+Return)")

    def _set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.train_action.setEnabled(not running)
        self.compare_action.setEnabled(not running)
        self.model_panel.compare_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.stop_action.setEnabled(running)
        if not running:
            self.setWindowTitle(WINDOW_TITLE)
            self._update_train_button()

    def stop_training(self) -> None:
        if self.training is not None and self.training.running:
            self.training.stop("stopped by user")
            self.stop_button.setEnabled(False)
            self.stop_action.setEnabled(False)
            self.progress.setFormat("stopping… (the finished epochs are kept)")
            self.setWindowTitle(f"Stopping… — {WINDOW_TITLE}")

    def _on_training_event(self, event: Any) -> None:
        self.training_panel.on_event(event)
        if isinstance(event, BatchProgress):
            overall = (self._run_index + event.fraction) / self._runs_in_task
            self.progress.setValue(round(1000 * overall))
            self.setWindowTitle(f"{100 * overall:.0f} % · epoch {event.epoch}/{event.epochs} — {WINDOW_TITLE}")
            self.progress.setFormat(f"epoch {event.epoch}/{event.epochs} · batch {event.batch}"
                                    f"{'/' + str(event.batches) if event.batches else ''} · loss {event.loss:.4f}"
                                    f" · accuracy {event.accuracy:.4f}")
            remaining = event.remaining(min_fraction=ETA_AFTER)
            if remaining is not None:
                self.eta_label.setText(f"about {_duration(remaining)} left")
        elif isinstance(event, PhaseProgress):
            self.progress.setFormat(f"{event.phase}…" + (f" {event.done}/{event.total}" if event.total > 1 else ""))
        elif isinstance(event, RunStarted):
            self.progress.setFormat("training…")
        elif isinstance(event, EpochEnded):
            pass
        elif isinstance(event, RunFinished):
            self._run_index += 1
            if self._run_index < self._runs_in_task:  # frozen vs fine-tuned: show the first run at once
                self.runs_panel.refresh()

    def _on_training_returned(self, result: Any) -> None:
        self.last_result = result
        if isinstance(result, Comparison):  # frozen vs fine-tuned (core.training.compare)
            frozen, tuned = result.frozen, result.finetune
            self.runs_panel.refresh()
            self.runs_panel.select(result.run_ids)
            if tuned.status != "finished":
                self.show_message(f"Frozen run {frozen.status}; fine-tuned run "
                                  f"{tuned.status or ''} {tuned.reason or ''}".strip(), "warning")
            else:
                self.show_message("Frozen and fine-tuned runs trained on the same split, each with its own mode's "
                                  f"settings. {result.headline} See Runs & compare.", "success")
            self.tabs.setCurrentWidget(self.runs_panel)
            return
        if result.status == "failed":
            self.show_message(f"Training failed: {result.reason}", "error")
        elif result.status == "stopped":
            self.show_message(f"Training stopped ({result.reason}).", "warning")
        else:
            report = result.report
            note = f" — {report.eval_set} accuracy {100 * report.accuracy:.2f} %" if report is not None else ""
            note += f"; cross-validated {cv_text_of(result.metrics)}" if cv_text_of(result.metrics) else ""
            self.show_message(f"Run {result.run_id} finished{note}." + (f" ({result.reason})" if result.reason
                                                                          else ""), "success")
        if result.report is not None:
            self.results_panel.show_run(result.run_id)

    def _on_training_errored(self, error: BaseException) -> None:
        self.last_result = None
        self.show_message(f"Training could not run: {describe_error(error)}", "error")

    def _on_training_finished(self) -> None:
        task = self.training
        self._set_running(False)
        self.eta_label.setText(f"took {_duration(time.monotonic() - self._started)}")
        status = _task_status(self.last_result) if task is not None and task.error is None else "failed"
        self.progress.setValue(1000 if status == "finished" else self.progress.value())
        self.progress.setFormat(status)
        self.runs_panel.refresh()
        new_run = _newest_run_id(self.last_result)
        if new_run and not isinstance(self.last_result, Comparison):
            self.runs_panel.select([new_run])
        self.classify_panel.refresh_runs(self.runs_panel.runs, follow=new_run)
        self.doctor_panel.set_runs(self.runs_panel.runs)
        self.training = None
        self.trainingFinished.emit(self.last_result if task is not None and task.error is None else None)

    # ---- the data check (gui/doctor_panel.py) ----

    def _connect_doctor(self) -> None:
        self.doctor_panel.message.connect(self.show_message)
        self.doctor_panel.retrainRequested.connect(self._retrain_after_check)
        self.data_panel.sourceChanged.connect(self._doctor_follow_source)
        self.model_panel.backbone_combo.currentTextChanged.connect(self._doctor_follow_source)

    def _doctor_follow_source(self, *_args: Any) -> None:
        kind, folder = self.data_panel.source()
        folder = folder if kind_named(kind).uses_folder else ""
        self.doctor_panel.set_source(folder, self.model_panel.backbone_combo.currentText().strip())
        self.doctor_panel.set_runs(self.runs_panel.runs)

    def _retrain_after_check(self) -> None:
        """The data check's "Retrain": a frozen run on the (fixed) folder; its features come from the check's
        cache, so only the head trains."""
        self.model_panel.frozen_radio.setChecked(True)
        self.start_training()

    # ---- other views ----

    def show_results(self, run_id: str) -> None:
        self.results_panel.show_run(run_id)
        try:
            self.training_panel.show_history(self.store.get(run_id).title(), self.store.history(run_id))
        except Exception:
            logger.exception("history of %s", run_id)
        self.tabs.setCurrentWidget(self.results_panel)

    def _on_classify_with(self, run_id: str) -> None:
        self.classify_panel.refresh_runs(self.runs_panel.runs)
        self.classify_panel.use_run(run_id)
        selected = self.runs_panel.selected_ids()  # several runs selected: their answers side by side
        self.classify_panel.set_extra_runs([r for r in selected if r != run_id] if run_id in selected else [])
        self.tabs.setCurrentWidget(self.classify_panel)

    def _on_tab(self, index: int) -> None:
        if self.tabs.widget(index) is self.classify_panel and self.classify_panel.run_id():
            self.classify_panel.preload(self.classify_panel.run_id())

    # ---- drag and drop ----

    # Drops are always taken as a copy: a file manager that honours Move deletes the files it "moved" here.
    # A drag that offers only Move is refused.

    def _only_the_window_takes_drops(self) -> None:
        """Text fields accept drops with the proposed action (Move too): drops go to the window instead."""
        for widget in self.findChildren(QWidget):
            widget.setAcceptDrops(False)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            accept_as_copy(event)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            accept_as_copy(event)
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        if not accept_as_copy(event):
            self.show_message("This drag can only move the files: transferlab never moves or deletes your files. "
                              "Drag again holding Ctrl to copy.", "warning")
            return
        if not self.handle_drop(event.mimeData()):
            event.ignore()

    def handle_drop(self, mime: QMimeData) -> bool:
        """A dropped folder becomes the data set; dropped images are classified. True when something was used."""
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        folders = [p for p in paths if p.is_dir()]
        images = [str(p) for p in paths if p.is_file() and is_image_name(p)]
        if folders:
            self.data_panel.use_folder(str(folders[0]))
            self.tabs.setCurrentWidget(self.data_panel)
            return True
        if images:
            self.tabs.setCurrentWidget(self.classify_panel)
            self.classify_panel.classify_files(images)
            return True
        if paths:
            self.show_message("Drop a folder of class subfolders (to train on it) or image files (to classify "
                              f"them); got {', '.join(p.name for p in paths[:3])}.", "warning")
        return False

    # ---- closing ----

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.save_window(self)
        self.model_panel.shutdown()
        if self.training is not None and self.training.running:
            # keep the finished epochs and the model, but no evaluation of the whole test set now
            self.training.stop_flag.request("the window was closed", evaluate=False)
            self.progress.setFormat("stopping… (keeping the finished epochs)")
            self.setWindowTitle(f"Stopping… — {WINDOW_TITLE}")
            self.show_message("Stopping the run before closing: the finished epochs and the model are kept.",
                              "info")
            self.repaint()  # shown now: the wait below blocks the event loop until the worker has ended
        wait_for_tasks(CLOSE_TIMEOUT_S)
        super().closeEvent(event)


def _task_status(result: Any) -> str:
    """How a training task ended, for the progress bar: a compare is as good as its worse run."""
    if isinstance(result, Comparison):
        statuses = [result.frozen.status, result.finetune.status]
        for status in ("failed", "stopped"):
            if status in statuses:
                return status
        return "finished" if all(s == "finished" for s in statuses) else "stopped"
    return str(getattr(result, "status", "") or "failed")


def show_in_folder(folder: str) -> bool:
    """Open the folder in the system's file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(folder))


def _newest_run_id(result: Any) -> str:
    """The run a finished task made last (the fine-tuned one of a compare), "" when there is none."""
    if isinstance(result, Comparison):
        return str(result.finetune.run_id or result.frozen.run_id or "")
    return str(getattr(result, "run_id", "") or "")


def accept_as_copy(event: QDropEvent) -> bool:
    """Accept a drag or drop as Copy whatever action was proposed; ignore it when Copy is not offered (Qt
    would turn a Copy the source does not offer back into the proposed Move)."""
    if not event.possibleActions() & Qt.DropAction.CopyAction:
        event.ignore()
        return False
    event.setDropAction(Qt.DropAction.CopyAction)
    event.accept()
    return True


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
