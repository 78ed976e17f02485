"""Error types that separate the user's mistakes from our bugs."""


class Q8Error(Exception):
    """A problem with the user's input: shown as one sentence, never as a traceback."""


class Cancelled(Exception):
    """Raised inside long work when the user pressed Cancel."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): the libraries
    underneath raise multi-line messages, and the user gets one sentence."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
