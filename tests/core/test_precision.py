"""Mixed precision: chosen only where it pays off (GPUs with tensor cores), trains for real when asked, and the
run's summary says where and in which precision it trained."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from transferlab.core.cli import main
from transferlab.core.config import FolderConfig, mnist_preset
from transferlab.core.errors import ConfigError
from transferlab.core.records import hardware_text
from transferlab.core.runs.store import RunStore
from transferlab.core.training.precision import FLOAT32, MIXED, choose_precision, run_precision

H100 = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0)}
T4 = {"name": "Tesla T4", "compute_capability": (7, 5)}
P100 = {"name": "Tesla P100-PCIE-16GB", "compute_capability": (6, 0)}


@pytest.mark.parametrize(("gpus", "policy", "said"), [
    ([], FLOAT32, "no GPU"),
    ([H100], MIXED, "1 GPU with tensor cores"),
    ([H100, T4], MIXED, "2 GPUs with tensor cores"),
    ([H100, P100], FLOAT32, "Tesla P100-PCIE-16GB has compute capability 6.0"),
    ([{"name": "GPU:0", "compute_capability": None}], FLOAT32, "compute capability unknown"),
])
def test_auto_picks_mixed_precision_only_when_every_gpu_has_tensor_cores(gpus, policy, said):
    chosen = choose_precision("auto", gpus)
    assert chosen.policy == policy
    assert said in chosen.reason


def test_an_explicit_choice_wins_and_says_so_on_a_cpu():
    assert choose_precision("float32", [H100]).policy == FLOAT32
    forced = choose_precision("mixed", [])
    assert forced.policy == MIXED and "CPU, where it is slower" in forced.reason
    with pytest.raises(ConfigError, match="precision: expected one of auto, float32, mixed, got 'half'"):
        mnist_preset("fast", precision="half")


def test_this_machine_trains_mnist_in_float32_and_folder_runs_always_do():
    assert run_precision(mnist_preset("fast")).policy == FLOAT32  # the test machines have no GPU
    assert run_precision(FolderConfig(data_dir="x")).policy == FLOAT32


def test_hardware_text_names_devices_replicas_and_precision():
    assert hardware_text({"devices": "CPU", "replicas": 1, "precision": FLOAT32}) == "on CPU, float32"
    assert hardware_text({"devices": "2 GPUs", "replicas": 2, "strategy": "MirroredStrategy",
                          "precision": MIXED}) == "on 2 GPUs (MirroredStrategy, 2 replicas), mixed precision"


@pytest.mark.slow
def test_a_mixed_precision_run_learns_stores_float32_probabilities_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    assert main(["train", "mnist", "--precision", "mixed", "--train-limit", "2000", "--test-limit", "500",
                 "--epochs", "2", "--batch-size", "32", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "on CPU, mixed precision" in err  # the run's first progress line
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["metrics"]["test_accuracy"] > 0.8  # chance is 0.1
    assert keras.config.dtype_policy().name == FLOAT32  # the process-wide policy is back

    store = RunStore(tmp_path / "home" / "runs")
    hardware = store.read_json(result["run_id"], "summary.json")["data"]["hardware"]
    assert hardware["precision"] == MIXED and "as asked, on the CPU" in hardware["precision_reason"]
    model = store.load_model(result["run_id"])
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(layer.dtype_policy.name == MIXED for layer in convolutions)
    digits = np.zeros((2, 28, 28), np.float32)
    assert model.predict(digits, verbose=0).dtype == np.float32
