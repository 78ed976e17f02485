"""The task bridge: results, errors and cancellation arrive as signals on the GUI thread."""

from __future__ import annotations

import threading
import time

import pytest

from q8studio.core.errors import Q8Error
from q8studio.core.progress import Progress
from q8studio.gui.tasks import TaskRunner, running_threads


@pytest.fixture
def runner(qtbot):
    task_runner = TaskRunner("test-runner")
    yield task_runner
    task_runner.shutdown()


def slow_task(steps: int = 200, delay_s: float = 0.01):
    def task(progress: Progress) -> int:
        for step in range(steps):
            time.sleep(delay_s)
            progress.report("Working", step + 1, steps)
        return steps

    return task


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, runner: TaskRunner) -> None:
    threads, reports = [], []
    runner.progress.connect(lambda *args: (reports.append(args), threads.append(threading.current_thread())))
    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        runner.start(slow_task(steps=40))
    assert blocker.args == [40]
    assert reports and all(t is threading.main_thread() for t in threads)
    assert reports[-1][:3] == ("Working", 40, 40)
    assert len(reports) < 40  # throttled
    assert not runner.busy


def test_user_errors_and_bugs_become_failed_with_details(qtbot, runner: TaskRunner) -> None:
    def user_error(_progress: Progress) -> None:
        raise Q8Error("That file is not a model.")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start(user_error)
    assert blocker.args == ["That file is not a model.", ""]

    def bug(_progress: Progress) -> None:
        raise KeyError("oops")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start(bug)
    message, details = blocker.args
    assert message.startswith("Unexpected error: KeyError") and "Traceback" in details


def test_cancel_stops_within_a_second(qtbot, runner: TaskRunner) -> None:
    with qtbot.waitSignal(runner.progress, timeout=5000):
        runner.start(slow_task(steps=10_000))
    started = time.monotonic()
    with qtbot.waitSignal(runner.cancelled, timeout=2000):
        runner.cancel()
    assert time.monotonic() - started < 1.0
    assert not runner.busy


def test_a_new_task_supersedes_the_running_one(qtbot, runner: TaskRunner) -> None:
    finished: list[object] = []
    cancelled: list[bool] = []
    runner.finished.connect(finished.append)
    runner.cancelled.connect(lambda: cancelled.append(True))
    with qtbot.waitSignal(runner.progress, timeout=5000):
        runner.start(slow_task(steps=10_000))
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start(lambda _progress: "second")
    qtbot.wait(50)
    assert finished == ["second"] and cancelled == []  # the superseded task is silent


def test_shutdown_cancels_and_stops_the_thread(qtbot, runner: TaskRunner) -> None:
    with qtbot.waitSignal(runner.progress, timeout=5000):
        runner.start(slow_task(steps=10_000))
    started = time.monotonic()
    runner.shutdown()
    assert running_threads() == [] and time.monotonic() - started < 1.0
