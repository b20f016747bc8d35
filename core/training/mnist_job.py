"""The MNIST kind of run: data pipeline, model, evaluation on the test set."""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.analysis.evaluation import classification_report
from transferlab.core.config import MnistConfig
from transferlab.core.data.digit_augment import random_affine
from transferlab.core.data.mnist import CLASS_NAMES, Mnist, describe, load_mnist, per_class_counts
from transferlab.core.models.mnist import build_mnist_model
from transferlab.core.training.jobs import JobContext, Prepared

logger = logging.getLogger(__name__)


def split_indices(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of 0..n-1 cut into (train, validation): the same seed gives the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * validation_split)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_train_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                       augment: bool) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        dataset = dataset.map(lambda x, y: (random_affine(x, seed), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32))).batch(batch_size)
    return dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def augmentation_preview(image: np.ndarray, count: int = 8, seed: int | None = None) -> np.ndarray:
    """One digit before (index 0) and after `count` random augmentations: uint8 (count + 1, 28, 28)."""
    batch = np.repeat(np.asarray(image, dtype=np.float32)[None], count, axis=0)
    augmented = random_affine(tf.constant(batch), seed).numpy()
    return np.concatenate([np.asarray(image, dtype=np.uint8)[None],
                           np.clip(augmented, 0, 255).round().astype(np.uint8)])


def _to_float(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32), labels


class MnistJob:
    def __init__(self, config: MnistConfig) -> None:
        self.config = config

    def prepare(self, ctx: JobContext) -> Prepared:
        config, fit = self.config, self.config.fit
        ctx.phase("loading MNIST", 0, 1)
        mnist = load_mnist()
        images, labels = _limit(mnist.train_images, mnist.train_labels, config.train_limit)
        train_idx, val_idx = split_indices(len(images), fit.validation_split, fit.seed)
        train = make_train_dataset(images[train_idx], labels[train_idx], fit.batch_size, fit.seed, config.augment)
        val = make_eval_dataset(images[val_idx], labels[val_idx], 512) if len(val_idx) else None
        model = build_mnist_model(config.model)
        summary = {**describe(mnist), "kind": "mnist", "train_samples": len(train_idx),
                   "validation_samples": len(val_idx), "test_samples": len(self._test(mnist)[0]),
                   "train_split_counts": per_class_counts(labels[train_idx]), "augment": config.augment}
        ctx.phase("loading MNIST", 1, 1)
        steps = -(-len(train_idx) // fit.batch_size)
        return Prepared(model=model, train=train, val=val, steps_per_epoch=steps, data_summary=summary,
                        model_info={"input": "digits28", "image_size": [28, 28], "class_names": list(CLASS_NAMES)})

    def evaluate(self, model: keras.Model, ctx: JobContext) -> dict[str, Any]:
        images, labels = self._test(load_mnist())
        probabilities = model.predict(make_eval_dataset(images, labels, 1000), verbose=0)
        report = classification_report(labels, probabilities, CLASS_NAMES)
        return {"eval_set": "test", "test_loss": report["loss"], "test_accuracy": report["accuracy"], **report}

    def _test(self, mnist: Mnist) -> tuple[np.ndarray, np.ndarray]:
        return _limit(mnist.test_images, mnist.test_labels, self.config.test_limit)


def _limit(images: np.ndarray, labels: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (images, labels) if limit is None else (images[:limit], labels[:limit])
