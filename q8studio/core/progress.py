"""Progress reporting and cooperative cancellation for long-running core work.

Every core function that may take long accepts a ``Progress``; the GUI bridges it to Qt
signals, the CLI to stderr, and tests to a list. Cancellation is checked at each report,
so work stops at the next sample rather than at the end.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .errors import Cancelled

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``callback(stage, done, total)``."""


class CancelToken:
    """A thread-safe flag the GUI sets and the worker polls."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class Progress:
    """Reports ``(stage, done, total)`` and raises :class:`Cancelled` once cancel is requested."""

    callback: ProgressCallback | None = None
    cancel_token: CancelToken | None = None
    min_interval_s: float = 0.05
    _last_emit: float = field(default=0.0, init=False, repr=False)
    _last_stage: str | None = field(default=None, init=False, repr=False)

    def check(self) -> None:
        if self.cancel_token is not None and self.cancel_token.cancelled:
            raise Cancelled()

    def report(self, stage: str, done: int, total: int) -> None:
        """Check for cancel, then forward to the callback, throttled within a stage but never a stage's
        first report nor its last step: a short stage that follows another's last step (choosing ranges
        after calibrating) would be dropped, and the previous stage would stay on screen through it."""
        self.check()
        if self.callback is None:
            return
        now = time.monotonic()
        if stage != self._last_stage or done >= total or now - self._last_emit >= self.min_interval_s:
            self._last_emit, self._last_stage = now, stage
            self.callback(stage, done, total)


NO_PROGRESS = Progress()
