"""The engine's fixed choices, in one light module (plain Python: no TensorFlow, no numpy, no PIL), so the GUI
and the CLI can offer them without importing the modules that implement them.

- MNIST_MODELS / MNIST_MODEL_TITLES: the MNIST presets (transferlab.core.models.mnist builds them).
- DEFAULT_BACKBONE / BUNDLED_BACKBONES: backbones shipped with the app (transferlab.core.models.backbones).
- EXPORT_FORMATS / EXPORT_FORMAT_TITLES / EXPORT_FILE_NAMES: what a run can be exported as
  (transferlab.core.deploy.export).
- IMAGE_SUFFIXES: the one list of image file suffixes, used by folder scans, dropped files and file dialogs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

MnistModel = Literal["fast", "cnn", "ann", "accurate"]
MNIST_MODELS: tuple[MnistModel, ...] = ("fast", "cnn", "ann", "accurate")
MNIST_MODEL_TITLES: dict[MnistModel, str] = {
    "fast": "Fast CNN (recommended)",
    "cnn": "Seed CNN (the original recipe)",
    "ann": "ANN (dense layers only)",
    "accurate": "Accurate CNN (augmented, ~99.6 %; about 10x the fast CNN's time)",
}

DEFAULT_BACKBONE = "efficientnet-lite0"
BUNDLED_BACKBONES: tuple[str, ...] = (DEFAULT_BACKBONE,)

ExportFormat = Literal["keras", "savedmodel", "tflite", "tflite-fp16", "tflite-int8"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("keras", "savedmodel", "tflite", "tflite-fp16", "tflite-int8")
EXPORT_FORMAT_TITLES: dict[ExportFormat, str] = {
    "keras": "Keras (.keras)",
    "savedmodel": "TF SavedModel",
    "tflite": "TensorFlow Lite",
    "tflite-fp16": "TensorFlow Lite, float16 weights",
    "tflite-int8": "TensorFlow Lite, int8 (quantized)",
}
EXPORT_FILE_NAMES: dict[ExportFormat, str] = {
    "keras": "model.keras",
    "savedmodel": "savedmodel",
    "tflite": "model.tflite",
    "tflite-fp16": "model-fp16.tflite",
    "tflite-int8": "model-int8.tflite",
}
# A new export written into an existing folder is named <run id><suffix>.
EXPORT_ENTRY_SUFFIXES: dict[ExportFormat, str] = {
    "keras": ".keras",
    "savedmodel": "-savedmodel",
    "tflite": ".tflite",
    "tflite-fp16": "-fp16.tflite",
    "tflite-int8": "-int8.tflite",
}

# The formats the engine decodes (transferlab.core.data.images allows exactly these decoders: JPEG, PNG, BMP, GIF,
# WebP, TIFF); compare lower-cased.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def is_image_name(name: str | os.PathLike[str]) -> bool:
    """True when the file name ends with one of IMAGE_SUFFIXES (case-insensitive)."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def image_file_filter() -> str:
    """A file-dialog filter for IMAGE_SUFFIXES, e.g. "Images (*.jpg *.jpeg ...)"."""
    return "Images (" + " ".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES) + ")"
