"""Data, classify, compare, results, settings and launcher behaviour of the GUI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QSplitter

from tests.gui.conftest import make_class_folder


def _mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


@pytest.mark.slow
def test_first_start_shows_mnist_ready_to_train(qtbot, make_window):
    window = make_window()
    panel = window.data_panel
    assert panel.source() == ("mnist", "")
    assert "60,000" in panel.info_label.text()
    assert window.train_button.isEnabled()
    assert panel.samples.rows == 10
    value = panel.pixel_table.item(14, 14)  # the middle of a digit has ink
    assert value is not None
    with qtbot.waitSignal(window.model_panel.summaryShown, timeout=30000):
        window.model_panel.refresh_summary()
    assert window.model_panel.summary_table.rowCount() > 3
    assert "trainable" in window.model_panel.summary_label.text()
    qtbot.waitUntil(lambda: window.data_panel.aug_grid.rows == 2, timeout=30000)
    panel.select_digit(7)
    assert panel.selected_index == 7


def test_accurate_mnist_choice_applies_its_preset_and_says_what_it_costs(make_window):
    from transferlab.core.config import mnist_preset

    window = make_window(wait_data=False)
    panel = window.model_panel
    panel.set_mnist_model("accurate")
    title = panel.model_combo.currentText()
    assert "99.6 %" in title and re.search(r"about \d+x the fast CNN's time", title)  # what it costs
    config = panel.build_config("mnist")
    preset = mnist_preset("accurate")
    assert (config.model, config.augment) == ("accurate", True)
    assert (config.fit.epochs, config.fit.batch_size, config.fit.lr_schedule) == (
        preset.fit.epochs, preset.fit.batch_size, "onecycle")
    assert config.fit.learning_rate == pytest.approx(preset.fit.learning_rate)
    panel.set_mnist_model("fast")  # and back: the fast preset's label smoothing travels with the choice
    assert panel.build_config("mnist").fit.label_smoothing == mnist_preset("fast").fit.label_smoothing == 0.1


@pytest.mark.slow
def test_dropped_image_is_classified(qtbot, make_window, trained_store, digit_png):
    window = make_window(trained_store)
    assert window.classify_panel.run_combo.count() == 2
    with qtbot.waitSignal(window.classify_panel.classified, timeout=30000) as done:
        mime = _mime(digit_png)  # the event does not own it: keep a reference
        event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        window.dropEvent(event)
    predictions = done.args[0]
    assert len(predictions) == 1 and not predictions[0].error
    assert predictions[0].label in [str(d) for d in range(10)]
    assert predictions[0].seen.shape == (28, 28)
    assert window.tabs.currentWidget() is window.classify_panel
    rows = window.classify_panel.results_layout.count() - 1
    assert rows == 1
    # a second drop uses the cached model
    with qtbot.waitSignal(window.classify_panel.classified, timeout=10000):
        window.handle_drop(_mime(digit_png, digit_png))
    assert len(window.classify_panel.predictions) == 2


@pytest.mark.slow
def test_unreadable_image_shows_its_error(qtbot, make_window, trained_store, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    window = make_window(trained_store)
    with qtbot.waitSignal(window.classify_panel.classified, timeout=30000) as done:
        window.handle_drop(_mime(bad))
    assert done.args[0][0].error


@pytest.mark.slow
def test_compare_view_shows_two_runs(qtbot, make_window, trained_store):
    window = make_window(trained_store)
    panel = window.runs_panel
    assert panel.table.rowCount() == 2
    with qtbot.waitSignal(panel.compared, timeout=5000) as done:
        panel.table.selectAll()
    assert len(done.args[0]) == 2
    assert len(panel.curves.ax_acc.get_lines()) == 4  # two runs × (training, validation)
    assert panel.config_table.columnCount() == 2
    rows = [panel.config_table.verticalHeaderItem(r).text() for r in range(panel.config_table.rowCount())]
    assert "fit.learning_rate" in rows
    assert panel.metrics_table.rowCount() > 2
    assert panel.per_class_table.rowCount() == 10


@pytest.mark.slow
def test_results_confusion_cells_list_their_images(qtbot, make_window, trained_store):
    window = make_window(trained_store)
    run_id = window.runs_panel.runs[0].run_id
    with qtbot.waitSignal(window.results_panel.shown, timeout=30000):
        window.show_results(run_id)
    panel = window.results_panel
    assert panel.results is not None and panel.results.report is not None
    matrix = np.asarray(panel.results.report.confusion_matrix)
    assert panel.misclassified.count() == min(120, int(matrix.sum() - np.trace(matrix)))
    off = np.argwhere((matrix > 0) & ~np.eye(len(matrix), dtype=bool))[0]
    panel.show_cell(int(off[0]), int(off[1]))
    assert panel.cell_list.count() == matrix[off[0], off[1]]
    panel.show_cell(3, 3)
    assert panel.cell_list.count() == min(120, matrix[3, 3])
    ids, note = panel.cell_ids(3, 3)  # correct cells are exact too: every sample's prediction is stored
    assert len(ids) == matrix[3, 3] and note == ""
    assert window.training_panel.curves.epoch_points("loss") == 2


@pytest.mark.slow
def test_bad_folder_shows_a_message_and_the_window_stays_usable(qtbot, make_window, tmp_path):
    window = make_window()
    one_class = make_class_folder(tmp_path / "one", {"cats": 3})
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.handle_drop(_mime(one_class))
    assert window.message_bar.level == "error"
    assert window.message_bar.isVisible()
    assert "class" in window.message_bar.text
    assert not window.message_bar.text.startswith("DataError")  # the error's own message, not its type
    assert window.start_training() is None  # refused with a message, not a crash
    assert "can't be used" in window.message_bar.text
    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_folder(str(empty))
    assert window.message_bar.level == "error"
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_mnist()
    assert window.data_panel.source() == ("mnist", "")
    assert window.train_button.isEnabled()


@pytest.mark.slow
def test_good_folder_summary(qtbot, make_window, tmp_path):
    root = make_class_folder(tmp_path / "shapes", {"red": 4, "green": 3})
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    window = make_window()
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_folder(str(root))
    panel = window.data_panel
    assert panel.scan_summary["counts"] == {"red": 4, "green": 3}
    assert panel.skipped_list.count() == 1
    assert "broken.jpg" in panel.skipped_list.item(0).text()
    assert panel.samples.rows == 2
    assert window.model_panel.folder_box.isVisibleTo(window.model_panel)
    config = window.model_panel.build_config(*panel.source())
    assert config.kind == "folder" and config.data_dir == str(root)


@pytest.mark.slow
def test_folder_augmentation_preview_shows_the_clicked_image_before_and_after(qtbot, make_window, tmp_path):
    root = make_class_folder(tmp_path / "shapes", {"red": 3, "green": 3}, size=48)
    window = make_window()
    panel = window.data_panel
    with qtbot.waitSignal(panel.augmented, timeout=30000):  # the first image of the first class, once scanned
        panel.use_folder(str(root))
    assert panel.views.isTabEnabled(2) and not panel.views.isTabEnabled(1)  # no pixel table for photos
    assert panel.selected_file is not None and panel.selected_file.parent.name == "green"
    assert "flip" in panel.aug_caption.text() and "shift" not in panel.aug_caption.text()
    images = panel.aug_images
    assert images is not None and images.shape == (9, 224, 224, 3) and images.dtype == np.uint8
    assert all(np.abs(draw.astype(int) - images[0]).mean() > 1 for draw in images[1:])  # each draw changed it
    assert not panel.aug_grid.pixmap().isNull() and not panel.aug_original.pixmap().isNull()
    with qtbot.waitSignal(panel.augmented, timeout=30000):
        panel._on_sample_clicked(1, 2)  # a click on the sample grid: red (classes sort), third image
    assert panel.selected_file == root / panel._folder_paths[1][2] and panel.selected_file.parent.name == "red"
    assert panel.views.currentIndex() == 2
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        panel.use_mnist()  # back to digits: the preview is the digits' again
    qtbot.waitUntil(lambda: panel.aug_images is not None and panel.aug_images.ndim == 3, timeout=30000)
    assert "shift" in panel.aug_caption.text()


@pytest.mark.slow
def test_window_size_splitters_and_recent_folders_are_remembered(qtbot, make_window, tmp_path):
    root = make_class_folder(tmp_path / "pets", {"a": 2, "b": 2})
    window = make_window()
    window.resize(1000, 700)
    window.findChild(QSplitter, "data_splitter").setSizes([300, 700])
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_folder(str(root))
    sizes = window.findChild(QSplitter, "data_splitter").sizes()
    window.close()
    again = make_window()
    assert abs(again.width() - 1000) <= 40 and abs(again.height() - 700) <= 40  # the offscreen frame varies
    assert again.data_panel.source() == ("folder", str(root))
    assert again.data_panel.folder_combo.itemText(0) == str(root)
    restored = again.findChild(QSplitter, "data_splitter").sizes()
    assert abs(restored[0] / sum(restored) - sizes[0] / sum(sizes)) < 0.05


def test_launcher_does_not_load_qt_for_the_cli():
    code = ("import sys, gui.launcher; assert 'PySide6' not in sys.modules; "
            "import gui; assert 'PySide6' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_launcher_passes_arguments_to_the_cli(monkeypatch):
    import transferlab.core.cli
    from transferlab.gui import launcher

    seen = []
    monkeypatch.setattr(transferlab.core.cli, "main", lambda argv: seen.append(argv) or 3)
    assert launcher.main(["runs", "list"]) == 3
    assert seen == [["runs", "list"]]


def test_drop_of_other_files_warns(qtbot, make_window, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    window = make_window()
    assert not window.handle_drop(_mime(other))
    assert window.message_bar.level == "warning"
    assert QPoint(0, 0).isNull()


@pytest.mark.slow
def test_folder_frozen_vs_finetuned_trains_both_and_compares(qtbot, make_window, tmp_path):
    root = make_class_folder(tmp_path / "shapes", {"red": 6, "green": 6})
    window = make_window()
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_folder(str(root))
    panel = window.model_panel
    # The backbone's summary is built off the GUI thread after a short debounce; until then the last one shows.
    # (Building EfficientNet-Lite0 takes seconds on an idle machine, a minute or more on a loaded one.)
    qtbot.waitUntil(lambda: "Backbone" in panel.summary_label.text(), timeout=180000)
    assert panel.summary_table.rowCount() >= 3
    frozen = panel.summary
    assert frozen.trainable_params == 1280 * 2 + 2  # only the new head trains: 2 classes on 1280 features
    assert frozen.frozen_params > 3_000_000
    panel.finetune_radio.setChecked(True)  # the summary follows the mode, and so does the learning rate
    qtbot.waitUntil(lambda: panel.summary is not frozen and panel.summary.trainable_params > 100_000, timeout=180000)
    assert panel.lr_spin.value() == pytest.approx(1e-4)
    panel.epochs_spin.setValue(1)  # set for the fine-tuned arm only
    panel.frozen_radio.setChecked(True)
    assert panel.lr_spin.value() == pytest.approx(1e-2) and panel.epochs_spin.value() > 1  # the frozen mode's own
    panel.epochs_spin.setValue(1)
    assert panel.explicit_fit() == {"frozen": {"epochs": 1}, "finetune": {"epochs": 1}}
    with qtbot.waitSignal(window.trainingFinished, timeout=120000) as done:
        qtbot.mouseClick(panel.compare_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert result.frozen.status == "finished" and result.finetune.status == "finished"
    # Each arm trained at its own mode's learning rate, whatever the form showed last; the message says how sure.
    assert [result.settings[arm]["learning_rate"] for arm in ("frozen", "finetune")] == pytest.approx([1e-2, 1e-4])
    assert result.headline and result.headline in window.message_bar.text
    assert sorted(window.runs_panel.selected_ids()) == sorted(result.run_ids)
    assert window.tabs.currentWidget() is window.runs_panel
    rows = [window.runs_panel.config_table.verticalHeaderItem(r).text()
            for r in range(window.runs_panel.config_table.rowCount())]
    assert "mode" in rows


@pytest.mark.slow
def test_export_from_the_runs_list(qtbot, make_window, trained_store, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    target = tmp_path / "model.keras"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: (str(target), ""))  # the user's answer
    window = make_window(trained_store)
    panel = window.runs_panel
    panel.select([panel.runs[0].run_id])
    assert panel.export_button.isEnabled()
    with qtbot.waitSignal(panel.exported, timeout=60000) as done:
        qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    assert Path(done.args[0]) == target and target.exists()
    assert window.message_bar.level == "success"


def test_drops_are_taken_as_a_copy_never_a_move(qtbot, make_window, tmp_path):
    """A file manager that honours Move deletes what it "moved": every drop is accepted as Copy, a drag that
    offers only Move is refused, and no child widget (a text field would take the proposed Move) takes drops."""
    from PySide6.QtGui import QDragEnterEvent
    from PySide6.QtWidgets import QWidget

    image = tmp_path / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(image)
    window = make_window()
    mime = _mime(image)
    copy_or_move = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    enter = QDragEnterEvent(QPointF(50, 50), copy_or_move, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.ShiftModifier)
    assert enter.proposedAction() == Qt.DropAction.MoveAction  # Shift: the source asks for a move
    window.dragEnterEvent(enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction

    drop = QDropEvent(QPointF(50, 50), copy_or_move, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.ShiftModifier)
    assert drop.proposedAction() == Qt.DropAction.MoveAction
    window.dropEvent(drop)
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.CopyAction
    assert window.tabs.currentWidget() is window.classify_panel  # the drop was used

    move_only = QDropEvent(QPointF(50, 50), Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
    window.dropEvent(move_only)
    assert not move_only.isAccepted()
    assert window.message_bar.level == "warning" and "never moves" in window.message_bar.text
    assert image.exists()
    assert [w.objectName() or type(w).__name__ for w in window.findChildren(QWidget) if w.acceptDrops()] == []


def test_thumbnails_use_the_same_guarded_decoding(tmp_path):
    """Thumbnails of files the model refuses are blank at once: a FIFO does not block the worker (Qt's reader
    would wait on it forever), PostScript is not rendered, a good image is shown."""
    import os
    import threading

    from transferlab.gui.widgets import thumbnail

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    eps = tmp_path / "holiday.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n")
    good = tmp_path / "good.png"
    Image.fromarray(np.full((40, 80, 3), 200, np.uint8)).save(good)
    results: dict[str, bool] = {}
    worker = threading.Thread(target=lambda: results.update(
        {p.name: thumbnail(p, 32).isNull() for p in (fifo, eps, good)}), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # release the blocked reader before failing, so the suite goes on
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
    assert results == {"pipe.png": True, "holiday.jpg": True, "good.png": False}
    assert thumbnail(good, 32).width() == 32 and thumbnail(good, 32).height() == 16
