"""Preparing one image for a stored model: as an MNIST digit, or as an RGB photo of the model's input size.

    digit_from_file(path)                 uint8 (28, 28): grayscale, inverted, cropped and centred like MNIST
    digit_from_array(image, name)         the same for an in-memory image (an already prepared digit is kept)
    rgb_from_file(path, size)             uint8 (h, w, 3)
    rgb_from_array(image, size, name)     the same for an in-memory image

Which one a stored model needs is its run kind's business (transferlab.core.training.kinds). In-memory images
are uint8 gray (H, W) or RGB(A) (H, W, 3|4) of any size; anything else raises ImageError.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from transferlab.core.data.digits import prepare_digit, prepare_digit_array
from transferlab.core.data.images import load_rgb, to_gray_array, to_rgb_array
from transferlab.core.errors import ImageError


def digit_from_file(path: str | os.PathLike[str]) -> np.ndarray:
    return np.asarray(prepare_digit(path), dtype=np.uint8)


def digit_from_array(image: np.ndarray, name: str = "image") -> np.ndarray:
    gray = to_gray_array(_to_pil(image, name))
    if gray.shape == (28, 28) and _looks_prepared(gray):
        return gray
    return np.asarray(prepare_digit_array(gray, name=name), dtype=np.uint8)


def rgb_from_file(path: str | os.PathLike[str], size: tuple[int, int]) -> np.ndarray:
    return load_rgb(path, size)


def rgb_from_array(image: np.ndarray, size: tuple[int, int], name: str = "image") -> np.ndarray:
    rgb = to_rgb_array(_to_pil(image, name))
    if rgb.shape[:2] != tuple(size):
        resized = Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.BICUBIC)
        rgb = np.asarray(resized, dtype=np.uint8)
    return rgb


def _to_pil(image: np.ndarray, name: str) -> Image.Image:
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or min(
            array.shape[:2]) < 1:
        raise ImageError(f"expected an image array (H, W), (H, W, 3) or (H, W, 4) in {name}, "
                         f"got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float64)), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def _looks_prepared(gray: np.ndarray) -> bool:
    """A 28×28 array that is already an MNIST-style digit: dark background (border mostly black)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(border.mean()) < 10.0
