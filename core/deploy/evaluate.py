"""Evaluating a stored run again, the way its kind allows.

    report = evaluate_stored_run(store, run_id)

An MNIST run is evaluated again on the test set (the data ships with the app); a folder run reports the
evaluation stored when it was trained (its images may have moved since). Which applies is the run kind's
business (transferlab.core.training.kinds: `evaluate_again`).
"""

from __future__ import annotations

from transferlab.core.errors import RunStoreError
from transferlab.core.records import EvaluationReport
from transferlab.core.runs.store import RunStore
from transferlab.core.training.kinds import parts_named


def evaluate_stored_run(store: RunStore, run_id: str) -> EvaluationReport:
    """The run's evaluation: computed again when its kind can, else the stored one (RunStoreError: none)."""
    run_id = store.resolve(run_id)
    info = store.get(run_id)
    again = parts_named(info.kind).evaluate_again
    if again is not None:
        return again(store, run_id)
    if info.report is None:
        raise RunStoreError(f"expected stored metrics in run {run_id}, got none (status {info.status})")
    return info.report
