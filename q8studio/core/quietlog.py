"""Silencing onnxruntime's Python tools for the length of a call, from any thread.

Its quantization and pre-processing tools log advice and tracebacks through the root logger, so
the only switch is the root logger's level, and that level is the whole process's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_asked: list[int] = []  # the levels the blocks running now asked for, in any thread
_before = logging.NOTSET  # the root logger's level when the first of them began


@contextmanager
def quiet_root_logger(level: int) -> Iterator[None]:
    """Raise the root logger's level to at least ``level`` while the block runs.

    Blocks may overlap without nesting (pre-processing in one thread, quantization in another):
    the root logger then keeps the highest level any running block asked for, and gets its own
    level back only when the last block ends, in whichever order they end. Each block restoring
    the level it found, as a plain save and restore does, would leave the first block's raised
    level in place for good once the blocks end in the order they began.
    """
    global _before
    root = logging.getLogger()
    with _lock:
        if not _asked:
            _before = root.level
        _asked.append(level)
        root.setLevel(max([_before, *_asked]))
    try:
        yield
    finally:
        with _lock:
            _asked.remove(level)
            root.setLevel(max([_before, *_asked]))
