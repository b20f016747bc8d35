"""Frozen vs fine-tuned: two folder runs on exactly the same split and seed, and their differences."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from transferlab.core.config import FolderConfig
from transferlab.core.events import Reporter
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.jobs import Job, RunResult
from transferlab.core.training.loop import run_training


def compare_frozen_finetune(folder_config: FolderConfig, reporter: Reporter | None = None,
                            stop: StopFlag | None = None, store: RunStore | None = None, *,
                            make_job: Callable[[FolderConfig], Job] | None = None) -> dict[str, Any]:
    """Train a frozen run, then a fine-tuned one on exactly the same split and seed, and compare them.

    The fine-tuned run reuses the frozen run's split (split_from_run) and starts from its trained head
    (init_from_run): fine-tuning with a random head would push large, noisy gradients into the unfrozen
    blocks; starting from the frozen optimum is the standard recipe, and it makes the comparison answer
    "what does fine-tuning add on top of the frozen model". Both runs go through run_training with the same
    FitOptions (fine-tuning gets FINETUNE_LEARNING_RATE unless the learning rate is set). If the frozen
    run does not finish with a model, the fine-tuned run is not started (its run_id stays None).
    `make_job`, when given, makes each run's job (the GUI wraps the job so that model building holds its lock).

    Returns plain data: {"frozen": {run_id, status, reason, history, metrics}, "finetune": {...same},
    "per_class": [{class, support, frozen_precision, finetune_precision, precision_diff, ... recall, f1}],
    "differences": {"accuracy": finetune - frozen, "loss": ...}}.
    """
    store = store or RunStore()
    stop = stop or StopFlag()
    frozen_config = dataclasses.replace(folder_config, mode="frozen", init_from_run=None)
    frozen = run_training(frozen_config, reporter, stop, store=store,
                          job=make_job(frozen_config) if make_job else None)
    result: dict[str, Any] = {"frozen": _run_entry(frozen), "finetune": {
        "run_id": None, "status": None, "reason": "", "history": [], "metrics": {}}, "per_class": [],
        "differences": {}}
    if frozen.status != "finished" or not frozen.metrics:
        result["finetune"]["reason"] = f"not started: the frozen run {frozen.status} ({frozen.reason})"
        return result
    finetune_config = dataclasses.replace(folder_config, mode="finetune", split_from_run=frozen.run_id,
                                          init_from_run=frozen.run_id)
    tuned = run_training(finetune_config, reporter, stop, store=store,
                         job=make_job(finetune_config) if make_job else None)
    result["finetune"] = _run_entry(tuned)
    if tuned.metrics:
        result["per_class"] = per_class_differences(frozen.metrics, tuned.metrics)
        result["differences"] = {key: tuned.metrics[key] - frozen.metrics[key] for key in ("accuracy", "loss")
                                 if isinstance(frozen.metrics.get(key), float)
                                 and isinstance(tuned.metrics.get(key), float)}
    return result


def _run_entry(result: RunResult) -> dict[str, Any]:
    return {"run_id": result.run_id, "status": result.status, "reason": result.reason,
            "history": list(result.history), "metrics": dict(result.metrics)}


def per_class_differences(frozen: dict[str, Any], tuned: dict[str, Any]) -> list[dict[str, Any]]:
    """Per class: precision / recall / F1 of both runs and fine-tuned minus frozen."""
    rows = []
    theirs = {row["class"]: row for row in tuned.get("per_class", [])}
    for row in frozen.get("per_class", []):
        other = theirs.get(row["class"])
        if other is None:
            continue
        entry: dict[str, Any] = {"class": row["class"], "support": row["support"]}
        for key in ("precision", "recall", "f1"):
            entry[f"frozen_{key}"] = row[key]
            entry[f"finetune_{key}"] = other[key]
            entry[f"{key}_diff"] = other[key] - row[key]
        rows.append(entry)
    return rows

