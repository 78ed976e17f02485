"""``q8studio`` and ``python -m q8studio``: command-line tools, or the GUI when no command is given."""

from __future__ import annotations

import sys

from .cli import COMMANDS, EXIT_USER_ERROR, run_command, unknown_command
from .core.environment import version_line


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:  # answered without Qt, which a broken display stack may fail to import
        print(version_line())
        return 0
    if args and args[0] in COMMANDS:
        return run_command(args)
    if args and (problem := unknown_command(args[0])) is not None:
        print(f"q8studio: error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    from .gui.app import run_gui  # Qt is imported only when the window is wanted

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
