"""Why did the model decide? A heatmap over the image the model saw, for the predicted (or any) class.

    explainer = Explainer(Classifier("latest"))
    for e in explainer.explain_files(["cat.jpg"]):
        e.prediction.headline(), e.method, e.heatmap     # float32 (h, w) >= 0, at the model's input size

Three methods, chosen from the model's structure:
- "cam" (class activation map): a backbone ending in global average pooling followed by the Dense head (the
  bundled EfficientNet-Lite0, frozen or fine-tuned). Exact and one forward pass: the head's logits are
  mean(A) · W + b over the last spatial map A, so A · (W_c − mean_j W_j) is each position's share of class c's
  logit relative to the average class (softmax ignores what all classes share). The same pass yields the
  probabilities and the embedding, so classify-with-heatmap costs one forward pass.
- "gradcam": any other model with convolutions (the MNIST CNNs): Grad-CAM on the last spatial layer, i.e.
  ReLU(Σ_k mean(∂ log p_c / ∂A_k) · A_k), one forward and one backward pass.
- "occlusion": no spatial map reachable (a TF Hub module is one opaque layer; the MNIST ANN): the drop in the
  class's probability when each cell of a GRID × GRID grid is covered with the image's mean colour;
  GRID² + 1 forward passes in one batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.deploy.predict import Classifier, Prediction
from transferlab.core.errors import TransferlabError
from transferlab.core.models.probes import head_and_parts

logger = logging.getLogger(__name__)

OCCLUSION_GRID = 7
OVERLAY_MIN_SIDE = 224
OVERLAY_ALPHA = 0.55


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    heatmap: np.ndarray | None  # float32 (h, w) >= 0 at the size of prediction.seen; None on error
    method: str  # "cam" | "gradcam" | "occlusion" | "" on error
    class_index: int = -1

    def overlay(self, min_side: int = OVERLAY_MIN_SIDE) -> np.ndarray | None:
        if self.heatmap is None or self.prediction.seen is None:
            return None
        return overlay(self.prediction.seen, self.heatmap, min_side)


class Explainer:
    """Heatmaps for a loaded Classifier's model (see the module docstring for the method used)."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.model: keras.Model = classifier.model
        self.method, self._spatial, self._head_dense = _choose_method(self.model)
        self._cam_forward: Any = None

    # ---- public ----

    def explain_files(self, paths: Sequence[str | os.PathLike[str]], top_k: int = 3,
                      class_name: str | None = None) -> list[Explanation]:
        return [self.explain(p, class_name) for p in self.classifier.classify(paths, top_k=top_k)]

    def explain_arrays(self, images: Sequence[np.ndarray], top_k: int = 3,
                       names: Sequence[str] | None = None) -> list[Explanation]:
        return [self.explain(p) for p in self.classifier.classify_arrays(images, top_k=top_k, names=names)]

    def explain(self, prediction: Prediction, class_name: str | None = None) -> Explanation:
        """The heatmap of one classified image, for its predicted class (or `class_name`)."""
        if not prediction.ok or prediction.seen is None:
            return Explanation(prediction, None, "")
        names = self.classifier.class_names
        index = names.index(class_name) if class_name in names else names.index(prediction.label)
        heatmap = self.heatmap(prediction.seen, index)
        return Explanation(prediction, heatmap, self.method, index)

    def heatmap(self, seen: np.ndarray, class_index: int) -> np.ndarray:
        """float32 (h, w) >= 0 at the size of `seen` (a prepared uint8 image)."""
        x = np.asarray(seen, dtype=np.float32)[None]
        if self.method == "cam":
            raw = self._cam(x, class_index)
        elif self.method == "gradcam":
            raw = self._gradcam(x, class_index)
        else:
            raw = self._occlusion(x, class_index)
        return resize_map(np.maximum(raw, 0.0), seen.shape[:2])

    def classify_with_heatmap(self, paths: Sequence[str | os.PathLike[str]], top_k: int = 3) -> list[Explanation]:
        """Classify and explain. With "cam" the one forward pass also gives the probabilities and the embedding
        (no second pass); other methods classify first, then explain."""
        if self.method != "cam":
            return self.explain_files(paths, top_k)
        results = []
        for path in paths:
            try:
                seen = self.classifier.prepare_file(path)
            except (TransferlabError, OSError, ValueError, MemoryError):  # classify() reports it in one line
                results.append(self.explain(self.classifier.classify([path], top_k)[0]))
                continue
            results.append(self._cam_prediction(str(path), seen, top_k))
        return results

    # ---- methods ----

    def _cam_maps(self, x: np.ndarray) -> np.ndarray:
        if self._cam_forward is None:
            spec = tf.TensorSpec((None, *self.model.input_shape[1:]), tf.float32)
            self._cam_forward = tf.function(lambda t: self._spatial(t, training=False), input_signature=[spec])
        return np.asarray(self._cam_forward(x))

    def _cam(self, x: np.ndarray, class_index: int) -> np.ndarray:
        maps = self._cam_maps(x)[0]
        kernel = np.asarray(self._head_dense.kernel)
        weights = kernel[:, class_index] - kernel.mean(axis=1)
        heatmap: np.ndarray = maps @ weights
        return heatmap

    def _cam_prediction(self, name: str, seen: np.ndarray, top_k: int) -> Explanation:
        """Probabilities, distance and heatmap from one forward pass (method "cam")."""
        classifier, trust = self.classifier, self.classifier.trust
        maps = self._cam_maps(np.asarray(seen, dtype=np.float32)[None])[0]
        embedding = maps.mean(axis=(0, 1))
        kernel, bias = (np.asarray(w) for w in (self._head_dense.kernel, self._head_dense.bias))
        logits = embedding @ kernel + bias
        from transferlab.core.analysis.calibration import softmax

        probabilities = softmax(logits / trust.temperature)
        distances = trust.distances(embedding[None])
        distance = None if distances is None else float(distances[0])
        order = np.argsort(-probabilities, kind="stable")[:max(1, min(top_k, len(classifier.class_names)))]
        top = [(classifier.class_names[j], float(probabilities[j])) for j in order]
        verdict = trust.judge(top[0][1], distance)
        prediction = Prediction(file=name, label=top[0][0], probability=top[0][1], top=top, seen=seen,
                                unknown=verdict.unknown, reason=verdict.reason, distance=distance)
        index = int(order[0])
        weights = kernel[:, index] - kernel.mean(axis=1)
        return Explanation(prediction, resize_map(np.maximum(maps @ weights, 0.0), seen.shape[:2]), "cam", index)

    def _gradcam(self, x: np.ndarray, class_index: int) -> np.ndarray:
        tensor = tf.constant(x)
        with tf.GradientTape() as tape:
            maps, probabilities = self._spatial(tensor, training=False)
            score = tf.math.log(tf.maximum(probabilities[:, class_index], 1e-12))
        grads = tape.gradient(score, maps)
        if grads is None:
            return self._occlusion(x, class_index)
        maps, grads = np.asarray(maps)[0], np.asarray(grads)[0]
        if maps.ndim == 2:  # a 2-D map (H, W) without channels
            maps, grads = maps[..., None], grads[..., None]
        weights = grads.mean(axis=(0, 1))
        heatmap: np.ndarray = maps @ weights
        return heatmap

    def _occlusion(self, x: np.ndarray, class_index: int) -> np.ndarray:
        image = x[0]
        height, width = image.shape[:2]
        grid = min(OCCLUSION_GRID, height, width)
        rows = np.linspace(0, height, grid + 1).astype(int)
        cols = np.linspace(0, width, grid + 1).astype(int)
        fill = image.mean(axis=(0, 1))
        batch = [image]
        for r in range(grid):
            for c in range(grid):
                covered = image.copy()
                covered[rows[r]:rows[r + 1], cols[c]:cols[c + 1]] = fill
                batch.append(covered)
        probabilities = self.classifier._forward(np.stack(batch), with_embedding=False)[0][:, class_index]
        drops: np.ndarray = (probabilities[0] - probabilities[1:]).reshape(grid, grid)
        return drops


def _choose_method(model: keras.Model) -> tuple[str, Any, Any]:
    """(method, the model giving the spatial map(s), the head's Dense layer or None)."""
    head, parts = head_and_parts(model)
    if head is not None and parts:
        cam = _cam_model(model, head, parts)
        if cam is not None:
            return "cam", cam, head.get_layer("head_dense")
        return "occlusion", None, None
    convolutions = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Conv2D)]
    spatial = [layer for layer in model.layers[convolutions[0]:] if _is_spatial(layer)] if convolutions else []
    if spatial:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        return "gradcam", keras.Model(inputs, [spatial[-1].output, model.outputs[0]]), None
    return "occlusion", None, None


def _is_spatial(layer: keras.layers.Layer) -> bool:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return False
    return len(shape) == 4 and (shape[1] or 0) > 1 and (shape[2] or 0) > 1


def _cam_model(model: keras.Model, head: keras.Model, parts: list[keras.layers.Layer]) -> keras.Model | None:
    """input → parts up to the global average pooling → the map it pools; None when there is no such pooling
    right before the head (or the head is not Dropout + Dense)."""
    try:
        head.get_layer("head_dense")
    except ValueError:
        return None
    for position in range(len(parts) - 1, -1, -1):
        part = parts[position]
        later = parts[position + 1:]
        if not all(_is_identity(p) for p in later):
            return None
        pooling = _final_pooling(part)
        if pooling is None:
            continue
        inputs = keras.Input(tuple(model.input_shape[1:]), name="cam_input")
        x = inputs
        for earlier in parts[:position]:
            x = earlier(x, training=False)
        inner = keras.Model(part.inputs, pooling.input, name="cam_map")
        return keras.Model(inputs, inner(x, training=False), name="cam")
    return None


def _final_pooling(part: keras.layers.Layer) -> keras.layers.Layer | None:
    if not isinstance(part, keras.Model):
        return None
    pools = [layer for layer in part.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    if len(pools) != 1 or part.outputs[0] is not pools[0].output:
        return None
    return pools[0]


def _is_identity(part: keras.layers.Layer) -> bool:
    return isinstance(part, keras.Model) and all(
        isinstance(layer, keras.layers.InputLayer | keras.layers.Identity) for layer in part.layers)


# ---- pictures ----

def resize_map(heatmap: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A 2-D map bilinearly resized to (h, w), float32."""
    from PIL import Image

    heatmap = np.asarray(heatmap, dtype=np.float32)
    height, width = int(size[0]), int(size[1])
    if heatmap.shape == (height, width):
        return heatmap
    resized = Image.fromarray(heatmap).resize((width, height), Image.Resampling.BILINEAR)
    return np.maximum(np.asarray(resized, dtype=np.float32), 0.0)


def heat_colours(heatmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """("hot" colours uint8 (h, w, 3), opacity float (h, w)) of a map normalised to its maximum."""
    peak = float(heatmap.max()) if heatmap.size else 0.0
    h = heatmap / peak if peak > 0 else np.zeros_like(heatmap)
    colours = np.stack([np.clip(3 * h, 0, 1), np.clip(3 * h - 1, 0, 1), np.clip(3 * h - 2, 0, 1)], axis=-1)
    return (colours * 255).astype(np.uint8), np.clip(h, 0, 1) * OVERLAY_ALPHA


def overlay(seen: np.ndarray, heatmap: np.ndarray, min_side: int = OVERLAY_MIN_SIDE) -> np.ndarray:
    """uint8 RGB: the image the model saw with the heatmap blended over it, enlarged to at least `min_side`."""
    from PIL import Image

    image = np.asarray(seen, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    scale = max(1, -(-min_side // max(1, min(image.shape[:2]))))
    if scale > 1:
        size = (image.shape[1] * scale, image.shape[0] * scale)
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.NEAREST))
    heat = resize_map(heatmap, image.shape[:2])
    colours, alpha = heat_colours(heat)
    blended = image.astype(np.float32) * (1 - alpha[..., None]) + colours.astype(np.float32) * alpha[..., None]
    painted: np.ndarray = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return painted


def write_explanation(explanation: Explanation, folder: str | os.PathLike[str]) -> tuple[Path, Path] | None:
    """Write <stem>.png (the overlay) and <stem>.npy (the heatmap, float32 2-D >= 0) into `folder` (created if
    missing). Existing files are never replaced: a taken name gets a suffix (<stem>-2.png, ...)."""
    picture = explanation.overlay()
    if picture is None or explanation.heatmap is None:
        return None
    from PIL import Image

    from transferlab.core.atomic import atomic_target

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(explanation.prediction.file).stem or "image"
    for attempt in range(1, 1000):
        name = stem if attempt == 1 else f"{stem}-{attempt}"
        png, npy = folder / f"{name}.png", folder / f"{name}.npy"
        if not png.exists() and not npy.exists():
            break
    with atomic_target(npy) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(explanation.heatmap, dtype=np.float32), allow_pickle=False)
    with atomic_target(png) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return png, npy
