"""Classify image files (or in-memory images) with a stored run's model.

    classifier = Classifier("latest")
    for p in classifier.classify(["cat.jpg", "broken.png"], top_k=3):
        print(p.file, p.error or f"{p.label} {p.probability:.1%}")

The model is loaded once (RunStore.load_model, safe_mode) together with the run's model_info.json, which
says how to feed it: "digits28" (MNIST: the image is prepared like an MNIST digit by core.digits) or "rgb"
(the image is resized to the model's input size and passed as raw 0..255 values). A file that cannot be
used gives a Prediction with a one-line `error`, never an exception.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferlab.core.errors import ImageError, ModelError, TransferlabError
from transferlab.core.runs.store import RunStore

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
        info = self.store.read_json(self.run_id, "model_info.json", default={}) or {}
        self.input_kind: str = info.get("input", "")
        if self.input_kind not in ("digits28", "rgb"):
            raise ModelError(f"expected model_info.json with input digits28 or rgb in run {self.run_id}, "
                             f"got {self.input_kind or 'none'}")
        self.image_size: tuple[int, int] = tuple(int(s) for s in info.get("image_size", (28, 28)))  # type: ignore[assignment]
        self.class_names: list[str] = [str(c) for c in info.get("class_names", [])]
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
                errors.append(_one_line(exc))
            except (OSError, ValueError, MemoryError) as exc:  # anything PIL / numpy may still raise
                seen.append(None)
                errors.append(f"expected a usable image in {path}, got {type(exc).__name__}: {_one_line(exc)}")
        return self._predict([str(p) for p in paths], seen, errors, top_k)

    def prepare_file(self, path: str | os.PathLike[str]) -> np.ndarray:
        """What the model sees for this file (uint8); raises ImageError for an unusable file."""
        if self.input_kind == "digits28":
            from transferlab.core.data.digits import prepare_digit  # lazily: only MNIST runs need it

            return np.asarray(prepare_digit(path), dtype=np.uint8)
        from transferlab.core.data.images import load_rgb

        return load_rgb(path, self.image_size)

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
                errors.append(_one_line(exc))
        return self._predict(names, seen, errors, top_k)

    def prepare_array(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        from PIL import Image

        array = np.asarray(image)
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or min(
                array.shape[:2]) < 1:
            raise ImageError(f"expected an image array (H, W), (H, W, 3) or (H, W, 4) in {name}, "
                             f"got shape {array.shape}")
        if array.dtype != np.uint8:
            array = np.clip(np.rint(array.astype(np.float64)), 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        pil = Image.fromarray(array)
        if self.input_kind == "digits28":
            from transferlab.core.data.digits import prepare_digit_array
            from transferlab.core.data.images import to_gray_array

            gray = to_gray_array(pil)
            if gray.shape == (28, 28) and _looks_prepared(gray):
                return gray
            return np.asarray(prepare_digit_array(gray, name=name), dtype=np.uint8)
        from transferlab.core.data.images import to_rgb_array

        rgb = to_rgb_array(pil)
        if rgb.shape[:2] != self.image_size:
            resized = Image.fromarray(rgb).resize((self.image_size[1], self.image_size[0]), Image.Resampling.BICUBIC)
            rgb = np.asarray(resized, dtype=np.uint8)
        return rgb

    # ---- internals ----

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The model's class probabilities for a batch of prepared uint8 images."""
        return np.asarray(self.model.predict(batch.astype(np.float32), batch_size=PREDICT_BATCH, verbose=0))

    def _predict(self, names: list[str], seen: list[np.ndarray | None], errors: list[str],
                 top_k: int) -> list[Prediction]:
        ok = [i for i, s in enumerate(seen) if s is not None]
        probabilities = self.probabilities(np.stack([seen[i] for i in ok])) if ok else np.zeros((0, 0))
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
        return {"run_id": self.run_id, "input": self.input_kind, "image_size": list(self.image_size),
                "class_names": list(self.class_names)}


def _looks_prepared(gray: np.ndarray) -> bool:
    """A 28×28 array that is already an MNIST-style digit: dark background (border mostly black)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(border.mean()) < 10.0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
