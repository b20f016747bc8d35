"""TF Hub image feature-vector models as a Keras 3 layer.

`hub.KerasLayer` is a Keras 2 layer and cannot join a Keras 3 model (tensorflow/tensorflow#65419). Instead,
`HubFeatureLayer` calls `hub.load(handle)` and wraps each of the module's own `tf.Variable`s in a
`keras.Variable` (a wrapper, not a copy), so Keras trains, freezes, saves and loads them like its own weights.
The layer is registered as serializable and stores only the handle in its config: a `.keras` file holding it
reloads the module from the handle, then restores the (possibly fine-tuned) weights from the file.

A handle is an http(s) URL (downloaded and cached by tensorflow_hub, so it needs internet the first time) or a
local folder holding a TF2 SavedModel in TF Hub format: a callable root `__call__(images, training)` taking float
images [batch, H, W, 3] with values in [0, 1] and returning float features [batch, D], plus `variables` and
`trainable_variables` lists. Every problem with a handle is a one-line ModelError.

Training: `training` reaches the module only while the layer is trainable (a frozen layer always runs in
inference mode, like `hub.KerasLayer`), and never with `module_training=False` (what transferlab's backbones
use, so BatchNorm stays in inference mode while fine-tuning). `unfreeze=N` leaves only the variables of the
module's last N *blocks* trainable; blocks are inferred from variable names (see `block_keys`). When no blocks
can be inferred, any `unfreeze` makes all trainable variables trainable.

`write_tiny_hub_model()` writes a small TF Hub-format SavedModel for tests and demos.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.errors import ModelError

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 224
# "block3b_expand_conv/kernel", "efficientnet-b0/blocks_15/conv2d/kernel", "MobilenetV2/expanded_conv_16/…"
_BLOCK_PATTERN = re.compile(r"(?:^|/)(?:block|blocks|expanded_conv|layer|stage)[_-]?(\d+)([a-z]?)(?=[_/]|$)")
_EXPANDED_CONV_0 = re.compile(r"(?:^|/)expanded_conv(?=/)")


def is_url(handle: str) -> bool:
    return handle.startswith(("https://", "http://"))


def load_hub_module(handle: str) -> Any:
    """`hub.load(handle)`, with one-line ModelErrors for the usual mistakes."""
    import tensorflow_hub as hub  # ~0.3 s, only needed here

    if not isinstance(handle, str) or not handle:
        raise ModelError(f"expected a TF Hub handle (an https URL or a SavedModel folder), got {handle!r}")
    if not is_url(handle):
        folder = Path(handle).expanduser()
        if not folder.exists():
            raise ModelError(f"expected a TF Hub handle (an https URL or a SavedModel folder), got {handle!r}, "
                             "which does not exist")
        if not folder.is_dir() or not any((folder / n).is_file() for n in ("saved_model.pb", "saved_model.pbtxt")):
            raise ModelError(f"expected a TF2 SavedModel folder (with saved_model.pb), got {handle!r}")
        handle = str(folder)
    try:
        return hub.load(handle)
    except (OSError, ValueError, tf.errors.OpError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        if is_url(handle):
            raise ModelError(f"expected to download TF Hub model {handle}, got {reason} (offline? download it "
                             "once with internet and pass its local SavedModel folder instead)") from exc
        raise ModelError(f"expected a loadable TF2 SavedModel in {handle}, got {reason}") from exc


def module_image_size(module: Any) -> tuple[int, int] | None:
    """The fixed (H, W) the module's traced `__call__` signatures declare, or None when they leave it open."""
    function = getattr(module, "__call__", None)  # noqa: B004 - the restored tf.function, not callability
    for concrete in getattr(function, "concrete_functions", ()) or ():
        args, _ = concrete.structured_input_signature
        spec = args[0] if args else None
        shape = getattr(spec, "shape", None)
        if shape is not None and shape.rank == 4 and shape[1] is not None and shape[2] is not None:
            return int(shape[1]), int(shape[2])
    return None


def check_feature_module(module: Any, handle: str) -> tuple[tuple[int, int], int]:
    """Run the module once on a blank batch: returns ((H, W), feature_dim) or raises ModelError."""
    if not callable(module) or not hasattr(module, "variables"):
        raise ModelError(f"expected a TF Hub-format SavedModel (callable, with variables) at {handle}, "
                         f"got a {type(module).__name__} without {'__call__' if not callable(module) else 'variables'}")
    size = module_image_size(module) or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    try:
        output = module(tf.zeros((2, *size, 3), tf.float32), training=False)
    except (TypeError, ValueError, tf.errors.OpError) as exc:
        raise ModelError(f"expected a feature-vector model taking float [batch, {size[0]}, {size[1]}, 3] images "
                         f"at {handle}, got {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from exc
    shape = tuple(getattr(output, "shape", ()))
    dtype = getattr(output, "dtype", None)
    if not (isinstance(output, tf.Tensor) and len(shape) == 2 and shape[0] == 2 and dtype is not None
            and dtype.is_floating):
        got = f"{type(output).__name__} {list(shape)} {getattr(dtype, 'name', '')}".strip()
        raise ModelError(f"expected a feature-vector model returning float [batch, features] at {handle}, "
                         f"got {got}")
    return size, int(shape[1])


def block_keys(names: Sequence[str]) -> list[tuple[int, str] | None]:
    """The block each variable belongs to, as a sortable key, from its name; None for stem/head variables.

    Recognised: `block3b_…` (Keras EfficientNet, this project's export), `blocks_15/…` (TF EfficientNet),
    `expanded_conv_16/…` (MobileNet V2), `layer2/…`, `stage3/…`.
    """
    keys: list[tuple[int, str] | None] = []
    for name in names:
        match = _BLOCK_PATTERN.search(name)
        if match:
            keys.append((int(match.group(1)), match.group(2)))
        elif _EXPANDED_CONV_0.search(name):
            keys.append((0, ""))
        else:
            keys.append(None)
    return keys


def variable_blocks(names: Sequence[str]) -> list[int | None]:
    """Block number (0-based, network order) of each variable, or None for the stem (never unfrozen by
    number). Variables without a block key that come after the last block variable in the module's own order
    form one extra last block, the head. Empty result semantics: all None means no blocks were found."""
    keys = block_keys(names)
    found = sorted({key for key in keys if key is not None})
    if not found:
        return [None] * len(names)
    last_block_position = max(i for i, key in enumerate(keys) if key is not None)
    order = {key: i for i, key in enumerate(found)}
    return [order[key] if key is not None else (len(found) if i > last_block_position else None)
            for i, key in enumerate(keys)]


@keras.saving.register_keras_serializable(package="transferlab")
class HubFeatureLayer(keras.layers.Layer):
    """A TF Hub image feature-vector model: float [batch, H, W, 3] in [0, 1] → [batch, feature_dim]."""

    def __init__(self, handle: str, trainable: bool = False, unfreeze: int | str | None = None,
                 module_training: bool = True, **kwargs: Any) -> None:
        super().__init__(trainable=trainable, **kwargs)
        self.handle = str(handle)
        # False: the module always runs in inference mode (BatchNorm statistics fixed, no dropout), even while
        # its weights are fine-tuned — the Keras transfer-learning recipe.
        self.module_training = bool(module_training)
        module = load_hub_module(self.handle)
        self.image_size, self.feature_dim = check_feature_module(module, self.handle)
        self._module = module
        module_trainable = {id(v) for v in getattr(module, "trainable_variables", ())}
        self.variable_names = [v.name.split(":")[0] for v in module.variables]
        self.variable_blocks = variable_blocks(self.variable_names)
        self.blocks = 0 if all(b is None for b in self.variable_blocks) else max(
            b for b in self.variable_blocks if b is not None) + 1
        self._module_trainable = [id(v) in module_trainable for v in module.variables]
        # Wrapped, not copied: the module's forward pass reads exactly these variables.
        self.hub_variables = [keras.Variable(v, trainable=is_trainable, name=_keras_name(v.name))
                              for v, is_trainable in zip(module.variables, self._module_trainable, strict=True)]
        self.unfreeze = unfreeze
        self._apply_trainable()
        self.built = True
        logger.info("loaded TF Hub model %s: %d variables, %d blocks, input %s, %d features", self.handle,
                    len(self.hub_variables), self.blocks, self.image_size, self.feature_dim)

    @property
    def trainable(self) -> bool:
        return bool(self._trainable)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        keras.layers.Layer.trainable.fset(self, value)
        self._apply_trainable()

    def set_unfreeze(self, unfreeze: int | str | None) -> None:
        """Which trainable variables train while the layer is trainable: None/"all" = all of them, N = those of
        the last N blocks (all of them when the module has no recognisable blocks), 0 = none."""
        if not (unfreeze is None or unfreeze == "all" or (isinstance(unfreeze, int) and unfreeze >= 0)):
            raise ModelError(f"expected unfreeze to be an integer >= 0 or 'all', got {unfreeze!r}")
        self.unfreeze = unfreeze
        self._apply_trainable()

    def _apply_trainable(self) -> None:
        # Set every variable explicitly: assigning layer.trainable its current value does not reach them.
        if not hasattr(self, "hub_variables"):
            return
        unfreeze = self.unfreeze
        for variable, module_trainable, block in zip(self.hub_variables, self._module_trainable,
                                                     self.variable_blocks, strict=True):
            selected = (unfreeze is None or unfreeze == "all" or self.blocks == 0
                        or (isinstance(unfreeze, int) and block is not None and block >= self.blocks - unfreeze))
            variable.trainable = bool(self._trainable and module_trainable and selected)

    def call(self, images: Any, training: Any = None) -> Any:
        return self._module(images, training=bool(training) and self._trainable and self.module_training)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, int]:
        return (input_shape[0], self.feature_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "handle": self.handle, "unfreeze": self.unfreeze,
                "module_training": self.module_training}


def _keras_name(tf_name: str) -> str:
    return tf_name.split(":")[0].replace("/", "_") or "variable"


# ---- a tiny TF Hub-format model, for tests and demos ----

def write_tiny_hub_model(path: str | os.PathLike[str], feature_dim: int = 8, image_size: int = 32,
                         seed: int = 0) -> Path:
    """Write a small TF Hub-format image feature-vector SavedModel to `path` (a new folder) and return it.

    Input float [batch, image_size, image_size, 3] in [0, 1]; output float [batch, feature_dim]. Variables
    (named like a real backbone: `stem/…`, `block1/…`, `block2/…`, `head/…`) include a non-trainable
    `block2/moving_mean` that only changes when called with training=True, like BatchNorm statistics.
    Saving takes ~1 s.
    """
    rng = np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, ...], trainable: bool = True) -> tf.Variable:
        scale = 1.0 / np.sqrt(np.prod(shape[:-1]))
        return tf.Variable(rng.normal(0, scale, shape).astype(np.float32), trainable=trainable, name=name)

    stem = weight("stem/kernel", (3, 3, 3, 8))
    block1 = weight("block1/kernel", (3, 3, 8, 8))
    block2 = weight("block2/kernel", (3, 3, 8, 16))
    block2_bias = tf.Variable(tf.zeros(16), name="block2/bias")
    moving_mean = tf.Variable(tf.zeros(16), trainable=False, name="block2/moving_mean")
    head = weight("head/kernel", (16, feature_dim))
    variables = [stem, block1, block2, block2_bias, moving_mean, head]

    @tf.function
    def forward(images: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = tf.nn.relu(tf.nn.conv2d(images * 2.0 - 1.0, stem, 2, "SAME"))
        x = tf.nn.relu(tf.nn.conv2d(x, block1, 1, "SAME")) + x
        x = tf.nn.conv2d(x, block2, 2, "SAME") + block2_bias
        if training:
            moving_mean.assign(0.9 * moving_mean + 0.1 * tf.reduce_mean(x, axis=(0, 1, 2)))
        x = tf.nn.relu(x - moving_mean)
        return tf.matmul(tf.reduce_mean(x, axis=(1, 2)), head)

    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32)
    root = tf.train.Checkpoint()
    root.variables = variables
    root.trainable_variables = [v for v in variables if v.trainable]
    root.regularization_losses = []
    root.__call__ = forward
    for training in (True, False):
        forward.get_concrete_function(spec, training)
    path = Path(path)
    tf.saved_model.save(root, str(path))
    return path
