"""Training from the GUI: one click, live curves, results, stop, no frozen window, closing while training."""

from __future__ import annotations

import shutil
import time

import pytest
from PySide6.QtCore import QMimeData, Qt, QTimer, QUrl

from tests.gui.conftest import quick_mnist, start_long_run
from transferlab.core.events import BatchProgress, RunFinished, RunStarted
from transferlab.core.runs.store import RunStore


class StallProbe:
    """A 10 ms timer; records the longest gap between ticks (how long the event loop was blocked)."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.worst = 0.0

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.last = now

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


@pytest.mark.slow
def test_train_click_shows_curves_results_and_runs(qtbot, make_window):
    window = make_window()
    quick_mnist(window, epochs=2)
    with qtbot.waitSignal(window.trainingFinished, timeout=90000) as finished:
        qtbot.mouseClick(window.train_button, Qt.MouseButton.LeftButton)
        assert window.is_training()
        assert not window.train_button.isEnabled()
    result = finished.args[0]
    assert result.status == "finished", result.reason
    curves = window.training_panel.curves
    assert curves.epoch_points("loss") == 2
    assert curves.epoch_points("val_accuracy") == 2
    assert len(curves.batch_loss_line.get_xdata()) >= 2  # the within-epoch trace
    assert window.train_button.isEnabled() and not window.stop_button.isEnabled()
    assert window.message_bar.level == "success"
    qtbot.waitUntil(lambda: window.results_panel.per_class.rowCount() == 10, timeout=20000)
    assert "accuracy" in window.results_panel.header.text()
    assert [run.run_id for run in window.runs_panel.runs] == [result.run_id]
    assert window.classify_panel.run_id() == result.run_id


@pytest.mark.slow
def test_event_loop_never_stalls_while_training(qtbot, make_window):
    """The longest gap of a 10 ms QTimer from RunStarted to RunFinished (model build, fitting, evaluation)."""
    window = make_window()
    quick_mnist(window, model="cnn", train_limit=1500, epochs=2)
    probe = StallProbe()
    marks = {}

    def on_event(event):
        if isinstance(event, RunStarted):
            probe.start()
        elif isinstance(event, RunFinished):
            marks["worst"] = probe.stop()

    with qtbot.waitSignal(window.trainingFinished, timeout=90000) as finished:
        task = window.start_training()
        task.reported.connect(on_event)
    assert finished.args[0].status == "finished"
    print(f"worst event-loop stall while training: {1000 * marks['worst']:.0f} ms")
    assert 0 < marks["worst"] < 0.5


@pytest.mark.slow
def test_stop_takes_effect_within_a_batch(qtbot, make_window):
    window = make_window()
    start_long_run(qtbot, window)
    with qtbot.waitSignal(window.trainingFinished, timeout=10000) as finished:
        started = time.perf_counter()
        qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    took = time.perf_counter() - started
    result = finished.args[0]
    assert result.status == "stopped"
    assert took < 3.0, took
    assert window.message_bar.level == "warning"
    assert window.train_button.isEnabled()


@pytest.mark.slow
def test_stop_right_after_start(qtbot, make_window):
    window = make_window()
    quick_mnist(window)
    with qtbot.waitSignal(window.trainingFinished, timeout=60000) as finished:
        window.start_training()
        window.stop_training()
    assert finished.args[0].status == "stopped"


@pytest.mark.slow
def test_closing_during_training_stops_and_joins_the_worker(qtbot, make_window):
    window = make_window()
    quick_mnist(window, model="cnn", train_limit=20000, epochs=5)
    batches = []
    task = window.start_training()
    task.reported.connect(lambda event: batches.append(event) if isinstance(event, BatchProgress) else None)
    qtbot.waitUntil(lambda: len(batches) >= 1, timeout=60000)
    started = time.perf_counter()
    window.close()
    assert time.perf_counter() - started < 10
    assert task.join(0)  # the worker thread has ended
    assert task.stop_flag.requested and task.stop_flag.skip_evaluation
    assert window.windowTitle().startswith("Stopping…")
    run = window.store.list()[0]
    assert run.status == "stopped" and not run.metrics  # no evaluation on close (see test_stop_on_close.py)


def test_bad_settings_show_a_message_not_a_crash(qtbot, make_window):
    window = make_window()
    window.model_panel.set_mnist_model("ann")
    window.model_panel.train_limit.setValue(5)  # core wants >= 10
    assert window.start_training() is None
    assert window.message_bar.level == "error"
    assert "train_limit" in window.message_bar.text
    assert window.train_button.isEnabled()


@pytest.mark.slow
def test_summary_and_classify_do_not_wait_for_training(qtbot, make_window, trained_store, digit_png, tmp_path):
    """The Keras lock covers building only: while a run fits, a model summary is built and a dropped image
    is classified, and the run goes on."""
    store = RunStore(tmp_path / "runs")  # the shared trained runs stay as they are: this test adds one
    shutil.copytree(trained_store.root, store.root)
    window = make_window(store)
    quick_mnist(window, model="cnn", train_limit=20000, epochs=5)
    batches = []
    task = window.start_training()
    task.reported.connect(lambda event: batches.append(event) if isinstance(event, BatchProgress) else None)
    qtbot.waitUntil(lambda: len(batches) >= 1, timeout=60000)  # fitting
    with qtbot.waitSignal(window.model_panel.summaryShown, timeout=30000):
        window.model_panel.set_mnist_model("ann")  # a summary not built before
    assert window.model_panel.summary is not None and window.model_panel.summary.total_params > 100_000
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(digit_png))])
    with qtbot.waitSignal(window.classify_panel.classified, timeout=30000) as classified:
        window.handle_drop(mime)
    assert not classified.args[0][0].error
    assert window.is_training() and not task.done  # neither waited for the run to end
    with qtbot.waitSignal(window.trainingFinished, timeout=10000) as finished:
        window.stop_training()
    assert finished.args[0].status == "stopped"
