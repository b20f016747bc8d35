"""`transferlab export` never deletes or replaces what it did not create.

An existing folder is written into (a new, clearly named entry); an existing file is replaced only with --force
(one rename) and a SavedModel never replaces anything; a read-only folder or a full disk gives one line and
leaves nothing behind. Every test checks that the user's files survive byte for byte.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

import transferlab.core.deploy.export as export_module
from tests.core.imagefactory import make_class_folder
from transferlab.core.cli import main
from transferlab.core.config import FitOptions, FolderConfig
from transferlab.core.models.hub_layer import write_tiny_hub_model
from transferlab.core.runs.store import RunStore
from transferlab.core.training.loop import run_training


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export-home")


@pytest.fixture(scope="module")
def run_id(home: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("export-data")
    hub = write_tiny_hub_model(base / "hub", feature_dim=8, image_size=16)
    data = make_class_folder(base / "data", classes={"red": 4, "blue": 4}, size=(16, 16), seed=4)
    fit = FitOptions(epochs=1, batch_size=4, validation_split=0.25, seed=1)
    result = run_training(FolderConfig(data_dir=str(data), backbone=str(hub), fit=fit), store=RunStore(home / "runs"))
    assert result.status == "finished", result.reason
    return result.run_id


@pytest.fixture()
def cli(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """main(argv) → (exit code, stdout, stderr), on the module's run store."""
    monkeypatch.setenv("TRANSFERLAB_HOME", str(home))

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


SIDECARS = (".labels.txt", ".transferlab.json")  # what an export writes beside a .keras or .tflite file


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under folder (hidden ones too) → its bytes (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def _user_folder(path: Path, run: str) -> Path:
    """A user's folder already holding files, a SavedModel-looking folder and the name an export would pick."""
    (path / "savedmodel").mkdir(parents=True)
    (path / "savedmodel" / "saved_model.pb").write_bytes(b"the user's own model")
    (path / "notes.txt").write_text("do not touch")
    (path / f"{run}.keras").write_bytes(b"an older export the user renamed")
    return path


@pytest.mark.slow
def test_exporting_into_an_existing_folder_adds_new_entries(cli, run_id: str, tmp_path: Path) -> None:
    folder = _user_folder(tmp_path / "exports", run_id)
    before = _snapshot(folder)
    code, out, err = cli("export", run_id, "--format", "keras", "--out", str(folder))
    assert (code, err) == (0, "") and out.strip() == str(folder / f"{run_id}-2.keras")
    for expected in (f"{run_id}-savedmodel", f"{run_id}-savedmodel-2"):
        code, out, err = cli("export", run_id, "--format", "savedmodel", "--out", str(folder))
        assert (code, err) == (0, "") and out.strip() == str(folder / expected)
        assert (folder / expected / "saved_model.pb").is_file()
    after = _snapshot(folder)
    assert {k: v for k, v in after.items() if k in before} == before  # every file of the user's, byte for byte
    new = {k for k in after if k not in before and "/" not in k}
    sidecars = {f"{run_id}-2{suffix}" for suffix in SIDECARS}  # the .keras export's labels and metadata
    assert new == {f"{run_id}-2.keras", f"{run_id}-savedmodel", f"{run_id}-savedmodel-2"} | sidecars  # no temps


def test_an_existing_file_is_replaced_only_with_force(cli, run_id: str, home: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"precious")
    for fmt, force in (("keras", ()), ("savedmodel", ()), ("savedmodel", ("--force",))):
        code, out, err = cli("export", run_id, "--format", fmt, "--out", str(mine), *force)
        assert code == 2 and out == "" and err.count("\n") == 1 and str(mine) in err, err
        assert mine.read_bytes() == b"precious"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.keras"]
    assert "(--force replaces it)" in cli("export", run_id, "--out", str(mine))[2]

    inode = mine.stat().st_ino
    code, out, err = cli("export", run_id, "--format", "keras", "--out", str(mine), "--force")
    assert (code, err, out.strip()) == (0, "", str(mine))
    assert mine.read_bytes() == (home / "runs" / run_id / "model.keras").read_bytes()
    assert mine.stat().st_ino != inode  # a new file renamed into place, not the old one rewritten
    # nothing moved aside, no temp files; the labels and metadata written beside the export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.keras", *sorted(f"mine{s}" for s in SIDECARS)]


@pytest.mark.parametrize("kind", ["fifo", "broken-link"])
def test_special_files_are_never_replaced(kind: str, cli, run_id: str, tmp_path: Path) -> None:
    target = tmp_path / "model.tflite"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(tmp_path / "gone")
    code, _, err = cli("export", run_id, "--format", "tflite", "--out", str(target), "--force")
    assert code == 2 and err.count("\n") == 1, err
    assert ("a pipe" in err) if kind == "fifo" else ("a broken link" in err)
    assert os.path.lexists(target) and [p.name for p in tmp_path.iterdir()] == ["model.tflite"]


@pytest.mark.slow
def test_a_new_name_is_created_with_its_folders_and_the_user_s_umask(cli, run_id: str, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "model.savedmodel"
    old_umask = os.umask(0o027)
    try:
        code, out, err = cli("export", run_id, "--format", "savedmodel", "--out", str(target))
        assert (code, err, out.strip()) == (0, "", str(target))
        code, out, err = cli("export", run_id, "--format", "keras", "--out", str(tmp_path / "m.keras"))
        assert code == 0, err
    finally:
        os.umask(old_umask)
    assert (target / "saved_model.pb").is_file()
    assert target.stat().st_mode & 0o777 == 0o750 and (tmp_path / "m.keras").stat().st_mode & 0o777 == 0o640
    # The same --out again is now an existing folder: the first SavedModel stays, a new entry goes inside.
    first = _snapshot(target)
    code, out, _ = cli("export", run_id, "--format", "savedmodel", "--out", str(target))
    assert code == 0 and out.strip() == str(target / f"{run_id}-savedmodel")
    assert {k: v for k, v in _snapshot(target).items() if k in first} == first


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_a_full_disk_while_writing_leaves_nothing_behind(fmt: str, cli, run_id: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated where TensorFlow writes (half a file, then ENOSPC), so it runs everywhere; the folders the
    export made for a new name are removed again."""
    def half_then_full(path: Path) -> None:
        (Path(path) / "variables").mkdir(exist_ok=True)
        (Path(path) / "variables" / "variables.data").write_bytes(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    def half_a_copy(source: object, target: BinaryIO) -> None:
        target.write(b"x" * 1000)
        target.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    if fmt == "savedmodel":
        monkeypatch.setattr(export_module, "write_savedmodel",
                            lambda model, shape, path, **kwargs: half_then_full(path))
    else:
        monkeypatch.setattr(export_module.shutil, "copyfileobj", half_a_copy)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    before = _snapshot(tmp_path)
    for out in (folder, folder / "new" / "deeper" / "model.out"):
        code, stdout, err = cli("export", run_id, "--format", fmt, "--out", str(out))
        assert code == 1 and stdout == "" and err.count("\n") == 1, err
        assert "No space left on device" in err and "nothing was left behind" in err
        assert _snapshot(tmp_path) == before


@pytest.fixture()
def mount(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """mount(options) → a fresh tmpfs folder; skips where mounting is not allowed; unmounted afterwards."""
    mounted: list[Path] = []

    def make(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              check=False)
        if done.returncode != 0:
            pytest.skip("mounting a tmpfs (a real small or read-only disk) is not allowed here")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
@pytest.mark.slow
def test_a_real_full_disk_and_a_read_only_folder(fmt: str, cli, run_id: str, mount) -> None:
    small = mount("size=40k")
    (small / "notes.txt").write_text("keep")
    code, out, err = cli("export", run_id, "--format", fmt, "--out", str(small))
    assert code == 1 and out == "" and err.count("\n") == 1 and "No space left on device" in err, err
    assert [p.name for p in small.iterdir()] == ["notes.txt"] and (small / "notes.txt").read_text() == "keep"

    read_only = mount("size=40k,ro")
    for out_path in (read_only, read_only / "new" / "model.x"):
        code, out, err = cli("export", run_id, "--format", fmt, "--out", str(out_path))
        assert code == 2 and out == "" and err.count("\n") == 1 and "Read-only file system" in err, err
    assert list(read_only.iterdir()) == []


def test_a_name_taken_while_exporting_is_not_replaced(tmp_path: Path) -> None:
    """The final rename never replaces: a name that appeared meanwhile (file or folder) is skipped."""
    for folder in (False, True):
        target = tmp_path / ("out-dir" if folder else "out.keras")
        tmp = export_module._new_temp(target, folder=folder)
        (tmp / "saved_model.pb").write_bytes(b"new") if folder else tmp.write_bytes(b"new")
        if folder:
            target.mkdir()
            (target / "theirs").write_bytes(b"theirs")
        else:
            target.write_bytes(b"theirs")
        placed = export_module._rename_to_new(tmp, target, numbered=True, folder=folder)
        assert placed.name == ("out-dir-2" if folder else "out-2.keras")
        assert ((target / "theirs") if folder else target).read_bytes() == b"theirs"
        assert not tmp.exists()
