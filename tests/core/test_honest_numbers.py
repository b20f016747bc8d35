"""Numbers that mean what they say: each compare arm trains with its own mode's settings, frozen heads are
trained to convergence by default, and cross-validation on the cached features is stored with the run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.core.imagefactory import make_class_folder, make_textured_folder, textured_image, write_image
from transferlab.core.config import (
    FINETUNE_LEARNING_RATE,
    FROZEN_LEARNING_RATE,
    FitOptions,
    FolderConfig,
    folder_config_for,
    recommended_fit,
)
from transferlab.core.models.hub_layer import write_tiny_hub_model
from transferlab.core.runs.store import RunStore
from transferlab.core.training.compare import compare_frozen_finetune, headline
from transferlab.core.training.loop import run_training

CLASSES = {"circle": 12, "square": 12, "triangle": 12}


@pytest.fixture(scope="module")
def hub_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_hub_model(tmp_path_factory.mktemp("hub") / "tiny", feature_dim=32, image_size=32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_class_folder(tmp_path_factory.mktemp("data") / "shapes", classes=CLASSES, size=(32, 32), seed=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.mark.slow
def test_compare_arms_get_their_own_learning_rates(folder: Path, hub_model: Path, store: RunStore) -> None:
    # The form last showed fine-tuning's 1e-4: before the fix both arms trained at it.
    form = FolderConfig(data_dir=str(folder), backbone=str(hub_model), mode="finetune",
                        fit=FitOptions(epochs=2, batch_size=8, learning_rate=FINETUNE_LEARNING_RATE,
                                       validation_split=0.25, seed=3))
    short = {"epochs": 2, "early_stopping_patience": None}
    report = compare_frozen_finetune(form, store=store, explicit={"frozen": short, "finetune": short}).to_json()
    assert report["finetune"]["status"] == "finished", report["finetune"]["reason"]
    rates = [report[arm]["history"][0]["learning_rate"] for arm in ("frozen", "finetune")]
    assert rates == pytest.approx([FROZEN_LEARNING_RATE, FINETUNE_LEARNING_RATE])
    assert report["settings"]["frozen"]["learning_rate"] == FROZEN_LEARNING_RATE
    assert report["settings"]["finetune"]["learning_rate"] == FINETUNE_LEARNING_RATE
    assert report["headline"].startswith("Fine-tuning changed accuracy by") and "±" in report["headline"]

    # A value set explicitly for one arm applies to that arm only.
    explicit = {"frozen": short, "finetune": {**short, "learning_rate": 5e-4}}
    report = compare_frozen_finetune(form, store=store, explicit=explicit).to_json()
    rates = [report[arm]["history"][0]["learning_rate"] for arm in ("frozen", "finetune")]
    assert rates == pytest.approx([FROZEN_LEARNING_RATE, 5e-4])
    frozen_fit = store.config(report["frozen"]["run_id"]).fit
    assert frozen_fit.learning_rate is None and frozen_fit.batch_size == 8  # unset = the mode's default


def test_headline_says_when_the_difference_is_within_the_noise() -> None:
    cv = {"folds": 5, "accuracy_std": 0.03, "accuracy_mean": 0.9}
    assert "within the noise" in headline(0.02, {"cv": cv}, {})
    assert "larger than the noise" in headline(0.12, {"cv": cv}, {})
    # Without folds: the binomial standard error of both accuracies on the evaluation images.
    small = {"accuracy": 0.85, "samples": 34}
    assert "within the noise" in headline(0.06, small, {"accuracy": 0.91, "samples": 34})
    assert "34 evaluation images" in headline(0.06, small, {"accuracy": 0.91, "samples": 34})


def test_modes_recommend_their_own_settings(folder: Path) -> None:
    frozen, tuned = recommended_fit("frozen"), recommended_fit("finetune")
    assert frozen["early_stopping_patience"] and tuned["early_stopping_patience"]
    assert frozen["epochs"] >= 10 * tuned["early_stopping_patience"]
    config = folder_config_for("finetune", FolderConfig(data_dir=str(folder)), {"epochs": 7})
    assert (config.mode, config.fit.epochs, config.fit.learning_rate) == ("finetune", 7, None)
    assert config.fit.early_stopping_patience == tuned["early_stopping_patience"]
    assert FolderConfig(data_dir="x").fit.early_stopping_patience == frozen["early_stopping_patience"]


@pytest.mark.slow
def test_default_frozen_head_is_converged(hub_model: Path, store: RunStore, tmp_path: Path) -> None:
    """The default run's best validation loss is within 2 % of the best of a run 10× as long, on a small set
    whose classes overlap (some labels are wrong), so the validation loss has a real minimum."""
    root = make_textured_folder(tmp_path / "noisy", {"a": 32, "b": 32, "c": 32}, size=(32, 32), seed=1)
    rng = np.random.default_rng(5)
    for k in range(18):  # images of the next class filed under this one
        write_image(root / "abc"[k % 3] / f"noisy_{k}.jpg", textured_image((k + 1) % 3, (32, 32), rng), quality=92)
    default = run_training(FolderConfig(data_dir=str(root), backbone=str(hub_model)), store=store)
    assert default.status == "finished", default.reason
    epochs = len(default.history)
    assert epochs < FolderConfig(data_dir="x").fit.epochs, "early stopping, not the cap, ended the run"
    best = min(row["val_loss"] for row in default.history)
    assert default.metrics["loss"] == pytest.approx(best, rel=1e-3)  # the best weights were restored
    longer = dataclasses.replace(FolderConfig(data_dir="x").fit, epochs=10 * epochs, early_stopping_patience=None)
    long_run = run_training(FolderConfig(data_dir=str(root), backbone=str(hub_model), fit=longer), store=store)
    long_best = min(row["val_loss"] for row in long_run.history)
    assert best <= 1.02 * long_best, (best, long_best, epochs)


@pytest.mark.slow
def test_cross_validation_is_stored_with_the_run_and_printed(folder: Path, hub_model: Path,
                                                             store: RunStore) -> None:
    fit = FitOptions(epochs=3, batch_size=8, validation_split=0.25, seed=3)
    result = run_training(FolderConfig(data_dir=str(folder), backbone=str(hub_model), fit=fit, cv_folds=4,
                                       test_split=0.2), store=store)
    assert result.status == "finished", result.reason
    cv = result.metrics["cv"]
    assert cv["folds"] == 4 and len(cv["per_fold"]) == 4
    assert cv["samples"] == 36 - 6  # training + validation images; the test split stays untouched
    assert sum(f["samples"] for f in cv["per_fold"]) == cv["samples"]
    assert 0.0 <= cv["accuracy_std"] < 0.5 and cv["accuracy_mean"] >= 0.7
    assert set(cv["per_class_recall"]) == set(CLASSES)
    assert store.read_json(result.run_id, "crossval.json")["per_fold"] == cv["per_fold"]
    assert cv["text"] == f"{100 * cv['accuracy_mean']:.1f} % ± {100 * cv['accuracy_std']:.1f} over 4 folds"

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "transferlab", "--runs-dir", str(store.root), "train", "folder",
                           str(folder), "--backbone", str(hub_model), "--cv", "3", "--epochs", "2", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"folds", "accuracy_mean", "accuracy_std", "per_fold"} <= set(printed["cv"])
    assert printed["cv"]["folds"] == 3 and len(printed["cv"]["per_fold"][0]["recall"]) == 3


@pytest.mark.slow
def test_cli_compare_prints_each_arms_settings_and_the_headline(folder: Path, hub_model: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from transferlab.core.cli import main

    code = main(["--runs-dir", str(tmp_path / "runs"), "compare", str(folder), "--backbone", str(hub_model),
                 "--epochs", "2", "--batch-size", "8", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["settings"]["frozen"] == {"learning_rate": FROZEN_LEARNING_RATE, "epochs": 2,
                                            "early_stopping_patience": recommended_fit("frozen")[
                                                "early_stopping_patience"]}
    assert report["settings"]["finetune"]["learning_rate"] == FINETUNE_LEARNING_RATE
    assert report["settings"]["finetune"]["epochs"] == 2  # given on the command line: explicit for both arms
    assert [len(report[arm]["history"]) for arm in ("frozen", "finetune")] == [2, 2]
    assert report["headline"].startswith("Fine-tuning changed accuracy by")
