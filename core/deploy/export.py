"""Export a stored run's model for use outside the app, and check the export against the in-app model.

    path = export_run(run_id, "tflite")          # → <run folder>/exports/model.tflite

Formats
- "keras": a copy of model.keras (load with keras.saving.load_model(path, safe_mode=True)).
- "savedmodel": a TensorFlow SavedModel whose "serving_default" signature takes raw uint8 images
  `images` [None, h, w, 3] (MNIST: [None, 28, 28], white digit on black) and returns {"probabilities":
  float32 [None, classes]}; the cast and all scaling happen inside.
- "tflite": the same signature converted with tf.lite.TFLiteConverter (float32 weights, uint8 input).
Each also carries labels.txt and the temperature / unknown thresholds (core.deploy.export_trust); the
SavedModel's signature adds calibrated_probabilities, label, confidence, distance and unknown.

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
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.core.atomic import atomic_target
from transferlab.core.deploy.export_trust import (
    EXTRA_FOLDER,
    export_metadata,
    trusted_serving_module,
    write_extras,
    write_sidecars,
)
from transferlab.core.errors import ConfigError, DataError, ModelError, TransferlabError
from transferlab.core.runs.store import RunStore

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("keras", "savedmodel", "tflite")
DEFAULT_NAMES = {"keras": "model.keras", "savedmodel": "savedmodel", "tflite": "model.tflite"}
VERIFY_LIMIT = 1000
SERVING_KEY = "serving_default"
OUTPUT_KEY = "probabilities"
INPUT_KEY = "images"


def export_run(run_id: str, fmt: str, store: RunStore | None = None,
               out: str | os.PathLike[str] | None = None) -> Path:
    """Write the run's model in `fmt` (keras | savedmodel | tflite), verify it, record it; return its path."""
    if fmt not in FORMATS:
        raise ConfigError(f"export format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    store = store or RunStore()
    run_id = store.resolve(run_id)
    info = store.read_json(run_id, "model_info.json", default={}) or {}
    input_shape = serving_input_shape(info, run_id)
    model = store.load_model(run_id)
    target = _target(store, run_id, fmt, out)
    metadata, trust = export_metadata(store, run_id, info)  # labels, temperature, unknown thresholds
    started = time.perf_counter()
    if fmt == "keras":
        with atomic_target(target) as tmp:
            shutil.copyfile(store.model_path(run_id), tmp)
    elif fmt == "savedmodel":
        with _atomic_dir(target) as tmp:
            write_savedmodel(model, input_shape, tmp, module=trusted_serving_module(
                model, input_shape, metadata["class_names"], trust, INPUT_KEY, OUTPUT_KEY))
            write_extras(Path(tmp) / EXTRA_FOLDER, metadata)
    else:
        data = tflite_bytes(model, input_shape)
        with atomic_target(target) as tmp:
            tmp.write_bytes(data)
    if fmt != "savedmodel":
        write_sidecars(target, metadata)
    seconds = time.perf_counter() - started
    logger.info("exported run %s as %s to %s in %.1f s", run_id, fmt, target, seconds)

    images = verification_images(store, run_id, info)
    reference = np.asarray(model.predict(images.astype(np.float32), batch_size=100, verbose=0))
    exported = run_export(fmt, target, images)
    record = {"format": fmt, "path": str(target), "samples": len(images),
              "agreement": float(np.mean(reference.argmax(1) == exported.argmax(1))),
              "max_abs_diff": float(np.max(np.abs(reference - exported))),
              "input": {"name": INPUT_KEY, "dtype": "uint8", "shape": [None, *input_shape]},
              "output": {"name": OUTPUT_KEY, "classes": list(info.get("class_names", []))},
              "bytes": _size(target), "seconds": round(seconds, 2), "created": time.time()}
    records = [r for r in (store.read_json(run_id, "exports.json", default=[]) or [])
               if not (r.get("format") == fmt and r.get("path") == str(target))]
    store.write_json(run_id, "exports.json", [*records, record])
    logger.info("export %s: agreement %.4f, max |diff| %.2e on %d images", fmt, record["agreement"],
                record["max_abs_diff"], len(images))
    return target


def serving_input_shape(info: dict[str, Any], run_id: str = "") -> tuple[int, ...]:
    """The per-image uint8 input shape: (28, 28) for digits, (h, w, 3) for RGB."""
    kind = info.get("input")
    if kind == "digits28":
        return (28, 28)
    if kind == "rgb":
        h, w = (int(s) for s in info["image_size"])
        return (h, w, 3)
    raise ModelError(f"expected model_info.json with input digits28 or rgb in run {run_id}, got {kind or 'none'}")


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
                         f"{type(exc).__name__}: {_one_line(exc)}") from exc


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
                             f"{_one_line(exc)}") from exc


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


def verification_images(store: RunStore, run_id: str, info: dict[str, Any]) -> np.ndarray:
    """uint8 images to compare exports on: MNIST's first 1,000 test digits, or the run's evaluation split."""
    if info.get("input") == "digits28":
        from transferlab.core.data.mnist import load_mnist

        return np.asarray(load_mnist().test_images[:VERIFY_LIMIT], dtype=np.uint8)
    from transferlab.core.data.folders import DataSplit
    from transferlab.core.data.images import load_rgb

    data = store.read_json(run_id, "split.json")
    if data is None:
        raise DataError(f"expected split.json in run {run_id} to verify the export, got none")
    split = DataSplit.from_dict(data)
    items = split.test or split.val or split.train
    size = tuple(int(s) for s in info["image_size"])
    images = []
    for relative, _ in items[:VERIFY_LIMIT]:
        try:
            images.append(load_rgb(Path(split.root) / relative, size, min_size=1))
        except TransferlabError as exc:
            logger.warning("verification skips %s: %s", relative, exc)
    if not images:
        raise DataError(f"expected images of run {run_id}'s split under {split.root} to verify the export, got none")
    return np.stack(images)


# ---- files ----

def _target(store: RunStore, run_id: str, fmt: str, out: str | os.PathLike[str] | None) -> Path:
    if out is None:
        return store.get(run_id).path / "exports" / DEFAULT_NAMES[fmt]
    target = Path(out).expanduser()
    if fmt != "savedmodel" and target.is_dir():
        return target / DEFAULT_NAMES[fmt]
    return target


@contextlib.contextmanager
def _atomic_dir(target: Path):  # type: ignore[no-untyped-def]
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
