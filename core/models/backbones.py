"""Pretrained backbones (feature extractors) for transfer learning — the interface the training engine uses.

```python
backbone = resolve_backbone("efficientnet-lite0")   # or an https TF Hub URL, or a local SavedModel folder
backbone.info      # BackboneInfo(spec, name, input_size=(224, 224), feature_dim=1280, blocks=17)
extractor = backbone.build_extractor()   # frozen: float32 [None, H, W, 3] RAW pixels 0..255 → [None, features]
bottom, top = backbone.split(2)          # fine-tuning the last 2 blocks: features = top(bottom(images))
```

Specs:
- `"efficientnet-lite0"` (the default, bundled): EfficientNet-Lite0 with ImageNet weights, built natively in Keras
  (core/efficientnet_lite.py). Input 224×224; the model scales pixels itself as (x − 127) / 128.
- an `https://` URL or a local folder: a TF Hub-format image feature-vector SavedModel (core/hub_layer.py).
  The model divides pixels by 255 itself (TF Hub's [0, 1] convention); its input size comes from the module's
  signature (224×224 when the module leaves it open).

Every model returned takes RAW pixel values 0..255, already resized to `info.input_size`, and ends in the
feature vector. BatchNorm always runs in inference mode with frozen statistics in the bundled backbone, also in
the blocks that are unfrozen (the Keras transfer-learning recipe; its BN layers are `FrozenBatchNormalization`
and stay non-trainable).

Unfreezing — `unfreeze` is an integer N >= 0 or "all":
- Lite0 has `info.blocks == 17` unfreezable blocks, counted from the top: the head conv (`top_conv` + `top_bn`,
  1280 channels) is block 1, then `block7a`, `block6d`, … back to `block1a` (block 17). The stem conv is
  unfrozen only by "all". `split(N)` cuts the network at the block boundary: `bottom` (frozen, may be run once
  to cache its outputs) maps images to the input of the first unfrozen block, `top` (trainable, BN frozen)
  maps that to the feature vector. `split(0)` gives bottom = the whole frozen extractor and top = an identity
  on features; `split("all")` gives (None, the whole extractor with every conv trainable).
- A TF Hub module cannot be cut, so `split` returns (None, whole extractor); only the variables of the top N
  blocks are trainable when blocks can be inferred from the module's variable names (`info.blocks > 0`; e.g.
  `block3b_…`, `blocks_15/…`, `expanded_conv_16/…`, variables after the last block = the head block), else all
  of its trainable variables are. The module always runs in inference mode (`module_training=False`), so its
  BatchNorm statistics stay fixed while its weights are fine-tuned, as in the bundled backbone.

N larger than `info.blocks` (when blocks are known) raises ModelError.

`export_hub_savedmodel(path)` writes the bundled backbone as a TF Hub-format SavedModel (float [batch, 224, 224, 3]
in [0, 1] → [batch, 1280]), so the Hub path can be exercised with it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras

from transferlab.core.catalog import BUNDLED_BACKBONES, DEFAULT_BACKBONE
from transferlab.core.errors import ModelError
from transferlab.core.models import efficientnet_lite as lite
from transferlab.core.models.hub_layer import HubFeatureLayer, is_url

logger = logging.getLogger(__name__)

Unfreeze = int | Literal["all"]


@dataclass(frozen=True)
class BackboneInfo:
    spec: str  # what the user asked for
    name: str  # a short display name
    input_size: tuple[int, int]  # (height, width) the extractor expects
    feature_dim: int
    blocks: int  # number of unfreezable top-level blocks (0 if unknown)


def resolve_backbone(spec: str) -> Backbone:
    """"efficientnet-lite0" (bundled, default), an https URL or a local SavedModel folder; raises ModelError."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError(f"expected a backbone ({', '.join(BUNDLED_BACKBONES)}, an https URL or a SavedModel "
                         f"folder), got {spec!r}")
    spec = spec.strip()
    if spec.lower() in BUNDLED_BACKBONES:
        return Lite0Backbone(spec)
    if is_url(spec) or os.sep in spec or "/" in spec or Path(spec).expanduser().exists():
        return HubBackbone(spec)
    raise ModelError(f"expected a backbone ({', '.join(BUNDLED_BACKBONES)}, an https URL or a SavedModel folder), "
                     f"got {spec!r}")


class Backbone:
    """A pretrained feature extractor. Subclasses: Lite0Backbone (bundled), HubBackbone (TF Hub)."""

    info: BackboneInfo

    def build_extractor(self) -> keras.Model:
        """Frozen: float32 [None, H, W, 3] raw pixels 0..255 → [None, feature_dim]; scaling inside."""
        raise NotImplementedError

    def split(self, unfreeze: Unfreeze) -> tuple[keras.Model | None, keras.Model]:
        """(bottom, top) for fine-tuning the top `unfreeze` blocks; see the module docstring."""
        raise NotImplementedError

    def set_trainable_top(self, model: keras.Model, unfreeze: Unfreeze) -> None:
        """Make only the top `unfreeze` blocks of a model from `build_extractor()` trainable (BN stays frozen)."""
        raise NotImplementedError

    def check_unfreeze(self, unfreeze: Unfreeze) -> None:
        if unfreeze == "all":
            return
        if not isinstance(unfreeze, int) or isinstance(unfreeze, bool) or unfreeze < 0:
            raise ModelError(f"expected unfreeze to be an integer >= 0 or 'all', got {unfreeze!r}")
        if self.info.blocks and unfreeze > self.info.blocks:
            raise ModelError(f"expected unfreeze in 0..{self.info.blocks} or 'all' for {self.info.name}, "
                             f"got {unfreeze}")


class Lite0Backbone(Backbone):
    """The bundled EfficientNet-Lite0 (ImageNet), native Keras."""

    def __init__(self, spec: str = DEFAULT_BACKBONE) -> None:
        self.info = BackboneInfo(spec=spec, name="EfficientNet-Lite0 (ImageNet)",
                                 input_size=(lite.INPUT_SIZE, lite.INPUT_SIZE), feature_dim=lite.FEATURE_DIM,
                                 blocks=lite.UNFREEZABLE_BLOCKS)

    def build_extractor(self) -> keras.Model:
        return lite.build_lite0(include_top=False)

    def split(self, unfreeze: Unfreeze) -> tuple[keras.Model | None, keras.Model]:
        self.check_unfreeze(unfreeze)
        started = time.perf_counter()
        if unfreeze == "all":
            model = lite.build_lite0(include_top=False)
            lite.set_trainable_units(model, len(lite.UNITS))
            return None, model
        graph = lite.Lite0Graph()
        inputs = lite.image_input()
        cut = len(lite.UNITS) - unfreeze  # units in the bottom
        cut_tensor = graph.run(inputs, 0, cut)
        if unfreeze == 0:
            bottom = keras.Model(inputs, graph.finish(cut_tensor), name="efficientnet_lite0_bottom")
            features = keras.Input((lite.FEATURE_DIM,), name="features")
            top = keras.Model(features, keras.layers.Identity(name="identity")(features),
                              name="efficientnet_lite0_top")
        else:
            bottom = keras.Model(inputs, cut_tensor, name="efficientnet_lite0_bottom")
            top_inputs = keras.Input(tuple(cut_tensor.shape[1:]), name=f"{lite.UNITS[cut]}_input")
            top = keras.Model(top_inputs, graph.finish(graph.run(top_inputs, cut)), name="efficientnet_lite0_top")
        graph.set_weights(lite.load_lite0_weights(include_top=False))
        lite.set_trainable_units(top, unfreeze)
        bottom.trainable = False
        logger.info("split EfficientNet-Lite0 below %s (%d blocks unfrozen) in %.2f s", lite.UNITS[cut]
                    if cut < len(lite.UNITS) else "the features", unfreeze, time.perf_counter() - started)
        return bottom, top

    def set_trainable_top(self, model: keras.Model, unfreeze: Unfreeze) -> None:
        self.check_unfreeze(unfreeze)
        lite.set_trainable_units(model, len(lite.UNITS) if unfreeze == "all" else unfreeze)


class HubBackbone(Backbone):
    """A TF Hub-format image feature-vector model (URL or local SavedModel folder)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        # Loading checks the module; the first extractor reuses this layer, later ones load their own copy.
        probe = HubFeatureLayer(spec, trainable=False, module_training=False, name="hub_features")
        self._unused_layer: HubFeatureLayer | None = probe
        name = spec.rstrip("/").rsplit("/", 1)[-1] if not is_url(spec) else spec.split("://", 1)[1]
        self.info = BackboneInfo(spec=spec, name=f"TF Hub: {name}", input_size=probe.image_size,
                                 feature_dim=probe.feature_dim, blocks=probe.blocks)

    def build_extractor(self) -> keras.Model:
        inputs = keras.Input((*self.info.input_size, 3), dtype="float32", name="image")
        scaled = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(inputs)
        layer, self._unused_layer = self._unused_layer, None
        if layer is None:
            layer = HubFeatureLayer(self.spec, trainable=False, module_training=False,
                                    name="hub_features")
        features = layer(scaled)
        return keras.Model(inputs, features, name="hub_extractor")

    def split(self, unfreeze: Unfreeze) -> tuple[keras.Model | None, keras.Model]:
        model = self.build_extractor()
        self.set_trainable_top(model, unfreeze)
        return None, model

    def set_trainable_top(self, model: keras.Model, unfreeze: Unfreeze) -> None:
        self.check_unfreeze(unfreeze)
        layers = [layer for layer in model.layers if isinstance(layer, HubFeatureLayer)]
        if not layers:
            raise ModelError(f"expected a model built by this backbone ({self.info.name}), got {model.name} "
                             "without a TF Hub layer")
        for layer in layers:
            layer.set_unfreeze(unfreeze)
            layer.trainable = unfreeze == "all" or unfreeze > 0


def export_hub_savedmodel(path: str | os.PathLike[str], spec: str = DEFAULT_BACKBONE) -> Path:
    """Write the bundled backbone as a TF Hub-format SavedModel: `__call__(images, training)` with float
    images [batch, 224, 224, 3] in [0, 1] → [batch, 1280], plus `variables`, `trainable_variables` (the
    convolutions: BatchNorm stays frozen and in inference mode, as in the native backbone) and
    `regularization_losses`. Variable names keep the Keras layer names (`block3b_expand_conv/kernel`), so the
    hub loader infers the same 17 blocks."""
    import tensorflow as tf

    if spec.lower() not in BUNDLED_BACKBONES:
        raise ModelError(f"expected a bundled backbone ({', '.join(BUNDLED_BACKBONES)}) to export, got {spec!r}")
    started = time.perf_counter()
    model = lite.build_lite0(include_top=False)
    variables = [weight.value for weight in model.weights]
    frozen = {id(w) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
              for w in layer.weights}

    image_spec = tf.TensorSpec([None, lite.INPUT_SIZE, lite.INPUT_SIZE, 3], tf.float32)

    # One trace serves training=True and False: with frozen BatchNorm and no dropout the graph is the same
    # either way, and tracing is most of the export's cost.
    @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.bool)])
    def forward(images: tf.Tensor, training: tf.Tensor) -> tf.Tensor:
        del training
        return model(images * 255.0, training=False)

    root = tf.train.Checkpoint()
    root.variables = variables
    root.trainable_variables = [w.value for w in model.weights if id(w) not in frozen]
    root.regularization_losses = []
    root.__call__ = forward
    path = Path(path)
    tf.saved_model.save(root, str(path))
    logger.info("exported %s as a TF Hub SavedModel to %s in %.1f s", spec, path, time.perf_counter() - started)
    return path
