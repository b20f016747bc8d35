"""The run store: listing, interrupted runs, unknown ids, compare, the trash (delete, restore, purge), atomic and
durable writes, leftovers of killed writers, unique ids, the umask, safe model loading."""

from __future__ import annotations

import concurrent.futures
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import keras
import numpy as np
import pytest

import transferlab.core.atomic
import transferlab.core.runs.store as run_store
from transferlab.core import processes
from transferlab.core.atomic import write_json_atomic
from transferlab.core.cli import main
from transferlab.core.config import FolderConfig, mnist_preset
from transferlab.core.errors import RunStoreError
from transferlab.core.runs.store import RunStore


@pytest.fixture()
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_a_killed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "history.json"
    write_json_atomic(target, [{"epoch": 1}])

    def killed_halfway(handle, data):
        handle.write(data[:5])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transferlab.core.atomic, "_write_all", killed_halfway)
    with pytest.raises(RunStoreError, match=r"expected to write .*history\.json, got OSError: No space left"):
        write_json_atomic(target, [{"epoch": 1}, {"epoch": 2}])
    assert json.loads(target.read_text()) == [{"epoch": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]  # no temp file left behind


@pytest.mark.slow
def test_a_run_killed_mid_way_is_listed_as_interrupted_with_its_history(store):
    script = textwrap.dedent(f"""
        import sys
        from transferlab.core.config import mnist_preset
        from transferlab.core.events import EpochEnded
        from transferlab.core.runs.store import RunStore
        from transferlab.core.training.loop import run_training
        def reporter(event):
            if isinstance(event, EpochEnded):
                print(event.epoch, flush=True)
        run_training(mnist_preset("ann", epochs=500, train_limit=1000), reporter, store=RunStore({str(store.root)!r}))
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "1"  # blocks until the first epoch has been stored
            assert proc.stdout.readline().strip() == "2"
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # the `with` then waits for it and closes its pipe
    [run] = store.list()
    assert run.status == "interrupted"
    assert run.epochs_done >= 2
    assert [row["epoch"] for row in store.history(run.run_id)][:2] == [1, 2]


def test_unknown_run_ids_get_a_clear_message(store):
    store.create(mnist_preset("ann"))
    with pytest.raises(RunStoreError, match=r"expected a run id from 'transferlab runs list', got 'nope'"):
        store.get("nope")
    with pytest.raises(RunStoreError, match="expected a run id"):
        store.get("../etc")


def test_prefix_latest_and_listing_of_broken_or_vanishing_folders(store):
    first = store.create(mnist_preset("ann"))
    second = store.create(FolderConfig(data_dir="/data/flowers", mode="finetune"))
    (store.root / "half-deleted").mkdir()  # a folder whose files vanished while listing: not a run
    (store.root / "garbled").mkdir()
    (store.root / "garbled" / "config.json").write_text("{not json")
    listed = store.list()
    assert {r.run_id for r in listed} == {first.run_id, second.run_id, "garbled"}
    garbled = next(r for r in listed if r.run_id == "garbled")
    assert garbled.status == "damaged" and garbled.reason.startswith("config.json: expected valid JSON")
    assert store.resolve(first.run_id[:-2]) == first.run_id  # a unique prefix is enough
    assert store.resolve("latest") == second.run_id  # the newest run that is not damaged
    assert store.get(first.run_id).title() == "mnist ann"
    assert store.get(second.run_id).title() == "flowers finetune"


def test_compare_shows_config_differences_and_metrics_side_by_side(store):
    a = store.create(mnist_preset("ann", epochs=2))
    b = store.create(mnist_preset("cnn", epochs=2))
    store.write_json(a.run_id, "metrics.json", {"accuracy": 0.9, "loss": 0.3})
    store.write_json(b.run_id, "metrics.json", {"accuracy": 0.95, "loss": 0.2})
    comparison = store.compare([a.run_id, b.run_id])
    assert comparison["config_diff"]["model"] == ["ann", "cnn"]
    assert "fit.epochs" not in comparison["config_diff"]  # equal values are not differences
    assert comparison["metrics"]["accuracy"] == [0.9, 0.95]


def test_delete_removes_only_that_run(store):
    keep = store.create(mnist_preset("ann"))
    drop = store.create(mnist_preset("cnn"))
    store.set_status(drop.run_id, "finished")
    store.delete(drop.run_id)
    assert [r.run_id for r in store.list()] == [keep.run_id]
    with pytest.raises(RunStoreError):
        store.get(drop.run_id)


def test_a_model_file_cannot_run_code_when_loaded(store, tmp_path):
    marker = str(tmp_path / "pwned")

    # What a malicious model would do when it is loaded: a lambda's bytecode travels inside the file.
    payload = lambda x: (__import__("pathlib").Path(marker).touch(), x)[1]  # noqa: E731

    inputs = keras.Input((2,))
    outputs = keras.layers.Lambda(payload)(inputs)
    (tmp_path / "pwned").unlink()  # building the model above ran it once
    run = store.create(mnist_preset("ann"))
    keras.Model(inputs, outputs).save(run.path / "model.keras")
    with pytest.raises(RunStoreError, match="expected a loadable Keras model"):
        store.load_model(run.run_id)
    assert not os.path.exists(marker)
    keras.saving.load_model(run.path / "model.keras", safe_mode=False)  # the unsafe way does run it
    assert os.path.exists(marker)


def test_a_plain_model_round_trips(store):
    from transferlab.core.models.mnist import build_mnist_model

    run = store.create(mnist_preset("ann"))
    model = build_mnist_model("ann")
    store.save_model(run.run_id, model)
    digits = np.random.default_rng(0).integers(0, 255, (3, 28, 28)).astype("float32")
    loaded = store.load_model(run.run_id)
    np.testing.assert_allclose(loaded.predict(digits, verbose=0), model.predict(digits, verbose=0), atol=1e-6)


# ---- the trash: delete, restore, purge (issue 7, section 1) ----

@pytest.fixture()
def home_store(tmp_path, monkeypatch) -> RunStore:
    """The store the CLI uses ($TRANSFERLAB_HOME/runs)."""
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    return RunStore(tmp_path / "home" / "runs")


def _finished(store: RunStore, model: str = "ann") -> str:
    run = store.create(mnist_preset(model))
    store.set_status(run.run_id, "finished")
    return run.run_id


def test_delete_moves_a_run_to_the_trash_restore_brings_it_back_purge_removes_it(store):
    keep, drop = _finished(store, "ann"), _finished(store, "cnn")
    assert store.delete(drop) == drop
    assert [r.run_id for r in store.list()] == [keep]
    [trashed] = store.trashed()
    assert trashed.run_id == drop and trashed.deleted > 0 and trashed.path == store.root / ".trash" / drop
    assert (trashed.path / "config.json").is_file()
    assert store.restore("latest") == drop  # 'latest' in the trash: the run deleted last
    assert {r.run_id for r in store.list()} == {keep, drop} and store.trashed() == []

    store.delete(drop)
    assert store.purge(drop[:-3]) == drop  # a unique prefix works in the trash too
    assert store.delete(keep, purge=True) == keep
    assert store.list() == [] and store.trashed() == []
    assert os.listdir(store.root / ".trash") == []  # nothing half-removed left behind


def test_the_trash_keeps_two_deleted_runs_of_the_same_name_apart(store):
    run_id = _finished(store)
    store.delete(run_id)
    shutil.copytree(store.root / ".trash" / run_id, store.root / run_id)  # as if copied back by hand
    assert store.delete(run_id) == f"{run_id}-2"
    assert sorted(r.run_id for r in store.trashed()) == [run_id, f"{run_id}-2"]
    assert store.empty_trash() == 2 and store.trashed() == []


def test_runs_delete_restore_trash_and_empty_trash_commands(home_store, capsys):
    keep, drop = _finished(home_store, "ann"), _finished(home_store, "cnn")
    assert main(["runs", "delete", drop]) == 0
    assert f"undo with 'transferlab runs restore {drop}'" in capsys.readouterr().out
    assert main(["runs", "trash", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [drop]
    assert main(["runs", "restore", drop]) == 0
    assert main(["runs", "list", "--json"]) == 0
    assert {r["run_id"] for r in json.loads(capsys.readouterr().out.splitlines()[-1])} == {keep, drop}

    assert main(["runs", "delete", drop, keep]) == 0
    assert main(["runs", "delete", "--purge", drop]) == 0  # already in the trash: removed for good
    assert main(["runs", "trash", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out.splitlines()[-1])] == [keep]
    assert main(["runs", "empty-trash"]) == 0
    assert "deleted 1 run in the trash for good" in capsys.readouterr().out
    assert main(["runs", "restore", keep]) == 2
    assert "no such run in the trash" in capsys.readouterr().err
    assert not (home_store.root / keep).exists() and not (home_store.root / ".trash" / keep).exists()


def test_a_run_still_training_cannot_be_deleted(home_store, capsys):
    idle = _finished(home_store)
    training = home_store.create(mnist_preset("cnn")).run_id  # status running, this live process
    for purge in (False, True):
        with pytest.raises(RunStoreError, match=rf"got run {training}, which is still training \(process "):
            home_store.delete(training, purge=purge)
        with pytest.raises(RunStoreError, match="still training"):
            home_store.delete_runs([idle, training], purge=purge)  # checked first: nothing is deleted
    assert main(["runs", "delete", idle, training]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "still training" in err
    assert {r.run_id for r in home_store.list()} == {idle, training}


def test_a_run_training_in_another_process_cannot_be_deleted_until_that_process_ends(store):
    run = store.create(mnist_preset("ann"))
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        status = json.loads((run.path / "status.json").read_text())
        status.update(pid=child.pid, pid_start=processes.start_token(child.pid))
        write_json_atomic(run.path / "status.json", status)
        assert store.get(run.run_id).status == "running"
        with pytest.raises(RunStoreError, match="still training"):
            store.delete(run.run_id)
    finally:
        child.communicate(b"")
    assert store.get(run.run_id).status == "interrupted"
    store.delete(run.run_id)
    assert store.list() == []


# ---- pid reuse, leftovers, ids, umask, fsync (issue 7, sections 3 and 6) ----

@pytest.mark.skipif(processes.current_token() is None, reason="no process start times on this system")
def test_a_running_status_whose_pid_now_belongs_to_another_process_is_interrupted(store):
    run = store.create(mnist_preset("ann"))
    assert store.get(run.run_id).status == "running"  # this very process
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        for pid in (os.getpid(), child.pid):  # live pids, but not the process that started the run
            status = json.loads((run.path / "status.json").read_text())
            status.update(pid=pid, pid_start="linux:another-boot:12345")
            write_json_atomic(run.path / "status.json", status)
            assert store.get(run.run_id).status == "interrupted"
    finally:
        child.communicate(b"")
    store.delete(run.run_id)  # and it can be deleted


def test_temp_files_of_a_killed_writer_are_removed_at_the_next_start(store):
    run_id = _finished(store)
    path = store.get(run_id).path
    script = textwrap.dedent(f"""
        import sys
        from transferlab.core.atomic import atomic_target
        with atomic_target({str(path / "model.keras")!r}) as tmp:
            tmp.write_bytes(b"half a model")
            print(tmp, flush=True)
            sys.stdin.read()
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as writer:
        try:
            leftover = Path(writer.stdout.readline().strip())
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
    assert leftover.read_bytes() == b"half a model" and leftover.parent == path
    (path / ".notes.tmp").write_text("the user's own")  # not a name transferlab makes
    assert RunStore(store.root).list()[0].status == "finished"
    assert leftover.exists()  # just written: kept a little while (a writer this process cannot see)

    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    with transferlab.core.atomic.atomic_target(path / "summary.json") as live:  # a write in progress in a live process
        os.utime(live, (an_hour_ago, an_hour_ago))
        RunStore(store.root).list()  # the next start
        assert not leftover.exists()
        assert live.exists()
    assert (path / ".notes.tmp").read_text() == "the user's own"
    assert sorted(p.name for p in path.iterdir()) == [".notes.tmp", "config.json", "history.json", "status.json",
                                                      "summary.json"]


def test_runs_started_in_the_same_second_never_collide(store, monkeypatch):
    frozen = 1_700_000_000.0
    monkeypatch.setattr(run_store, "time", types.SimpleNamespace(time=lambda: frozen, strftime=time.strftime,
                                                                 localtime=time.localtime))
    monkeypatch.setattr(run_store, "secrets", types.SimpleNamespace(token_hex=lambda n: "beef"))
    ids = [store.create(mnist_preset("ann")).run_id for _ in range(20)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids += [info.run_id for info in pool.map(lambda _: store.create(mnist_preset("ann")), range(40))]
    assert len(set(ids)) == 60
    assert {r.run_id for r in store.list()} == set(ids)
    assert all(run_id.startswith(time.strftime("%Y%m%d-%H%M%S", time.localtime(frozen))) for run_id in ids)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [(0o027, 0o640, 0o750), (0o002, 0o664, 0o775)],
                         ids=["umask 027", "umask 002"])
def test_run_files_and_folders_follow_the_users_umask(store, umask, file_mode, folder_mode):
    from transferlab.core.models.mnist import build_mnist_model

    previous = os.umask(umask)
    try:
        run = store.create(mnist_preset("ann"))
        store.save_model(run.run_id, build_mnist_model("ann"))
        store.write_json(run.run_id, "metrics.json", {"accuracy": 0.5})
        store.set_status(run.run_id, "finished")
        store.delete(run.run_id)
    finally:
        os.umask(previous)
    trashed = store.root / ".trash" / run.run_id
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in trashed.iterdir()} == dict.fromkeys(
        ["config.json", "status.json", "history.json", "model.keras", "metrics.json"], file_mode)
    assert stat.S_IMODE(trashed.stat().st_mode) == folder_mode
    assert stat.S_IMODE((store.root / ".trash").stat().st_mode) == folder_mode


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to name fsynced files")
def test_models_and_json_files_are_fsynced_and_their_folder_after_the_rename(store, monkeypatch):
    from transferlab.core.models.mnist import build_mnist_model

    run = store.create(mnist_preset("ann"))
    events: list[tuple[str, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.path.realpath(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.save_model(run.run_id, build_mnist_model("ann"))
    store.set_status(run.run_id, "finished")
    for name in ("model.keras", "status.json"):
        target = os.path.realpath(run.path / name)
        [rename] = [event for event in events if event[0] == "replace" and event[2] == target]
        at = events.index(rename)
        assert ("fsync", rename[1]) in events[:at]  # the data, before it gets the name
        assert ("fsync", os.path.realpath(run.path)) in events[at + 1:]  # the name, after the rename
