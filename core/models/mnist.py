"""The MNIST models. Every model takes raw 28×28 pixel values (0..255) and outputs 10 probabilities:
scaling and the channel axis live inside the model, so a stored model classifies raw digits as they are."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from transferlab.core.errors import ConfigError
from transferlab.core.models.normalization import FusedBatchNormalization

# The probabilities stay float32 under mixed precision (float16 softmax outputs lose the small probabilities).
OUTPUT_DTYPE = "float32"


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
    outputs = layers.Softmax(name="probabilities", dtype=OUTPUT_DTYPE)(x)
    return keras.Model(inputs, outputs, name="ann")


def build_seed_cnn() -> keras.Model:
    """The seed material's CNN: Conv32 → MaxPool → Flatten → Dropout(0.5) → Dense128 → Dense10 softmax."""
    inputs, x = _input_block("cnn")
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities", dtype=OUTPUT_DTYPE)(x)
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
    outputs = layers.Dense(10, activation="softmax", name="probabilities", dtype=OUTPUT_DTYPE)(x)
    return keras.Model(inputs, outputs, name="keras_simple_convnet")


def build_fast_cnn() -> keras.Model:
    """A small CNN designed for a 2-core laptop CPU (72,650 parameters, ~2 M multiply-adds per digit). Trained
    with the "fast" preset (2 epochs, batch 64, one-cycle learning rate peaking at 3e-3, label smoothing 0.1)
    it reached 99.21-99.29 % test accuracy on seeds 42 and 0-4 (bench/mnist.py), where Keras' 15-epoch
    "Simple MNIST convnet" recipe ends at ~99.17 %; its time against that recipe's is in the README.

    Conv5×5/2(32)+ReLU → [Conv3×3/2(64) → Conv3×3 valid(64)], each with batch norm and ReLU → Flatten →
    Dense(10). Why this shape (measured with TF on a 2-core CPU, where small convolutions are bound by memory
    traffic more than by multiply-adds):
    - no pooling and no 28×28 feature maps: a stride-2 stem and a stride-2 convolution replace max-pooling,
      whose gradient was the slowest op at full resolution;
    - the 5×5 stem beat a 3×3 one (99.3 % vs 99.1 % after 3 epochs); flattening the 5×5×64 map beat global
      max pooling (99.1 %); the stem's batch norm cost ~15 % of the time and no accuracy, so it has a bias;
    - batch-norm momentum 0.9 (Keras' default is 0.99): with only ~670 steps the slow moving averages lag
      the weights, which cost up to 2 points of test accuracy at batch 512; batch norm trains through TF's
      fused op (FusedBatchNormalization).
    """
    return _strided_cnn("fast_cnn", width=64)


def build_accurate_cnn() -> keras.Model:
    """The fast CNN's convolutions 1.5x wider (96 channels after the stem) and a hidden Dense(128) with dropout
    0.3 before the output (420,810 parameters), for the "accurate" preset, which trains it on augmented digits
    (one random affine distortion each: rotation, shift, shear, zoom) for 12 epochs (bench/mnist.py). Without
    the hidden layer, or at 64 channels for 11 epochs, it ended at 99.50-99.61 % on seeds 42 and 0."""
    return _strided_cnn("accurate_cnn", width=ACCURATE_WIDTH, hidden_units=ACCURATE_HIDDEN)


ACCURATE_WIDTH = 96
ACCURATE_HIDDEN = 128


def _strided_cnn(name: str, width: int, hidden_units: int = 0) -> keras.Model:
    inputs, x = _input_block(name)
    x = layers.Conv2D(32, 5, strides=2, padding="same", activation="relu")(x)
    for strides, padding in ((2, "same"), (1, "valid")):
        x = layers.Conv2D(width, 3, strides=strides, padding=padding, use_bias=False)(x)
        x = FusedBatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", name="hidden")(x)
        x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities", dtype=OUTPUT_DTYPE)(x)
    return keras.Model(inputs, outputs, name=name)


MNIST_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "fast": build_fast_cnn,
    "cnn": build_seed_cnn,
    "ann": build_ann,
    "keras": build_keras_recipe_cnn,
    "accurate": build_accurate_cnn,
}


def build_mnist_model(name: str) -> keras.Model:
    try:
        return MNIST_BUILDERS[name]()
    except KeyError:
        raise ConfigError(f"expected an MNIST model among {', '.join(MNIST_BUILDERS)}, got {name!r}") from None
