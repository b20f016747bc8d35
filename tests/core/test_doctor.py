"""The data doctor on generated sets with planted problems: flipped labels, resized/re-encoded copies, a copy in
another class, a copy across a stored split; the embeddings cache; safe fixes on disk (move, exclude, undo).

A tiny TF Hub-format backbone (32×32 input, 32 features) keeps a check to a second or two."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.core.imagefactory import make_textured_folder, textured_image, write_image, write_truncated_jpeg
from transferlab.core.analysis.doctor import check_folder
from transferlab.core.data import fixes
from transferlab.core.data.folders import DataSplit, scan_folder
from transferlab.core.errors import DataError
from transferlab.core.models.hub_layer import write_tiny_hub_model

CLASSES = {"amber": 16, "bluebell": 16, "clover": 16}
FLIPS = {"bluebell/planted_flip_0.jpg": "amber", "clover/planted_flip_1.jpg": "amber",
         "amber/planted_flip_2.jpg": "clover"}


@pytest.fixture(scope="module")
def hub_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_hub_model(tmp_path_factory.mktemp("hub") / "tiny", feature_dim=32, image_size=32)


def _planted(root: Path) -> Path:
    """Clean classes + 3 flipped labels + a resized, re-encoded copy + a copy filed under another class."""
    make_textured_folder(root, CLASSES, seed=5)
    rng = np.random.default_rng(99)
    names = sorted(CLASSES)
    for path, true_class in FLIPS.items():
        write_image(root / path, textured_image(names.index(true_class), (48, 48), rng), quality=92)
    with Image.open(root / "clover" / "clover_0003.jpg") as original:
        original.resize((40, 40), Image.Resampling.BILINEAR).save(root / "clover" / "smaller copy.jpg", quality=70)
    shutil.copy(root / "amber" / "amber_0005.jpg", root / "bluebell" / "same as amber 5.jpg")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _planted(tmp_path_factory.mktemp("doctor") / "flowers")


@pytest.fixture(scope="module")
def report(planted: Path, hub_model: Path) -> dict:
    return check_folder(planted, str(hub_model))


@pytest.mark.slow
def test_planted_flipped_labels_rank_at_the_top_with_their_true_class(report: dict) -> None:
    top = {row["file"]: row for row in report["suspects"][:5]}
    assert set(FLIPS) <= set(top), [row["file"] for row in report["suspects"][:8]]
    for path, true_class in FLIPS.items():
        assert top[path]["suggested"] == true_class and top[path]["label"] == path.split("/")[0]
        assert top[path]["self_confidence"] < 0.5
    confidences = [row["self_confidence"] for row in report["suspects"]]
    assert confidences == sorted(confidences)
    json.dumps(report)  # plain data for the CLI and the GUI


def test_resized_reencoded_copy_and_label_conflict_are_found(report: dict) -> None:
    groups = {tuple(sorted(row["files"])): row for row in report["near_duplicates"]}
    resized = groups[("clover/clover_0003.jpg", "clover/smaller copy.jpg")]
    assert resized["kind"] == "within_class" and resized["classes"] == ["clover", "clover"]
    conflict = groups[("amber/amber_0005.jpg", "bluebell/same as amber 5.jpg")]
    assert conflict["kind"] == "across_classes" and sorted(conflict["classes"]) == ["amber", "bluebell"]
    assert len(groups) == 2  # distinct images are not near-duplicates


def test_classes_cv_learning_curve_and_unreadable_files(tmp_path: Path, hub_model: Path) -> None:
    root = make_textured_folder(tmp_path / "set", {"big": 30, "small": 12, "tiny": 4}, seed=2)
    write_truncated_jpeg(root / "big" / "broken.jpg")
    result = check_folder(root, str(hub_model))
    assert [(row["name"], row["images"], row["tiny"]) for row in result["classes"]] == [
        ("big", 30, False), ("small", 12, False), ("tiny", 4, True)]
    assert result["balance"]["tiny_classes"] == ["tiny"] and result["balance"]["largest_to_smallest"] == 7.5
    assert [row["file"] for row in result["unreadable"]] == ["big/broken.jpg"]
    cv = result["cv"]
    assert cv["folds"] == 4  # at most the smallest class's count
    assert len(cv["per_fold"]) == 4 and cv["accuracy_mean"] >= 0.8 and cv["text"].endswith("over 4 folds")
    curve = result["learning_curve"]
    assert [p["fraction"] for p in curve["points"]] == [0.1, 0.25, 0.5, 0.75, 1.0]
    assert all(0 <= p["accuracy_std"] <= 0.5 for p in curve["points"])
    assert set(curve["points"][-1]["recall"]) == {"big", "small", "tiny"}
    assert isinstance(curve["more_data_helps"], bool) and curve["reading"]


def test_cross_split_duplicate_is_reported_as_leakage(tmp_path: Path, hub_model: Path) -> None:
    root = make_textured_folder(tmp_path / "set", {"a": 8, "b": 8}, seed=3)
    with Image.open(root / "a" / "a_0001.jpg") as original:
        original.save(root / "a" / "reencoded.jpg", quality=60)
    scan = scan_folder(root)
    val = (("a/reencoded.jpg", 0), ("b/b_0001.jpg", 1))
    split = DataSplit(class_names=scan.class_names, train=tuple(i for i in scan.items if i not in val), val=val,
                      root=str(root))
    rows = check_folder(root, str(hub_model), split=split, with_curve=False)["near_duplicates"]
    assert len(rows) == 1
    assert rows[0]["kind"] == "across_splits" and sorted(rows[0]["files"]) == ["a/a_0001.jpg", "a/reencoded.jpg"]
    assert sorted(rows[0]["splits"]) == ["train", "val"]


def test_second_check_reuses_cached_embeddings(tmp_path: Path, hub_model: Path) -> None:
    root = make_textured_folder(tmp_path / "set", {"a": 6, "b": 6}, seed=4)
    first = check_folder(root, str(hub_model), with_curve=False)
    shutil.move(root / "a" / "a_0000.jpg", root / "b" / "moved.jpg")  # same content, new place: still cached
    write_image(root / "a" / "new.jpg", textured_image(0, (48, 48), np.random.default_rng(7)), quality=90)
    second = check_folder(root, str(hub_model), with_curve=False)
    assert first["embeddings"] == {"cached": 0, "computed": 12}
    assert second["embeddings"] == {"cached": 12, "computed": 1}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != fixes.JOURNAL_NAME}


def test_move_exclude_and_undo_restore_the_folder_exactly(tmp_path: Path) -> None:
    root = make_textured_folder(tmp_path / "set", {"a": 3, "b": 3}, seed=6)
    fixes.record_check(root, {p: fixes.content_hash(root / p) for p, _ in scan_folder(root).items})
    before = _tree(root)
    moved = fixes.move_file(root, "a/a_0001.jpg", "b")
    write_image(root / "b" / "a_0002.jpg", textured_image(1, (48, 48)), quality=90)  # a name clash ahead
    fixes.record_check(root, {p: fixes.content_hash(root / p) for p, _ in scan_folder(root).items})
    clash = fixes.move_file(root, "a/a_0002.jpg", "b")
    excluded = fixes.exclude_file(root, "b/b_0000.jpg")
    assert (moved["to"], clash["to"], excluded["to"]) == ("b/a_0001.jpg", "b/a_0002 (2).jpg",
                                                          "_excluded/b/b_0000.jpg")
    assert (root / "b" / "a_0002.jpg").read_bytes() == _tree(root)["b/a_0002.jpg"]  # never overwritten
    scan = scan_folder(root)
    assert scan.class_names == ("a", "b") and "_excluded/b/b_0000.jpg" not in dict(scan.items)
    assert [c["action"] for c in fixes.read_journal(root)["changes"]] == ["move", "move", "exclude"]
    for _ in range(3):
        fixes.undo_last(root)
    (root / "b" / "a_0002.jpg").unlink()  # the file this test added
    assert _tree(root) == before and not (root / "_excluded").exists()
    with pytest.raises(DataError, match="expected a change to undo"):
        fixes.undo_last(root)


@pytest.mark.parametrize("case", ["changed since the check", "outside the folder", "absolute", "unknown class",
                                  "never checked", "same class"])
def test_unsafe_fixes_are_refused_with_one_line(case: str, tmp_path: Path) -> None:
    root = make_textured_folder(tmp_path / "set", {"a": 2, "b": 2}, seed=8)
    outside = write_image(tmp_path / "outside.jpg", textured_image(0))
    fixes.record_check(root, {p: fixes.content_hash(root / p) for p, _ in scan_folder(root).items})
    before = {**_tree(root), "outside": outside.read_bytes()}
    file, target, expected = "a/a_0000.jpg", "b", ""
    if case == "changed since the check":
        (root / file).write_bytes((root / file).read_bytes() + b"\0")
        before = {**_tree(root), "outside": outside.read_bytes()}
        expected = "unchanged since the check"
    elif case == "outside the folder":
        file, expected = "../outside.jpg", "without '..'"
    elif case == "absolute":
        file, expected = str(outside), "without '..'"
    elif case == "unknown class":
        target, expected = "zebra", "expected one of the class folders a, b"
    elif case == "never checked":
        write_image(root / "a" / "new.jpg", textured_image(0))
        before = {**_tree(root), "outside": outside.read_bytes()}
        file, expected = "a/new.jpg", "seen by a data check first"
    else:
        target, expected = "a", "the class it is already in"
    with pytest.raises(DataError, match=expected) as info:
        fixes.move_file(root, file, target)
    assert "\n" not in str(info.value)
    assert {**_tree(root), "outside": outside.read_bytes()} == before
    assert fixes.read_journal(root)["changes"] == []


@pytest.mark.slow
def test_cli_doctor_json_then_move_and_undo(tmp_path: Path, hub_model: Path) -> None:
    root = _planted(tmp_path / "cli set")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "transferlab", "doctor", str(root), *args], env=env,
                              capture_output=True, text=True, timeout=300)

    checked = cli("--backbone", str(hub_model), "--json", "--no-curve")
    assert checked.returncode == 0, checked.stderr[-2000:]
    report = json.loads(checked.stdout.strip().splitlines()[-1])
    assert {"suspects", "near_duplicates", "classes", "learning_curve"} <= set(report)
    top = report["suspects"][0]
    assert set(top) >= {"file", "label", "suggested", "self_confidence"} and top["file"] in FLIPS
    assert {"files", "classes", "similarity", "kind"} <= set(report["near_duplicates"][0])

    moved = cli("--move", top["file"], top["suggested"], "--json")
    assert moved.returncode == 0, moved.stderr
    assert (root / json.loads(moved.stdout.splitlines()[-1])["to"]).is_file() and not (root / top["file"]).exists()
    undone = cli("--undo")
    assert undone.returncode == 0 and (root / top["file"]).is_file()
    bad = cli("--exclude", "../../etc/passwd")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "without '..'" in bad.stderr


@pytest.mark.slow
def test_a_frozen_run_after_a_check_reuses_its_features(tmp_path: Path, hub_model: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from transferlab.core.config import FitOptions, FolderConfig
    from transferlab.core.events import EventLog, PhaseProgress
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training

    root = make_textured_folder(tmp_path / "set", {"a": 8, "b": 8}, seed=11)
    config = FolderConfig(data_dir=str(root), backbone=str(hub_model),
                          fit=FitOptions(epochs=3, batch_size=8, validation_split=0.25))
    store = RunStore(tmp_path / "runs")
    monkeypatch.setenv("TRANSFERLAB_CACHE_DIR", str(tmp_path / "empty cache"))
    extracted = run_training(config, store=store)
    monkeypatch.setenv("TRANSFERLAB_CACHE_DIR", str(tmp_path / "cache"))
    check_folder(root, str(hub_model), with_curve=False)
    log = EventLog()
    reused = run_training(config, log, store=store)
    phases = {event.phase for event in log.of_type(PhaseProgress)}
    assert "extracting features" not in phases and "reusing the data check's features" in phases
    assert reused.metrics["accuracy"] == extracted.metrics["accuracy"]
    assert reused.metrics["loss"] == pytest.approx(extracted.metrics["loss"], rel=1e-4)


@pytest.mark.slow
def test_training_split_keeps_near_duplicates_on_one_side(tmp_path: Path, hub_model: Path) -> None:
    from transferlab.core.config import FitOptions, FolderConfig
    from transferlab.core.data.folders import keep_groups_together
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training

    root = make_textured_folder(tmp_path / "set", {"a": 10, "b": 10}, seed=12)
    for i in range(4):  # re-encoded copies: with a 50 % validation split, some pair would straddle it
        with Image.open(root / "a" / f"a_{i:04d}.jpg") as original:
            original.save(root / "a" / f"copy_{i}.jpg", quality=60)
    fit = FitOptions(epochs=2, batch_size=8, validation_split=0.5, seed=0)
    store = RunStore(tmp_path / "runs")
    result = run_training(FolderConfig(data_dir=str(root), backbone=str(hub_model), fit=fit), store=store)
    assert result.status == "finished", result.reason
    split = store.read_json(result.run_id, "split.json")
    part = {path: name for name in ("train", "val", "test") for path, _ in split[name]}
    for i in range(4):
        assert part[f"a/a_{i:04d}.jpg"] == part[f"a/copy_{i}.jpg"]
    summary = store.read_json(result.run_id, "summary.json")["data"]
    assert summary["near_duplicate_groups"] == 4 and summary["groups_kept_together"].startswith("4 near-duplicate")

    straddling = DataSplit(class_names=("a",), train=(("x.jpg", 0),), val=(("y.jpg", 0), ("z.jpg", 0)))
    kept, moved = keep_groups_together(straddling, [["x.jpg", "y.jpg"]])
    assert moved == 1 and kept.train == (("x.jpg", 0), ("y.jpg", 0)) and kept.val == (("z.jpg", 0),)


def test_near_duplicate_pairs_compared_in_blocks_match_the_whole_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pairwise comparison runs PAIR_BLOCK rows at a time (memory O(block × n), not n × n): groups that
    straddle block boundaries come out as when everything is compared at once, by brute force here."""
    from transferlab.core.analysis import duplicates

    rng = np.random.default_rng(0)
    n = 60
    hashes = rng.integers(1, 2**63, n, dtype=np.uint64)
    embeddings = rng.normal(size=(n, 16)).astype(np.float32)
    for a, b in ((0, 59), (3, 31), (31, 45), (12, 13)):  # planted pairs; 3-31-45 is one group of three
        hashes[b] = hashes[a] ^ np.uint64(0b101)  # 2 bits apart
        embeddings[b] = embeddings[a] + 0.01
    hashes[20] = 0  # an unreadable image links to nothing
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    bits = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    expected = (bits <= duplicates.HASH_MAX_BITS) & (unit @ unit.T >= duplicates.COSINE_MIN)
    expected &= (hashes != 0)[:, None] & (hashes != 0)[None, :]
    expected_pairs = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(expected, 1)), strict=True)}
    monkeypatch.setattr(duplicates, "PAIR_BLOCK", 7)
    rows, cols, similarity, bits = duplicates.linked_pairs(hashes, unit, duplicates.HASH_MAX_BITS,
                                                           duplicates.COSINE_MIN)
    assert np.all(bits <= 2) and np.all(similarity > 0.99)  # each pair carries its own link strength
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == expected_pairs
    assert {(0, 59), (3, 31), (31, 45), (12, 13)} <= expected_pairs
    groups = duplicates.near_duplicate_groups(hashes, embeddings)
    assert [g.members for g in groups] == [(3, 31, 45), (0, 59), (12, 13)]
    assert all(g.hash_bits == 2 and g.similarity > 0.99 for g in groups)


def test_head_fits_in_parallel_threads_give_the_sequential_results() -> None:
    """The cross-validation and learning-curve fits run two at a time; each must equal a fit made alone."""
    from transferlab.core.analysis.crossval import learning_curve, make_head, out_of_fold

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 60)
    features = (rng.normal(size=(180, 16)) + labels[:, None] * 0.8).astype(np.float32)
    probabilities, fold_of = out_of_fold(features, labels, folds=5, seed=3)
    for k in range(5):
        test = fold_of == k
        head = make_head(3).fit(features[~test], labels[~test])
        np.testing.assert_allclose(probabilities[test], head.predict_proba(features[test]), atol=1e-9)
    assert 0.6 < float(np.mean(probabilities.argmax(1) == labels)) < 1.0  # learned, not trivially
    curve = learning_curve(features, labels, ["a", "b", "c"])
    assert [p["fraction"] for p in curve["points"]] == [0.1, 0.25, 0.5, 0.75, 1.0]
    assert curve == learning_curve(features, labels, ["a", "b", "c"])  # the same whatever thread ran first
