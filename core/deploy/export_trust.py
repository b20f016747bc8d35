"""What an export carries besides the model: the labels, the temperature and the unknown thresholds.

- Every export gets `labels.txt` (one class name a line, in output order) and `transferlab.json` (class names,
  input spec, temperature, unknown thresholds, k and where they were fitted). A SavedModel keeps them in its
  own folder under `assets.extra/`; a `.keras` or `.tflite` file gets them beside it as
  `<name>.labels.txt` and `<name>.transferlab.json` (never replacing a file of another name).
- The SavedModel's serving signature also returns, besides the raw `probabilities`:
  `calibrated_probabilities` (temperature applied), `label` (string, best guess), `confidence` (calibrated
  top-1), `distance` (to the k-th nearest stored training embedding; the bank is a constant in the graph)
  and `unknown` (bool: distance above its threshold or confidence below its threshold). The MNIST
  "doesn't look like a digit" input checks (core.analysis.digit_check) are not in the graph.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.core.analysis.trust import RunTrust, load_trust
from transferlab.core.atomic import write_text_atomic
from transferlab.core.kinds import kind_named
from transferlab.core.records import ModelInfo
from transferlab.core.runs.store import RunStore
from transferlab.core.training.kinds import parts_named

METADATA_NAME = "transferlab.json"
LABELS_NAME = "labels.txt"
EXTRA_FOLDER = "assets.extra"


def export_metadata(store: RunStore, run_id: str, info: ModelInfo) -> tuple[dict[str, Any], RunTrust]:
    digits = parts_named(info.kind).input_check is not None
    trust = load_trust(store, run_id, digits=digits)
    thresholds = trust.thresholds.to_dict() if trust.thresholds else None
    metadata = {
        "run_id": run_id, "class_names": [str(c) for c in info.class_names],
        "input": {"kind": info.kind, "shape": [None, *kind_named(info.kind).input_shape(info)], "dtype": "uint8",
                  "values": "raw 0..255 pixels" + ("; a white digit on black, 28×28" if digits else "")},
        "temperature": trust.temperature, "calibration": {"ece_before": trust.calibration.ece_before,
                                                          "ece_after": trust.calibration.ece_after,
                                                          "fitted_on": trust.calibration.fitted_on},
        "unknown": None if thresholds is None else {**thresholds, "k": trust.k,
                                                    "rule": "distance > distance threshold or calibrated "
                                                            "confidence < confidence threshold"},
        "note": trust.note,
    }
    return metadata, trust


def write_extras(folder: str | os.PathLike[str], metadata: dict[str, Any], prefix: str = "") -> list[Path]:
    """labels.txt and transferlab.json into `folder` (named `<prefix>.labels.txt`... when a prefix is given)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = folder / (f"{prefix}.{LABELS_NAME}" if prefix else LABELS_NAME)
    meta = folder / (f"{prefix}.{METADATA_NAME}" if prefix else METADATA_NAME)
    write_text_atomic(labels, "".join(f"{name}\n" for name in metadata["class_names"]))
    write_text_atomic(meta, json.dumps(metadata, indent=2))
    return [labels, meta]


def write_sidecars(target: Path, metadata: dict[str, Any]) -> list[Path]:
    """For a single-file export (.keras, .tflite): <name>.labels.txt and <name>.transferlab.json beside it."""
    return write_extras(target.parent, metadata, prefix=target.stem)


def trusted_serving_module(model: Any, input_shape: tuple[int, ...], class_names: list[str], trust: RunTrust,
                           input_key: str, output_key: str) -> Any:
    """A tf.Module whose `serve` returns raw and calibrated probabilities, label, confidence, distance, unknown."""
    import tensorflow as tf

    from transferlab.core.models.probes import embedding_model

    thresholds = trust.thresholds
    use_distance = trust.bank is not None and thresholds is not None and thresholds.distance is not None
    probe = embedding_model(model) if use_distance else None
    bank = tf.constant(np.asarray(trust.bank, dtype=np.float32)) if use_distance else None
    k = int(min(trust.k, len(trust.bank))) if use_distance and trust.bank is not None else 1
    names = tf.constant(class_names)
    temperature = float(trust.temperature)
    confidence_threshold = float(thresholds.confidence) if thresholds else 0.0
    distance_threshold = (float(thresholds.distance)
                          if use_distance and thresholds and thresholds.distance is not None else 2.0)

    class TrustedServing(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="transferlab_trusted_serving")
            self.model, self.probe = model, probe

        @tf.function(input_signature=[tf.TensorSpec([None, *input_shape], tf.uint8, name=input_key)])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            x = tf.cast(images, tf.float32)
            if self.probe is not None:
                raw, embedding = self.probe(x, training=False)
                unit = tf.math.l2_normalize(tf.reshape(embedding, [tf.shape(embedding)[0], -1]), axis=1)
                similarity = tf.linalg.matmul(unit, bank, transpose_b=True)
                kth = tf.math.top_k(similarity, k=k).values[:, k - 1]
                distance = tf.sqrt(tf.maximum(2.0 - 2.0 * kth, 0.0))
            else:
                raw = self.model(x, training=False)
                distance = tf.zeros(tf.shape(raw)[:1])
            logits = tf.math.log(tf.maximum(raw, 1e-12)) / temperature
            calibrated = tf.nn.softmax(logits, axis=-1)
            confidence = tf.reduce_max(calibrated, axis=-1)
            unknown = confidence < confidence_threshold
            if self.probe is not None:
                unknown = tf.logical_or(unknown, distance > distance_threshold)
            return {output_key: raw, "calibrated_probabilities": calibrated,
                    "label": tf.gather(names, tf.argmax(calibrated, axis=-1)), "confidence": confidence,
                    "distance": distance, "unknown": unknown}

    return TrustedServing()
