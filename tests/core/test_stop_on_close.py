"""Closing the app during training: the run stops at the next batch, keeps its finished epochs and its model,
and skips the (slow) evaluation; a plain Stop still evaluates."""

from __future__ import annotations

import pytest

from transferlab.core.config import mnist_preset
from transferlab.core.events import EpochEnded
from transferlab.core.runs.store import RunStore
from transferlab.core.stopping import StopFlag
from transferlab.core.training.loop import run_training


@pytest.mark.parametrize("evaluate", [False, True])
@pytest.mark.slow
def test_a_stop_after_the_first_epoch_keeps_it_and_evaluates_only_when_asked(tmp_path, evaluate):
    store = RunStore(tmp_path / "runs")
    stop = StopFlag()

    def reporter(event: object) -> None:
        if isinstance(event, EpochEnded) and event.epoch == 1:
            stop.request("the window was closed", evaluate=evaluate)
            stop.request("the window was closed")  # a later plain request does not undo the skip

    result = run_training(mnist_preset("ann", train_limit=600, test_limit=200, epochs=4), reporter, stop,
                          store=store)
    assert result.status == "stopped"
    assert len(store.history(result.run_id)) == 1
    assert store.get(result.run_id).has_model
    if evaluate:
        assert result.report is not None and result.report.epochs_trained == 1
        assert store.read_json(result.run_id, "metrics.json")["samples"] == 200
    else:
        assert result.report is None and "not evaluated" in result.reason
        assert store.read_json(result.run_id, "metrics.json") is None


def test_clear_forgets_the_skip():
    stop = StopFlag()
    stop.request("closing", evaluate=False)
    assert stop.skip_evaluation
    stop.clear()
    stop.request("stopped by user")
    assert not stop.skip_evaluation
