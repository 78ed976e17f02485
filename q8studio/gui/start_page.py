"""What the window shows before a model is open: Open, Open demo, and the recent files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget


class StartPage(QWidget):
    open_requested = Signal()
    demo_requested = Signal()
    guide_requested = Signal()
    recent_requested = Signal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("<h1>q8studio</h1>")
        blurb = QLabel(
            "See what int8 quantization does to a neural network: open an ONNX model, calibrate it, "
            "and compare float32 with int8 layer by layer.<br>Drop a <code>.onnx</code> file anywhere on "
            "this window, or:"
        )
        blurb.setWordWrap(True)
        open_button = QPushButton("Open model…")
        open_button.setToolTip("Open an ONNX model (Ctrl+O)")
        demo_button = QPushButton("Open demo")
        demo_button.setToolTip("A small digits CNN with its calibration and test data already chosen")
        for button in (open_button, demo_button):
            button.setMinimumHeight(36)
            button.setMinimumWidth(160)
        open_button.clicked.connect(self.open_requested)
        demo_button.clicked.connect(self.demo_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(open_button)
        buttons.addWidget(demo_button)
        buttons.addStretch(1)
        # a link, not a third button: the page's minimum width is the graph area's, and a wider one
        # took room from the docks beside it on a laptop screen
        self.guide_link = QLabel('New to int8? <a href="guide">How int8 inference works</a>, in six questions (F1).')
        self.guide_link.setWordWrap(True)
        self.guide_link.linkActivated.connect(lambda _link: self.guide_requested.emit())
        self.recent_label = QLabel("<b>Recent models</b>")
        self.recent = QListWidget()
        self.recent.setMaximumHeight(220)
        self.recent.setToolTip("Click to open")
        self.recent.itemClicked.connect(
            lambda item: self.recent_requested.emit(Path(item.data(Qt.ItemDataRole.UserRole)))
        )

        column = QVBoxLayout()
        column.addWidget(title)
        column.addWidget(blurb)
        column.addSpacing(12)
        column.addLayout(buttons)
        column.addSpacing(8)
        column.addWidget(self.guide_link)
        column.addSpacing(24)
        column.addWidget(self.recent_label)
        column.addWidget(self.recent)
        column.addStretch(1)
        holder = QWidget()
        holder.setLayout(column)
        holder.setMaximumWidth(640)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(holder, 3)
        outer.addStretch(1)
        outer.setContentsMargins(24, 48, 24, 24)

    def set_recent(self, paths: list[Path]) -> None:
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(f"{path.name}    —    {path.parent}")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.recent.addItem(item)
        self.recent_label.setVisible(bool(paths))
        self.recent.setVisible(bool(paths))
