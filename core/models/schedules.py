"""Learning-rate schedules that stored models' optimizers may contain (registered for safe loading)."""

from __future__ import annotations

import math
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="transferlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over the first `warmup` fraction of steps, then cosine decay to ~0."""

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.2, final_fraction: float = 0.02) -> None:
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup = float(warmup)
        self.final_fraction = float(final_fraction)

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        warm_steps = max(self.warmup * self.total_steps, 1.0)
        rising = self.peak * (0.1 + 0.9 * step / warm_steps)
        progress = keras.ops.clip((step - warm_steps) / max(self.total_steps - warm_steps, 1.0), 0.0, 1.0)
        floor = self.peak * self.final_fraction
        falling = floor + (self.peak - floor) * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < warm_steps, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup,
                "final_fraction": self.final_fraction}
