"""The "unknown" check: is an image unlike anything the model was trained on, or is the model unsure? Pure numpy.

Two scores per image, both from the one forward pass that classifies it:
- distance: the distance from the image's embedding (the input of the final Dense layer: the backbone's
  feature vector for folder runs, the penultimate activations for MNIST) to its K-th nearest neighbour among
  up to BANK_SIZE training embeddings, all L2-normalised (deep nearest neighbours, Sun et al. 2022);
- confidence: the calibrated top-1 probability.

An image is "unknown" when its distance is above the distance threshold or its confidence below the confidence
threshold. Both thresholds are quantiles of the scores of held-out in-distribution images (never trained on),
each given half of the target false-unknown rate, so that at most TARGET_FALSE_UNKNOWN_RATE of held-out images
are flagged (the confidence threshold never exceeds CONFIDENCE_CAP: with a small, all-correct held-out set the
quantile sits at 100 % and would flag every answer that is merely 99.9 % sure; with fewer held-out images
than the quantile needs, e.g. under 40 for 2.5 %, it never exceeds FEW_HELDOUT_CONFIDENCE_CAP). The held-out scores are
stored, so the thresholds can be re-chosen for any rate (the classify view's slider) with the coverage
(share answered) and accuracy on what is answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TARGET_FALSE_UNKNOWN_RATE = 0.05
BANK_SIZE = 2000
K_NEIGHBOURS = 5
FEW_QUERIES = 16  # up to this many queries, distances skip BLAS (measured: 1 query × 2000 × 1280 on a loaded
# 2-core CPU took 22-50 ms with multi-threaded OpenBLAS, 2-3 ms with einsum, 1.4 ms with BLAS on one thread)
CONFIDENCE_CAP = 0.9  # an answer at least this confident is never flagged for confidence alone
FEW_HELDOUT_CONFIDENCE_CAP = 0.5  # ... and this one, when too few held-out images to estimate the quantile


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero (and is far from everything)."""
    x = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit


def knn_distance(bank: np.ndarray, queries: np.ndarray, k: int = K_NEIGHBOURS, *,
                 exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance of each normalised query to its k-th nearest normalised bank row (0 .. 2)."""
    queries = normalise(queries)
    if len(bank) == 0 or len(queries) == 0:
        return np.full(len(queries), 2.0, dtype=np.float32)
    bank = np.asarray(bank, dtype=np.float32)
    # few queries: numpy's own loop (a multi-threaded BLAS gemv stalls on a busy CPU); many: BLAS
    few = len(queries) <= FEW_QUERIES
    similarity = np.einsum("qd,nd->qn", queries, bank) if few else queries @ bank.T
    zero = ~np.any(queries, axis=1)
    k = max(1, min(int(k) + (1 if exclude_self else 0), bank.shape[0]))
    kth = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
    distance = np.sqrt(np.clip(2.0 - 2.0 * kth, 0.0, 4.0)).astype(np.float32)
    distance[zero] = 2.0
    return distance


def sample_bank(embeddings: np.ndarray, size: int = BANK_SIZE, seed: int = 0) -> np.ndarray:
    """Up to `size` normalised training embeddings, a seeded sample, stored as float16."""
    embeddings = np.asarray(embeddings)
    if len(embeddings) > size:
        embeddings = embeddings[np.sort(np.random.default_rng(seed).choice(len(embeddings), size, replace=False))]
    return normalise(embeddings).astype(np.float16)


@dataclass(frozen=True)
class Thresholds:
    """Where the unknown check draws the line, and what that costs on held-out in-distribution images."""

    distance: float | None  # None: no distance check (no training embeddings)
    confidence: float
    false_unknown_rate: float  # the target
    measured_false_unknown_rate: float  # share of held-out images flagged
    coverage: float  # share of held-out images answered (not flagged)
    accuracy_answered: float  # accuracy on the answered held-out images
    accuracy_all: float  # accuracy on all held-out images

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class HeldOutScores:
    """Scores of held-out in-distribution images: what every threshold is chosen from."""

    distance: np.ndarray | None  # float32 [n]; None when there is no bank
    confidence: np.ndarray  # float32 [n], calibrated top-1 probability
    correct: np.ndarray  # bool [n]

    def thresholds(self, rate: float = TARGET_FALSE_UNKNOWN_RATE) -> Thresholds:
        """Thresholds flagging about `rate` of the held-out images (half the budget each check)."""
        rate = float(np.clip(rate, 0.0, 0.99))
        share = rate / 2.0 if self.distance is not None else rate
        # observed values, rounded towards flagging fewer: the measured rate never exceeds the target
        confidence = 0.0
        if len(self.confidence) and share > 0:
            cap = CONFIDENCE_CAP if len(self.confidence) * share >= 1 else FEW_HELDOUT_CONFIDENCE_CAP
            confidence = min(float(np.quantile(self.confidence, share, method="lower")), cap)
        distance = None
        if self.distance is not None:
            distance = 2.0
            if len(self.distance) and share > 0:
                distance = float(np.quantile(self.distance, 1.0 - share, method="higher"))
        return self.evaluate(distance, confidence, rate)

    def evaluate(self, distance: float | None, confidence: float, rate: float) -> Thresholds:
        flagged = self.flags(distance, confidence)
        answered = ~flagged
        n = max(len(flagged), 1)
        return Thresholds(
            distance=distance, confidence=confidence, false_unknown_rate=rate,
            measured_false_unknown_rate=float(flagged.sum() / n), coverage=float(answered.sum() / n),
            accuracy_answered=float(self.correct[answered].mean()) if answered.any() else 0.0,
            accuracy_all=float(self.correct.mean()) if len(self.correct) else 0.0)

    def flags(self, distance: float | None, confidence: float) -> np.ndarray:
        flagged = self.confidence < confidence
        if distance is not None and self.distance is not None:
            flagged = flagged | (self.distance > distance)
        return flagged

    def tradeoff(self, rates: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
                 ) -> list[dict[str, Any]]:
        """Coverage and accuracy for a range of target rates (the coverage/accuracy trade-off)."""
        return [self.thresholds(rate).to_dict() for rate in rates]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"heldout_confidence": self.confidence.astype(np.float32),
               "heldout_correct": self.correct.astype(bool)}
        if self.distance is not None:
            out["heldout_distance"] = self.distance.astype(np.float32)
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> HeldOutScores:
        distance = np.asarray(arrays["heldout_distance"], dtype=np.float32) if "heldout_distance" in arrays else None
        confidence = np.asarray(arrays["heldout_confidence"], dtype=np.float32)
        correct = np.asarray(arrays["heldout_correct"], dtype=bool)
        if confidence.ndim != 1 or correct.shape != confidence.shape or (
                distance is not None and distance.shape != confidence.shape):
            raise ValueError(f"expected 1-D held-out scores of one length, got {confidence.shape}, {correct.shape}")
        return cls(distance=distance, confidence=confidence, correct=correct)
