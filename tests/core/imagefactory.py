"""Test helper: write image files and class folders, good and broken, into a (tmp) folder.

Sizes are (height, width), like Keras' ``image_size``. Everything is seeded and deterministic.

Good data
- ``make_class_folder(root, classes={"cat": 20, "dog": 30}, size=(64, 64), fmt="jpg", seed=0)`` — one
  subfolder per class, images whose class is easy to learn (each class has its own colour and stripe
  direction, plus per-image jitter and noise). Returns ``root``.
- ``class_image(class_index, size, rng)`` — the uint8 (H, W, 3) pixels of one such image.
- ``class_color(class_index)`` — the base colour of a class.
- ``textured_image(class_index, size, rng)`` — the class colour modulated by a random smooth texture: every
  image looks different to a perceptual hash (near-duplicate tests), the class stays easy to learn;
  ``make_textured_folder(root, classes, size, seed)`` writes a class folder of them (JPEG q92).
- ``write_image(path, pixels_or_image, **save_kwargs)`` — save anything (format from the suffix).
- ``write_mode_sample(path, mode)`` — an image stored in a given PIL mode ("1", "L", "LA", "P", "P-gif" (a
  palette GIF), "RGB", "RGBA", "CMYK", "I;16"); returns the uint8 (H, W, 3) RGB that core.images should read
  back (transparency composited onto white, 16-bit stretched by its range). MODE_SAMPLE_SUFFIX: the suffix.
- ``write_exif_rotated(path, orientation)`` / ``write_animated_gif(path)`` — EXIF and animation cases.

Broken files (each ``write_*(path) -> Path``); ``BROKEN_WRITERS`` maps a kind to its writer and
``BROKEN_REASONS`` to a word the refusal message contains; ``add_broken_files(folder)`` writes one of each.
- ``write_zero_bytes``, ``write_text_as_image`` (text renamed .png), ``write_truncated_jpeg``,
  ``write_truncated_png``, ``write_tiny_image`` (1×1), ``write_huge_png`` (a crafted 40,000×40,000 PNG
  header: a few hundred bytes, nothing allocated).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

Size = tuple[int, int]  # (height, width)

# Well separated hues; beyond these, colours are generated.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40), (40, 170, 60), (40, 80, 220), (230, 200, 30), (160, 50, 200),
    (30, 200, 210), (240, 130, 20), (120, 120, 120), (250, 120, 180), (90, 60, 20),
)
_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
                 ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def class_color(class_index: int) -> tuple[int, int, int]:
    if class_index < len(_PALETTE):
        return _PALETTE[class_index]
    rng = np.random.default_rng(1000 + class_index)
    return tuple(int(v) for v in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def class_image(class_index: int, size: Size = (64, 64), rng: np.random.Generator | None = None) -> np.ndarray:
    """uint8 (H, W, 3): the class colour, jittered, with stripes whose direction depends on the class."""
    rng = rng if rng is not None else np.random.default_rng(class_index)
    height, width = size
    base = np.array(class_color(class_index), dtype=np.float32) + rng.normal(0, 12, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = (class_index * 0.7) % np.pi
    period = max(4.0, min(height, width) / 6.0)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period) + phase)
    pixels = base[None, None, :] * (0.75 + 0.25 * stripes[:, :, None])
    pixels += rng.normal(0, 6, size=(height, width, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def write_image(path: str | os.PathLike[str], image: np.ndarray | Image.Image, **save_kwargs: object) -> Path:
    """Save pixels (uint8 (H, W) / (H, W, 3) / (H, W, 4)) or a PIL image; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, format=_SAVE_FORMATS.get(path.suffix.lower()), **save_kwargs)
    return path


def make_class_folder(
    root: str | os.PathLike[str],
    classes: Mapping[str, int] | None = None,
    size: Size = (64, 64),
    fmt: str = "jpg",
    seed: int = 0,
    *,
    nested: int = 0,
) -> Path:
    """root/<class>/<class>_0000.<fmt>...; class k (in sorted name order) uses class_image(k).

    `nested` > 0 puts every n-th image of a class one folder deeper (root/<class>/sub/...), which must
    still count for <class>. Returns root."""
    root = Path(root)
    classes = dict(classes) if classes is not None else {"cat": 20, "dog": 30}
    rng = np.random.default_rng(seed)
    for class_index, name in enumerate(sorted(classes)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(classes[name]):
            sub = folder / "sub" if nested and i % nested == nested - 1 else folder
            kwargs: dict[str, object] = {"quality": 92} if fmt.lower() in ("jpg", "jpeg", "webp") else {}
            write_image(sub / f"{name}_{i:04d}.{fmt}", class_image(class_index, size, rng), **kwargs)
    return root


def textured_image(class_index: int, size: Size = (48, 48), rng: np.random.Generator | None = None) -> np.ndarray:
    """uint8 (H, W, 3): the class colour times a random smooth (bicubic 8×8) texture, plus a little noise."""
    rng = rng if rng is not None else np.random.default_rng(class_index)
    height, width = size
    low = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    texture = np.asarray(low.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    pixels = np.array(class_color(class_index), np.float32) * (0.55 + 0.45 * texture)
    pixels += rng.normal(0, 4, size=(height, width, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def make_textured_folder(root: str | os.PathLike[str], classes: Mapping[str, int], size: Size = (48, 48),
                         seed: int = 0) -> Path:
    """root/<class>/<class>_0000.jpg...; class k (sorted names) uses textured_image(k). Returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for class_index, name in enumerate(sorted(classes)):
        for i in range(classes[name]):
            write_image(root / name / f"{name}_{i:04d}.jpg", textured_image(class_index, size, rng), quality=92)
    return root


# ---- broken files ----

def write_zero_bytes(path: str | os.PathLike[str]) -> Path:
    path = _parent_made(path)
    path.write_bytes(b"")
    return path


def write_text_as_image(path: str | os.PathLike[str]) -> Path:
    """A plain text file with an image suffix (e.g. notes renamed to .png)."""
    path = _parent_made(path)
    path.write_text("These are my notes, not a picture.\n" * 20, encoding="utf-8")
    return path


def write_truncated_jpeg(path: str | os.PathLike[str], size: Size = (64, 64), keep: float = 0.5) -> Path:
    """A valid noisy JPEG cut after `keep` of its bytes."""
    return _truncated(path, size, keep, "JPEG")


def write_truncated_png(path: str | os.PathLike[str], size: Size = (64, 64), keep: float = 0.5) -> Path:
    """A valid noisy PNG cut after `keep` of its bytes."""
    return _truncated(path, size, keep, "PNG")


def write_tiny_image(path: str | os.PathLike[str], size: Size = (1, 1)) -> Path:
    return write_image(path, np.full((*size, 3), 128, dtype=np.uint8))


def write_huge_png(path: str | os.PathLike[str], width: int = 40_000, height: int = 40_000) -> Path:
    """A well-formed PNG header claiming width×height RGB pixels, with a tiny IDAT: cheap to write, and
    a decoder that does not check the size first would try to allocate width×height×3 bytes."""
    path = _parent_made(path)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


BROKEN_WRITERS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    # kind: (file name, writer)
    "zero_bytes": ("empty.jpg", write_zero_bytes),
    "text_as_png": ("notes.png", write_text_as_image),
    "truncated_jpeg": ("cut.jpg", write_truncated_jpeg),
    "truncated_png": ("cut.png", write_truncated_png),
    "tiny": ("dot.png", write_tiny_image),
    "huge": ("bomb.png", write_huge_png),
}
BROKEN_REASONS: dict[str, str] = {
    # kind: a phrase the ImageError message must contain
    "zero_bytes": "empty file",
    "text_as_png": "text file",
    "truncated_jpeg": "truncated",
    "truncated_png": "truncated",
    "tiny": "got 1×1",
    "huge": "at most",
}


def add_broken_files(folder: str | os.PathLike[str], prefix: str = "") -> dict[str, Path]:
    """One file of each broken kind in `folder`; returns kind → path."""
    folder = Path(folder)
    return {kind: writer(folder / f"{prefix}{name}") for kind, (name, writer) in BROKEN_WRITERS.items()}


# ---- modes, EXIF, animation ----

MODE_SAMPLE_SUFFIX: dict[str, str] = {
    "1": ".png", "L": ".png", "LA": ".png", "P": ".png", "P-gif": ".gif", "RGB": ".png", "RGBA": ".png",
    "CMYK": ".jpg", "I;16": ".png",
}


def write_mode_sample(path: str | os.PathLike[str], mode: str) -> np.ndarray:
    """Write a 32×32 image stored in `mode`; return the RGB uint8 (32, 32, 3) it should decode to.

    Left half / right half differ, in blocks aligned to JPEG's 16-pixel MCUs (so CMYK JPEG stays close)."""
    h = w = 32
    left = np.zeros((h, w), dtype=bool)
    left[:, : w // 2] = True
    expected = np.zeros((h, w, 3), dtype=np.uint8)

    def paint(left_rgb: tuple[int, int, int], right_rgb: tuple[int, int, int]) -> None:
        expected[left] = left_rgb
        expected[~left] = right_rgb

    if mode == "1":
        image = Image.fromarray(~left).convert("1")  # left black, right white
        paint((0, 0, 0), (255, 255, 255))
    elif mode == "L":
        image = Image.fromarray(np.where(left, 40, 200).astype(np.uint8), "L")
        paint((40, 40, 40), (200, 200, 200))
    elif mode == "LA":  # gray 100; fully transparent on the left (→ white), opaque on the right
        la = np.stack([np.full((h, w), 100, np.uint8), np.where(left, 0, 255).astype(np.uint8)], axis=2)
        image = Image.fromarray(la, "LA")
        paint((255, 255, 255), (100, 100, 100))
    elif mode in ("P", "P-gif"):  # index 0 (red) transparent on the left, index 1 (blue) on the right
        image = Image.fromarray(np.where(left, 0, 1).astype(np.uint8), "P")
        image.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
        image.info["transparency"] = 0
        paint((255, 255, 255), (0, 0, 255))
    elif mode == "RGB":
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[left] = (10, 200, 30)
        rgb[~left] = (250, 5, 120)
        image = Image.fromarray(rgb, "RGB")
        paint((10, 200, 30), (250, 5, 120))
    elif mode == "RGBA":  # red at alpha 128 over white on the left, opaque green on the right
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[left] = (255, 0, 0, 128)
        rgba[~left] = (0, 255, 0, 255)
        image = Image.fromarray(rgba, "RGBA")
        half = round(255 * (1 - 128 / 255))
        paint((255, half, half), (0, 255, 0))
    elif mode == "CMYK":  # pure cyan on the left, white (no ink) on the right
        cmyk = np.zeros((h, w, 4), np.uint8)
        cmyk[left] = (255, 0, 0, 0)
        image = Image.fromarray(cmyk, "CMYK")
        paint((0, 255, 255), (255, 255, 255))
    elif mode == "I;16":  # 1000 on the left, 3000 on the right: stretched to 0 and 255
        values = np.where(left, 1000, 3000).astype(np.uint16)
        image = Image.fromarray(values)  # mode I;16
        paint((0, 0, 0), (255, 255, 255))
    else:
        raise ValueError(f"expected one of {', '.join(MODE_SAMPLE_SUFFIX)}, got {mode!r}")
    kwargs: dict[str, object] = {"quality": 95} if mode == "CMYK" else {}
    write_image(path, image, **kwargs)
    return expected


def write_exif_rotated(path: str | os.PathLike[str], orientation: int = 6, size: Size = (16, 32)) -> Path:
    """A JPEG stored as `size` (height, width): a red left half and a blue right half as stored, with an
    EXIF orientation tag. Orientation 6 means "rotate 90° clockwise to display"."""
    height, width = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2:] = (0, 0, 255)
    image = Image.fromarray(pixels, "RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    return write_image(path, image, exif=exif.tobytes(), quality=95)


def write_animated_gif(path: str | os.PathLike[str], size: Size = (16, 16)) -> Path:
    """A 3-frame GIF: red, green, blue frames (the first frame is red)."""
    frames = [Image.new("RGB", (size[1], size[0]), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = _parent_made(path)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def _truncated(path: str | os.PathLike[str], size: Size, keep: float, fmt: str) -> Path:
    path = _parent_made(path)
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _parent_made(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
