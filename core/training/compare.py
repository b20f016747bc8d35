"""Frozen vs fine-tuned: two folder runs on exactly the same split and seed, and their differences."""

from __future__ import annotations

import dataclasses

from transferlab.core.config import FolderConfig
from transferlab.core.events import Reporter
from transferlab.core.records import ClassDifference, Comparison, EvaluationReport, RunEntry
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.jobs import RunResult, StopRequested
from transferlab.core.training.loop import preflight, run_training
from transferlab.core.training.preflight import Checked


def compare_frozen_finetune(folder_config: FolderConfig, reporter: Reporter | None = None,
                            stop: StopFlag | None = None, store: RunStore | None = None, *,
                            checked: Checked | None = None) -> Comparison:
    """Train a frozen run, then a fine-tuned one on exactly the same split and seed, and compare them.

    The fine-tuned run reuses the frozen run's split (split_from_run) and starts from its trained head
    (init_from_run): fine-tuning with a random head would push large, noisy gradients into the unfrozen
    blocks; starting from the frozen optimum is the standard recipe, and it makes the comparison answer
    "what does fine-tuning add on top of the frozen model". Both runs go through run_training with the same
    FitOptions (fine-tuning gets FINETUNE_LEARNING_RATE unless the learning rate is set). If the frozen
    run does not finish with a model, the fine-tuned run is not started (its run_id stays None).
    `make_job`, when given, makes each run's job (the GUI wraps the job so that model building holds its lock).

    `Comparison.to_json()` is {"frozen": {run_id, status, reason, history, metrics}, "finetune": {...same},
    "per_class": [{class, support, frozen_precision, finetune_precision, precision_diff, ... recall, f1}],
    "differences": {"accuracy": finetune - frozen, "loss": ...}}.
    """
    store = store or RunStore()
    stop = stop or StopFlag()
    frozen_config = dataclasses.replace(folder_config, mode="frozen", init_from_run=None)
    if checked is None:  # bad input (e.g. --unfreeze beyond the backbone) is refused before either run exists
        try:
            checked = preflight(frozen_config, store, reporter, stop)
        except StopRequested as exc:
            return Comparison(RunEntry(run_id=None, status="stopped", reason=str(exc) or "stopped by user"),
                              RunEntry(run_id=None, status=None, reason="not started: stopped while checking"))
    frozen = run_training(frozen_config, reporter, stop, store=store, checked=checked)
    if frozen.status != "finished" or frozen.report is None:
        reason = f"not started: the frozen run {frozen.status} ({frozen.reason})"
        return Comparison(_run_entry(frozen), RunEntry(run_id=None, status=None, reason=reason))
    finetune_config = dataclasses.replace(folder_config, mode="finetune", split_from_run=frozen.run_id,
                                          init_from_run=frozen.run_id)
    tuned = run_training(finetune_config, reporter, stop, store=store, checked=checked)
    if tuned.report is None:
        return Comparison(_run_entry(frozen), _run_entry(tuned))
    return Comparison(_run_entry(frozen), _run_entry(tuned), per_class_differences(frozen.report, tuned.report),
                      {"accuracy": tuned.report.accuracy - frozen.report.accuracy,
                       "loss": tuned.report.loss - frozen.report.loss})


def _run_entry(result: RunResult) -> RunEntry:
    return RunEntry(result.run_id, result.status, result.reason, tuple(result.history), result.report)


def per_class_differences(frozen: EvaluationReport, tuned: EvaluationReport) -> tuple[ClassDifference, ...]:
    """Per class in both reports: precision / recall / F1 of both runs (fine-tuned minus frozen in JSON)."""
    theirs = {row.name: row for row in tuned.per_class}
    return tuple(ClassDifference(row.name, row.support, (row.precision, row.recall, row.f1),
                                 (other.precision, other.recall, other.f1))
                 for row in frozen.per_class if (other := theirs.get(row.name)) is not None)
