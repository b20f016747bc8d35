"""Losses that stored models' compile configs may name (registered like the schedules)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="transferlab")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy against integer labels smoothed towards the uniform distribution: the target is
    1 - s + s/K for the true class and s/K for the others (Keras' CategoricalCrossentropy(label_smoothing=s)
    without one-hot labels in the data pipeline)."""

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy",
                 **kwargs: object) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:  # Keras tensors (untyped)
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)), classes)
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
