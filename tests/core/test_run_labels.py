"""A user's own name and notes for a run (label.json): stored atomically with the run, shown by `runs list`,
bad input refused in one line, a bad label.json never makes a run look damaged."""

from __future__ import annotations

import json

import pytest

from transferlab.core.cli import main
from transferlab.core.config import mnist_preset
from transferlab.core.errors import ConfigError
from transferlab.core.runs.store import MAX_LABEL_CHARS, RunStore


@pytest.fixture()
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path))
    return RunStore(tmp_path / "runs")


def test_label_and_notes_are_stored_with_the_run_and_shown_in_runs_list(store, capsys):
    run = store.create(mnist_preset("ann", name="from config"))
    store.set_label(run.run_id, "  tux4 baseline ", "lr 1e-3\nno augmentation\n")
    again = RunStore(store.root).get(run.run_id)
    assert (again.label, again.notes) == ("tux4 baseline", "lr 1e-3\nno augmentation")
    assert again.title() == "tux4 baseline — mnist ann"
    assert json.loads((run.path / "label.json").read_text()) == {"name": "tux4 baseline",
                                                                "notes": "lr 1e-3\nno augmentation"}
    assert main(["runs", "list"]) == 0
    assert "tux4 baseline — mnist ann" in capsys.readouterr().out
    store.set_label(run.run_id, "", "")  # cleared: the config's name shows again
    assert store.get(run.run_id).title() == "from config — mnist ann"


@pytest.mark.parametrize(("name", "notes", "expected"), [
    ("two\nlines", "", "expected one line"),
    ("x" * (MAX_LABEL_CHARS + 1), "", f"at most {MAX_LABEL_CHARS} characters"),
    (42, "", "expected text, got the number 42"),
    ("ok", None, "expected text, got null"),
])
def test_bad_labels_are_refused_and_nothing_is_written(store, name, notes, expected):
    run = store.create(mnist_preset("ann"))
    with pytest.raises(ConfigError, match=expected):
        store.set_label(run.run_id, name, notes)
    assert not (run.path / "label.json").exists()


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps({"name": 5, "notes": ["x"]})])
def test_a_bad_label_file_is_ignored_not_damaging(store, content):
    run = store.create(mnist_preset("ann"))
    (run.path / "label.json").write_text(content)
    listed = RunStore(store.root).list()[0]
    assert listed.status != "damaged" and listed.label == "" and listed.notes == ""
