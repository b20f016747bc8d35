"""Classification metrics from predicted probabilities: loss, accuracy, confusion matrix, per-class
precision/recall/F1 and the misclassified samples, most confident mistakes first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

MAX_MISCLASSIFIED = 500


def classification_report(y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], *,
                          sample_ids: Sequence[Any] | None = None,
                          max_misclassified: int = MAX_MISCLASSIFIED) -> dict[str, Any]:
    """JSON-able metrics. `sample_ids` names each sample in the misclassified list (default: its index)."""
    y_true = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    n_classes = len(class_names)
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    accuracy.update_state(y_true, probabilities)
    loss = keras.losses.sparse_categorical_crossentropy(y_true, np.clip(probabilities, 1e-7, 1.0))
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, predicted), 1)
    return {
        "loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
        "accuracy": float(accuracy.result()),
        "samples": len(y_true),
        "class_names": list(class_names),
        "confusion_matrix": confusion.tolist(),
        "per_class": per_class_scores(confusion, class_names),
        "misclassified": misclassified(y_true, probabilities, sample_ids, max_misclassified),
        # Every sample's true and predicted class, so any confusion cell can list its samples exactly.
        "labels": y_true.tolist(),
        "predictions": predicted.tolist(),
        "sample_ids": list(sample_ids) if sample_ids is not None else None,
    }


def per_class_scores(confusion: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    true_positive = np.diag(confusion).astype(float)
    predicted_count = confusion.sum(axis=0).astype(float)
    support = confusion.sum(axis=1).astype(float)
    precision = np.divide(true_positive, predicted_count, out=np.zeros_like(true_positive),
                          where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)]


def misclassified(y_true: np.ndarray, probabilities: np.ndarray, sample_ids: Sequence[Any] | None,
                  limit: int) -> list[dict[str, Any]]:
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probabilities[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:limit]
    return [{"index": int(i), "id": sample_ids[i] if sample_ids is not None else int(i),
             "true": int(y_true[i]), "predicted": int(predicted[i]),
             "probability": float(probabilities[i, predicted[i]])} for i in order]
