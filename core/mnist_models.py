"""The MNIST models. Every model takes raw 28×28 pixel values (0..255) and outputs 10 probabilities:
scaling and the channel axis live inside the model, so a stored model classifies raw digits as they are."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from core.errors import ConfigError


def _input_block(name: str) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=(28, 28), name="digits")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    x = layers.Reshape((28, 28, 1), name="add_channel")(x)
    return inputs, x


def build_ann() -> keras.Model:
    """Flatten → Dense(128, relu) → Dropout(0.2) → Dense(10) (softmax as its own layer)."""
    inputs, x = _input_block("ann")
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(10, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="ann")


def build_seed_cnn() -> keras.Model:
    """The seed material's CNN: Conv32 → MaxPool → Flatten → Dropout(0.5) → Dense128 → Dense10 softmax."""
    inputs, x = _input_block("cnn")
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def build_keras_recipe_cnn() -> keras.Model:
    """Keras' "Simple MNIST convnet" example (used by bench/mnist.py as the reference)."""
    inputs, x = _input_block("keras")
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="keras_simple_convnet")


def build_fast_cnn() -> keras.Model:
    """A small batch-normalised CNN designed for a laptop CPU: few multiply-adds per digit, trained with a
    one-cycle learning rate so that it reaches >= 99.2 % test accuracy in a few epochs (bench/mnist.py)."""
    inputs, x = _input_block("fast")
    for filters in (24, 48):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(96, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="fast_cnn")


MNIST_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "fast": build_fast_cnn,
    "cnn": build_seed_cnn,
    "ann": build_ann,
    "keras": build_keras_recipe_cnn,
}


def build_mnist_model(name: str) -> keras.Model:
    try:
        return MNIST_BUILDERS[name]()
    except KeyError:
        raise ConfigError(f"expected an MNIST model among {', '.join(MNIST_BUILDERS)}, got {name!r}") from None


def augmentation_layers(seed: int | None = None) -> keras.Sequential:
    """Rotation ±10°, shifts ±10 %, shear ±0.1, zoom ±10 %: Keras preprocessing layers on [B, 28, 28, 1]."""
    return keras.Sequential([
        layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed),
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
        layers.RandomShear(x_factor=0.1, y_factor=0.1, fill_mode="constant", seed=seed),
        layers.RandomZoom(0.1, 0.1, fill_mode="constant", seed=seed),
    ], name="augmentation")
