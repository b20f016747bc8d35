"""Task and TaskGroup (gui.worker): signal order, errors as exceptions, release, supersession, joining."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QObject
from shiboken6 import isValid

from transferlab.core.errors import DataError
from transferlab.gui.worker import Task, TaskGroup, describe_error, running_tasks, wait_for_tasks


def _release_deleted() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_task_signals_in_order_in_the_gui_thread(qtbot):
    seen: dict[str, object] = {}

    def work(report, stop):
        seen["daemon"] = threading.current_thread().daemon
        report("halfway")
        return 42

    task = Task(work, "answer")
    task.reported.connect(lambda event: seen.setdefault("event", (event, threading.current_thread())))
    task.returned.connect(lambda result: seen.setdefault("returned", result))
    with qtbot.waitSignals([task.started, task.returned, task.finished], order="strict", timeout=10000):
        task.start()
    assert seen["returned"] == 42
    assert seen["event"] == ("halfway", threading.main_thread())  # receivers run in the GUI thread
    assert seen["daemon"] is False  # the interpreter never exits with a worker inside TensorFlow
    assert task.result == 42 and task.error is None and not task.running


def test_errored_carries_the_exception(qtbot):
    def work(report, stop):
        raise DataError("expected at least 2 class subfolders in /photos, got 1")

    task = Task(work, "bad-data")
    errors: list[BaseException] = []
    task.errored.connect(errors.append)
    with qtbot.waitSignals([task.started, task.errored, task.finished], order="strict", timeout=10000):
        task.start()
    [error] = errors
    assert isinstance(error, DataError) and error is task.error
    assert error.__traceback__ is None  # no frames (and their data) kept alive by a stored error
    assert describe_error(error) == "expected at least 2 class subfolders in /photos, got 1"
    assert describe_error(ValueError("bad\nsecond line")) == "ValueError: bad"


def test_finished_task_is_released(qtbot):
    task = Task(lambda report, stop: "done", "released")
    with qtbot.waitSignal(task.finished, timeout=10000):
        task.start()
    assert task not in running_tasks()
    _release_deleted()
    assert not isValid(task)  # deleteLater'd after finished
    assert task.result == "done"  # its Python attributes stay readable
    ref = weakref.ref(task)
    del task
    gc.collect()
    assert ref() is None  # no connection or closure keeps a finished task alive


def test_a_new_task_supersedes_the_running_one_of_its_name(qtbot):
    owner = QObject()
    group = TaskGroup(owner)
    release = threading.Event()
    results: list[str] = []
    finished: list[str] = []

    def slow(report, stop):
        release.wait(10)
        return "old"

    first = group.start("summary", slow, returned=results.append, finished=lambda: finished.append("old"))
    second = group.start("summary", lambda report, stop: "new", returned=results.append,
                         finished=lambda: finished.append("new"))
    assert first.cancelled and first.stop_flag.requested and first.stop_flag.reason == "superseded"
    assert group.running("summary")
    with qtbot.waitSignal(second.finished, timeout=10000):
        pass
    release.set()
    assert first.join(10)
    qtbot.waitUntil(lambda: not running_tasks(), timeout=10000)
    assert results == ["new"] and finished == ["new"]  # the superseded task stayed silent
    assert not group.running()


def test_tasks_are_cancelled_when_their_owner_goes(qtbot):
    owner = QObject()
    group = TaskGroup(owner)
    heard: list[object] = []

    running = threading.Event()

    def wait_for_stop(report, stop):
        running.set()
        stop.wait(10)
        return stop.reason

    task = group.start("load", wait_for_stop, returned=heard.append, errored=heard.append,
                       finished=lambda: heard.append("finished"))
    assert running.wait(10)
    owner.deleteLater()
    _release_deleted()
    assert task.cancelled and task.join(10)
    qtbot.waitUntil(lambda: not running_tasks(), timeout=10000)
    assert task.result == "its window was closed"  # the work saw the stop request...
    assert heard == []  # ...and none of the gone owner's handlers ran


def test_wait_for_tasks_stops_and_joins_every_task(qtbot):
    working = threading.Semaphore(0)

    def wait_for_stop(report, stop):
        working.release()
        return stop.wait(30)

    tasks = [Task(wait_for_stop, f"waiting-{i}").start() for i in range(3)]
    assert all(working.acquire(timeout=10) for _ in tasks)  # all three are inside their work
    assert all(task.running for task in tasks)
    assert wait_for_tasks(timeout=10)
    assert all(task.join(0) and task.stop_flag.requested for task in tasks)
    qtbot.waitUntil(lambda: not running_tasks(), timeout=10000)
    assert [task.result for task in tasks] == [True, True, True]


def test_a_task_starts_once(qtbot):
    task = Task(lambda report, stop: None, "once")
    with qtbot.waitSignal(task.finished, timeout=10000):
        task.start()
    with pytest.raises(RuntimeError, match="already started"):
        task.start()
