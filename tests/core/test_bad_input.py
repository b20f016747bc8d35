"""Bad input is refused before a run exists: one line on stderr, exit 2, nothing added to the run store.

One table row per kind of bad input (the test ids name the kinds). Every row runs the real command line
(`core.cli.main`) on generated folders and crafted runs; none needs TensorFlow to refuse, because the checks
(core.preflight) run before it is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.core.imagefactory import add_broken_files, make_class_folder
from transferlab.core.cli import main
from transferlab.core.config import FolderConfig, MnistConfig
from transferlab.core.errors import ConfigError, DataError, ModelError, RunStoreError
from transferlab.core.runs.store import RunStore
from transferlab.core.training import preflight


@dataclass
class Env:
    """What a row can use: a fresh run store (TRANSFERLAB_HOME), a good data folder, a scratch folder."""

    tmp: Path
    home: Path
    data: Path
    mounts: list[Path] = field(default_factory=list)  # file systems mounted for the row, unmounted after it
    unreadable: Path | None = None  # a folder whose listing fails during the row

    @property
    def store(self) -> RunStore:
        return RunStore(self.home / "runs")

    def folder(self, name: str, classes: dict[str, int]) -> Path:
        return make_class_folder(self.tmp / name, classes=classes, size=(16, 16))

    def crafted_run(self, config: MnistConfig | FolderConfig, model_info: dict | None = None,
                    model: bool = False) -> str:
        """A stored run made without training: the files the checks read."""
        run = self.store.create(config)
        self.store.set_status(run.run_id, "finished")
        if model_info is not None:
            self.store.write_json(run.run_id, "model_info.json", model_info)
        if model:
            (run.path / "model.keras").write_bytes(b"a model file")
        return run.run_id


@dataclass(frozen=True)
class Case:
    kind: str
    argv: Callable[[Env], list[str]]
    message: str  # a phrase the one line on stderr must contain


def _train(env: Env, *options: str, data: Path | None = None) -> list[str]:
    return ["train", "folder", str(data or env.data), *options]


def _init_from(env: Env, classes: list[str], backbone: str = "efficientnet-lite0", model: bool = True) -> list[str]:
    """Fine-tune from a crafted frozen run with these classes and backbone (and a model file, or none)."""
    run = env.crafted_run(FolderConfig(data_dir="elsewhere"), model_info={"class_names": classes,
                                                                          "backbone": backbone}, model=model)
    return _train(env, "--mode", "finetune", "--init-from", run)


def _read_only_folder(env: Env) -> Path:
    """A folder on a read-only file system (a tmpfs mounted read-only); skips where mounting is not allowed."""
    folder = env.tmp / "read-only"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(folder)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("needs a read-only file system: mounting a tmpfs is not allowed here")
    env.mounts.append(folder)
    return folder


def _unreadable_class(env: Env) -> list[str]:
    """A class folder whose listing fails (as without read permission; chmod does not stop root, so the
    failure is made where the folder is listed)."""
    data = env.folder("locked", {"cat": 3, "dog": 3, "owl": 3})
    env.unreadable = data / "owl"
    return _train(env, data=data)


CASES = [
    # ---- the data folder ----
    Case("missing-folder", lambda env: _train(env, data=env.tmp / "no such folder"), "got no such folder"),
    Case("file-instead-of-folder", lambda env: _train(env, data=env.data / "cat" / "cat_0000.jpg"), "got a file"),
    Case("no-class-folders", lambda env: _train(env, data=env.folder("flat", {"cat": 2}) / "cat"),
         "got no subfolders"),
    Case("one-class", lambda env: _train(env, data=env.folder("single", {"cat": 4})),
         "expected at least 2 class folders with usable images"),
    Case("empty-class-folder", lambda env: (env.folder("holey", {"cat": 3, "dog": 3}) / "owl").mkdir()
         or _train(env, data=env.tmp / "holey"), "got none in owl"),
    Case("class-of-broken-files", lambda env: add_broken_files(env.folder("broken", {"cat": 3, "dog": 3}) / "owl")
         and _train(env, data=env.tmp / "broken"), "got none in owl (6 unusable files)"),
    Case("unreadable-class-folder", _unreadable_class, "1 that cannot be read: owl (unreadable folder"),
    Case("val-dir-missing", lambda env: _train(env, "--val-dir", str(env.tmp / "nope")),
         "expected the validation folder (--val-dir)"),
    Case("val-dir-other-classes", lambda env: _train(env, "--val-dir", str(env.folder("val", {"ant": 2, "bee": 2}))),
         "expected the same class folders"),
    # ---- the backbone ----
    Case("unknown-backbone-name", lambda env: _train(env, "--backbone", "resnet50"),
         "neither a bundled backbone nor an existing folder"),
    Case("backbone-path-missing", lambda env: _train(env, "--backbone", str(env.tmp / "models" / "gone")),
         "which does not exist"),
    Case("backbone-folder-not-savedmodel", lambda env: _train(env, "--backbone", str(env.data)),
         "which is a folder without saved_model.pb"),
    Case("backbone-is-a-file", lambda env: _train(env, "--backbone", str(env.data / "cat" / "cat_0000.jpg")),
         "which is a file"),
    Case("url-with-space", lambda env: _train(env, "--backbone", "https://tfhub.dev/google/my model/1"),
         "expected a URL without spaces"),
    Case("url-without-host", lambda env: _train(env, "--backbone", "https:///feature_vector/5"),
         "with a host name"),
    Case("url-bad-port", lambda env: _train(env, "--backbone", "https://tfhub.dev:port/x"),
         "expected a well-formed https URL"),
    Case("url-other-scheme", lambda env: _train(env, "--backbone", "ftp://example.com/model"),
         "expected an https:// URL"),
    # ---- numbers ----
    Case("fractions-add-up-to-1", lambda env: _train(env, "--val-split", "0.5", "--test-split", "0.5"),
         "validation_split + test_split: expected less than 1"),
    Case("val-split-above-1", lambda env: _train(env, "--val-split", "1.5"), "validation_split: expected a fraction"),
    Case("test-split-negative", lambda env: _train(env, "--test-split", "-0.1"), "test_split: expected a fraction"),
    Case("unfreeze-beyond-blocks", lambda env: _train(env, "--mode", "finetune", "--unfreeze", "18"),
         "unfreeze: expected 0..17 or 'all' for efficientnet-lite0"),
    Case("unfreeze-beyond-blocks-compare", lambda env: ["compare", str(env.data), "--unfreeze", "40"],
         "unfreeze: expected 0..17"),
    Case("unfreeze-negative", lambda env: _train(env, "--mode", "finetune", "--unfreeze", "-1"),
         "unfreeze: expected an integer >= 0 or 'all', got -1"),
    Case("unfreeze-not-a-number", lambda env: _train(env, "--unfreeze", "lots"),
         "--unfreeze: expected an integer or 'all', got 'lots'"),
    Case("negative-seed", lambda env: _train(env, "--seed", "-1"), "seed: expected an integer in 0..4294967295"),
    Case("huge-seed", lambda env: _train(env, "--seed", str(2**32)), "seed: expected an integer in 0..4294967295"),
    Case("seed-not-a-number", lambda env: _train(env, "--seed", "1e3"), "argument --seed: invalid int value"),
    Case("mnist-negative-seed", lambda env: ["train", "mnist", "--seed", "-5"], "seed: expected an integer"),
    Case("zero-epochs", lambda env: _train(env, "--epochs", "0"), "epochs: expected an integer >= 1"),
    Case("zero-batch-size", lambda env: _train(env, "--batch-size", "0"), "batch_size: expected an integer >= 1"),
    Case("negative-learning-rate", lambda env: _train(env, "--learning-rate", "-0.1"),
         "learning_rate: expected a number in (0, 10)"),
    Case("unknown-option-value", lambda env: _train(env, "--mode", "defrost"), "argument --mode: invalid choice"),
    # ---- other runs ----
    Case("unknown-split-from", lambda env: _train(env, "--split-from", "no-such-run"), "(no such run in"),
    Case("unknown-init-from", lambda env: _train(env, "--mode", "finetune", "--init-from", "no-such-run"),
         "(no such run in"),
    Case("split-from-run-without-split", lambda env: _train(env, "--split-from", env.crafted_run(MnistConfig())),
         "split_from_run: expected a folder run with split.json"),
    Case("init-from-run-without-model", lambda env: _init_from(env, ["cat", "dog"], model=False),
         "expected a trained model in run"),
    Case("init-from-run-with-other-classes", lambda env: _init_from(env, ["ant", "bee"]),
         "init_from_run: expected a run with the classes cat, dog, got run"),
    Case("init-from-run-with-other-backbone", lambda env: _init_from(env, ["cat", "dog"], backbone="/a/hub/model"),
         "init_from_run: expected a run with the backbone efficientnet-lite0"),
    # ---- the run store ----
    Case("runs-dir-is-a-file", lambda env: ["--runs-dir", str(env.data / "cat" / "cat_0000.jpg"), *_train(env)],
         "expected a folder for the run store"),
    Case("runs-dir-is-a-file-list", lambda env: ["--runs-dir", str(env.data / "cat" / "cat_0000.jpg"), "runs",
                                                 "list"], "expected a folder for the run store"),
    Case("runs-dir-read-only", lambda env: ["--runs-dir", str(_read_only_folder(env)), *_train(env)],
         "expected a writable run store"),
    # ---- commands on stored runs ----
    Case("predict-unknown-run", lambda env: ["predict", "no-such-run", str(env.data / "cat" / "cat_0000.jpg")],
         "expected a run id"),
    Case("predict-top-k-zero", lambda env: ["predict", "latest", "x.png", "--top-k", "0"],
         "--top-k: expected an integer >= 1"),
    Case("evaluate-unknown-run", lambda env: ["evaluate", "no-such-run"], "expected a run id"),
    Case("export-unknown-run", lambda env: ["export", "no-such-run"], "expected a run id"),
    Case("export-unknown-format", lambda env: ["export", "latest", "--format", "onnx"],
         "argument --format: invalid choice: 'onnx'"),
]


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    home = tmp_path / "home"
    monkeypatch.setenv("TRANSFERLAB_HOME", str(home))
    result = Env(tmp=tmp_path, home=home, data=make_class_folder(tmp_path / "data", {"cat": 4, "dog": 4},
                                                                 size=(16, 16)))
    yield result
    for folder in result.mounts:
        subprocess.run(["umount", str(folder)], check=False)


def _fail_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    real = os.scandir

    def scandir(path: os.PathLike[str] | str = ".") -> os.ScandirIterator:  # type: ignore[type-arg]
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def _contents(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_bad_input_is_refused_before_a_run_exists(case: Case, env: Env, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = case.argv(env)
    if env.unreadable is not None:
        _fail_listing(monkeypatch, env.unreadable)
    store_before, data_before = _contents(env.home), _contents(env.data)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses before main's own handling
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert case.message in err, err
    assert "Traceback" not in err
    assert _contents(env.home) == store_before  # no run, no half-made run folder
    assert _contents(env.data) == data_before


def test_the_table_covers_the_kinds_the_issue_names() -> None:
    kinds = {case.kind for case in CASES}
    assert len(kinds) == len(CASES)
    for kind in ("missing-folder", "file-instead-of-folder", "one-class", "empty-class-folder",
                 "unreadable-class-folder", "unknown-backbone-name", "backbone-folder-not-savedmodel",
                 "fractions-add-up-to-1", "unfreeze-beyond-blocks", "unknown-split-from", "unknown-init-from",
                 "negative-seed", "huge-seed", "url-with-space", "runs-dir-is-a-file", "runs-dir-read-only"):
        assert kind in kinds


# ---- the same checks from the engine (what the GUI calls) ----

@pytest.mark.parametrize(("kind", "changes", "error"), [
    ("missing-folder", {"data_dir": "/no/such/folder"}, DataError),
    ("unknown-backbone", {"backbone": "resnet50"}, ModelError),
    ("url-with-space", {"backbone": "https://example.com/a model"}, ModelError),
    ("unfreeze-beyond-blocks", {"mode": "finetune", "unfreeze": 99}, ConfigError),
    ("unknown-split-from", {"split_from_run": "nope"}, RunStoreError),
])
def test_run_training_and_compare_refuse_before_creating_a_run(kind: str, changes: dict, error: type,
                                                               env: Env) -> None:
    from transferlab.core.training.compare import compare_frozen_finetune
    from transferlab.core.training.loop import run_training

    config = FolderConfig(**{"data_dir": str(env.data), **changes})
    with pytest.raises(error) as info:
        run_training(config, store=env.store)
    assert "\n" not in str(info.value)
    with pytest.raises(error):
        compare_frozen_finetune(config, store=env.store)
    assert not env.store.root.exists() or not any(env.store.root.iterdir())


def test_an_unwritable_store_is_found_without_creating_anything(env: Env) -> None:
    blocker = env.tmp / "a file"
    blocker.write_text("mine")
    with pytest.raises(RunStoreError, match="which is a file"):
        preflight.check_store_writable(blocker / "deeper" / "runs")
    preflight.check_store_writable(env.tmp / "new" / "runs")  # creatable: fine, and not created by checking
    assert not (env.tmp / "new").exists() and blocker.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder whatever its permissions (the listing "
                    "failure is simulated in the table instead)")
def test_a_class_folder_without_permission_is_reported_not_trained_as_empty(env: Env) -> None:
    data = env.folder("perm", {"cat": 3, "dog": 3, "owl": 3})
    (data / "owl").chmod(0)
    try:
        with pytest.raises(DataError, match="cannot be read: owl"):
            preflight.check_run(FolderConfig(data_dir=str(data)), env.store)
    finally:
        (data / "owl").chmod(0o755)


def test_an_unreadable_subfolder_is_skipped_and_reported(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_class_folder(env.tmp / "nested", {"cat": 4, "dog": 4}, size=(16, 16), nested=2)
    _fail_listing(monkeypatch, data / "dog" / "sub")
    checked = preflight.check_run(FolderConfig(data_dir=str(data)), env.store)
    assert checked.scan is not None and checked.scan.counts == (4, 2)
    [entry] = checked.scan.summary()["unreadable"]
    assert entry["path"] == "dog/sub/" and "Permission denied" in entry["reason"]


def test_skip_empty_classes_leaves_them_out_and_renumbers(env: Env) -> None:
    data = env.folder("gaps", {"ant": 3, "cat": 3, "dog": 3})
    (data / "bee").mkdir()
    add_broken_files(data / "emu")
    config = FolderConfig(data_dir=str(data), skip_empty_classes=True)
    checked = preflight.check_run(config, env.store)
    assert checked.scan is not None
    assert checked.scan.class_names == ("ant", "cat", "dog") and checked.scan.counts == (3, 3, 3)
    assert {label for _, label in checked.scan.items} == {0, 1, 2}
    assert checked.scan.items[3] == ("cat/cat_0000.jpg", 1)
    assert checked.scan.summary()["empty_classes"] == ["bee", "emu"]
    with pytest.raises(DataError, match=r"got none in bee, emu \(6 unusable files\)"):
        preflight.check_run(FolderConfig(data_dir=str(data)), env.store)


def test_the_bundled_block_count_is_the_model_s() -> None:
    from transferlab.core.models import backbones, efficientnet_lite

    assert set(preflight.BUNDLED_BLOCKS) == set(backbones.BUNDLED_BACKBONES)
    assert preflight.BUNDLED_BLOCKS["efficientnet-lite0"] == efficientnet_lite.UNFREEZABLE_BLOCKS


def test_refusing_bad_input_does_not_import_tensorflow(tmp_path: Path) -> None:
    """The checks run before TensorFlow is loaded: refusing takes a fraction of a second, not ~5 s."""
    code = ("import sys; from transferlab.core.cli import main; code = main(['train', 'folder', '/no/such/folder']); "
            "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parents[2], env={**os.environ, "TRANSFERLAB_HOME": str(tmp_path)})
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    assert done.stderr.count("\n") == 1 and "no such folder" in done.stderr
