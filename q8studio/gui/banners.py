"""One-line verdicts above a result table, coloured by whether the result is good news."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

GOOD_BACKGROUND = "#e8f5e9"
"""The background of good news: a banner's, and the best row's in a table."""
BANNERS = {True: f"color: #1b5e20; background: {GOOD_BACKGROUND}; border: 1px solid #a5d6a7;",
           False: "color: #8a1c1c; background: #fdecea; border: 1px solid #f5b7b1;",
           None: "background: #f3f5f8; border: 1px solid #d6dbe1;"}
"""Banner styles: good news (int8 pays), bad news (it does not), or neutral."""


def banner() -> QLabel:
    """A wrapping label whose text can be selected and copied."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def banner_style(good: bool | None) -> str:
    return f"QLabel {{ {BANNERS[good]} border-radius: 4px; padding: 3px 6px; }}"
