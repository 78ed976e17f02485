"""The window's scratch folder: where each run writes its int8 model, kept only while something can use it.

An int8 model is hundreds of MB for a large model, so a run's file goes as soon as nothing can show or
export it (the run was cancelled, failed or replaced), not when the window closes. Everything else a
run feeds (the probe, Explain, the profiles, reused statistics) works on the model in memory; only an
export reads the file, and it holds the file until its copy is written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ScratchFolder:
    """Hands out int8 paths, each in a folder of its own, and removes a folder once discarded and unheld."""

    def __init__(self) -> None:
        self._root = tempfile.TemporaryDirectory(prefix="q8studio-")
        self._count = 0
        self._issued: set[Path] = set()
        self._discarded: set[Path] = set()
        self._holds: Counter[Path] = Counter()

    def new_file(self, stem: str) -> Path:
        """A new path: runs never overwrite each other, and removing its folder also takes whatever
        the writer left beside the file."""
        self._count += 1
        path = Path(self._root.name) / f"run{self._count}" / f"{stem}.int8.onnx"
        self._issued.add(path)
        return path

    def discard(self, *paths: Path | None) -> None:
        """Nothing will use ``paths`` any more: remove them now, or when their last hold ends. Paths this
        folder did not hand out are never touched."""
        for path in paths:
            if path in self._issued:
                self._discarded.add(path)
                self._remove_if_free(path)

    @contextmanager
    def hold(self, path: Path) -> Iterator[None]:
        """Keep ``path`` while the block runs, even if it is discarded meanwhile (an export's save dialog
        runs the event loop, so a model being opened can replace the run it exports)."""
        self._holds[path] += 1
        try:
            yield
        finally:
            self._holds[path] -= 1
            self._remove_if_free(path)

    def cleanup(self) -> None:
        """Remove every file, held or not: the window is closing."""
        self._root.cleanup()

    def _remove_if_free(self, path: Path) -> None:
        if path in self._discarded and self._holds[path] <= 0:
            self._discarded.remove(path)
            self._issued.remove(path)
            del self._holds[path]
            shutil.rmtree(path.parent, ignore_errors=True)
