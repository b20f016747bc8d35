"""Export a stored run's model for use outside the app, and check the export against the in-app model.

    path = export_run(run_id, "tflite")          # → <run folder>/exports/model.tflite

Formats
- "keras": a copy of model.keras (load with keras.saving.load_model(path, safe_mode=True)).
- "savedmodel": a TensorFlow SavedModel whose "serving_default" signature takes raw uint8 images
  `images` [None, h, w, 3] (MNIST: [None, 28, 28], white digit on black) and returns {"probabilities":
  float32 [None, classes]}; the cast and all scaling happen inside.
- "tflite": the same signature converted with tf.lite.TFLiteConverter (float32 weights, uint8 input).

Every export is verified: the exported file is loaded back and run on the run's evaluation images (the test
split, else the validation split, at most VERIFY_LIMIT; MNIST: the first 1,000 test digits) and compared
with the in-app model. The record {"format", "path", "agreement" (fraction of identical top-1 classes),
"max_abs_diff" (largest probability difference), ...} is stored in the run folder's exports.json.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.core.atomic import atomic_target
from transferlab.core.catalog import EXPORT_FILE_NAMES, EXPORT_FORMATS, ExportFormat
from transferlab.core.errors import ConfigError, DataError, ModelError, TransferlabError, first_line
from transferlab.core.kinds import kind_named
from transferlab.core.records import ModelInfo
from transferlab.core.runs.store import RunStore
from transferlab.core.training.kinds import parts_named

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = EXPORT_FORMATS
DEFAULT_NAMES: dict[ExportFormat, str] = EXPORT_FILE_NAMES
VERIFY_LIMIT = 1000
SERVING_KEY = "serving_default"
OUTPUT_KEY = "probabilities"
INPUT_KEY = "images"


def export_run(run_id: str, fmt: str, store: RunStore | None = None,
               out: str | os.PathLike[str] | None = None) -> Path:
    """Write the run's model in `fmt` (keras | savedmodel | tflite), verify it, record it; return its path."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"export format: expected one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    store = store or RunStore()
    run_id = store.resolve(run_id)
    info = store.model_info(run_id)
    input_shape = serving_input_shape(info)
    model = store.load_model(run_id)
    target = _target(store, run_id, fmt, out)
    started = time.perf_counter()
    if fmt == "keras":
        with atomic_target(target) as tmp:
            shutil.copyfile(store.model_path(run_id), tmp)
    elif fmt == "savedmodel":
        with _atomic_dir(target) as tmp:
            write_savedmodel(model, input_shape, tmp)
    else:
        data = tflite_bytes(model, input_shape)
        with atomic_target(target) as tmp:
            tmp.write_bytes(data)
    seconds = time.perf_counter() - started
    logger.info("exported run %s as %s to %s in %.1f s", run_id, fmt, target, seconds)

    images = verification_images(store, run_id, info)
    reference = np.asarray(model.predict(images.astype(np.float32), batch_size=100, verbose=0))
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


def write_savedmodel(model: Any, input_shape: tuple[int, ...], path: str | os.PathLike[str]) -> None:
    import tensorflow as tf

    module = _serving_module(model, input_shape)
    try:
        tf.saved_model.save(module, str(path), signatures={SERVING_KEY: module.serve})
    except (ValueError, TypeError, AssertionError) as exc:
        raise ModelError(f"expected a model that TensorFlow can save as a SavedModel, got "
                         f"{type(exc).__name__}: {first_line(exc, limit=300)}") from exc


def tflite_bytes(model: Any, input_shape: tuple[int, ...]) -> bytes:
    """The serving signature as a TFLite flatbuffer (float32 weights, uint8 input).

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
        try:
            return bytes(converter.convert())
        except Exception as exc:  # the converter raises ConverterError and assorted others
            raise ModelError(f"expected a model the TFLite converter accepts, got {type(exc).__name__}: "
                             f"{first_line(exc, limit=300)}") from exc


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
    interpreter = tf.lite.Interpreter(model_path=str(path))
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

