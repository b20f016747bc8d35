"""Does an image look like a handwritten digit at all? For MNIST runs, before trusting any answer.

An MNIST model maps anything to one of ten digits, and after core.data.digits has cropped and centred it,
a photo or a page of text becomes a 28×28 blob the embedding check may not call far enough. Three cheap
tests on the image itself (figures measured on 20,000 MNIST training digits and on photos and text pages):
- colour: a handwritten digit is ink on paper; a colourful photo (Hasler–Süsstrunk colourfulness above
  MAX_COLOURFULNESS) is not;
- shading: MNIST strokes are nearly binary: of the pixels with any ink, at most 73 % are mid-grey for
  99.9 % of the digits (81 % at most); a photo becomes soft shading (83–92 % mid-grey);
- lines: a page of text has several separate bands of ink from top to bottom; a digit has one.
"""

from __future__ import annotations

import numpy as np

MAX_COLOURFULNESS = 35.0
MAX_GREY_SHARE = 0.8
MAX_INK_BANDS = 3
BAND_WORK_HEIGHT = 200  # rows: the image is reduced to this height before bands are counted


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003): about 0 for gray, 15 slightly colourful, 33 moderately, 45+ quite."""
    a = np.asarray(rgb, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] < 3:
        return 0.0
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def grey_share(prepared: np.ndarray) -> float:
    """Of the 28×28 pixels with any ink, the share that is mid-grey (neither background nor full stroke)."""
    x = np.asarray(prepared, dtype=np.float32)
    inked = x > 30
    return float(((x > 30) & (x < 200)).sum() / max(int(inked.sum()), 1))


def ink_bands(gray: np.ndarray) -> int:
    """Separate horizontal bands of rows holding ink (dark on light or light on dark)."""
    g = np.asarray(gray, dtype=np.float32)
    if g.ndim != 2 or min(g.shape) < 2:
        return 0
    step = max(1, g.shape[0] // BAND_WORK_HEIGHT)
    g = g[::step, ::max(1, g.shape[1] // BAND_WORK_HEIGHT)]
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    ink = np.abs(g - float(np.median(border))) > 64
    rows = ink.mean(axis=1) > 0.002
    starts = np.flatnonzero(rows[1:] & ~rows[:-1]).size + int(rows[0])
    return int(starts)


def not_a_digit(original_rgb: np.ndarray, prepared: np.ndarray) -> str:
    """Why the image doesn't look like a handwritten digit, or "" when it might be one."""
    score = colourfulness(original_rgb)
    if score > MAX_COLOURFULNESS:
        return f"a colourful image (colourfulness {score:.0f} > {MAX_COLOURFULNESS:.0f})"
    share = grey_share(prepared)
    if share > MAX_GREY_SHARE:
        return f"soft shading, not pen strokes ({share:.0%} mid-grey)"
    gray = np.asarray(original_rgb, dtype=np.float32)
    gray = gray.mean(axis=2) if gray.ndim == 3 else gray
    bands = ink_bands(gray)
    if bands > MAX_INK_BANDS:
        return f"{bands} separate lines of marks (a page of text?)"
    return ""
