"""Training runs under a tf.distribute strategy: MirroredStrategy over two logical CPU devices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    # Logical devices must be configured before TensorFlow starts, hence a fresh interpreter.
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from transferlab.core.config import mnist_preset
        from transferlab.core.runs.store import RunStore
        from transferlab.core.training.loop import run_training
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        result = run_training(mnist_preset("ann", epochs=2, batch_size=64, train_limit=2000, test_limit=500),
                              store=RunStore({str(tmp_path)!r}), strategy=strategy)
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync, "status": result.status,
                          "reason": result.reason, "accuracy": result.metrics.get("test_accuracy")}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["replicas"] == 2
    assert outcome["status"] == "finished", outcome["reason"]
    assert outcome["accuracy"] > 0.7
