"""Hostile input to the run store, as tables: every trick a run id can play on `runs delete` and friends, and every
way one run folder can be damaged. Each row states how it ends.

- ID_TRICKS: the id is refused (RunStoreError, one line; the CLI exits 2) and nothing outside the store, nor any
  run inside it, is touched.
- DAMAGES: `runs list` (engine, CLI, --json) still lists every healthy run, and lists the damaged one as
  "damaged" with the reason; `runs show` explains it; it can be moved to the trash.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from transferlab.core.cli import main
from transferlab.core.config import FolderConfig, mnist_preset
from transferlab.core.errors import RunStoreError
from transferlab.core.runs.store import RunStore

# ---- run ids ----


@pytest.fixture()
def scene(tmp_path, monkeypatch):
    """A store with two finished runs, and around it what a careless or hostile id could reach."""
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    store = RunStore(tmp_path / "home" / "runs")
    runs = [store.create(mnist_preset(model)) for model in ("ann", "cnn")]
    for run in runs:
        store.set_status(run.run_id, "finished")
    outside = tmp_path / "outside"  # a user's folder that happens to look like a run
    outside.mkdir()
    (outside / "config.json").write_text('{"kind": "mnist"}')
    (outside / "status.json").write_text('{"status": "finished"}')
    (outside / "photo.jpg").write_bytes(b"precious")
    nested = store.root / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "config.json").write_text('{"kind": "mnist"}')
    (store.root / "linked").symlink_to(outside, target_is_directory=True)
    (store.root / ".hidden").mkdir()
    (store.root / ".hidden" / "config.json").write_text('{"kind": "mnist"}')
    (store.root / "Documents").mkdir()  # a folder in the store that is no run: no config.json, no status.json
    (store.root / "Documents" / "letter.txt").write_text("dear")
    (store.root / "notes").write_text("a file, not a folder")
    return {"store": store, "runs": [run.run_id for run in runs], "outside": outside, "tmp": tmp_path}


ID_TRICKS: list[tuple[str, Callable[[dict], str]]] = [
    ("absolute path to a folder outside holding config.json", lambda s: str(s["outside"])),
    ("absolute path to a run inside the store", lambda s: str(s["store"].root / s["runs"][0])),
    ("relative path out of the store", lambda s: "../../outside"),
    ("parent of the store", lambda s: "../../x"),
    ("one level up", lambda s: ".."),
    ("the store itself", lambda s: "."),
    ("empty id", lambda s: ""),
    ("nested folder a/b", lambda s: "a/b"),
    ("trailing slash", lambda s: s["runs"][0] + "/"),
    ("run id then ..", lambda s: s["runs"][0] + "/.."),
    ("dot-slash run id", lambda s: "./" + s["runs"][0]),
    ("backslash path", lambda s: "..\\outside"),
    ("glob star", lambda s: "*"),
    ("glob prefix star", lambda s: "2*"),
    ("glob question mark", lambda s: "?"),
    ("glob character class", lambda s: "[a]"),
    ("glob range", lambda s: "[0-9]*"),
    ("the trash folder", lambda s: ".trash"),
    ("a hidden run-like folder", lambda s: ".hidden"),
    ("a link in the store to a folder outside", lambda s: "linked"),
    ("a prefix of that link", lambda s: "link"),
    ("a folder in the store that is not a run", lambda s: "Documents"),
    ("a plain file in the store", lambda s: "notes"),
    ("NUL byte", lambda s: s["runs"][0][:6] + "\x00/etc"),
    ("newline", lambda s: "x\ny"),
    ("tab", lambda s: s["runs"][0][:4] + "\t"),
    ("very long name", lambda s: "2" * 10_000),
    ("home folder", lambda s: "~"),
    ("home path", lambda s: "~/outside"),
    ("drive-relative path", lambda s: "C:outside"),
    ("drive path", lambda s: "C:\\outside"),
    ("URL-encoded ..", lambda s: "%2e%2e%2foutside"),
    ("look-alike dots", lambda s: "\u2024\u2024"),
    ("undecodable bytes", lambda s: "run-\udcff"),
]


def _snapshot(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            found[key] = f"-> {os.readlink(path)}" if path.is_symlink() else (
                path.read_bytes() if path.is_file() else "dir")
    return found


@pytest.mark.parametrize(("label", "make_id"), ID_TRICKS, ids=[label for label, _ in ID_TRICKS])
def test_a_tricky_run_id_is_refused_and_touches_nothing(scene, capsys, label, make_id):
    store, run_id = scene["store"], make_id(scene)
    before = _snapshot(scene["tmp"])
    for call in (store.locate, store.get, store.resolve, store.delete, store.restore, store.purge,
                 lambda text: store.locate(text, trashed=True), lambda text: store.delete_runs([text], purge=True)):
        with pytest.raises(RunStoreError) as info:
            call(run_id)
        assert "\n" not in str(info.value)
    for argv in (["runs", "delete", run_id], ["runs", "delete", "--purge", run_id], ["runs", "restore", run_id],
                 ["runs", "show", run_id]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: expected") and err.count("\n") == 1
    assert _snapshot(scene["tmp"]) == before
    assert [run.run_id for run in store.list()] == sorted(scene["runs"], reverse=True)


def test_the_tricks_count():
    assert len(ID_TRICKS) == 34  # the closing note of issue 7 counts them


def test_a_trash_that_is_a_link_out_of_the_store_is_never_used(scene):
    store, outside = scene["store"], scene["outside"]
    (store.root / ".trash").symlink_to(outside, target_is_directory=True)
    before = _snapshot(outside)
    with pytest.raises(RunStoreError, match=r"expected the trash .* to be a folder made by transferlab, got a link"):
        store.delete(scene["runs"][0])
    with pytest.raises(RunStoreError, match="got a link"):
        store.empty_trash()
    with pytest.raises(RunStoreError, match="got a link"):
        store.delete(scene["runs"][0], purge=True)
    assert _snapshot(outside) == before
    assert len(store.list()) == 2


def test_purging_a_run_that_holds_a_link_removes_the_link_not_its_target(scene):
    store, outside = scene["store"], scene["outside"]
    run_id = scene["runs"][0]
    (store.root / run_id / "data").symlink_to(outside, target_is_directory=True)
    store.delete(run_id)
    store.empty_trash()
    assert (outside / "photo.jpg").read_bytes() == b"precious"
    assert [run.run_id for run in store.list()] == [scene["runs"][1]]


def test_links_and_foreign_things_in_the_trash_are_left_alone(scene):
    store, outside = scene["store"], scene["outside"]
    trash = store.root / ".trash"
    trash.mkdir()
    (trash / "planted").symlink_to(outside, target_is_directory=True)
    (trash / "readme.txt").write_text("mine")
    with pytest.raises(RunStoreError, match="no such run in the trash"):
        store.restore("planted")
    assert store.empty_trash() == 0
    assert sorted(p.name for p in trash.iterdir()) == ["planted", "readme.txt"]
    assert (outside / "photo.jpg").exists()


# ---- damaged run folders ----

def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda run: (run / name).write_text(text)


def _replace_with_folder(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink(missing_ok=True)
        (run / name).mkdir()
    return damage


def _status_field(**fields: object) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        status = json.loads((run / "status.json").read_text())
        (run / "status.json").write_text(json.dumps({**status, **fields}))
    return damage


def _fifo(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        os.mkfifo(run / name)
    return damage


def _link_to_dev_zero(run: Path) -> None:
    (run / "config.json").unlink()
    (run / "config.json").symlink_to("/dev/zero")


def _huge_sparse(run: Path) -> None:
    with open(run / "metrics.json", "wb") as handle:
        handle.truncate(300 * 2**20)


def _bytes(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda run: (run / name).write_bytes(data)


DAMAGES: list[tuple[str, Callable[[Path], None], str]] = [
    ("metrics.json is a list", _write("metrics.json", "[]"), "metrics.json: expected a JSON object, got a JSON list"),
    ("metrics.json is text", _write("metrics.json", '"great"'), "metrics.json: expected a JSON object, got the text"),
    ("config.json is null", _write("config.json", "null"), "config.json: expected a JSON object, got null"),
    ("config.json is a list", _write("config.json", "[1]"), "config.json: expected a JSON object, got a JSON list"),
    ("config.json is broken JSON", _write("config.json", '{"kind": "mn'), "config.json: expected valid JSON"),
    ("config.json is empty", _write("config.json", ""), "config.json: expected valid JSON"),
    ("config.json is not UTF-8", _bytes("config.json", b'{"name": "\xff\xfe"}'), "UnicodeDecodeError"),
    ("config.json is missing", lambda run: (run / "config.json").unlink(), "no config.json"),
    ("config.json is a folder", _replace_with_folder("config.json"), "config.json: expected a file, got a folder"),
    ("config.json kind is a number", _write("config.json", '{"kind": 5}'), "config.json: kind: expected text"),
    ("config.json data_dir is a number", _write("config.json", '{"kind": "folder", "data_dir": 5}'),
     "config.json: data_dir: expected text, got 5"),
    ("config.json links to /dev/zero", _link_to_dev_zero, "config.json: expected a file, got a device"),
    ("history.json is a number", _write("history.json", "42"), "history.json: expected a JSON list, got the number 42"),
    ("history.json rows are numbers", _write("history.json", "[1, 2]"),
     "history.json: expected one JSON object per epoch, got 1"),
    ("history.json nested 100000 deep", _write("history.json", "[" * 100_000 + "]" * 100_000),
     "history.json: expected valid JSON, got RecursionError"),
    ("status.json is a list", _write("status.json", "[]"), "status.json: expected a JSON object, got a JSON list"),
    ("status.json is a folder", _replace_with_folder("status.json"), "status.json: expected a file, got a folder"),
    ("status.json is broken JSON", _write("status.json", '{"status": "runn'), "status.json: expected valid JSON"),
    ("status.json is a FIFO", _fifo("status.json"), "status.json: expected a file, got a pipe (FIFO)"),
    ("created is 'yesterday'", _status_field(created="yesterday"),
     "status.json: created: expected a time in seconds, got 'yesterday'"),
    ("created is NaN", _status_field(created=float("nan")), "status.json: created: expected a time in seconds"),
    ("created is 1e300", _status_field(created=1e300), "status.json: created: expected a time in seconds"),
    ("status is unknown", _status_field(status="exploded"), "status.json: status: expected one of running"),
    ("pid is text", _status_field(pid="abc"), "status.json: pid: expected a process id, got 'abc'"),
    ("reason is an object", _status_field(reason={"a": 1}), "status.json: reason: expected text"),
    ("metrics.json is 300 MiB", _huge_sparse, "metrics.json: expected at most 256 MiB of JSON, got 300 MiB"),
]


@pytest.fixture()
def healthy_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    store = RunStore(tmp_path / "home" / "runs")
    healthy = [store.create(mnist_preset("ann")), store.create(FolderConfig(data_dir="/data/flowers"))]
    for run in healthy:
        store.set_status(run.run_id, "finished")
        store.write_json(run.run_id, "metrics.json", {"accuracy": 0.9})
    return store, [run.run_id for run in healthy]


@pytest.mark.parametrize(("label", "damage", "reason"), DAMAGES, ids=[label for label, _, _ in DAMAGES])
def test_a_damaged_run_is_listed_with_the_reason_and_hides_nothing(healthy_store, capsys, label, damage, reason):
    if sys.platform == "win32" and ("FIFO" in label or "/dev/zero" in label):
        pytest.skip("POSIX only")
    store, healthy = healthy_store
    victim = store.create(mnist_preset("cnn"))
    store.set_status(victim.run_id, "finished")
    damage(victim.path)

    listed = {run.run_id: run for run in store.list()}
    assert set(listed) == {*healthy, victim.run_id}
    assert all(listed[run_id].status == "finished" and listed[run_id].metrics for run_id in healthy)
    assert listed[victim.run_id].status == "damaged"
    assert reason in listed[victim.run_id].reason and "\n" not in listed[victim.run_id].reason

    assert main(["runs", "list", "--json"]) == 0
    rows = {row["run_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(listed) and rows[victim.run_id]["status"] == "damaged"
    assert reason in rows[victim.run_id]["reason"]
    assert main(["runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and any(victim.run_id in line and "damaged" in line for line in lines)
    assert main(["runs", "show", victim.run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "damaged" and reason in shown["damaged"]
    with pytest.raises(RunStoreError, match="damaged"):
        store.compare([healthy[0], victim.run_id])
    assert store.resolve("latest") in healthy  # 'latest' is the newest usable run

    assert main(["runs", "delete", victim.run_id]) == 0  # a damaged run can be cleared away (into the trash)
    assert {run.run_id for run in store.list()} == set(healthy)


def test_the_damage_count():
    assert len(DAMAGES) == 26  # the closing note of issue 7 counts them


def test_readers_of_a_damaged_file_get_one_line_not_a_crash(healthy_store):
    store, (run_id, _) = healthy_store
    run = store.get(run_id)
    (run.path / "history.json").write_text("42")
    (run.path / "config.json").write_text('{"kind": "mnist", "fit": 5}')
    (run.path / "model_info.json").write_text("[]")
    with pytest.raises(RunStoreError, match=r"is damaged: history\.json: expected a JSON list, got the number 42"):
        store.history(run_id)
    with pytest.raises(RunStoreError, match=r"is damaged: config\.json"):
        store.config(run_id)
    with pytest.raises(RunStoreError, match=r"is damaged: model_info\.json: expected a JSON object"):
        store.read_json(run_id, "model_info.json", default={})
