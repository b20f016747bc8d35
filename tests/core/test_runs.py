"""The run store: listing, interrupted runs, unknown ids, compare, delete, atomic writes, safe model loading."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import transferlab.core.atomic
from transferlab.core.atomic import write_json_atomic
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


def test_prefix_latest_and_listing_skips_broken_or_vanishing_folders(store):
    first = store.create(mnist_preset("ann"))
    second = store.create(FolderConfig(data_dir="/data/flowers", mode="finetune"))
    (store.root / "half-deleted").mkdir()  # a folder whose files vanished while listing
    (store.root / "garbled").mkdir()
    (store.root / "garbled" / "config.json").write_text("{not json")
    listed = store.list()
    assert {r.run_id for r in listed} == {first.run_id, second.run_id}
    assert store.resolve(first.run_id[:-2]) == first.run_id  # a unique prefix is enough
    assert store.resolve("latest") == listed[0].run_id
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
