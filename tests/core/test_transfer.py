"""Transfer learning on class folders: FolderJob through run_training, frozen vs fine-tuned, bad input.

Most tests use a tiny TF Hub-format backbone (32×32 input) and 3 classes × 12 generated images, so a run takes
a couple of seconds; one test (marked slow) uses the real EfficientNet-Lite0 to prove cut-point caching.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.core.imagefactory import add_broken_files, make_class_folder, write_huge_png, write_tiny_image
from transferlab.core.config import FINETUNE_LEARNING_RATE, FitOptions, FolderConfig
from transferlab.core.data.folders import make_dataset
from transferlab.core.errors import ConfigError, DataError, ModelError
from transferlab.core.events import EventLog, PhaseProgress, RunStarted
from transferlab.core.models.hub_layer import HubFeatureLayer, write_tiny_hub_model
from transferlab.core.models.transfer import find_head
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.compare import compare_frozen_finetune
from transferlab.core.training.folder_job import AUGMENTATION_NOTE
from transferlab.core.training.loop import run_training

CLASSES = {"circle": 12, "square": 12, "triangle": 12}
FAST = FitOptions(epochs=20, batch_size=8, learning_rate=1e-2, validation_split=0.25, seed=3)


@pytest.fixture(scope="module")
def hub_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_hub_model(tmp_path_factory.mktemp("hub") / "tiny", feature_dim=32, image_size=32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_class_folder(tmp_path_factory.mktemp("data") / "shapes", classes=CLASSES, size=(32, 32), seed=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("runs"))


def _config(folder: Path, hub: Path, **changes: object) -> FolderConfig:
    changes.setdefault("fit", FAST)
    return FolderConfig(data_dir=str(folder), backbone=str(hub), **changes)  # type: ignore[arg-type]


def _phases(log: EventLog) -> set[str]:
    return {event.phase for event in log.of_type(PhaseProgress)}


def _hub_layer(model: keras.Model) -> HubFeatureLayer:
    layers = [layer for part in model.layers if isinstance(part, keras.Model) for layer in part.layers
              if isinstance(layer, HubFeatureLayer)]
    assert len(layers) == 1
    return layers[0]


def _hub_values(layer: HubFeatureLayer) -> dict[str, np.ndarray]:
    return {name: np.array(v.numpy()) for name, v in zip(layer.variable_names, layer.hub_variables, strict=True)}


@pytest.mark.slow
def test_frozen_run_caches_features_learns_and_stores_everything(folder: Path, hub_model: Path,
                                                                 store: RunStore) -> None:
    log = EventLog()
    result = run_training(_config(folder, hub_model, test_split=0.2), log, store=store)
    assert result.status == "finished", result.reason

    # Features were extracted once, batch by batch, before fitting; the fitted model is the head alone.
    extracting = [e for e in log.of_type(PhaseProgress) if e.phase == "extracting features"]
    assert extracting[0].done == 0 and extracting[-1].done == extracting[-1].total >= 2
    started = log.of_type(RunStarted)[0]
    assert "cached features" in started.data_summary.training
    assert {"head", "hub_extractor"} <= {name for name, *_ in started.model_summary.layers}

    # Learned: generated classes are easy, chance is 1/3. Evaluated on the held-out test split.
    metrics = result.metrics
    assert metrics["eval_set"] == "test" and metrics["test_accuracy"] == metrics["accuracy"] >= 0.85
    assert result.history[-1]["val_accuracy"] >= 0.8
    assert metrics["class_names"] == sorted(CLASSES) and "test_loss" in metrics

    # Stored: split, model info, summary; the split is stratified and disjoint.
    split = store.read_json(result.run_id, "split.json")
    parts = [set(map(tuple, split[p])) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and sum(map(len, parts)) == 36
    assert [sum(1 for _, i in split["test"] if i == k) for k in range(3)] == [2, 2, 2]
    info = store.read_json(result.run_id, "model_info.json")
    assert info == {"kind": "folder", "image_size": [32, 32], "class_names": sorted(CLASSES),
                    "backbone": str(hub_model)}
    data = store.read_json(result.run_id, "summary.json")["data"]
    assert (data["train_samples"], data["validation_samples"], data["test_samples"]) == (21, 9, 6)
    assert data["counts"] == CLASSES and data["skipped"] == []

    # The stored full model takes raw 0..255 images and reproduces the metrics computed on cached features.
    model = store.load_model(result.run_id)
    assert model.input_shape == (None, 32, 32, 3)
    test_items = [tuple(item) for item in split["test"]]
    probabilities = model.predict(make_dataset(split["root"], test_items, (32, 32), 8, cache=False), verbose=0)
    accuracy = float(np.mean(probabilities.argmax(1) == [i for _, i in test_items]))
    assert accuracy == pytest.approx(metrics["accuracy"])


@pytest.mark.slow
def test_finetune_keeps_frozen_weights_bit_identical_and_changes_the_unfrozen(folder: Path, hub_model: Path,
                                                                            store: RunStore) -> None:
    config = dataclasses.replace(_config(folder, hub_model, mode="finetune", unfreeze=1),
                                 fit=dataclasses.replace(FAST, learning_rate=None, epochs=3))
    result = run_training(config, store=store)
    assert result.status == "finished", result.reason
    assert result.history[0]["learning_rate"] == pytest.approx(FINETUNE_LEARNING_RATE)  # the default became 1e-4

    before = _hub_values(HubFeatureLayer(str(hub_model)))
    after = _hub_values(_hub_layer(store.load_model(result.run_id)))
    assert set(before) == set(after)
    # block2/moving_mean only changes when the module runs with training=True: BatchNorm stayed in inference mode.
    for name in ("stem/kernel", "block1/kernel", "block2/kernel", "block2/bias", "block2/moving_mean"):
        assert np.array_equal(before[name], after[name]), f"{name} is frozen but changed"
    assert not np.array_equal(before["head/kernel"], after["head/kernel"]), "the unfrozen block did not train"
    assert result.metrics["eval_set"] == "validation" and "val_accuracy" in result.metrics


@pytest.mark.slow
def test_augmentation_runs_end_to_end_and_says_so(folder: Path, hub_model: Path, store: RunStore) -> None:
    log = EventLog()
    result = run_training(_config(folder, hub_model, augment=True, fit=dataclasses.replace(FAST, epochs=10)), log,
                          store=store)
    assert result.status == "finished", result.reason
    summary = log.of_type(RunStarted)[0].data_summary
    assert summary.note == AUGMENTATION_NOTE and summary.training.startswith("end to end")
    assert "extracting features" not in _phases(log)
    assert "augmentation" in {name for name, *_ in log.of_type(RunStarted)[0].model_summary.layers}
    model = store.load_model(result.run_id)  # stored without the (training-only) augmentation layers
    assert "augmentation" not in [layer.name for layer in model.layers]
    assert result.metrics["val_accuracy"] >= 0.7


@pytest.mark.slow
def test_compare_frozen_finetune_reuses_split_and_head(folder: Path, hub_model: Path, store: RunStore) -> None:
    config = _config(folder, hub_model, unfreeze=1)
    four = {"epochs": 4, "early_stopping_patience": None}
    comparison = compare_frozen_finetune(config, store=store, explicit={"frozen": four, "finetune": four})
    assert comparison.run_ids == [comparison.frozen.run_id, comparison.finetune.run_id]
    report = comparison.to_json()  # what `transferlab compare --json` prints
    frozen, tuned = report["frozen"]["run_id"], report["finetune"]["run_id"]
    assert report["frozen"]["status"] == report["finetune"]["status"] == "finished", report
    splits = [store.read_json(run, "split.json") for run in (frozen, tuned)]
    assert [[s[p] for p in ("root", "train", "val", "test")] for s in splits] == [
        [splits[0][p] for p in ("root", "train", "val", "test")]] * 2
    assert splits[1]["extra"]["source"] == f"reused from run {frozen}"
    tuned_config = store.config(tuned)
    assert (tuned_config.mode, tuned_config.split_from_run, tuned_config.init_from_run) == ("finetune", frozen,
                                                                                           frozen)
    frozen_fit = store.config(frozen).fit
    assert store.config(frozen).mode == "frozen"
    assert (frozen_fit.batch_size, frozen_fit.seed, frozen_fit.validation_split) == (
        tuned_config.fit.batch_size, tuned_config.fit.seed, tuned_config.fit.validation_split)
    histories = [report[mode]["history"] for mode in ("frozen", "finetune")]
    assert len(histories[0]) == len(histories[1]) == 4
    # Starting from the frozen head, fine-tuning begins where the frozen run ended.
    assert histories[1][0]["val_accuracy"] >= histories[0][0]["val_accuracy"]
    metrics = [report[mode]["metrics"] for mode in ("frozen", "finetune")]
    rows = {row["class"]: row for row in report["per_class"]}
    assert set(rows) == set(CLASSES)
    for name, row in rows.items():
        frozen_row = next(r for r in metrics[0]["per_class"] if r["class"] == name)
        assert row["f1_diff"] == pytest.approx(row["finetune_f1"] - frozen_row["f1"])
    assert report["differences"]["accuracy"] == pytest.approx(metrics[1]["accuracy"] - metrics[0]["accuracy"])
    json.dumps(report)  # plain data, for the CLI and the GUI


@pytest.mark.slow
def test_init_from_run_needs_the_same_classes(folder: Path, hub_model: Path, store: RunStore,
                                              tmp_path: Path) -> None:
    frozen = run_training(_config(folder, hub_model, fit=dataclasses.replace(FAST, epochs=1)), store=store)
    other = make_class_folder(tmp_path / "two", classes={"circle": 6, "star": 6}, size=(32, 32))
    runs_before = {run.run_id for run in store.list()}
    with pytest.raises(ConfigError) as info:  # refused before a run exists
        run_training(_config(other, hub_model, mode="finetune", init_from_run=frozen.run_id), store=store)
    assert str(info.value).startswith("init_from_run: expected a run with the classes circle, star, got run")
    assert "\n" not in str(info.value)
    assert {run.run_id for run in store.list()} == runs_before


@pytest.mark.slow
def test_validation_folder_and_a_stop_during_extraction(folder: Path, hub_model: Path, store: RunStore,
                                                        tmp_path: Path) -> None:
    val = make_class_folder(tmp_path / "val", classes={k: 3 for k in CLASSES}, size=(32, 32), seed=9)
    result = run_training(_config(folder, hub_model, val_dir=str(val), fit=dataclasses.replace(FAST, epochs=2)),
                          store=store)
    assert result.status == "finished", result.reason
    split = store.read_json(result.run_id, "split.json")
    assert len(split["train"]) == 36 and len(split["val"]) == 9 and all("/" in p for p, _ in split["val"])

    stop = StopFlag()

    def reporter(event: object) -> None:
        if isinstance(event, PhaseProgress) and event.phase == "extracting features" and event.done == 1:
            stop.request("stopped while extracting")

    stopped = run_training(_config(folder, hub_model), reporter, stop, store=store)
    assert (stopped.status, stopped.reason, stopped.history) == ("stopped", "stopped while extracting", [])


@pytest.mark.slow
def test_broken_files_unicode_paths_tiny_and_huge_images(hub_model: Path, store: RunStore, tmp_path: Path) -> None:
    root = make_class_folder(tmp_path / "mes photos ☀" / "dätä set", classes={"chat noir": 10, "écureuil 🐿": 10},
                             size=(32, 32))
    broken = add_broken_files(root / "chat noir")
    write_tiny_image(root / "écureuil 🐿" / "pixel 1x1.png")
    write_huge_png(root / "écureuil 🐿" / "huge 40000.png")
    log = EventLog()
    result = run_training(_config(root, hub_model, fit=dataclasses.replace(FAST, validation_split=0.3)), log,
                          store=store)
    assert result.status == "finished", result.reason
    skipped = {item["path"]: item["reason"] for item in log.of_type(RunStarted)[0].data_summary.details["skipped"]}
    assert len(skipped) == len(broken) + 2
    assert "got 1×1" in skipped["écureuil 🐿/pixel 1x1.png"]
    assert "expected an image of at most" in skipped["écureuil 🐿/huge 40000.png"]
    assert result.metrics["accuracy"] >= 0.8
    assert all(item["id"].startswith(("chat noir/", "écureuil 🐿/")) for item in result.metrics["misclassified"])


@pytest.mark.parametrize("case", ["missing handle", "not a SavedModel", "one class"])
def test_bad_input_is_refused_before_a_run_exists(case: str, folder: Path, store: RunStore, tmp_path: Path) -> None:
    data, backbone, expected, error = folder, "efficientnet-lite0", "", ModelError
    if case == "missing handle":
        backbone, expected = str(tmp_path / "no such model"), "which does not exist"
    elif case == "not a SavedModel":
        (tmp_path / "photos").mkdir()
        backbone, expected = str(tmp_path / "photos"), "expected a TF2 SavedModel folder"
    else:
        data = make_class_folder(tmp_path / "lonely", classes={"only": 5}, size=(32, 32))
        expected, error = "expected at least 2 class", DataError
    runs_before = {run.run_id for run in store.list()}
    with pytest.raises(error) as info:
        run_training(FolderConfig(data_dir=str(data), backbone=backbone, fit=FAST), store=store)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert {run.run_id for run in store.list()} == runs_before


def test_a_backbone_that_is_not_a_feature_vector_fails_the_run_with_one_line(folder: Path, store: RunStore,
                                                                           tmp_path: Path) -> None:
    """What only loading the model can show ends the run as failed, with one line."""
    root = tf.train.Checkpoint()
    root.v = tf.Variable(1.0)
    root.variables = [root.v]
    root.__call__ = tf.function(lambda images, training=False: images * root.v)
    root.__call__.get_concrete_function(tf.TensorSpec([None, 16, 16, 3], tf.float32), False)
    tf.saved_model.save(root, str(tmp_path / "maps"))
    result = run_training(FolderConfig(data_dir=str(folder), backbone=str(tmp_path / "maps"), fit=FAST), store=store)
    expected = "expected a feature-vector model returning float [batch, features]"
    assert result.status == "failed" and expected in result.reason and "\n" not in result.reason
    assert store.get(result.run_id).status == "failed"


@pytest.mark.slow
def test_efficientnet_finetune_caches_the_cut_point(tmp_path: Path, store: RunStore) -> None:
    """The real EfficientNet-Lite0: the bottom runs once per image, top + head train, bottom stays identical."""
    from transferlab.core.models.backbones import resolve_backbone

    root = make_class_folder(tmp_path / "tiny", classes={"a": 5, "b": 5}, size=(48, 48))
    fit = FitOptions(epochs=2, batch_size=4, learning_rate=1e-3, validation_split=0.2)
    log = EventLog()
    result = run_training(FolderConfig(data_dir=str(root), mode="finetune", unfreeze=2, fit=fit), log, store=store)
    assert result.status == "finished", result.reason
    assert "caching activations" in _phases(log) and "extracting features" not in _phases(log)
    assert "cached activations" in log.of_type(RunStarted)[0].data_summary.training
    model = store.load_model(result.run_id)
    assert [layer.name for layer in model.layers] == ["image", "efficientnet_lite0_bottom", "efficientnet_lite0_top",
                                                      "head"]
    bottom, top = resolve_backbone("efficientnet-lite0").split(2)
    assert bottom is not None
    for fresh, trained in zip(bottom.weights, model.get_layer("efficientnet_lite0_bottom").weights, strict=True):
        assert np.array_equal(fresh.numpy(), trained.numpy()), fresh.path
    changed = {w.path for w, t in zip(top.weights, model.get_layer("efficientnet_lite0_top").weights, strict=True)
               if not np.array_equal(w.numpy(), t.numpy())}
    assert changed and all(("top_conv" in p or "block7a" in p) and "_bn" not in p for p in changed)
    assert find_head(model).output_shape == (None, 2)


def test_big_activation_caches_stream_through_a_memory_mapped_file(tmp_path, monkeypatch) -> None:
    """A folder whose cached activations exceed the spill size is cached in a memory-mapped file (not in RAM)
    and trains from it batch by batch, with the same result as the in-memory cache."""
    import numpy as np

    from tests.core.imagefactory import make_class_folder
    from transferlab.core.data.folders import scan_folder
    from transferlab.core.models.transfer import array_dataset, run_once

    monkeypatch.setenv("TRANSFERLAB_CACHE_DIR", str(tmp_path / "cache"))
    data = make_class_folder(tmp_path / "data", classes={"a": 6, "b": 5}, size=(16, 16), seed=4)
    scan = scan_folder(str(data))

    def forward(images):
        return images[:, ::4, ::4, :] / 255.0  # a stand-in "bottom": [B, 4, 4, 3] activations

    in_memory, labels = run_once(forward, scan.root, scan.items, (16, 16))
    spilled, spilled_labels = run_once(forward, scan.root, scan.items, (16, 16), spill_bytes=64)
    assert not isinstance(in_memory, np.memmap) and isinstance(spilled, np.memmap)
    assert np.array_equal(in_memory, spilled) and np.array_equal(labels, spilled_labels)
    assert (tmp_path / "cache" / "activations").is_dir()
    assert not list((tmp_path / "cache").rglob("activations-*"))  # unlinked at once: nothing left on disk
    batches = list(array_dataset(spilled, spilled_labels, 4, shuffle=True, seed=1))
    assert [len(y) for _, y in batches] == [4, 4, 3]
    seen = np.concatenate([x.numpy() for x, _ in batches])
    assert sorted(map(bytes, seen.reshape(len(seen), -1))) == sorted(map(bytes, in_memory.reshape(11, -1)))
