"""The Data panel: MNIST or a folder of class subfolders; images per class, sample grid, image sizes, skipped
files with reasons, the pixel values of one digit and an augmentation preview. All loading runs on a Task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.kinds import FOLDER, MNIST, kind_named
from transferlab.gui.plots import BarChart, SampleGrid
from transferlab.gui.settings import AppSettings
from transferlab.gui.widgets import GridImage, gray_qimage, html_text, line_edit, mosaic, rgb_qimage, scaled_pixmap
from transferlab.gui.worker import TaskGroup, describe_error

logger = logging.getLogger(__name__)

MNIST_PER_CLASS = 8
FOLDER_PER_CLASS = 6
FOLDER_MAX_ROWS = 12
THUMB = 64
AUGMENTED = 8
FOLDER_AUG_SIZE = 224  # the bundled backbone's input size: what a folder run's augmentation works on
AUG_CAPTIONS = {
    "mnist": "The selected digit before (left) and after random rotation, shift, shear and zoom (right) — what "
             "training sees when augmentation is on. Click a digit in Samples per class to pick another.",
    "folder": "The selected image before (left) and after random flip, rotation and zoom (right), at the model's "
              "224×224 input — what training sees when augmentation is on. Click an image in Samples per class "
              "to pick another.",
}


def load_mnist_overview() -> dict[str, Any]:
    """Worker: MNIST arrays, their description and a sample grid."""
    from transferlab.core.data.mnist import describe, load_mnist, sample_grid

    mnist = load_mnist()
    images, indices = sample_grid(mnist, per_class=MNIST_PER_CLASS, seed=0)
    return {"mnist": mnist, "describe": describe(mnist), "grid": mosaic(images), "indices": indices}


def scan_folder_overview(folder: str) -> dict[str, Any]:
    """Worker: scan the folder (DataError when unusable) and make a per-class thumbnail grid."""
    from transferlab.core.data.folders import scan_folder
    from transferlab.core.data.images import load_rgb

    scan = scan_folder(folder)
    names = scan.class_names[:FOLDER_MAX_ROWS]
    tiles = np.full((len(names), FOLDER_PER_CLASS, THUMB, THUMB, 3), 40, np.uint8)
    paths: list[list[str]] = [[] for _ in names]
    for rel, label in scan.items:
        if label < len(names) and len(paths[label]) < FOLDER_PER_CLASS:
            try:
                tiles[label, len(paths[label])] = load_rgb(Path(scan.root) / rel, (THUMB, THUMB))
            except Exception:  # an unreadable file stays a dark tile; the scan already lists real problems
                logger.exception("thumbnail of %s", rel)
            paths[label].append(rel)
    return {"summary": scan.summary(), "grid": mosaic(tiles), "rows": list(names), "paths": paths}


def skipped_text(path: str, reason: str) -> str:
    """One skipped file as a line: the path once (most reasons already name it), then why."""
    return reason if path in reason else f"{path}: {reason}"


def augmentation_overview(image: np.ndarray, seed: int) -> np.ndarray:
    from transferlab.core.training.mnist_job import augmentation_preview

    return augmentation_preview(image, AUGMENTED, seed)  # builds its layers under the engine's build lock


def folder_augmentation_overview(path: Path, seed: int) -> np.ndarray:
    """One image of a folder, at the bundled backbone's input size, before and after the folder augmentation."""
    from transferlab.core.data.images import load_rgb
    from transferlab.core.models.transfer import augmentation_preview

    return augmentation_preview(load_rgb(path, (FOLDER_AUG_SIZE, FOLDER_AUG_SIZE)), AUGMENTED, seed)


class DataPanel(QWidget):
    sourceChanged = Signal(str, str)  # kind ("mnist" | "folder"), folder ("" for MNIST)
    message = Signal(str, str)  # text, level
    loaded = Signal(str)  # kind, after the overview (or its error) is shown
    augmented = Signal()  # a new augmentation preview is on screen

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.kind = MNIST.name
        self.folder = ""
        self.scan_summary: dict[str, Any] | None = None
        self.scan_error = ""
        self.mnist: Any = None
        self.selected_index = 0
        self._grid_indices: np.ndarray | None = None
        self.tasks = TaskGroup(self)
        self._aug_seed = 0
        self._folder_paths: list[list[str]] = []
        self.selected_file: Path | None = None  # the folder image the augmentation preview shows
        self.aug_images: np.ndarray | None = None  # what the augmentation preview shows: original, then draws
        self._build()
        self.folder_combo.addItems(self.settings.recent_folders())
        self.folder_combo.setCurrentIndex(-1 if not self.folder_combo.count() else 0)

    # ---- layout ----

    def _build(self) -> None:
        self.mnist_radio = QRadioButton("MNIST digits (built in, offline)")
        self.folder_radio = QRadioButton("My folder of class subfolders:")
        self.mnist_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.mnist_radio)
        group.addButton(self.folder_radio)
        self.folder_combo = QComboBox()
        self.folder_combo.setEditable(True)
        self.folder_combo.setMinimumWidth(320)
        line_edit(self.folder_combo).setPlaceholderText("a folder with one subfolder per class — or drop it here")
        self.browse_button = QPushButton("Choose folder…")
        self.scan_button = QPushButton("Scan")
        self.mnist_radio.clicked.connect(self._on_mnist_clicked)  # clicked: only the user's clicks, never setChecked
        self.folder_radio.clicked.connect(self._on_folder_clicked)
        self.browse_button.clicked.connect(self._on_browse)
        self.scan_button.clicked.connect(self._on_scan_clicked)
        self.folder_combo.activated.connect(self._on_scan_clicked)

        source = QHBoxLayout()
        source.addWidget(self.mnist_radio)
        source.addSpacing(16)
        source.addWidget(self.folder_radio)
        source.addWidget(self.folder_combo, 1)
        source.addWidget(self.browse_button)
        source.addWidget(self.scan_button)

        self.info_label = QLabel("Loading MNIST…")
        self.info_label.setWordWrap(True)
        self.info_label.setTextFormat(Qt.TextFormat.RichText)
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.counts_chart = BarChart(self)
        self.skipped_list = QListWidget()
        self.skipped_list.setWordWrap(True)  # a reason is read in full, never cut at the box's edge
        self.skipped_box = QGroupBox("Skipped files")
        QVBoxLayout(self.skipped_box).addWidget(self.skipped_list)
        left = QSplitter(Qt.Orientation.Vertical)
        left.setObjectName("data_left_splitter")
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.info_label)
        top_layout.addWidget(self.counts_chart, 1)
        left.addWidget(top)
        left.addWidget(self.skipped_box)
        left.setSizes([420, 120])

        self.views = QTabWidget()
        self.samples = SampleGrid(self, on_cell=self._on_sample_clicked)
        self.views.addTab(self.samples, "Samples per class")
        self.views.addTab(self._build_pixels(), "Pixel values")
        self.views.addTab(self._build_augmentation(), "Augmentation preview")

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("data_splitter")
        splitter.addWidget(left)
        splitter.addWidget(self.views)
        splitter.setSizes([480, 620])

        layout = QVBoxLayout(self)
        layout.addLayout(source)
        layout.addWidget(splitter, 1)

    def _build_pixels(self) -> QWidget:
        page = QWidget()
        self.index_spin = QSpinBox()
        self.index_spin.setRange(0, 59999)
        self.index_spin.setPrefix("training digit #")
        self.index_spin.valueChanged.connect(self.select_digit)
        self.pixel_caption = QLabel("Click a digit in the sample grid, or pick its index.")
        self.pixel_table = QTableWidget(28, 28)
        self.pixel_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        font = QFont()
        font.setPointSize(7)
        self.pixel_table.setFont(font)
        for header in (self.pixel_table.horizontalHeader(), self.pixel_table.verticalHeader()):
            header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # all 28 columns fit, never cut off
            header.setMinimumSectionSize(10)
            header.setFont(font)
        row = QHBoxLayout()
        row.addWidget(self.index_spin)
        row.addWidget(self.pixel_caption, 1)
        layout = QVBoxLayout(page)
        layout.addLayout(row)
        layout.addWidget(self.pixel_table, 1)
        return page

    def _build_augmentation(self) -> QWidget:
        page = QWidget()
        self.aug_original = QLabel()
        self.aug_original.setFixedSize(168, 168)
        self.aug_original.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.aug_grid = GridImage()
        self.aug_grid.setMinimumSize(300, 160)
        self.reroll_button = QPushButton("Re-roll augmentation")
        self.reroll_button.clicked.connect(self.reroll)
        self.aug_caption = QLabel(AUG_CAPTIONS["mnist"])
        self.aug_caption.setWordWrap(True)
        before = QVBoxLayout()
        before.addWidget(QLabel("Before"))
        before.addWidget(self.aug_original)
        before.addStretch(1)
        after = QVBoxLayout()
        after.addWidget(QLabel("After (8 random draws)"))
        after.addWidget(self.aug_grid, 1)
        images = QHBoxLayout()
        images.addLayout(before)
        images.addLayout(after, 1)
        layout = QVBoxLayout(page)
        layout.addWidget(self.aug_caption)
        layout.addLayout(images, 1)
        layout.addWidget(self.reroll_button, 0, Qt.AlignmentFlag.AlignLeft)
        return page

    # ---- choosing the source ----

    def source(self) -> tuple[str, str]:
        return self.kind, self.folder

    def start(self) -> None:
        """Load what the settings say was used last (MNIST on the first start)."""
        recent = self.settings.recent_folders()
        if self.settings.data_source() == FOLDER.name and recent and Path(recent[0]).is_dir():
            self.use_folder(recent[0])
        else:
            self.use_mnist()

    @property
    def uses_folder(self) -> bool:
        """The source is a folder of class subfolders (else the built-in MNIST)."""
        return kind_named(self.kind).uses_folder

    def use_mnist(self) -> None:
        self.kind, self.folder = MNIST.name, ""
        self._set_radio(self.mnist_radio)
        self.settings.set_data_source(MNIST.name)
        self.views.setTabEnabled(1, True)
        self.aug_caption.setText(AUG_CAPTIONS["mnist"])
        self.sourceChanged.emit(MNIST.name, "")
        self.tasks.cancel("data")  # a folder still being scanned is no longer wanted
        if self.mnist is not None:
            self._show_mnist_overview(self._mnist_result)
            return
        self.info_label.setText("Loading MNIST…")
        self.tasks.start("data", lambda _report, _stop: load_mnist_overview(), returned=self._on_mnist_loaded,
                         errored=self._on_error)

    def use_folder(self, folder: str) -> None:
        folder = str(Path(folder).expanduser())
        self.kind, self.folder = FOLDER.name, folder
        self.scan_summary, self.scan_error = None, ""
        self._set_radio(self.folder_radio)
        self.folder_combo.setEditText(folder)
        self.settings.set_data_source(FOLDER.name)
        self._remember(folder)
        self.views.setTabEnabled(1, False)  # pixel values: MNIST digits only
        self.views.setCurrentIndex(0)
        self.selected_file, self._folder_paths = None, []
        self.aug_caption.setText(AUG_CAPTIONS["folder"])
        self.aug_original.clear()
        self.aug_grid.set_grid(QImage(), 0, 0)
        self.sourceChanged.emit(FOLDER.name, folder)
        self.info_label.setText(f"Scanning <b>{html_text(folder)}</b>…")
        self.tasks.start("data", lambda _report, _stop: scan_folder_overview(folder),
                         returned=self._on_folder_scanned, errored=self._on_error)

    def _set_radio(self, radio: QRadioButton) -> None:
        radio.setChecked(True)

    def _remember(self, folder: str) -> None:
        folders = self.settings.add_recent_folder(folder)
        self.folder_combo.blockSignals(True)
        self.folder_combo.clear()
        self.folder_combo.addItems(folders)
        self.folder_combo.setCurrentIndex(0)
        self.folder_combo.blockSignals(False)

    def _on_mnist_clicked(self) -> None:
        if self.uses_folder:
            self.use_mnist()

    def _on_folder_clicked(self) -> None:
        if self.folder_combo.currentText().strip():
            self.use_folder(self.folder_combo.currentText().strip())
        else:
            self._on_browse()

    def choose_folder(self) -> None:
        """File ▸ Open folder…: choose a folder of class subfolders to train on."""
        self._on_browse()

    def _on_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of class subfolders",
                                                  self.folder_combo.currentText() or str(Path.home()))
        if folder:
            self.use_folder(folder)
        elif not self.uses_folder:
            self._set_radio(self.mnist_radio)

    def _on_scan_clicked(self, *_args: Any) -> None:
        text = self.folder_combo.currentText().strip()
        if text:
            self.use_folder(text)

    # ---- results of the tasks ----

    def _on_error(self, error: BaseException) -> None:
        text = describe_error(error)
        if self.uses_folder:
            self.scan_error = text
            self.scan_summary = None
            self.info_label.setText(f"<b style='color:#a00'>This folder can't be used:</b> {html_text(text)}")
            self.counts_chart.set_counts([], [])
            self.skipped_list.clear()
        else:
            self.info_label.setText(f"<b style='color:#a00'>Could not load the data:</b> {html_text(text)}")
        self.message.emit(text, "error")
        self.loaded.emit(self.kind)

    def _on_mnist_loaded(self, result: dict[str, Any]) -> None:
        self.mnist = result["mnist"]
        self._mnist_result = result
        self._show_mnist_overview(result)

    def _show_mnist_overview(self, result: dict[str, Any]) -> None:
        info = result["describe"]
        self._grid_indices = result["indices"]
        self.info_label.setText(
            f"<b>MNIST</b>: {info['train_shape'][0]:,} training and {info['test_shape'][0]:,} test digits, "
            f"{info['train_shape'][1]}×{info['train_shape'][2]} pixels, {info['dtype']} values "
            f"{info['pixel_min']}–{info['pixel_max']}, 10 classes (the copy that comes with the app).")
        self.info_label.setToolTip(f"Read from {info['source']}")
        classes = info["classes"]
        self.counts_chart.title = "Images per class (training / test)"
        self.counts_chart.set_counts(classes, info["train_counts"], info["test_counts"], ("training", "test"))
        self.skipped_list.clear()
        self.skipped_box.hide()  # nothing is ever skipped in MNIST: no empty box
        self.samples.set_grid(result["grid"], 10, MNIST_PER_CLASS, classes,
                              "Random training digits — click one to see its pixels")
        self.select_digit(self.selected_index)
        self.loaded.emit(MNIST.name)

    def _on_folder_scanned(self, result: dict[str, Any]) -> None:
        summary = result["summary"]
        self.scan_summary, self.scan_error = summary, ""
        classes = summary["classes"]
        counts = [summary["counts"][c] for c in classes]
        height, width = summary["height"], summary["width"]
        warnings = []
        if summary["empty_classes"]:
            warnings.append(f"empty classes: {', '.join(summary['empty_classes'])}")
        if summary["duplicates"]:
            warnings.append(f"{len(summary['duplicates'])} identical files in different classes")
        extra = f"<br><span style='color:#a60'>{html_text('; '.join(warnings))}</span>" if warnings else ""
        self.info_label.setText(
            f"<b>{html_text(Path(summary['root']).name)}</b>: {summary['images']:,} usable images in "
            f"{len(classes)} classes; {len(summary['skipped'])} skipped, {len(summary['ignored'])} other files "
            f"ignored.<br>Image sizes (h × w): min {height['min']}×{width['min']}, median "
            f"{height['median']}×{width['median']}, max {height['max']}×{width['max']}.{extra}")
        self.counts_chart.title = "Images per class"
        self.counts_chart.set_counts(classes, counts)
        self.skipped_list.clear()
        self.skipped_box.setTitle(f"Skipped files ({len(summary['skipped'])})")
        self.skipped_box.setVisible(bool(summary["skipped"]))
        for skipped in summary["skipped"]:
            text = skipped_text(skipped["path"], skipped["reason"])
            self.skipped_list.addItem(text)
            self.skipped_list.item(self.skipped_list.count() - 1).setToolTip(text)
        rows = result["rows"]
        more = f" (first {len(rows)} of {len(classes)} classes)" if len(rows) < len(classes) else ""
        self.samples.set_grid(result["grid"], len(rows), FOLDER_PER_CLASS, rows,
                              f"Samples per class{more} — click one to see it augmented")
        self._folder_paths = result["paths"]
        self.select_file(0, 0)
        if warnings:
            self.message.emit(f"{Path(summary['root']).name}: {'; '.join(warnings)}", "warning")
        self.loaded.emit(FOLDER.name)

    # ---- one digit: pixels and augmentation ----

    def _on_sample_clicked(self, row: int, col: int) -> None:
        if self.uses_folder:
            if self.select_file(row, col):
                self.views.setCurrentIndex(2)
        elif self._grid_indices is not None:
            self.index_spin.setValue(int(self._grid_indices[row, col]))
            self.views.setCurrentIndex(1)

    def select_file(self, row: int, col: int) -> bool:
        """Show the folder image at (row, col) of the sample grid in the augmentation preview; False if none."""
        if not (0 <= row < len(self._folder_paths) and 0 <= col < len(self._folder_paths[row])):
            return False
        self.selected_file = Path(self.folder) / self._folder_paths[row][col]
        self.reroll()
        return True

    def select_digit(self, index: int) -> None:
        if self.mnist is None:
            return
        from transferlab.core.data.mnist import pixel_matrix

        self.selected_index = index
        pixels, label = pixel_matrix(self.mnist, index)
        self.pixel_caption.setText(f"Label <b>{label}</b> — 28×28 uint8 values (0 = black, 255 = white)")
        self.pixel_table.setUpdatesEnabled(False)
        for (r, c), value in np.ndenumerate(pixels):
            item = QTableWidgetItem(str(int(value)) if value else "")
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            item.setBackground(QColor(int(value), int(value), int(value)))
            item.setForeground(QColor("black" if value > 128 else "#ccc"))
            self.pixel_table.setItem(r, c, item)
        self.pixel_table.setUpdatesEnabled(True)
        if self.index_spin.value() != index:
            self.index_spin.blockSignals(True)
            self.index_spin.setValue(index)
            self.index_spin.blockSignals(False)
        self.aug_original.setPixmap(scaled_pixmap(gray_qimage(pixels), 168))
        self.reroll()

    def reroll(self) -> None:
        """New random draws of the augmentation for the selected digit (MNIST) or image (folder)."""
        self._aug_seed += 1
        seed = self._aug_seed
        compute: Callable[[Any, int], np.ndarray]
        source: Any  # the folder image's path, or the digit's pixels
        if self.uses_folder:
            if self.selected_file is None:
                return
            compute, source, errored = folder_augmentation_overview, self.selected_file, self._on_augmentation_error
        else:
            if self.mnist is None:
                return
            from transferlab.core.data.mnist import pixel_matrix

            source, _ = pixel_matrix(self.mnist, self.selected_index)
            compute, errored = augmentation_overview, self._on_error
        self.tasks.start("augmentation-preview", lambda _report, _stop: compute(source, seed),
                         returned=self._on_augmented, errored=errored, finished=self._on_augmentation_finished)
        self.reroll_button.setEnabled(False)

    def _on_augmentation_error(self, error: BaseException) -> None:
        """A folder image that can't be read: the preview says so; the scan result stays."""
        self.aug_original.clear()
        self.aug_grid.set_grid(QImage(), 0, 0)
        self.aug_caption.setText(f"<b style='color:#a00'>This image can't be shown:</b> "
                                 f"{html_text(describe_error(error))}")

    def _on_augmentation_finished(self) -> None:
        self.reroll_button.setEnabled(True)

    def _on_augmented(self, images: np.ndarray) -> None:
        if (images.ndim == 4) != self.uses_folder:  # computed for the source shown before a switch
            return
        self.aug_images = images
        augmented = images[1:].reshape(2, AUGMENTED // 2, *images.shape[1:])
        if images.ndim == 4:  # RGB folder images: the original comes with the draws
            self.aug_caption.setText(AUG_CAPTIONS["folder"])
            self.aug_original.setPixmap(scaled_pixmap(rgb_qimage(images[0]), 168, smooth=True))
            self.aug_grid.set_grid(rgb_qimage(mosaic(augmented, gap=4)), 2, AUGMENTED // 2)
        else:
            self.aug_grid.set_grid(gray_qimage(mosaic(augmented, gap=1)), 2, AUGMENTED // 2)
        self.augmented.emit()

    def busy(self) -> bool:
        return self.tasks.running()
