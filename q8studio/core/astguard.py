"""Let one thread at a time build a Python syntax tree, without a garbage collection inside.

Two things q8studio does on worker threads go through :func:`ast.parse`: numpy reads every ``.npy``
header (each array of an ``.npz``) with :func:`ast.literal_eval`, and on Python 3.11 formatting a
traceback parses each line for its ``^^^`` marks. CPython before 3.11.8 counts the syntax tree
builder's recursion depth in state all threads share (CPython gh-106905). The builder runs no
Python code, so it keeps the GIL, unless one of its allocations starts a garbage collection whose
callbacks and finalizers are Python code: the thread may hand the GIL over there, and if another
thread builds a tree meanwhile, the first one raises ``SystemError: AST constructor recursion depth
mismatch`` for a header it read correctly. Profiling again in the window failed that way once.

Inside :func:`parsing_alone` no other q8studio thread parses and no collection starts, so no parse
can be interrupted by another.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_PARSING = threading.Lock()


@contextmanager
def parsing_alone() -> Iterator[None]:
    """Hold every other q8studio parse off, and garbage collection with it, for the ``with`` body.

    Keep the body short (a header, a traceback): collection resumes, if it was on, when it ends.
    """
    with _PARSING:
        was_collecting = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was_collecting:
                gc.enable()
