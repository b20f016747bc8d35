"""MNIST augmentation resamples each digit once (rotation, shift, shear and zoom in one matrix), so augmented
training digits are as sharp as the test digits, not blurred by four chained bilinear resamplings."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import layers

from transferlab.core.data.mnist import load_mnist
from transferlab.core.models.affine import RandomAffine
from transferlab.core.models.mnist import augmentation_layers
from transferlab.core.training.mnist_job import augmentation_preview


def _sharpness(images: np.ndarray) -> float:
    images = np.asarray(images, np.float32)[..., 0]  # [B, H, W, 1] → [B, H, W]
    return float(np.mean(np.abs(np.diff(images, axis=-1))) + np.mean(np.abs(np.diff(images, axis=-2))))


def test_one_resampling_keeps_digits_sharper_than_four_chained_layers():
    digits = load_mnist().train_images[:200].astype(np.float32)[..., None]
    chained = [layers.RandomRotation(10 / 360, fill_mode="constant", seed=1),  # the former pipeline
               layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=1),
               layers.RandomShear(x_factor=0.1, y_factor=0.1, fill_mode="constant", seed=1),
               layers.RandomZoom(0.1, 0.1, fill_mode="constant", seed=1)]
    old = digits
    for layer in chained:
        old = layer(old, training=True)
    new = augmentation_layers(1)(tf.constant(digits), training=True)
    original, before, after = _sharpness(digits), _sharpness(old), _sharpness(new)
    assert after > before * 1.1  # measurably sharper than the chain
    assert after > 0.9 * original
    assert abs(float(np.sum(new)) / float(np.sum(digits)) - 1) < 0.05  # the ink stays (nothing cut off)


def test_identity_ranges_change_nothing_and_inference_is_untouched():
    digits = load_mnist().train_images[:8].astype(np.float32)[..., None]
    identity = RandomAffine(0, 0, 0, 0, seed=3)(tf.constant(digits))
    assert np.array_equal(np.asarray(identity), digits)
    assert RandomAffine(seed=3)(digits, training=False) is digits


def test_the_preview_shows_the_same_augmentation():
    digit = load_mnist().train_images[0]
    preview = augmentation_preview(digit, count=4, seed=7)
    assert preview.shape == (5, 28, 28) and preview.dtype == np.uint8
    assert np.array_equal(preview[0], digit)
    assert all(not np.array_equal(preview[i], digit) for i in range(1, 5))


def test_an_augmented_mnist_run_trains(tmp_path):
    from transferlab.core.config import mnist_preset
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training

    result = run_training(mnist_preset("ann", train_limit=600, test_limit=200, epochs=2, augment=True),
                          store=RunStore(tmp_path / "runs"))
    assert result.status == "finished", result.reason
    assert result.metrics["accuracy"] > 0.5  # it learns from the augmented digits
