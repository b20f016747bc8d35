"""After evaluation: fit the run's temperature and unknown check on held-out data and store them.

    metrics.update(fit_trust(job, final_model, ctx))

A job that can supply the data implements `trust_samples(model, ctx) -> TrustSamples | None`; the loop calls
this after `evaluate`. It never fails a run: a problem here is logged, and the run keeps temperature 1 and no
unknown check (as a run trained before this existed).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, TypeAlias

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.analysis.calibration import apply_temperature, calibrate
from transferlab.core.analysis.ood import K_NEIGHBOURS, HeldOutScores, knn_distance, sample_bank
from transferlab.core.analysis.trust import save_trust
from transferlab.core.errors import first_line
from transferlab.core.events import PhaseProgress
from transferlab.core.models.probes import embedding_model
from transferlab.core.training.jobs import JobContext, StopRequested

logger = logging.getLogger(__name__)

EAGER_BATCH = 256
Source: TypeAlias = tuple[np.ndarray, np.ndarray] | tf.data.Dataset  # (inputs, labels) arrays, or a dataset of batches


@dataclass
class TrustSamples:
    """What the trust fit needs from a job; every input is in `model`'s input space."""

    model: keras.Model  # the final model or the fitted part (cached inputs)
    train: Source  # a sample of training inputs (≤ BANK_SIZE): the embedding bank
    heldout: Source  # in-distribution, never trained on: temperature and thresholds
    heldout_name: str  # e.g. "validation split (120 images)"
    report: Source | None = None  # where ECE before/after is measured; None: out of fold on heldout
    report_name: str = ""
    heldout_is_train: bool = False  # no held-out data: thresholds from training images (leave-one-out)
    seed: int = 0


def fit_trust(job: Any, model: keras.Model, ctx: JobContext) -> dict[str, Any]:
    """Fit and store calibration + unknown check; returns {"calibration": ..., "unknown": ...} for metrics."""
    samples_of = getattr(job, "trust_samples", None)
    if samples_of is None:
        return {}
    try:
        ctx.reporter(PhaseProgress("calibrating", 0, 1))
        started = time.perf_counter()
        samples = samples_of(model, ctx)
        if samples is None:
            return {}
        result = _fit(samples, ctx)
        ctx.reporter(PhaseProgress("calibrating", 1, 1))
        return {**result, "trust_fit_seconds": round(time.perf_counter() - started, 2)}
    except StopRequested:
        raise
    except Exception as exc:  # never fail a trained run over its calibration
        logger.exception("run %s: calibration / unknown check not fitted", ctx.run_id)
        return {"calibration_error": f"{type(exc).__name__}: {first_line(exc, limit=200)}"}


def _fit(samples: TrustSamples, ctx: JobContext) -> dict[str, Any]:
    probe = embedding_model(samples.model)
    train_probs, train_emb, _ = _run(probe, samples.train)
    del train_probs
    probs, emb, labels = _run(probe, samples.heldout)
    report = _run(probe, samples.report) if samples.report is not None else None
    calibration = calibrate(probs, labels, *(report[0], report[2]) if report else (None, None),
                            fitted_on=samples.heldout_name, measured_on=samples.report_name, seed=samples.seed)
    bank = sample_bank(train_emb, seed=samples.seed)
    if samples.heldout_is_train:
        distance = knn_distance(bank, emb, K_NEIGHBOURS, exclude_self=True)
    else:
        distance = knn_distance(bank, emb, K_NEIGHBOURS)
    calibrated = apply_temperature(probs, calibration.temperature)
    heldout = HeldOutScores(distance=distance, confidence=calibrated.max(axis=1),
                            correct=calibrated.argmax(axis=1) == labels)
    thresholds = save_trust(ctx.store, ctx.run_id, calibration, bank, heldout, heldout_name=samples.heldout_name)
    logger.info("run %s: temperature %.3f, ECE %.4f -> %.4f; unknown if distance > %.3f or confidence < %.3f",
                ctx.run_id, calibration.temperature, calibration.ece_before, calibration.ece_after,
                thresholds.distance, thresholds.confidence)
    return {"calibration": calibration.to_dict(), "unknown": thresholds.to_dict()}


def _run(probe: keras.Model, source: Source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, embeddings, labels) over a source."""
    if isinstance(source, tf.data.Dataset):
        probs, embs, label_batches = [], [], []
        for x, y in source:
            p, e = probe(x, training=False)
            probs.append(np.asarray(p))
            embs.append(np.asarray(e))
            label_batches.append(np.asarray(y))
        if not probs:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.concatenate(probs), np.concatenate(embs), np.concatenate(label_batches).astype(np.int64)
    inputs, labels = source
    inputs = np.asarray(inputs, dtype=np.float32)
    # eager batches, not predict(): no tf.function to trace, which would hold the GIL (and stall a GUI) for
    # a second on a busy CPU
    outputs = [probe(inputs[i:i + EAGER_BATCH], training=False) for i in range(0, len(inputs), EAGER_BATCH)]
    if not outputs:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return (np.concatenate([np.asarray(p) for p, _ in outputs]), np.concatenate([np.asarray(e) for _, e in outputs]),
            np.asarray(labels, dtype=np.int64))
