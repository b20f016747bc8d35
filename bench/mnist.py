"""MNIST speed benchmark: the "fast" preset (>= 99.2 % on every seed in <= 15 % of Keras' recipe time) and the
"accurate" preset (>= 99.6 % in <= 1.0x Keras' recipe time).

    python bench/mnist.py [--quick] [--seeds 42,0,1,2,3,4] [--accurate-seeds 42,0,1] [--skip-accurate]
                          [--skip-seed] [--json-out r.json]

In ONE process, side by side (so that all share the machine's load of the moment):

  fast      our default preset, mnist_preset("fast"), through the real engine call `run_training`, once per
            seed (default: 42, the CLI's default, then 0-4).
  keras     Keras' "Simple MNIST convnet" example, exactly: Conv32-Pool-Conv64-Pool-Flatten-Dropout(0.5)-
            Dense(10), Adam, categorical cross-entropy, batch 128, 15 epochs, validation_split 0.1, plain
            `model.fit` on float arrays (build_keras_recipe_cnn scales the pixels inside the model).
  accurate  mnist_preset("accurate") (augmented digits, more epochs), through `run_training`, once per seed
            (default: 42, 0, 1; its augmentation is seeded too, so each seed gives the same result every run).
  cnn       the seed material's recipe, mnist_preset("cnn") (batch 32, validation split 0.3, stops once the
            training accuracy passes 0.98), also through `run_training`.

The training clock of each starts when fitting starts (`model.fit` is called / the engine's RunStarted event,
sent just before its fit) and includes validation passes and graph tracing. At the end of every epoch the
10,000 test digits are classified; that evaluation is NOT counted. Reported per run: training time to the
first epoch at the target accuracy (99.2 %; accurate: 99.6 %), total training time, seconds per epoch, final
test accuracy, and process CPU seconds (a cross-check on a shared, noisy machine).

Verdicts, each as a ratio to the Keras recipe's 15-epoch training time (wall; CPU time beside it):
  fast      every seed reaches 99.2 %, the median final accuracy of seeds 0-4 is >= 99.25 % (the issue's
            definition; the median of all seeds run is printed beside it), and the slowest
            seed's time to 99.2 % is <= 15 % of Keras' time;
  accurate  every seed's final test accuracy >= 99.6 % and the slowest seed's whole training time <= 1.0x
            Keras' time.

--quick trains the Keras recipe for 2 epochs only and extrapolates its 15-epoch time as first epoch + 14 x
second epoch (the first one includes graph tracing), trains the fast preset for the first seed only, skips
the accurate preset and caps the seed recipe at 2 epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.config import MnistConfig, mnist_preset
from transferlab.core.data.mnist import Mnist, load_mnist
from transferlab.core.events import EpochEnded, RunStarted
from transferlab.core.models.mnist import build_keras_recipe_cnn
from transferlab.core.runs.store import RunStore
from transferlab.core.training.jobs import JobContext, Prepared
from transferlab.core.training.loop import run_training
from transferlab.core.training.mnist_job import MnistJob, make_eval_dataset

TARGET_ACCURACY = 0.992
TARGET_MEDIAN = 0.9925
TARGET_RATIO = 0.15
ACCURATE_TARGET = 0.996
ACCURATE_RATIO = 1.0
KERAS_EPOCHS = 15
DEFAULT_SEEDS = (42, 0, 1, 2, 3, 4)
MEDIAN_SEEDS = (0, 1, 2, 3, 4)
ACCURATE_SEEDS = (42, 0, 1)


@dataclass
class Epoch:
    epoch: int
    train_seconds: float  # training clock at the end of this epoch (test evaluations excluded)
    cpu_seconds: float  # process CPU time, same clock
    test_accuracy: float


@dataclass
class Result:
    name: str
    recipe: str
    epochs: list[Epoch] = field(default_factory=list)
    wall_seconds: float = 0.0  # the whole call (run_training: data loading, building, final evaluation, saving)
    final_test_accuracy: float = float("nan")
    note: str = ""

    @property
    def train_seconds(self) -> float:
        return self.epochs[-1].train_seconds if self.epochs else float("nan")

    @property
    def cpu_seconds(self) -> float:
        return self.epochs[-1].cpu_seconds if self.epochs else float("nan")

    def reached(self, threshold: float = TARGET_ACCURACY) -> Epoch | None:
        return next((e for e in self.epochs if e.test_accuracy >= threshold), None)

    def seconds_per_epoch(self) -> float:
        """Mean epoch time after the first (which also traces the graphs); the only one if just one."""
        times = [e.train_seconds for e in self.epochs]
        if len(times) < 2:
            return times[0] if times else float("nan")
        return (times[-1] - times[0]) / (len(times) - 1)


class TestClock:
    """A training clock that stops while the test set is classified at each epoch end."""

    def __init__(self, result: Result, mnist: Mnist) -> None:
        self.result = result
        self.images = mnist.test_images
        self.labels = mnist.test_labels
        self.test = make_eval_dataset(mnist.test_images, mnist.test_labels, 1000)
        self.start_wall = self.start_cpu = 0.0
        self.excluded_wall = self.excluded_cpu = 0.0

    def start(self) -> None:
        self.start_wall, self.start_cpu = time.perf_counter(), time.process_time()

    def epoch_end(self, model: keras.Model, epoch: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        train_wall = wall - self.start_wall - self.excluded_wall
        train_cpu = cpu - self.start_cpu - self.excluded_cpu
        probabilities = model.predict(self.test, verbose=0)
        accuracy = float(np.mean(np.argmax(probabilities, axis=1) == self.labels))
        self.result.epochs.append(Epoch(epoch, train_wall, train_cpu, accuracy))
        print(f"  {self.result.name:12s} epoch {epoch:2d}: {train_wall:6.1f} s training "
              f"({train_cpu:6.1f} s CPU), test accuracy {accuracy:.4f}", flush=True)
        self.excluded_wall += time.perf_counter() - wall
        self.excluded_cpu += time.process_time() - cpu


class _ClockCallback(keras.callbacks.Callback):
    def __init__(self, clock: TestClock) -> None:
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.clock.epoch_end(self.model, epoch + 1)


def run_keras_recipe(mnist: Mnist, epochs: int, seed: int = 42) -> Result:
    """Keras' example as published (its in-model scaling aside): one-hot labels, validation_split=0.1."""
    result = Result("keras", f"Keras Simple MNIST convnet, batch 128, {epochs} epochs, validation_split 0.1")
    keras.utils.set_random_seed(seed)
    x_train = mnist.train_images.astype("float32")
    y_train = keras.utils.to_categorical(mnist.train_labels, 10)
    model = build_keras_recipe_cnn()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    clock = TestClock(result, mnist)
    began = time.perf_counter()
    clock.start()
    model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0,
              callbacks=[_ClockCallback(clock)])
    result.wall_seconds = time.perf_counter() - began
    result.final_test_accuracy = result.epochs[-1].test_accuracy
    return result


class _CapturingJob(MnistJob):
    """The engine's own MNIST job; only remembers the model it prepares, so the bench can test it."""

    model: keras.Model | None = None

    def prepare(self, ctx: JobContext) -> Prepared:
        prepared = super().prepare(ctx)
        self.model = prepared.model
        return prepared


def run_engine(name: str, config: MnistConfig, mnist: Mnist, store: RunStore) -> Result:
    fit = config.fit
    result = Result(name, f"mnist_preset({config.model!r}): batch {fit.batch_size}, {fit.epochs} epochs, lr "
                          f"{fit.learning_rate:g} {fit.lr_schedule}, validation_split {fit.validation_split}"
                          + (f", label smoothing {fit.label_smoothing}" if fit.label_smoothing else "")
                          + (", augmented" if config.augment else "")
                          + (f", stop at accuracy {fit.stop_at_accuracy}" if fit.stop_at_accuracy else ""))
    job = _CapturingJob(config)
    clock = TestClock(result, mnist)

    def reporter(event: object) -> None:
        if isinstance(event, RunStarted):  # sent right before the engine calls fit
            clock.start()
        elif isinstance(event, EpochEnded):  # sent from the engine's callback, on the training thread
            assert job.model is not None
            clock.epoch_end(job.model, event.epoch)

    began = time.perf_counter()
    run = run_training(config, reporter, store=store, job=job)
    result.wall_seconds = time.perf_counter() - began
    if run.status != "finished":
        raise SystemExit(f"{name}: run {run.status}: {run.reason}")
    result.final_test_accuracy = float(run.metrics["test_accuracy"])
    result.note = run.reason
    return result


def ratio_to(value: float | None, reference: float) -> float | None:
    return None if value is None else value / reference


def summarize(results: list[Result], keras_15: float, extrapolated: bool, keras_cpu_15: float) -> dict[str, Any]:
    rows = []
    for r in results:
        target = ACCURATE_TARGET if r.name.startswith("accurate") else TARGET_ACCURACY
        reached = r.reached(target)
        rows.append({"name": r.name, "recipe": r.recipe, "target_accuracy": target, "epochs_trained": len(r.epochs),
                     "seconds_per_epoch": r.seconds_per_epoch(),
                     "time_to_target": reached.train_seconds if reached else None,
                     "cpu_to_target": reached.cpu_seconds if reached else None,
                     "epoch_reached_target": reached.epoch if reached else None,
                     "training_seconds": r.train_seconds, "training_cpu_seconds": r.cpu_seconds,
                     "ratio_to_target": ratio_to(reached.train_seconds if reached else None, keras_15),
                     "cpu_ratio_to_target": ratio_to(reached.cpu_seconds if reached else None, keras_cpu_15),
                     "training_ratio": r.train_seconds / keras_15, "training_cpu_ratio": r.cpu_seconds / keras_cpu_15,
                     "call_wall_seconds": r.wall_seconds, "final_test_accuracy": r.final_test_accuracy,
                     "note": r.note, "epochs": [asdict(e) for e in r.epochs]})
    summary: dict[str, Any] = {
        "keras_15_epoch_seconds": keras_15, "keras_15_epoch_extrapolated": extrapolated,
        "keras_15_epoch_cpu_seconds": keras_cpu_15,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
        "results": rows}
    fast = [row for row in rows if row["name"].startswith("fast")]
    finals = [row["final_test_accuracy"] for row in fast]
    # The issue's median is over seeds 0-4 (seed 42 is the README command's own): that one when they all ran.
    issue_rows = [row for row in fast if row["name"] in {f"fast s{seed}" for seed in MEDIAN_SEEDS}]
    median_finals = [row["final_test_accuracy"] for row in issue_rows] if len(issue_rows) == len(MEDIAN_SEEDS) \
        else finals
    ratios = [row["ratio_to_target"] for row in fast]
    cpu_ratios = [row["cpu_ratio_to_target"] for row in fast]
    worst = None if None in ratios else max(ratios)
    summary["fast"] = {
        "target_accuracy": TARGET_ACCURACY, "target_median": TARGET_MEDIAN, "target_ratio": TARGET_RATIO,
        "seeds": len(fast), "min_accuracy": min(finals), "median_accuracy": statistics.median(median_finals),
        "median_over": "seeds 0-4" if median_finals is not finals else "all seeds",
        "median_all_seeds": statistics.median(finals),
        "worst_ratio": worst, "median_ratio": None if worst is None else statistics.median(ratios),
        "worst_cpu_ratio": None if None in cpu_ratios else max(cpu_ratios),
        "passed": worst is not None and worst <= TARGET_RATIO and min(finals) >= TARGET_ACCURACY
        and statistics.median(median_finals) >= TARGET_MEDIAN}
    accurate = [row for row in rows if row["name"].startswith("accurate")]
    if accurate:
        accuracies = [row["final_test_accuracy"] for row in accurate]
        ratios = [row["training_ratio"] for row in accurate]
        summary["accurate"] = {
            "target_accuracy": ACCURATE_TARGET, "target_ratio": ACCURATE_RATIO, "seeds": len(accurate),
            "min_accuracy": min(accuracies), "median_accuracy": statistics.median(accuracies),
            "worst_training_ratio": max(ratios), "median_training_ratio": statistics.median(ratios),
            "worst_training_cpu_ratio": max(row["training_cpu_ratio"] for row in accurate),
            "passed": min(accuracies) >= ACCURATE_TARGET and max(ratios) <= ACCURATE_RATIO}
    return summary


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_table(summary: dict[str, Any]) -> None:
    print()
    header = (f"{'run':12s} {'epochs':>6s} {'s/epoch':>8s} {'target':>7s} {'to target':>14s} {'/ Keras':>8s} "
              f"{'training s':>10s} {'/ Keras':>8s} {'CPU s':>8s} {'/ Keras':>8s} {'test acc':>9s}")
    print(header)
    print("-" * len(header))
    for row in summary["results"]:
        reached = (f"{row['time_to_target']:.1f} (ep {row['epoch_reached_target']})"
                   if row["time_to_target"] is not None else "not reached")
        print(f"{row['name']:12s} {row['epochs_trained']:6d} {row['seconds_per_epoch']:8.1f} "
              f"{row['target_accuracy']:7.1%} {reached:>14s} {_pct(row['ratio_to_target']):>8s} "
              f"{row['training_seconds']:10.1f} {_pct(row['training_ratio']):>8s} "
              f"{row['training_cpu_seconds']:8.1f} {_pct(row['training_cpu_ratio']):>8s} "
              f"{row['final_test_accuracy']:9.4f}")
    print()
    for row in summary["results"]:
        print(f"{row['name']:12s} {row['recipe']}" + (f" ({row['note']})" if row["note"] else ""))
    how = "extrapolated from 2 epochs (--quick)" if summary["keras_15_epoch_extrapolated"] else "measured"
    print(f"\nKeras recipe, 15 epochs: {summary['keras_15_epoch_seconds']:.1f} s training ({how}), "
          f"{summary['keras_15_epoch_cpu_seconds']:.1f} s CPU")
    fast = summary["fast"]
    print(f"fast, {fast['seeds']} seed(s): test accuracy min {fast['min_accuracy']:.2%}, median of "
          f"{fast['median_over']} {fast['median_accuracy']:.3%} (of all seeds {fast['median_all_seeds']:.3%}; "
          f"targets >= {TARGET_ACCURACY:.1%} each, median >= {TARGET_MEDIAN:.2%}); "
          f"time to {TARGET_ACCURACY:.1%} / Keras 15-epoch time: slowest seed {_pct(fast['worst_ratio'])}, median "
          f"{_pct(fast['median_ratio'])} (CPU time, slowest: {_pct(fast['worst_cpu_ratio'])}); target <= "
          f"{TARGET_RATIO:.0%}: {'PASS' if fast['passed'] else 'FAIL'}")
    accurate = summary.get("accurate")
    if accurate:
        print(f"accurate, {accurate['seeds']} seed(s): test accuracy min {accurate['min_accuracy']:.2%}, median "
              f"{accurate['median_accuracy']:.2%} (target >= {ACCURATE_TARGET:.1%} each); training time / Keras "
              f"15-epoch time: slowest {accurate['worst_training_ratio']:.2f}x, median "
              f"{accurate['median_training_ratio']:.2f}x (CPU time, slowest: "
              f"{accurate['worst_training_cpu_ratio']:.2f}x); "
              f"target <= {ACCURATE_RATIO:.1f}x: {'PASS' if accurate['passed'] else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Keras recipe for 2 epochs only (its 15-epoch "
                        "time is extrapolated), the first seed only, no accurate preset, seed recipe 2 epochs")
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)),
                        help="comma-separated seeds for the fast preset (default: %(default)s)")
    parser.add_argument("--json-out", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--accurate-seeds", default=",".join(map(str, ACCURATE_SEEDS)),
                        help="comma-separated seeds for the accurate preset (default: %(default)s)")
    parser.add_argument("--skip-accurate", action="store_true", help="leave out the accurate preset")
    parser.add_argument("--skip-seed", action="store_true", help="leave out the seed CNN recipe")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    accurate_seeds = [int(seed) for seed in args.accurate_seeds.split(",") if seed.strip()]
    if args.quick:
        seeds = seeds[:1]

    mnist = load_mnist()
    keras_epochs = 2 if args.quick else KERAS_EPOCHS
    print(f"MNIST {mnist.train_images.shape[0]} + {mnist.test_images.shape[0]} digits; {os.cpu_count()} CPUs; "
          f"TF {tf.__version__}, Keras {keras.__version__}" + (" (quick)" if args.quick else ""), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-mnist-") as runs_dir:
        store = RunStore(runs_dir)
        for seed in seeds:
            results.append(run_engine(f"fast s{seed}", mnist_preset("fast", seed=seed), mnist, store))
        results.append(run_keras_recipe(mnist, keras_epochs))
        if not (args.quick or args.skip_accurate):
            for seed in accurate_seeds:
                results.append(run_engine(f"accurate s{seed}", mnist_preset("accurate", seed=seed), mnist, store))
        if not args.skip_seed:
            seed_config = mnist_preset("cnn", epochs=2) if args.quick else mnist_preset("cnn")
            results.append(run_engine("cnn", seed_config, mnist, store))
    keras_result = next(r for r in results if r.name == "keras")
    if args.quick:
        first, second = keras_result.epochs[0], keras_result.epochs[1]
        keras_15 = first.train_seconds + (KERAS_EPOCHS - 1) * (second.train_seconds - first.train_seconds)
        keras_cpu_15 = first.cpu_seconds + (KERAS_EPOCHS - 1) * (second.cpu_seconds - first.cpu_seconds)
    else:
        keras_15, keras_cpu_15 = keras_result.train_seconds, keras_result.cpu_seconds
    summary = summarize(results, keras_15, args.quick, keras_cpu_15)
    summary["quick"] = args.quick
    print_table(summary)
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    passed = summary["fast"]["passed"] and summary.get("accurate", {}).get("passed", True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
