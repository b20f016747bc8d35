"""The command line's output never crashes and stays quiet.

- A reader that goes away (`transferlab runs list | head -1`) ends the command quietly (exit 141).
- Undecodable bytes, newlines and tabs in run, class and file names are escaped, so a strict UTF-8 terminal
  never raises and every table row stays one line.
- TensorFlow's C++ start-up lines (absl, oneDNN, CUDA, cuInit) never reach the terminal unless -v is given, and
  library warnings (Pillow's "Corrupt EXIF data") become one short note.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.core.imagefactory import add_broken_files, make_class_folder
from transferlab.core import console
from transferlab.core.cli import main
from transferlab.core.config import FolderConfig, MnistConfig
from transferlab.core.models.hub_layer import write_tiny_hub_model
from transferlab.core.runs.store import RunStore

REPO = Path(__file__).parents[2]
STRICT_UTF8 = {"PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8"}  # errors="strict", as on a UTF-8 terminal
TF_START_UP = ("absl", "oneDNN", "cuda", "cuInit", "cpu_feature_guard", "TF_ENABLE_ONEDNN_OPTS")


def _cli(*argv: str, home: Path, stdout: int | None = subprocess.PIPE, module: str = "transferlab.core.cli",
         **env: str) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "TRANSFERLAB_HOME": str(home), **env}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it (the test suite sets it)
    return subprocess.run([sys.executable, "-m", module, *argv], stdout=stdout, stderr=subprocess.PIPE,
                          cwd=REPO, env=environment, check=False, timeout=300)


def _crafted_runs(home: Path) -> RunStore:
    """Three runs with awkward names: tab and newline in a run name, an undecodable byte in a data folder name,
    and a run folder whose own name has an undecodable byte."""
    store = RunStore(home / "runs")
    plain = store.create(MnistConfig(name="tab\there\nnew line"))
    store.create(FolderConfig(data_dir=os.fsdecode(b"/photos/caf\xe9")))
    odd = os.fsencode(store.root) + b"/20990101-000000-odd-\xff"
    shutil.copytree(os.fsencode(plain.path), odd)
    for run in store.list():
        store.set_status(run.run_id, "finished")
    return store


# ---- a reader that goes away ----

@pytest.mark.parametrize("argv", [("runs", "list"), ("runs", "list", "--json"), ("runs", "show", "latest")])
def test_a_closed_pipe_ends_the_command_quietly(argv: tuple[str, ...], tmp_path: Path) -> None:
    _crafted_runs(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` once head has exited: every write fails with EPIPE
    try:
        done = _cli(*argv, home=tmp_path, stdout=write_end)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == b""


# ---- awkward names ----

def test_runs_list_escapes_names_on_a_strict_utf8_terminal(tmp_path: Path) -> None:
    _crafted_runs(tmp_path)
    done = _cli("runs", "list", home=tmp_path, **STRICT_UTF8)
    assert done.returncode == 0 and done.stderr == b""
    lines = done.stdout.decode("utf-8").splitlines()  # strict: valid UTF-8
    assert len(lines) == 3  # one line per run: no name broke the table
    text = "\n".join(lines)
    assert "odd-\\xff" in text and "caf\\xe9 frozen" in text and "tab\\there\\nnew line" in text

    done = _cli("runs", "list", "--json", home=tmp_path, **STRICT_UTF8)
    runs = json.loads(done.stdout)
    assert done.returncode == 0 and len(runs) == 3
    assert {run["run_id"] for run in runs} >= {os.fsdecode(b"20990101-000000-odd-\xff")}


def test_printable_escapes_only_what_a_terminal_cannot_show() -> None:
    assert console.printable("chat noir 猫 ✓ écureuil") == "chat noir 猫 ✓ écureuil"
    assert console.printable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    assert console.printable("a\tb\nc\rd\x1b[31m\x7f\u2028") == "a\\tb\\nc\\rd\\x1b[31m\\x7f\\u2028"
    assert console.printable("\ud800") == "\\ud800"


def _strict_terminal(monkeypatch: pytest.MonkeyPatch) -> tuple[io.BytesIO, io.BytesIO]:
    """stdout and stderr as on a strict UTF-8 terminal; returns the bytes written to each. (Called in the test
    body: pytest puts its own capture back between a fixture's setup and the test.)"""
    raw_out, raw_err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw_out, encoding="utf-8", errors="strict"))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(raw_err, encoding="utf-8", errors="strict"))
    return raw_out, raw_err


def _corrupt_exif_jpeg(path: Path) -> Path:
    """A JPEG whose EXIF block promises 3 entries and holds none: Pillow warns "Corrupt EXIF data"."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 3) + struct.pack("<HHII", 0x010F, 2, 4, 0)
    image = Image.fromarray(np.full((24, 24, 3), (200, 40, 40), np.uint8))
    image.save(path, "JPEG", exif=b"Exif\x00\x00" + tiff)
    return path


@pytest.mark.slow
def test_train_and_predict_with_undecodable_and_control_characters_in_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw_out, raw_err = _strict_terminal(monkeypatch)
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    hub = write_tiny_hub_model(tmp_path / "hub", feature_dim=8, image_size=16)
    root = os.fsencode(tmp_path / "data")
    make_class_folder(os.fsdecode(root), classes={"plain": 4, "zzz": 4}, size=(16, 16), seed=2)
    os.rename(root + b"/zzz", root + b"/caf\xe9")  # a class named in Latin-1 on a UTF-8 system
    add_broken_files(os.fsdecode(root + b"/caf\xe9"), prefix=os.fsdecode(b"bad\xfe "))

    code = main(["train", "folder", os.fsdecode(root), "--backbone", str(hub), "--epochs", "1",
                 "--batch-size", "4", "--json"])
    sys.stdout.flush(), sys.stderr.flush()
    err = raw_err.getvalue().decode("utf-8")
    assert code == 0, err
    assert "note: 6 unusable files skipped (first: caf\\xe9/bad\\xfe " in err and "\\udc" not in err
    run_id = json.loads(raw_out.getvalue().decode("utf-8").splitlines()[-1])["run_id"]

    photos = tmp_path / "photos"
    photos.mkdir()
    odd = os.fsdecode(os.fsencode(photos) + b"/photo \xfd.jpg")
    shutil.copyfile(os.fsdecode(root + b"/caf\xe9/zzz_0000.jpg"), odd)
    two_lines = photos / "new\nline\t.jpg"
    _corrupt_exif_jpeg(two_lines)
    raw_out.seek(0), raw_out.truncate(), raw_err.seek(0), raw_err.truncate()
    code = main(["predict", run_id, odd, str(two_lines), str(photos / "missing\n.png")])
    sys.stdout.flush(), sys.stderr.flush()
    out, err = raw_out.getvalue().decode("utf-8"), raw_err.getvalue().decode("utf-8")
    assert code == 2, err  # one file is missing
    lines = out.splitlines()
    assert len(lines) == 3, out  # one line per file, whatever its name
    assert lines[0].startswith(f"{photos}/photo \\xfd.jpg: ") and "caf\\xe9 " in lines[0] and "plain " in lines[0]
    assert lines[1].startswith(f"{photos}/new\\nline\\t.jpg: ")
    assert lines[2].startswith(f"{photos}/missing\\n.png: error: ") and "\\udc" not in out
    # Pillow's warning about the damaged EXIF block is one short note, not a raw warning.
    assert err.count("\n") == 1 and err.startswith("note: 1 library warning hidden (first: UserWarning: "
                                                   "Corrupt EXIF data."), err


# ---- quiet TensorFlow ----

@pytest.mark.slow
def test_no_tensorflow_start_up_lines_through_the_installed_entry_point(tmp_path: Path) -> None:
    hub = write_tiny_hub_model(tmp_path / "hub", feature_dim=8, image_size=16)
    data = make_class_folder(tmp_path / "data", classes={"a": 4, "b": 4}, size=(16, 16))
    done = _cli("train", "folder", str(data), "--backbone", str(hub), "--epochs", "1", "--batch-size", "4",
                home=tmp_path / "home", module="transferlab.gui.launcher")
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert not [line for line in err.splitlines() if any(word in line for word in TF_START_UP)], err
    assert "finished" in err.splitlines()[-1] and "run " in done.stdout.decode()


def test_verbose_leaves_tensorflow_logging_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    console.quiet_tensorflow(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert not [f for f in sys.meta_path if isinstance(f, console._QuietImportFinder)]
    console.quiet_tensorflow()  # TensorFlow is already imported in this process: only the variable is set
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert not [f for f in sys.meta_path if isinstance(f, console._QuietImportFinder)]


def test_start_up_lines_are_dropped_and_everything_else_is_kept(capfd: pytest.CaptureFixture[str]) -> None:
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795541463.916473    3712 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1795541463.917423    3712 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow ...",
        "E0000 00:00:1795541467.284183    3712 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    ]
    kept = ["a real problem: libfoo.so not found", "E in a sentence is not a log line"]
    with console._stderr_filtered():
        os.write(2, ("\n".join(noise[:2] + kept[:1] + noise[2:] + kept[1:]) + "\n").encode())
    assert capfd.readouterr().err.splitlines() == kept
    assert all(console.is_start_up_noise(line) for line in noise)
