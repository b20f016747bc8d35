"""MNIST loads offline from the packaged archive, is checked, and bad archives give one clear line."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.core.data.mnist import (
    MNIST_TRAIN_COUNTS,
    describe,
    load_mnist,
    packaged_archive_path,
    pixel_matrix,
    sample_grid,
)
from transferlab.core.errors import DataError


def test_the_real_mnist_loads_offline_from_the_package():
    mnist = load_mnist(packaged_archive_path())
    summary = describe(mnist)
    assert summary["train_shape"] == [60000, 28, 28] and summary["test_shape"] == [10000, 28, 28]
    assert tuple(summary["train_counts"]) == MNIST_TRAIN_COUNTS
    assert sum(summary["test_counts"]) == 10000
    assert (summary["pixel_min"], summary["pixel_max"]) == (0, 255)
    pixels, label = pixel_matrix(mnist, 0)
    assert pixels.shape == (28, 28) and label == 5  # MNIST's famous first digit, in its original order
    grid, indices = sample_grid(mnist, per_class=3)
    assert grid.shape == (10, 3, 28, 28)
    assert all((mnist.train_labels[indices[d]] == d).all() for d in range(10))


def test_the_keras_cache_file_is_used_when_it_exists(tmp_path, monkeypatch):
    mnist = load_mnist(packaged_archive_path())
    cache = tmp_path / "datasets" / "mnist.npz"
    cache.parent.mkdir()
    np.savez(cache, x_train=mnist.train_images, y_train=mnist.train_labels, x_test=mnist.test_images,
             y_test=mnist.test_labels)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert load_mnist().source == str(cache)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a zip archive"),
    (b"this is not an archive at all", "not a zip archive"),
])
def test_corrupt_archives_are_refused_with_one_line(tmp_path, content, message):
    path = tmp_path / "mnist.zarr.zip"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load_mnist(path)
    assert "\n" not in str(info.value)


def test_a_truncated_archive_is_refused(tmp_path):
    data = packaged_archive_path().read_bytes()
    path = tmp_path / "mnist.zarr.zip"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="expected a"):
        load_mnist(path)


def test_a_missing_archive_is_refused(tmp_path):
    with pytest.raises(DataError, match="got no such file"):
        load_mnist(tmp_path / "missing.npz")


def test_wrong_contents_are_refused(tmp_path):
    path = tmp_path / "mnist.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (60000, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 60000, dtype=np.uint8),
             x_test=np.zeros((10000, 28, 28), np.uint8), y_test=np.zeros(10000, np.uint8))
    with pytest.raises(DataError, match="expected MNIST train per-digit counts"):
        load_mnist(path)
    np.savez(path, x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.zeros(5, np.uint8),
             x_test=np.zeros((10000, 28, 28), np.uint8), y_test=np.zeros(10000, np.uint8))
    with pytest.raises(DataError, match=r"expected train_images of shape \(60000, 28, 28\)"):
        load_mnist(path)
