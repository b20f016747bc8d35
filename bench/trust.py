"""Trust features, warm, bundled EfficientNet-Lite0: what the unknown check adds per image (target <= 10 ms) and
classify-with-heatmap per image (target <= 300 ms), side by side with plain classification in one run.

    python bench/trust.py [--images 20] [--repeats 3]

A frozen run is trained on a small generated folder (2 classes, 16 images each: a small object on a plain
background) in a temporary run store; then, with every model loaded and traced (warm), each image file is
classified one at a time (as a drop on the window does), the contenders taking turns image by image:
    plain       Classifier(trust=False).classify([file])      calibration off, no unknown check
    trusted     Classifier().classify([file])                 calibrated, unknown check (kNN + confidence)
    heatmap     Explainer(Classifier()).classify_with_heatmap([file])   trusted + CAM overlay data
and the median ms per image of each is printed, with the differences, and the unknown check's own work (kNN
distance to the stored training embeddings + thresholds; it shares the classifying forward pass) timed alone.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image, ImageDraw

from transferlab.core.analysis.ood import BANK_SIZE, normalise
from transferlab.core.config import FitOptions, FolderConfig
from transferlab.core.deploy.explain import Explainer
from transferlab.core.deploy.predict import Classifier
from transferlab.core.runs.store import RunStore
from transferlab.core.training.loop import run_training


def object_image(rng: np.random.Generator, class_index: int, size: int = 224, side: int = 48) -> Image.Image:
    image = Image.new("RGB", (size, size), (200, 200, 200))
    top, left = (int(v) for v in rng.integers(0, size - side, 2))
    draw = ImageDraw.Draw(image)
    colour = (220, 30, 30) if class_index == 0 else (30, 40, 220)
    if class_index == 0:
        draw.ellipse((left, top, left + side, top + side), fill=colour)
    else:
        draw.rectangle((left + side // 3, top, left + 2 * side // 3, top + side), fill=colour)
        draw.rectangle((left, top + side // 3, left + side, top + 2 * side // 3), fill=colour)
    return image


def make_folder(root: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for class_index, name in enumerate(("disc", "cross")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            object_image(rng, class_index).save(root / name / f"{i}.jpg", quality=90)


def interleaved_ms(contenders: dict, paths: list[Path], repeats: int) -> dict[str, list[float]]:
    """ms per image of each contender, taking turns image by image (rotating who goes first), so that a
    loaded machine slows all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        for i, path in enumerate(paths):
            shift = (repeat + i) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                contenders[name]([path])
                times[name].append(1000 * (time.perf_counter() - started))
    return times


def unknown_check_ms(classifier: Classifier, rounds: int = 200) -> float:
    """The check's own work per image, the forward pass being shared: kNN distance + thresholds."""
    embedding = np.random.default_rng(0).normal(size=(1, classifier.trust.bank.shape[1])).astype(np.float32)
    started = time.perf_counter()
    for _ in range(rounds):
        distance = classifier.trust.distances(embedding)
        classifier.trust.judge(0.5, None if distance is None else float(distance[0]))
    return 1000 * (time.perf_counter() - started) / rounds


def full_bank_ms(classifier: Classifier) -> float:
    """The same with a full-size bank (BANK_SIZE training embeddings), as a run on a big folder stores."""
    trust = classifier.trust
    small = trust.bank
    rng = np.random.default_rng(1)
    trust.bank = normalise(rng.uniform(0, 1, (BANK_SIZE, small.shape[1]))).astype(np.float16).astype(np.float32)
    try:
        return unknown_check_ms(classifier)
    finally:
        trust.bank = small


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="transferlab-bench-trust-") as folder:
        root = Path(folder)
        make_folder(root / "data", per_class=16, seed=0)
        store = RunStore(root / "home" / "runs")
        result = run_training(FolderConfig(data_dir=str(root / "data"), fit=FitOptions(
            epochs=20, batch_size=8, learning_rate=1e-2, validation_split=0.25, seed=1)), store=store)
        if result.status != "finished":
            print(f"training failed: {result.reason}", file=sys.stderr)
            return 1
        rng = np.random.default_rng(99)
        paths = []
        for i in range(args.images):
            paths.append(root / f"drop{i}.jpg")
            object_image(rng, i % 2).save(paths[-1], quality=90)
        plain = Classifier(result.run_id, store, trust=False)
        trusted = Classifier(result.run_id, store)
        explainer = Explainer(Classifier(result.run_id, store))
        contenders = {"plain": plain.classify, "trusted": trusted.classify,
                      "heatmap": explainer.classify_with_heatmap}
        for fn in contenders.values():  # warm: load, trace, first-call costs
            fn(paths[:2])
        times = interleaved_ms(contenders, paths, args.repeats)
        median = {name: statistics.median(values) for name, values in times.items()}
        bank = trusted.trust.bank
        report = {
            "method": explainer.method, "images": args.images, "repeats": args.repeats,
            "bank_size": 0 if bank is None else len(bank),
            "median_ms_per_image": {name: round(value, 1) for name, value in median.items()},
            "unknown_check_adds_ms": round(median["trusted"] - median["plain"], 1),
            "unknown_check_own_ms": round(unknown_check_ms(trusted), 3),
            "unknown_check_own_ms_full_bank": round(full_bank_ms(trusted), 3),
            "heatmap_adds_ms_over_trusted": round(median["heatmap"] - median["trusted"], 1),
            "targets": {"unknown_check_adds_ms": 10, "heatmap_ms_per_image": 300},
        }
    print(f"{'':10}{'ms/image':>10}")
    for name, value in median.items():
        print(f"{name:10}{value:10.1f}")
    print(f"unknown check adds {report['unknown_check_adds_ms']:.1f} ms/image end to end, its own work "
          f"{report['unknown_check_own_ms']:.2f} ms ({report['unknown_check_own_ms_full_bank']:.2f} ms with a "
          f"{BANK_SIZE}-image bank) (target <= 10); classify with a "
          f"{report['method']} heatmap {median['heatmap']:.1f} ms/image (target <= 300)")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
