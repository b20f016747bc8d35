"""The runs view: a damaged run is listed with its reason and hides nothing; Delete asks first, moves the runs to
the trash and offers Undo; Empty trash asks too. QMessageBox.question is answered by the test (no dialog opens)."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from transferlab.core.config import mnist_preset
from transferlab.core.runs.store import RunStore

YES, NO = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


@pytest.fixture
def view(qtbot, tmp_path):
    from transferlab.gui.runs_panel import (
        RunsPanel,  # imported here, as in the other GUI tests (matplotlib's Qt backend)
    )

    store = RunStore(tmp_path / "runs")
    ids = []
    for model in ("ann", "cnn", "fast"):
        run = store.create(mnist_preset(model))
        store.set_status(run.run_id, "finished")
        store.write_json(run.run_id, "metrics.json", {"accuracy": 0.9, "loss": 0.3})
        ids.append(run.run_id)
    panel = RunsPanel(store)
    qtbot.addWidget(panel)
    messages: list[tuple[str, str]] = []
    panel.message.connect(lambda text, level: messages.append((level, text)))
    panel.refresh()
    return panel, store, ids, messages


def _answers(monkeypatch, *answers: QMessageBox.StandardButton) -> list[str]:
    """Answer the next QMessageBox.question calls in turn; returns the questions asked."""
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return answers[len(asked) - 1]

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def _shown_ids(panel) -> set[str]:
    return {panel.table.item(row, 1).text() for row in range(panel.table.rowCount())}


def test_delete_asks_first_and_no_keeps_every_run(view, monkeypatch, qtbot):
    panel, store, ids, _ = view
    asked = _answers(monkeypatch, NO)
    panel.select(ids[:2])
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and "Delete these 2 runs?" in asked[0] and "undo" in asked[0]
    assert _shown_ids(panel) == set(ids) and store.trashed() == []
    assert not panel.undo_bar.isVisible()


def test_delete_moves_runs_to_the_trash_and_undo_brings_them_back(view, monkeypatch, qtbot):
    panel, store, ids, messages = view
    panel.setMinimumSize(panel.minimumSizeHint())  # offscreen Qt warns (fatal in tests) when it would change
    panel.show()
    changed: list[bool] = []
    panel.changed.connect(lambda: changed.append(True))
    _answers(monkeypatch, YES)
    panel.select(ids[:2])
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    assert _shown_ids(panel) == {ids[2]}
    assert {run.run_id for run in store.trashed()} == set(ids[:2])
    assert panel.undo_bar.isVisible() and panel.undo_label.text() == "Deleted 2 runs (moved to the trash)."
    assert panel.empty_trash_button.text() == "Empty trash (2)" and panel.empty_trash_button.isEnabled()

    qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    assert _shown_ids(panel) == set(ids) and store.trashed() == []
    assert sorted(panel.selected_ids()) == sorted(ids[:2])
    assert not panel.undo_bar.isVisible() and not panel.empty_trash_button.isEnabled()
    assert messages[-1] == ("success", "Restored 2 runs.")
    assert changed == [True, True]


def test_empty_trash_asks_and_then_removes_for_good(view, monkeypatch, qtbot):
    panel, store, ids, _ = view
    asked = _answers(monkeypatch, YES, NO, YES)
    panel.select([ids[0]])
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.empty_trash_button, Qt.MouseButton.LeftButton)  # No
    assert "Remove the 1 deleted run in the trash for good?" in asked[1] and "cannot be undone" in asked[1]
    assert [run.run_id for run in store.trashed()] == [ids[0]]
    qtbot.mouseClick(panel.empty_trash_button, Qt.MouseButton.LeftButton)  # Yes
    assert store.trashed() == [] and not (store.root / ".trash" / ids[0]).exists()
    assert not panel.undo_bar.isVisible() and not panel.empty_trash_button.isEnabled()
    assert _shown_ids(panel) == set(ids[1:])


def test_a_run_still_training_is_not_deleted(view, monkeypatch, qtbot):
    panel, store, ids, messages = view
    training = store.create(mnist_preset("ann")).run_id  # running in this (live) process
    panel.refresh()
    _answers(monkeypatch, YES)
    panel.select([ids[0], training])
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    assert messages[-1][0] == "error" and "still training" in messages[-1][1]
    assert _shown_ids(panel) == {*ids, training} and store.trashed() == []
    assert not panel.undo_bar.isVisible()


def test_damaged_runs_are_listed_with_the_reason_and_hide_nothing(view):
    panel, store, ids, messages = view
    damages = {"metrics.json": "[]", "config.json": "null", "history.json": "42",
               "status.json": json.dumps({"status": "finished", "created": "yesterday"})}
    damaged = []
    for name, text in damages.items():
        run = store.create(mnist_preset("ann"))
        (run.path / name).write_text(text)
        damaged.append(run.run_id)
    folder_status = store.create(mnist_preset("ann"))
    (folder_status.path / "status.json").unlink()
    (folder_status.path / "status.json").mkdir()  # a folder where status.json should be
    damaged.append(folder_status.run_id)
    panel.refresh()

    assert _shown_ids(panel) == {*ids, *damaged}
    rows = {panel.table.item(r, 1).text(): r for r in range(panel.table.rowCount())}
    for run_id in damaged:
        status = panel.table.item(rows[run_id], 2).text()
        assert status.startswith("damaged (") and panel.table.item(rows[run_id], 2).toolTip()
    assert "metrics.json: expected a JSON object" in panel.table.item(rows[damaged[0]], 2).text()
    assert "status.json: expected a file, got a folder" in panel.table.item(rows[damaged[-1]], 2).text()

    panel.select([damaged[0]])
    assert not panel.results_button.isEnabled() and not panel.export_button.isEnabled()
    assert not panel.classify_button.isEnabled() and panel.delete_button.isEnabled()
    panel.select([ids[0], ids[1], damaged[1]])  # compares the healthy ones, says the damaged one is left out
    assert sorted(panel.comparison["runs"]) == sorted(ids[:2])
    assert "1 damaged run(s) left out" in panel.compare_hint.text()
    assert not [m for m in messages if m[0] == "error"]
