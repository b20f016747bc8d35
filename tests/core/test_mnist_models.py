"""The MNIST models: raw digits in, probabilities out, sizes as designed; the fast CNN learns real digits."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from transferlab.core.config import mnist_preset
from transferlab.core.models.mnist import build_mnist_model
from transferlab.core.runs.store import RunStore
from transferlab.core.training.loop import run_training

# Total parameters (trainable + batch-norm moving statistics), as designed.
EXPECTED_PARAMS = {
    "fast": 72_650,  # conv5×5/2 32: 832, conv3×3/2 64: 18,432, conv3×3 64: 36,864, BN 4×(64+64), dense 16,010
    "cnn": 693_962,  # conv 320 + dense 5,408×128 + 128 + dense 1,290
    "ann": 101_770,  # dense 784×128 + 128 + dense 1,290
    "keras": 34_826,  # Keras' "Simple MNIST convnet"
    "accurate": 420_810,  # 96 channels: 832 + 27,648 + 82,944 + BN 4×192; dense 2,400×128 + 128; dense 1,290
}


@pytest.mark.parametrize("name", ["fast", "cnn", "ann", "keras", "accurate"])
def test_model_takes_raw_digits_and_outputs_probabilities(name):
    keras.utils.set_random_seed(0)
    model = build_mnist_model(name)
    assert model.input_shape == (None, 28, 28)
    digits = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    digits[0] = 0
    digits[1] = 255
    probabilities = keras.ops.convert_to_numpy(model(digits.astype(np.float32), training=False))
    assert probabilities.shape == (5, 10)
    assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts_are_as_designed(name):
    assert build_mnist_model(name).count_params() == EXPECTED_PARAMS[name]


def test_fast_cnn_is_small_and_batch_normalised():
    model = build_mnist_model("fast")
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 2 and all(layer.momentum == 0.9 for layer in norms)
    assert not any(isinstance(layer, keras.layers.DepthwiseConv2D | keras.layers.MaxPooling2D)
                   for layer in model.layers)
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 2 * (64 + 64)


@pytest.mark.slow
def test_fast_cnn_learns_2000_real_digits_through_run_training(tmp_path):
    # 1,900 training digits at batch 32 are 60 steps an epoch: enough for batch norm's moving statistics.
    config = mnist_preset("fast", train_limit=2000, test_limit=1000, epochs=3, batch_size=32)
    result = run_training(config, store=RunStore(tmp_path / "runs"))
    assert result.status == "finished", result.reason
    assert len(result.history) == 3
    assert result.metrics["test_accuracy"] > 0.85  # chance is 0.1


@pytest.mark.slow
def test_accurate_preset_augments_and_learns_2000_real_digits(tmp_path):
    config = mnist_preset("accurate", train_limit=2000, test_limit=1000, epochs=2, batch_size=32)
    assert config.augment and config.fit.lr_schedule == "onecycle"
    assert mnist_preset("accurate", augment=False).augment is False  # an explicit choice wins
    result = run_training(config, store=RunStore(tmp_path / "runs"))
    assert result.status == "finished", result.reason
    assert result.metrics["test_accuracy"] > 0.5  # chance is 0.1; augmented digits learn slower in 2 epochs


STARTING_WEIGHTS = [np.linspace(0.8, 1.2, 8), np.linspace(-0.3, 0.3, 8),  # gamma, beta
                    np.linspace(-1, 1, 8), np.linspace(1, 2, 8)]  # moving mean, moving variance


def test_fused_batch_norm_trains_and_predicts_like_keras_batch_norm():
    from transferlab.core.models.normalization import FusedBatchNormalization

    fused, plain = FusedBatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    for layer in (fused, plain):
        layer.build((None, 5, 5, 8))
        layer.set_weights(STARTING_WEIGHTS)
    batch = np.random.default_rng(1).normal(3, 2, size=(16, 5, 5, 8)).astype(np.float32)
    trained = [keras.ops.convert_to_numpy(layer(batch, training=True)) for layer in (fused, plain)]
    np.testing.assert_allclose(trained[0], trained[1], atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-5)
    n = 16 * 5 * 5  # the fused op moves the variance towards the batch's unbiased variance
    expected_variance = 0.9 * STARTING_WEIGHTS[3] + 0.1 * batch.var(axis=(0, 1, 2)) * n / (n - 1)
    np.testing.assert_allclose(fused.moving_variance.numpy(), expected_variance, rtol=1e-4)
    fused.moving_variance.assign(plain.moving_variance)
    predicted = [keras.ops.convert_to_numpy(layer(batch, training=False)) for layer in (fused, plain)]
    np.testing.assert_allclose(predicted[0], predicted[1], atol=1e-5)
    assert not np.allclose(predicted[0], trained[0], atol=1e-2)  # inference uses the moving statistics


def test_a_stored_model_with_fused_batch_norm_loads_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_mnist_model("fast")
    path = tmp_path / "fast.keras"
    model.save(path)
    import transferlab.core.models.custom_objects  # noqa: F401  as RunStore.load_model does

    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    digits = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(digits, verbose=0), model.predict(digits, verbose=0), atol=1e-6)
