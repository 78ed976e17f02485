"""The terminal around a command: standard output that may close early, progress on standard error."""

from __future__ import annotations

import os
import sys
from typing import Callable, TextIO


class ReaderMayLeave:
    """Standard output that outlives its reader: after ``quantize ... | head`` stops reading, the rest of
    the text is dropped, and the files the command was asked to write (a report after the summary) still are."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard_from_now_on()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard_from_now_on()

    def _discard_from_now_on(self) -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def stderr_progress() -> Callable[[str, int, int], None]:
    def show(stage: str, done: int, total: int) -> None:
        if sys.stderr.isatty():
            end = "\n" if done >= total else ""
            print(f"\r{stage}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show
