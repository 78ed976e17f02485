"""The Qt binding itself must be sound. PySide6 6.12.0 drops a reference to None on every void
call and to True on every Signal.emit(), and aborts the interpreter a few thousand calls later
(none_dealloc / bool_dealloc), far from the cause; pyproject.toml excludes it."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    fired = Signal()


def test_void_qt_calls_keep_none_alive() -> None:
    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        obj.setObjectName("probe")
    assert sys.getrefcount(None) - before > -100, "this PySide6 build leaks references to None"


def test_signal_emit_keeps_true_alive() -> None:
    emitter = _Emitter()
    before = sys.getrefcount(True)
    for _ in range(1000):
        emitter.fired.emit()
    assert sys.getrefcount(True) - before > -100, "this PySide6 build leaks references to True"
