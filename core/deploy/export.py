"""Export a stored run's model for use outside the app, and check the export against the in-app model.

    path = export_run(run_id, "tflite")          # → <run folder>/exports/model.tflite

Formats
- "keras": a copy of model.keras (load with keras.saving.load_model(path, safe_mode=True)). A model with a TF
  Hub backbone loads only inside `core.hub_layer.pinned_hub_modules(<run folder>/hub_modules)`, which holds the
  backbone's files (`RunStore.pinned_backbones(run_id)`); the SavedModel and TFLite exports are self-contained.
- "savedmodel": a TensorFlow SavedModel whose "serving_default" signature takes raw uint8 images
  `images` [None, h, w, 3] (MNIST: [None, 28, 28], white digit on black) and returns {"probabilities":
  float32 [None, classes]}; the cast and all scaling happen inside.
- "tflite": the same signature converted with tf.lite.TFLiteConverter (float32 weights, uint8 input).
- "tflite-fp16": the same with float16 weights (half the size; computes in float32 on CPUs).
- "tflite-int8": full-integer quantization (int8 weights and activations, TFLITE_BUILTINS_INT8 only), calibrated
  on a representative set drawn from the run's training split (REPRESENTATIVE_LIMIT images); uint8 input,
  float32 probabilities out.
TFLite exports are verified with the LiteRT interpreter (ai-edge-litert), the successor of tf.lite.Interpreter.

Where it goes (nothing the export did not create is ever removed or replaced):
- no `out`: a new entry in the run folder's exports/ (model.keras, then model-2.keras, ...);
- `out` an existing folder: a new, clearly named entry inside it: <run id>.keras, <run id>-savedmodel/,
  <run id>.tflite (-2, -3, ... when taken); a folder is never replaced, only written into;
- `out` an existing file: refused (ConfigError) unless `force`; then a keras/tflite export replaces it
  atomically (one rename); a SavedModel (a folder) never replaces a file;
- `out` a new name: written there (missing parent folders are made).
The export is written to a temporary sibling, flushed to disk, and renamed to its new name in one rename
(a SavedModel folder first claims the name with an empty folder, so the rename can never replace anything
else). A failure (a read-only folder: ConfigError; a full disk: WriteFailed) leaves no temporary files.

Each also carries labels.txt and the temperature / unknown thresholds (core.deploy.export_trust); the
SavedModel's signature adds calibrated_probabilities, label, confidence, distance and unknown.

Every export is verified: the exported file is loaded back and run on the run's evaluation images (the test
split, else the validation split, at most VERIFY_LIMIT; MNIST: the first 1,000 test digits) and compared
with the in-app model. The record {"format", "path", "agreement" (fraction of identical top-1 classes),
"max_abs_diff" (largest probability difference), ...} is stored in the run folder's exports.json.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from transferlab.core.catalog import EXPORT_ENTRY_SUFFIXES, EXPORT_FILE_NAMES, EXPORT_FORMATS, ExportFormat
from transferlab.core.console import native_noise_filtered
from transferlab.core.deploy.export_trust import (
    EXTRA_FOLDER,
    export_metadata,
    trusted_serving_module,
    write_extras,
    write_sidecars,
)
from transferlab.core.errors import ConfigError, DataError, ModelError, TransferlabError, WriteFailed, first_line
from transferlab.core.kinds import kind_named
from transferlab.core.records import ModelInfo
from transferlab.core.runs.store import RunStore
from transferlab.core.training.kinds import parts_named

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = EXPORT_FORMATS
TFLITE_FORMATS = ("tflite", "tflite-fp16", "tflite-int8")
DEFAULT_NAMES: dict[ExportFormat, str] = EXPORT_FILE_NAMES
ENTRY_SUFFIXES = EXPORT_ENTRY_SUFFIXES  # a new export in an existing folder: <run id><suffix>
VERIFY_LIMIT = 1000
REPRESENTATIVE_LIMIT = 200
SERVING_KEY = "serving_default"
OUTPUT_KEY = "probabilities"
INPUT_KEY = "images"
MAX_NUMBERED = 1000  # <name>-2 ... <name>-1000
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


def export_run(run_id: str, fmt: str, store: RunStore | None = None,
               out: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Write the run's model in `fmt` (keras | savedmodel | tflite), verify it, record it; return its path.
    See the module docstring for where it goes; `force` lets a keras/tflite export replace an existing file."""
    if not is_export_format(fmt):
        raise ConfigError(f"export format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    store = store or RunStore()
    run_id = store.resolve(run_id)
    target, numbered, replace = plan_target(store, run_id, fmt, out, force)
    info = store.model_info(run_id)
    input_shape = serving_input_shape(info)
    model = store.load_model(run_id)
    metadata, trust = export_metadata(store, run_id, info)  # labels, temperature, unknown thresholds
    started = time.perf_counter()
    with _Staging(target, folder=fmt == "savedmodel") as stage:
        if fmt == "keras":
            with open(store.model_path(run_id), "rb") as source, open(stage.tmp, "wb") as copy:
                shutil.copyfileobj(source, copy)
        elif fmt == "savedmodel":
            write_savedmodel(model, input_shape, stage.tmp, module=trusted_serving_module(
                model, input_shape, metadata["class_names"], trust, INPUT_KEY, OUTPUT_KEY))
            write_extras(Path(stage.tmp) / EXTRA_FOLDER, metadata)
        else:
            representative = representative_images(store, run_id, info) if fmt == "tflite-int8" else None
            stage.tmp.write_bytes(tflite_bytes(model, input_shape,
                                               quantization=fmt.removeprefix("tflite").lstrip("-") or None,
                                               representative=representative))
        target = stage.place(numbered=numbered, replace=replace)
    if fmt != "savedmodel":
        write_sidecars(target, metadata)
    seconds = time.perf_counter() - started
    logger.info("exported run %s as %s to %s in %.1f s", run_id, fmt, target, seconds)

    images = verification_images(store, run_id, info)
    reference = np.asarray(model.predict(images.astype(np.float32), batch_size=100, verbose=0))
    with store.pinned_backbones(run_id):  # a .keras copy loads only the run's own backbone, like the run's model
        exported = run_export(fmt, target, images)
    record = {"format": fmt, "path": str(target), "samples": len(images),
              "agreement": float(np.mean(reference.argmax(1) == exported.argmax(1))),
              "max_abs_diff": float(np.max(np.abs(reference - exported))),
              "input": {"name": INPUT_KEY, "dtype": "uint8", "shape": [None, *input_shape]},
              "output": {"name": OUTPUT_KEY, "classes": list(info.class_names)},
              "bytes": _size(target), "seconds": round(seconds, 2), "created": time.time()}
    records = [r for r in (store.read_json(run_id, "exports.json", default=[]) or [])
               if not (r.get("format") == fmt and r.get("path") == str(target))]
    store.write_json(run_id, "exports.json", [*records, record])
    logger.info("export %s: agreement %.4f, max |diff| %.2e on %d images", fmt, record["agreement"],
                record["max_abs_diff"], len(images))
    return target


def is_export_format(text: str) -> TypeGuard[ExportFormat]:
    """True when `text` names an export format (then a type checker knows it is an ExportFormat)."""
    return text in FORMATS


def plan_target(store: RunStore, run_id: str, fmt: ExportFormat, out: str | os.PathLike[str] | None,
                force: bool = False) -> tuple[Path, bool, bool]:
    """(path, numbered: try <name>-2, -3... while taken, replace: replace the existing file at path).
    Raises ConfigError for a target that must not be touched; see the module docstring."""
    if out is None:
        target = store.get(run_id).path / "exports" / DEFAULT_NAMES[fmt]
        replace = force and fmt != "savedmodel" and target.is_file() and not target.is_symlink()
        return target, not replace, replace
    target = Path(out).expanduser()
    if target.is_dir():  # an existing folder (or a link to one) is written into, never replaced
        return target / f"{run_id}{ENTRY_SUFFIXES[fmt]}", True, False
    if not os.path.lexists(target):
        return target, False, False
    what = _kind_of(target)
    if fmt == "savedmodel":
        raise ConfigError(f"--out: expected a folder or a new name for the SavedModel folder, got {target}, "
                          f"which is {what}")
    if not force:
        raise ConfigError(f"--out: expected a new file name or a folder, got {target}, which exists "
                          "(--force replaces it)")
    if what != "a file":
        raise ConfigError(f"--out: expected a regular file to replace, got {target}, which is {what}")
    return target, False, True


def _kind_of(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a broken link"
    if path.is_file():
        return "a file"
    return "a special file (a pipe, socket or device)"


class _Staging:
    """A new temporary sibling of `target` (a file or a folder) to write the export into; `place()` renames it
    to its new name. On failure everything this made is removed (only that), and OSErrors become one line."""

    def __init__(self, target: Path, folder: bool) -> None:
        self.target, self.folder = target, folder
        self.made: list[Path] = []  # parent folders this export created, outermost first
        self.tmp = target

    def __enter__(self) -> _Staging:
        try:
            self.made = _make_parents(self.target.parent)
            self.tmp = _new_temp(self.target, folder=self.folder)
        except OSError as exc:
            self._remove_made()
            raise _write_error(exc, self.target) from exc
        return self

    def place(self, numbered: bool, replace: bool) -> Path:
        _fsync_tree(self.tmp)
        if replace:
            os.replace(self.tmp, self.target)
            placed = self.target
        else:
            placed = _rename_to_new(self.tmp, self.target, numbered, folder=self.folder)
        _fsync_folder(placed.parent)
        return placed

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if os.path.lexists(self.tmp):  # still here: the export failed before or while it was placed
            if self.folder:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    self.tmp.unlink()
        if exc is not None:
            self._remove_made()
        if isinstance(exc, OSError):
            raise _write_error(exc, self.target) from exc

    def _remove_made(self) -> None:
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only ever empty: what this export put there is gone already


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (outermost first)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    for path in reversed(missing):
        path.mkdir()
        made.append(path)
    return made


def _new_temp(target: Path, folder: bool) -> Path:
    """A new hidden file or folder beside target, created with the user's umask (not mkstemp's 0600)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            if folder:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target.parent))


def _numbered(path: Path) -> Iterator[Path]:
    """path, then <stem>-2<suffix>, <stem>-3<suffix>, ... (folders: <name>-2, ...)."""
    yield path
    stem, suffix = (path.stem, path.suffix) if path.suffix in (".keras", ".tflite") else (path.name, "")
    for n in range(2, MAX_NUMBERED + 1):
        yield path.with_name(f"{stem}-{n}{suffix}")


def _rename_to_new(tmp: Path, target: Path, numbered: bool, folder: bool) -> Path:
    """Give tmp the first free name (target, or target-2, -3, ... when numbered) without ever replacing
    anything: a file is hard-linked (fails if the name exists), a folder claims the name with an empty
    folder of its own and is renamed onto that."""
    for candidate in _numbered(target) if numbered else (target,):
        try:
            if folder:
                os.mkdir(candidate)
                try:
                    os.rename(tmp, candidate)  # replaces only the empty folder made just above
                except OSError:
                    with contextlib.suppress(OSError):
                        candidate.rmdir()
                    raise
            else:
                _link_new(tmp, candidate)
        except FileExistsError:
            continue
        return candidate
    raise ConfigError(f"--out: expected a new name for the export, got {target}, which exists"
                      + (" (and so do -2 to -1000)" if numbered else " (--force replaces a file)"))


def _link_new(tmp: Path, candidate: Path) -> None:
    try:
        os.link(tmp, candidate)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(candidate):  # a file system without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "exists", str(candidate)) from exc
        os.replace(tmp, candidate)
    else:
        tmp.unlink()


def _fsync_tree(path: Path) -> None:
    """Flush a file, or every file and folder under a folder, to disk."""
    if not path.is_dir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        return
    for folder, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_folder(Path(folder))


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened and flushed
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_error(exc: OSError, target: Path) -> TransferlabError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in DISK_FULL:
        return WriteFailed(f"expected to write the export {target}, got {reason}; nothing was left behind")
    return ConfigError(f"--out: expected a folder the export can be written to, got {target.parent} "
                       f"({reason})")


def serving_input_shape(info: ModelInfo) -> tuple[int, ...]:
    """The per-image uint8 input shape: (28, 28) for MNIST runs, (h, w, 3) for folder runs."""
    return kind_named(info.kind).input_shape(info)


# ---- writers ----

def _serving_module(model: Any, input_shape: tuple[int, ...]) -> Any:
    import tensorflow as tf

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="transferlab_serving")
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, *input_shape], tf.uint8, name=INPUT_KEY)])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            return {OUTPUT_KEY: self.model(tf.cast(images, tf.float32), training=False)}

    return Serving()


def write_savedmodel(model: Any, input_shape: tuple[int, ...], path: str | os.PathLike[str],
                    module: Any = None) -> None:
    """`module`: a tf.Module with a `serve` tf.function (default: probabilities only)."""
    import tensorflow as tf

    module = module if module is not None else _serving_module(model, input_shape)
    try:
        tf.saved_model.save(module, str(path), signatures={SERVING_KEY: module.serve})
    except (ValueError, TypeError, AssertionError) as exc:
        raise ModelError(f"expected a model that TensorFlow can save as a SavedModel, got "
                         f"{type(exc).__name__}: {first_line(exc, limit=300)}") from exc
    except tf.errors.OpError as exc:  # TensorFlow's own file writes: a full disk, a read-only folder
        raise _tf_write_error(exc, Path(path)) from exc


def _tf_write_error(exc: Any, path: Path) -> OSError:
    """A TensorFlow file-system error as the OSError it stands for (so _Staging reports it in one line)."""
    text = first_line(exc, limit=300)
    for code, words in ((errno.ENOSPC, "No space left"), (errno.EDQUOT, "quota"), (errno.EROFS, "Read-only"),
                        (errno.EACCES, "Permission denied")):
        if words.lower() in text.lower():
            return OSError(code, os.strerror(code), str(path))
    return OSError(errno.EIO, f"{type(exc).__name__}: {text}", str(path))


def tflite_bytes(model: Any, input_shape: tuple[int, ...], quantization: str | None = None,
                 representative: np.ndarray | None = None) -> bytes:
    """The serving signature as a TFLite flatbuffer (uint8 input, float32 probabilities out): float32 weights, or
    `quantization` "fp16" (float16 weights) or "int8" (full-integer, calibrated on `representative` uint8 images).

    The variables are folded into constants first: converted straight from the SavedModel, Keras 3's
    BatchNormalization statistics stay resource variables that the TFLite interpreter never initialises
    (every output NaN)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    serving = _serving_module(model, input_shape)  # keep a reference: the tf.function holds `self` weakly
    frozen = convert_variables_to_constants_v2(serving.serve.get_concrete_function())

    class Frozen(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, *input_shape], tf.uint8, name=INPUT_KEY)])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            return {OUTPUT_KEY: frozen(images)[0]}

    module = Frozen()
    with tempfile.TemporaryDirectory(prefix="transferlab-export-") as folder:
        tf.saved_model.save(module, folder, signatures={SERVING_KEY: module.serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[SERVING_KEY])
        _quantize(converter, quantization, representative)
        try:
            return bytes(converter.convert())
        except Exception as exc:  # the converter raises ConverterError and assorted others
            raise ModelError(f"expected a model the TFLite converter accepts, got {type(exc).__name__}: "
                             f"{first_line(exc, limit=300)}") from exc


def _quantize(converter: Any, quantization: str | None, representative: np.ndarray | None) -> None:
    import tensorflow as tf

    if quantization is None:
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if representative is None or not len(representative):
        raise DataError("int8 export: expected representative images from the run's training split, got none")

    def samples() -> Any:
        for image in representative:
            yield {INPUT_KEY: image[None]}

    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8


# ---- readers (verification) ----

def run_export(fmt: str, path: str | os.PathLike[str], images: np.ndarray, batch: int = 100) -> np.ndarray:
    """Probabilities from an exported model, for uint8 images [N, *input_shape]."""
    import tensorflow as tf

    path = Path(path)
    if fmt == "keras":
        import keras

        import transferlab.core.models.custom_objects  # noqa: F401  custom layers

        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        return np.asarray(model.predict(images.astype(np.float32), batch_size=batch, verbose=0))
    if fmt == "savedmodel":
        serve = tf.saved_model.load(str(path)).signatures[SERVING_KEY]
        return np.concatenate([serve(**{INPUT_KEY: tf.constant(images[i:i + batch])})[OUTPUT_KEY].numpy()
                               for i in range(0, len(images), batch)])
    from ai_edge_litert.interpreter import Interpreter

    with native_noise_filtered():  # the interpreter's greeting on stderr, no news
        interpreter = Interpreter(model_path=str(path))
        runner = interpreter.get_signature_runner(SERVING_KEY)
        return np.concatenate([runner(**{INPUT_KEY: images[i:i + batch]})[OUTPUT_KEY]
                               for i in range(0, len(images), batch)])


def verification_images(store: RunStore, run_id: str, info: ModelInfo) -> np.ndarray:
    """uint8 images to compare exports on: the first VERIFY_LIMIT samples of the evaluation set the run's kind
    uses (MNIST: the test digits; folders: the test split, else validation, else training)."""
    samples = parts_named(info.kind).evaluation_samples(store, run_id, None)
    images = []
    for sample_id in samples.ids[:VERIFY_LIMIT]:
        try:
            images.append(samples.load(sample_id, info.image_size))
        except TransferlabError as exc:
            logger.warning("verification skips %s: %s", sample_id, exc)
    if not images:
        raise DataError(f"expected evaluation images of run {run_id} (its split.json, under "
                        f"{samples.root or 'its data folder'}) to verify the export, got none")
    return np.stack(images)


def representative_images(store: RunStore, run_id: str, info: ModelInfo) -> np.ndarray:
    """Up to REPRESENTATIVE_LIMIT uint8 images spread evenly over the run's training samples (MNIST: the training
    digits; folders: the training split), to calibrate int8 quantization."""
    samples = parts_named(info.kind).training_samples(store, run_id)
    picks = np.unique(np.linspace(0, len(samples.ids) - 1, min(REPRESENTATIVE_LIMIT, len(samples.ids))).astype(int))
    images = []
    for index in picks:
        try:
            images.append(samples.load(samples.ids[index], info.image_size))
        except TransferlabError as exc:
            logger.warning("the int8 calibration set skips %s: %s", samples.ids[index], exc)
    if not images:
        raise DataError(f"expected training images of run {run_id} to calibrate the int8 export, got none")
    return np.stack(images)


# ---- files ----

def _target(store: RunStore, run_id: str, fmt: ExportFormat, out: str | os.PathLike[str] | None) -> Path:
    if out is None:
        return store.get(run_id).path / "exports" / EXPORT_FILE_NAMES[fmt]
    target = Path(out).expanduser()
    if fmt != "savedmodel" and target.is_dir():
        return target / EXPORT_FILE_NAMES[fmt]
    return target


@contextlib.contextmanager
def _atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temp folder beside `target`; on success it replaces `target` (the old one is removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            trash = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, trash)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

