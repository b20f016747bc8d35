"""Run configs: frozen, validated with one-line messages, stored and restored exactly."""

from __future__ import annotations

import dataclasses

import pytest

from transferlab.core.config import (
    FINETUNE_LEARNING_RATE,
    FROZEN_LEARNING_RATE,
    FitOptions,
    FolderConfig,
    MnistConfig,
    config_from_dict,
    config_to_dict,
    default_learning_rate,
    mnist_preset,
    with_fit,
)
from transferlab.core.errors import ConfigError


def test_configs_round_trip_through_their_stored_form():
    for config in (mnist_preset("fast", epochs=2, train_limit=2000, augment=True),
                   FolderConfig(data_dir="/data/flowers", mode="finetune", unfreeze="all", test_split=0.1)):
        assert config_from_dict(config_to_dict(config)) == config
    stored = {**config_to_dict(mnist_preset("ann")), "added_in_a_later_version": 1}
    assert config_from_dict(stored) == mnist_preset("ann")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        mnist_preset("ann").model = "cnn"  # type: ignore[misc]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: FitOptions(epochs=0), "epochs: expected an integer >= 1, got 0"),
    (lambda: FitOptions(validation_split=1.0), "validation_split: expected a fraction in [0, 1), got 1.0"),
    (lambda: FitOptions(learning_rate=-1), "learning_rate: expected a number in (0, 10), got -1"),
    (lambda: MnistConfig(model="resnet"), "model: expected one of fast, cnn, ann, accurate, got 'resnet'"),
    (lambda: FolderConfig(data_dir=""), "data_dir: expected a folder of class subfolders, got ''"),
    (lambda: FolderConfig(data_dir="x", unfreeze=-2), "unfreeze: expected an integer >= 0 or 'all', got -2"),
    (lambda: config_from_dict({"kind": "video"}), "expected a run config of kind mnist or folder, got kind='video'"),
])
def test_bad_values_are_named_with_what_was_expected(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value) == message


def test_learning_rate_defaults_depend_on_the_kind_of_run():
    assert mnist_preset("fast").fit.learning_rate == 3e-3  # presets set their own
    frozen = FolderConfig(data_dir="x")
    finetune = dataclasses.replace(frozen, mode="finetune")
    assert frozen.fit.learning_rate is None and default_learning_rate(frozen) == FROZEN_LEARNING_RATE == 1e-2
    assert default_learning_rate(finetune) == FINETUNE_LEARNING_RATE
    assert with_fit(finetune, learning_rate=1e-3).fit.learning_rate == 1e-3  # an explicit 1e-3 is kept
