"""Frozen vs fine-tuned: two folder runs on exactly the same split and seed, and their differences."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from transferlab.core.config import FolderConfig, default_learning_rate, folder_config_for
from transferlab.core.events import Reporter
from transferlab.core.records import ClassDifference, Comparison, EvaluationReport, RunEntry
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.jobs import RunResult, StopRequested
from transferlab.core.training.loop import preflight, run_training
from transferlab.core.training.preflight import Checked


def compare_frozen_finetune(folder_config: FolderConfig, reporter: Reporter | None = None,
                            stop: StopFlag | None = None, store: RunStore | None = None, *,
                            checked: Checked | None = None,
                            explicit: Mapping[str, Mapping[str, Any]] | None = None) -> Comparison:
    """Train a frozen run, then a fine-tuned one on exactly the same split and seed, and compare them.

    The fine-tuned run reuses the frozen run's split (split_from_run) and starts from its trained head
    (init_from_run): fine-tuning with a random head would push large, noisy gradients into the unfrozen
    blocks; starting from the frozen optimum is the standard recipe, and it makes the comparison answer
    "what does fine-tuning add on top of the frozen model". Each run uses its own mode's recommended
    settings (learning rate, epochs, early stopping: transferlab.core.config.recommended_fit), whatever
    folder_config.fit says about them; `explicit` = {"frozen": {...}, "finetune": {...}} holds values the
    user set for one arm, which apply to that arm only. The shared settings (batch size, validation split,
    seed) come from folder_config.fit. If the frozen run does not finish with a model, the fine-tuned run is
    not started (its run_id stays None).

    `Comparison.to_json()` is {"frozen": {run_id, status, reason, history, metrics}, "finetune": {...same},
    "per_class": [{class, support, frozen_precision, finetune_precision, precision_diff, ... recall, f1}],
    "differences": {"accuracy": finetune - frozen, "loss": ...}, "settings": {"frozen": {learning_rate,
    epochs, early_stopping_patience}, "finetune": {...}}, "headline": one sentence}.
    """
    store = store or RunStore()
    stop = stop or StopFlag()
    explicit = explicit or {}
    frozen_config = folder_config_for("frozen", folder_config, dict(explicit.get("frozen") or {}),
                                      init_from_run=None)
    if checked is None:  # bad input (e.g. --unfreeze beyond the backbone) is refused before either run exists
        try:
            checked = preflight(frozen_config, store, reporter, stop)
        except StopRequested as exc:
            return Comparison(RunEntry(run_id=None, status="stopped", reason=str(exc) or "stopped by user"),
                              RunEntry(run_id=None, status=None, reason="not started: stopped while checking"))
    frozen = run_training(frozen_config, reporter, stop, store=store, checked=checked)
    finetune_config = folder_config_for("finetune", folder_config, dict(explicit.get("finetune") or {}),
                                        split_from_run=frozen.run_id, init_from_run=frozen.run_id)
    settings = {"frozen": arm_settings(frozen_config), "finetune": arm_settings(finetune_config)}
    if frozen.status != "finished" or frozen.report is None:
        reason = f"not started: the frozen run {frozen.status} ({frozen.reason})"
        return Comparison(_run_entry(frozen), RunEntry(run_id=None, status=None, reason=reason), settings=settings)
    tuned = run_training(finetune_config, reporter, stop, store=store, checked=checked)
    if tuned.report is None:
        return Comparison(_run_entry(frozen), _run_entry(tuned), settings=settings)
    differences = {"accuracy": tuned.report.accuracy - frozen.report.accuracy,
                   "loss": tuned.report.loss - frozen.report.loss}
    return Comparison(_run_entry(frozen), _run_entry(tuned), per_class_differences(frozen.report, tuned.report),
                      differences, settings=settings,
                      headline=headline(differences["accuracy"], frozen.metrics, tuned.metrics))


def _run_entry(result: RunResult) -> RunEntry:
    return RunEntry(result.run_id, result.status, result.reason, tuple(result.history), result.report)


def arm_settings(config: FolderConfig) -> dict[str, Any]:
    """What one arm actually trains with: the mode's learning rate (resolved), epoch cap and patience."""
    return {"learning_rate": config.fit.learning_rate or default_learning_rate(config),
            "epochs": config.fit.epochs, "early_stopping_patience": config.fit.early_stopping_patience}


def headline(diff: float | None, frozen: Mapping[str, Any], tuned: Mapping[str, Any]) -> str:
    """The difference with its uncertainty, and plainly whether it is within the noise.

    The noise is the spread of the frozen recipe's accuracy over cross-validation folds when the frozen run
    was cross-validated (its "cv" metrics), else the binomial standard error of one accuracy on the
    evaluation set (sqrt(p(1-p)/n), for each run; the difference's error combines both)."""
    if not isinstance(diff, float):
        return ""
    noise, source = _noise(frozen, tuned)
    points = 100 * diff
    if noise <= 0:
        return f"Fine-tuning changed accuracy by {points:+.1f} points."
    verdict = ("within the noise: on this data the two are not distinguishable"
               if abs(diff) < 2 * noise else
               "larger than the noise" if diff > 0 else "worse, beyond the noise")
    return (f"Fine-tuning changed accuracy by {points:+.1f} ± {100 * noise:.1f} points ({source}): {verdict}.")


def _noise(frozen: Mapping[str, Any], tuned: Mapping[str, Any]) -> tuple[float, str]:
    cv = frozen.get("cv")
    if isinstance(cv, Mapping) and isinstance(cv.get("accuracy_std"), float) and cv.get("folds"):
        return math.sqrt(2) * float(cv["accuracy_std"]), f"spread over {cv['folds']} folds"
    errors = []
    for metrics in (frozen, tuned):
        p, n = metrics.get("accuracy"), metrics.get("samples")
        if not isinstance(p, float) or not isinstance(n, int) or n < 1:
            return 0.0, ""
        errors.append(max(p * (1 - p), 1.0 / n) / n)  # never 0, even at 100 %
    return math.sqrt(sum(errors)), f"standard error on {frozen.get('samples')} evaluation images"




def per_class_differences(frozen: EvaluationReport, tuned: EvaluationReport) -> tuple[ClassDifference, ...]:
    """Per class in both reports: precision / recall / F1 of both runs (fine-tuned minus frozen in JSON)."""
    theirs = {row.name: row for row in tuned.per_class}
    return tuple(ClassDifference(row.name, row.support, (row.precision, row.recall, row.f1),
                                 (other.precision, other.recall, other.f1))
                 for row in frozen.per_class if (other := theirs.get(row.name)) is not None)
