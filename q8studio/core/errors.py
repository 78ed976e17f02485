"""Error types that separate the user's mistakes from our bugs."""


class Q8Error(Exception):
    """A problem with the user's input: shown as one sentence, never as a traceback.

    ``details``, such as the library's own message the sentence explains, are for whoever wants to
    dig: the GUI folds them away in its dialog, the command line leaves them out.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class QuantizerFailed(Q8Error):
    """onnxruntime's quantizer failed, on ``node`` when it could be told. The message ends on the
    ways out in the window's words; the command line names its options with :meth:`ways_out`."""

    def __init__(self, failure: str, node: str | None, per_channel: bool) -> None:
        self.failure, self.node, self.per_channel = failure, node, per_channel
        super().__init__(self.ways_out("per-tensor granularity", "keeping {node} in float"))

    def ways_out(self, per_tensor: str, keep_float: str) -> str:
        """The failure and what may avoid it: ``per_tensor`` if the run was per channel, ``keep_float``
        (formatted with the node) if the node is known."""
        ways = [per_tensor] * self.per_channel + [keep_float.format(node=self.node)] * (self.node is not None)
        return f"{self.failure}; try {' or '.join(ways)}." if ways else f"{self.failure}."


class Cancelled(Exception):
    """Raised inside long work when the user pressed Cancel."""


def first_line(exc: BaseException | str) -> str:
    """The first line of an exception's message (its type's name when it has none, "no entry 'k'" for
    a KeyError) or of a text: the libraries underneath raise multi-line messages, and the user gets
    one sentence.

    A sentence broken over lines (a line ending on ':' or ',', or a next line starting in lower
    case, as onnx's checker breaks its message around the node it names) is joined into one.
    """
    if isinstance(exc, KeyError):  # its message is the bare key, "''" or "'x_scale'": say what it is
        return f"no entry {exc}" if exc.args else type(exc).__name__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return "" if isinstance(exc, str) else type(exc).__name__
    text = lines[0]
    for line in lines[1:_MOST_JOINED_LINES]:
        if not (text.endswith((":", ",")) or line[0].islower()):
            break
        text = f"{text} {line}"
    return text


_MOST_JOINED_LINES = 4  # a message that goes on longer than this is a dump, not a sentence
