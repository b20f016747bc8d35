"""What a first-time user expects of the desktop app (issue 11): Classify follows the newest finished run and the
runs view, the message line never moves the tabs, a menu bar with shortcuts, Esc stops a run, the runs table
can be renamed, sorted and shows compare pairs and the best run, the per-class difference is "fine-tuned −
frozen", and Export asks where to save."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtWidgets import QFileDialog, QLabel

from tests.gui.conftest import quick_mnist, start_long_run
from transferlab.core.config import FolderConfig
from transferlab.core.runs.store import RunStore


def _mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _copy_run(source: RunStore, run_id: str, store: RunStore, new_id: str, created: float,
              status: str = "finished", pid: int | None = None) -> str:
    """A copy of a trained run under another id and creation time (a real model, no training)."""
    shutil.copytree(source.root / run_id, store.root / new_id)
    status_path = store.root / new_id / "status.json"
    state = json.loads(status_path.read_text())
    state.update(status=status, created=created)
    if pid is not None:
        state.update(pid=pid, pid_start="gone")
    status_path.write_text(json.dumps(state))
    return new_id


@pytest.fixture
def own_store(trained_store, tmp_path) -> RunStore:
    """The two trained runs copied into a store of this test (it may add, rename and delete runs)."""
    store = RunStore(tmp_path / "own" / "runs")
    store.root.mkdir(parents=True)
    older, newer = sorted(trained_store.list(), key=lambda run: run.created)
    _copy_run(trained_store, older.run_id, store, "20200101-000000-mnist-ann-aaaa", 1_577_836_800.0)
    _copy_run(trained_store, newer.run_id, store, "20200102-000000-mnist-ann-bbbb", 1_577_923_200.0)
    return store


OLDER, NEWER = "20200101-000000-mnist-ann-aaaa", "20200102-000000-mnist-ann-bbbb"


# ---- 1. Classify follows the model you just trained ----

@pytest.mark.slow
def test_classify_defaults_to_the_newest_finished_run_never_an_interrupted_one(qtbot, make_window, own_store,
                                                                                trained_store):
    dead = _copy_run(trained_store, trained_store.list()[0].run_id, own_store, "20200103-000000-mnist-ann-dead",
                     1_578_009_600.0, status="running", pid=2**22 + 12345)  # its process is gone
    assert own_store.get(dead).status == "interrupted"
    window = make_window(own_store)
    panel = window.classify_panel
    assert panel.run_combo.count() == 3  # the interrupted run is listed (it has a model) …
    assert panel.run_id() == NEWER  # … but never chosen by default
    assert "No trained model" not in panel.status.text()


@pytest.mark.slow
def test_classify_follows_a_run_that_just_finished(qtbot, make_window, own_store):
    window = make_window(own_store)
    window.classify_panel.use_run(OLDER)
    quick_mnist(window, epochs=1)
    with qtbot.waitSignal(window.trainingFinished, timeout=90000) as finished:
        window.start_training()
    result = finished.args[0]
    assert result.status == "finished"
    assert window.classify_panel.run_id() == result.run_id
    assert window.runs_panel.selected_ids() == [result.run_id]


@pytest.mark.slow
def test_classify_follows_the_runs_view_and_a_deleted_run_disappears(qtbot, make_window, own_store):
    window = make_window(own_store)
    runs = window.runs_panel
    runs.select([OLDER])  # the user's selection in the runs view
    assert window.classify_panel.run_id() == OLDER
    own_store.delete_runs([OLDER])
    runs.refresh()
    combo = window.classify_panel.run_combo
    assert [combo.itemData(i) for i in range(combo.count())] == [NEWER]
    assert window.classify_panel.run_id() == NEWER


@pytest.mark.slow
def test_the_no_model_hint_goes_once_a_model_exists(qtbot, make_window, trained_store, tmp_path):
    store = RunStore(tmp_path / "later" / "runs")
    window = make_window(store)
    panel = window.classify_panel
    assert "No trained model yet" in panel.status.text()
    store.root.mkdir(parents=True, exist_ok=True)
    _copy_run(trained_store, trained_store.list()[0].run_id, store, NEWER, 1_577_923_200.0)
    window.runs_panel.refresh()
    assert panel.run_id() == NEWER
    assert "No trained model yet" not in panel.status.text()


@pytest.mark.slow
def test_changing_the_model_classifies_the_shown_images_again(qtbot, make_window, own_store, digit_png):
    window = make_window(own_store)
    panel = window.classify_panel
    with qtbot.waitSignal(panel.classified, timeout=30000):
        window.handle_drop(_mime(digit_png))
    assert panel.run_id() == NEWER and len(panel.predictions) == 1
    answers: list[object] = []
    panel.classified.connect(answers.append)
    with qtbot.waitSignal(panel.classified, timeout=30000) as again:
        panel.use_run(OLDER)
        assert panel.predictions == []  # the old model's answers are not left on screen
    assert [p.file for p in again.args[0]] == [str(digit_png)]
    assert OLDER in panel.status.text()
    qtbot.waitUntil(lambda: not panel.tasks.running() and not panel.trust.tasks.running(), timeout=30000)
    assert not panel.tasks.running() and len(answers) == 1  # classified again once, not twice


# ---- 2. the per-class difference after a compare ----

def _folder_run(store: RunStore, data: Path, mode: str, recalls: list[float], accuracy: float,
                init_from: str | None = None) -> str:
    run = store.create(FolderConfig(data_dir=str(data), mode=mode, init_from_run=init_from,
                                    split_from_run=init_from))
    store.set_status(run.run_id, "finished")
    per_class = [{"class": name, "precision": r, "recall": r, "f1": r, "support": 10}
                 for name, r in zip(("cat", "dog"), recalls, strict=True)]
    store.write_json(run.run_id, "metrics.json", {"accuracy": accuracy, "loss": 0.5, "per_class": per_class})
    return run.run_id


@pytest.fixture
def compare_pair(qtbot, tmp_path):
    from transferlab.gui.runs_panel import RunsPanel

    store = RunStore(tmp_path / "pair" / "runs")
    frozen = _folder_run(store, tmp_path, "frozen", [0.6, 0.9], 0.75)
    time.sleep(0.01)  # distinct creation times (ids are unique anyway)
    tuned = _folder_run(store, tmp_path, "finetune", [0.8, 0.85], 0.825, init_from=frozen)
    panel = RunsPanel(store)
    qtbot.addWidget(panel)
    panel.refresh()
    return panel, store, frozen, tuned


def test_per_class_difference_is_fine_tuned_minus_frozen_and_green_when_better(compare_pair):
    from transferlab.gui.runs_panel import BETTER, WORSE

    panel, _store, frozen, tuned = compare_pair
    panel.select([frozen, tuned])
    table = panel.per_class_table
    column = table.columnCount() - 1
    assert table.horizontalHeaderItem(column).text() == "recall fine-tuned − frozen"
    rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    cat, dog = table.item(rows["cat"], column), table.item(rows["dog"], column)
    assert cat.text() == "+0.200" and cat.background().color() == BETTER  # fine-tuning's gain is a gain
    assert dog.text() == "-0.050" and dog.background().color() == WORSE
    table.sortByColumn(column, Qt.SortOrder.AscendingOrder)  # headers sort, numbers as numbers
    assert [table.item(r, 0).text() for r in range(2)] == ["dog", "cat"]
    panel.select([frozen])  # down to one run: nothing stale stays in the compare pane
    assert table.rowCount() == 0 and panel.metrics_table.rowCount() == 0
    assert "two or more runs" in panel.curves.placeholder_text


def test_runs_of_a_comparison_are_grouped_and_the_best_is_marked(compare_pair):
    from transferlab.gui.runs_panel import ACCURACY_COLUMN, PAIR_COLUMN

    panel, _store, frozen, tuned = compare_pair
    rows = {panel.row_id(r): r for r in range(panel.table.rowCount())}
    assert panel.table.item(rows[frozen], PAIR_COLUMN).text() == "pair 1 · frozen"
    assert panel.table.item(rows[tuned], PAIR_COLUMN).text() == "pair 1 · fine-tuned"
    assert panel.table.item(rows[tuned], ACCURACY_COLUMN).text() == "★ 82.50 %"
    assert panel.table.item(rows[frozen], ACCURACY_COLUMN).text() == "75.00 %"


# ---- 3. the runs table ----

def test_rename_and_notes_are_stored_with_the_run(qtbot, compare_pair):
    panel, store, frozen, _tuned = compare_pair
    assert panel.set_label(frozen, "tux4 baseline", "lr 1e-3, no augmentation")
    assert panel.selected_ids() == [frozen]
    row = panel.table.currentRow() if panel.table.currentRow() >= 0 else 0
    row = {panel.row_id(r): r for r in range(panel.table.rowCount())}[frozen]
    assert panel.table.item(row, 0).text().startswith("tux4 baseline — ")
    assert "lr 1e-3" in panel.table.item(row, 0).toolTip()
    again = RunStore(store.root).get(frozen)  # as after a restart
    assert (again.label, again.notes) == ("tux4 baseline", "lr 1e-3, no augmentation")
    assert not panel.set_label(frozen, "two\nlines")  # refused with a message, nothing written
    assert RunStore(store.root).get(frozen).label == "tux4 baseline"


def test_a_long_failure_reason_is_elided_and_columns_sort(qtbot, compare_pair):
    from transferlab.gui.runs_panel import ACCURACY_COLUMN, STATUS_COLUMN, STATUS_WIDTH

    panel, store, frozen, tuned = compare_pair
    failed = store.create(FolderConfig(data_dir=str(store.root), mode="frozen")).run_id
    reason = "ResourceExhaustedError: " + "out of memory while allocating a tensor " * 10
    store.set_status(failed, "failed", reason)
    panel.resize(1280, 600)
    panel.setMinimumSize(panel.minimumSizeHint())  # offscreen Qt warns (fatal in tests) when it would change
    panel.show()
    panel.refresh()
    assert panel.table.columnWidth(STATUS_COLUMN) == STATUS_WIDTH  # the reason does not widen the column
    row = {panel.row_id(r): r for r in range(panel.table.rowCount())}[failed]
    assert reason in panel.table.item(row, STATUS_COLUMN).toolTip()
    panel.table.sortByColumn(ACCURACY_COLUMN, Qt.SortOrder.DescendingOrder)
    assert [panel.row_id(r) for r in range(3)] == [tuned, frozen, failed]  # by number: 82.5 > 75 > none
    panel.select([frozen])
    assert panel.selected_ids() == [frozen]  # the selection follows the sorted rows


# ---- 5. the message line does not move the layout ----

@pytest.mark.slow
def test_a_message_does_not_move_the_tab_bar(qtbot, make_window):
    window = make_window()
    window.resize(1280, 800)
    qtbot.wait(10)

    def tab_bar_y() -> int:
        return window.tabs.tabBar().mapTo(window, QPoint(0, 0)).y()

    before = tab_bar_y()
    window.show_message("Run 20260101 finished — test accuracy 97.12 %. " * 6, "success")
    qtbot.wait(10)
    assert window.message_bar.isVisible()
    assert tab_bar_y() == before
    window.message_bar.clear()
    qtbot.wait(10)
    assert tab_bar_y() == before
    assert window.source_label.isVisible()  # the data source shows when there is no message


# ---- 10. keyboard and app basics ----

@pytest.mark.slow
def test_menu_bar_and_shortcuts(qtbot, make_window):
    window = make_window()
    titles = [action.text().replace("&", "") for action in window.menuBar().actions()]
    assert titles == ["File", "Run", "View", "Help"]
    shortcuts = dict(window.shortcut_lines())
    assert shortcuts["Ctrl+O"] == "Open folder…" and shortcuts["Ctrl+Q"] == "Quit"
    assert shortcuts["Ctrl+E"] == "Export selected run…" and shortcuts["Esc"] == "Stop"
    assert window.about_action.text() and window.shortcuts_action.text()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    for number in (3, 6, 1):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_0 + number), Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentIndex() == number - 1
    assert not window.model_panel.summary_table.tabKeyNavigation()  # Tab leaves the table
    assert not window.runs_panel.table.tabKeyNavigation()


@pytest.mark.slow
def test_escape_stops_a_run_and_the_title_shows_progress(qtbot, make_window):
    window = make_window()
    start_long_run(qtbot, window)
    assert "%" in window.windowTitle() and "epoch 1/5" in window.windowTitle()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    with qtbot.waitSignal(window.trainingFinished, timeout=20000) as finished:
        qtbot.keyClick(window.tabs.currentWidget(), Qt.Key.Key_Escape)
    assert finished.args[0].status == "stopped"
    assert "%" not in window.windowTitle()


# ---- 4. export ----

@pytest.mark.slow
def test_export_asks_where_writes_labels_and_offers_show_in_folder(qtbot, make_window, own_store, tmp_path,
                                                                   monkeypatch):
    target = tmp_path / "exports" / "digits.keras"
    target.parent.mkdir()
    asked = []

    def save_dialog(parent, caption, suggested, filters, selected):
        asked.append(suggested)
        assert selected == "Keras model (*.keras)" and "TF SavedModel folder (*)" in filters
        return str(target.with_suffix("")), selected  # the user typed no suffix: it is added

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    window = make_window(own_store)
    panel = window.runs_panel
    panel.select([NEWER])
    with qtbot.waitSignal(panel.exported, timeout=60000) as done:
        window.export_action.trigger()
    assert Path(done.args[0]) == target and target.is_file()
    assert (target.parent / "digits.labels.txt").read_text().split() == [str(d) for d in range(10)]
    assert window.message_bar.level == "success" and window.message_bar.action_button.isVisible()
    assert "digits.labels.txt" in window.message_bar.text
    assert window.message_bar.action_button.text() == "Show in folder"
    assert Path(asked[0]).parent == Path.home()
    panel.export_selected()  # the dialog opens in the folder used last time
    assert Path(asked[1]).parent == target.parent
    qtbot.waitUntil(lambda: not panel._exporting, timeout=60000)


def test_the_save_dialogs_file_type_picks_the_export_format():
    from transferlab.gui.runs_panel import export_format

    assert export_format("/x/model", "TensorFlow Lite, int8 quantized (*.tflite)") == "tflite-int8"
    assert export_format("/x/model", "TF SavedModel folder (*)") == "savedmodel"
    assert export_format("/x/model.tflite", "") == "tflite"
    assert export_format("/x/model.keras", "") == "keras"


# ---- 14. status texts ----

@pytest.mark.slow
def test_a_backbone_that_cannot_be_built_disables_train_with_a_plain_message(qtbot, make_window, tmp_path):
    from tests.gui.conftest import make_class_folder

    root = make_class_folder(tmp_path / "shapes", {"red": 3, "green": 3})
    window = make_window()
    window.show_message("MNIST: an old message about the previous data set", "warning")
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        window.data_panel.use_folder(str(root))
    assert window.message_bar.level == ""  # the outdated message went with the data set switch
    panel = window.model_panel
    with qtbot.waitSignal(panel.summaryShown, timeout=60000):
        panel.backbone_combo.setEditText(str(tmp_path / "no-such-savedmodel"))
    assert panel.summary_error and "Error:" not in panel.summary_error
    assert not window.train_button.isEnabled() and not panel.compare_button.isEnabled()
    assert window.start_training() is None  # no failed run is created
    assert window.store.list() == []
    assert window.message_bar.level == "error" and "ModelError" not in window.message_bar.text
    panel.unfreeze_spin.setValue(1)
    assert panel.unfreeze_spin.suffix() == " block"
    panel.unfreeze_spin.setValue(3)
    assert panel.unfreeze_spin.suffix() == " blocks"


def test_error_texts_read_as_sentences():
    from transferlab.gui.widgets import friendly_error

    assert friendly_error("Training could not run: ModelError: expected a backbone, got 'x'") == \
        "Training could not run: expected a backbone, got 'x'"
    assert friendly_error("backbone: <urlopen error [Errno -3] Temporary failure in name resolution>") == \
        "backbone: could not download it (Temporary failure in name resolution)"


def test_a_stopped_compare_is_not_called_done():
    from transferlab.core.records import Comparison, RunEntry
    from transferlab.gui.main_window import _task_status

    def compare(frozen: str | None, tuned: str | None) -> Comparison:
        return Comparison(RunEntry("a" if frozen else None, frozen), RunEntry("b" if tuned else None, tuned))

    assert _task_status(compare("finished", "stopped")) == "stopped"
    assert _task_status(compare("stopped", None)) == "stopped"
    assert _task_status(compare("finished", "failed")) == "failed"
    assert _task_status(compare("finished", "finished")) == "finished"
    assert _task_status(None) == "failed"


# ---- 12. the data view ----

@pytest.mark.slow
def test_data_view_shows_each_skipped_file_once_and_no_empty_box_for_mnist(qtbot, make_window, tmp_path):
    from tests.gui.conftest import make_class_folder

    window = make_window()
    panel = window.data_panel
    assert not panel.skipped_box.isVisible()  # MNIST never skips files: no empty box
    assert "site-packages" not in panel.info_label.text() and "python" not in panel.info_label.text()
    root = make_class_folder(tmp_path / "shapes", {"red": 3, "green": 3})
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    with qtbot.waitSignal(panel.loaded, timeout=30000):
        panel.use_folder(str(root))
    assert panel.skipped_box.isVisible() and panel.skipped_list.count() == 1
    text = panel.skipped_list.item(0).text()
    assert text.count("broken.jpg") == 1 and "expected an image" in text
    assert panel.skipped_list.wordWrap()
    window.resize(1280, 800)
    panel.views.setCurrentIndex(1)
    qtbot.wait(10)
    table = panel.pixel_table
    width = sum(table.columnWidth(c) for c in range(28)) + table.verticalHeader().width()
    assert width <= table.viewport().width() + table.verticalHeader().width()  # all 28 columns fit


# ---- 7. the classify list ----

@pytest.mark.slow
def test_classify_tally_compact_grid_your_labels_score_and_csv(qtbot, make_window, own_store, digit_png, tmp_path):
    import csv

    window = make_window(own_store)
    panel = window.classify_panel
    with qtbot.waitSignal(panel.classified, timeout=30000) as done:
        window.handle_drop(_mime(digit_png, digit_png, digit_png))
    predictions = done.args[0]
    label = predictions[0].label
    assert f"<b>{label}</b> × 3" in panel.tally.text()
    assert panel.results_scroll.verticalScrollBar().value() == 0
    panel.compact_check.setChecked(True)
    assert panel.views.currentWidget() is panel.grid and panel.grid.count() == 3
    other = next(name for name in panel.class_names if name != label)
    assert panel.class_names == [str(d) for d in range(10)]
    panel.set_truth(0, label)  # "does it read my handwriting?"
    panel.set_truth(1, other)
    assert "1 of 2" in panel.score.text() and "50 %" in panel.score.text()
    saved = panel.save_csv(str(tmp_path / "predictions.csv"))
    rows = list(csv.DictReader(Path(saved).read_text(encoding="utf-8").splitlines()))
    assert [row["correct"] for row in rows] == ["yes", "no", ""]
    assert rows[0]["predicted"] == label and rows[1]["true"] == other and rows[0]["file"] == str(digit_png)


# ---- 15. what the CLI offers, in the app ----

@pytest.mark.slow
def test_folder_runs_get_test_split_validation_folder_early_stopping_and_start_from_a_run(qtbot, make_window,
                                                                                         tmp_path):
    from tests.gui.conftest import make_class_folder

    root = make_class_folder(tmp_path / "shapes", {"red": 4, "green": 4})
    store = RunStore(tmp_path / "runs")
    frozen = store.create(FolderConfig(data_dir=str(root), mode="frozen")).run_id
    store.set_status(frozen, "finished")
    (store.root / frozen / "split.json").write_text("{}")
    (store.root / frozen / "model.keras").write_bytes(b"not really a model")  # never loaded here
    window = make_window(store)
    assert "flip" in window.model_panel.augment_check.text() or "shift" in window.model_panel.augment_check.text()
    runs = window.runs_panel
    runs.select([frozen])
    assert runs.from_button.isEnabled() and runs.finetune_from_action.isEnabled()
    with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
        runs.finetune_from_action.trigger()
    assert window.tabs.currentWidget() is window.model_panel
    panel = window.model_panel
    assert "flip" in panel.augment_check.text() and "shift" not in panel.augment_check.text()
    panel.test_spin.setValue(0.2)
    panel.val_dir_edit.setText(str(root))
    panel.early_check.setChecked(True)
    panel.early_spin.setValue(4)
    config = panel.build_config(*window.data_panel.source())
    assert (config.mode, config.init_from_run, config.split_from_run) == ("finetune", frozen, frozen)
    assert config.test_split == 0.2 and config.val_dir == str(root)
    assert config.fit.early_stopping_patience == 4
    window.data_panel.use_mnist()  # another data set: the stored run's split no longer applies
    assert panel.split_from_run == "" and panel.init_from_run == ""


# ---- also expected: a misclassified image full size ----

@pytest.mark.slow
def test_a_misclassified_digit_opens_full_size(qtbot, make_window, own_store):
    window = make_window(own_store)
    with qtbot.waitSignal(window.results_panel.shown, timeout=30000):
        window.show_results(NEWER)
    panel = window.results_panel
    assert panel.misclassified.count() > 0 and "double-click" in panel.misclassified_caption.text()
    panel._open_item(panel.misclassified.item(0))
    assert panel.zoomed.isVisible()
    label = panel.zoomed.findChild(QLabel)
    assert label.pixmap().width() == 336  # 28 × 12: every pixel visible


def test_long_lived_objects_are_frozen_once_the_engine_is_loaded(qtbot, make_window):
    """The first model summary loads TensorFlow, Keras and matplotlib; then the app freezes what it has, so a
    full garbage collection during a run does not walk them while holding the GIL (a ~200 ms window freeze)."""
    import gc

    window = make_window()
    if gc.get_freeze_count() == 0:
        with qtbot.waitSignal(window.model_panel.summaryShown, timeout=60000):
            pass
    assert gc.get_freeze_count() > 10000
