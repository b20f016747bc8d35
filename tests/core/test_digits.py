"""'Does it read my handwriting?': user images are prepared the way MNIST's digits were."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transferlab.core.data.digits import prepare_digit
from transferlab.core.data.mnist import load_mnist
from transferlab.core.errors import ImageError


def _photo_of(digit: np.ndarray, path, size=(300, 360), mode="RGB", noise=0) -> None:
    """Dark ink on light paper, large, not square, slightly noisy: like a phone photo of a digit."""
    paper = 235 - digit.astype(np.int16) * 200 // 255
    image = Image.fromarray(paper.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16)
    pixels = pixels + np.random.default_rng(0).integers(-noise, noise + 1, pixels.shape) if noise else pixels
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode).save(path)


@pytest.mark.parametrize(("suffix", "mode"), [(".jpg", "RGB"), (".png", "RGBA"), (".bmp", "L"),
                                              (".gif", "P"), (".webp", "RGB")])
def test_a_photographed_digit_comes_back_like_the_mnist_original(tmp_path, suffix, mode):
    digits = load_mnist().test_images[:10]
    correlations = []
    for i, digit in enumerate(digits):
        path = tmp_path / f"digit {i} ünïcode{suffix}"
        _photo_of(digit, path, mode=mode, noise=8)
        seen = prepare_digit(path)
        assert seen.shape == (28, 28) and seen.dtype == np.uint8
        assert seen[0].max() == 0 and seen[:, 0].max() == 0  # white digit on black, margins empty
        correlations.append(np.corrcoef(seen.ravel(), digit.ravel())[0, 1])
    assert np.mean(correlations) > 0.8


def test_light_ink_on_dark_is_not_inverted(tmp_path):
    digit = load_mnist().test_images[0]
    Image.fromarray(digit).resize((100, 100)).save(tmp_path / "d.png")
    assert np.corrcoef(prepare_digit(tmp_path / "d.png").ravel(), digit.ravel())[0, 1] > 0.8


def test_a_thin_pen_stroke_on_a_big_photo_stays_visible(tmp_path):
    image = Image.new("L", (1000, 1000), 240)
    from PIL import ImageDraw

    ImageDraw.Draw(image).line([(500, 150), (500, 850)], fill=20, width=6)  # a "1" drawn with a fine pen
    image.save(tmp_path / "one.png")
    seen = prepare_digit(tmp_path / "one.png")
    assert seen.max() > 200
    assert (seen > 128).sum(axis=1).max() >= 2  # at least ~2 px wide, like MNIST strokes


def test_a_blank_page_is_refused(tmp_path):
    Image.new("RGB", (200, 200), "white").save(tmp_path / "blank.png")
    with pytest.raises(ImageError, match="got a blank image"):
        prepare_digit(tmp_path / "blank.png")
