"""Where a run trains: one device, several GPUs of one machine, or several machines.

    strategy = default_strategy()   # MultiWorkerMirrored when TF_CONFIG is set, Mirrored over 2+ GPUs, else default
    is_chief(strategy)              # only the chief worker stores the run

Keras 3.15's `fit` does not work under MultiWorkerMirroredStrategy out of the box (keras-team/keras#20585): it
reduces the first input batch across workers to build the model symbolically ("Attempt to convert a value
(PerReplica...)"), and it averages the scalar step logs along axis 0 ("Invalid reduction dimension 0 for input
with 0 dimensions"). `enable_multiworker_fit` replaces exactly those two private steps, for multi-worker runs
only; keras is pinned to 3.15.x in pyproject.toml and the test with "multiworker" in its name trains two real
worker processes, so a Keras upgrade that changes them fails loudly.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import tensorflow as tf

from transferlab.core.errors import ConfigError, first_line

logger = logging.getLogger(__name__)


def default_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored when TF_CONFIG is set, Mirrored over several GPUs, else the default strategy."""
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"TF_CONFIG: expected a JSON cluster spec with this worker's task, got "
                              f"{os.environ['TF_CONFIG'][:200]!r} ({first_line(exc, limit=200)})") from exc
        enable_multiworker_fit()
        return strategy
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster (worker 0 is the chief when the
    cluster names no "chief" task)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return bool(task_type == "worker" and not has_chief and int(resolver.task_id or 0) == 0)


_patched = False


def enable_multiworker_fit() -> None:
    """Make Keras 3.15's fit/evaluate work under MultiWorkerMirroredStrategy (see the module docstring)."""
    global _patched
    if _patched:
        return
    from keras.src.backend.tensorflow import trainer

    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(_first_local_value(self.distribute_strategy), next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    _patched = True
    logger.info("Keras fit patched for MultiWorkerMirroredStrategy")


def _first_local_value(strategy: tf.distribute.Strategy) -> Any:
    def first(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return first
