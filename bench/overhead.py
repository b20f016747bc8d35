"""Engine overhead: the same model, data and batches through `run_training` (with a reporter) vs a bare fit.

    python bench/overhead.py [--epochs 1] [--repeats 7] [--train-limit N] [--json-out overhead.json]

Both sides use the "fast" preset: the model from build_fast_cnn, the engine's own MNIST pipeline
(MnistJob.prepare: same split, same shuffled tf.data batches, same seed) and the engine's own compile
(Adam with the one-cycle schedule). The only difference is the fit call itself:

  engine  `run_training(config, reporter)`: its progress callback (stop flag checked before every batch,
          throttled batch events, epoch events, history.json rewritten after every epoch) and a reporter that
          consumes the events like the CLI's progress line would. Timed from the RunStarted event (sent just
          before fit) to the "evaluating" phase event (sent just after fit returns).
  bare    `model.fit(train, validation_data=val, epochs, steps_per_epoch, verbose=0)`, no callbacks.

One untimed warm-up fit of each comes first (the first fit in a process pays TensorFlow's one-time start-up).
Then the runs alternate in pairs (engine, bare, bare, engine, ...) so that a change in the machine's load hits
both; each pair gives a ratio engine / bare. Reported: the median of the pair ratios (the verdict: <= 1.03),
their spread (min, quartiles, max), the ratio of the medians, and the same for process CPU time (less sensitive
to other load). On a shared machine use enough repeats that the quartiles sit on one side of the target.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import tensorflow as tf

from transferlab.core.config import MnistConfig, mnist_preset
from transferlab.core.events import BatchProgress, EpochEnded, PhaseProgress, RunStarted
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.jobs import JobContext
from transferlab.core.training.loop import _compile, run_training
from transferlab.core.training.mnist_job import MnistJob

TARGET = 1.03


class ProgressLine:
    """A reporter doing what a CLI progress line does: formats each batch and epoch event into a string."""

    def __init__(self) -> None:
        self.batch_events = 0
        self.line = ""
        self.fit_started = self.fit_ended = 0.0
        self.cpu_started = self.cpu_ended = 0.0

    def __call__(self, event: object) -> None:
        if isinstance(event, RunStarted):
            self.fit_started, self.cpu_started = time.perf_counter(), time.process_time()
        elif isinstance(event, BatchProgress):
            self.batch_events += 1
            self.line = (f"epoch {event.epoch}/{event.epochs} batch {event.batch}/{event.batches} "
                         f"loss {event.loss:.4f} accuracy {event.accuracy:.4f}")
        elif isinstance(event, EpochEnded):
            self.line = f"epoch {event.epoch}/{event.epochs} {event.metrics}"
        elif isinstance(event, PhaseProgress) and event.phase == "evaluating" and not self.fit_ended:
            self.fit_ended, self.cpu_ended = time.perf_counter(), time.process_time()


def engine_fit(config: MnistConfig, store: RunStore) -> dict[str, Any]:
    reporter = ProgressLine()
    began = time.perf_counter()
    result = run_training(config, reporter, store=store)
    call = time.perf_counter() - began
    if result.status != "finished":
        raise SystemExit(f"engine run {result.status}: {result.reason}")
    return {"fit_seconds": reporter.fit_ended - reporter.fit_started,
            "fit_cpu_seconds": reporter.cpu_ended - reporter.cpu_started,
            "call_seconds": call, "batch_events": reporter.batch_events}


def bare_fit(config: MnistConfig, store: RunStore) -> dict[str, Any]:
    keras.utils.set_random_seed(config.fit.seed)  # as run_training does
    ctx = JobContext("bare", store, lambda event: None, StopFlag())
    prepared = MnistJob(config).prepare(ctx)
    _compile(prepared, config)  # the engine's own compile, so that only the fit loop differs
    began, cpu = time.perf_counter(), time.process_time()
    prepared.model.fit(prepared.train, validation_data=prepared.val, epochs=config.fit.epochs,
                       steps_per_epoch=prepared.steps_per_epoch, shuffle=False, verbose=0)
    return {"fit_seconds": time.perf_counter() - began, "fit_cpu_seconds": time.process_time() - cpu}


def spread(values: list[float]) -> dict[str, float]:
    """min, quartiles, max of a list (statistics.quantiles' inclusive method)."""
    if len(values) < 2:
        return {"min": values[0], "q1": values[0], "median": values[0], "q3": values[0], "max": values[0]}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"min": min(values), "q1": q1, "median": median, "q3": q3, "max": max(values)}


def describe(name: str, values: list[float]) -> str:
    s = spread(values)
    return (f"{name} median {s['median']:.3f} (quartiles {s['q1']:.3f}-{s['q3']:.3f}, "
            f"range {s['min']:.3f}-{s['max']:.3f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7, help="timed pairs (engine + bare)")
    parser.add_argument("--train-limit", type=int, default=None, help="use the first N training digits")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    config = mnist_preset("fast", epochs=args.epochs, train_limit=args.train_limit, test_limit=1000)
    print(f"fast preset, {args.epochs} epoch(s), batch {config.fit.batch_size}, "
          f"{args.train_limit or 60000} digits, {args.repeats} interleaved pairs after a warm-up; "
          f"TF {tf.__version__}, {os.cpu_count()} CPUs", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"engine": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as runs_dir:
        store = RunStore(runs_dir)
        engine_fit(config, store)  # warm-up, not timed
        bare_fit(config, store)
        for i in range(args.repeats):
            order = ("engine", "bare") if i % 2 == 0 else ("bare", "engine")
            for name in order:
                row = engine_fit(config, store) if name == "engine" else bare_fit(config, store)
                runs[name].append(row)
                print(f"  pair {i + 1} {name:6s} fit {row['fit_seconds']:6.2f} s ({row['fit_cpu_seconds']:6.2f} s "
                      "CPU)" + (f", whole run_training call {row['call_seconds']:.2f} s, {row['batch_events']} "
                                "batch events" if name == "engine" else ""), flush=True)
    pairs = list(zip(runs["engine"], runs["bare"], strict=True))
    ratios = [e["fit_seconds"] / b["fit_seconds"] for e, b in pairs]
    cpu_ratios = [e["fit_cpu_seconds"] / b["fit_cpu_seconds"] for e, b in pairs]
    engine = statistics.median(r["fit_seconds"] for r in runs["engine"])
    bare = statistics.median(r["fit_seconds"] for r in runs["bare"])
    engine_cpu = statistics.median(r["fit_cpu_seconds"] for r in runs["engine"])
    bare_cpu = statistics.median(r["fit_cpu_seconds"] for r in runs["bare"])
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"\nmedian fit: engine {engine:.2f} s, bare {bare:.2f} s (ratio of medians {engine / bare:.3f}; CPU "
          f"{engine_cpu:.2f} / {bare_cpu:.2f} s = {engine_cpu / bare_cpu:.3f})")
    print(describe("pair ratios, wall:", ratios))
    print(describe("pair ratios, CPU: ", cpu_ratios))
    print(f"engine / bare = {ratio:.3f} (median pair ratio); target <= {TARGET}: {verdict}")
    if args.json_out:
        summary = {"epochs": args.epochs, "repeats": args.repeats, "train_limit": args.train_limit,
                   "engine_median_seconds": engine, "bare_median_seconds": bare, "ratio": ratio,
                   "pair_ratios": ratios, "pair_ratio_spread": spread(ratios),
                   "pair_cpu_ratios": cpu_ratios, "pair_cpu_ratio_spread": spread(cpu_ratios),
                   "engine_median_cpu_seconds": engine_cpu, "bare_median_cpu_seconds": bare_cpu,
                   "cpu_ratio": statistics.median(cpu_ratios), "target": TARGET, "passed": ratio <= TARGET,
                   "runs": runs}
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
