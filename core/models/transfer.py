"""Transfer-learning models: backbone parts + a classification head, and running a backbone part once over
a folder's images.

Stored model layout (what init_from_run and prediction rely on): an input layer "image", one nested model
per backbone part ("extractor", or "bottom" and "top"), then the nested Sequential "head".
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.config import FolderConfig
from transferlab.core.data.folders import Item, make_dataset
from transferlab.core.errors import ModelError
from transferlab.core.models.backbones import Backbone, resolve_backbone
from transferlab.core.models.building import building_models
from transferlab.core.paths import cache_dir

logger = logging.getLogger(__name__)

EXTRACT_BATCH = 32  # images per forward pass when caching features / activations
SPILL_BYTES = 256 * 2**20  # cached outputs larger than this live in a memory-mapped file, not in RAM


HEAD_NAME = "head"


def backbone_parts(backbone: Backbone, config: FolderConfig) -> tuple[keras.Model | None, keras.Model | None]:
    """(frozen bottom, trainable top) of the backbone for the config's mode; either may be None."""
    bottom: keras.Model | None
    top: keras.Model | None
    if config.mode == "frozen":
        bottom, top = backbone.build_extractor(), None
    else:
        bottom, top = backbone.split(config.unfreeze)
    if bottom is not None:
        bottom.trainable = False
    return bottom, top


def preview_model(config: FolderConfig, n_classes: int, backbone: Backbone | None = None) -> keras.Model:
    """The whole model a folder run trains (backbone parts + head, trainability as in the run), built without
    data: what the model summary shows before training. `backbone`: config.backbone, already resolved."""
    backbone = backbone or resolve_backbone(config.backbone)
    parts = [part for part in backbone_parts(backbone, config) if part is not None]
    head = build_head(backbone.info.feature_dim, n_classes, config.dropout)
    return compose(backbone.info.input_size, parts, head)


def build_head(feature_dim: int, n_classes: int, dropout: float) -> keras.Sequential:
    """Dropout + Dense(n, softmax) on a [None, feature_dim] feature vector."""
    return keras.Sequential([keras.Input((int(feature_dim),), name="features"),
                             keras.layers.Dropout(dropout, name="head_dropout"),
                             keras.layers.Dense(n_classes, activation="softmax", name="head_dense")],
                            name=HEAD_NAME)


def augmentation_layers(seed: int | None = None) -> keras.Sequential:
    """Random flips, small rotations and zooms; active only while training (identity at inference)."""
    return keras.Sequential([keras.layers.RandomFlip("horizontal", seed=seed),
                             keras.layers.RandomRotation(0.08, fill_mode="reflect", seed=seed),
                             keras.layers.RandomZoom(0.15, fill_mode="reflect", seed=seed)], name="augmentation")


def augmentation_preview(image: np.ndarray, count: int = 8, seed: int | None = None) -> np.ndarray:
    """An image (uint8 H×W×3, as the model takes it) before (index 0) and after `count` draws of the folder runs'
    augmentation (augmentation_layers, in training mode): uint8 (count + 1, H, W, 3)."""
    pixels = np.asarray(image, dtype=np.uint8)
    with building_models():
        augmenter = augmentation_layers(seed)
    batch = np.repeat(pixels[None].astype(np.float32), count, axis=0)
    augmented = np.asarray(augmenter(batch, training=True))
    return np.concatenate([pixels[None], np.clip(augmented, 0, 255).round().astype(np.uint8)])


def compose(image_size: Sequence[int], parts: Sequence[keras.Model], head: keras.Model, *,
            augmenter: keras.Model | None = None, name: str = "classifier") -> keras.Model:
    """Raw 0..255 RGB [None, h, w, 3] → backbone parts (BatchNorm in inference mode) → head probabilities."""
    inputs = keras.Input((int(image_size[0]), int(image_size[1]), 3), name="image")
    x = augmenter(inputs) if augmenter is not None else inputs
    for part in parts:
        x = part(x, training=False)
    return keras.Model(inputs, head(x), name=name)


def chain(input_shape: Sequence[int], parts: Sequence[keras.Model], head: keras.Model, name: str) -> keras.Model:
    inputs = keras.Input(tuple(int(s) for s in input_shape), name="activations")
    x = inputs
    for part in parts:
        x = part(x, training=False)
    return keras.Model(inputs, head(x), name=name)


def inference_function(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """`model` in inference mode as one traced function: traced once for any batch size (tracing a backbone
    costs seconds on a CPU, so the smaller last batch must not trigger a second trace)."""
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    forward: Callable[[tf.Tensor], tf.Tensor] = tf.function(lambda x: model(x, training=False),
                                                            input_signature=[spec])
    return forward


def run_once(forward: Callable[[tf.Tensor], tf.Tensor], root: str, items: Sequence[Item],
             image_size: tuple[int, int], reporter: Callable[[], None] | None = None,
             spill_bytes: int = SPILL_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """`forward`'s outputs for every image, in one pass over the files; returns (outputs float32, labels int32).

    Outputs are written into one preallocated array as they come (no list of batches to concatenate); when they
    would take more than `spill_bytes` (cut-point activations of thousands of images: ~90 KB an image), the array
    is a memory-mapped file in the cache folder instead of RAM, so peak memory does not grow with the folder."""
    dataset = make_dataset(root, items, image_size, EXTRACT_BATCH, cache=False)
    outputs: np.ndarray | None = None
    labels = np.empty(len(items), dtype=np.int32)
    done = 0
    for images, batch_labels in dataset:
        batch = forward(images).numpy()
        if outputs is None:
            outputs = _allocate((len(items), *batch.shape[1:]), spill_bytes)
        outputs[done:done + len(batch)] = batch
        labels[done:done + len(batch)] = batch_labels.numpy()
        done += len(batch)
        if reporter is not None:
            reporter()
    assert outputs is not None  # make_dataset refuses an empty item list
    return outputs, labels


def _allocate(shape: tuple[int, ...], spill_bytes: int) -> np.ndarray:
    if int(np.prod(shape)) * 4 <= spill_bytes:
        return np.empty(shape, dtype=np.float32)
    folder = cache_dir() / "activations"
    folder.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix="activations-", suffix=".f32", dir=folder)
    try:
        os.ftruncate(handle, int(np.prod(shape)) * 4)
        mapped = np.memmap(path, dtype=np.float32, mode="r+", shape=shape)
    finally:
        os.close(handle)
        os.unlink(path)  # the mapping stays valid; the disk space is freed when it is closed, even after a kill
    logger.info("caching %s activations (%.0f MB) in a memory-mapped file", shape, np.prod(shape) * 4 / 2**20)
    return mapped


def array_dataset(inputs: np.ndarray, labels: np.ndarray, batch_size: int, *, shuffle: bool = False,
                  seed: int = 0) -> tf.data.Dataset:
    """Batches of (inputs, labels) from cached arrays; a memory-mapped array is read batch by batch (gathered
    with sorted indices) instead of being copied into one tensor."""
    if not isinstance(inputs, np.memmap):
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
        if shuffle:
            dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    indices = tf.data.Dataset.range(len(labels))
    if shuffle:
        indices = indices.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)

    def gather(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.sort(batch)
        return np.asarray(inputs[batch]), labels[batch]

    def load(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(gather, [batch], (tf.float32, tf.int32), stateful=False)
        x.set_shape((None, *inputs.shape[1:]))
        y.set_shape((None,))
        return x, y

    return indices.batch(batch_size).map(load, num_parallel_calls=2).prefetch(2)


def find_head(model: keras.Model) -> keras.Model:
    """The nested "head" model of a stored folder-run model."""
    try:
        return model.get_layer(HEAD_NAME)
    except ValueError as exc:
        raise ModelError(f"expected a transfer-learning model with a '{HEAD_NAME}' part, got layers "
                         f"{[layer.name for layer in model.layers]}") from exc

