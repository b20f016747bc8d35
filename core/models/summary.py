"""What the user sees of a model before and after training: its layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from transferlab.core.events import ModelSummary


def summarize_model(model: keras.Model) -> ModelSummary:
    layers = []
    for layer in model.layers:
        try:
            shape = str(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            shape = "?"
        layers.append((layer.name, type(layer).__name__, shape, int(layer.count_params())))
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return ModelSummary(model.name, tuple(layers), trainable, frozen)


def summary_to_dict(summary: ModelSummary) -> dict[str, Any]:
    return {"name": summary.name, "trainable_params": summary.trainable_params,
            "frozen_params": summary.frozen_params,
            "layers": [dict(zip(("name", "type", "output_shape", "params"), row, strict=True))
                       for row in summary.layers]}

