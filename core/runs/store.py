"""The run store: every run is a folder holding its config, history, metrics and model.

Layout of one run folder (every file written atomically):
    config.json     the RunConfig (see core.config.config_to_dict)
    status.json     status (running|finished|stopped|failed), reason, pid, created/updated times
    history.json    one dict per finished epoch, rewritten after every epoch
    summary.json    data summary and model summary, written when training starts
    metrics.json    evaluation results (test or validation set)
    model.keras     the trained model (loaded with Keras safe_mode)
    split.json      folder runs: the exact train/validation/test split
A run whose status says "running" but whose process is gone is listed as "interrupted".
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.core.atomic import atomic_target, write_json_atomic
from transferlab.core.config import RunConfig, config_from_dict, config_to_dict
from transferlab.core.errors import ConfigError, RunStoreError, first_line

logger = logging.getLogger(__name__)

ENV_HOME = "TRANSFERLAB_HOME"
RUN_STATUSES = ("running", "finished", "stopped", "failed", "interrupted")


def default_runs_dir() -> Path:
    """$TRANSFERLAB_HOME/runs, else the user's data folder (platformdirs) /runs."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser() / "runs"
    import platformdirs

    return Path(platformdirs.user_data_dir("transferlab", appauthor=False)) / "runs"


@dataclass(frozen=True)
class RunInfo:
    """What the runs list shows about one stored run."""

    run_id: str
    path: Path
    kind: str
    name: str
    status: str
    reason: str
    created: float
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    epochs_done: int = 0

    @property
    def has_model(self) -> bool:
        return (self.path / "model.keras").is_file()

    def title(self) -> str:
        """A short human label, e.g. 'mnist fast' or 'folder frozen (flowers)'."""
        if self.kind == "mnist":
            label = f"mnist {self.config.get('model', '?')}"
        else:
            label = f"{Path(self.config.get('data_dir', '?')).name} {self.config.get('mode', '?')}"
        return f"{self.name} — {label}" if self.name else label


class RunStore:
    """All runs under one folder. Safe to use from several threads for different runs."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_runs_dir()

    # ---- writing (the training call uses these) ----

    def create(self, config: RunConfig) -> RunInfo:
        self.root.mkdir(parents=True, exist_ok=True)
        tag = config.model if config.kind == "mnist" else config.mode
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{config.kind}-{tag}-{secrets.token_hex(2)}"
        path = self.root / run_id
        path.mkdir()
        now = time.time()
        try:
            write_json_atomic(path / "config.json", config_to_dict(config))
            write_json_atomic(path / "status.json", {"status": "running", "reason": "", "pid": os.getpid(),
                                                     "created": now, "updated": now})
            write_json_atomic(path / "history.json", [])
        except RunStoreError:
            shutil.rmtree(path, ignore_errors=True)  # no half-made run folder
            raise
        logger.info("created run %s", path)
        return self.get(run_id)

    def set_status(self, run_id: str, status: str, reason: str = "") -> None:
        path = self._path(run_id)
        current = _read_json(path / "status.json", default={})
        current.update(status=status, reason=reason, updated=time.time())
        write_json_atomic(path / "status.json", current)

    def write_history(self, run_id: str, history: list[dict[str, Any]]) -> None:
        write_json_atomic(self._path(run_id) / "history.json", history)

    def write_json(self, run_id: str, filename: str, obj: Any) -> None:
        write_json_atomic(self._path(run_id) / filename, obj)

    def save_model(self, run_id: str, model: Any, filename: str = "model.keras") -> Path:
        target = self._path(run_id) / filename
        with atomic_target(target) as tmp:
            model.save(tmp)
        return target

    # ---- reading ----

    def list(self) -> list[RunInfo]:
        """All readable runs, newest first. Folders that vanish or are unreadable while listing are skipped."""
        if not self.root.is_dir():
            return []
        runs = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                runs.append(self._read(path))
            except (RunStoreError, OSError) as exc:
                logger.warning("skipping run folder %s: %s", path.name, exc)
        return sorted(runs, key=lambda run: (run.created, run.run_id), reverse=True)

    def get(self, run_id: str) -> RunInfo:
        return self._read(self._path(run_id))

    def resolve(self, run_id: str) -> str:
        """The full id for an id or a unique prefix of one; 'latest' means the newest run."""
        if run_id == "latest":
            runs = self.list()
            if not runs:
                raise RunStoreError(f"expected at least one run in {self.root}, got none")
            return runs[0].run_id
        if run_id and (self.root / run_id / "config.json").is_file():
            return run_id
        matches = [p.name for p in self.root.glob(f"{run_id}*") if (p / "config.json").is_file()] \
            if run_id and "/" not in run_id and self.root.is_dir() else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunStoreError(f"expected a run id from 'transferlab runs list', got {run_id!r} "
                                f"(no such run in {self.root})")
        raise RunStoreError(f"expected a unique run id, got {run_id!r}, which matches {len(matches)} runs")

    def history(self, run_id: str) -> list[dict[str, Any]]:
        return _read_json(self._path(run_id) / "history.json", default=[])

    def read_json(self, run_id: str, filename: str, default: Any = None) -> Any:
        return _read_json(self._path(run_id) / filename, default=default)

    def config(self, run_id: str) -> RunConfig:
        return config_from_dict(_read_json(self._path(run_id) / "config.json"))

    def model_path(self, run_id: str) -> Path:
        path = self._path(run_id) / "model.keras"
        if not path.is_file():
            raise RunStoreError(f"expected a trained model in run {run_id}, got none (the run "
                                f"{self.get(run_id).status} before saving one)")
        return path

    def load_model(self, run_id: str) -> Any:
        """The run's model, loaded with safe_mode (a model file cannot run code)."""
        import keras

        import transferlab.core.models.custom_objects  # noqa: F401  registers the custom layers stored models may contain

        path = self.model_path(run_id)
        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            raise RunStoreError(f"expected a loadable Keras model at {path}, got "
                                f"{type(exc).__name__}: {first_line(exc)}") from exc

    def delete(self, run_id: str) -> None:
        path = self._path(run_id)
        # Rename first so a half-deleted folder never shows up as a broken run.
        trash = path.with_name(f".deleting-{path.name}")
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def compare(self, run_ids: list[str]) -> dict[str, Any]:
        """Config differences and metrics side by side for two or more runs."""
        if len(run_ids) < 2:
            raise ConfigError(f"expected two or more runs to compare, got {len(run_ids)}")
        runs = [self.get(self.resolve(r)) for r in run_ids]
        flat = [_flatten(run.config) for run in runs]
        keys = sorted(set().union(*flat))
        config_diff = {k: [f.get(k) for f in flat] for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1}
        metric_keys = sorted({k for run in runs for k, v in run.metrics.items() if isinstance(v, int | float)})
        metrics = {k: [run.metrics.get(k) for run in runs] for k in metric_keys}
        histories = [self.history(run.run_id) for run in runs]
        # An unset learning rate means each kind's default: show the rates the runs really used, side by side.
        used = [h[0].get("learning_rate") if h else None for h in histories]
        if len({json.dumps(u) for u in used}) > 1:
            config_diff["fit.learning_rate (used)"] = used
        cv = [run.metrics.get("cv") for run in runs]
        if any(isinstance(c, dict) for c in cv):
            metrics["cv_accuracy_mean"] = [c.get("accuracy_mean") if isinstance(c, dict) else None for c in cv]
            metrics["cv_accuracy_std"] = [c.get("accuracy_std") if isinstance(c, dict) else None for c in cv]
        return {"runs": [run.run_id for run in runs], "titles": [run.title() for run in runs],
                "status": [run.status for run in runs], "config_diff": config_diff, "metrics": metrics,
                "histories": histories}

    # ---- internals ----

    def _path(self, run_id: str) -> Path:
        return self.root / self.resolve(run_id)

    def _read(self, path: Path) -> RunInfo:
        try:
            config = _read_json(path / "config.json")
        except FileNotFoundError as exc:
            raise RunStoreError(f"expected a run folder with config.json, got {path}") from exc
        status = _read_json(path / "status.json", default={})
        state = status.get("status", "interrupted")
        if state == "running" and not _process_alive(status.get("pid")):
            state = "interrupted"
        history = _read_json(path / "history.json", default=[])
        metrics = _read_json(path / "metrics.json", default={})
        return RunInfo(run_id=path.name, path=path, kind=config.get("kind", "?"), name=config.get("name", ""),
                       status=state, reason=status.get("reason", ""), created=status.get("created", 0.0),
                       config=config, metrics=metrics, epochs_done=len(history))


def _read_json(path: Path, default: Any = ...) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        if default is ...:
            raise
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunStoreError(f"expected valid JSON in {path}, got {type(exc).__name__}: {exc}") from exc


def _process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
