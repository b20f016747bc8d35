"""Which numeric precision a run trains in, and what the run's summary says about where it trained.

Mixed precision (Keras' "mixed_float16" policy: float16 compute, float32 weights, loss scaling) pays off on GPUs
with tensor cores, i.e. NVIDIA compute capability 7.0 (Volta) and newer; on a CPU and on older GPUs it is slower
than float32. "auto" therefore picks it only when every visible GPU has compute capability >= 7.0. It applies to
MNIST runs, whose whole network trains; a folder run trains a head (and the top blocks when fine-tuning) on a
float32 backbone and feature cache, so it stays in float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from transferlab.core.config import MnistConfig, RunConfig

MIXED = "mixed_float16"
FLOAT32 = "float32"
TENSOR_CORE_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class Precision:
    policy: str  # a Keras dtype policy name: "float32" or "mixed_float16"
    reason: str  # one sentence for the run's summary


def run_precision(config: RunConfig) -> Precision:
    """The precision a run trains in: MNIST runs choose (config.precision); folder runs stay float32."""
    if isinstance(config, MnistConfig):
        return choose_precision(config.precision, gpu_details())
    return Precision(FLOAT32, "float32: a folder run trains on a float32 backbone and feature cache")


def gpu_details() -> list[dict[str, Any]]:
    """{"name", "compute_capability": (major, minor) or None} for each visible GPU."""
    details = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            info = tf.config.experimental.get_device_details(device)
        except (ValueError, RuntimeError):
            info = {}
        details.append({"name": info.get("device_name", device.name),
                        "compute_capability": info.get("compute_capability")})
    return details


def choose_precision(requested: str, gpus: Sequence[Mapping[str, Any]]) -> Precision:
    """The policy for `requested` ("auto", "float32" or "mixed") on these GPUs (see the module docstring)."""
    if requested == "float32":
        return Precision(FLOAT32, "float32, as asked")
    if requested == "mixed":
        where = "GPU" if gpus else "CPU, where it is slower than float32"
        return Precision(MIXED, f"mixed precision (float16 compute, float32 weights), as asked, on the {where}")
    if not gpus:
        return Precision(FLOAT32, "float32: no GPU (mixed precision is slower on a CPU)")
    old = [g for g in gpus if tuple(g.get("compute_capability") or (0, 0)) < TENSOR_CORE_CAPABILITY]
    if old:
        capability = old[0].get("compute_capability")
        shown = ".".join(str(v) for v in capability) if capability else "unknown"
        return Precision(FLOAT32, f"float32: {old[0]['name']} has compute capability {shown}, below the 7.0 "
                                  "that mixed precision needs to pay off")
    return Precision(MIXED, f"mixed precision (float16 compute, float32 weights): {len(gpus)} GPU"
                            f"{'s' if len(gpus) > 1 else ''} with tensor cores (compute capability >= 7.0)")


def hardware_summary(strategy: tf.distribute.Strategy, precision: Precision) -> dict[str, Any]:
    """What summary.json says about where the run trained: {"strategy", "replicas", "devices", ["workers"],
    "precision", "precision_reason"}."""
    resolver = getattr(strategy, "cluster_resolver", None)
    gpus = len(tf.config.list_logical_devices("GPU"))
    entry: dict[str, Any] = {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync),
                             "devices": f"{gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "CPU",
                             "precision": precision.policy, "precision_reason": precision.reason}
    if resolver is not None and getattr(resolver, "task_type", None) is not None:
        entry["workers"] = sum(len(v) for v in resolver.cluster_spec().as_dict().values())
    return entry
