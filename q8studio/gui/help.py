"""The Help menu's windows: the int8 questions guide and the About box."""

from __future__ import annotations

from importlib import resources

import pyqtgraph
import PySide6
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QTextBrowser, QVBoxLayout, QWidget

from ..core.environment import cpu_model, software_versions, usable_cpus

GUIDE = "int8_questions.md"
"""The guide, a package resource, so an installed q8studio shows the same text as a checkout."""


def guide_markdown() -> str:
    return resources.files("q8studio.resources").joinpath(GUIDE).read_text(encoding="utf-8")


class GuideWindow(QDialog):
    """The guide in a window of its own, not modal: a user reads an answer while trying it out."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("int8 questions — q8studio")
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setMarkdown(guide_markdown())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(760, 720)


def about_text() -> str:
    """What q8studio and its libraries are, in the versions running: what a bug report needs first."""
    versions = software_versions()  # q8studio, Python and the core's libraries
    versions |= {"PySide6": PySide6.__version__, "pyqtgraph": pyqtgraph.__version__}
    own, python = versions.pop("q8studio"), versions.pop("python")
    rows = "".join(f"<tr><td>{name}</td><td>{version}</td></tr>" for name, version in versions.items())
    return (f"<h3>q8studio {own}</h3><p>See and fix what int8 quantization does to a neural network.</p>"
            f"<table>{rows}<tr><td>Python</td><td>{python}</td></tr></table>"
            f"<p>{cpu_model()}, {usable_cpus()} CPUs</p>")


def about_box(parent: QWidget) -> QMessageBox:
    """The About box, opened without blocking the caller."""
    box = QMessageBox(QMessageBox.Icon.NoIcon, "About q8studio", about_text(), QMessageBox.StandardButton.Close,
                      parent)
    box.open()
    return box
