"""Render the README screenshots offscreen: data, training curves after a short run, results, compare and classify.

    python scripts/screenshots.py [--out docs/screenshots]

Trains two small MNIST runs in a temporary run store (about a minute on a 2-core CPU). PNGs are palette-
quantized to stay small.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image, ImageDraw
from PySide6.QtCore import QEventLoop, QItemSelectionModel, QMimeData, QSettings, QTimer, QUrl
from PySide6.QtWidgets import QApplication

from transferlab.core.runs.store import RunStore

logger = logging.getLogger("screenshots")
SIZE = (1280, 800)
RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "imagenet"


def wait_for(signal, timeout_ms: int = 600000) -> list:
    loop = QEventLoop()
    got: list = []
    signal.connect(lambda *args: (got.extend(args), loop.quit()))
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    return got


def wait_until(condition, timeout_s: float = 300) -> None:
    """Run the event loop until `condition()` holds (for results that may already have arrived)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not reach the expected state")
        settle(100)


def settle(ms: int = 400) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(window, out: Path, name: str) -> Path:
    settle()
    path = out / f"{name}.png"
    window.grab().save(str(path))
    image = Image.open(path).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)
    logger.info("wrote %s (%d KB)", path, path.stat().st_size // 1024)
    return path


def digit_png(folder: Path, name: str, strokes: list) -> Path:
    image = Image.new("L", (140, 140), 250)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill=20, width=13, joint="curve")
    path = folder / name
    image.save(path)
    return path


def photo_folder(root: Path) -> Path:
    """Two classes made of random crops of the CC0 photos shipped in resources/imagenet, plus two broken files
    (to show how the data summary reports them)."""
    rng = np.random.default_rng(0)
    sources = {"cat": RESOURCES / "chelsea.png", "coffee": RESOURCES / "coffee.png"}
    for name, source in sources.items():
        photo = Image.open(source).convert("RGB")
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(16):
            side = int(rng.integers(min(photo.size) // 2, min(photo.size)))
            left = int(rng.integers(0, photo.width - side + 1))
            top = int(rng.integers(0, photo.height - side + 1))
            crop = photo.crop((left, top, left + side, top + side)).resize((256, 256))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop.save(root / name / f"{name} {i:02d}.jpg", quality=90)
    (root / "cat" / "empty.jpg").write_bytes(b"")
    (root / "coffee" / "notes.png").write_text("not an image")
    return root


def folder_views(window, out: Path, tmp: Path) -> None:
    """Transfer learning: the folder's summary, the backbone summary, frozen vs fine-tuned, classification."""
    folder = photo_folder(tmp / "cat or coffee")
    window.data_panel.use_folder(str(folder))
    wait_for(window.data_panel.loaded)
    window.tabs.setCurrentWidget(window.data_panel)
    wait_until(lambda: window.data_panel.aug_images is not None and window.data_panel.aug_images.ndim == 4)
    settle()
    save(window, out, "folder-data")
    window.data_panel.views.setCurrentIndex(2)
    save(window, out, "folder-augmentation")
    window.data_panel.views.setCurrentIndex(0)
    window.tabs.setCurrentWidget(window.doctor_panel)
    window.doctor_panel.start_check()
    wait_for(window.doctor_panel.checked)
    window.doctor_panel.views.setCurrentIndex(1)  # the near-duplicate groups (no photo here looks mislabelled)
    save(window, out, "check-data")
    panel = window.model_panel
    panel.epochs_spin.setValue(5)
    panel.name_edit.setText("")
    wait_until(lambda: "Backbone" in panel.summary_label.text())
    window.tabs.setCurrentWidget(panel)
    save(window, out, "folder-model")
    window.start_compare()
    wait_for(window.trainingFinished)
    window.tabs.setCurrentWidget(window.runs_panel)
    table = window.runs_panel.table
    table.clearSelection()
    for row in (0, 1):  # the two newest runs: fine-tuned and frozen
        table.selectionModel().select(table.model().index(row, 0),
                                      QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    window.runs_panel.compare_tabs.setCurrentIndex(1)
    settle()
    save(window, out, "folder-compare")
    whole = [tmp / "whole cat.jpg", tmp / "whole coffee.jpg"]
    for source, target in zip(("chelsea.png", "coffee.png"), whole, strict=True):
        Image.open(RESOURCES / source).convert("RGB").save(target)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in whole])
    window.classify_panel.use_run(window.runs_panel.runs[0].run_id)
    window.handle_drop(mime)
    wait_for(window.classify_panel.classified, 120000)
    save(window, out, "folder-classify")
    window.classify_panel.trust.heatmap_box.setChecked(True)  # classifies the shown photos again, with heatmaps
    wait_for(window.classify_panel.classified, 120000)
    save(window, out, "folder-classify-heatmap")


def main() -> int:
    parser = argparse.ArgumentParser(description="Render the README screenshots")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "screenshots"))
    parser.add_argument("--size", default=f"{SIZE[0]}x{SIZE[1]}", help="window size, e.g. 1920x1080")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from transferlab.gui.main_window import MainWindow
    from transferlab.gui.settings import AppSettings

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="transferlab-shots-"))
    window = MainWindow(AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)),
                        RunStore(tmp / "runs"))
    window.resize(*size)
    window.show()
    wait_for(window.data_panel.loaded)
    window.data_panel.select_digit(int(window.data_panel._grid_indices[3, 2]))
    wait_for(window.data_panel.augmented, 120000)
    save(window, out, "data")
    window.data_panel.views.setCurrentIndex(1)
    save(window, out, "data-pixels")
    window.data_panel.views.setCurrentIndex(2)
    save(window, out, "data-augmentation")

    panel = window.model_panel
    window.tabs.setCurrentWidget(panel)
    panel.set_mnist_model("ann")
    panel.train_limit.setValue(6000)
    panel.test_limit.setValue(2000)
    panel.epochs_spin.setValue(4)
    panel.name_edit.setText("dense baseline")
    wait_for(panel.summaryShown)
    first = window.start_training()
    assert first is not None
    wait_for(window.trainingFinished)

    panel.set_mnist_model("cnn")
    panel.train_limit.setValue(6000)
    panel.test_limit.setValue(2000)
    panel.epochs_spin.setValue(4)
    panel.stop_check.setChecked(False)
    panel.name_edit.setText("seed CNN")
    wait_for(panel.summaryShown)
    window.tabs.setCurrentWidget(panel)
    save(window, out, "model")
    window.start_training()
    result = wait_for(window.trainingFinished)[0]
    window.tabs.setCurrentWidget(window.training_panel)
    save(window, out, "training")
    window.training_panel.zoom_check.setChecked(True)
    save(window, out, "training-zoomed")
    window.training_panel.zoom_check.setChecked(False)

    window.tabs.setCurrentWidget(window.results_panel)
    wait_for(window.results_panel.shown, 30000) if window.results_panel.results is None else None
    save(window, out, "results")
    window.results_panel.show_cell(4, 9)
    save(window, out, "results-cell")
    window.results_panel.tabs.setCurrentWidget(window.results_panel.calibration_page)
    save(window, out, "results-calibration")
    window.results_panel.tabs.setCurrentIndex(0)

    window.tabs.setCurrentWidget(window.runs_panel)
    window.runs_panel.table.selectAll()
    save(window, out, "compare")
    window.runs_panel.compare_tabs.setCurrentIndex(2)
    save(window, out, "compare-per-class")
    window.runs_panel.compare_tabs.setCurrentIndex(3)
    save(window, out, "compare-config")

    seven = digit_png(tmp, "seven.png", [[(30, 30), (110, 30), (60, 120)]])
    one = digit_png(tmp, "one.png", [[(70, 15), (70, 125)], [(50, 35), (70, 15)]])
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(seven)), QUrl.fromLocalFile(str(one))])
    window.classify_panel.use_run(result.run_id)
    window.handle_drop(mime)
    wait_for(window.classify_panel.classified, 120000)
    save(window, out, "classify")
    folder_views(window, out, tmp)
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
