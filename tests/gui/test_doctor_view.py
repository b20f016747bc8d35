"""The "Check data" view: a check on a folder with a planted flipped label, moving it to the suggested class
from the view, a second check from the cache, undo, retrain from the cached features with the cross-validated
spread shown; and the model panel's per-mode settings and cross-validation option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.core.imagefactory import make_textured_folder, textured_image, write_image
from transferlab.core.events import PhaseProgress
from transferlab.core.models.hub_layer import write_tiny_hub_model


@pytest.fixture(scope="module")
def hub_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_hub_model(tmp_path_factory.mktemp("hub") / "tiny", feature_dim=32, image_size=32)


def _flowers_with_a_flipped_label(qtbot, make_window, tmp_path: Path, hub_model: Path):
    """A folder of two textured classes with one amber image filed as bluebell, open in a window whose
    backbone is the tiny hub model."""
    root = make_textured_folder(tmp_path / "flowers", {"amber": 12, "bluebell": 12}, seed=3)
    write_image(root / "bluebell" / "flipped.jpg", textured_image(0, (48, 48), np.random.default_rng(9)))
    window = make_window()
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_folder(str(root))
    window.model_panel.backbone_combo.setEditText(str(hub_model))
    return root, window


@pytest.mark.slow
def test_check_data_move_a_suspect_and_undo(qtbot, make_window, tmp_path: Path, hub_model: Path) -> None:
    root, window = _flowers_with_a_flipped_label(qtbot, make_window, tmp_path, hub_model)
    panel = window.doctor_panel
    assert panel.folder == str(root) and panel.backbone == str(hub_model)
    assert window.model_panel.cv_check.isChecked()  # a small folder: cross-validation on by default
    assert window.tabs.indexOf(panel) == window.tabs.indexOf(window.data_panel) + 1  # right after Data
    window.tabs.setCurrentWidget(panel)
    with qtbot.waitSignal(panel.checked, timeout=120000) as checked:
        qtbot.mouseClick(panel.check_button, Qt.MouseButton.LeftButton)
    report = checked.args[0]
    assert report["suspects"][0]["file"] == "bluebell/flipped.jpg"
    assert panel.suspects.item(0, 0).text() == "bluebell/flipped.jpg" and panel.suspects.item(0, 2).text() == "amber"
    assert "over" in panel.summary_label.text() and "folds" in panel.summary_label.text()

    panel.suspects.selectRow(0)
    assert panel.move_button.isEnabled()
    with qtbot.waitSignal(panel.checked, timeout=120000) as rechecked:
        qtbot.mouseClick(panel.move_button, Qt.MouseButton.LeftButton)
    assert (root / "amber" / "flipped.jpg").is_file() and not (root / "bluebell" / "flipped.jpg").exists()
    assert rechecked.args[0]["embeddings"]["computed"] == 0  # the second check reuses the cached embeddings
    assert "bluebell/flipped.jpg" not in [row["file"] for row in rechecked.args[0]["suspects"]]
    with qtbot.waitSignal(panel.checked, timeout=120000):
        qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    assert (root / "bluebell" / "flipped.jpg").is_file() and not (root / "amber" / "flipped.jpg").exists()

    # Retrain: a frozen run whose features come from the check's cache, cross-validated, shown with its spread.
    window.model_panel.epochs_spin.setValue(5)
    phases: list[str] = []
    with qtbot.waitSignal(window.trainingFinished, timeout=120000) as trained:
        qtbot.mouseClick(panel.retrain_button, Qt.MouseButton.LeftButton)
        # connected before the event loop runs again, so no queued event of the task is missed
        window.training.reported.connect(lambda e: phases.append(e.phase) if isinstance(e, PhaseProgress) else None)
    result = trained.args[0]
    assert result.status == "finished", result.reason
    assert result.run_id and window.store.get(result.run_id).config["mode"] == "frozen"
    assert "reusing the data check's features" in phases  # no second extraction pass
    cv_text = result.metrics["cv"]["text"]
    assert cv_text.endswith("over 5 folds") and " ± " in cv_text
    qtbot.waitUntil(lambda: cv_text in window.results_panel.header.text(), timeout=30000)
    assert cv_text in window.message_bar.text and cv_text in window.training_panel.header.text()
    table = window.runs_panel.table
    row = next(r for r in range(table.rowCount()) if table.item(r, 1).text() == result.run_id)
    assert cv_text in table.item(row, 3).text()
    classify = window.classify_panel.run_combo
    assert cv_text in classify.itemText(classify.findData(result.run_id))


@pytest.mark.slow
def test_model_panel_keeps_each_modes_settings(qtbot, make_window, tmp_path: Path) -> None:
    root = make_textured_folder(tmp_path / "set", {"a": 4, "b": 4}, seed=1)
    window = make_window()
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_folder(str(root))
    panel = window.model_panel
    config = panel.build_config("folder", str(root))
    assert config.fit.learning_rate is None and config.fit.early_stopping_patience  # unset: the mode's default
    assert config.cv_folds == 5 and panel.lr_spin.value() == pytest.approx(1e-2)  # the frozen mode's own rate
    panel.lr_spin.setValue(0.005)
    assert panel.build_config("folder", str(root)).fit.learning_rate == pytest.approx(0.005)
    panel.finetune_radio.setChecked(True)
    assert panel.lr_spin.value() == pytest.approx(1e-4) and panel.build_config("folder", str(root)).cv_folds == 0
    assert panel.explicit_fit() == {"finetune": {}, "frozen": {"learning_rate": pytest.approx(0.005)}}
    assert panel.compare_config(str(root)).cv_folds == 5  # the frozen arm is cross-validated in a compare
    panel.frozen_radio.setChecked(True)
    assert panel.lr_spin.value() == pytest.approx(0.005)  # the frozen mode's own choice comes back


@pytest.mark.slow
def test_exclude_from_the_view_and_a_file_changed_since_the_check_is_refused(qtbot, make_window, tmp_path: Path,
                                                                              hub_model: Path) -> None:
    root, window = _flowers_with_a_flipped_label(qtbot, make_window, tmp_path, hub_model)
    panel = window.doctor_panel
    with qtbot.waitSignal(panel.checked, timeout=120000):
        panel.start_check()
    panel.suspects.selectRow(0)
    assert panel.selected_file() == "bluebell/flipped.jpg"
    changed = root / "bluebell" / "flipped.jpg"
    changed.write_bytes(changed.read_bytes() + b"\0")  # edited on disk after the check
    qtbot.mouseClick(panel.exclude_button, Qt.MouseButton.LeftButton)
    assert window.message_bar.level == "warning" and "Not changed" in window.message_bar.text
    assert changed.is_file() and not (root / "_excluded").exists() and not panel.checking
    with qtbot.waitSignal(panel.checked, timeout=120000):
        panel.start_check()  # the check records the file as it is now
    row = [r["file"] for r in panel.report["suspects"]].index("bluebell/flipped.jpg")
    panel.suspects.selectRow(row)
    with qtbot.waitSignal(panel.checked, timeout=120000) as rechecked:
        qtbot.mouseClick(panel.exclude_button, Qt.MouseButton.LeftButton)
    assert (root / "_excluded" / "bluebell" / "flipped.jpg").is_file() and not changed.exists()
    assert rechecked.args[0]["images"] == 24  # the excluded file is no longer part of the data set
