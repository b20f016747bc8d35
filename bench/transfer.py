"""Benchmark: what caching features / cut-point activations buys on a CPU, with the bundled EfficientNet-Lite0.

    python bench/transfer.py [--images 1000] [--epochs 10] [--ft-epochs EPOCHS] [--unfreeze 2] [--quick]
                             [--json-out bench-transfer.json]

Generates N 224×224 JPEGs in 5 learnable classes in a temp folder, then measures, each phase in its own
subprocess (so ru_maxrss is that phase's peak memory; the frozen run's figure is taken before (c)):
  (a) a frozen run through run_training (features extracted once, head fitted on them) vs a naive frozen
      end-to-end model.fit (extractor + head on the image pipeline). The naive fit is timed for
      --naive-epochs epochs and extrapolated to --epochs (said so in the output). Target >= 7x.
  (c) the whole frozen run vs one feature-extraction pass over the same images. Target <= 1.3x.
  (d) fine-tuning the top N blocks with cut-point caching (run_training) vs naive fine-tuning end to end,
      per epoch (fit only, and amortised: the caching pass spread over the epochs; the naive per-epoch time
      leaves out its first epoch when more than one ran). Target >= 3x.
`--quick` = 200 images, 3 epochs, 2 fine-tuning epochs.

With --images above 1,000 (e.g. `--images 10000`) it measures scale instead: a frozen and a cached fine-tuned
run (top --unfreeze blocks, --ft-epochs epochs) at 1,000 and at N images, side by side: extraction (caching)
images/s, total time, time per image relative to 1,000 images (1.0 = linear), and peak memory (target <= 2 GB;
cut-point activations beyond 256 MB stream to a memory-mapped file).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CLASSES = ("alpha", "beta", "gamma", "delta", "epsilon")
SIZE = (224, 224)
BATCH = 32


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


# ---- child phases (each runs in its own process) ----

def _config(data: str, mode: str, epochs: int, unfreeze: int) -> Any:
    from transferlab.core.config import FitOptions, FolderConfig

    return FolderConfig(data_dir=data, mode=mode, unfreeze=unfreeze,  # type: ignore[arg-type]
                        fit=FitOptions(epochs=epochs, batch_size=BATCH, validation_split=0.2, seed=0))


def phase_run(data: str, runs: str, mode: str, epochs: int, unfreeze: int,
              skip_extract: bool = False) -> dict[str, Any]:
    """A run through run_training; times of its phases from the events."""
    from transferlab.core.events import EpochEnded, PhaseProgress, RunStarted
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training

    marks: dict[str, float] = {}
    epoch_ends: list[float] = []

    def reporter(event: Any) -> None:
        now = time.perf_counter()
        if isinstance(event, PhaseProgress):
            marks.setdefault(f"{event.phase}:start", now)
            marks[f"{event.phase}:end"] = now
        elif isinstance(event, RunStarted):
            marks["fit:start"] = now
        elif isinstance(event, EpochEnded):
            epoch_ends.append(now)

    before = phase_extract(data)["extract_s"] if mode == "frozen" and not skip_extract else None
    started = time.perf_counter()
    result = run_training(_config(data, mode, epochs, unfreeze), reporter, store=RunStore(runs))
    total = time.perf_counter() - started
    if result.status != "finished":
        raise SystemExit(f"the {mode} run {result.status}: {result.reason}")
    cache_phase = "extracting features" if mode == "frozen" else "caching activations"
    fit_seconds = epoch_ends[-1] - marks["fit:start"]
    peak = peak_mb()
    extra: dict[str, Any] = {}
    if before is not None:
        after = phase_extract(data)
        extra = {**after, "extract_before_s": before, "extract_after_s": after["extract_s"],
                 "extract_s": (before + after["extract_s"]) / 2}
    cache_seconds = marks.get(f"{cache_phase}:end", 0) - marks.get(f"{cache_phase}:start", 0)
    return {**extra, "peak_mb": peak, "total_s": total, "cache_s": cache_seconds,
            "scan_s": marks["scanning folder:end"] - started, "fit_s": fit_seconds,
            "epoch_s": fit_seconds / len(epoch_ends), "epochs": len(epoch_ends),
            "after_fit_s": started + total - epoch_ends[-1], "accuracy": result.metrics.get("accuracy"),
            "eval_set": result.metrics.get("eval_set"), "cached": cache_phase in {k.split(":")[0] for k in marks}}


def phase_extract(data: str) -> dict[str, Any]:
    """One feature-extraction pass over every image (the backbone built beforehand, not timed). Run in the
    frozen run's process just before and just after the run, and averaged: measured in separate processes,
    the figures drifted apart by up to 2x on a 2-core machine shared with other work."""
    from transferlab.core.data.folders import scan_folder
    from transferlab.core.models.backbones import resolve_backbone
    from transferlab.core.models.transfer import inference_function, run_once

    scan = scan_folder(data)
    forward = inference_function(resolve_backbone("efficientnet-lite0").build_extractor())
    started = time.perf_counter()
    features, _ = run_once(forward, scan.root, scan.items, SIZE)
    return {"extract_s": time.perf_counter() - started, "images": len(features)}


def phase_naive(data: str, mode: str, epochs: int, unfreeze: int) -> dict[str, Any]:
    """What a naive script does: extractor + head as one model, model.fit on the image pipeline."""
    import keras

    from transferlab.core.data.folders import make_dataset, scan_folder, split_items
    from transferlab.core.models.backbones import resolve_backbone
    from transferlab.core.models.transfer import build_head, compose

    keras.utils.set_random_seed(0)
    split = split_items(scan_folder(data), 0.2, 0.0, seed=0)
    backbone = resolve_backbone("efficientnet-lite0")
    extractor = backbone.build_extractor()
    if mode == "frozen":
        extractor.trainable = False
    else:
        backbone.set_trainable_top(extractor, unfreeze)
    model = compose(SIZE, [extractor], build_head(backbone.info.feature_dim, len(CLASSES), 0.2))
    model.compile(optimizer=keras.optimizers.Adam(1e-3 if mode == "frozen" else 1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train = make_dataset(split.root, split.train, SIZE, BATCH, shuffle=True, seed=0, cache=True)
    val = make_dataset(split.root, split.val, SIZE, BATCH, cache=True)
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter() - self.began)

    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=[Timer()], verbose=0)
    return {"epoch_times_s": times, "val_accuracy": float(history.history["val_accuracy"][-1]),
            "trainable_params": int(sum(w.numpy().size for w in model.trainable_weights)), "peak_mb": peak_mb()}


def child_main(args: argparse.Namespace) -> None:
    if args.child == "run":
        result = phase_run(args.data, args.runs, args.mode, args.epochs, args.unfreeze,
                           skip_extract=args.skip_extract == "True")
    else:
        result = phase_naive(args.data, args.mode, args.epochs, args.unfreeze)
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


def child(phase: str, out: Path, **options: Any) -> dict[str, Any]:
    result = out / f"{phase}-{options.get('mode', '')}.json"
    command = [sys.executable, __file__, "--child", phase, "--result", str(result)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    data = json.loads(result.read_text(encoding="utf-8"))
    data["process_s"] = time.perf_counter() - started
    print(f"  {phase} {options.get('mode', '')}: done in {data['process_s']:.0f} s", flush=True)
    return data


# ---- the benchmark ----

def make_images(root: Path, n: int) -> Path:
    from tests.core.imagefactory import make_class_folder

    per_class = {name: n // len(CLASSES) + (1 if i < n % len(CLASSES) else 0) for i, name in enumerate(CLASSES)}
    return make_class_folder(root, classes=per_class, size=SIZE, fmt="jpg", seed=0)


def extrapolate(times: list[float], epochs: int) -> tuple[float, bool]:
    """Total seconds for `epochs` epochs from the measured ones: the first epoch (decoding, tracing) as measured,
    the rest at the mean of the later ones (or of the first, when only one was run)."""
    if len(times) >= epochs:
        return sum(times[:epochs]), False
    steady = times[1:] or times
    return times[0] + (epochs - 1) * sum(steady) / len(steady), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--ft-epochs", type=int, default=None, help="fine-tuning epochs of the cached run "
                        "(default: --epochs)")
    parser.add_argument("--unfreeze", type=int, default=2)
    parser.add_argument("--naive-epochs", type=int, default=2, help="naive epochs actually run (then extrapolated)")
    parser.add_argument("--quick", action="store_true", help="200 images, 3 epochs, 2 fine-tuning epochs")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--child", choices=("run", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="frozen", help=argparse.SUPPRESS)
    parser.add_argument("--skip-extract", default="False", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    if args.quick:
        args.images, args.epochs, args.ft_epochs = 200, 3, 2
    args.ft_epochs = args.ft_epochs or args.epochs
    naive_epochs = max(1, min(args.naive_epochs, args.epochs))

    if args.images > 1000:
        scale(args)
        return
    with tempfile.TemporaryDirectory(prefix="transferlab-bench-") as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        data = str(make_images(out / "images", args.images))
        print(f"generated {args.images} JPEGs 224×224 in {len(CLASSES)} classes in "
              f"{time.perf_counter() - started:.1f} s; cpu cores: {os.cpu_count()}", flush=True)
        runs = str(out / "runs")
        # The first child converts the Lite0 weights into the npz cache (not timed); later ones read it.
        frozen = child("run", out, data=data, runs=runs, mode="frozen", epochs=args.epochs, unfreeze=0)
        naive = child("naive", out, data=data, mode="frozen", epochs=naive_epochs, unfreeze=0)
        tuned = child("run", out, data=data, runs=runs, mode="finetune", epochs=args.ft_epochs,
                      unfreeze=args.unfreeze)
        naive_ft = child("naive", out, data=data, mode="finetune", epochs=naive_epochs, unfreeze=args.unfreeze)

    naive_total, extrapolated = extrapolate(naive["epoch_times_s"], args.epochs)
    ft_times = naive_ft["epoch_times_s"]
    naive_ft_epoch = sum(ft_times[1:]) / len(ft_times[1:]) if len(ft_times) > 1 else ft_times[0]
    tuned_amortised = tuned["cache_s"] / tuned["epochs"] + tuned["epoch_s"]
    results = {
        "images": args.images, "epochs": args.epochs, "ft_epochs": args.ft_epochs, "unfreeze": args.unfreeze,
        "cpu_count": os.cpu_count(),
        "a_frozen_run_s": frozen["total_s"], "a_naive_frozen_s": naive_total,
        "a_naive_extrapolated": extrapolated, "a_naive_epochs_run": len(naive["epoch_times_s"]),
        "a_naive_epoch_times_s": naive["epoch_times_s"], "a_speedup": naive_total / frozen["total_s"],
        "c_extract_once_s": frozen["extract_s"], "c_run_over_extract": frozen["total_s"] / frozen["extract_s"],
        "c_run_over_its_own_extraction": frozen["total_s"] / frozen["cache_s"],
        "d_cached_epoch_s": tuned["epoch_s"], "d_cached_caching_s": tuned["cache_s"],
        "d_cached_amortised_epoch_s": tuned_amortised, "d_naive_epoch_s": naive_ft_epoch,
        "d_speedup_per_epoch": naive_ft_epoch / tuned["epoch_s"],
        "d_speedup_amortised": naive_ft_epoch / tuned_amortised,
        "frozen_run": frozen, "naive_frozen": naive, "finetune_run": tuned, "naive_finetune": naive_ft,
        "peak_mb": {"frozen_run": frozen["peak_mb"],
                    "naive_frozen": naive["peak_mb"], "finetune_cached_run": tuned["peak_mb"],
                    "naive_finetune": naive_ft["peak_mb"]},
    }
    report(results)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"\nJSON written to {args.json_out}")


def scale(args: argparse.Namespace) -> None:
    """Frozen and cached fine-tuned runs at 1,000 and args.images images, side by side."""
    sizes = (1000, args.images)
    ft_epochs = args.ft_epochs or 3
    results: dict[str, Any] = {"sizes": list(sizes), "unfreeze": args.unfreeze, "epochs": args.epochs,
                               "ft_epochs": ft_epochs, "cpu_count": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="transferlab-bench-") as tmp:
        out = Path(tmp)
        for n in sizes:
            started = time.perf_counter()
            data = str(make_images(out / f"images-{n}", n))
            print(f"generated {n} JPEGs 224×224 in {time.perf_counter() - started:.1f} s", flush=True)
            runs = str(out / f"runs-{n}")
            results["runs"][f"frozen-{n}"] = child("run", out, data=data, runs=runs, mode="frozen",
                                                   epochs=args.epochs, unfreeze=0, skip_extract=True)
            results["runs"][f"finetune-{n}"] = child("run", out, data=data, runs=runs, mode="finetune",
                                                     epochs=ft_epochs, unfreeze=args.unfreeze)
            shutil.rmtree(data, ignore_errors=True)
    print(f"\nscale: EfficientNet-Lite0, 224×224 JPEGs, batch {BATCH}, validation 20 %, {os.cpu_count()} cores")
    print(f"  {'run':<22} {'images':>7} {'caching img/s':>14} {'total s':>9} {'s per image':>12} "
          f"{'vs 1,000':>9} {'peak MB':>8}")
    for mode in ("frozen", "finetune"):
        base = results["runs"][f"{mode}-{sizes[0]}"]
        for n in sizes:
            run = results["runs"][f"{mode}-{n}"]
            per_image = run["total_s"] / n
            results["runs"][f"{mode}-{n}"]["per_image_vs_1000"] = per_image / (base["total_s"] / sizes[0])
            label = f"{mode}" + (f" top {args.unfreeze}, {ft_epochs} ep" if mode == "finetune" else
                                 f", {args.epochs} ep")
            print(f"  {label:<22} {n:>7} {n / run['cache_s']:>14.1f} {run['total_s']:>9.1f} {per_image:>12.4f} "
                  f"{run['per_image_vs_1000']:>9.2f} {run['peak_mb']:>8.0f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2), encoding="utf-8")


def report(r: dict[str, Any]) -> None:
    f, n, t, nf = r["frozen_run"], r["naive_frozen"], r["finetune_run"], r["naive_finetune"]
    print(f"\n{r['images']} images 224×224, batch {BATCH}, validation 20 %, EfficientNet-Lite0, "
          f"{r['cpu_count']} cores\n")
    rows = [
        ("(a) frozen run, run_training, cached features", f"{r['a_frozen_run_s']:.1f} s",
         f"{r['epochs']} epochs; extraction {f['cache_s']:.1f} s, fit {f['fit_s']:.1f} s, "
         f"{f['eval_set']} acc {f['accuracy']:.3f}"),
        ("    naive frozen end-to-end model.fit", f"{r['a_naive_frozen_s']:.1f} s",
         (f"EXTRAPOLATED from {r['a_naive_epochs_run']} measured epoch(s) "
          if r["a_naive_extrapolated"] else "measured ") + "(" + ", ".join(f"{s:.1f}" for s in
                                                                          n["epoch_times_s"]) + " s)"),
        ("    speed-up (target >= 7x)", f"{r['a_speedup']:.1f}x", ""),
        ("(c) one feature-extraction pass", f"{r['c_extract_once_s']:.1f} s",
         f"{r['images']} images, same process: mean of {f['extract_before_s']:.1f} s before and "
         f"{f['extract_after_s']:.1f} s after the run"),
        ("    whole frozen run / extraction pass", f"{r['c_run_over_extract']:.2f}x",
         f"target <= 1.3x (vs the run's own extraction phase: {r['c_run_over_its_own_extraction']:.2f}x; "
         f"the rest: scan {f['scan_s']:.1f} s, fit {f['fit_s']:.1f} s, evaluate + save {f['after_fit_s']:.1f} s)"),
        (f"(d) fine-tune top {r['unfreeze']}, cut-point cache, per epoch", f"{r['d_cached_epoch_s']:.1f} s",
         f"caching pass {t['cache_s']:.1f} s once; amortised over {t['epochs']} epochs "
         f"{r['d_cached_amortised_epoch_s']:.1f} s/epoch"),
        (f"    naive fine-tune top {r['unfreeze']}, per epoch", f"{r['d_naive_epoch_s']:.1f} s",
         "epochs measured: " + ", ".join(f"{s:.1f}" for s in nf["epoch_times_s"]) + " s"
         + (" (first one excluded: decoding, tracing)" if len(nf["epoch_times_s"]) > 1 else
            " (only the first: includes decoding and tracing)")),
        ("    speed-up per epoch (target >= 3x)", f"{r['d_speedup_per_epoch']:.1f}x",
         f"amortised {r['d_speedup_amortised']:.1f}x"),
    ]
    width = max(len(row[0]) for row in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>9}  {note}")
    print("\npeak memory (ru_maxrss of each phase's process):")
    for name, mb in r["peak_mb"].items():
        print(f"  {name:<22} {mb:8.0f} MB")
    print(f"naive frozen val accuracy {n['val_accuracy']:.3f}; naive fine-tune val accuracy "
          f"{nf['val_accuracy']:.3f}; cached fine-tune {t['eval_set']} accuracy {t['accuracy']:.3f}")


if __name__ == "__main__":
    main()
