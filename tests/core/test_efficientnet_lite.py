"""EfficientNet-Lite0 in Keras: the converted ImageNet weights recognise real photos, and the cache is safe."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab.core.errors import ModelError
from transferlab.core.models import efficientnet_lite as lite
from transferlab.core.models.torch_pickle import load_state_dict

IMAGENET_DIR = Path(__file__).resolve().parents[2] / "resources" / "imagenet"


def load_photo(name: str) -> np.ndarray:
    """The whole photo resized to 224×224 with PIL's bilinear filter (no crop), as float32 0..255."""
    with Image.open(IMAGENET_DIR / name) as image:
        return np.asarray(image.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32)


@pytest.fixture(scope="module")
def backbone_classifier(tmp_path_factory: pytest.TempPathFactory) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(lite.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        return lite.build_lite0(include_top=True)


@pytest.mark.slow
def test_the_classifier_recognises_the_cat_and_the_espresso(backbone_classifier: object) -> None:
    images = np.stack([load_photo("chelsea.png"), load_photo("coffee.png")])
    probabilities = backbone_classifier.predict(images, verbose=0)
    assert probabilities.shape == (2, 1000)
    assert int(probabilities[0].argmax()) == 285  # Egyptian cat
    assert int(probabilities[1].argmax()) == 967  # espresso
    assert probabilities[0, 285] == pytest.approx(0.791, abs=0.02)
    assert probabilities[1, 967] == pytest.approx(0.899, abs=0.02)


@pytest.mark.slow
def test_architecture_and_names(backbone_classifier: object) -> None:
    assert backbone_classifier.count_params() == 4_694_024
    names = {layer.name for layer in backbone_classifier.layers}
    assert {"stem_conv", "block1a_dwconv", "block3b_expand_conv", "block3b_add", "block7a_project_bn",
            "top_conv", "avg_pool", "predictions"} <= names
    assert len(lite.BLOCKS) == 16 and lite.UNITS[0] == "stem" and lite.UNITS[-1] == "top"
    assert lite.unit_of_layer("block6d_expand_bn") == "block6d" and lite.unit_of_layer("avg_pool") is None
    bns = [layer for layer in backbone_classifier.layers if "BatchNormalization" in type(layer).__name__]
    assert len(bns) == 49 and all(layer.epsilon == 1e-3 for layer in bns)


def test_every_tensor_is_used_exactly_once() -> None:
    state = load_state_dict(lite.lite0_weights_path())
    converted = lite.convert_state_dict(state)
    assert sum(v.size for values in converted.values() for v in values) == 4_694_024
    assert converted["block2a_dwconv"][0].shape == (3, 3, 96, 1)
    assert converted["stem_conv"][0].shape == (3, 3, 3, 32)
    np.testing.assert_array_equal(converted["stem_conv"][0][:, :, 1, 5], state["_conv_stem.weight"][5, 1])
    extra = {**state, "_blocks.99._bn0.weight": np.zeros(3, np.float32)}
    with pytest.raises(ModelError, match=r"used exactly once, got unused \['_blocks.99._bn0.weight'\]"):
        lite.convert_state_dict(extra)
    missing = {k: v for k, v in state.items() if k != "_blocks.4._bn1.bias"}
    with pytest.raises(ModelError, match=re.escape("_blocks.4._bn1.bias")):
        lite.convert_state_dict(missing)


def test_the_cache_is_written_once_and_read_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv(lite.CACHE_ENV, str(tmp_path))
    assert lite.lite0_cache_path().parent == tmp_path / "backbones"
    started = time.perf_counter()
    first = lite.load_lite0_weights()
    converted_in = time.perf_counter() - started
    cache = lite.lite0_cache_path()
    assert cache.is_file() and cache.suffix == ".npz"
    stamp = cache.stat().st_mtime_ns
    started = time.perf_counter()
    second = lite.load_lite0_weights()
    cached_in = time.perf_counter() - started
    print(f"convert {converted_in:.3f} s, from cache {cached_in:.3f} s")
    assert cache.stat().st_mtime_ns == stamp
    assert first.keys() == second.keys()
    for name in first:
        for a, b in zip(first[name], second[name], strict=True):
            np.testing.assert_array_equal(a, b)
    assert "predictions" not in lite.load_lite0_weights(include_top=False)


def test_a_broken_cache_is_ignored_and_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lite.CACHE_ENV, str(tmp_path))
    cache = lite.lite0_cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"garbage")
    weights = lite.load_lite0_weights()
    assert len(weights["top_conv"]) == 1
    with np.load(cache, allow_pickle=False) as data:
        assert "top_conv/0" in data.files


@pytest.mark.slow
def test_a_cache_with_wrong_shapes_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lite.CACHE_ENV, str(tmp_path))
    weights = lite.load_lite0_weights()
    weights["top_conv"] = [np.zeros((1, 1, 320, 7), np.float32)]
    lite._write_cache(lite.lite0_cache_path(), weights)
    model = lite.build_lite0()
    assert model.get_layer("top_conv").kernel.shape == (1, 1, 320, 1280)
    assert lite.load_lite0_weights()["top_conv"][0].shape == (1, 1, 320, 1280)
