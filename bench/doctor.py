"""Benchmark: the data doctor on a generated set with planted problems, against one feature-extraction pass.

    python bench/doctor.py [--images 1000] [--flips 0.05] [--duplicates 0.03] [--backbone efficientnet-lite0]
                           [--quick] [--json-out bench-doctor.json]

Generates N 224×224 JPEGs in 5 classes (tests/core/imagefactory.textured_image: each class its own colour, each
image its own texture) in a temp folder, then plants
  - flipped labels: a fraction --flips of the images is an image of another class filed under the wrong one;
  - near-duplicates: for a fraction --duplicates of the images, a resized (80 %, JPEG q70) copy in the same class
    and, for every third one, a re-encoded (JPEG q60) copy filed under another class (a label conflict).
Then, in one process, side by side:
  (1) one feature-extraction pass over every image (backbone built beforehand, not timed), as a frozen run does;
  (2) the doctor's first check (empty embeddings cache: it computes the embeddings itself, builds the backbone);
  (3) a second check (cache warm: the "after a fix" case);
  (4) a frozen run with 5-fold cross-validation (`train folder --cv 5`; its own empty cache, so it extracts):
      the cross-validation's share of the run (target <= 20 %).
Reports: precision of the planted flipped labels in the top-k suspects (k = the number planted), recall of the
planted near-duplicate pairs (both files in one reported group) and the number of reported groups that are not
planted, (2) / (1) (target <= 1.5) and (3) / (1) (target <= 0.10). The cache lives in a temp folder, so other
benchmarks never see it. `--quick` = 200 images.
"""

from __future__ import annotations

import argparse
import json
import os
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


def make_planted(root: Path, n: int, flips: float, duplicates: float, seed: int = 0) -> dict[str, Any]:
    """The data set and what was planted: {"flips": {file: true class}, "pairs": [(a, b)], "images"}."""
    import numpy as np
    from PIL import Image

    from tests.core.imagefactory import textured_image, write_image

    rng = np.random.default_rng(seed)
    per_class = n // len(CLASSES)
    n_flips = round(n * flips)
    planted: dict[str, Any] = {"flips": {}, "pairs": []}
    for k, name in enumerate(CLASSES):
        for i in range(per_class):
            write_image(root / name / f"{name}_{i:04d}.jpg", textured_image(k, SIZE, rng), quality=90)
    for j in range(n_flips):
        true, wrong = j % len(CLASSES), (j + 1 + j // len(CLASSES)) % len(CLASSES)
        if wrong == true:
            wrong = (wrong + 1) % len(CLASSES)
        path = f"{CLASSES[wrong]}/flipped_{j:04d}.jpg"
        write_image(root / path, textured_image(true, SIZE, rng), quality=90)
        planted["flips"][path] = CLASSES[true]
    for j in range(round(n * duplicates)):
        k = j % len(CLASSES)
        original = f"{CLASSES[k]}/{CLASSES[k]}_{j // len(CLASSES):04d}.jpg"
        with Image.open(root / original) as image:
            copy = f"{CLASSES[k]}/resized_{j:04d}.jpg"
            image.resize((SIZE[1] * 4 // 5, SIZE[0] * 4 // 5), Image.Resampling.BILINEAR).save(root / copy, quality=70)
            planted["pairs"].append((original, copy))
            if j % 3 == 0:
                other = f"{CLASSES[(k + 2) % len(CLASSES)]}/reencoded_{j:04d}.jpg"
                image.save(root / other, quality=60)
                planted["pairs"].append((original, other))
    planted["images"] = sum(1 for _ in root.rglob("*.jpg"))
    return planted


def extraction_pass(data: Path, backbone: str) -> float:
    from transferlab.core.data.folders import scan_folder
    from transferlab.core.models.backbones import resolve_backbone
    from transferlab.core.models.transfer import inference_function, run_once

    scan = scan_folder(data)
    info = resolve_backbone(backbone)
    forward = inference_function(info.build_extractor())
    size = (int(info.info.input_size[0]), int(info.info.input_size[1]))
    started = time.perf_counter()
    run_once(forward, scan.root, scan.items, size)
    return time.perf_counter() - started


def frozen_run_with_cv(data: Path, backbone: str, tmp: Path) -> dict[str, Any]:
    """A default frozen run with 5-fold cross-validation, in an empty cache (so it extracts, as a first run)."""
    from transferlab.core.config import FolderConfig
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training

    os.environ["TRANSFERLAB_CACHE_DIR"] = str(tmp / "empty cache")
    started = time.perf_counter()
    result = run_training(FolderConfig(data_dir=str(data), backbone=backbone, cv_folds=5), store=RunStore(tmp / "runs"))
    total = time.perf_counter() - started
    cv = result.metrics.get("cv") or {}
    return {"status": result.status, "run_s": total, "cv_s": cv.get("seconds"), "epochs": len(result.history),
            "accuracy": result.metrics.get("accuracy"), "cv": cv.get("text")}


def score(report: dict[str, Any], planted: dict[str, Any]) -> dict[str, Any]:
    k = len(planted["flips"])
    top = report["suspects"][:k]
    hits = [row for row in top if row["file"] in planted["flips"]]
    right_class = [row for row in hits if row["suggested"] == planted["flips"][row["file"]]]
    groups = [set(row["files"]) for row in report["near_duplicates"]]
    found = [pair for pair in planted["pairs"] if any(set(pair) <= group for group in groups)]
    planted_files = {f for pair in planted["pairs"] for f in pair}
    unplanted = [group for group in groups if not group <= planted_files]
    return {"flips_planted": k, "flip_precision_at_k": len(hits) / k if k else None,
            "flip_suggestion_right": len(right_class) / len(hits) if hits else None,
            "pairs_planted": len(planted["pairs"]), "pair_recall": len(found) / len(planted["pairs"])
            if planted["pairs"] else None, "groups_reported": len(groups), "groups_not_planted": len(unplanted)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--flips", type=float, default=0.05)
    parser.add_argument("--duplicates", type=float, default=0.03)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json-out")
    parser.add_argument("--skip-cv-run", action="store_true", help="leave out (4)")
    args = parser.parse_args(argv)
    n = 200 if args.quick else args.images
    with tempfile.TemporaryDirectory(prefix="transferlab-bench-doctor-") as tmp:
        os.environ["TRANSFERLAB_CACHE_DIR"] = str(Path(tmp) / "cache")  # never the user's cache
        data = Path(tmp) / "data"
        planted = make_planted(data, n, args.flips, args.duplicates)
        print(f"{planted['images']} images, {len(planted['flips'])} flipped labels, "
              f"{len(planted['pairs'])} near-duplicate pairs planted", flush=True)
        from transferlab.core.analysis.doctor import check_folder

        extract_s = extraction_pass(data, args.backbone)
        started = time.perf_counter()
        first = check_folder(data, args.backbone)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = check_folder(data, args.backbone)
        second_s = time.perf_counter() - started
        cv_run = None if args.skip_cv_run else frozen_run_with_cv(data, args.backbone, Path(tmp))
    quality = score(first, planted)
    result = {"images": planted["images"], "extract_s": extract_s, "first_check_s": first_s,
              "second_check_s": second_s, "first_over_extract": first_s / extract_s,
              "second_over_extract": second_s / extract_s, "first_phases_s": first["seconds"],
              "second_phases_s": second["seconds"], "cv": first["cv"]["text"] if first["cv"] else None, **quality}
    rows = [
        ("one feature-extraction pass", f"{extract_s:.1f} s", ""),
        ("doctor, first check (computes embeddings)", f"{first_s:.1f} s = {first_s / extract_s:.2f}× extraction",
         "<= 1.5×: " + ("met" if first_s <= 1.5 * extract_s else "NOT met")),
        ("doctor, second check (cached)", f"{second_s:.1f} s = {second_s / extract_s:.1%} of extraction",
         "<= 10 %: " + ("met" if second_s <= 0.10 * extract_s else "NOT met")),
        (f"flipped labels in the top {quality['flips_planted']}", f"precision {quality['flip_precision_at_k']:.0%}"
         + (f", true class suggested for {quality['flip_suggestion_right']:.0%}"
            if quality["flip_suggestion_right"] is not None else ""), ""),
        ("planted near-duplicate pairs found", f"recall {quality['pair_recall']:.0%} "
         f"({quality['groups_not_planted']} unplanted groups of {quality['groups_reported']})", ""),
        ("cross-validated head on the embeddings", result["cv"] or "-", ""),
    ]
    if cv_run and cv_run["cv_s"] is not None:
        share = cv_run["cv_s"] / (cv_run["run_s"] - cv_run["cv_s"])
        result["cv_run"] = {**cv_run, "cv_over_rest_of_run": share}
        rows.append(("frozen run with --cv 5: cross-validation / the rest of the run",
                     f"{cv_run['cv_s']:.2f} s / {cv_run['run_s'] - cv_run['cv_s']:.1f} s = {share:.1%} "
                     f"({cv_run['epochs']} epochs, {cv_run['cv']})",
                     "<= 20 %: " + ("met" if share <= 0.2 else "NOT met")))
    print("\n| measurement | figure | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nfirst check phases (s): {first['seconds']}\nsecond check phases (s): {second['seconds']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
