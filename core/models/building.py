"""One lock for building and loading Keras models, held only while a model is built or loaded.

Keras builds models through process-wide state: two threads building at once can fail. Every engine function
that builds a model (a run's model, a model summary, an augmentation preview) or loads one (a stored run, a
run's head) does it inside `building_models()`; fitting, predicting and exporting do not take it, so a model
summary or a dropped image never waits for a long fine-tune.

    with building_models():
        model = build_mnist_model("fast")
    with building_models("mixed_float16"):  # layers made here compute in float16 (transferlab.core.training.precision)
        model = build_mnist_model("fast")
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

KERAS_BUILD_LOCK = threading.RLock()  # re-entrant: loading a run's head inside a job's build is fine


@contextlib.contextmanager
def building_models(dtype_policy: str | None = None) -> Iterator[None]:
    """Hold the lock; with a Keras dtype policy name, layers created inside get that policy (Keras keeps it
    process-wide, so it is set and restored under the lock)."""
    with KERAS_BUILD_LOCK:
        if dtype_policy is None:
            yield
            return
        import keras

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(dtype_policy)
        try:
            yield
        finally:
            keras.config.set_dtype_policy(previous)
