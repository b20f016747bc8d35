"""The kinds of run ("mnist", "folder"), in one place: each kind's config type and job.

    job = make_job(config)   # the Job that prepares and evaluates a run of config's kind
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transferlab.core.config import FolderConfig, MnistConfig, RunConfig
from transferlab.core.errors import ConfigError
from transferlab.core.training.folder_job import FolderJob
from transferlab.core.training.jobs import Job
from transferlab.core.training.mnist_job import MnistJob
from transferlab.core.training.preflight import Checked


@dataclass(frozen=True)
class RunKind:
    """One kind of run: its name (config.kind), config type and the job that runs it."""

    name: str
    config_type: type
    job: Callable[[Any, Checked | None], Job]  # (config, what preflight already checked) -> the job


KINDS: dict[str, RunKind] = {
    "mnist": RunKind("mnist", MnistConfig, lambda config, checked: MnistJob(config)),
    "folder": RunKind("folder", FolderConfig, FolderJob),
}


def kind_of(config: RunConfig) -> RunKind:
    try:
        return KINDS[config.kind]
    except KeyError:
        raise ConfigError(f"expected a run kind in {sorted(KINDS)}, got {config.kind!r}") from None


def make_job(config: RunConfig, checked: Checked | None = None) -> Job:
    return kind_of(config).job(config, checked)
