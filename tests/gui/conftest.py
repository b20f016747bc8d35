"""GUI tests run offscreen, with settings and runs in temporary folders."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import QSettings

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


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "transferlab.ini"


@pytest.fixture
def make_window(qtbot, tmp_path: Path, settings_file: Path):
    """A MainWindow with its own settings file and (by default) an empty run store; waits for the data."""
    from transferlab.gui.main_window import MainWindow
    from transferlab.gui.settings import AppSettings

    def make(store: RunStore | None = None, wait_data: bool = True) -> MainWindow:
        settings = AppSettings(QSettings(str(settings_file), QSettings.Format.IniFormat))
        window = MainWindow(settings, store or RunStore(tmp_path / "runs"))
        qtbot.addWidget(window)
        if wait_data:
            with qtbot.waitSignal(window.data_panel.loaded, timeout=30000):
                window.show()
        else:
            window.show()
        return window

    return make


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
