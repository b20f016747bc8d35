"""core.images: every broken kind refused with a clear reason, every mode read back to the right RGB."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.core import imagefactory as factory
from transferlab.core.data import images
from transferlab.core.errors import ImageError


@pytest.mark.parametrize("kind", sorted(factory.BROKEN_WRITERS))
def test_broken_files_are_refused_with_one_line_reason(tmp_path: Path, kind: str) -> None:
    name, writer = factory.BROKEN_WRITERS[kind]
    path = writer(tmp_path / name)
    with pytest.raises(ImageError) as info:
        images.open_image(path)
    message = str(info.value)
    assert factory.BROKEN_REASONS[kind] in message
    assert message.startswith("expected ") and ", got " in message
    assert "\n" not in message
    assert str(path) in message


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        images.open_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="got a folder"):
        images.open_image(tmp_path)


def test_huge_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = factory.write_huge_png(tmp_path / "bomb.png")  # 40,000 × 40,000: PIL's own bomb error
    assert path.stat().st_size < 1000
    started = time.perf_counter()
    with pytest.raises(ImageError, match="at most 64,000,000 pixels"):
        images.open_image(path)
    assert time.perf_counter() - started < 0.5
    # Below PIL's limit but above ours: our own check, with the size in the message.
    medium = factory.write_huge_png(tmp_path / "medium.png", width=9000, height=9000)
    with pytest.raises(ImageError, match="got 9000×9000"):
        images.open_image(medium)
    with pytest.raises(ImageError, match="at most 1,000 pixels"):
        images.open_image(factory.write_tiny_image(tmp_path / "ok.png", (40, 40)), max_pixels=1000)


def test_min_size_is_a_parameter(tmp_path: Path) -> None:
    path = factory.write_tiny_image(tmp_path / "small.png", (4, 6))
    with pytest.raises(ImageError, match=r"at least 8×8 pixels.*got 6×4"):
        images.open_image(path)
    assert images.open_image(path, min_size=4).size == (6, 4)
    assert images.open_image(factory.write_tiny_image(tmp_path / "one.png"), min_size=1).size == (1, 1)


def test_not_an_image_says_what_it_got(tmp_path: Path) -> None:
    path = tmp_path / "archive.jpg"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ImageError, match="got a zip archive"):
        images.open_image(path)
    binary = tmp_path / "noise.png"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ImageError, match="unrecognised binary data"):
        images.open_image(binary)


@pytest.mark.parametrize("mode", sorted(factory.MODE_SAMPLE_SUFFIX))
def test_every_mode_reads_back_as_the_right_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"sample{factory.MODE_SAMPLE_SUFFIX[mode]}"
    expected = factory.write_mode_sample(path, mode)
    rgb = images.load_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 32, 3)
    tolerance = 6 if path.suffix == ".jpg" else 1
    assert np.abs(rgb.astype(int) - expected.astype(int)).max() <= tolerance
    gray = images.to_gray_array(images.open_image(path))
    assert gray.dtype == np.uint8 and gray.shape == (32, 32)
    expected_gray = np.asarray(Image.fromarray(expected).convert("L"), dtype=int)
    assert np.abs(gray.astype(int) - expected_gray).max() <= tolerance


def test_modes_in_memory() -> None:
    pa = Image.new("P", (8, 8), 0)
    pa.putpalette([0, 0, 255] * 256)
    pa = pa.convert("PA")
    pa.putalpha(0)
    assert (images.to_rgb_array(pa) == 255).all()  # fully transparent → white

    wide = Image.fromarray(np.array([[0, 100_000], [50_000, 100_000]] * 4, dtype=np.int32).repeat(4, axis=1))
    assert wide.mode == "I"
    rgb = images.to_rgb_array(wide)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, -1].tolist() == [255, 255, 255]
    assert rgb[1, 0].tolist() == [128, 128, 128]  # scaled by the range, not clipped to 255

    floats = Image.fromarray(np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(8, 8), "F")
    gray = images.to_gray_array(floats)
    assert gray.min() == 0 and gray.max() == 255 and gray.dtype == np.uint8
    assert (images.to_gray_array(Image.new("F", (8, 8), 3.0)) == 3).all()  # constant: kept, clipped

    sixteen = Image.new("I;16", (8, 8), 40_000)
    assert (images.to_rgb_array(sixteen) == 255).all()
    ycbcr = Image.new("RGB", (8, 8), (10, 120, 240)).convert("YCbCr")
    assert np.abs(images.to_rgb_array(ycbcr).astype(int) - [10, 120, 240]).max() <= 3


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = factory.write_exif_rotated(tmp_path / "rotated.jpg", orientation=6, size=(16, 32))
    rgb = images.load_rgb(path)
    assert rgb.shape == (32, 16, 3)  # displayed portrait
    assert rgb[2, 8].tolist()[0] > 200 and rgb[2, 8].tolist()[2] < 50  # red on top
    assert rgb[-3, 8].tolist()[2] > 200 and rgb[-3, 8].tolist()[0] < 50  # blue at the bottom
    assert images.check_image(path.read_bytes()) == (32, 16)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    rgb = images.load_rgb(factory.write_animated_gif(tmp_path / "anim.gif"))
    assert rgb.shape == (16, 16, 3)
    assert rgb[8, 8].tolist() == [255, 0, 0]


def test_unicode_and_spaces_in_paths(tmp_path: Path) -> None:
    path = factory.write_image(tmp_path / "mes images été" / "chat 猫 ✓.png",
                               np.full((10, 12, 3), 77, dtype=np.uint8))
    assert images.load_rgb(path).shape == (10, 12, 3)
    assert images.is_image_name(path) and images.is_image_name("X.JPEG") and not images.is_image_name("a.txt")


@pytest.mark.slow
def test_load_rgb_resizes_to_height_width_and_uses_draft_for_big_jpegs(tmp_path: Path) -> None:
    big = factory.write_image(tmp_path / "big.jpg", factory.class_image(0, (1600, 2000)), quality=90)
    draft = images.open_image(big, draft_size=(100, 120))
    assert draft.size == (250, 200)  # decoded at 1/8 scale, still covering 120×100
    rgb = images.load_rgb(big, (100, 120))
    assert rgb.shape == (100, 120, 3) and rgb.dtype == np.uint8
    reference = np.asarray(Image.open(big).convert("RGB").resize((120, 100), Image.Resampling.BICUBIC))
    assert np.abs(rgb.astype(float) - reference).mean() < 8
    with pytest.raises(ImageError, match="image size"):
        images.load_rgb(big, (0, 10))


def test_decode_detaches_from_the_file(tmp_path: Path) -> None:
    path = factory.write_image(tmp_path / "a.png", np.zeros((9, 9, 3), np.uint8))
    image = images.open_image(path)
    path.unlink()  # nothing keeps the file open
    assert images.to_rgb_array(image).shape == (9, 9, 3)
