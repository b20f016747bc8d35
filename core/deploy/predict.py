"""Classify image files (or in-memory images) with a stored run's model.

    classifier = Classifier("latest")
    for p in classifier.classify(["cat.jpg", "broken.png"], top_k=3):
        print(p.file, p.error or f"{p.label} {p.probability:.1%}")

The model is loaded once (RunStore.load_model, safe_mode) together with the run's ModelInfo (model_info.json),
whose run kind says how to feed it (transferlab.core.training.kinds: an MNIST run's image is prepared like an
MNIST digit, a folder run's is resized to the model's input size and passed as raw 0..255 values). A file that
cannot be used gives a Prediction with a one-line `error`, never an exception.

Probabilities are calibrated with the run's temperature, and every prediction carries `unknown` and `reason`
from the run's unknown check (transferlab.core.analysis.trust); `classifier.trust.note` says what a run trained
before these existed lacks. `classifier.trust.set_rate(0.1)` moves both thresholds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferlab.core.analysis.calibration import apply_temperature
from transferlab.core.analysis.trust import RunTrust, load_trust
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
    unknown: bool = False  # far from the training data, or not confident enough (see `reason`)
    reason: str = ""
    distance: float | None = None  # to the k-th nearest training embedding (None: no distance check)

    def headline(self) -> str:
        """"7 (98 %)", or "unknown (best guess 7, 41 %)"."""
        if self.error:
            return f"error: {self.error}"
        if self.unknown:
            return f"unknown (best guess {self.label}, {self.probability:.0%})"
        return f"{self.label} ({self.probability:.1%})"

    @property
    def ok(self) -> bool:
        return not self.error


class Classifier:
    """A stored run's model, ready to classify images."""

    def __init__(self, run_id: str, store: RunStore | None = None, *, trust: bool = True) -> None:
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
        digits = self._feed.input_check is not None  # a digit run: far-away images get the "not a digit" hint
        self.trust = load_trust(self.store, self.run_id, digits) if trust else RunTrust(digits=digits,
                                                                                          note="trust disabled")
        self._probe: Any = None  # traced (probabilities, embedding) twin of the model, built on first use
        self._plain: Any = None  # the traced model

    # ---- files ----

    def classify(self, paths: Sequence[str | os.PathLike[str]], top_k: int = 3) -> list[Prediction]:
        """One Prediction per path, in order; unusable files get `error` set."""
        seen: list[np.ndarray | None] = []
        errors: list[str] = []
        hints: list[str] = []
        for path in paths:
            try:
                seen.append(self.prepare_file(path))
                errors.append("")
                hints.append(self._input_hint(path, seen[-1]))
            except TransferlabError as exc:
                seen.append(None)
                errors.append(first_line(exc, limit=300))
            except (OSError, ValueError, MemoryError) as exc:  # anything PIL / numpy may still raise
                seen.append(None)
                errors.append(f"expected a usable image in {path}, got {type(exc).__name__}: "
                              f"{first_line(exc, limit=300)}")
            if len(hints) < len(seen):
                hints.append("")
        return self._predict([str(p) for p in paths], seen, errors, top_k, hints)

    def _input_hint(self, image: str | os.PathLike[str] | np.ndarray, prepared: np.ndarray | None) -> str:
        """Why the image doesn't look like what this kind of run takes (a handwritten digit), or ""."""
        check = self._feed.input_check
        if check is None or not self.trust.has_unknown_check or prepared is None:
            return ""
        if isinstance(image, np.ndarray):
            original = np.asarray(image)
        else:
            from transferlab.core.data.images import load_rgb

            original = load_rgb(image, None, min_size=1)
        return str(check(original, prepared))

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
        hints: list[str] = []
        for name, image in zip(names, images, strict=True):
            try:
                seen.append(self.prepare_array(image, name))
                errors.append("")
                hints.append(self._input_hint(np.asarray(image), seen[-1]))
            except TransferlabError as exc:
                seen.append(None)
                errors.append(first_line(exc, limit=300))
                hints.append("")
        return self._predict(names, seen, errors, top_k, hints)

    def prepare_array(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        """What the model sees for an in-memory image (uint8); raises ImageError for an unusable array."""
        return self._feed.feed_array(self.info, image, name)

    # ---- internals ----

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The model's calibrated class probabilities for a batch of prepared uint8 images."""
        return self.scores(batch)[0]

    def scores(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(calibrated probabilities, distance to the training data or None) for prepared uint8 images."""
        x = batch.astype(np.float32)
        if self.trust.bank is None or not self.trust.has_unknown_check:
            raw, distances = self._forward(x, with_embedding=False)[0], None
        else:
            raw, embeddings = self._forward(x, with_embedding=True)
            distances = self.trust.distances(embeddings)
        return apply_temperature(raw, self.trust.temperature), distances

    def _forward(self, x: np.ndarray, with_embedding: bool) -> list[np.ndarray]:
        """[probabilities] or [probabilities, embeddings]: the model traced once (any batch size), in batches."""
        from transferlab.core.models.transfer import inference_function

        if with_embedding and self._probe is None:
            from transferlab.core.models.probes import embedding_model

            self._probe = inference_function(embedding_model(self.model))
        if not with_embedding and self._plain is None:
            self._plain = inference_function(self.model)
        forward = self._probe if with_embedding else self._plain
        chunks = [forward(x[i:i + PREDICT_BATCH]) for i in range(0, len(x), PREDICT_BATCH)]
        if not with_embedding:
            return [np.concatenate([np.asarray(c) for c in chunks])]
        return [np.concatenate([np.asarray(c[j]) for c in chunks]) for j in range(2)]

    def _predict(self, names: list[str], seen: list[np.ndarray | None], errors: list[str],
                 top_k: int, hints: list[str] | None = None) -> list[Prediction]:
        ok = [i for i, s in enumerate(seen) if s is not None]
        prepared = [s for s in seen if s is not None]
        probabilities, distances = self.scores(np.stack(prepared)) if prepared else (np.zeros((0, 0)), None)
        results: list[Prediction] = [Prediction(file=name, error=error) for name, error in zip(names, errors,
                                                                                                strict=True)]
        k = max(1, min(int(top_k), len(self.class_names)))
        for row, i in enumerate(ok):
            p = probabilities[row]
            order = np.argsort(-p, kind="stable")[:k]
            top = [(self.class_names[j], float(p[j])) for j in order]
            distance = None if distances is None else float(distances[row])
            verdict = self.trust.judge(top[0][1], distance, hints[i] if hints else "")
            results[i] = Prediction(file=names[i], label=top[0][0], probability=top[0][1], top=top, seen=seen[i],
                                    unknown=verdict.unknown, reason=verdict.reason, distance=distance)
        return results

    def describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.info.to_json(), "trust": self.trust.describe()}
