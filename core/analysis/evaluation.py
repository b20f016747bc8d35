"""Classification metrics from predicted probabilities: loss, accuracy, confusion matrix, per-class
precision/recall/F1 and the misclassified samples, most confident mistakes first."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from transferlab.core.records import ClassScores, EvaluationReport, Mistake, SampleId

MAX_MISCLASSIFIED = 500


def classification_report(y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], *,
                          eval_set: str = "test", sample_ids: Sequence[SampleId] | None = None,
                          max_misclassified: int = MAX_MISCLASSIFIED) -> EvaluationReport:
    """The report on `eval_set`. `sample_ids` names each sample in the misclassified list (default: its index)."""
    y_true = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    n_classes = len(class_names)
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    accuracy.update_state(y_true, probabilities)
    loss = keras.losses.sparse_categorical_crossentropy(y_true, np.clip(probabilities, 1e-7, 1.0))
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, predicted), 1)
    return EvaluationReport(
        eval_set=eval_set,
        loss=float(np.mean(keras.ops.convert_to_numpy(loss))),
        accuracy=float(accuracy.result()),
        samples=len(y_true),
        class_names=tuple(class_names),
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in confusion),
        per_class=per_class_scores(confusion, class_names),
        misclassified=misclassified(y_true, probabilities, sample_ids, max_misclassified),
        # Every sample's true and predicted class, so any confusion cell can list its samples exactly.
        labels=tuple(int(v) for v in y_true),
        predictions=tuple(int(v) for v in predicted),
        sample_ids=tuple(sample_ids) if sample_ids is not None else None,
    )


def per_class_scores(confusion: np.ndarray, class_names: Sequence[str]) -> tuple[ClassScores, ...]:
    true_positive = np.diag(confusion).astype(float)
    predicted_count = confusion.sum(axis=0).astype(float)
    support = confusion.sum(axis=1).astype(float)
    precision = np.divide(true_positive, predicted_count, out=np.zeros_like(true_positive),
                          where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return tuple(ClassScores(str(name), float(p), float(r), float(f), int(s))
                 for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True))


def misclassified(y_true: np.ndarray, probabilities: np.ndarray, sample_ids: Sequence[SampleId] | None,
                  limit: int) -> tuple[Mistake, ...]:
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probabilities[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:limit]
    return tuple(Mistake(index=int(i), id=sample_ids[i] if sample_ids is not None else int(i),
                         true=int(y_true[i]), predicted=int(predicted[i]),
                         probability=float(probabilities[i, predicted[i]])) for i in order)
