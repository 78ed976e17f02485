"""The terminal around a command: standard output that may close early, progress on standard error."""

from __future__ import annotations

import os
import sys
from typing import Callable, TextIO

from ..core.errors import Q8Error


class ReaderMayLeave:
    """Standard output that outlives its reader: after ``quantize ... | head`` stops reading, the rest of
    the text is dropped, and the files the command was asked to write (a report after the summary) still are.
    Any other failure to write (a full disk behind ``> file``) is the user's to hear of, in one line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard_from_now_on()
            return len(text)
        except OSError as exc:
            raise self._unwritable(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard_from_now_on()
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: OSError) -> Q8Error:
        """The error to report; what is still buffered goes nowhere, so exiting does not fail on it again."""
        self._discard_from_now_on()
        return Q8Error(f"Cannot write to standard output: {exc.strerror or exc}.")

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
