"""Core work the window must wait for, off the GUI thread: checking data just chosen, reading it for a run.

Listing and dating half a million images takes seconds; done on the GUI thread it froze the window. A
:class:`Waiter` runs the work on a worker thread while the caller waits in a local event loop, so the window
keeps painting. User input waits meanwhile; if the work lasts past :data:`SHOW_AFTER_MS`, a window-modal
dialog says what is being done, counts the files and offers Cancel.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QApplication, QProgressDialog, QWidget

from ..core.errors import Cancelled, Q8Error
from ..core.progress import NO_PROGRESS
from .tasks import Task, TaskRunner

SHOW_AFTER_MS = 400
"""Work that ends sooner (a .npz, the demo's folder) shows no dialog, only a busy cursor."""


class Waiter:
    """Runs one task at a time for a caller that needs its result before going on."""

    def __init__(self, parent: QWidget, name: str) -> None:
        self._parent = parent
        self._runner = TaskRunner(name, parent)
        self._runner.finished.connect(lambda result: self._end(("result", result)))
        self._runner.failed.connect(lambda message, details: self._end(("error", Q8Error(message, details))))
        self._runner.cancelled.connect(lambda: self._end(("cancelled", None)))
        self._runner.progress.connect(self._show_progress)
        self._loop: QEventLoop | None = None
        self._outcome: tuple[str, Any] | None = None
        self._dialog: QProgressDialog | None = None
        self._title = ""

    def run(self, title: str, task: Task) -> Any:
        """``task``'s result once it ends; raises its :class:`Q8Error`, or :class:`Cancelled` when the user
        cancelled. ``title`` says what is being done (“Reading images in calib”)."""
        if self._loop is not None:  # asked again by a signal handled while waiting: no second wait inside the first
            return task(NO_PROGRESS)
        self._outcome, self._title = None, title
        self._loop = loop = QEventLoop()
        QApplication.setOverrideCursor(QCursor(Qt.CursorShape.WaitCursor))
        try:
            self._runner.start(task)
            QTimer.singleShot(SHOW_AFTER_MS, loop, loop.quit)
            loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
            if self._outcome is None:
                self._dialog = self._new_dialog()
                self._dialog.show()
                loop.exec()
        finally:
            QApplication.restoreOverrideCursor()
            self._loop = None
            if self._dialog is not None:
                self._dialog.hide()
                self._dialog.deleteLater()
                self._dialog = None
        kind, value = self._outcome or ("cancelled", None)
        if kind == "error":
            raise value
        if kind == "cancelled":
            raise Cancelled()
        return value

    def shutdown(self) -> None:
        """Stop the worker thread; called when the window closes."""
        self._runner.shutdown()

    def _new_dialog(self) -> QProgressDialog:
        dialog = QProgressDialog(self._title, "Cancel", 0, 0, self._parent)
        dialog.setWindowTitle("q8studio")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self._cancel)
        return dialog

    def _cancel(self) -> None:
        """Cancel pressed: stop waiting now; the work stops at its next report and its result is dropped."""
        self._runner.cancel()
        self._end(("cancelled", None))

    def _end(self, outcome: tuple[str, Any]) -> None:
        if self._loop is not None and self._outcome is None:
            self._outcome = outcome
            self._loop.quit()

    def _show_progress(self, stage: str, done: int, total: int, _eta_s: float) -> None:
        if self._dialog is None:
            return
        counted = f"{done:,} of {total:,}" if total > 0 else f"{done:,} so far"
        self._dialog.setLabelText(f"{self._title}\n{stage}: {counted}")
        self._dialog.setRange(0, max(total, 0))
        self._dialog.setValue(min(done, total) if total > 0 else 0)
