"""Files the user names: atomic writes (a reader never sees a half-written file, and a failure leaves
nothing behind), and JSON settings read with a one-line reason when they cannot be."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .errors import Q8Error, first_line


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it is
    removed, and so are the folders made for it (a failed run leaves nothing behind).

    A symbolic link is followed: the file it points to is replaced and the link stays. A device or
    FIFO is refused (replacing /dev/null with a file would break the system). Failing to write is
    a :class:`Q8Error` naming the file.
    """
    target = Path(os.path.realpath(target)) if Path(target).is_symlink() else Path(target)
    _require_writable_kind(target, str(target))
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    # Not mkstemp: that creates the file owner-only; the writer creates it with the user's umask.
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _remove_empty(made)
        if isinstance(exc, OSError):
            raise Q8Error(f"Cannot write {target}: {exc.strerror or exc}.") from None
        raise


def _require_writable_kind(path: Path, name: str) -> None:
    """A path to write must be a regular file or not exist yet (links already followed). The message
    starts with a word of its own: ``name`` may be a label in lower case ("the int8 model /tmp")."""
    if path.is_dir():
        problem = "it is a folder"
    elif path.exists() and not path.is_file():
        problem = "it is not a regular file (a device or a pipe)"
    else:
        return
    raise Q8Error(f"Cannot write {name}: {problem}; give the path of a file.")


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty: something else may have written there."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def atomic_write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (so the source model is never overwritten)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or (Path(b).exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(outputs: Mapping[str, Path], inputs: Mapping[str, Path]) -> None:
    """Refuse, before any work, an output that would overwrite one of the ``inputs`` (the source
    model, its external data, the data) or another output, or that cannot be a file at all.

    Keys name what they are in the messages: outputs by their option (``--report``) or what they hold
    (``the report``), inputs by what they hold (``the calibration data``). No message starts with a key,
    so keys stay in lower case. Checked up front, a mistyped path neither destroys a file nor throws
    away a finished run.
    """
    checked: list[tuple[str, Path]] = []
    for option, path in outputs.items():
        if str(path) == "-":  # most tools read '-' as standard output; a file named '-' would surprise
            raise Q8Error(f"Cannot write {option} -: q8studio writes files, not standard output; give a file name.")
        for what, source in inputs.items():
            if same_file(source, path):
                raise Q8Error(f"Refusing to write {option} over {what} ({path}); choose another path.")
        for earlier, other in checked:
            if same_file(other, path):
                raise Q8Error(f"Both {earlier} and {option} name the same file {path}; give each its own.")
        _require_writable_kind(path, f"{option} {path}")
        folder = _nearest_existing(path.parent)
        if not folder.is_dir():
            raise Q8Error(f"Cannot write {option} {path}: {folder} is a file, not a folder.")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise Q8Error(f"Cannot write {option} {path}: no permission to write in {folder}.")
        checked.append((option, path))


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its closest existing ancestor: where a write would create what is missing."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def read_json(path: Path, what: str) -> object:
    """The JSON content of ``path``, which should be ``what`` ("a recipe or report"); a file that is missing,
    a folder, unreadable, or no JSON at all (a model picked by mistake) is a Q8Error saying so in words, the
    parser's own text in its details."""
    path = Path(path)
    if not path.exists():
        raise Q8Error(f"No such file: {path}")
    if path.is_dir():
        raise Q8Error(f"{path} is a folder, not {what}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise Q8Error(f"Cannot read {path}: {exc.strerror or first_line(exc)}.") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are no UTF-8 text
        raise Q8Error(f"{path.name} is not {what}: it is not JSON text.", details=str(exc)) from None
