"""Cross-validation on cached features: a softmax (multinomial logistic) head over K stratified folds.

    report = cross_validate(features, labels, class_names, folds=5, seed=42, groups=None)
    probabilities, fold_of = out_of_fold(features, labels, folds=5, seed=42, groups=None)
    curve = learning_curve(features, labels, class_names)

On 100–2,000 images one validation split is noisy (±6 points on 170 photos); the mean and spread over K folds
say what the recipe is worth and how much a single number can move. Features are computed once, so each fold
costs only a logistic fit (milliseconds to a second). With `groups` (near-duplicate groups) folds are
StratifiedGroupKFold: a group never sits on both sides of a fold.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferlab.core.errors import DataError

logger = logging.getLogger(__name__)

LEARNING_CURVE_FRACTIONS = (0.10, 0.25, 0.50, 0.75, 1.0)
LEARNING_CURVE_SEEDS = (0, 1, 2)


def make_head(seed: int = 0) -> Any:
    """Standardized features → multinomial logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=500, random_state=seed))


def usable_folds(labels: np.ndarray, folds: int) -> int:
    """At most `folds`, at most the smallest class's count; DataError when fewer than 2 folds are possible."""
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min()) if len(counts) else 0
    k = min(int(folds), smallest)
    if k < 2 or (counts > 0).sum() < 2:
        raise DataError(f"expected at least 2 classes with at least 2 images each for cross-validation, got "
                        f"class sizes {sorted(int(c) for c in counts if c)}")
    return k


def _splits(features: np.ndarray, labels: np.ndarray, folds: int, seed: int,
            groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    k = usable_folds(labels, folds)
    if groups is not None and len(np.unique(groups)) < len(groups):
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has fewer members than n_splits" is handled
            warnings.simplefilter("ignore", UserWarning)
            return list(splitter.split(features, labels, groups))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(features, labels))


FitTask = tuple[np.ndarray, np.ndarray]  # (rows to train on, rows to predict), indices into the features


def _fit_predict_all(features: np.ndarray, labels: np.ndarray, tasks: Sequence[FitTask], n_classes: int,
                     seed: int) -> list[np.ndarray]:
    """For each task, the probabilities [len(predict rows), n_classes] of a head trained on its train rows (columns
    of classes absent from them stay 0). The fits run in parallel threads, one per core, each with one BLAS
    thread: the fits are small, several BLAS threads on a busy 2-core machine were 10x slower, and BLAS and
    scikit-learn's loss release the GIL, so two fits at once take little more than one."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    def fit_predict(task: FitTask) -> np.ndarray:
        train, predict = task
        head = make_head(seed)
        head.fit(features[train], labels[train])
        probabilities = np.zeros((len(predict), n_classes), dtype=np.float64)
        probabilities[:, head.classes_] = head.predict_proba(features[predict])
        return probabilities

    workers = max(1, min(len(tasks), os.cpu_count() or 1))
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # ConvergenceWarning on tiny folds: the fit is still usable
        with ThreadPoolExecutor(workers, thread_name_prefix="transferlab-head-fit") as pool:
            return list(pool.map(fit_predict, tasks))


def out_of_fold(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 42,
                groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each image's class probabilities from the head trained on the folds it was NOT in, and its fold."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1
    probabilities = np.zeros((len(labels), n_classes))
    fold_of = np.full(len(labels), -1, dtype=np.int64)
    splits = _splits(features, labels, folds, seed, groups)
    for k, ((_, test), predicted) in enumerate(zip(splits, _fit_predict_all(features, labels, splits, n_classes,
                                                                            seed), strict=True)):
        probabilities[test] = predicted
        fold_of[test] = k
    return probabilities, fold_of


def cross_validate(features: np.ndarray, labels: np.ndarray, class_names: Sequence[str], folds: int = 5,
                   seed: int = 42, groups: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy mean ± std and per-class recall over K stratified folds (see cv_report)."""
    started = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    probabilities, fold_of = out_of_fold(np.asarray(features, dtype=np.float32), labels, folds, seed, groups)
    report = cv_report(probabilities, labels, fold_of, class_names)
    report["grouped"] = groups is not None and len(np.unique(groups)) < len(groups)
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def cv_report(probabilities: np.ndarray, labels: np.ndarray, fold_of: np.ndarray,
              class_names: Sequence[str]) -> dict[str, Any]:
    """From out-of-fold predictions, plain JSON-able data: {"folds", "accuracy_mean", "accuracy_std",
    "per_fold": [{"fold", "samples", "accuracy", "recall": {class: r}}], "per_class_recall": {class: {"mean",
    "std"}}, "samples", "text"}."""
    predicted_all = probabilities.argmax(1)
    per_fold: list[dict[str, Any]] = []
    for k in range(int(fold_of.max()) + 1):
        test = fold_of == k
        predicted, truth = predicted_all[test], labels[test]
        recall = {name: float(np.mean(predicted[truth == c] == c)) for c, name in enumerate(class_names)
                  if (truth == c).any()}
        per_fold.append({"fold": k + 1, "samples": int(test.sum()), "accuracy": float(np.mean(predicted == truth)),
                         "recall": recall})
    accuracies = np.array([f["accuracy"] for f in per_fold])
    per_class: dict[str, dict[str, float]] = {}
    for name in class_names:
        values = [f["recall"][name] for f in per_fold if name in f["recall"]]
        if values:
            per_class[name] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    report: dict[str, Any] = {"folds": len(per_fold), "accuracy_mean": float(accuracies.mean()),
              "accuracy_std": float(accuracies.std()), "per_fold": per_fold, "per_class_recall": per_class,
              "samples": len(labels)}
    report["text"] = cv_text(report)
    return report


def cv_text(cv: dict[str, Any]) -> str:
    """"93.6 % ± 1.0 over 5 folds"."""
    return f"{100 * cv['accuracy_mean']:.1f} % ± {100 * cv['accuracy_std']:.1f} over {cv['folds']} folds"


def learning_curve(features: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                   fractions: Sequence[float] = LEARNING_CURVE_FRACTIONS, seeds: Sequence[int] = LEARNING_CURVE_SEEDS,
                   holdout: float = 0.25, groups: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy against images per class: per seed, a stratified hold-out (25 %), then heads trained on 10..100 %
    of the rest (stratified subsets). Returns {"points": [{"fraction", "images_per_class", "accuracy_mean",
    "accuracy_std", "recall": {class: mean}}], "reading": one honest sentence, "more_data_helps": bool|None,
    "classes_still_improving": [...]}."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int64)
    features = np.asarray(features, dtype=np.float32)
    index = np.arange(len(labels))
    results: dict[float, list[tuple[float, dict[str, float]]]] = {f: [] for f in fractions}
    per_class_pool: dict[float, list[float]] = {f: [] for f in fractions}
    tasks: list[tuple[float, FitTask]] = []
    for seed in seeds:
        try:
            pool, held = train_test_split(index, test_size=holdout, stratify=labels, random_state=seed)
        except ValueError as exc:
            raise DataError(f"expected at least 2 images per class for a learning curve, got {exc}") from exc
        rng = np.random.default_rng(seed)
        for fraction in fractions:
            chosen = _stratified_subset(pool, labels, fraction, rng)
            if len(np.unique(labels[chosen])) >= 2:
                tasks.append((fraction, (chosen, held)))
    fitted = _fit_predict_all(features, labels, [task for _, task in tasks], len(class_names), seed=0)  # lbfgs: unused
    for (fraction, (chosen, held)), probabilities in zip(tasks, fitted, strict=True):
        predicted = probabilities.argmax(1)
        recall = {name: float(np.mean(predicted[labels[held] == c] == c))
                  for c, name in enumerate(class_names) if (labels[held] == c).any()}
        results[fraction].append((float(np.mean(predicted == labels[held])), recall))
        per_class_pool[fraction].append(len(chosen) / max(len(class_names), 1))
    points = []
    for fraction in fractions:
        runs = results[fraction]
        if not runs:
            continue
        accuracies = [a for a, _ in runs]
        recall = {name: float(np.mean([r[name] for _, r in runs if name in r])) for name in class_names
                  if any(name in r for _, r in runs)}
        points.append({"fraction": fraction, "images_per_class": round(float(np.mean(per_class_pool[fraction])), 1),
                       "accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
                       "recall": recall})
    return {"points": points, **_reading(points, class_names)}


def _stratified_subset(pool: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    chosen = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        take = max(1, round(len(members) * fraction))
        chosen.extend(rng.permutation(members)[:take].tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def _reading(points: list[dict[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Would more images help? Compare the last step of the curve (75 → 100 %) with its spread."""
    if len(points) < 2:
        return {"reading": "Too few images per class to draw a learning curve.", "more_data_helps": None,
                "classes_still_improving": []}
    last, before = points[-1], points[-2]
    gain = last["accuracy_mean"] - before["accuracy_mean"]
    noise = max(last["accuracy_std"], before["accuracy_std"], 0.005)
    still = [name for name in class_names if name in last["recall"] and name in before["recall"]
             and last["recall"][name] - before["recall"][name] > max(noise, 0.02)]
    if last["accuracy_mean"] >= 0.995:
        reading, helps = "Accuracy is already at the top of the curve: more images of this kind won't show.", False
    elif gain > noise:
        reading, helps = (f"Still improving: +{100 * gain:.1f} points from {before['fraction']:.0%} to 100 % of the "
                          f"images (spread ±{100 * noise:.1f}), so more images would likely help."), True
    elif gain < -noise:
        reading, helps = ("The curve falls at the end: look at the suspect labels and duplicates before adding "
                          "images."), False
    else:
        reading, helps = (f"Flat: {100 * gain:+.1f} points from {before['fraction']:.0%} to 100 % is within the "
                          f"spread (±{100 * noise:.1f}); more images of the same kind are unlikely to help much — "
                          "check the suspect labels, or add different kinds of images."), False
    if still:
        reading += f" Classes still improving: {', '.join(still)}."
    return {"reading": reading, "more_data_helps": helps, "classes_still_improving": still}
