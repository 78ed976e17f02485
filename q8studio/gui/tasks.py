"""The one bridge from core functions to Qt: run them off the GUI thread, report by signals.

A core function takes a :class:`~q8studio.core.progress.Progress`; a :class:`TaskRunner` runs it on
its own QThread, turns its reports into throttled ``progress`` signals with an ETA, and ends with
exactly one of ``finished``, ``failed`` or ``cancelled``. Starting a new task cancels the previous
one, and the signals of a superseded task are dropped, so a widget only ever hears about the task
it started last.
"""

from __future__ import annotations

import time
import traceback
import weakref
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from ..core.astguard import parsing_alone
from ..core.errors import Cancelled, Q8Error
from ..core.progress import CancelToken, Progress

Task = Callable[[Progress], Any]
PROGRESS_INTERVAL_S = 0.05
"""At most ~20 progress updates a second reach the GUI, however fast the core reports."""

_threads: "weakref.WeakSet[QThread]" = weakref.WeakSet()


def running_threads() -> list[QThread]:
    """Worker threads still running: the test suite fails a test that leaves one behind."""
    return [thread for thread in _threads if thread.isRunning()]


class _Worker(QObject):
    """Lives on the worker thread; runs one task at a time and tags every signal with its id."""

    progressed = Signal(int, str, int, int)
    done = Signal(int, object)
    error = Signal(int, str, str)
    stopped = Signal(int)

    @Slot(int, object, object)
    def run(self, task_id: int, task: Task, token: CancelToken) -> None:
        if token.cancelled:  # superseded while queued: do not even start
            self.stopped.emit(task_id)
            return
        progress = Progress(
            callback=lambda stage, done, total: self.progressed.emit(task_id, stage, done, total),
            cancel_token=token,
            min_interval_s=PROGRESS_INTERVAL_S,
        )
        try:
            result = task(progress)
        except Cancelled:
            self.stopped.emit(task_id)
        except Q8Error as exc:
            self.error.emit(task_id, str(exc), exc.details)
        except Exception as exc:  # a bug in q8studio: say so in one line, keep the traceback in details
            with parsing_alone():  # Python 3.11 parses each line of it for its ^^^ marks
                details = traceback.format_exc()
            self.error.emit(task_id, f"Unexpected error: {type(exc).__name__}: {exc}", details)
        else:
            if token.cancelled:
                self.stopped.emit(task_id)
            else:
                self.done.emit(task_id, result)


class _Eta:
    """Seconds left in the current stage, from its rate so far."""

    def __init__(self) -> None:
        self.stage = ""
        self.started = time.monotonic()

    def estimate(self, stage: str, done: int, total: int) -> float:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.started = stage, now
            return -1.0
        elapsed = now - self.started
        if done <= 0 or total <= 0 or elapsed < 0.2:
            return -1.0
        return elapsed / done * max(total - done, 0)


class TaskRunner(QObject):
    """Runs one task at a time on a private QThread; ``eta_s`` is -1 while unknown."""

    progress = Signal(str, int, int, float)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    _submit = Signal(int, object, object)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName(name)
        self._worker = _Worker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.progressed.connect(self._on_progress)
        self._worker.done.connect(self._on_done)
        self._worker.error.connect(self._on_error)
        self._worker.stopped.connect(self._on_stopped)
        self._current = 0
        self._token: CancelToken | None = None
        self._running = False
        self._eta = _Eta()
        _threads.add(self._thread)
        self._thread.start()
        app = QCoreApplication.instance()
        if app is not None:  # a window destroyed without closing must not leave its thread running
            app.aboutToQuit.connect(self.shutdown)

    @property
    def busy(self) -> bool:
        return self._running

    def start(self, task: Task) -> None:
        """Cancel whatever runs now and queue ``task``; only its signals will be emitted."""
        self.cancel()
        self._current += 1
        self._token = CancelToken()
        self._running = True
        self._eta = _Eta()
        self._submit.emit(self._current, task, self._token)

    def cancel(self) -> None:
        """Ask the running task to stop at its next progress report; its result is never delivered."""
        if self._token is not None:
            self._token.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel, then stop the thread; called when the owning window closes."""
        self.cancel()
        self._running = False
        self._thread.quit()
        self._thread.wait(timeout_ms)

    def _on_progress(self, task_id: int, stage: str, done: int, total: int) -> None:
        if task_id == self._current:
            self.progress.emit(stage, done, total, self._eta.estimate(stage, done, total))

    def _on_done(self, task_id: int, result: object) -> None:
        if task_id != self._current:
            return
        self._running = False
        if self._token is not None and self._token.cancelled:  # cancelled after it ended, before delivery
            self.cancelled.emit()
        else:
            self.finished.emit(result)

    def _on_error(self, task_id: int, message: str, details: str) -> None:
        if task_id == self._current:
            self._running = False
            self.failed.emit(message, details)

    def _on_stopped(self, task_id: int) -> None:
        if task_id == self._current:
            self._running = False
            self.cancelled.emit()
