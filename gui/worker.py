"""The one module that runs GUI work off the GUI thread: `Task` (one piece of work) and `TaskGroup` (the work
a widget starts).

A `Task` runs `fn(report, stop)` on a worker thread. The worker thread only ever emits one private signal
(`_relay`), connected with a queued connection to a slot of the Task, which lives in the GUI thread; that slot
re-emits the public signals. So every public signal of a Task is emitted in the GUI thread and any receiver
(a method, a lambda, pytest-qt's waitSignal) runs there:

    started, then reported* (whatever fn reports), then returned(result) or errored(exception), always finished.

After `finished` the Task is released (`deleteLater`); its Python attributes (`result`, `error`) stay readable.
Stopping is cooperative and immediate: `Task.stop()` sets a thread-safe `StopFlag` that the training loop checks
after every batch (never a queued signal, which would wait behind the worker's own events). `Task.cancel()`
also stops, and silences the task: its receivers hear nothing more (a superseded request, a closed window).

Worker threads are not daemons: the interpreter never exits with one inside TensorFlow. Running tasks are
kept alive in a class-level set until they finish; `wait_for_tasks()` cancels and joins them (the main window
calls it when it closes, the application when it quits).

Building or loading Keras models on two threads at once is unsafe: the engine serialises exactly that
(transferlab.core.models.building.building_models), never fitting, so a model summary or a dropped image never
waits for a long fine-tune.

Why not superqt's workers: they emit their signals from the worker thread, so a lambda connected to them runs
there, not in the GUI thread; their abort is checked between generator yields, where training stops through
the engine's StopFlag after every batch; and this module also lowers the worker's priority. The rest follows
superqt: signal order, the exception in `errored`, a class-level set of running tasks, release when finished.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, Qt, Signal, Slot

from transferlab.core.errors import TransferlabError, first_line
from transferlab.core.stopping import StopFlag

logger = logging.getLogger(__name__)

Report = Callable[[Any], None]

# Every task that builds or loads a model (summaries, loading a classifier, export, a run's preparation)
# holds this lock while it builds; see the module docstring.
TaskFn = Callable[[Report, StopFlag], Any]
Handler = Callable[..., Any]
THREAD_PREFIX = "transferlab-"  # the names of the worker threads


class TaskCancelled(Exception):
    """Raised in a cancelled task's worker when its work had not started yet (nobody hears it)."""


class Task(QObject):
    """One piece of work on a worker thread; its public signals are always emitted in the GUI thread."""

    started = Signal()
    # What fn reports (training events). Not named `event`: that would shadow QObject.event(), through which
    # Qt delivers the queued relays (each delivery then leaked a reference, and no Task was ever freed).
    reported = Signal(object)
    returned = Signal(object)
    errored = Signal(object)  # the exception raised by fn
    finished = Signal()
    _relay = Signal(str, object)  # the only signal emitted from the worker thread
    _ended = Signal(object)  # the Task itself, for its TaskGroup: no closure has to capture the task

    _running: ClassVar[set[Task]] = set()

    def __init__(self, fn: TaskFn, name: str = "task", owner: QObject | None = None) -> None:
        super().__init__()  # no parent: a Task must outlive whatever widget started it until it finishes
        self.name = name
        self.cancelled = False
        if owner is not None:  # once the owner is gone, its handlers must not run: the task is cancelled
            owner.destroyed.connect(self._on_owner_destroyed)
        self.stop_flag = StopFlag()
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self._fn = fn
        self._thread: threading.Thread | None = None
        self._relay.connect(self._on_relay, Qt.ConnectionType.QueuedConnection)

    # ---- GUI thread ----

    def start(self) -> Task:
        if self._thread is not None:
            raise RuntimeError(f"task {self.name!r} was already started")
        Task._running.add(self)
        self._thread = threading.Thread(target=self._run, name=THREAD_PREFIX + self.name, daemon=False)
        self._thread.start()
        return self

    def stop(self, reason: str = "stopped by user") -> None:
        """Ask the work to stop; thread-safe, takes effect at the next check (the next training batch)."""
        self.stop_flag.request(reason)

    def cancel(self, reason: str = "superseded") -> None:
        """Stop the work and silence the task: no more signals reach its receivers."""
        self.cancelled = True
        self.stop(reason)

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
        self.cancel("its window was closed")

    @Slot(str, object)
    def _on_relay(self, kind: str, payload: Any) -> None:
        if kind == "finished":
            self._on_finished()
        elif kind == "returned":
            self.result = payload
            if not self.cancelled:
                self.returned.emit(payload)
        elif kind == "errored":
            self.error = payload
            if not self.cancelled:
                self.errored.emit(payload)
        elif self.cancelled:
            return
        elif kind == "reported":
            self.reported.emit(payload)
        elif kind == "started":
            self.started.emit()

    def _on_finished(self) -> None:
        # The worker has nothing left to do but return. No join here: on a loaded machine the low-priority
        # thread may wait seconds for the CPU, and the GUI thread must not wait with it.
        self.done = True
        Task._running.discard(self)
        if not self.cancelled:
            self.finished.emit()
        self._ended.emit(self)
        self.deleteLater()

    # ---- worker thread ----

    def _report(self, event: Any) -> None:
        self._relay.emit("reported", event)

    def _run(self) -> None:
        lower_thread_priority()
        self._relay.emit("started", None)
        try:
            if self.cancelled:
                raise TaskCancelled(self.stop_flag.reason)
            result = self._fn(self._report, self.stop_flag)
        except Exception as exc:
            if not self.cancelled:
                logger.exception("task %s failed", self.name)
            # Drop the traceback: its frames would keep this task and fn's data (models, arrays) alive.
            self._relay.emit("errored", exc.with_traceback(None))
        else:
            self._relay.emit("returned", result)
        finally:
            self._relay.emit("finished", None)


class TaskGroup(QObject):
    """The background work of one widget; the one way the GUI starts a Task.

        self.tasks = TaskGroup(self)
        self.tasks.start("summary", fn, returned=self._on_summary, errored=self._on_error)

    A task started under a name supersedes the group's running task of that name: the old one is cancelled
    (stopped, and its handlers never called). `supersede=False` lets tasks of one name run side by side.
    Handlers are connected to the task's signals (`returned(result)`, `errored(exception)`, `reported(event)`,
    `finished()`); when the owner is destroyed every task of the group is cancelled.
    """

    def __init__(self, owner: QObject) -> None:
        super().__init__(owner)
        self._tasks: set[Task] = set()
        self._current: dict[str, Task] = {}

    def start(self, name: str, fn: TaskFn, *, returned: Handler | None = None, errored: Handler | None = None,
              reported: Handler | None = None, finished: Handler | None = None, supersede: bool = True) -> Task:
        if supersede:
            self.cancel(name)
        task = Task(fn, name, owner=self.parent())
        for signal, handler in ((task.returned, returned), (task.errored, errored), (task.reported, reported),
                                (task.finished, finished)):
            if handler is not None:
                signal.connect(handler)
        task._ended.connect(self._on_ended)
        self._tasks.add(task)
        self._current[name] = task
        return task.start()

    def cancel(self, name: str, reason: str = "superseded") -> None:
        """Cancel the running task of this name, if any."""
        task = self._current.pop(name, None)
        if task is not None and task.running:
            task.cancel(reason)

    def running(self, name: str | None = None) -> bool:
        """Whether a task of this name (of any name when None) is running and not cancelled."""
        return any(t.running and not t.cancelled and (name is None or t.name == name) for t in self._tasks)

    @Slot(object)
    def _on_ended(self, task: Task) -> None:
        self._tasks.discard(task)
        if self._current.get(task.name) is task:
            del self._current[task.name]


def describe_error(error: BaseException) -> str:
    """One line for the user: a TransferlabError's own message (it says what was expected and what was
    received), otherwise the exception's type and the first line of its message."""
    if isinstance(error, TransferlabError):
        return first_line(error)
    return f"{type(error).__name__}: {first_line(error)}" if str(error).strip() else type(error).__name__


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


def running_tasks() -> list[Task]:
    return list(Task._running)


def wait_for_tasks(timeout: float = 60.0) -> bool:
    """Cancel every running task and join its thread (used when the window closes and the app quits): the
    work is asked to stop, and no handler runs afterwards (none can start new work). True when all ended."""
    tasks = running_tasks()
    for task in tasks:
        task.cancel("the window was closed")
    deadline = time.monotonic() + timeout
    ended = True
    for task in tasks:
        if not task.join(max(0.0, deadline - time.monotonic())):
            logger.warning("task %s did not end within %.0f s", task.name, timeout)
            ended = False
    for thread in threading.enumerate():  # also the threads of finished tasks that are still returning
        if thread.name.startswith(THREAD_PREFIX):
            thread.join(max(0.0, deadline - time.monotonic()))
    return ended


def training_fn(config: Any, store: Any) -> TaskFn:
    """The work of one training run: core.training.run_training (TensorFlow is imported on the worker)."""

    def train(report: Report, stop: StopFlag) -> Any:
        from transferlab.core.training.loop import run_training

        return run_training(config, report, stop, store=store)

    return train


def compare_fn(config: Any, store: Any, explicit: dict[str, dict[str, Any]] | None = None) -> TaskFn:
    """Frozen and fine-tuned runs on the same split: core.training.compare.compare_frozen_finetune; `explicit`
    holds the values the user set for one arm (the rest are each mode's own)."""

    def compare(report: Report, stop: StopFlag) -> Any:
        from transferlab.core.training.compare import compare_frozen_finetune

        return compare_frozen_finetune(config, report, stop, store, explicit=explicit)

    return compare
