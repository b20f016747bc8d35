"""The backbone interface: resolving specs, extractors, splitting for fine-tuning, the TF Hub export."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from transferlab.core.errors import ModelError
from transferlab.core.models import efficientnet_lite as lite
from transferlab.core.models.backbones import (
    BackboneInfo,
    HubBackbone,
    Lite0Backbone,
    export_hub_savedmodel,
    resolve_backbone,
)
from transferlab.core.models.hub_layer import write_tiny_hub_model


@pytest.fixture(scope="module", autouse=True)
def backbone_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("cache")
        patch.setenv(lite.CACHE_ENV, str(cache))
        yield cache


@pytest.fixture(scope="module")
def backbone_lite0_extractor() -> keras.Model:
    return resolve_backbone("efficientnet-lite0").build_extractor()


def _pixels(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.mark.slow
def test_resolve_specs(tmp_path: Path) -> None:
    backbone = resolve_backbone("efficientnet-lite0")
    assert isinstance(backbone, Lite0Backbone)
    assert backbone.info == BackboneInfo("efficientnet-lite0", "EfficientNet-Lite0 (ImageNet)", (224, 224), 1280, 17)
    for bad in ("", "resnet50", "efficientnet-b0"):
        with pytest.raises(ModelError, match="expected a backbone"):
            resolve_backbone(bad)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_backbone(str(tmp_path / "missing"))


@pytest.mark.slow
def test_the_extractor_is_frozen_and_scales_raw_pixels(backbone_lite0_extractor: keras.Model) -> None:
    model = backbone_lite0_extractor
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1280)
    assert model.trainable_weights == []
    rescaling = model.get_layer("rescaling")
    assert float(rescaling(np.array([127.0, 255.0], np.float32))[1]) == pytest.approx(1.0)


@pytest.mark.slow
def test_split_composes_to_the_extractor(backbone_lite0_extractor: keras.Model) -> None:
    backbone = resolve_backbone("efficientnet-lite0")
    images = _pixels(2)
    expected = backbone_lite0_extractor(images).numpy()
    for unfreeze in (0, 3):
        bottom, top = backbone.split(unfreeze)
        assert bottom is not None and bottom.trainable_weights == []
        np.testing.assert_allclose(top(bottom(images)).numpy(), expected, atol=1e-5, rtol=1e-5)
    assert top.input_shape == (None, 7, 7, 192)  # below block6d: block6d, block7a and the head conv are unfrozen
    assert {w.path.split("/")[0] for w in top.trainable_weights} == {
        "block6d_expand_conv", "block6d_dwconv", "block6d_project_conv", "block7a_expand_conv", "block7a_dwconv",
        "block7a_project_conv", "top_conv"}
    none, whole = backbone.split("all")
    assert none is None and len(whole.trainable_weights) == 49  # every conv: stem, 2 + 15×3 in blocks, head
    with pytest.raises(ModelError, match=r"expected unfreeze in 0\.\.17 or 'all'"):
        backbone.split(18)
    with pytest.raises(ModelError, match="integer >= 0"):
        backbone.split(-1)


@pytest.mark.slow
def test_fine_tuning_the_top_changes_only_the_unfrozen_weights() -> None:
    bottom, top = resolve_backbone("efficientnet-lite0").split(2)
    inputs = keras.Input((224, 224, 3))
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(top(bottom(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = {w.path: np.array(w.numpy()) for w in bottom.weights + top.weights}
    images, labels = _pixels(4, seed=1), np.array([0, 1, 0, 1])
    model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    trainable = {w.path for w in top.trainable_weights}
    assert trainable and all(not path.split("/")[0].endswith("_bn") for path in trainable)
    for weight in bottom.weights + top.weights:
        after = weight.numpy()
        if weight.path in trainable:
            assert not np.array_equal(before[weight.path], after), weight.path
        else:  # the frozen bottom and every BatchNorm (including its statistics) in the top
            np.testing.assert_array_equal(before[weight.path], after, err_msg=weight.path)


def test_set_trainable_top_on_an_extractor() -> None:
    backbone = resolve_backbone("efficientnet-lite0")
    model = backbone.build_extractor()
    backbone.set_trainable_top(model, 1)
    assert [w.path for w in model.trainable_weights] == ["top_conv/kernel"]
    backbone.set_trainable_top(model, 0)
    assert model.trainable_weights == []


def test_hub_backbone_with_a_tiny_model(tmp_path: Path) -> None:
    handle = write_tiny_hub_model(tmp_path / "tiny", feature_dim=8, image_size=32)
    backbone = resolve_backbone(str(handle))
    assert isinstance(backbone, HubBackbone)
    assert backbone.info.input_size == (32, 32) and backbone.info.feature_dim == 8 and backbone.info.blocks == 3
    extractor = backbone.build_extractor()
    assert extractor.output_shape == (None, 8) and extractor.trainable_weights == []
    bottom, top = backbone.split(1)
    assert bottom is None and [w.name for w in top.trainable_weights] == ["head_kernel"]
    # The hub extractor divides raw pixels by 255: same features as the module on [0, 1] images.
    pixels = _pixels(2, size=32)
    module = extractor.get_layer("hub_features")
    np.testing.assert_allclose(extractor.predict(pixels, verbose=0), module(pixels / 255.0).numpy(), atol=1e-6)


@pytest.mark.slow
def test_exported_hub_model_matches_the_native_extractor(tmp_path: Path, backbone_lite0_extractor: keras.Model
                                                         ) -> None:
    path = export_hub_savedmodel(tmp_path / "lite0-hub")
    backbone = resolve_backbone(str(path))
    assert backbone.info.input_size == (224, 224) and backbone.info.feature_dim == 1280
    assert backbone.info.blocks == 17  # block1a … block7a and the head, inferred from the variable names
    images = _pixels(2, seed=3)
    native = backbone_lite0_extractor(images).numpy()
    extractor = backbone.build_extractor()
    np.testing.assert_allclose(extractor(images).numpy(), native, atol=1e-4, rtol=1e-4)
    backbone.set_trainable_top(extractor, 1)  # fine-tuning through the hub path: the head conv; BN stays frozen
    assert [w.name for w in extractor.trainable_weights] == ["top_conv_kernel"]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(extractor(images[:1], training=True))
    assert float(tf.norm(tape.gradient(loss, extractor.trainable_weights)[0])) > 0
