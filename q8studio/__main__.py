"""``q8studio`` and ``python -m q8studio``: command-line tools, or the GUI when no command is given."""

from __future__ import annotations

import sys

from .cli import COMMANDS, run_command


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return run_command(args)
    from .gui.app import run_gui  # Qt is imported only when the window is wanted

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
