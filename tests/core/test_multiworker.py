"""Several machines: two worker processes on 127.0.0.1 train one MNIST run with MultiWorkerMirroredStrategy
(chosen because TF_CONFIG is set); both agree, and only the chief writes the run store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    from transferlab.core.config import mnist_preset
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training
    result = run_training(mnist_preset("ann", epochs=2, batch_size=64, train_limit=1024, test_limit=256, seed=3),
                          store=RunStore(sys.argv[1]))
    print(json.dumps({"status": result.status, "reason": result.reason, "run_id": result.run_id,
                      "run_dir": str(result.run_dir), "accuracy": result.metrics.get("test_accuracy"),
                      "history": [round(row["loss"], 6) for row in result.history]}))
""")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_multiworker_run_trains_on_two_processes_and_only_the_chief_stores_it(tmp_path: Path) -> None:
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    stores = [tmp_path / "store-0", tmp_path / "store-1"]
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": index}}),
               "CUDA_VISIBLE_DEVICES": "-1"}
        processes.append(subprocess.Popen([sys.executable, "-c", SCRIPT, str(stores[index])], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=400)
        assert process.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    chief, other = outcomes
    assert chief["status"] == other["status"] == "finished", (chief["reason"], other["reason"])
    assert chief["history"] == other["history"]  # one model, trained in lockstep
    assert chief["accuracy"] == pytest.approx(other["accuracy"])
    assert chief["accuracy"] > 0.5
    # Only the chief (worker 0) stores the run; the other worker's store stays empty.
    assert (stores[0] / chief["run_id"] / "model.keras").is_file()
    assert not stores[1].exists() or not any(p for p in stores[1].iterdir() if not p.name.startswith("."))
