"""GUI tests run offscreen, with settings and runs in temporary folders. Any Qt warning aborts the run
(QT_FATAL_WARNINGS, set before the QApplication exists), and every window is closed after its test, which
fails when a background task outlives its window."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["QT_FATAL_WARNINGS"] = "1"

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import QCoreApplication, QEvent, QSettings

from transferlab.core.runs.store import RunStore


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    yield
    # Like the app on quit: no background task (training, model summary, model load) outlives its test, so
    # none is still running TensorFlow when the next test starts or the interpreter exits.
    from transferlab.gui.worker import running_tasks, wait_for_tasks

    assert wait_for_tasks(), f"tasks still running after the test: {[t.name for t in running_tasks()]}"


def leaked_tasks() -> list[str]:
    """Tasks still registered, or worker threads still alive, once every window is closed and the queued
    signals are delivered: what a window must never leave behind."""
    from transferlab.gui.worker import running_tasks

    QCoreApplication.sendPostedEvents()  # the tasks' queued "finished" relays, which release them
    threads = [t for t in threading.enumerate() if t.name.startswith("transferlab-")]
    for thread in threads:  # a finished task's thread may still be returning (at low priority)
        thread.join(10)
    alive = [t.name for t in threads if t.is_alive()]
    return [f"task {task.name}" for task in running_tasks()] + [f"thread {name}" for name in alive]


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "transferlab.ini"


@pytest.fixture
def make_window(qtbot, tmp_path: Path, settings_file: Path):
    """A MainWindow with its own settings file and (by default) an empty run store; waits for the data.
    After the test every window is closed, as a user would, and the test fails if a task outlived it."""
    from transferlab.gui.main_window import MainWindow
    from transferlab.gui.settings import AppSettings

    windows: list[MainWindow] = []

    def make(store: RunStore | None = None, wait_data: bool = True) -> MainWindow:
        settings = AppSettings(QSettings(str(settings_file), QSettings.Format.IniFormat))
        window = MainWindow(settings, store or RunStore(tmp_path / "runs"))
        windows.append(window)
        # The offscreen platform plugin cannot take a window's size hints: each time the window's minimum size
        # changes (a message bar appears) it says so in a Qt warning, which QT_FATAL_WARNINGS makes fatal.
        # Only in tests, the minimum size is fixed before the window is shown, at what its layout asks for
        # then; every other warning still aborts.
        window.setMinimumSize(window.minimumSizeHint())
        if wait_data:
            with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
                window.show()
        else:
            window.show()
        return window

    yield make
    for window in windows:
        window.close()  # stops and joins its tasks (MainWindow.closeEvent)
    leaked = leaked_tasks()
    for window in windows:
        window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not leaked, f"background work outlived its window: {leaked}"


def quick_mnist(window, model: str = "ann", train_limit: int = 600, test_limit: int = 300, epochs: int = 2,
                batch: int = 32) -> None:
    """Set the Model panel to a small, fast MNIST run."""
    panel = window.model_panel
    panel.set_mnist_model(model)
    panel.train_limit.setValue(train_limit)
    panel.test_limit.setValue(test_limit)
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(batch)
    panel.val_spin.setValue(0.2)
    panel.stop_check.setChecked(False)


def start_long_run(qtbot, window) -> None:
    """Start a 5-epoch CNN run on 20,000 digits and return once its second batch has been reported."""
    from transferlab.core.events import BatchProgress

    quick_mnist(window, model="cnn", train_limit=20000, epochs=5)
    batches = []
    task = window.start_training()
    task.reported.connect(lambda event: batches.append(event) if isinstance(event, BatchProgress) else None)
    qtbot.waitUntil(lambda: len(batches) >= 2, timeout=60000)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    """Two small MNIST runs (different learning rates), trained once headless; tests only read them."""
    from transferlab.core.config import mnist_preset
    from transferlab.core.training.loop import run_training
    from transferlab.gui.worker import lower_thread_priority

    store = RunStore(tmp_path_factory.mktemp("trained") / "runs")
    results = []

    def train() -> None:  # like the GUI: on a worker thread at low priority (TF's thread pools inherit it)
        lower_thread_priority()
        for learning_rate in (1e-3, 3e-3):  # the engine takes its Keras build lock itself
            results.append(run_training(mnist_preset("ann", train_limit=600, test_limit=300, epochs=2,
                                                     learning_rate=learning_rate), store=store))

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    assert [r.status for r in results] == ["finished", "finished"], [r.reason for r in results]
    return store


@pytest.fixture
def digit_png(tmp_path: Path) -> Path:
    """A hand-drawn-looking '1': dark ink on white paper, 120×120."""
    image = Image.new("L", (120, 120), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(60, 15), (60, 105)], fill=0, width=12)
    draw.line([(45, 30), (60, 15)], fill=0, width=10)
    path = tmp_path / "one.png"
    image.save(path)
    return path


def make_class_folder(root: Path, classes: dict[str, int], size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for index, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            pixels[..., index % 3] += 150
            Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root
