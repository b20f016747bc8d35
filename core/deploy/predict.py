"""Classify image files (or in-memory images) with a stored run's model.

    classifier = Classifier("latest")
    for p in classifier.classify(["cat.jpg", "broken.png"], top_k=3):
        print(p.file, p.error or f"{p.label} {p.probability:.1%}")

The model is loaded once (RunStore.load_model, safe_mode) together with the run's ModelInfo (model_info.json),
whose run kind says how to feed it (transferlab.core.training.kinds: an MNIST run's image is prepared like an
MNIST digit, a folder run's is resized to the model's input size and passed as raw 0..255 values). A file that
cannot be used gives a Prediction with a one-line `error`, never an exception.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferlab.core.errors import ModelError, TransferlabError, first_line
from transferlab.core.runs.store import RunStore
from transferlab.core.training.kinds import parts_named

logger = logging.getLogger(__name__)

PREDICT_BATCH = 64


@dataclass(frozen=True)
class Prediction:
    """One image's result. When `error` is set, label is "" and probability 0."""

    file: str
    label: str = ""
    probability: float = 0.0
    top: list[tuple[str, float]] = field(default_factory=list)  # best first
    seen: np.ndarray | None = None  # what the model saw: uint8 (28, 28) digit or (h, w, 3) RGB
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class Classifier:
    """A stored run's model, ready to classify images."""

    def __init__(self, run_id: str, store: RunStore | None = None) -> None:
        self.store = store or RunStore()
        self.run_id = self.store.resolve(run_id)
        self.info = self.store.model_info(self.run_id)
        self._feed = parts_named(self.info.kind)
        self.kind: str = self.info.kind
        self.image_size: tuple[int, int] = self.info.image_size
        self.class_names: list[str] = list(self.info.class_names)
        self.model = self.store.load_model(self.run_id)
        outputs = int(self.model.output_shape[-1])
        if outputs != len(self.class_names):
            raise ModelError(f"expected a model with {len(self.class_names)} outputs (one per class) in run "
                             f"{self.run_id}, got {outputs}")

    # ---- files ----

    def classify(self, paths: Sequence[str | os.PathLike[str]], top_k: int = 3) -> list[Prediction]:
        """One Prediction per path, in order; unusable files get `error` set."""
        seen: list[np.ndarray | None] = []
        errors: list[str] = []
        for path in paths:
            try:
                seen.append(self.prepare_file(path))
                errors.append("")
            except TransferlabError as exc:
                seen.append(None)
                errors.append(first_line(exc, limit=300))
            except (OSError, ValueError, MemoryError) as exc:  # anything PIL / numpy may still raise
                seen.append(None)
                errors.append(f"expected a usable image in {path}, got {type(exc).__name__}: "
                              f"{first_line(exc, limit=300)}")
        return self._predict([str(p) for p in paths], seen, errors, top_k)

    def prepare_file(self, path: str | os.PathLike[str]) -> np.ndarray:
        """What the model sees for this file (uint8); raises ImageError for an unusable file."""
        return self._feed.feed_file(self.info, path)

    # ---- arrays ----

    def classify_arrays(self, images: Sequence[np.ndarray] | np.ndarray, top_k: int = 3,
                        names: Sequence[str] | None = None) -> list[Prediction]:
        """Classify in-memory images: uint8 gray (H, W) or RGB (H, W, 3) of any size (a canvas, a camera
        frame). Digit runs prepare them like files (core.digits); RGB runs resize them to the input size."""
        names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        seen: list[np.ndarray | None] = []
        errors: list[str] = []
        for name, image in zip(names, images, strict=True):
            try:
                seen.append(self.prepare_array(image, name))
                errors.append("")
            except TransferlabError as exc:
                seen.append(None)
                errors.append(first_line(exc, limit=300))
        return self._predict(names, seen, errors, top_k)

    def prepare_array(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        """What the model sees for an in-memory image (uint8); raises ImageError for an unusable array."""
        return self._feed.feed_array(self.info, image, name)

    # ---- internals ----

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The model's class probabilities for a batch of prepared uint8 images."""
        return np.asarray(self.model.predict(batch.astype(np.float32), batch_size=PREDICT_BATCH, verbose=0))

    def _predict(self, names: list[str], seen: list[np.ndarray | None], errors: list[str],
                 top_k: int) -> list[Prediction]:
        ok = [i for i, s in enumerate(seen) if s is not None]
        prepared = [s for s in seen if s is not None]
        probabilities = self.probabilities(np.stack(prepared)) if prepared else np.zeros((0, 0))
        results: list[Prediction] = [Prediction(file=name, error=error) for name, error in zip(names, errors,
                                                                                                strict=True)]
        k = max(1, min(int(top_k), len(self.class_names)))
        for row, i in enumerate(ok):
            p = probabilities[row]
            order = np.argsort(-p, kind="stable")[:k]
            top = [(self.class_names[j], float(p[j])) for j in order]
            results[i] = Prediction(file=names[i], label=top[0][0], probability=top[0][1], top=top, seen=seen[i])
        return results

    def describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.info.to_json()}
