"""The terminal around a command: standard output that may close early, progress on standard error."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from ..core.errors import Q8Error
from ..core.progress import Progress


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


def terminal_progress() -> Progress:
    """Progress on a terminal's stderr, one line rewritten in place at most twice a second (nothing when
    stderr is a file or a pipe). A total of 0 is unknown (the files of a folder being listed): the count so
    far is shown."""
    shown = 0  # characters of the line now on screen, so that a shorter one covers it whole

    def show(stage: str, done: int, total: int) -> None:
        nonlocal shown
        if sys.stderr.isatty():
            line = f"{stage}: {done}/{total}" if total > 0 else f"{stage}: {done:,} so far"
            ends = 0 < total <= done
            print(f"\r{line.ljust(shown)}", end="\n" if ends else "", file=sys.stderr, flush=True)
            shown = 0 if ends else len(line)

    return Progress(callback=show, min_interval_s=0.5)
