"""Classifying files and arrays with a stored run (core.predict) and exporting it (core.export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.core.imagefactory import make_class_folder, write_text_as_image, write_tiny_image
from transferlab.core.config import FitOptions, FolderConfig, mnist_preset
from transferlab.core.data.folders import DataSplit
from transferlab.core.data.images import load_rgb
from transferlab.core.data.mnist import load_mnist
from transferlab.core.deploy.export import export_run
from transferlab.core.deploy.predict import Classifier
from transferlab.core.errors import ConfigError, RunStoreError
from transferlab.core.models.hub_layer import write_tiny_hub_model
from transferlab.core.runs.store import RunStore
from transferlab.core.training.jobs import RunResult
from transferlab.core.training.loop import run_training

CLASSES = {"red": 10, "green": 10, "blue": 10}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory, store: RunStore) -> RunResult:
    base = tmp_path_factory.mktemp("folder")
    hub = write_tiny_hub_model(base / "hub", feature_dim=32, image_size=32)
    data = make_class_folder(base / "colours", classes=CLASSES, size=(32, 32), seed=2)
    fit = FitOptions(epochs=20, batch_size=8, learning_rate=1e-2, validation_split=0.3, seed=1)
    result = run_training(FolderConfig(data_dir=str(data), backbone=str(hub), fit=fit), store=store)
    assert result.status == "finished", result.reason
    return result


@pytest.fixture(scope="module")
def mnist_run(store: RunStore) -> RunResult:
    result = run_training(mnist_preset("fast", train_limit=500, test_limit=100, epochs=1), store=store)
    assert result.status == "finished", result.reason
    return result


def _split(store: RunStore, run: RunResult) -> DataSplit:
    return DataSplit.from_dict(store.read_json(run.run_id, "split.json"))


@pytest.mark.slow
def test_classifier_classifies_files_and_reports_bad_ones(folder_run: RunResult, store: RunStore,
                                                          tmp_path: Path) -> None:
    split = _split(store, folder_run)
    paths = [str(Path(split.root) / p) for p, _ in split.val]
    odd = Path(split.root) / "red" / "red_0000.jpg"
    unicode_copy = tmp_path / "mes images ☀" / "rouge ünï.jpg"
    unicode_copy.parent.mkdir()
    unicode_copy.write_bytes(odd.read_bytes())
    bad = [str(write_text_as_image(tmp_path / "notes.png")), str(tmp_path / "missing.jpg"),
           str(write_tiny_image(tmp_path / "dot.png"))]
    classifier = Classifier(folder_run.run_id, store=store)
    predictions = classifier.classify([*paths, str(unicode_copy), *bad], top_k=2)

    assert len(predictions) == len(paths) + 4
    good = predictions[:len(paths)]
    accuracy = np.mean([p.label == split.class_names[i] for p, (_, i) in zip(good, split.val, strict=True)])
    assert accuracy >= 0.8
    first = good[0]
    assert first.ok and first.file == paths[0] and len(first.top) == 2 and first.top[0] == (first.label,
                                                                                            first.probability)
    assert first.top[0][1] >= first.top[1][1] and first.seen.shape == (32, 32, 3) and first.seen.dtype == np.uint8
    assert predictions[len(paths)].label == "red"
    errors = [p.error for p in predictions[-3:]]
    assert "text file" in errors[0] and "no such file" in errors[1] and "1×1" in errors[2]
    assert all("\n" not in e and p.label == "" and p.seen is None for e, p in zip(errors, predictions[-3:],
                                                                                    strict=True))


@pytest.mark.slow
def test_classify_arrays_matches_files_and_resizes(folder_run: RunResult, store: RunStore) -> None:
    split = _split(store, folder_run)
    path = Path(split.root) / split.val[0][0]
    classifier = Classifier(folder_run.run_id, store=store)
    from_file = classifier.classify([path])[0]
    pixels = load_rgb(path, (32, 32))
    big = np.asarray(Image.fromarray(pixels).resize((96, 64), Image.Resampling.NEAREST))
    from_arrays = classifier.classify_arrays([pixels, big, np.zeros((4, 4, 7), np.uint8)])
    assert [label for label, _ in from_arrays[0].top] == [label for label, _ in from_file.top]
    assert [p for _, p in from_arrays[0].top] == pytest.approx([p for _, p in from_file.top], abs=1e-6)
    assert from_arrays[1].seen.shape == (32, 32, 3) and from_arrays[1].label == from_file.label
    assert "expected an image array" in from_arrays[2].error


@pytest.mark.slow
def test_classifier_prepares_digits_like_mnist(mnist_run: RunResult, store: RunStore, tmp_path: Path) -> None:
    mnist = load_mnist()
    digit = mnist.test_images[0]
    # A user's photo of a digit: dark ink on white paper, larger than 28×28.
    photo = Image.fromarray(255 - digit).resize((84, 84), Image.Resampling.BILINEAR)
    photo.save(tmp_path / "my seven.png")
    classifier = Classifier(mnist_run.run_id, store=store)
    prediction = classifier.classify([tmp_path / "my seven.png", tmp_path / "nothing.png"])
    assert prediction[0].ok and prediction[0].seen.shape == (28, 28) and prediction[0].seen.dtype == np.uint8
    assert prediction[0].seen[0].max() == 0 and prediction[0].seen.max() > 200  # light digit on black, centred
    assert "no such file" in prediction[1].error
    # In-memory MNIST digits are already prepared: fed as they are, exactly like the model's own evaluation.
    labels = [p.label for p in classifier.classify_arrays(mnist.test_images[:50])]
    expected = classifier.model.predict(mnist.test_images[:50].astype(np.float32), verbose=0).argmax(1)
    assert labels == [str(d) for d in expected]
    with pytest.raises(RunStoreError, match="expected a run id"):
        Classifier("no-such-run", store=store)


@pytest.mark.slow
def test_exports_agree_with_the_app_model(folder_run: RunResult, store: RunStore) -> None:
    run_dir = store.get(folder_run.run_id).path
    paths = {fmt: export_run(folder_run.run_id, fmt, store=store) for fmt in ("keras", "savedmodel", "tflite")}
    assert paths == {"keras": run_dir / "exports" / "model.keras", "savedmodel": run_dir / "exports" / "savedmodel",
                     "tflite": run_dir / "exports" / "model.tflite"}
    records = store.read_json(folder_run.run_id, "exports.json")
    assert [r["format"] for r in records] == ["keras", "savedmodel", "tflite"]
    for record in records:
        assert record["agreement"] == 1.0 and record["max_abs_diff"] < 1e-4, record
        assert record["samples"] == 9 and record["path"] == str(paths[record["format"]])

    # The SavedModel serves raw uint8 images with all preprocessing inside.
    serve = tf.saved_model.load(str(paths["savedmodel"])).signatures["serving_default"]
    spec = serve.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3]
    split = _split(store, folder_run)
    pixels = load_rgb(Path(split.root) / split.val[0][0], (32, 32))[None]
    classifier = Classifier(folder_run.run_id, store=store)
    served = serve(images=tf.constant(pixels))
    raw = classifier.model.predict(pixels.astype(np.float32), verbose=0)
    assert np.allclose(served["probabilities"].numpy(), raw, atol=1e-5)
    # ... and carries the run's calibration and unknown check (issue 10)
    assert np.allclose(served["calibrated_probabilities"].numpy(), classifier.probabilities(pixels), atol=1e-5)
    prediction = classifier.classify_arrays(pixels)[0]
    assert served["label"].numpy()[0].decode() == prediction.label
    assert bool(served["unknown"].numpy()[0]) == prediction.unknown
    assert float(served["distance"].numpy()[0]) == pytest.approx(prediction.distance, abs=1e-4)
    class_names = classifier.class_names
    assert (paths["savedmodel"] / "assets.extra" / "labels.txt").read_text().split() == class_names
    # model.keras and model.tflite share their sidecars: model.labels.txt, model.transferlab.json
    assert (run_dir / "exports" / "model.labels.txt").read_text().split() == class_names
    metadata = json.loads((run_dir / "exports" / "model.transferlab.json").read_text())
    assert metadata["temperature"] == pytest.approx(classifier.trust.temperature)
    assert metadata["unknown"]["confidence"] == pytest.approx(classifier.trust.thresholds.confidence)

    # Exporting again never replaces the first export: a new name beside it, with its own record.
    again = export_run(folder_run.run_id, "keras", store=store)
    assert again == run_dir / "exports" / "model-2.keras" and paths["keras"].is_file()
    assert [r["format"] for r in store.read_json(folder_run.run_id, "exports.json")] == ["keras", "savedmodel",
                                                                                       "tflite", "keras"]
    with pytest.raises(ConfigError, match=r"expected one of keras, savedmodel, tflite, tflite-fp16, tflite-int8, got"):
        export_run(folder_run.run_id, "onnx", store=store)


@pytest.mark.slow
def test_mnist_export_takes_raw_digits(mnist_run: RunResult, store: RunStore, tmp_path: Path) -> None:
    path = export_run(mnist_run.run_id, "tflite", store=store, out=tmp_path / "digits.tflite")
    assert path == tmp_path / "digits.tflite" and path.is_file()
    record = store.read_json(mnist_run.run_id, "exports.json")[-1]
    assert record["samples"] == 1000 and record["input"]["shape"] == [None, 28, 28]
    assert record["agreement"] >= 0.999 and record["max_abs_diff"] < 1e-4


@pytest.mark.parametrize(("fmt", "min_agreement", "max_diff"),
                         [("tflite-fp16", 0.99, 0.02), ("tflite-int8", 0.75, 0.5)])
@pytest.mark.slow
def test_quantized_tflite_exports_are_smaller_and_agree(mnist_run: RunResult, store: RunStore, tmp_path: Path,
                                                        fmt: str, min_agreement: float, max_diff: float) -> None:
    # The run is a 1-epoch model on 500 digits with low margins, so int8 rounding flips more of its answers than it
    # does on a trained model (bench/export.py measures that); a broken quantization would agree ~10 % of the time.
    float_path = export_run(mnist_run.run_id, "tflite", store=store, out=tmp_path / "float.tflite")
    path = export_run(mnist_run.run_id, fmt, store=store, out=tmp_path / f"{fmt}.tflite")
    record = store.read_json(mnist_run.run_id, "exports.json")[-1]
    assert record["format"] == fmt and record["samples"] == 1000
    assert record["agreement"] >= min_agreement and record["max_abs_diff"] < max_diff, record
    assert path.stat().st_size < 0.6 * float_path.stat().st_size
    if fmt == "tflite-int8":  # full-integer: the weights are int8 tensors, the input stays raw uint8 pixels
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        types = {d["dtype"] for d in interpreter.get_tensor_details()}
        assert np.int8 in types
        assert interpreter.get_input_details()[0]["dtype"] == np.uint8
