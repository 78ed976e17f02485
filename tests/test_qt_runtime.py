"""The Qt binding itself must be sound: PySide6 6.12.0 drops a reference to None on every void
call and aborts the interpreter a few thousand calls later, far from the cause."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject


def test_void_qt_calls_keep_none_alive() -> None:
    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        obj.setObjectName("probe")
    assert sys.getrefcount(None) - before > -100, "this PySide6 build leaks references to None"
