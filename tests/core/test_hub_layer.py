"""TF Hub models through HubFeatureLayer: loading, clear errors, frozen vs fine-tuned training, .keras save/load."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from transferlab.core.errors import ModelError
from transferlab.core.models.hub_layer import (
    HubFeatureLayer,
    block_keys,
    module_digest,
    pin_hub_modules,
    pinned_hub_modules,
    variable_blocks,
    write_tiny_hub_model,
)


@pytest.fixture(scope="module")
def hub_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TF Hub-format feature-vector SavedModel (32×32 input, 8 features)."""
    return write_tiny_hub_model(tmp_path_factory.mktemp("hub") / "tiny", feature_dim=8, image_size=32)


def _classifier(handle: Path, trainable: bool, unfreeze: int | str | None = None) -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    features = HubFeatureLayer(str(handle), trainable=trainable, unfreeze=unfreeze, name="hub")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(features))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


def _data(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((n, 32, 32, 3), dtype=np.float32), rng.integers(0, 2, n)


def _values(layer: HubFeatureLayer) -> dict[str, np.ndarray]:
    return {name: np.array(v.numpy()) for name, v in zip(layer.variable_names, layer.hub_variables, strict=True)}


def test_loads_a_local_hub_model(hub_tiny_model: Path) -> None:
    layer = HubFeatureLayer(str(hub_tiny_model))
    assert layer.image_size == (32, 32) and layer.feature_dim == 8
    assert layer.variable_names == ["stem/kernel", "block1/kernel", "block2/kernel", "block2/bias",
                                    "block2/moving_mean", "head/kernel"]
    assert layer.blocks == 3  # block1, block2 and the head; the stem is only unfrozen with "all"
    out = layer(tf.random.uniform((3, 32, 32, 3)))
    assert tuple(out.shape) == (3, 8)
    assert layer.trainable_weights == [] and len(layer.weights) == 6


def test_frozen_training_leaves_the_module_bit_identical(hub_tiny_model: Path) -> None:
    model = _classifier(hub_tiny_model, trainable=False)
    layer = model.get_layer("hub")
    before, head_before = _values(layer), model.get_layer("head").get_weights()[0].copy()
    model.fit(*_data(), batch_size=8, epochs=1, verbose=0)
    after = _values(layer)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    assert not np.array_equal(head_before, model.get_layer("head").get_weights()[0])


@pytest.mark.slow
def test_fine_tuning_changes_the_module_and_passes_training(hub_tiny_model: Path) -> None:
    model = _classifier(hub_tiny_model, trainable=True)
    layer = model.get_layer("hub")
    assert len(layer.trainable_weights) == 5  # all but the moving mean
    before = _values(layer)
    model.fit(*_data(), batch_size=8, epochs=1, verbose=0)
    after = _values(layer)
    for name in before:  # the moving mean changes too: training=True reached the module
        assert not np.array_equal(before[name], after[name]), name


def test_unfreeze_top_blocks_only(hub_tiny_model: Path) -> None:
    model = _classifier(hub_tiny_model, trainable=True, unfreeze=1)
    layer = model.get_layer("hub")
    assert [v.trainable for v in layer.hub_variables] == [False, False, False, False, False, True]
    before = _values(layer)
    model.fit(*_data(), batch_size=8, epochs=1, verbose=0)
    after = _values(layer)
    assert not np.array_equal(before["head/kernel"], after["head/kernel"])
    for name in ("stem/kernel", "block1/kernel", "block2/kernel", "block2/bias"):
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    layer.set_unfreeze(2)
    assert [v.trainable for v in layer.hub_variables] == [False, False, True, True, False, True]
    layer.trainable = False
    assert layer.trainable_weights == [] and not any(v.trainable for v in layer.hub_variables)
    layer.trainable = True  # setting it back reaches every variable
    assert [v.trainable for v in layer.hub_variables] == [False, False, True, True, False, True]
    layer.set_unfreeze("all")
    assert len(layer.trainable_weights) == 5


@pytest.mark.slow
def test_keras_save_and_load_round_trips_through_the_pinned_copy(hub_tiny_model: Path, tmp_path: Path) -> None:
    model = _classifier(hub_tiny_model, trainable=True)
    model.fit(*_data(), batch_size=8, epochs=1, verbose=0)  # fine-tuned weights must come back, not the file's
    images = _data(4)[0]
    expected = model.predict(images, verbose=0)
    digest = model.get_layer("hub").module_sha256
    assert digest == module_digest(hub_tiny_model)
    (pinned,) = pin_hub_modules(model, tmp_path / "hub_modules")
    assert pinned == tmp_path / "hub_modules" / digest and module_digest(pinned) == digest
    model.save(tmp_path / "model.keras")
    with pinned_hub_modules(tmp_path / "hub_modules"):
        loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-6, atol=1e-6)
    layer = loaded.get_layer("hub")
    assert layer.handle == str(hub_tiny_model)  # the name it was trained with; the files are the pinned copy's
    assert layer.module_dir == pinned and layer.module_sha256 == digest


def test_a_model_file_loads_no_module_outside_a_run_or_without_its_pinned_copy(hub_tiny_model: Path,
                                                                                tmp_path: Path) -> None:
    model = _classifier(hub_tiny_model, trainable=False)
    model.save(tmp_path / "model.keras")
    with pytest.raises(Exception, match="outside a run"):
        keras.models.load_model(tmp_path / "model.keras")
    with pinned_hub_modules(tmp_path / "empty"), pytest.raises(Exception, match="which the run does not hold"):
        keras.models.load_model(tmp_path / "model.keras")
    (pinned,) = pin_hub_modules(model, tmp_path / "hub_modules")
    (pinned / "variables" / "variables.index").write_bytes(b"changed")  # the copy no longer has its hash
    with pinned_hub_modules(tmp_path / "hub_modules"), pytest.raises(Exception, match="changed after training"):
        keras.models.load_model(tmp_path / "model.keras")
    config = model.get_layer("hub").get_config()
    with pytest.raises(ModelError, match=r"by a sha256, got handle .* with sha256 none"):
        HubFeatureLayer.from_config({**config, "module_sha256": None})


def test_module_digest_covers_names_and_bytes_and_refuses_special_files(hub_tiny_model: Path,
                                                                       tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"12")
    first = module_digest(tmp_path / "a")
    (tmp_path / "a" / "x").write_bytes(b"13")
    second = module_digest(tmp_path / "a")
    (tmp_path / "a" / "x").rename(tmp_path / "a" / "y")
    assert len({first, second, module_digest(tmp_path / "a")}) == 3
    os.mkfifo(tmp_path / "a" / "pipe")
    with pytest.raises(ModelError, match="not a regular file"):
        module_digest(tmp_path / "a")


def test_block_inference_from_names() -> None:
    names = ["MobilenetV2/Conv/weights", "MobilenetV2/expanded_conv/depthwise/depthwise_weights",
             "MobilenetV2/expanded_conv_1/expand/weights", "MobilenetV2/expanded_conv_10/project/weights",
             "MobilenetV2/expanded_conv_2/expand/weights", "MobilenetV2/Conv_1/weights"]
    assert block_keys(names) == [None, (0, ""), (1, ""), (10, ""), (2, ""), None]
    assert variable_blocks(names) == [None, 0, 1, 3, 2, 4]
    assert variable_blocks(["block1a_dwconv/kernel", "block2b_bn/gamma", "block2a_bn/gamma", "top_conv/kernel"]
                           ) == [0, 2, 1, 3]
    assert variable_blocks(["dense/kernel", "dense_1/kernel"]) == [None, None]


def test_clear_errors_for_bad_handles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        HubFeatureLayer(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"expected a TF2 SavedModel folder \(with saved_model.pb\)"):
        HubFeatureLayer(str(tmp_path / "empty"))
    # A SavedModel whose output is not [batch, features]: a plain image-to-image function.
    root = tf.train.Checkpoint()
    root.v = tf.Variable(1.0)
    root.variables = [root.v]
    root.__call__ = tf.function(lambda images, training=False: images * root.v)
    root.__call__.get_concrete_function(tf.TensorSpec([None, 8, 8, 3], tf.float32), False)
    tf.saved_model.save(root, str(tmp_path / "maps"))
    with pytest.raises(ModelError, match=r"returning float \[batch, features\].*got .*\[2, 8, 8, 3\]"):
        HubFeatureLayer(str(tmp_path / "maps"))
    # A SavedModel that wants a different input (one channel).
    root = tf.train.Checkpoint()
    root.variables = []
    root.__call__ = tf.function(lambda images, training=False: tf.reduce_mean(images, axis=(1, 2)))
    root.__call__.get_concrete_function(tf.TensorSpec([None, 8, 8, 1], tf.float32), False)
    tf.saved_model.save(root, str(tmp_path / "gray"))
    with pytest.raises(ModelError, match=r"expected a feature-vector model taking float \[batch, 8, 8, 3\]"):
        HubFeatureLayer(str(tmp_path / "gray"))
    # A URL while offline (this test forces "offline" with an unresolvable host and an empty hub cache).
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub-cache"))
    url = "https://tfhub.invalid/google/imagenet/mobilenet_v2_100_224/feature_vector/5"
    with pytest.raises(ModelError, match=r"expected to download TF Hub model https://tfhub\.invalid/.*local"
                                         r" SavedModel folder instead") as info:
        HubFeatureLayer(url)
    assert "\n" not in str(info.value)
