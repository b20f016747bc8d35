"""Calibrated confidence: temperature scaling fitted on held-out logits, expected calibration error (ECE) and
reliability-diagram bins. Pure numpy.

    fit = calibrate(heldout_probs, heldout_labels, report_probs, report_labels)
    calibrated = apply_temperature(probs, fit.temperature)

Every model here ends in a softmax, so the logits are recovered as log-probabilities: log softmax(z) = z - c
with one constant c per row, and softmax(log p / T) = softmax(z / T) exactly.

The temperature is the one scalar T > 0 that minimises the negative log-likelihood of the held-out labels
(Guo et al. 2017), kept within [MIN_TEMPERATURE, MAX_TEMPERATURE]; when every held-out answer is right there
is nothing to fit (the NLL keeps falling as T -> 0) and T stays 1. The ECE is reported on a set the
temperature was NOT fitted on: the run's evaluation set when it differs from the held-out set, else out of
fold (two folds, each scored with the temperature fitted on the other).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ECE_BINS = 15
DIAGRAM_BINS = 10
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.25, 10.0  # beyond these a small held-out set is over-fitted
EPSILON = 1e-12


def logits_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Log-probabilities: the logits up to a per-row constant (softmax is invariant to it)."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities (float32) from a softmax model's probabilities."""
    if temperature == 1.0:
        return np.asarray(probabilities, dtype=np.float32)
    return softmax(logits_from_probabilities(probabilities) / float(temperature)).astype(np.float32)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(scaled).sum(axis=1))
    return float(np.mean(log_z - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising held-out NLL: a coarse log-spaced grid, then golden-section refinement."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0 or bool(np.all(logits.argmax(axis=1) == labels)):
        return 1.0  # nothing to learn from: with every answer right, NLL only falls as T -> 0
    grid = np.exp(np.linspace(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE), 61))
    losses = [negative_log_likelihood(logits, labels, t) for t in grid]
    best = int(np.argmin(losses))
    low, high = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if negative_log_likelihood(logits, labels, np.exp(a)) < negative_log_likelihood(logits, labels, np.exp(b)):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2.0))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = DIAGRAM_BINS
                     ) -> list[dict[str, float]]:
    """Equal-width confidence bins: each {lower, upper, count, confidence (mean), accuracy}."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
                     "confidence": float(confidence[members].mean()) if count else 0.0,
                     "accuracy": float(correct[members].mean()) if count else 0.0})
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ over equal-width confidence bins of (bin share) × |accuracy − mean confidence|."""
    total = len(labels)
    if total == 0:
        return 0.0
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"])
                     for row in reliability_bins(probabilities, labels, bins)))


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and how well calibrated the run is before and after it."""

    temperature: float = 1.0
    ece_before: float | None = None
    ece_after: float | None = None
    bins_before: list[dict[str, float]] = field(default_factory=list)
    bins_after: list[dict[str, float]] = field(default_factory=list)
    fitted_on: str = ""  # e.g. "validation split (600 images)"
    measured_on: str = ""  # where the ECE figures come from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        temperature = float(known.get("temperature", 1.0))
        if not np.isfinite(temperature) or not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
            temperature = 1.0
        return cls(**{**known, "temperature": temperature})


def calibrate(heldout_probabilities: np.ndarray, heldout_labels: np.ndarray,
              report_probabilities: np.ndarray | None = None, report_labels: np.ndarray | None = None, *,
              fitted_on: str = "held-out data", measured_on: str = "", seed: int = 0) -> Calibration:
    """Fit the temperature on the held-out set; measure ECE before/after on the report set (or out of fold)."""
    heldout_labels = np.asarray(heldout_labels, dtype=np.int64)
    logits = logits_from_probabilities(heldout_probabilities)
    temperature = fit_temperature(logits, heldout_labels)
    if report_probabilities is not None and report_labels is not None and len(report_labels):
        before = np.asarray(report_probabilities, dtype=np.float64)
        labels = np.asarray(report_labels, dtype=np.int64)
        after = apply_temperature(before, temperature)
    else:
        before, after, labels = _out_of_fold(logits, heldout_labels, seed)
        measured_on = measured_on or f"{fitted_on}, out of fold (2 folds)"
    return Calibration(temperature=temperature,
                       ece_before=expected_calibration_error(before, labels),
                       ece_after=expected_calibration_error(after, labels),
                       bins_before=reliability_bins(before, labels), bins_after=reliability_bins(after, labels),
                       fitted_on=fitted_on, measured_on=measured_on)


def _out_of_fold(logits: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uncalibrated, calibrated, labels): each half calibrated with the temperature fitted on the other."""
    order = np.random.default_rng(seed).permutation(len(labels))
    folds = [order[: len(order) // 2], order[len(order) // 2:]]
    before = softmax(logits)
    after = np.empty_like(before)
    for this, other in (folds, folds[::-1]):
        if len(this) == 0:
            continue
        temperature = fit_temperature(logits[other], labels[other]) if len(other) else 1.0
        after[this] = softmax(logits[this] / temperature)
    return before, after, labels
