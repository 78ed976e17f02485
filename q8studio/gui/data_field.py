"""The Data group's path fields: a data file or image folder, chosen with File… or Folder…."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QToolButton, QWidget

DATA_FILTER = "Data (*.npz *.npy);;All files (*)"
TEXT_MARGIN = 8
"""Pixels of a line edit's width that its frame and inner margins keep from the text."""
FOLDER_MIN = "/home…"
"""The least of a folder worth showing before a file's name: with less room the name is cut too."""


class PathEdit(QLineEdit):
    """A read-only path elided to the field's width in its folder: both where it starts and the
    file's name show, where a line edit scrolled to its end hid which folder the data came from."""

    def __init__(self, placeholder: str) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setPlaceholderText(placeholder)
        self._path: Path | None = None

    def path(self) -> Path | None:
        return self._path

    def set_path(self, path: Path | None) -> None:
        self._path = path
        self.setToolTip(str(path) if path else "")
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = self.contentsRect().width() - TEXT_MARGIN
        self.setText(elided_path(self._path, self.fontMetrics(), room) if self._path else "")
        self.setCursorPosition(0)


def elided_path(path: Path, metrics: QFontMetrics, room: int) -> str:
    """``path`` in ``room`` pixels: whole if it fits, else its folder cut in the middle before the
    file's whole name, or, in very little room, all of it cut in the middle."""
    text = str(path)
    if metrics.horizontalAdvance(text) <= room:
        return text
    folder = str(path.parent)
    name = text[len(folder):]  # the separator and the name
    folder_room = room - metrics.horizontalAdvance(name)
    if folder_room >= metrics.horizontalAdvance(FOLDER_MIN):
        return metrics.elidedText(folder, Qt.TextElideMode.ElideMiddle, folder_room) + name
    return metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, room)


class DataField(QWidget):
    """A path with File… and Folder… buttons (and a clear button when the field is optional)."""

    chosen = Signal(object)  # Path | None

    def __init__(self, placeholder: str, optional: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = PathEdit(placeholder)
        file_button = QToolButton(text="File…")
        file_button.setToolTip(".npz with one array per model input (and optional 'labels'), or .npy")
        folder_button = QToolButton(text="Folder…")
        folder_button.setToolTip("A folder of PNG/JPEG images; sub-folders named by class id give labels")
        file_button.clicked.connect(self._pick_file)
        folder_button.clicked.connect(self._pick_folder)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(file_button)
        layout.addWidget(folder_button)
        if optional:
            clear = QToolButton(text="×")
            clear.setToolTip("Use the calibration data")
            clear.clicked.connect(lambda: self.chosen.emit(None))
            layout.addWidget(clear)

    def path(self) -> Path | None:
        return self.edit.path()

    def set_path(self, path: Path | None) -> None:
        self.edit.set_path(path)

    def _start(self) -> str:
        """Where the file dialogs open: the chosen data, if any."""
        path = self.edit.path()
        return str(path) if path else ""

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose data", self._start(), DATA_FILTER)
        if path:
            self.chosen.emit(Path(path))

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose an image folder", self._start())
        if path:
            self.chosen.emit(Path(path))
