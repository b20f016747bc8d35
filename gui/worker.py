"""The one module that runs GUI work off the GUI thread.

A `Task` runs `fn(report, stop)` on a Python thread. The worker thread only ever emits one private signal
(`_relay`), connected with a queued connection to a slot of the Task, which lives in the GUI thread; that slot
re-emits the public signals. So every public signal of a Task is emitted in the GUI thread and any receiver
(a method, a lambda, pytest-qt's waitSignal) runs there:

    started, then event* (whatever fn reports), then returned(result) or errored(message), always finished.

Stopping is cooperative and immediate: `Task.stop()` sets a thread-safe `StopFlag` that the training loop checks
after every batch (never a queued signal, which would wait behind the worker's own events).
Running tasks are kept alive in a class-level set until they finish; `wait_for_tasks()` stops and joins them
(the main window calls it when it closes).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, Qt, Signal, Slot

from transferlab.core.stopping import StopFlag

logger = logging.getLogger(__name__)

Report = Callable[[Any], None]

# Keras builds models through process-wide state: building two models at once on two threads fails.
# Every task that builds or loads a model (training, summaries, loading a classifier, export) holds this lock.
KERAS_LOCK = threading.RLock()
TaskFn = Callable[[Report, StopFlag], Any]


class Task(QObject):
    """One piece of work on a worker thread; its public signals are always emitted in the GUI thread."""

    started = Signal()
    event = Signal(object)
    returned = Signal(object)
    errored = Signal(str)
    finished = Signal()
    _relay = Signal(str, object)  # the only signal emitted from the worker thread

    _running: ClassVar[set[Task]] = set()

    def __init__(self, fn: TaskFn, name: str = "task", owner: QObject | None = None) -> None:
        super().__init__()  # no parent: a Task must outlive whatever widget started it until it finishes
        self.name = name
        self._orphaned = False
        if owner is not None:  # once the owner is gone, its handlers must not run: signals are dropped
            owner.destroyed.connect(self._on_owner_destroyed)
        self.stop_flag = StopFlag()
        self.result: Any = None
        self.error = ""
        self.done = False
        self._fn = fn
        self._thread: threading.Thread | None = None
        self._relay.connect(self._on_relay, Qt.ConnectionType.QueuedConnection)

    # ---- GUI thread ----

    def start(self) -> Task:
        if self._thread is not None:
            raise RuntimeError(f"task {self.name!r} was already started")
        Task._running.add(self)
        self._thread = threading.Thread(target=self._run, name=f"transferlab-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, reason: str = "stopped by user") -> None:
        """Ask the work to stop; thread-safe, takes effect at the next check (the next training batch)."""
        self.stop_flag.request(reason)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self.done

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @Slot()
    def _on_owner_destroyed(self) -> None:
        self._orphaned = True
        self.stop("its window was closed")

    @Slot(str, object)
    def _on_relay(self, kind: str, payload: Any) -> None:
        if self._orphaned:
            if kind == "finished":
                self.join(5.0)
                self.done = True
                Task._running.discard(self)
            return
        if kind == "event":
            self.event.emit(payload)
        elif kind == "started":
            self.started.emit()
        elif kind == "returned":
            self.result = payload
            self.returned.emit(payload)
        elif kind == "errored":
            self.error = str(payload)
            self.errored.emit(self.error)
        elif kind == "finished":
            self.join(5.0)  # the thread has nothing left to do but return
            self.done = True
            Task._running.discard(self)
            self.finished.emit()

    # ---- worker thread ----

    def _report(self, event: Any) -> None:
        self._relay.emit("event", event)

    def _run(self) -> None:
        lower_thread_priority()
        self._relay.emit("started", None)
        try:
            result = self._fn(self._report, self.stop_flag)
        except Exception as exc:
            logger.exception("task %s failed", self.name)
            self._relay.emit("errored", _describe(exc))
        else:
            self._relay.emit("returned", result)
        finally:
            self._relay.emit("finished", None)


WORKER_NICENESS = 10


def lower_thread_priority(niceness: int = WORKER_NICENESS) -> None:
    """Run the calling (worker) thread at a lower CPU priority than the GUI thread, so training never starves
    the event loop on a busy 2-core laptop. On Linux niceness is per thread and inherited by the threads it
    creates, so TensorFlow's thread pools, when first created from a worker, run at this priority too."""
    if not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
    except OSError:  # not permitted, or not Linux: keep the default priority
        logger.debug("could not lower the priority of thread %s", threading.current_thread().name)


def run_task(fn: Callable[[], Any], name: str, on_returned: Callable[[Any], None] | None = None,
             on_errored: Callable[[str], None] | None = None) -> Task:
    """Start a task that needs neither progress reports nor stopping."""
    task = Task(lambda _report, _stop: fn(), name)
    if on_returned is not None:
        task.returned.connect(on_returned)
    if on_errored is not None:
        task.errored.connect(on_errored)
    return task.start()


def running_tasks() -> list[Task]:
    return list(Task._running)


def wait_for_tasks(timeout: float = 60.0) -> bool:
    """Stop every running task and join its thread (used when the window closes). True when all ended."""
    tasks = running_tasks()
    for task in tasks:
        task.stop("the window was closed")
    deadline = time.monotonic() + timeout
    ended = True
    for task in tasks:
        if not task.join(max(0.0, deadline - time.monotonic())):
            logger.warning("task %s did not end within %.0f s", task.name, timeout)
            ended = False
    return ended


def training_fn(config: Any, store: Any) -> TaskFn:
    """The work of one training run: core.training.run_training (TensorFlow is imported on the worker)."""

    def train(report: Report, stop: StopFlag) -> Any:
        with KERAS_LOCK:
            from transferlab.core.training.loop import run_training

            return run_training(config, report, stop, store=store)

    return train


def compare_fn(config: Any, store: Any, explicit: dict[str, dict[str, Any]] | None = None) -> TaskFn:
    """Frozen and fine-tuned runs on the same split: core.training.compare.compare_frozen_finetune; `explicit`
    holds the settings the user set for one arm (the rest are each mode's own)."""

    def compare(report: Report, stop: StopFlag) -> Any:
        with KERAS_LOCK:
            from transferlab.core.training.compare import compare_frozen_finetune

            return compare_frozen_finetune(config, report, stop, store, explicit=explicit)

    return compare


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def doctor_fn(folder: str, backbone: str, split_run: str | None = None, store: Any = None) -> TaskFn:
    """The data check: core.analysis.doctor.check_folder; progress as PhaseProgress events."""

    def check(report: Report, stop: StopFlag) -> Any:
        from transferlab.core.events import PhaseProgress

        with KERAS_LOCK:
            from transferlab.core.analysis.doctor import check_folder

            split = None
            if split_run:
                from transferlab.core.runs.lineage import load_run_split

                split = load_run_split(store, split_run)
            return check_folder(folder, backbone, split=split, stop=stop,
                                progress=lambda phase, done, total: report(PhaseProgress(phase, done, total)))

    return check
