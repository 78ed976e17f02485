"""Error types that separate the user's mistakes from our bugs."""


class Q8Error(Exception):
    """A problem with the user's input: shown as one sentence, never as a traceback."""


class Cancelled(Exception):
    """Raised inside long work when the user pressed Cancel."""
