"""Label-smoothed cross-entropy on integer labels, as the fast MNIST preset trains with."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from transferlab.core.config import FitOptions, mnist_preset
from transferlab.core.errors import ConfigError
from transferlab.core.models.losses import SmoothedSparseCrossentropy


def test_matches_keras_categorical_smoothing_on_one_hot_labels():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=16).astype("float32")
    labels = rng.integers(0, 10, size=16)
    ours = float(SmoothedSparseCrossentropy(0.1)(labels, probabilities))
    reference = float(keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(10)[labels], probabilities))
    assert ours == pytest.approx(reference, rel=1e-5)
    plain = float(keras.losses.SparseCategoricalCrossentropy()(labels, probabilities))
    assert float(SmoothedSparseCrossentropy(0.0)(labels, probabilities)) == pytest.approx(plain, rel=1e-5)
    assert ours != pytest.approx(plain, rel=1e-3)


def test_survives_a_config_round_trip_and_is_validated():
    loss = SmoothedSparseCrossentropy.from_config(SmoothedSparseCrossentropy(0.2).get_config())
    assert loss.label_smoothing == 0.2
    assert mnist_preset("fast").fit.label_smoothing == 0.1
    with pytest.raises(ConfigError, match="label_smoothing: expected a fraction in"):
        FitOptions(label_smoothing=1.0)
