"""A worker job's progress inside the panel it fills: a thin bar and the stage, hidden while idle."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

from . import formatting as fmt


class JobProgress(QWidget):
    """Busy (no counts yet) from :meth:`set_running` until the job's first report, then its counts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(8)
        self.stage = QLabel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.stage)
        self.running = False
        self.setVisible(False)

    def set_running(self, running: bool) -> None:
        if running and not self.running:
            self.bar.setRange(0, 0)
            self.stage.setText("Starting…")
        self.running = running
        self.setVisible(running)

    def show_progress(self, stage: str, done: int, total: int, eta_s: float) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, total))
        self.stage.setText(fmt.progress_text(stage, done, total, eta_s))
