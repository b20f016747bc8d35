"""Prepare a user's own digit image the way MNIST's digits were prepared, so a model trained on MNIST
reads it: grayscale, light ink on a dark background (inverted when the background is light), cropped to
the ink, fitted into 20×20 keeping the aspect ratio, and centred by centre of mass in a 28×28 field."""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image

from transferlab.core.data.images import open_image, to_gray_array
from transferlab.core.errors import ImageError

logger = logging.getLogger(__name__)

FIELD = 28
BOX = 20
INK_THRESHOLD = 0.25  # of the stretched range: fainter pixels are paper texture or shadow
WORK_SIZE = 100  # pixels: large crops are reduced to this before strokes are measured


def prepare_digit(path: str | os.PathLike[str]) -> np.ndarray:
    """uint8 (28, 28), white digit on black, ready for an MNIST model. Raises ImageError for unusable files."""
    return prepare_digit_array(to_gray_array(open_image(path)), name=str(path))


def prepare_digit_array(gray: np.ndarray, name: str = "image") -> np.ndarray:
    ink = _ink_map(np.asarray(gray, dtype=np.float32))
    rows, cols = np.nonzero(ink > INK_THRESHOLD)
    if rows.size == 0:
        raise ImageError(f"expected a digit (dark ink on light paper or light on dark) in {name}, got a blank image")
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    crop = np.where(crop > INK_THRESHOLD, crop, 0.0)
    crop = _thicken_thin_strokes(crop)
    return _centre_in_field(_fit_into_box(crop))


def _ink_map(gray: np.ndarray) -> np.ndarray:
    """0..1 ink intensity, with the background (judged from the border) mapped to 0."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 127:  # light paper: ink is dark
        gray = 255.0 - gray
        background = 255.0 - background
    peak = float(np.percentile(gray, 99.95))  # a thin pen line can be well under 1 % of a photo
    if peak - background < 16:  # no contrast at all
        return np.zeros_like(gray)
    return np.clip((gray - background) / (peak - background), 0.0, 1.0)


def _thicken_thin_strokes(crop: np.ndarray) -> np.ndarray:
    """A pen line on a large photo would vanish when shrunk to 20 px; widen it to MNIST's ~2 px strokes."""
    if max(crop.shape) > WORK_SIZE:  # work at a modest size: cheap, and strokes keep their proportions
        scale = WORK_SIZE / max(crop.shape)
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        image = Image.fromarray((crop * 255).astype(np.uint8), "L").resize(size, Image.Resampling.BOX)
        crop = np.asarray(image, dtype=np.float32) / 255.0
        crop = crop / max(float(crop.max()), 1e-6)
    solid = crop > INK_THRESHOLD
    edge = solid & ~_eroded(solid)
    width = 2.0 * solid.sum() / max(edge.sum(), 1)
    target = max(crop.shape) / BOX * 2.0  # stroke width, in crop pixels, that becomes ~2 px after fitting
    grow = round((target - width) / 2)
    return _dilated(crop, grow) if grow >= 1 else crop


def _dilated(values: np.ndarray, radius: int) -> np.ndarray:
    """Grey-level dilation by a (2r+1)² square, on a canvas grown so that nothing is clipped."""
    out = np.pad(values, radius)
    for axis in (0, 1):
        shifted = [np.roll(out, shift, axis=axis) for shift in range(-radius, radius + 1)]
        out = np.max(shifted, axis=0)
    return out


def _eroded(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    out = mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out &= padded[1 + dy:1 + dy + mask.shape[0], 1 + dx:1 + dx + mask.shape[1]]
    return out


def _fit_into_box(crop: np.ndarray) -> np.ndarray:
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray((crop * 255).astype(np.uint8), "L").resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32)


def _centre_in_field(digit: np.ndarray) -> np.ndarray:
    """Place the digit so that its centre of mass sits at the field's centre (as MNIST did)."""
    height, width = digit.shape
    total = digit.sum()
    rows, cols = np.indices(digit.shape)
    com_y = (rows * digit).sum() / total if total else height / 2
    com_x = (cols * digit).sum() / total if total else width / 2
    top = int(np.clip(round(FIELD / 2 - com_y), 0, FIELD - height))
    left = int(np.clip(round(FIELD / 2 - com_x), 0, FIELD - width))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + height, left:left + width] = digit
    return np.clip(field, 0, 255).round().astype(np.uint8)
