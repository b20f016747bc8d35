"""The kinds of run ("mnist", "folder"): what every layer may know about a kind without importing TensorFlow.

    kind = kind_of(config)            # or kind_named(model_info.kind), kind_named(run_info.kind)
    kind.title(config)                # 'mnist fast', 'photos frozen'
    kind.input_shape(model_info)      # the uint8 image one stored model takes: (28, 28) or (h, w, 3)

The registry has two halves. This light half (plain Python, the base layer: any module may import it) holds
each kind's name, config type, titles and how its stored model is fed. The heavy half,
transferlab.core.training.kinds, adds what needs the engine's upper layers: the job that trains it, the model
summary before training, its evaluation samples, feeding an image file to a stored model. It imports
TensorFlow only when one of those is used, so the GUI can import both at start-up.

One vocabulary: config.kind, ModelInfo.kind (model_info.json) and RunInfo.kind are all a kind's `name`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from transferlab.core.config import FolderConfig, MnistConfig, RunConfig, config_from_dict
from transferlab.core.errors import ConfigError, TransferlabError
from transferlab.core.records import ModelInfo

C = TypeVar("C", MnistConfig, FolderConfig)


@dataclass(frozen=True)
class RunKind(Generic[C]):
    """One kind of run: its name (config.kind), config type, titles and how its stored model is fed."""

    name: str
    config_type: type[C]
    uses_folder: bool  # trains on the user's folder of class subfolders (else on a built-in data set)
    source_title: str  # the data, for the user: "MNIST (70,000 handwritten digits)"
    title: Callable[[C], str]  # a short label for a run: 'mnist fast', 'photos frozen'
    tag: Callable[[C], str]  # the variant in a run id: "fast", "frozen"
    input_shape: Callable[[ModelInfo], tuple[int, ...]]  # the uint8 image (without batch) a stored model takes

    def config(self, data: Mapping[str, Any]) -> C:
        """The config stored with a run of this kind (config.json)."""
        config = config_from_dict(dict(data))
        if not isinstance(config, self.config_type):
            raise ConfigError(f"expected a config of kind {self.name}, got kind={config.kind!r}")
        return config


def _mnist_title(config: MnistConfig) -> str:
    return f"mnist {config.model}"


def _folder_title(config: FolderConfig) -> str:
    return f"{Path(config.data_dir).name} {config.mode}"


def _digit_shape(info: ModelInfo) -> tuple[int, ...]:
    return (28, 28)


def _rgb_shape(info: ModelInfo) -> tuple[int, ...]:
    return (*info.image_size, 3)


MNIST = RunKind(name="mnist", config_type=MnistConfig, uses_folder=False,
                source_title="MNIST (70,000 handwritten digits)", title=_mnist_title, tag=lambda c: c.model,
                input_shape=_digit_shape)
FOLDER = RunKind(name="folder", config_type=FolderConfig, uses_folder=True, source_title="a folder of class subfolders",
                 title=_folder_title, tag=lambda c: c.mode, input_shape=_rgb_shape)

KINDS: dict[str, RunKind[Any]] = {kind.name: kind for kind in (MNIST, FOLDER)}


def kind_named(name: str) -> RunKind[Any]:
    """The kind called `name`; ConfigError names the known kinds."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"expected a run kind in {sorted(KINDS)}, got {name!r}") from None


def kind_of(config: RunConfig) -> RunKind[Any]:
    return kind_named(config.kind)


def title_of(config: RunConfig) -> str:
    """A short label for a run of this config: 'mnist fast', 'photos frozen'."""
    return str(kind_of(config).title(config))


def stored_title(kind: str, config: Mapping[str, Any]) -> str:
    """The title of a stored run from its config.json data; a plain fallback when the config is unreadable."""
    try:
        return title_of(kind_named(kind).config(config))
    except (TransferlabError, TypeError, ValueError, AttributeError):  # an unreadable or damaged config.json
        return f"{kind} run"
