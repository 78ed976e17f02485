"""The command-line face of the core: inspect, quantize, methods, evaluate, explain, profile.

User errors print one line on stderr and exit 2; Ctrl-C exits 130. Heavy modules are
imported inside the commands so ``q8studio --help`` is instant.

:mod:`.parser` builds the command line; :mod:`.quantize`, :mod:`.methods` and :mod:`.commands` run the commands,
:mod:`.inputs` reads what they are given and :mod:`.printing` shows what they found.
"""

from __future__ import annotations

import os
import sys

from ..core.errors import Cancelled, Q8Error, QuantizerFailed
from .inputs import IMAGE_OPTIONS
from .parser import COMMANDS, build_parser, parse_command_line, unknown_command
from .streams import ReaderMayLeave

__all__ = ["COMMANDS", "EXIT_INTERNAL_ERROR", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "IMAGE_OPTIONS", "build_parser",
           "run_command", "unknown_command"]

EXIT_INTERNAL_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_command(argv: list[str]) -> int:
    args = parse_command_line(argv)
    stdout, sys.stdout = sys.stdout, ReaderMayLeave(sys.stdout)
    try:
        args.handler(args)
        sys.stdout.flush()  # here, where a failure to write is a user error, not at exit
    except QuantizerFailed as exc:  # its ways out as the options of quantize and methods, which both take them
        print(f"q8studio: error: {exc.ways_out('--granularity per-tensor', '--exclude {node}')}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Q8Error as exc:
        print(f"q8studio: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, Cancelled):
        print("q8studio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("Q8STUDIO_DEBUG"):
            raise
        print(f"q8studio: internal error: {type(exc).__name__}: {exc} (set Q8STUDIO_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    finally:
        sys.stdout = stdout
    return 0
