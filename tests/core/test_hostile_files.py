"""Hostile files: nothing in an image, a model file or a weights file makes the app run code, hang or eat memory.

One table per kind of file, one row per hostile kind (the row ids name the kinds):
- IMAGE_KINDS: files a user may point the app at as images. Each is opened as predict and training do
  (core.images.load_rgb, in a child process capped at 2 GiB of address space, so a regression fails instead of
  eating the machine), skipped and reported by a folder scan, and refused by `transferlab predict`.
- MODEL_FILE_KINDS: a stored run's model.keras (or its pinned backbone) tampered with so that loading it would
  run a SavedModel whose graph writes a marker file. predict, export and evaluate (engine calls and CLI) refuse
  with one line, and the marker is never written.
- PICKLE_KINDS: crafted PyTorch weights files for the restricted unpickler.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.core.imagefactory import make_class_folder, write_huge_png, write_image, write_truncated_jpeg
from tests.core.test_torch_pickle import _Call, _dump, _emit, _Global, _legacy_header, _tensor, _write_legacy
from transferlab.core.data.images import DEFAULT_MAX_BYTES
from transferlab.core.errors import ModelError, TransferlabError
from transferlab.core.models import torch_pickle
from transferlab.core.models.torch_pickle import load_state_dict

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 120  # a child that hangs (a FIFO read) is killed and the test fails

# ---- image files ----

EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
       b"newpath 0 0 moveto 16 16 lineto stroke showpage\n%%EOF\n")


def _postscript(path: Path) -> Path:
    path.write_bytes(EPS)
    return path


def _dos_eps(path: Path) -> Path:
    """The binary "DOS EPS" container (what Illustrator writes), PostScript inside."""
    header = struct.pack("<4sIIIIIIH", b"\xc5\xd0\xd3\xc6", 30, len(EPS), 0, 0, 0, 0, 0xFFFF)
    path.write_bytes(header + EPS)
    return path


def _pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    return path


def _svg(path: Path) -> Path:
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
                    '<image href="file:///etc/passwd"/></svg>', encoding="utf-8")
    return path


def _ppm(path: Path) -> Path:
    """A real, decodable image in a format that is not on the allow-list (PPM), named .png."""
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(path, format="PPM")
    return path


def _ico(path: Path) -> Path:
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(path, format="ICO")
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)  # nobody ever writes to it: a plain read would wait forever
    return path


def _link_to_dev_zero(path: Path) -> Path:
    path.symlink_to("/dev/zero")  # a plain read would never end
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _oversize(path: Path) -> Path:
    """A sparse file one byte over the size limit, starting like a PNG (takes no disk space)."""
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.truncate(DEFAULT_MAX_BYTES + 1)
    return path


@dataclass(frozen=True)
class ImageKind:
    name: str
    file_name: str
    write: Callable[[Path], Path]
    refusal: str  # a phrase the one-line refusal contains


IMAGE_KINDS = [
    ImageKind("postscript_named_jpg", "holiday.jpg", _postscript, "PostScript/EPS document"),
    ImageKind("dos_eps_named_png", "scan.png", _dos_eps, "EPS document"),
    ImageKind("pdf_named_png", "page.png", _pdf, "PDF document"),
    ImageKind("svg_named_png", "logo.png", _svg, "SVG/XML document"),
    ImageKind("ppm_image_named_png", "photo.png", _ppm, "PNM (PBM/PGM/PPM) image"),
    ImageKind("ico_image_named_jpg", "icon.jpg", _ico, "icon (ICO) file"),
    ImageKind("fifo_named_png", "pipe.png", _fifo, "got a named pipe (FIFO)"),
    ImageKind("link_to_dev_zero_named_png", "zero.png", _link_to_dev_zero, "got a character device (through a link)"),
    ImageKind("folder_named_png", "album.png", _folder, "got a folder"),
    ImageKind("oversize_file_png", "huge.png", _oversize, "at most 256 MiB"),
    ImageKind("decompression_bomb_png", "bomb.png", write_huge_png, "pixels"),
    ImageKind("truncated_jpeg", "cut.jpg", write_truncated_jpeg, "truncated"),
]


@pytest.fixture()
def fake_ghostscript(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH starts with a `gs` that only leaves a marker file: if any code runs
    Ghostscript, the marker appears."""
    folder = tmp_path / "fake-gs"
    folder.mkdir()
    marker = folder / "ghostscript-ran"
    gs = folder / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\nexit 0\n", encoding="utf-8")
    gs.chmod(0o755)
    env = {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}", "TF_CPP_MIN_LOG_LEVEL": "3",
           "OPENBLAS_NUM_THREADS": "1"}
    return env, marker


def _child(code: str, args: list[str], env: dict[str, str], memory: int = 2 << 30,
           limit: str = "RLIMIT_AS") -> subprocess.CompletedProcess[str]:
    """Run python `code` in a child process with a memory cap; a child that outlives CHILD_TIMEOUT_S fails."""
    capped = f"import resource\nresource.setrlimit(resource.{limit}, ({memory}, {memory}))\n{code}"
    try:
        return subprocess.run([sys.executable, "-c", capped, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child process still ran after {CHILD_TIMEOUT_S} s (it hangs)")


_LOAD_RGB = """
import sys
from transferlab.core.errors import ImageError
from transferlab.core.data.images import load_rgb
try:
    load_rgb(sys.argv[1], (32, 32))
except ImageError as exc:
    print(exc)
    sys.exit(3)
print("decoded")
"""


def test_the_fake_ghostscript_is_what_pillow_would_run(tmp_path: Path, fake_ghostscript) -> None:
    """The control for the PostScript rows: without the decoder allow-list, Pillow runs `gs` on holiday.jpg."""
    env, marker = fake_ghostscript
    eps = _postscript(tmp_path / "holiday.jpg")
    _child("import sys\nfrom PIL import Image\ntry:\n    Image.open(sys.argv[1]).load()\nexcept Exception:\n"
           "    pass\n", [str(eps)], env)
    assert marker.exists()


@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=[k.name for k in IMAGE_KINDS])
def test_image_kind_is_refused_in_one_line(kind: ImageKind, tmp_path: Path, fake_ghostscript) -> None:
    env, marker = fake_ghostscript
    path = kind.write(tmp_path / kind.file_name)
    done = _child(_LOAD_RGB, [str(path)], env)
    assert done.returncode == 3, (done.stdout, done.stderr[-2000:])
    message = done.stdout.strip()
    assert kind.refusal in message and "\n" not in message and str(path) in message
    assert not marker.exists(), "Ghostscript was run"


_SCAN = """
import json, sys
from transferlab.core.data.folders import scan_folder
scan = scan_folder(sys.argv[1])
print(json.dumps({"items": [p for p, _ in scan.items], "skipped": {s.path: s.reason for s in scan.skipped}}))
"""


def test_a_folder_scan_skips_and_reports_every_hostile_file(tmp_path: Path, fake_ghostscript) -> None:
    env, marker = fake_ghostscript
    root = make_class_folder(tmp_path / "data", classes={"cat": 3, "dog": 3}, size=(32, 32))
    for kind in IMAGE_KINDS:
        kind.write(root / "cat" / kind.file_name)
    done = _child(_SCAN, [str(root)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(found["items"]) == 6  # the good images only
    for kind in IMAGE_KINDS:
        if kind.name == "folder_named_png":  # a folder is walked into, not read: nothing in it to report
            continue
        reason = found["skipped"][f"cat/{kind.file_name}"]
        assert kind.refusal in reason and "\n" not in reason, (kind.name, reason)
    assert not marker.exists()


# ---- a stored run with a tiny TF Hub backbone ----

def _write_evil_hub_model(path: Path, marker: Path, image_size: int = 32, feature_dim: int = 8) -> Path:
    """A TF Hub-format feature-vector SavedModel whose traced __call__ writes `marker` whenever it runs."""
    import tensorflow as tf

    kernel = tf.Variable(tf.ones((3, feature_dim)), name="head/kernel")

    @tf.function
    def forward(images: tf.Tensor, training: bool = False) -> tf.Tensor:
        tf.io.write_file(str(marker), "a SavedModel named by a model file ran")
        return tf.matmul(tf.reduce_mean(images, axis=(1, 2)), kernel)

    root = tf.train.Checkpoint()
    root.variables = [kernel]
    root.trainable_variables = [kernel]
    root.regularization_losses = []
    root.__call__ = forward
    for training in (True, False):
        forward.get_concrete_function(tf.TensorSpec([None, image_size, image_size, 3], tf.float32), training)
    tf.saved_model.save(root, str(path))
    return path


@dataclass(frozen=True)
class TrainedRun:
    runs: Path  # the store the run lives in
    run_id: str
    hub_handle: str  # the backbone it was trained with (deleted after training: only the pinned copy remains)
    image: Path  # a usable image to classify


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    from transferlab.core.config import FitOptions, FolderConfig
    from transferlab.core.models.hub_layer import write_tiny_hub_model
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.loop import run_training

    base = tmp_path_factory.mktemp("hub-run")
    hub = write_tiny_hub_model(base / "my-backbone", feature_dim=8, image_size=32)
    data = make_class_folder(base / "data", classes={"round": 8, "square": 8}, size=(32, 32), seed=2)
    store = RunStore(base / "home" / "runs")
    config = FolderConfig(data_dir=str(data), backbone=str(hub),
                          fit=FitOptions(epochs=2, batch_size=8, learning_rate=1e-2, validation_split=0.25, seed=1))
    result = run_training(config, store=store)
    assert result.status == "finished", result.reason
    shutil.rmtree(hub)  # from now on the run must do with its own pinned copy
    return TrainedRun(store.root, result.run_id, str(hub), data / "round" / "round_0000.jpg")


@pytest.fixture(scope="module")
def evil_hub(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(an evil SavedModel, the marker it writes when it runs)."""
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "evil-ran"
    return _write_evil_hub_model(folder / "evil-module", marker), marker


def test_the_evil_module_writes_its_marker_when_chosen_as_a_backbone(tmp_path: Path) -> None:
    """The control for the model-file rows: loading the evil module as a backbone does run its graph."""
    from transferlab.core.models.hub_layer import HubFeatureLayer

    marker = tmp_path / "ran"
    HubFeatureLayer(str(_write_evil_hub_model(tmp_path / "evil", marker)))
    assert marker.read_text() == "a SavedModel named by a model file ran"


def _copy_run(run: TrainedRun, home: Path) -> Path:
    target = home / "runs" / run.run_id
    shutil.copytree(run.runs / run.run_id, target)
    return target


def _hub_layer_configs(obj: object) -> list[dict]:
    if isinstance(obj, dict):
        found = [obj] if obj.get("class_name") == "HubFeatureLayer" else []
        return found + [c for value in obj.values() for c in _hub_layer_configs(value)]
    if isinstance(obj, list):
        return [c for value in obj for c in _hub_layer_configs(value)]
    return []


def _rewrite_hub_config(model_file: Path, change: Callable[[dict], None]) -> None:
    """Rewrite every TF Hub layer's config inside a .keras file (a zip) the way an attacker would."""
    with zipfile.ZipFile(model_file) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    config = json.loads(entries["config.json"])
    layers = _hub_layer_configs(config)
    assert layers, "the model file holds no TF Hub layer"
    for layer in layers:
        change(layer["config"])
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model_file, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _swap_handle(run: Path, evil: Path) -> None:
    _rewrite_hub_config(run / "model.keras", lambda c: c.update(handle=str(evil)))


def _swap_handle_and_hash_and_plant(run: Path, evil: Path) -> None:
    """The strongest model-file attack: name the evil module with its real hash and plant it as a pinned copy."""
    from transferlab.core.models.hub_layer import module_digest

    digest = module_digest(evil)
    shutil.copytree(evil, run / "hub_modules" / digest)
    _rewrite_hub_config(run / "model.keras", lambda c: c.update(handle=str(evil), module_sha256=digest))


def _swap_hash(run: Path, evil: Path) -> None:
    from transferlab.core.models.hub_layer import module_digest

    _rewrite_hub_config(run / "model.keras", lambda c: c.update(module_sha256=module_digest(evil)))


def _remove_hash(run: Path, evil: Path) -> None:
    """What a model file written before backbones were pinned looks like, pointing at the evil module."""
    _rewrite_hub_config(run / "model.keras", lambda c: (c.pop("module_sha256"), c.update(handle=str(evil))))


def _url_without_hash(run: Path, evil: Path) -> None:
    url = "https://tfhub.invalid/attacker/feature_vector/1"
    _rewrite_hub_config(run / "model.keras", lambda c: (c.pop("module_sha256"), c.update(handle=url)))


def _hash_escaping_the_run(run: Path, evil: Path) -> None:
    relative = os.path.relpath(evil, run / "hub_modules")
    _rewrite_hub_config(run / "model.keras", lambda c: c.update(module_sha256=relative))


def _replace_pinned_copy(run: Path, evil: Path) -> None:
    """Leave model.keras alone; swap the files of the run's pinned backbone for the evil module's."""
    (pinned,) = (run / "hub_modules").iterdir()
    shutil.rmtree(pinned)
    shutil.copytree(evil, pinned)


def _hub_model_in_an_mnist_run(run: Path, evil: Path) -> None:
    """An MNIST run (no TF Hub backbone at all) whose model.keras is swapped for one naming the evil module."""
    from transferlab.core.config import MnistConfig, config_to_dict

    _swap_handle_and_hash_and_plant(run, evil)
    (run / "config.json").write_text(json.dumps(config_to_dict(MnistConfig(model="ann"))), encoding="utf-8")
    (run / "model_info.json").write_text(json.dumps({"input": "digits28", "image_size": [28, 28],
                                                     "class_names": [str(d) for d in range(10)]}), encoding="utf-8")


@dataclass(frozen=True)
class ModelFileKind:
    name: str
    tamper: Callable[[Path, Path], None]  # (run folder, evil module)
    refusal: str


MODEL_FILE_KINDS = [
    ModelFileKind("handle_swapped", _swap_handle, "expected the TF Hub backbone the run was trained with"),
    ModelFileKind("handle_and_hash_swapped_module_planted", _swap_handle_and_hash_and_plant,
                  "expected the TF Hub backbone the run was trained with"),
    ModelFileKind("hash_swapped", _swap_hash, "which the run does not hold"),
    ModelFileKind("hash_removed_handle_swapped", _remove_hash, "pinned to its backbone by a sha256, got handle"),
    ModelFileKind("url_handle_without_hash", _url_without_hash, "pinned to its backbone by a sha256, got handle"),
    ModelFileKind("hash_escaping_the_run_folder", _hash_escaping_the_run,
                  "pinned to its backbone by a sha256, got handle"),
    ModelFileKind("pinned_copy_replaced", _replace_pinned_copy, "changed after training"),
    ModelFileKind("hub_model_in_mnist_run", _hub_model_in_an_mnist_run, "none: it has no TF Hub backbone"),
]


@pytest.mark.parametrize("kind", MODEL_FILE_KINDS, ids=[k.name for k in MODEL_FILE_KINDS])
@pytest.mark.slow
def test_a_tampered_model_file_runs_nothing(kind: ModelFileKind, trained_run: TrainedRun, evil_hub,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from transferlab.core.cli import main
    from transferlab.core.deploy.export import export_run
    from transferlab.core.deploy.predict import Classifier
    from transferlab.core.runs.store import RunStore

    evil, marker = evil_hub
    home = tmp_path / "home"
    run = _copy_run(trained_run, home)
    kind.tamper(run, evil)
    store = RunStore(home / "runs")

    for call in (lambda: Classifier(trained_run.run_id, store),
                 lambda: export_run(trained_run.run_id, "keras", store=store),
                 lambda: store.load_model(trained_run.run_id)):
        with pytest.raises(TransferlabError, match=kind.refusal) as refused:
            call()
        assert "\n" not in str(refused.value)

    monkeypatch.setenv("TRANSFERLAB_HOME", str(home))
    capsys.readouterr()
    commands = [["predict", trained_run.run_id, str(trained_run.image)],
                ["export", trained_run.run_id, "--format", "savedmodel"]]
    mnist = kind.name == "hub_model_in_mnist_run"
    if mnist:  # MNIST runs are evaluated again, so evaluate loads the model; folder runs show stored metrics
        commands.append(["evaluate", trained_run.run_id])
    for command in commands:
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert kind.refusal in err and "\n" not in err, (command, err)
    if not mnist:
        assert main(["evaluate", trained_run.run_id]) == 0  # the stored metrics; the model is not loaded
    assert not (run / "exports").exists()
    assert not marker.exists(), "the SavedModel named by the model file ran"


def test_an_untouched_run_loads_its_pinned_backbone_offline(trained_run: TrainedRun, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The original backbone folder is gone (and URLs are never fetched): the run's own copy is enough."""
    from transferlab.core.deploy.export import export_run
    from transferlab.core.deploy.predict import Classifier
    from transferlab.core.models.hub_layer import module_digest
    from transferlab.core.runs.store import RunStore

    assert not Path(trained_run.hub_handle).exists()
    run = _copy_run(trained_run, tmp_path / "home")
    (pinned,) = (run / "hub_modules").iterdir()
    assert pinned.name == module_digest(pinned)
    store = RunStore(tmp_path / "home" / "runs")
    [prediction] = Classifier(trained_run.run_id, store).classify([trained_run.image])
    assert prediction.ok and prediction.label in ("round", "square")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty-hub-cache"))
    exported = export_run(trained_run.run_id, "keras", store=store)
    assert exported.is_file()


@pytest.mark.slow  # a child process that imports TensorFlow and loads the run: ~10-30 s on 2 busy cores
def test_cli_predict_refuses_every_hostile_image_promptly(trained_run: TrainedRun, tmp_path: Path,
                                                         fake_ghostscript) -> None:
    """`transferlab predict` on every hostile image kind at once (a FIFO hung it, /dev/zero ate the memory):
    one error line per file, the good image classified, exit 2, in a child with capped memory and a time limit."""
    env, marker = fake_ghostscript
    home = tmp_path / "home"
    _copy_run(trained_run, home)
    paths = [kind.write(tmp_path / kind.file_name) for kind in IMAGE_KINDS]
    done = _child("import sys\nfrom transferlab.core.cli import main\nsys.exit(main(sys.argv[1:]))",
                  ["predict", trained_run.run_id, str(trained_run.image), *map(str, paths), "--json"],
                  {**env, "TRANSFERLAB_HOME": str(home)}, memory=6 << 30, limit="RLIMIT_DATA")
    assert done.returncode == 2, done.stderr[-2000:]
    good, *rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert good["label"] in ("round", "square")
    for kind, row in zip(IMAGE_KINDS, rows, strict=True):
        assert row["label"] is None and kind.refusal in row["error"], (kind.name, row)
    assert not marker.exists()


# ---- PyTorch weights files (the restricted unpickler) ----

def _main_pickle(*parts: bytes) -> bytes:
    return pickle.PROTO + bytes([2]) + b"".join(parts) + pickle.STOP


def _emitted(obj: object) -> bytes:
    out = io.BytesIO()
    _emit(out, obj)
    return out.getvalue()


def _build_then_state_dict(target: object, state: object) -> bytes:
    """BUILD(target, state), dropped from the stack, then a valid one-tensor state_dict."""
    return _main_pickle(_emitted(target), _emitted(state), pickle.BUILD, pickle.POP,
                        _emitted({"w": _tensor("k", (2, 2))}))


def _legacy(path: Path, main: bytes, storages: dict[str, np.ndarray], counts: dict[str, int] | None = None) -> Path:
    """A legacy-format weights file; `counts` overrides the element count written before a storage's bytes."""
    counts = counts or {}
    with open(path, "wb") as handle:
        handle.write(_legacy_header() + main + pickle.dumps(list(storages), protocol=2))
        for key, data in storages.items():
            handle.write(struct.pack("<q", counts.get(key, data.size)) + data.tobytes())
    return path


_FOUR = {"k": np.arange(4, dtype=np.float32)}


def _build_on_storage_type(path: Path) -> Path:
    """Would set torch.FloatStorage's dtype for the rest of the process: every later load would break."""
    return _legacy(path, _build_then_state_dict(_Global("torch", "FloatStorage"), {"dtype": "oops"}), _FOUR)


def _build_on_allowed_function(path: Path) -> Path:
    return _legacy(path, _build_then_state_dict(_Global("collections", "OrderedDict"), {"hooked": True}), _FOUR)


def _build_on_tensor(path: Path) -> Path:
    """Would change a tensor's validated shape after it was checked."""
    tensor = _tensor("k", (2, 2))
    main = _main_pickle(pickle.MARK, _emitted("w"), _emitted(tensor), _emitted({"size": (10**9,)}), pickle.BUILD,
                        pickle.DICT)
    return _legacy(path, main, _FOUR)


def _newobj(path: Path) -> Path:
    main = _main_pickle(_emitted(_Global("collections", "OrderedDict")), _emitted(()), pickle.NEWOBJ)
    return _legacy(path, main, {})


def _absurd_storage(path: Path) -> Path:
    """A storage claiming 10^15 elements, in the pickle and before its bytes: a reader trusting the count asks
    for 4 PB of memory."""
    return _legacy(path, _dump({"w": _tensor("k", (2, 2), numel=10**15)}), _FOUR, counts={"k": 10**15})


def _shape_beyond_data(path: Path) -> Path:
    """A 10^6 × 10^6 view with strides 0 over one element: in range, but 10^12 elements to copy."""
    pid = ("__pid__", ("storage", _Global("torch", "FloatStorage"), "k", "cpu", 1))
    tensor = _Call(_Global("torch._utils", "_rebuild_tensor_v2"), (pid, 0, (10**6, 10**6), (0, 0), False,
                                                                   _Call(_Global("collections", "OrderedDict"), ())))
    return _legacy(path, _dump({"w": tensor}), {"k": np.ones(1, np.float32)})


@dataclass(frozen=True)
class PickleKind:
    name: str
    write: Callable[[Path], Path]
    refusal: str


PICKLE_KINDS = [
    PickleKind("build_on_allowed_storage_class", _build_on_storage_type, "set attributes of a _StorageType"),
    PickleKind("build_on_allowed_function", _build_on_allowed_function, "set attributes of a function"),
    PickleKind("build_on_a_checked_tensor", _build_on_tensor, "set attributes of a _TensorRef"),
    PickleKind("newobj_of_an_allowed_name", _newobj, "create an object of a class"),
    PickleKind("storage_claiming_1e15_elements", _absurd_storage, "claiming 1,000,000,000,000,000 elements"),
    PickleKind("shape_beyond_its_data", _shape_beyond_data, "at most the 1 elements of its storage"),
]


@pytest.mark.parametrize("kind", PICKLE_KINDS, ids=[k.name for k in PICKLE_KINDS])
def test_crafted_weights_are_refused_and_later_loads_still_work(kind: PickleKind, tmp_path: Path) -> None:
    float_storage = torch_pickle._ALLOWED_GLOBALS[("torch", "FloatStorage")]
    finished: list[BaseException | None] = []

    def load() -> None:
        try:
            load_state_dict(kind.write(tmp_path / "crafted.pth"))
            finished.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below, whatever it is
            finished.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(60)
    assert finished, "loading the crafted file did not finish within 60 s"
    assert isinstance(finished[0], ModelError), repr(finished[0])
    assert kind.refusal in str(finished[0]) and "\n" not in str(finished[0])
    assert vars(float_storage) == {"dtype": np.dtype("<f4")}  # nothing allow-listed was changed
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    good = _write_legacy(tmp_path / "good.pth", {"fc.weight": _tensor("k1", (2, 3))}, {"k1": weight})
    np.testing.assert_array_equal(load_state_dict(good)["fc.weight"], weight)


def test_build_still_sets_the_metadata_of_a_state_dict(tmp_path: Path) -> None:
    """What torch itself writes: BUILD on the state_dict's own OrderedDict (its `_metadata`)."""
    state = _emitted({"w": _tensor("k", (2, 2))})
    metadata = _emitted({"_metadata": collections.OrderedDict()})
    path = _legacy(tmp_path / "w.pth", _main_pickle(state, metadata, pickle.BUILD), _FOUR)
    np.testing.assert_array_equal(load_state_dict(path)["w"], _FOUR["k"].reshape(2, 2))


def test_a_tiff_still_opens_whatever_its_name(tmp_path: Path) -> None:
    """A real TIFF still opens (TIFF stays on the allow-list), whatever its name."""
    from transferlab.core.data.images import load_rgb

    path = write_image(tmp_path / "scan.tif", np.full((16, 16, 3), 77, np.uint8))
    renamed = path.rename(tmp_path / "scan.png")
    assert load_rgb(renamed).shape == (16, 16, 3)


def test_where_a_backbone_is_chosen_it_says_models_are_programs(capsys) -> None:
    from transferlab.core.cli import main

    with pytest.raises(SystemExit):
        main(["train", "folder", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "A TF Hub model or SavedModel is a program: choosing one runs its TensorFlow graph" in help_text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Security" in readme and "**A TF Hub handle or a SavedModel folder is a program.**" in readme
