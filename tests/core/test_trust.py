"""Calibrated confidence, the unknown check and heatmaps (issue 10): the maths on generated numbers, then real
tiny runs (MNIST fast preset on a few thousand digits, folder runs on a tiny TF Hub model and on the bundled
EfficientNet-Lite0) through Classifier, Explainer and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.core.imagefactory import make_class_folder
from transferlab.core.analysis.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    logits_from_probabilities,
    reliability_bins,
    softmax,
)
from transferlab.core.analysis.ood import HeldOutScores, knn_distance, sample_bank
from transferlab.core.analysis.trust import CALIBRATION_FILE, NOT_A_DIGIT_HINT, UNKNOWN_ARRAYS, UNKNOWN_FILE
from transferlab.core.config import FitOptions, FolderConfig, mnist_preset
from transferlab.core.data.mnist import load_mnist
from transferlab.core.deploy.explain import Explainer, write_explanation
from transferlab.core.deploy.predict import Classifier
from transferlab.core.models.hub_layer import write_tiny_hub_model
from transferlab.core.runs.store import RunStore
from transferlab.core.training.jobs import RunResult
from transferlab.core.training.loop import run_training

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "imagenet"


# ---- calibration maths ----

def _overconfident(n: int, classes: int = 5, seed: int = 0, sharpen: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a model whose true logits are z but which outputs softmax(sharpen · z)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 1.5
    # the labels are drawn from the true model, so softmax(logits) is calibrated by construction
    true_p = softmax(logits)
    labels = np.array([rng.choice(classes, p=p) for p in true_p])
    return softmax(sharpen * logits), labels


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model() -> None:
    heldout, heldout_labels = _overconfident(3000, seed=1)
    report, report_labels = _overconfident(3000, seed=2)
    fit = calibrate(heldout, heldout_labels, report, report_labels, fitted_on="held out", measured_on="report")
    assert fit.temperature == pytest.approx(3.0, rel=0.15)
    assert fit.ece_before > 0.1
    assert fit.ece_after < fit.ece_before / 3
    assert sum(row["count"] for row in fit.bins_after) == 3000
    # an under-confident model is sharpened (T < 1)
    soft, labels = _overconfident(3000, seed=3, sharpen=0.5)
    assert fit_temperature(logits_from_probabilities(soft), labels) < 0.7


def test_out_of_fold_ece_and_nothing_to_fit_when_every_answer_is_right() -> None:
    probs, labels = _overconfident(2000, seed=4)
    fit = calibrate(probs, labels, fitted_on="validation")
    assert "out of fold" in fit.measured_on
    assert fit.ece_after < fit.ece_before
    perfect = np.eye(3)[[0, 1, 2, 0]] * 0.9 + 0.1 / 3
    assert fit_temperature(logits_from_probabilities(perfect), np.array([0, 1, 2, 0])) == 1.0
    assert np.allclose(apply_temperature(perfect, 1.0), perfect)


def test_ece_and_bins_on_a_known_case() -> None:
    probabilities = np.array([[0.9, 0.1]] * 10)
    labels = np.array([0] * 6 + [1] * 4)  # 90 % confident, 60 % right
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.3)
    bins = reliability_bins(probabilities, labels, bins=10)
    assert bins[8]["count"] == 10 and bins[8]["accuracy"] == pytest.approx(0.6)


# ---- unknown-check maths ----

def test_thresholds_keep_the_false_unknown_rate_and_trade_coverage_for_accuracy() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (500, 16)) + 3.0
    bank = sample_bank(train, size=400)
    inside = knn_distance(bank.astype(np.float32), rng.normal(0, 1, (400, 16)) + 3.0)
    outside = knn_distance(bank.astype(np.float32), rng.normal(0, 1, (50, 16)) - 3.0)
    assert outside.min() > np.quantile(inside, 0.99)
    confidence = rng.uniform(0.3, 1.0, 400).astype(np.float32)
    correct = rng.uniform(0, 1, 400) < confidence  # the confident answers are more often right
    scores = HeldOutScores(inside, confidence, correct)
    default = scores.thresholds(0.05)
    assert default.measured_false_unknown_rate <= 0.05
    assert (outside > default.distance).all()
    curve = scores.tradeoff()
    coverage = [row["coverage"] for row in curve]
    assert coverage == sorted(coverage, reverse=True) and coverage[0] == 1.0
    assert curve[-1]["accuracy_answered"] > curve[0]["accuracy_answered"]
    assert knn_distance(bank.astype(np.float32), np.zeros((1, 16)))[0] == 2.0  # an all-zero embedding is far
    # nine held-out answers, all ~100 % sure: too few for a 2.5 % quantile, so no 99.9 % threshold
    few = HeldOutScores(np.full(9, 0.3, np.float32), np.full(9, 0.9999, np.float32), np.ones(9, bool))
    assert few.thresholds(0.05).confidence == 0.5 and few.thresholds(0.05).distance == pytest.approx(0.3)


# ---- MNIST: calibration stored, a photo and a page of text are unknown ----

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("home") / "runs")  # TRANSFERLAB_HOME=<home> for the CLI


@pytest.fixture(scope="module")
def mnist_run(store: RunStore) -> RunResult:
    result = run_training(mnist_preset("fast", train_limit=3000, test_limit=500, epochs=1), store=store)
    assert result.status == "finished", result.reason
    return result


def _text_page(path: Path) -> Path:
    page = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(page)
    for line in range(30):
        draw.text((20, 20 + 25 * line), "The quick brown fox jumps over the lazy dog. " * 2, fill="black")
    page.save(path)
    return path


def _paper_digits(folder: Path, count: int = 6) -> list[Path]:
    """MNIST test digits as dark ink on light paper, enlarged like a phone photo."""
    digits = load_mnist().test_images[:count]
    paths = []
    for i, digit in enumerate(digits):
        photo = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR).convert("RGB")
        paths.append(folder / f"digit{i}.png")
        photo.save(paths[-1])
    return paths


@pytest.mark.slow
def test_mnist_run_stores_calibration_and_flags_what_is_not_a_digit(mnist_run: RunResult, store: RunStore,
                                                                  tmp_path: Path) -> None:
    for name in (CALIBRATION_FILE, UNKNOWN_FILE, UNKNOWN_ARRAYS):
        assert (mnist_run.run_dir / name).is_file(), name
    calibration = mnist_run.metrics["calibration"]
    assert calibration["ece_after"] is not None and len(calibration["bins_before"]) == 10
    assert "validation" in calibration["fitted_on"] and "test" in calibration["measured_on"]
    unknown = json.loads((mnist_run.run_dir / UNKNOWN_FILE).read_text())
    assert unknown["thresholds"]["measured_false_unknown_rate"] <= 0.05

    classifier = Classifier(mnist_run.run_id, store)
    assert classifier.trust.has_unknown_check and not classifier.trust.note
    strange = [RESOURCES / "chelsea.png", RESOURCES / "coffee.png", _text_page(tmp_path / "page.png")]
    for prediction in classifier.classify(strange):
        assert prediction.unknown, prediction
        assert NOT_A_DIGIT_HINT in prediction.reason
        assert prediction.headline().startswith(f"unknown (best guess {prediction.label}, ")
    for prediction in classifier.classify(_paper_digits(tmp_path)):
        assert NOT_A_DIGIT_HINT not in prediction.reason, prediction.reason
    probabilities = classifier.probabilities(load_mnist().test_images[:50])
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_run_from_before_calibration_keeps_working_and_says_so(mnist_run: RunResult, store: RunStore,
                                                                tmp_path: Path) -> None:
    old_store = RunStore(tmp_path / "old")
    old_dir = old_store.root / mnist_run.run_id
    shutil.copytree(mnist_run.run_dir, old_dir)
    for name in (CALIBRATION_FILE, UNKNOWN_FILE, UNKNOWN_ARRAYS):
        (old_dir / name).unlink()
    old = Classifier(mnist_run.run_id, old_store)
    assert old.trust.temperature == 1.0 and not old.trust.has_unknown_check
    assert "before calibration" in old.trust.note
    prediction = old.classify([RESOURCES / "coffee.png"])[0]
    assert prediction.ok and not prediction.unknown
    raw = np.asarray(old.model.predict(prediction.seen[None].astype(np.float32), verbose=0))[0]
    assert prediction.probability == pytest.approx(float(raw.max()), abs=1e-5)
    # a damaged unknown file: the check is off, the calibration still applies, nothing raises
    damaged_dir = tmp_path / "damaged" / mnist_run.run_id
    shutil.copytree(mnist_run.run_dir, damaged_dir)
    (damaged_dir / UNKNOWN_ARRAYS).write_bytes(b"not an npz")
    damaged = Classifier(mnist_run.run_id, RunStore(tmp_path / "damaged"))
    assert not damaged.trust.has_unknown_check and "unknown check unavailable" in damaged.trust.note
    assert damaged.trust.temperature == pytest.approx(mnist_run.metrics["calibration"]["temperature"])


@pytest.mark.slow
def test_cli_predict_json_rows_and_plain_unknown(mnist_run: RunResult, store: RunStore, tmp_path: Path) -> None:
    env = {**os.environ, "TRANSFERLAB_HOME": str(store.root.parent)}
    page = _text_page(tmp_path / "page.png")
    digit = _paper_digits(tmp_path, 1)[0]
    done = subprocess.run([sys.executable, "-m", "transferlab", "predict", mnist_run.run_id, str(page), str(digit),
                           "--json"], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert [set(row) for row in rows] == [{"file", "label", "probability", "unknown", "reason", "top"}] * 2
    assert rows[0]["unknown"] is True and NOT_A_DIGIT_HINT in rows[0]["reason"]
    assert rows[0]["label"] in "0123456789"
    plain = subprocess.run([sys.executable, "-m", "transferlab", "predict", mnist_run.run_id, str(page)],
                           capture_output=True, text=True, env=env, timeout=240)
    assert plain.returncode == 0 and f"unknown (best guess {rows[0]['label']}, " in plain.stdout


def test_gradcam_for_the_mnist_cnn(mnist_run: RunResult, store: RunStore, tmp_path: Path) -> None:
    explainer = Explainer(Classifier(mnist_run.run_id, store))
    assert explainer.method == "gradcam"
    explanation = explainer.explain_files(_paper_digits(tmp_path, 1))[0]
    assert explanation.heatmap is not None and explanation.heatmap.shape == (28, 28)
    assert explanation.heatmap.min() >= 0 and explanation.heatmap.max() > 0
    assert np.isfinite(explanation.heatmap).all()
    other = next(name for name in explainer.classifier.class_names if name != explanation.prediction.label)
    for_other = explainer.explain(explanation.prediction, class_name=other)
    assert for_other.class_index != explanation.class_index
    assert for_other.heatmap is not None and not np.allclose(for_other.heatmap, explanation.heatmap)


# ---- folders: occlusion for a TF Hub module, CAM for the bundled backbone ----

@pytest.mark.slow
def test_occlusion_for_a_hub_module_and_unknown_for_far_images(store: RunStore, tmp_path: Path) -> None:
    hub = write_tiny_hub_model(tmp_path / "hub", feature_dim=32, image_size=32)
    folder = make_class_folder(tmp_path / "shapes", classes={"a": 12, "b": 12, "c": 12}, size=(32, 32), seed=1)
    config = FolderConfig(data_dir=str(folder), backbone=str(hub), fit=FitOptions(
        epochs=20, batch_size=8, learning_rate=1e-2, validation_split=0.25, seed=3))
    result = run_training(config, store=store)
    assert result.status == "finished", result.reason
    classifier = Classifier(result.run_id, store)
    assert classifier.trust.thresholds is not None and classifier.trust.thresholds.confidence <= 0.9
    inside = classifier.classify(sorted(folder.glob("a/*"))[:4])
    assert not any(p.unknown for p in inside), [p.reason for p in inside]
    explainer = Explainer(classifier)
    assert explainer.method == "occlusion"
    explanation = explainer.explain(inside[0])
    assert explanation.heatmap is not None and explanation.heatmap.shape == (32, 32)
    assert explanation.heatmap.dtype == np.float32 and explanation.heatmap.min() >= 0


def _object_image(rng: np.random.Generator, class_index: int, size: int = 224, side: int = 48
                  ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A plain light-grey background with one small object anywhere: a red disc (class 0) or a blue cross."""
    image = Image.new("RGB", (size, size), (200, 200, 200))
    top, left = (int(v) for v in rng.integers(0, size - side, 2))
    draw = ImageDraw.Draw(image)
    if class_index == 0:
        draw.ellipse((left, top, left + side, top + side), fill=(220, 30, 30))
    else:
        third = side // 3
        draw.rectangle((left + third, top, left + 2 * third, top + side), fill=(30, 40, 220))
        draw.rectangle((left, top + third, left + side, top + 2 * third), fill=(30, 40, 220))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), (top, left, top + side, left + side)


@pytest.mark.slow
def test_cam_mass_falls_on_the_small_object_that_decides_the_class(store: RunStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    root = tmp_path / "objects"
    for class_index, name in enumerate(("disc", "cross")):
        (root / name).mkdir(parents=True)
        for i in range(16):
            Image.fromarray(_object_image(rng, class_index)[0]).save(root / name / f"{i}.png")
    config = FolderConfig(data_dir=str(root), fit=FitOptions(epochs=30, batch_size=8, learning_rate=1e-2,
                                                            validation_split=0.25, seed=1))
    result = run_training(config, store=store)
    assert result.status == "finished", result.reason
    classifier = Classifier(result.run_id, store)
    explainer = Explainer(classifier)
    assert explainer.method == "cam"
    tests = [_object_image(rng, i % 2) for i in range(6)]
    paths = []
    for i, (image, _) in enumerate(tests):
        paths.append(tmp_path / f"test{i}.png")
        Image.fromarray(image).save(paths[-1])
    explained = explainer.classify_with_heatmap(paths)
    plain = classifier.classify(paths)
    for (_image, (top, left, bottom, right)), explanation, reference in zip(tests, explained, plain, strict=True):
        assert explanation.prediction.label == reference.label
        assert explanation.prediction.probability == pytest.approx(reference.probability, abs=1e-3)
        assert explanation.prediction.unknown == reference.unknown
        heat = explanation.heatmap
        assert heat is not None and heat.shape == (224, 224)
        margin = 24  # the 7×7 map is 32 px a cell: allow the object's neighbourhood
        box = heat[max(top - margin, 0):bottom + margin, max(left - margin, 0):right + margin]
        assert box.sum() / heat.sum() > 0.5, (box.sum() / heat.sum(), box.size / heat.size)
    written = write_explanation(explained[0], tmp_path / "out")
    again = write_explanation(explained[0], tmp_path / "out")  # never replaces a file: a new name
    assert written is not None and again is not None and written[0] != again[0]
    stored = np.load(written[1], allow_pickle=False)
    assert stored.dtype == np.float32 and stored.ndim == 2 and stored.min() >= 0
    with Image.open(written[0]) as overlay:
        assert overlay.size == (224, 224)

    env = {**os.environ, "TRANSFERLAB_HOME": str(store.root.parent)}
    done = subprocess.run([sys.executable, "-m", "transferlab", "explain", result.run_id, str(paths[1]),
                           str(tmp_path / "missing.png"), "--out", str(tmp_path / "cli")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr  # the missing file is reported, the other one explained
    assert (tmp_path / "cli" / "test1.png").is_file() and (tmp_path / "cli" / "test1.npy").is_file()
    assert "missing.png: error" in done.stdout and "(cam)" in done.stdout


def test_cli_unknown_rate_in_process(mnist_run: RunResult, store: RunStore, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from transferlab.core.cli import main

    home = str(store.root.parent)
    page = _text_page(tmp_path / "page.png")
    assert main(["--runs-dir", home, "predict", mnist_run.run_id, str(page), "--unknown-rate", "0.9"]) == 2
    assert "--unknown-rate: expected a fraction in [0, 0.5], got 0.9" in capsys.readouterr().err
    assert main(["--runs-dir", home, "predict", mnist_run.run_id, str(page), "--unknown-rate", "0.3"]) == 0
    assert "page.png: unknown (best guess " in capsys.readouterr().out
