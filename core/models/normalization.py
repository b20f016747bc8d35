"""Batch normalization in one fused TensorFlow op while training (registered for safe loading)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="transferlab")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization, trained through TensorFlow's `FusedBatchNormV3` op.

    Keras 3 normalizes a training batch with separate moment, normalization and moving-average ops; the fused
    op and its gradient do it in one pass each, which took less CPU time per fast-CNN step on a 2-core CPU
    (see the README's MNIST benchmark notes). Inference (and a frozen layer) is Keras' own code path, so a
    stored model predicts and exports exactly like one with plain BatchNormalization. Weights and config are
    BatchNormalization's. The moving variance is updated with the batch's unbiased variance (n/(n-1) times
    Keras'), as TF 2's fused op does.
    """

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and self.trainable) or mask is not None or not self._fusable(inputs):
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance, epsilon=self.epsilon,
            is_training=True, exponential_avg_factor=1.0 - self.momentum)
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return outputs

    def _fusable(self, inputs: Any) -> bool:
        """The fused op normalizes the channels (last axis) of 4-D inputs, with a scale and an offset."""
        return (len(inputs.shape) == 4 and self.axis in (-1, 3) and self.center and self.scale
                and not self.renorm and not self.synchronized)
