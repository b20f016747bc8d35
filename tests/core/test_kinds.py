"""The run-kind registry: every kind has every part, titles, feeding stored models of each kind (also as older
versions stored them), evaluation samples, model summaries before training, and no kind branches elsewhere."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import keras
import numpy as np
import pytest
from PIL import Image, ImageDraw

from transferlab.core.config import FolderConfig, RunConfig, mnist_preset
from transferlab.core.deploy.evaluate import evaluate_stored_run
from transferlab.core.deploy.export import serving_input_shape
from transferlab.core.deploy.predict import Classifier
from transferlab.core.errors import ConfigError
from transferlab.core.events import BatchProgress
from transferlab.core.kinds import KINDS, kind_named, kind_of, stored_title, title_of
from transferlab.core.models.hub_layer import write_tiny_hub_model
from transferlab.core.runs.store import RunStore
from transferlab.core.training.kinds import PARTS, evaluation_samples, make_job, model_preview, parts_named

ROOT = Path(__file__).resolve().parents[2]
FOLDER_CONFIG = FolderConfig(data_dir="/data/photos")


@pytest.fixture()
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_every_kind_has_every_part() -> None:
    assert set(KINDS) == set(PARTS) == {"mnist", "folder"}
    assert {kind.config_type for kind in KINDS.values()} == set(get_args(RunConfig))
    for name, kind in KINDS.items():
        parts = PARTS[name]
        assert kind.name == name == kind.config_type.kind and parts.kind is kind
        for field in dataclasses.fields(kind):
            assert getattr(kind, field.name) not in (None, ""), f"{name} has no {field.name}"
        for field in dataclasses.fields(parts):
            # None on purpose: folder runs report their stored evaluation and have no input check
            if field.name not in ("evaluate_again", "input_check"):
                assert getattr(parts, field.name) is not None, f"{name} has no {field.name}"
    assert kind_of(mnist_preset("ann")) is KINDS["mnist"] and kind_of(FOLDER_CONFIG) is KINDS["folder"]


def test_titles_and_run_ids_come_from_the_kind(store: RunStore) -> None:
    assert title_of(mnist_preset("fast")) == "mnist fast"
    assert title_of(dataclasses.replace(FOLDER_CONFIG, mode="finetune")) == "photos finetune"
    run = store.create(FOLDER_CONFIG)
    assert "-folder-frozen-" in run.run_id and run.title() == "photos frozen"
    assert stored_title("folder", {"kind": "folder", "data_dir": ""}) == "folder run"  # unreadable config


def test_unknown_kinds_are_one_config_error() -> None:
    with pytest.raises(ConfigError, match=r"expected a run kind in \['folder', 'mnist'\], got 'video'"):
        kind_named("video")
    with pytest.raises(ConfigError, match="got 'video'"):
        parts_named("video")


def test_the_light_modules_import_no_tensorflow() -> None:
    code = ("import sys\n"
            "import transferlab.core.catalog, transferlab.core.kinds, transferlab.core.records\n"
            "import transferlab.core.training.kinds, transferlab.core.events, transferlab.core.config\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_run_kind_branches_live_only_in_the_registry() -> None:
    registry = {ROOT / "core" / "kinds.py", ROOT / "core" / "training" / "kinds.py"}
    worker_messages = ROOT / "gui" / "worker.py"  # its `kind` is a message kind, not a run kind
    branches = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                for folder in ("core", "gui") for path in sorted((ROOT / folder).rglob("*.py"))
                if path not in registry and path != worker_messages
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                if re.search(r"\bkind\s*[!=]=|[!=]=\s*\"(mnist|folder)\"", line)]
    assert branches == []


def _digit_png(path: Path) -> Path:
    image = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(image).line([(30, 8), (30, 52)], fill=0, width=6)
    image.save(path)
    return path


def _stored_run(store: RunStore, config: RunConfig, model_info: dict, input_shape: tuple[int, ...],
                classes: int) -> str:
    """A stored run with a tiny real model and model_info.json exactly as given."""
    run_id = store.create(config).run_id
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(classes, activation="softmax")])
    store.save_model(run_id, model)
    store.write_json(run_id, "model_info.json", model_info)
    return run_id


@pytest.mark.parametrize("legacy", [True, False])
def test_a_stored_run_of_each_kind_is_fed_its_way(store: RunStore, tmp_path: Path, legacy: bool) -> None:
    image = _digit_png(tmp_path / "one.png")
    digits = {"input": "digits28"} if legacy else {"kind": "mnist"}
    photos = {"input": "rgb"} if legacy else {"kind": "folder"}
    mnist_run = _stored_run(store, mnist_preset("ann"), {**digits, "image_size": [28, 28],
                                                         "class_names": [str(d) for d in range(10)]}, (28, 28), 10)
    folder_run = _stored_run(store, FOLDER_CONFIG, {**photos, "image_size": [16, 24], "class_names": ["a", "b"],
                                                   "backbone": "x"}, (16, 24, 3), 2)
    for run_id, kind, shape in ((mnist_run, "mnist", (28, 28)), (folder_run, "folder", (16, 24, 3))):
        info = store.model_info(run_id)
        assert info.kind == kind and serving_input_shape(info) == shape
        classifier = Classifier(run_id, store)
        [prediction] = classifier.classify([image])
        assert prediction.ok and prediction.seen is not None and prediction.seen.shape == shape
        assert prediction.label in info.class_names
        array = classifier.prepare_array(np.asarray(Image.open(image).convert("RGB")))  # an in-memory image
        assert array.shape == shape and array.dtype == np.uint8
    # An MNIST digit is prepared like MNIST: white ink on black, centred.
    digit = Classifier(mnist_run, store).prepare_file(image)
    assert digit[0].max() == 0 and digit[14].max() > 200


def test_evaluation_samples_of_a_folder_run_are_its_evaluated_split(store: RunStore) -> None:
    run_id = store.create(FOLDER_CONFIG).run_id
    split = {"format": 1, "root": "/data/photos", "class_names": ["a", "b"], "seed": 1, "extra": {},
             "train": [["a/1.jpg", 0], ["b/1.jpg", 1]], "val": [["a/2.jpg", 0]], "test": [["b/2.jpg", 1]]}
    store.write_json(run_id, "split.json", split)
    samples = evaluation_samples(store, run_id)  # no metrics yet: the test part, as the run would choose
    assert samples.ids == ("b/2.jpg",) and samples.labels == (1,)
    metrics = {"eval_set": "validation", "loss": 0.1, "accuracy": 1.0, "samples": 1, "class_names": ["a", "b"],
               "confusion_matrix": [[1, 0], [0, 0]], "per_class": [], "misclassified": []}
    store.write_json(run_id, "metrics.json", metrics)
    samples = evaluation_samples(store, run_id)
    assert samples.ids == ("a/2.jpg",) and samples.path("a/2.jpg") == Path("/data/photos/a/2.jpg")
    assert samples.array("a/2.jpg") is None
    assert evaluate_stored_run(store, run_id).accuracy == 1.0  # folder runs report the stored evaluation


def test_evaluation_samples_of_an_mnist_run_are_the_test_digits(store: RunStore) -> None:
    run_id = store.create(mnist_preset("ann", test_limit=50)).run_id
    store.write_json(run_id, "metrics.json", {"eval_set": "test", "loss": 0.1, "accuracy": 0.9, "samples": 50,
                                              "class_names": [], "confusion_matrix": [], "per_class": [],
                                              "misclassified": []})
    samples = evaluation_samples(store, run_id)
    assert samples.ids == tuple(range(50)) and len(samples.labels) == 50
    image = samples.array(7)
    assert image is not None and image.shape == (28, 28) and samples.path(7) is None
    assert samples.load(7, (28, 28)).dtype == np.uint8


def test_model_summaries_before_training_for_each_kind(tmp_path: Path) -> None:
    mnist = model_preview(mnist_preset("ann"), 10)
    assert mnist.backbone is None and mnist.summary.trainable_params == 101_770  # 784·128+128 + 128·10+10
    hub = write_tiny_hub_model(tmp_path / "hub", feature_dim=8, image_size=32)
    folder = model_preview(FolderConfig(data_dir="preview", backbone=str(hub)), 3)
    assert folder.backbone is not None and folder.backbone.feature_dim == 8
    assert folder.summary.trainable_params == 8 * 3 + 3  # frozen: only the new head for 3 classes trains
    assert type(make_job(mnist_preset("ann"))).__name__ == "MnistJob"


def test_time_left_is_one_calculation_on_the_progress_event() -> None:
    halfway = BatchProgress(epoch=2, epochs=4, batch=5, batches=10, loss=0.1, accuracy=0.9, elapsed=30.0)
    assert halfway.fraction == pytest.approx(1.5 / 4)
    assert halfway.remaining() == pytest.approx(50.0)  # 30 s for 3/8 of the fit: 50 s for the other 5/8
    start = BatchProgress(epoch=1, epochs=10, batch=1, batches=100, loss=1.0, accuracy=0.1, elapsed=0.5)
    assert start.remaining(min_fraction=0.02) is None and start.remaining() == pytest.approx(499.5)
    unknown = BatchProgress(epoch=1, epochs=2, batch=3, batches=None, loss=1.0, accuracy=0.1, elapsed=1.0)
    assert unknown.fraction == 0.0 and unknown.remaining() is None
    json.dumps(dataclasses.asdict(halfway))
