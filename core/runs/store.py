"""The run store: every run is a folder holding its config, history, metrics and model.

Layout of one run folder (every file written atomically and fsynced, see transferlab.core.atomic):
    config.json     the RunConfig (see core.config.config_to_dict)
    status.json     status (running|finished|stopped|failed), reason, pid and the process's start token
                    (transferlab.core.processes), created/updated times
    history.json    one dict per finished epoch, rewritten after every epoch
    summary.json    data summary and model summary, written when training starts
    metrics.json    evaluation results (test or validation set)
    model.keras     the trained model (loaded with Keras safe_mode)
    hub_modules/    a copy of the TF Hub backbone the model was trained with, named by its sha256: the only
                    SavedModel its model file can load (transferlab.core.models.hub_layer)
    split.json      folder runs: the exact train/validation/test split
    label.json      optional: the user's own name and notes for the run ({"name": ..., "notes": ...}); a bad
                    one is ignored (the run is still listed), never a reason to call the run damaged
A run whose status says "running" but whose process is gone (or whose pid now belongs to another process) is
listed as "interrupted". A run folder whose files cannot be read, or hold the wrong kind of JSON, is listed as
"damaged" with the reason; it never hides the other runs.

Run ids are the names of the folders directly inside the store. Every id a user gives goes through one checked
function, `RunStore.locate`: an exact id, a unique prefix, or "latest"; never a path, a pattern, a hidden name or
a link. Deleting moves a run into `<store>/.trash/` (hidden from the list; `restore` brings it back); only
`purge`/`empty_trash` remove runs for good. A run that is still training cannot be deleted.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import math
import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.core import processes
from transferlab.core.atomic import atomic_target, fsync_dir, remove_stale_temps, temp_sibling, write_json_atomic
from transferlab.core.config import RunConfig, config_from_dict, config_to_dict
from transferlab.core.errors import ConfigError, RunStoreError, TransferlabError, first_line
from transferlab.core.kinds import KINDS, kind_of, stored_title
from transferlab.core.records import EvaluationReport, HistoryRow, ModelInfo

logger = logging.getLogger(__name__)

ENV_HOME = "TRANSFERLAB_HOME"
STORED_STATUSES = ("running", "finished", "stopped", "failed", "interrupted")
RUN_STATUSES = (*STORED_STATUSES, "damaged")
TRASH_DIR = ".trash"
MAX_JSON_BYTES = 256 * 1024 * 1024  # far above any real history/metrics file; refuses a planted huge file
MAX_ID_BYTES = 255  # the longest file name most file systems allow
_RUN_FILES = ("config.json", "status.json")  # a folder with neither is not a run (e.g. a user's own folder)
_WILDCARDS = frozenset("*?[]")
_JSON_TYPES: dict[str, type] = {"config.json": dict, "status.json": dict, "history.json": list,
                                "metrics.json": dict, "summary.json": dict, "model_info.json": dict,
                                "split.json": dict, "label.json": dict}
_CREATE_ATTEMPTS = 1000
MAX_LABEL_CHARS = 200
MAX_NOTES_CHARS = 20_000


def default_runs_dir() -> Path:
    """$TRANSFERLAB_HOME/runs, else the user's data folder (platformdirs) /runs."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser() / "runs"
    import platformdirs

    return Path(platformdirs.user_data_dir("transferlab", appauthor=False)) / "runs"


@dataclass(frozen=True)
class RunInfo:
    """What the runs list shows about one stored run. A damaged run has status "damaged" and the reason."""

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
    deleted: float = 0.0  # runs in the trash: when they were deleted
    label: str = ""  # the user's own name for the run (label.json), shown instead of the config's name
    notes: str = ""  # the user's notes (label.json)

    @property
    def damaged(self) -> bool:
        return self.status == "damaged"

    @property
    def report(self) -> EvaluationReport | None:
        """The stored evaluation (metrics.json), typed; None when the run has none."""
        return EvaluationReport.from_json(self.metrics) if self.metrics else None

    @property
    def has_model(self) -> bool:
        return not self.damaged and (self.path / "model.keras").is_file()

    def title(self) -> str:
        """A short human label, e.g. 'mnist fast' or 'flowers frozen' (after the run's name, when it has one)."""
        if self.kind in KINDS:
            label = stored_title(self.kind, self.config)
        else:
            label = "damaged run" if self.damaged else str(self.kind)
        name = self.label or self.name
        return f"{name} — {label}" if name else label


def check_run_id(text: Any) -> str:
    """`text` if it can only name a folder directly inside the store; RunStoreError (one line) saying why not."""
    problem = _id_problem(text)
    if problem or not isinstance(text, str):  # _id_problem refuses non-text; isinstance also tells mypy
        raise RunStoreError(f"expected a run id from 'transferlab runs list' (the name of a run folder), "
                            f"got {_shown(text)}: {problem}")
    return text


def _id_problem(text: Any) -> str:
    if not isinstance(text, str):
        return "not text"
    if not text:
        return "an empty id"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return f"longer than {MAX_ID_BYTES} bytes"
    if "\0" in text:
        return "a NUL byte"
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        return "a control character"
    if any(sep in text for sep in ("/", "\\", os.sep, os.altsep or "/")):
        return "a path, not a name"
    if text.startswith("."):
        return "a hidden or relative name"
    if _WILDCARDS.intersection(text):
        return "a wildcard pattern (ids are matched exactly or by prefix)"
    if ":" in text:
        return "a ':' (a drive or stream name)"
    return ""


class RunStore:
    """All runs under one folder. Safe to use from several threads for different runs."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_runs_dir()
        self._cleaned = False

    # ---- writing (the training call uses these) ----

    def create(self, config: RunConfig) -> RunInfo:
        """A new run folder. Ids never collide: the folder is made with an exclusive mkdir, retried under
        another name when a run started in the same second (in any process) took it."""
        self._make_root()
        self._clean_once()
        now = time.time()
        path = self._new_run_folder(config, now)
        try:
            write_json_atomic(path / "config.json", config_to_dict(config))
            write_json_atomic(path / "status.json", {"status": "running", "reason": "", "pid": os.getpid(),
                                                     "pid_start": processes.current_token(),
                                                     "created": now, "updated": now})
            write_json_atomic(path / "history.json", [])
        except RunStoreError:
            shutil.rmtree(path, ignore_errors=True)  # no half-made run folder (this call made it)
            raise
        logger.info("created run %s", path)
        return self.get(path.name)

    def set_status(self, run_id: str, status: str, reason: str = "") -> None:
        path = self.locate(run_id)
        try:
            current = _load_json(path / "status.json", dict)
        except (FileNotFoundError, RunStoreError):
            current = {}
        current.update(status=status, reason=reason, updated=time.time())
        write_json_atomic(path / "status.json", current)

    def write_history(self, run_id: str, history: builtins.list[HistoryRow]) -> None:
        write_json_atomic(self.locate(run_id) / "history.json", history)

    def write_json(self, run_id: str, filename: str, obj: Any) -> None:
        write_json_atomic(self.locate(run_id) / _plain_name(filename), obj)

    def set_label(self, run_id: str, name: str, notes: str = "") -> None:
        """The user's own name and notes for a run, in label.json (written atomically); empty both to clear."""
        name, notes = _label_text(name, "name", MAX_LABEL_CHARS), _label_text(notes, "notes", MAX_NOTES_CHARS)
        if "\n" in name or "\r" in name:
            raise ConfigError(f"run name: expected one line, got {_shown(name)}")
        write_json_atomic(self.locate(run_id) / "label.json", {"name": name.strip(), "notes": notes.strip()})

    def write_model_info(self, run_id: str, info: ModelInfo) -> None:
        self.write_json(run_id, "model_info.json", info.to_json())

    def model_info(self, run_id: str) -> ModelInfo:
        """How to feed the run's model (model_info.json, also as older versions wrote it)."""
        data = self.read_json(run_id, "model_info.json")
        if not isinstance(data, dict):
            raise RunStoreError(f"expected model_info.json in run {run_id}, got "
                                f"{'none' if data is None else type(data).__name__}")
        return ModelInfo.from_json(data, where=f"model_info.json of run {run_id}")

    def save_model(self, run_id: str, model: Any, filename: str = "model.keras") -> Path:
        """Save atomically and durably (a temp file, fsynced, renamed over the target, the folder fsynced), after
        pinning a copy of any TF Hub backbone the model uses in the run folder."""
        from transferlab.core.models.hub_layer import PINNED_FOLDER, pin_hub_modules

        target = self.locate(run_id) / _plain_name(filename)
        pin_hub_modules(model, target.parent / PINNED_FOLDER)
        with atomic_target(target) as tmp:
            model.save(tmp)
        return target

    # ---- reading ----

    def list(self) -> builtins.list[RunInfo]:
        """All runs, newest first; damaged ones too (status "damaged", the reason in `reason`)."""
        self._clean_once()
        runs = []
        for name in self._folder_names(self.root):
            path = self.root / name
            if not _is_run_folder(path):
                logger.debug("not a run folder (no config.json or status.json): %s", path)
                continue
            run = self._read(path)
            if run.damaged and not path.is_dir():
                continue  # deleted while listing
            runs.append(run)
        return sorted(runs, key=lambda run: (run.created, run.run_id), reverse=True)

    def trashed(self) -> builtins.list[RunInfo]:
        """The runs in the trash, most recently deleted first."""
        trash = self._trash(create=False)
        runs = []
        for name in self._folder_names(trash):
            path = trash / name
            if _is_run_folder(path):
                with contextlib.suppress(OSError):
                    deleted = path.lstat().st_mtime
                    runs.append(self._read(path, deleted=deleted))
        return sorted(runs, key=lambda run: (run.deleted, run.run_id), reverse=True)

    def get(self, run_id: str) -> RunInfo:
        return self._read(self.locate(run_id))

    def resolve(self, run_id: str) -> str:
        """The full id for an id or a unique prefix of one; 'latest' means the newest run that is not damaged."""
        return self.locate(run_id).name

    def locate(self, run_id: str, trashed: bool = False) -> Path:
        """The one checked way from a user's run id to a folder: an exact id, a unique prefix of one, or
        'latest', among the real (not linked) run folders directly inside the store (or its trash). The id is
        never joined to a path before it has matched the name of such a folder."""
        folder = self._trash(create=False) if trashed else self.root
        where = "the trash" if trashed else str(self.root)
        listing = "transferlab runs trash" if trashed else "transferlab runs list"
        if run_id == "latest":
            runs = self.trashed() if trashed else [run for run in self.list() if not run.damaged]
            if not runs:
                raise RunStoreError(f"expected at least one run in {where}, got none")
            return runs[0].path
        name = check_run_id(run_id)
        names = self._folder_names(folder)
        if name in names and _is_run_folder(folder / name):
            return _inside(folder, name)
        matches = [n for n in names if n.startswith(name) and _is_run_folder(folder / n)]
        if len(matches) == 1:
            return _inside(folder, matches[0])
        if not matches:
            raise RunStoreError(f"expected a run id from '{listing}', got {name!r} (no such run in {where})")
        raise RunStoreError(f"expected a unique run id, got {name!r}, which matches {len(matches)} runs")

    def history(self, run_id: str) -> builtins.list[HistoryRow]:
        path = self.locate(run_id)
        history: builtins.list[HistoryRow] = self._typed(path, "history.json", default=[])
        problems = _history_problems(history)
        if problems:
            raise RunStoreError(f"run {path.name} is damaged: {problems[0]}")
        return history

    def read_json(self, run_id: str, filename: str, default: Any = None) -> Any:
        """A JSON file of the run; the known files (config, status, history, metrics, summary, model_info, split)
        are checked to hold the right kind of JSON."""
        return self._typed(self.locate(run_id), _plain_name(filename), default=default)

    def config(self, run_id: str) -> RunConfig:
        path = self.locate(run_id)
        data = self._typed(path, "config.json")
        try:
            return config_from_dict(data)
        except ConfigError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise RunStoreError(f"run {path.name} is damaged: config.json: {first_line(exc)}") from exc

    def model_path(self, run_id: str) -> Path:
        path = self.locate(run_id) / "model.keras"
        if not path.is_file():
            raise RunStoreError(f"expected a trained model in run {run_id}, got none (the run "
                                f"{self.get(run_id).status} before saving one)")
        return path

    def load_model(self, run_id: str) -> Any:
        """The run's model, loaded with safe_mode (a model file cannot run code); a TF Hub backbone only ever
        from the run's own pinned copy (a model file cannot choose which SavedModel runs)."""
        import keras

        import transferlab.core.models.custom_objects  # noqa: F401  registers the custom layers stored models may contain
        from transferlab.core.models.building import building_models

        path = self.model_path(run_id)
        try:
            with building_models(), self.pinned_backbones(run_id):
                return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            refusal = _transferlab_cause(exc)  # Keras wraps a layer's errors in TypeErrors; ours says it better
            if refusal is not None:
                raise type(refusal)(str(refusal)) from exc
            raise RunStoreError(f"expected a loadable Keras model at {path}, got "
                                f"{type(exc).__name__}: {first_line(exc)}") from exc

    def pinned_backbones(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """While active, a TF Hub layer in a model file being loaded can load only this run's pinned copy of the
        backbone named in its model_info.json (transferlab.core.models.hub_layer.pinned_hub_modules)."""
        from transferlab.core.models.hub_layer import PINNED_FOLDER, pinned_hub_modules

        path = self.locate(run_id)
        info = self.read_json(path.name, "model_info.json", default={})
        backbone = info.get("backbone") if isinstance(info, dict) else None
        return pinned_hub_modules(path / PINNED_FOLDER, [backbone] if isinstance(backbone, str) else [])

    # ---- deleting (the trash) ----

    def delete(self, run_id: str, purge: bool = False) -> str:
        """Move a run into the trash (or, with purge, remove it for good). Returns its name in the trash."""
        path = self.locate(run_id)
        self._refuse_if_training(path)
        if purge:
            self._purge(path)
            return path.name
        trash = self._trash(create=True)
        name = _free_name(trash, path.name)
        try:
            os.rename(path, trash / name)
        except OSError as exc:
            raise RunStoreError(f"expected to move run {path.name} into the trash, got {exc.strerror or exc}") \
                from exc
        with contextlib.suppress(OSError):
            os.utime(trash / name)  # its time in the trash is when it was deleted
            fsync_dir(self.root)
            fsync_dir(trash)
        logger.info("moved run %s to the trash as %s", path.name, name)
        return name

    def delete_runs(self, run_ids: builtins.list[str], purge: bool = False) -> builtins.list[str]:
        """Delete several runs: every id is resolved and checked first, so a typo or a run still training
        deletes nothing. With purge, ids of runs already in the trash are removed from it for good. Returns
        the names in the trash (or the purged names)."""
        targets = [self._deletion_target(run_id, purge) for run_id in run_ids]
        for path, _in_trash in targets:
            self._refuse_if_training(path)
        done = []
        for path, in_trash in dict.fromkeys(targets):
            if in_trash:
                self._purge(path)
                done.append(path.name)
            else:
                done.append(self.delete(path.name, purge=purge))
        return done

    def restore(self, run_id: str) -> str:
        """Bring a run back from the trash under its name. Returns that name."""
        path = self.locate(run_id, trashed=True)
        target = self.root / path.name
        if os.path.lexists(target):
            raise RunStoreError(f"expected no run named {path.name} in {self.root} to restore the deleted one, "
                                "got one")
        try:
            os.rename(path, target)
        except OSError as exc:
            raise RunStoreError(f"expected to restore run {path.name}, got {exc.strerror or exc}") from exc
        with contextlib.suppress(OSError):
            fsync_dir(path.parent)
            fsync_dir(self.root)
        logger.info("restored run %s from the trash", path.name)
        return path.name

    def purge(self, run_id: str) -> str:
        """Remove one run in the trash for good."""
        path = self.locate(run_id, trashed=True)
        self._purge(path)
        return path.name

    def empty_trash(self) -> int:
        """Remove every run in the trash for good; returns how many. Other files there are left alone."""
        trash = self._trash(create=False)
        names = [n for n in self._folder_names(trash) if _is_run_folder(trash / n)]
        for name in names:
            self._purge(_inside(trash, name))
        return len(names)

    # ---- compare ----

    def compare(self, run_ids: builtins.list[str]) -> dict[str, Any]:
        """Config differences and metrics side by side for two or more runs."""
        if len(run_ids) < 2:
            raise ConfigError(f"expected two or more runs to compare, got {len(run_ids)}")
        runs = [self.get(r) for r in run_ids]
        for run in runs:
            if run.damaged:
                raise RunStoreError(f"expected runs that can be compared, got run {run.run_id}, which is "
                                    f"damaged: {run.reason}")
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

    # ---- housekeeping ----

    def clean_leftovers(self) -> int:
        """Remove temp files left by processes that were killed mid-write (in the store, its trash and every
        run folder). Temp files of live processes are kept. Returns how many were removed."""
        folders = [self.root]
        with contextlib.suppress(RunStoreError):
            folders.append(self._trash(create=False))
            for name in self._folder_names(self.root):
                folders += [self.root / name, self.root / name / "exports"]
        return sum(remove_stale_temps(folder) for folder in folders if folder.is_dir() and not folder.is_symlink())

    # ---- internals ----

    def _clean_once(self) -> None:
        if not self._cleaned:
            self._cleaned = True
            removed = self.clean_leftovers()
            if removed:
                logger.info("removed %d temp files left by killed processes in %s", removed, self.root)

    def _make_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunStoreError(f"expected a run store folder at {self.root}, got {type(exc).__name__}: "
                                f"{exc.strerror or exc}") from exc

    def _new_run_folder(self, config: RunConfig, now: float) -> Path:
        tag = kind_of(config).tag(config)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        for attempt in range(_CREATE_ATTEMPTS):
            run_id = f"{stamp}-{config.kind}-{tag}-{secrets.token_hex(2)}" + (f"-{attempt + 1}" if attempt else "")
            path = self.root / check_run_id(run_id)
            try:
                os.mkdir(path, 0o777)  # exclusive; the umask decides the permissions
            except FileExistsError:
                continue
            except OSError as exc:
                raise RunStoreError(f"expected to create a run folder in {self.root}, got {type(exc).__name__}: "
                                    f"{exc.strerror or exc}") from exc
            with contextlib.suppress(OSError):
                fsync_dir(self.root)
            return path
        raise RunStoreError(f"expected a free run id in {self.root}, got {_CREATE_ATTEMPTS} taken ones")

    def _folder_names(self, folder: Path) -> builtins.list[str]:
        """Names of the real folders (not links) directly inside `folder` that are valid run ids."""
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunStoreError(f"expected a folder of runs at {folder}, got {type(exc).__name__}: "
                                f"{exc.strerror or exc}") from exc
        names = []
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False) and not _id_problem(entry.name):
                    names.append(entry.name)
        return sorted(names)

    def _trash(self, create: bool) -> Path:
        trash = self.root / TRASH_DIR
        try:
            info = trash.lstat()
        except FileNotFoundError:
            if create:
                try:
                    os.mkdir(trash, 0o777)
                except OSError as exc:
                    raise RunStoreError(f"expected to create the trash folder {trash}, got "
                                        f"{exc.strerror or exc}") from exc
            return trash
        if not stat.S_ISDIR(info.st_mode):
            raise RunStoreError(f"expected the trash {trash} to be a folder made by transferlab, got a "
                                f"{'link' if stat.S_ISLNK(info.st_mode) else 'file'}; move it away")
        return trash

    def _refuse_if_training(self, path: Path) -> None:
        try:
            status = _load_json(path / "status.json", dict)
        except (FileNotFoundError, RunStoreError):
            return  # no readable status: nothing is training it
        if status.get("status") == "running" and processes.is_running(status.get("pid"), status.get("pid_start")):
            raise RunStoreError(f"expected a run that is not training, got run {path.name}, which is still "
                                f"training (process {status.get('pid')}); stop it first")

    def _deletion_target(self, run_id: str, purge: bool) -> tuple[Path, bool]:
        try:
            return self.locate(run_id), False
        except RunStoreError:
            if not purge:
                raise
            with contextlib.suppress(RunStoreError):
                return self.locate(run_id, trashed=True), True
            raise

    def _purge(self, path: Path) -> None:
        """Remove a run folder for good: first renamed to a temp name in the trash (so a half-removed folder is
        never listed, and a later start finishes the job), then removed."""
        doomed = temp_sibling(self._trash(create=True) / path.name, keep_suffix=False)
        try:
            os.rename(path, doomed)
        except OSError as exc:
            raise RunStoreError(f"expected to delete run {path.name}, got {exc.strerror or exc}") from exc
        shutil.rmtree(doomed, ignore_errors=True)
        logger.info("deleted run %s for good", path.name)

    def _typed(self, path: Path, filename: str, default: Any = ...) -> Any:
        try:
            value = _load_json(path / filename, _JSON_TYPES.get(filename))
        except FileNotFoundError:
            if default is ...:
                raise RunStoreError(f"run {path.name} is damaged: no {filename}") from None
            return default
        except RunStoreError as exc:
            raise RunStoreError(f"run {path.name} is damaged: {exc}") from exc
        return value

    def _read(self, path: Path, deleted: float = 0.0) -> RunInfo:
        problems: list[str] = []
        config = _part(path, "config.json", problems, required=True)
        status = _part(path, "status.json", problems)
        history = _part(path, "history.json", problems, default=[])
        metrics = _part(path, "metrics.json", problems)
        problems += _config_problems(config) + _status_problems(status) + _history_problems(history)
        created = status.get("created", 0.0)
        if problems:
            with contextlib.suppress(OSError):
                created = created if _is_time(created) else path.lstat().st_mtime
            state, reason = "damaged", "; ".join(problems)
        else:
            state, reason = status.get("status", "interrupted"), status.get("reason", "")
            if state == "running" and not processes.is_running(status.get("pid"), status.get("pid_start")):
                state = "interrupted"
        label = _user_label(path)
        return RunInfo(run_id=path.name, path=path, kind=_text(config.get("kind"), "?"),
                       name=_text(config.get("name"), ""), status=state, reason=reason,
                       created=float(created) if _is_time(created) else 0.0, config=config, metrics=metrics,
                       epochs_done=len(history) if isinstance(history, list) else 0, deleted=deleted,
                       label=label.get("name", ""), notes=label.get("notes", ""))


def _user_label(path: Path) -> dict[str, str]:
    """label.json's name and notes; {} when there is none or it is unreadable (logged, never damaging)."""
    try:
        value = _load_json(path / "label.json", dict)
    except FileNotFoundError:
        return {}
    except RunStoreError as exc:
        logger.warning("ignoring the label of run %s: %s", path.name, exc)
        return {}
    return {key: value[key][:limit] for key, limit in (("name", MAX_LABEL_CHARS), ("notes", MAX_NOTES_CHARS))
            if isinstance(value.get(key), str)}


def _label_text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"run {what}: expected text, got {_json_kind(value)}")
    if len(value) > limit:
        raise ConfigError(f"run {what}: expected at most {limit} characters, got {len(value)}")
    return value


def _load_json(path: Path, expected: type | None = None) -> Any:
    """Parse a regular file of at most MAX_JSON_BYTES as UTF-8 JSON of the `expected` type. FileNotFoundError
    when it is missing; RunStoreError('<name>: what was expected, got what') for anything else. Never blocks on
    a FIFO or reads a device."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RunStoreError(f"{path.name}: expected a readable file, got {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RunStoreError(f"{path.name}: expected a file, got {_file_kind(info.st_mode)}")
        if info.st_size > MAX_JSON_BYTES:
            raise RunStoreError(f"{path.name}: expected at most {MAX_JSON_BYTES // 2**20} MiB of JSON, got "
                                f"{info.st_size / 2**20:.0f} MiB")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
        value = json.loads(data.decode("utf-8"))
    except OSError as exc:
        raise RunStoreError(f"{path.name}: expected a readable file, got {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RunStoreError(f"{path.name}: expected valid JSON, got {type(exc).__name__}: "
                            f"{first_line(exc, 120)}") from exc
    finally:
        os.close(fd)
    if expected is not None and not isinstance(value, expected):
        raise RunStoreError(f"{path.name}: expected {_json_kind_name(expected)}, got {_json_kind(value)}")
    return value


def _part(path: Path, filename: str, problems: list[str], required: bool = False, default: Any = None) -> Any:
    """One JSON file of a run for the list: its value, or `default` ({} unless given) with the problem noted."""
    default = {} if default is None else default
    try:
        return _load_json(path / filename, _JSON_TYPES[filename])
    except FileNotFoundError:
        if required:
            problems.append(f"no {filename}")
    except RunStoreError as exc:
        problems.append(str(exc))
    return default


def _config_problems(config: dict[str, Any]) -> list[str]:
    return [f"config.json: {key}: expected text, got {_shown(config[key])}"
            for key in ("kind", "name", "model", "mode", "data_dir") if key in config
            and not isinstance(config[key], str)]


def _status_problems(status: dict[str, Any]) -> list[str]:
    problems = []
    if status.get("status", "interrupted") not in STORED_STATUSES:
        problems.append(f"status.json: status: expected one of {', '.join(STORED_STATUSES)}, got "
                        f"{_shown(status['status'])}")
    if not isinstance(status.get("reason", ""), str):
        problems.append(f"status.json: reason: expected text, got {_shown(status['reason'])}")
    for key in ("created", "updated"):
        if key in status and not _is_time(status[key]):
            problems.append(f"status.json: {key}: expected a time in seconds, got {_shown(status[key])}")
    pid = status.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
        problems.append(f"status.json: pid: expected a process id, got {_shown(pid)}")
    return problems


def _history_problems(history: Any) -> list[str]:
    bad = next((row for row in history if not isinstance(row, dict)), None) if isinstance(history, list) else None
    return [] if bad is None else [f"history.json: expected one JSON object per epoch, got {_shown(bad)}"]


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        and 0 <= value < 1e11  # up to the year 5138


def _is_run_folder(path: Path) -> bool:
    return any(os.path.lexists(path / name) for name in _RUN_FILES)


def _inside(folder: Path, name: str) -> Path:
    """folder/name, after checking once more that it is a real folder directly inside `folder`."""
    path = folder / check_run_id(name)
    if path.is_symlink() or not path.is_dir() or path.resolve().parent != folder.resolve():
        raise RunStoreError(f"expected a run folder inside {folder}, got {path}, which is not one")
    return path


def _free_name(folder: Path, name: str) -> str:
    candidate, number = name, 1
    while os.path.lexists(folder / candidate):
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def _plain_name(filename: str) -> str:
    if not filename or os.path.basename(filename) != filename or filename in (".", ".."):
        raise RunStoreError(f"expected a file name inside a run folder, got {filename!r}")
    return filename


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {_shown(value)}"
    if isinstance(value, str):
        return f"the text {_shown(value)}"
    return _json_kind_name(type(value))


def _json_kind_name(kind: type) -> str:
    names: dict[type, str] = {dict: "a JSON object", list: "a JSON list"}
    return names.get(kind, kind.__name__)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _transferlab_cause(exc: BaseException) -> TransferlabError | None:
    """The TransferlabError an exception was raised from (directly or through wrappers), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TransferlabError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
