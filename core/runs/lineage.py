"""A run built on another run: reusing its split (split_from_run) or starting from its head (init_from_run)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras

from transferlab.core.data.folders import DataSplit
from transferlab.core.errors import ConfigError, DataError, TransferlabError
from transferlab.core.models.transfer import find_head
from transferlab.core.runs.store import RunStore

logger = logging.getLogger(__name__)


def copy_head_from_run(store: RunStore, run_id: str, head: keras.Model, class_names: Sequence[str],
                       backbone: str) -> None:
    """Start `head` from the trained head of another run, which must have the same classes and backbone."""
    run_id = store.resolve(run_id)
    try:
        info = store.model_info(run_id)
    except TransferlabError as exc:
        raise ConfigError(f"init_from_run: {exc}") from exc
    if list(info.class_names) != list(class_names):
        raise ConfigError(f"init_from_run: expected a run with the classes {', '.join(class_names)}, "
                          f"got run {run_id} with {', '.join(info.class_names) or 'none'}")
    if info.backbone != backbone:
        raise ConfigError(f"init_from_run: expected a run with the backbone {backbone}, got run {run_id} with "
                          f"{info.backbone}")
    source = find_head(store.load_model(run_id))
    try:
        head.set_weights(source.get_weights())
    except ValueError as exc:
        raise ConfigError(f"init_from_run: expected a head shaped like {[w.shape for w in head.get_weights()]}, "
                          f"got {[w.shape for w in source.get_weights()]} in run {run_id}") from exc
    logger.info("head initialised from run %s", run_id)


def load_run_split(store: RunStore, run_id: str) -> DataSplit:
    run_id = store.resolve(run_id)
    data = store.read_json(run_id, "split.json")
    if data is None:
        raise DataError(f"split_from_run: expected a folder run with split.json, got run {run_id} without one")
    return DataSplit.from_dict(data)

