"""Robust image decoding for the engine: one place that opens user images and refuses bad ones clearly.

Public API (all sizes are (height, width), like Keras' ``image_size``; PIL's own ``Image.size`` is (w, h)):

- ``IMAGE_EXTENSIONS`` / ``is_image_name(name)`` — the one list of image suffixes (transferlab.core.catalog).
- ``DECODERS`` — the only Pillow decoders ever used (JPEG, PNG, BMP, GIF, WebP, TIFF), whatever a file is named.
- ``read_image_bytes(path, *, max_bytes)`` — the bytes of a regular file, its size checked before reading;
  ImageError for a missing file, a folder, a FIFO, a device, a socket, an empty or an over-size file.
- ``decode_image(data, *, name, min_size, max_pixels, draft_size)`` — a fully loaded, EXIF-oriented image.
- ``open_image(path, *, min_size, max_pixels, draft_size)`` — both of the above.
- ``check_image(data, *, name, min_size, max_pixels)`` — validate cheaply; the full (height, width).
- ``to_rgb_array(image)`` / ``to_gray_array(image)`` — uint8 (H, W, 3) / (H, W) from any PIL mode.
- ``load_rgb(path, size)`` — open, convert and resize in one call (what data sets use).

Nothing in an image file can make the app run code or wait forever: Pillow is only ever asked to try the
decoders in ``DECODERS`` (an EPS/PostScript or PDF file named ``holiday.jpg`` is refused, never handed to
Ghostscript), and only regular files are read, with their size checked on the opened file before reading (a FIFO
named ``x.png`` is refused at once, a link to ``/dev/zero`` is refused instead of read until memory runs out).

Every refusal is a ``core.errors.ImageError`` with a one-line message "expected X, got Y". Images larger
than ``max_pixels`` are refused from their header, before any pixel is decoded. Pillow's own global limit
(``Image.MAX_IMAGE_PIXELS``, ~89 Mpx; an error above twice that) also applies; its DecompressionBombError is
reported as an ImageError too. Warnings filters are deliberately not touched here (they are process-wide and
not thread-safe, and images are decoded on tf.data threads): with the default ``max_pixels`` (64 Mpx) every
image big enough to trigger Pillow's warning is refused by our own check anyway.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from transferlab.core.catalog import IMAGE_SUFFIXES
from transferlab.core.catalog import is_image_name as is_image_name  # re-exported
from transferlab.core.errors import ImageError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(IMAGE_SUFFIXES)
# The only decoders Pillow may try, in this order. Never EPS (Pillow runs Ghostscript for it), PDF or the rest.
DECODERS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
_DECODER_NAMES = "JPEG, PNG, BMP, GIF, WebP or TIFF"
_OPENED_FORMATS = frozenset({*DECODERS, "MPO"})  # Pillow's JPEG decoder reports multi-picture JPEGs as MPO
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # a file larger than this is refused before a byte is read
DEFAULT_MIN_SIDE = 8  # pixels; smaller images carry no usable content (a 1×1 "image" is refused)
DEFAULT_MAX_PIXELS = 64_000_000  # width × height; refused before decoding (decompression bombs)

# What Pillow raises on corrupt data varies by plugin; these are the ones seen in practice.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error, zlib.error,
)
_EXIF_ORIENTATION = 0x0112
_SWAPPED_ORIENTATIONS = (5, 6, 7, 8)  # orientations that swap width and height
_RESAMPLE = Image.Resampling.BICUBIC  # antialiased when shrinking; with reducing_gap for big reductions


def read_image_bytes(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The whole file, after checking that it is a regular file of 1..max_bytes bytes.

    The opened file itself is checked (fstat) before reading, so a FIFO, a device (a link to /dev/zero), a
    socket or a folder is refused at once, and nothing is read beyond `max_bytes`. The file is opened
    non-blocking: opening a FIFO that no one writes to returns immediately instead of waiting forever."""
    path = Path(path)
    try:
        _check_regular(os.stat(path), path, max_bytes)  # most refusals before opening anything
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except FileNotFoundError as exc:
        raise ImageError(f"expected an image file at {path}, got no such file") from exc
    except OSError as exc:
        raise ImageError(f"expected a readable image file at {path}, got {_describe(exc)}") from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            _check_regular(os.fstat(handle.fileno()), path, max_bytes)  # what was opened, not what was named
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"expected a readable image file at {path}, got {_describe(exc)}") from exc
    if len(data) > max_bytes:  # it grew while being read
        raise ImageError(f"expected an image file of at most {_mib(max_bytes)} at {path}, got a larger one")
    if not data:
        raise ImageError(f"expected an image file at {path}, got an empty file (0 bytes)")
    return data


_OPEN_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_SPECIAL_FILES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISSOCK, "a socket"))


def _check_regular(info: os.stat_result, path: Path, max_bytes: int) -> None:
    """ImageError unless `info` describes a regular file of 1..max_bytes bytes."""
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _SPECIAL_FILES if test(info.st_mode)), "not a regular file")
        via = " (through a link)" if path.is_symlink() else ""
        raise ImageError(f"expected an image file at {path}, got {kind}{via}")
    if info.st_size == 0:
        raise ImageError(f"expected an image file at {path}, got an empty file (0 bytes)")
    if info.st_size > max_bytes:
        raise ImageError(f"expected an image file of at most {_mib(max_bytes)} at {path}, "
                         f"got {info.st_size:,} bytes")


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"


def decode_image(
    data: bytes,
    *,
    name: str = "image",
    min_size: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode image bytes completely and check them; `name` only appears in error messages.

    The result is fully loaded (no open file behind it), EXIF-rotated, and the first frame of an animation.
    `draft_size` (height, width) lets a JPEG decode at a reduced scale (1/2, 1/4, 1/8) that still covers
    that size in both directions — much cheaper for big photos; other formats ignore it. Size checks use
    the full stored size, whatever the draft.
    """
    return _decode(data, name, min_size, max_pixels, draft_size)[0]


def check_image(
    data: bytes,
    *,
    name: str = "image",
    min_size: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Validate image bytes by decoding them all as cheaply as possible (JPEGs at 1/8 scale); return the
    full (height, width) as displayed (after EXIF rotation). Raise ImageError if unusable."""
    return _decode(data, name, min_size, max_pixels, (1, 1))[1]


def _decode(
    data: bytes, name: str, min_size: int, max_pixels: int, draft_size: tuple[int, int] | None
) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded, oriented image and its full oriented (height, width)."""
    if not data:
        raise ImageError(f"expected image data for {name}, got an empty file (0 bytes)")
    too_big = f"expected an image of at most {max_pixels:,} pixels in {name}"
    try:
        image = Image.open(io.BytesIO(data), formats=DECODERS)  # no other decoder ever sees the bytes
    except UnidentifiedImageError as exc:
        raise ImageError(f"expected an image ({_formats()}) in {name}, got {_sniff(data)}") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{too_big}, got a larger one ({_describe(exc)})") from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(f"expected a readable image in {name}, "
                         f"got a damaged header ({_describe(exc)})") from exc
    with image:
        if image.format not in _OPENED_FORMATS:
            raise ImageError(f"expected an image ({_formats()}) in {name}, got {image.format} data")
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"{too_big}, got {width}×{height} ({width * height:,} pixels)")
        if min(width, height) < min_size:
            raise ImageError(f"expected an image at least {min_size}×{min_size} pixels in {name}, "
                             f"got {width}×{height}")
        if ImageFile.LOAD_TRUNCATED_IMAGES and not _warned_truncated:
            _warn_truncated_once()
        try:
            shape = (width, height) if _orientation(image) in _SWAPPED_ORIENTATIONS else (height, width)
            if draft_size is not None and image.format == "JPEG":
                side = max(draft_size)  # square request: covers the target whatever the EXIF rotation
                image.draft(None, (side, side))
            image.load()
            return _oriented_copy(image), shape
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{too_big}, got a larger one ({_describe(exc)})") from exc
        except MemoryError as exc:
            raise ImageError(f"expected an image that fits in memory in {name}, "
                             f"got {width}×{height}") from exc
        except _DECODE_ERRORS as exc:
            raise ImageError(f"expected a complete {image.format or ''} image in {name}, "
                             f"got damaged or truncated data ({_describe(exc)})") from exc


def open_image(
    path: str | os.PathLike[str],
    *,
    min_size: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Open, fully decode and check one image file (see decode_image); raise ImageError if unusable."""
    return decode_image(read_image_bytes(path), name=str(path), min_size=min_size, max_pixels=max_pixels,
                        draft_size=draft_size)


_warned_truncated = False


def _warn_truncated_once() -> None:
    global _warned_truncated
    _warned_truncated = True
    logger.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set by some code: truncated files will not be refused")


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except _DECODE_ERRORS:
        return 1


def _oriented_copy(image: Image.Image) -> Image.Image:
    """A detached copy of the (first frame of the) image, EXIF orientation applied."""
    try:
        oriented = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as exc:  # a damaged EXIF block: keep the pixels as stored
        logger.debug("ignoring unreadable EXIF orientation: %s", _describe(exc))
        oriented = None
    return oriented if oriented is not None and oriented is not image else image.copy()


# ---- pixels ----

def to_rgb_array(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) from any mode. Transparency is composited onto white; 16-bit and float images are
    stretched from their actual value range to 0..255 (a constant image keeps its value, clipped)."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in ("1", "L"):
        gray = np.asarray(image.convert("L"), dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if _is_wide(mode):
        gray = _wide_to_uint8(image)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if _has_alpha(image):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        return _over_white(rgba[:, :, :3], rgba[:, :, 3:])
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def to_gray_array(image: Image.Image) -> np.ndarray:
    """uint8 (H, W) from any mode (ITU-R 601 luma for colour; transparency composited onto white)."""
    mode = image.mode
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    if _is_wide(mode):
        return _wide_to_uint8(image)
    if mode in ("LA", "La") or (mode in ("P", "PA") and _palette_is_gray(image)):
        la = np.asarray(image.convert("LA"), dtype=np.float32)
        return _over_white(la[:, :, :1], la[:, :, 1:])[:, :, 0]
    rgb = to_rgb_array(image)
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.uint8).copy()


def load_rgb(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    *,
    min_size: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """uint8 (H, W, 3) pixels of an image file, resized (stretched) to `size` = (height, width) if given.

    Big JPEGs are decoded at a reduced scale first (Image.draft), then resized with an antialiasing
    bicubic filter."""
    if size is not None:
        _check_size(size)
    image = open_image(path, min_size=min_size, max_pixels=max_pixels, draft_size=size)
    rgb = to_rgb_array(image)
    if size is None or rgb.shape[:2] == tuple(size):
        return rgb
    resized = Image.fromarray(rgb, "RGB").resize((size[1], size[0]), _RESAMPLE, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8).copy()


def _check_size(size: tuple[int, int]) -> None:
    if (len(size) != 2 or not all(isinstance(s, int | np.integer) for s in size)
            or min(size) < 1):
        raise ImageError(f"expected an image size (height, width) of positive integers, got {size!r}")


def _is_wide(mode: str) -> bool:
    return mode in ("I", "F") or mode.startswith("I;16")


def _wide_to_uint8(image: Image.Image) -> np.ndarray:
    """16-bit / 32-bit integer or float gray → uint8, stretched by the actual min..max of the pixels."""
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if high > low:
        values = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        image.mode == "P" and "transparency" in image.info)


def _palette_is_gray(image: Image.Image) -> bool:
    return image.palette is not None and image.palette.mode in ("L", "LA")


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite float colour channels with a float 0..255 alpha channel onto white, as uint8."""
    a = alpha / 255.0
    out = color * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _formats() -> str:
    return _DECODER_NAMES


# Magic numbers of documents and image formats that are refused, to say what a refused file is.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%!", "a PostScript/EPS document (refused: PostScript is a program)"),
    (b"\xc5\xd0\xd3\xc6", "an EPS document (refused: PostScript is a program)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"8BPS", "a Photoshop (PSD) file"),
    (b"\x00\x00\x01\x00", "an icon (ICO) file"),
    (b"icns", "an icon (ICNS) file"),
    (b"qoif", "a QOI image"),
    (b"DDS ", "a DirectDraw (DDS) texture"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xffO\xffQ", "a JPEG 2000 codestream"),
    (b"\x89HDF", "an HDF5 file"),
)


def _sniff(data: bytes) -> str:
    """A short description of what non-image bytes look like, for error messages."""
    head = data[:512]
    for signature, description in _SIGNATURES:
        if head.startswith(signature):
            return description
    if head[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "an AVIF/HEIF image"
    if head.startswith((b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")) and head[2:3].isspace():
        return "a PNM (PBM/PGM/PPM) image"
    if head.lstrip().startswith((b"<!DOCTYPE html", b"<html", b"<HTML")):
        return "an HTML page"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return "an SVG/XML document"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return f"unrecognised binary data ({len(data):,} bytes)"
    return f"a text file ({len(data):,} bytes)"
