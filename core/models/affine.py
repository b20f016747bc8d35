"""One random affine resampling per image (rotation, shift, shear and zoom combined into a single matrix).

Chaining Keras' RandomRotation, RandomTranslation, RandomShear and RandomZoom resamples a 28×28 digit four times
with bilinear interpolation, which visibly blurs it: the model would train on blurrier digits than it is tested
on. Composing the four transforms and sampling once keeps the strokes as sharp as one interpolation allows."""

from __future__ import annotations

import math

import tensorflow as tf


class RandomAffine:
    """Callable like a Keras preprocessing layer on [B, H, W, C] float images: `augmenter(images, training=True)`.

    Ranges are symmetric: rotation ±`degrees`, shift ±`shift` of the size, shear ±`shear`, zoom ±`zoom`."""

    def __init__(self, degrees: float = 10.0, shift: float = 0.1, shear: float = 0.1, zoom: float = 0.1,
                 seed: int | None = None) -> None:
        self.degrees, self.shift, self.shear, self.zoom, self.seed = degrees, shift, shear, zoom, seed

    def __call__(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        if not training:
            return images
        shape = tf.shape(images)
        batch, height, width = shape[0], tf.cast(shape[1], tf.float32), shape[2]
        width_f = tf.cast(width, tf.float32)
        r = tf.random.uniform([batch, 7], -1.0, 1.0, seed=self.seed)
        angle = r[:, 0] * math.radians(self.degrees)
        shear_x, shear_y = r[:, 1] * self.shear, r[:, 2] * self.shear
        zoom_x, zoom_y = 1.0 + r[:, 3] * self.zoom, 1.0 + r[:, 4] * self.zoom
        dx, dy = r[:, 5] * self.shift * width_f, r[:, 6] * self.shift * height
        cos, sin = tf.cos(angle), tf.sin(angle)
        # output pixel (x, y) → input pixel: centre, rotate · shear · zoom, shift, uncentre (all in one matrix)
        a = zoom_x * (cos - sin * shear_y)
        b = zoom_y * (cos * shear_x - sin)
        c = zoom_x * (sin + cos * shear_y)
        d = zoom_y * (sin * shear_x + cos)
        cx, cy = (width_f - 1.0) / 2.0, (height - 1.0) / 2.0
        transforms = tf.stack([a, b, cx - a * cx - b * cy + dx, c, d, cy - c * cx - d * cy + dy,
                               tf.zeros_like(a), tf.zeros_like(a)], axis=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=tf.stack([shape[1], shape[2]]),
            interpolation="BILINEAR", fill_mode="CONSTANT", fill_value=0.0)
