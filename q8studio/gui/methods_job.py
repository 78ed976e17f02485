"""Run ▸ Compare clipping methods: the core's method comparison on its own worker, shown in the Methods tab.

It takes the quantize panel's settings and data as a run does, and the session's run, whose statistics
spare it the calibration when they fit. A new run, or a new model, supersedes it: its figures would
compete with the run's timings, and describe a model no longer shown.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal

from ..core.methods import MethodComparison, compare_methods
from ..core.workflow import comparison_data
from . import formatting as fmt
from .errors import ErrorReporter
from .methods_panel import INVITATION, MethodsPanel
from .quantize_panel import QuantizePanel
from .session import Session
from .tasks import TaskRunner


class MethodsJob(QObject):
    """Starts, cancels and delivers the comparison; ``busy_changed`` when it starts or ends."""

    busy_changed = Signal()
    compared = Signal(object)  # MethodComparison

    def __init__(self, session: Session, panel: MethodsPanel, quantize_panel: QuantizePanel, errors: ErrorReporter,
                 status: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.panel = panel
        self.quantize_panel = quantize_panel
        self.errors = errors
        self.status = status
        self.runner = TaskRunner("q8studio-methods", self)
        self._compared_on = ""
        self._superseded = False  # cancelled for a new run or model: no word of it in the status bar
        self.runner.progress.connect(panel.job_progress.show_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        panel.cancel_requested.connect(self.cancel)
        panel.method_chosen.connect(self.use_method)
        session.model_changed.connect(self._on_model_changed)

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def start(self) -> None:
        """Compare every method with the quantize panel's settings, on its evaluation data (else calibration)."""
        model = self.session.model
        if model is None or self.busy:
            return
        inputs = self.quantize_panel.run_inputs()
        if inputs is None:
            return
        recipe, calibration, evaluation = inputs
        data = comparison_data(calibration, evaluation, recipe)  # what a run would compare on
        self._compared_on = f"{fmt.count(data.count, 'sample')} of {data.name}"
        run = self.session.run
        previous = run.result if run is not None else None
        self._superseded = False
        self.runner.start(lambda progress: compare_methods(model, calibration, data, recipe, previous=previous,
                                                           progress=progress))
        self.status("Comparing the clipping methods…")
        self.busy_changed.emit()

    def cancel(self, *, superseded: bool = False) -> None:
        """Stop the comparison; ``superseded``: for a new run or model, which says what happens instead."""
        if self.busy:
            self._superseded = superseded
            self.runner.cancel()
            self.panel.job_progress.stage.setText("Cancelling…")

    def use_method(self, method: str) -> None:
        """Make ``method`` the quantize panel's clipping method; the next run quantizes with it."""
        self.quantize_panel.method.setCurrentText(method)
        self.status(f"Clipping method: {method}. Run (Ctrl+R) to quantize with it.")

    def _on_model_changed(self, _model: object) -> None:
        self.cancel(superseded=True)
        self.panel.show_comparison(None, INVITATION)

    def _on_finished(self, comparison: MethodComparison) -> None:
        self.session.methods = comparison  # the window's report takes it along
        self.panel.show_comparison(comparison, compared_on=self._compared_on)
        self.status(f"Compared {fmt.count(len(comparison.scores), 'clipping method')}: best here "
                    f"{comparison.best.method}, see Results ▸ Methods.")
        self.busy_changed.emit()
        self.compared.emit(comparison)

    def _on_failed(self, message: str, details: str) -> None:
        self.busy_changed.emit()
        self.panel.show_comparison(None, f"Comparing the clipping methods failed: {message}", good=False)
        self.errors.show(message, details)

    def _on_cancelled(self) -> None:
        self.busy_changed.emit()
        if not self._superseded:
            self.status("Comparing the clipping methods: cancelled.")
