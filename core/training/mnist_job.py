"""The MNIST kind of run: data pipeline, model, evaluation on the test set."""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.analysis.evaluation import classification_report
from transferlab.core.analysis.ood import BANK_SIZE
from transferlab.core.config import MnistConfig
from transferlab.core.data.digit_augment import random_affine
from transferlab.core.data.mnist import CLASS_NAMES, Mnist, describe, load_mnist, per_class_counts
from transferlab.core.models.building import building_models
from transferlab.core.models.mnist import build_mnist_model
from transferlab.core.records import DataSummary, EvaluationReport, ModelInfo
from transferlab.core.training.jobs import JobContext, Prepared
from transferlab.core.training.trust_fit import TrustSamples

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
        # One stateless seed per batch from a seeded stream that differs each epoch: the distortions depend on the
        # run's seed only, not on which of tf.data's threads draws them first.
        batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, batch_seeds)).map(
            lambda batch, batch_seed: (random_affine(batch[0], batch_seed), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
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
        with building_models(ctx.dtype_policy):
            model = build_mnist_model(config.model)
        details = describe(mnist)
        summary = DataSummary(kind=config.kind, classes=tuple(details.pop("classes")), train_samples=len(train_idx),
                              validation_samples=len(val_idx), test_samples=len(_test_set(mnist, config.test_limit)[0]),
                              train_split_counts=tuple(per_class_counts(labels[train_idx])), augment=config.augment,
                              eval_set="test", details=details)
        ctx.phase("loading MNIST", 1, 1)
        steps = -(-len(train_idx) // fit.batch_size)
        return Prepared(model=model, train=train, val=val, steps_per_epoch=steps, data_summary=summary,
                        model_info=ModelInfo(config.kind, (28, 28), tuple(CLASS_NAMES)))

    def evaluate(self, model: keras.Model, ctx: JobContext) -> EvaluationReport:
        return evaluate_on_test_set(model, self.config.test_limit)

    def trust_samples(self, model: keras.Model, ctx: JobContext) -> TrustSamples:
        """Temperature and thresholds from the validation digits (else the test set, out of fold); the bank
        from a sample of training digits; ECE measured on the test set."""
        config, fit = self.config, self.config.fit
        mnist = load_mnist()
        images, labels = _limit(mnist.train_images, mnist.train_labels, config.train_limit)
        train_idx, val_idx = split_indices(len(images), fit.validation_split, fit.seed)
        bank_idx = np.random.default_rng(fit.seed).permutation(train_idx)[:BANK_SIZE]
        test = self._test(mnist)
        train = (images[bank_idx], labels[bank_idx])
        if len(val_idx):
            return TrustSamples(model, train, (images[val_idx], labels[val_idx]),
                                f"validation split ({len(val_idx)} digits)", test, f"test set ({len(test[0])} digits)",
                                seed=fit.seed)
        return TrustSamples(model, train, test, f"test set ({len(test[0])} digits; no validation split)",
                            seed=fit.seed)

    def _test(self, mnist: Mnist) -> tuple[np.ndarray, np.ndarray]:
        return _limit(mnist.test_images, mnist.test_labels, self.config.test_limit)

def evaluate_on_test_set(model: keras.Model, test_limit: int | None = None) -> EvaluationReport:
    """A digit model's report on the MNIST test set (its first `test_limit` digits)."""
    images, labels = _test_set(load_mnist(), test_limit)
    probabilities = model.predict(make_eval_dataset(images, labels, 1000), verbose=0)
    return classification_report(labels, probabilities, CLASS_NAMES, eval_set="test")


def _test_set(mnist: Mnist, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    return _limit(mnist.test_images, mnist.test_labels, limit)


def _limit(images: np.ndarray, labels: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (images, labels) if limit is None else (images[:limit], labels[:limit])
