"""Error dialogs: one clear sentence, the technical details folded away, the app left as it was.

Dialogs open window-modal without blocking (``open()``, not ``exec()``), so a worker's signals
keep flowing and tests can inspect the dialog while it shows.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


class ErrorReporter:
    """Shows errors for one window and remembers the last one (for the status bar and tests)."""

    def __init__(self, parent: QWidget) -> None:
        self._parent = parent
        self.dialog: QMessageBox | None = None
        self.last_message = ""

    def show(self, message: str, details: str = "", title: str = "q8studio") -> None:
        """Replace any error dialog still open by one for ``message``.

        Its first line is the dialog's text and any further lines go to the details, above ``details``:
        an unexpected error's message can be a library's multi-line dump, which must not fill the dialog.
        """
        self.close()
        message, _, rest = message.strip().partition("\n")
        details = "\n\n".join(part for part in (rest.strip(), details) if part)
        self.last_message = message
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self._parent)
        box.setObjectName("errorDialog")
        if details:
            box.setDetailedText(details)
        self.dialog = box
        box.open()

    def close(self) -> None:
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
