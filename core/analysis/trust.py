"""What a run stores so its predictions can be trusted, and how one prediction is judged.

Files in the run folder (written after evaluation by transferlab.core.training.trust_fit):
    calibration.json  the temperature, ECE before/after and reliability bins (core.analysis.calibration)
    unknown.json      the unknown check: k, the default thresholds and the coverage/accuracy trade-off
    unknown.npz       float16 bank of normalised training embeddings + the held-out scores (numpy arrays only,
                      read with allow_pickle=False)

A run trained before these existed has none of them: temperature 1, no unknown check, and `note` says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferlab.core.analysis.calibration import Calibration
from transferlab.core.analysis.ood import (
    K_NEIGHBOURS,
    TARGET_FALSE_UNKNOWN_RATE,
    HeldOutScores,
    Thresholds,
    knn_distance,
)
from transferlab.core.atomic import atomic_target
from transferlab.core.errors import TransferlabError, first_line
from transferlab.core.runs.store import RunStore

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
UNKNOWN_FILE = "unknown.json"
UNKNOWN_ARRAYS = "unknown.npz"
NOT_A_DIGIT_HINT = "this doesn't look like a digit — wrong model?"
OLD_RUN_NOTE = ("run trained before calibration and the unknown check: probabilities are uncalibrated "
                "(temperature 1) and nothing is flagged unknown")


@dataclass(frozen=True)
class Verdict:
    unknown: bool
    reason: str  # why unknown; "" when known


@dataclass
class RunTrust:
    """A run's calibration and unknown check, with thresholds the user may move (set_rate / set_thresholds)."""

    calibration: Calibration = field(default_factory=Calibration)
    bank: np.ndarray | None = None  # float16 [n, d], normalised training embeddings
    heldout: HeldOutScores | None = None
    k: int = K_NEIGHBOURS
    thresholds: Thresholds | None = None
    digits: bool = False  # an MNIST run: far-away images get the "not a digit" hint
    note: str = ""  # what is missing, for runs without (part of) the stored files

    @property
    def temperature(self) -> float:
        return self.calibration.temperature

    @property
    def has_unknown_check(self) -> bool:
        return self.thresholds is not None

    def set_rate(self, rate: float) -> Thresholds | None:
        """Re-choose both thresholds for a target false-unknown rate on the held-out images."""
        if self.heldout is not None:
            self.thresholds = self.heldout.thresholds(rate)
        return self.thresholds

    def distances(self, embeddings: np.ndarray) -> np.ndarray | None:
        if self.bank is None or self.thresholds is None or self.thresholds.distance is None:
            return None
        return knn_distance(self.bank, embeddings, self.k)

    def judge(self, confidence: float, distance: float | None, input_hint: str = "") -> Verdict:
        """`input_hint`: why the image itself looks wrong for this model (core.analysis.digit_check), or ""."""
        t = self.thresholds
        if t is None:
            return Verdict(False, "")
        if input_hint:
            return Verdict(True, f"{input_hint}: {NOT_A_DIGIT_HINT}" if self.digits else input_hint)
        if distance is not None and t.distance is not None and distance > t.distance:
            what = "every training digit" if self.digits else "the training images"
            reason = f"far from {what} (distance {distance:.2f} > {t.distance:.2f})"
            return Verdict(True, f"{reason}: {NOT_A_DIGIT_HINT}" if self.digits else reason)
        if confidence < t.confidence:
            return Verdict(True, f"low confidence ({confidence:.0%} < {t.confidence:.0%})")
        return Verdict(False, "")

    def describe(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "ece_before": self.calibration.ece_before,
                "ece_after": self.calibration.ece_after,
                "thresholds": self.thresholds.to_dict() if self.thresholds else None, "note": self.note}


def save_trust(store: RunStore, run_id: str, calibration: Calibration, bank: np.ndarray | None,
               heldout: HeldOutScores, *, k: int = K_NEIGHBOURS, heldout_name: str = "",
               rate: float = TARGET_FALSE_UNKNOWN_RATE) -> Thresholds:
    """Store the calibration and the unknown check; returns the default thresholds."""
    thresholds = heldout.thresholds(rate)
    store.write_json(run_id, CALIBRATION_FILE, calibration.to_dict())
    # Any values: numpy's stub would let a dict[str, ndarray] fill savez's allow_pickle: bool
    arrays: dict[str, Any] = heldout.arrays()
    if bank is not None:
        arrays["bank"] = np.asarray(bank, dtype=np.float16)
    with atomic_target(store.get(run_id).path / UNKNOWN_ARRAYS) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    store.write_json(run_id, UNKNOWN_FILE, {
        "k": int(k), "target_false_unknown_rate": rate, "heldout": heldout_name,
        "heldout_samples": len(heldout.confidence), "bank_size": 0 if bank is None else len(bank),
        "thresholds": thresholds.to_dict(), "tradeoff": heldout.tradeoff()})
    return thresholds


def load_trust(store: RunStore, run_id: str, digits: bool = False) -> RunTrust:
    """The run's stored trust files; anything missing or unreadable falls back (temperature 1 / no check)."""
    notes: list[str] = []
    calibration_data = _read(store, run_id, CALIBRATION_FILE, notes)
    unknown_data = _read(store, run_id, UNKNOWN_FILE, notes)
    if calibration_data is None and unknown_data is None and not notes:
        return RunTrust(digits=digits, note=OLD_RUN_NOTE)
    calibration = Calibration()
    if isinstance(calibration_data, dict):
        try:
            calibration = Calibration.from_dict(calibration_data)
        except (TypeError, ValueError) as exc:
            notes.append(f"calibration.json unreadable ({first_line(exc)}): temperature 1")
    else:
        notes.append("no calibration stored: temperature 1")
    trust = RunTrust(calibration=calibration, digits=digits)
    if isinstance(unknown_data, dict):
        try:
            _load_unknown(store, run_id, unknown_data, trust)
        except (OSError, ValueError, KeyError, TypeError, TransferlabError) as exc:
            trust.bank, trust.heldout, trust.thresholds = None, None, None
            notes.append(f"unknown check unavailable ({first_line(exc)})")
    else:
        notes.append("no unknown check stored")
    trust.note = "; ".join(notes)
    return trust


def _read(store: RunStore, run_id: str, filename: str, notes: list[str]) -> Any:
    try:
        return store.read_json(run_id, filename, default=None)
    except (OSError, TransferlabError) as exc:
        notes.append(f"{filename} unreadable ({first_line(exc, limit=120)})")
        return None


def _load_unknown(store: RunStore, run_id: str, data: dict[str, Any], trust: RunTrust) -> None:
    path = store.get(run_id).path / UNKNOWN_ARRAYS
    with np.load(path, allow_pickle=False) as arrays:
        trust.heldout = HeldOutScores.from_arrays(arrays)
        trust.bank = np.asarray(arrays["bank"], dtype=np.float32) if "bank" in arrays else None
    if trust.bank is not None and trust.bank.ndim != 2:
        raise ValueError(f"expected a 2-D embedding bank, got shape {trust.bank.shape}")
    trust.k = int(data.get("k", K_NEIGHBOURS))
    if trust.bank is None:
        trust.heldout = HeldOutScores(None, trust.heldout.confidence, trust.heldout.correct)
    trust.thresholds = trust.heldout.thresholds(float(data.get("target_false_unknown_rate",
                                                                TARGET_FALSE_UNKNOWN_RATE)))
