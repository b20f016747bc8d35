"""Benchmark: exports for small devices — float32 vs float16 vs int8 TFLite, side by side in one run.

    python bench/export.py [--mnist-epochs 3] [--images 300] [--repeats 200] [--json-out bench-export.json]

Trains two runs through run_training (the MNIST fast preset on the full data; a frozen EfficientNet-Lite0 run on
--images generated 224x224 JPEGs in 5 classes), exports each as tflite, tflite-fp16 and tflite-int8 (each verified
by export_run against the in-app model on the run's evaluation images: top-1 agreement and the largest
probability difference), then measures each file's size and its CPU latency for one image with the LiteRT
interpreter (median and 90th percentile over --repeats calls, formats interleaved so drift hits all equally).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FORMATS = ("tflite", "tflite-fp16", "tflite-int8")


def train_runs(work: Path, mnist_epochs: int, images: int) -> dict[str, str]:
    from bench.transfer import make_images
    from transferlab.core.config import FitOptions, FolderConfig, mnist_preset
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training

    store = RunStore(work / "runs")
    runs = {}
    for name, config in (
        ("mnist fast", mnist_preset("fast", epochs=mnist_epochs)),
        ("folder frozen (Lite0)", FolderConfig(data_dir=str(make_images(work / "photos", images)), mode="frozen",
                                               fit=FitOptions(epochs=10, batch_size=32, validation_split=0.2,
                                                              seed=0))),
    ):
        started = time.perf_counter()
        result = run_training(config, store=store)
        if result.status != "finished":
            raise SystemExit(f"{name}: the run {result.status}: {result.reason}")
        print(f"trained {name} in {time.perf_counter() - started:.0f} s", flush=True)
        runs[name] = result.run_id
    return runs


def latency_ms(paths: dict[str, Path], sample: np.ndarray, repeats: int) -> dict[str, list[float]]:
    from ai_edge_litert.interpreter import Interpreter

    from transferlab.core.deploy.export import INPUT_KEY, SERVING_KEY

    runners = {}
    for fmt, path in paths.items():
        runner = Interpreter(model_path=str(path), num_threads=1).get_signature_runner(SERVING_KEY)
        runner(**{INPUT_KEY: sample})  # warm up
        runners[fmt] = runner
    times: dict[str, list[float]] = {fmt: [] for fmt in paths}
    for _ in range(repeats):
        for fmt, runner in runners.items():
            started = time.perf_counter()
            runner(**{INPUT_KEY: sample})
            times[fmt].append((time.perf_counter() - started) * 1000)
    return times


def measure(store_root: Path, run_id: str, repeats: int, out: Path) -> list[dict[str, Any]]:
    from transferlab.core.deploy.export import export_run, verification_images
    from transferlab.core.runs.store import RunStore

    store = RunStore(store_root)
    paths, records = {}, {}
    for fmt in FORMATS:
        paths[fmt] = export_run(run_id, fmt, store=store, out=out / f"{run_id}-{fmt}.tflite")
        records[fmt] = store.read_json(run_id, "exports.json")[-1]
    sample = verification_images(store, run_id, store.model_info(run_id))[:1]
    times = latency_ms(paths, sample, repeats)
    rows = []
    for fmt in FORMATS:
        series = sorted(times[fmt])
        rows.append({"format": fmt, "bytes": paths[fmt].stat().st_size, "agreement": records[fmt]["agreement"],
                     "max_abs_diff": records[fmt]["max_abs_diff"], "samples": records[fmt]["samples"],
                     "median_ms": statistics.median(series), "p90_ms": series[int(0.9 * (len(series) - 1))]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        work = Path(folder)
        runs = train_runs(work, args.mnist_epochs, args.images)
        results = {}
        for name, run_id in runs.items():
            results[name] = measure(work / "runs", run_id, args.repeats, work)
    for name, rows in results.items():
        base = rows[0]
        print(f"\n{name}")
        print(f"  {'format':<12} {'size':>9} {'vs float':>9} {'agreement':>10} {'max |diff|':>11} "
              f"{'median ms':>10} {'p90 ms':>7} {'speed vs float':>15}")
        for row in rows:
            print(f"  {row['format']:<12} {row['bytes'] / 1024:>7.0f}KB {row['bytes'] / base['bytes']:>9.2f} "
                  f"{row['agreement']:>10.4f} {row['max_abs_diff']:>11.2e} {row['median_ms']:>10.2f} "
                  f"{row['p90_ms']:>7.2f} {base['median_ms'] / row['median_ms']:>14.2f}x")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
