"""The Explain dock: how the last run's int8 model computes the selected node, on one chosen sample.

Explaining builds an ONNX Runtime session (0.1 to 1 s), so it runs on its own worker; a newer
selection or sample supersedes the request in flight. A dock behind another tab explains
nothing until it is shown, so clicking through the graph costs nothing extra.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ..core.explain import NodeExplanation, explain_node
from .explain_panel import ExplainPanel
from .session import Session
from .tasks import TaskRunner

NO_RUN = "Run quantization (Ctrl+R) first: Explain then shows how the int8 model computes the selected layer."
HINT = "Explain works on the Conv, Gemm and MatMul layers that the int8 model computes; select one of those."


class ExplainDock(QDockWidget):
    """The :class:`ExplainPanel` of the session's selected node, with the sample it is worked on."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Explain", parent)
        self.setObjectName("explainDock")
        self.session = session
        self.panel = ExplainPanel()
        self.sample = QSpinBox()
        self.sample.setKeyboardTracking(False)  # typing "12" explains sample 12, not 1 then 12
        self.sample.setToolTip("Which sample of the data the layer is worked through on")
        self.source = QLabel()
        self.redirect = QLabel()
        self.redirect.setWordWrap(True)
        self.redirect.setTextFormat(Qt.TextFormat.RichText)
        self.redirect.setContentsMargins(4, 0, 4, 0)
        header = QHBoxLayout()
        header.setContentsMargins(4, 4, 4, 0)
        header.addWidget(QLabel("Sample"))
        header.addWidget(self.sample)
        header.addWidget(self.source, 1)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.redirect)
        layout.addWidget(self.panel, 1)
        self.setWidget(body)
        self.runner = TaskRunner("q8studio-explain", self)
        self.runner.finished.connect(self._on_explained)
        self.runner.failed.connect(self._on_failed)
        self._stale = True
        self._shown = False  # on screen: Qt calls a dock behind another tab "visible" all the same
        self._target: str | None = None  # the node last sent to the worker
        session.run_changed.connect(self._on_run_changed)
        session.selection_changed.connect(lambda _name: self.refresh())
        session.profile_changed.connect(self._on_profile_changed)
        self.sample.valueChanged.connect(lambda _value: self.refresh())
        self.visibilityChanged.connect(self._on_visibility)
        self._on_run_changed(session.run)

    def _on_run_changed(self, _run: object) -> None:
        data = self.session.sample_data() if self.session.run is not None else None
        blocker = self.sample.blockSignals(True)
        self.sample.setRange(0, max((data.count if data is not None else 1) - 1, 0))
        self.sample.blockSignals(blocker)
        self.sample.setEnabled(data is not None)
        self.source.setText("" if data is None else f"of {data.count:,} in {data.name}")
        self.source.setToolTip("" if data is None else data.source)
        self.refresh()

    def _on_profile_changed(self, _report: object) -> None:
        """A profile tells which layer computes a node quantization folded away: explain that one."""
        name = self.session.selected
        if name and self._computed_by(name) != self._target:
            self.refresh()

    def _on_visibility(self, visible: bool) -> None:
        self._shown = visible
        if visible and self._stale:
            self.refresh()

    def refresh(self) -> None:
        """Explain the selected node of the current run on the chosen sample, if the dock is seen."""
        if not self._shown:
            self.runner.cancel()
            self._stale = True
            return
        self._stale = False
        self._target = None
        session = self.session
        run, name, data, model = session.run, session.selected, session.sample_data(), session.model
        self.redirect.hide()
        if run is None or data is None:
            self.runner.cancel()
            self.panel.show_message(session.before_run(NO_RUN))
            return
        if not name:
            self.runner.cancel()
            self.panel.show_explanation(None)
            return
        target = self._computed_by(name)
        kept = run.result.float_node(target)
        if target != name:
            computed = "int8 computes it" if kept is None else "it is computed"
            self.redirect.setText(f"<i>{escape(name)}</i> is not in the int8 model: {computed} as part of "
                                  f"<b>{escape(target)}</b>"
                                  f"{', explained below' if kept is None else ''}.")
            self.redirect.show()
        if kept is not None:  # the run says why; the worker could only say that no DequantizeLinear feeds it
            self.runner.cancel()
            self.panel.show_message(f"{target} is a float layer of the int8 model: {kept.reason}.\n\n{HINT}")
            return
        sample, self._target = self.sample.value(), target
        self.panel.show_message(f"Explaining {target} on sample {sample}…")
        int8 = run.int8
        self.runner.start(lambda _progress: explain_node(int8, target, data, sample, model))

    def _computed_by(self, name: str) -> str:
        """The node to explain for ``name``: itself, or for a node quantization folded away (a
        BatchNormalization, a ReLU) the layer the profile found computing it."""
        run, report = self.session.run, self.session.profile
        if run is None or report is None or any(node.name == name for node in run.int8.graph.nodes):
            return name
        return next((layer.node for layer in report.layers if name in layer.members), name)

    def _on_explained(self, explanation: NodeExplanation) -> None:
        self.panel.show_explanation(explanation)

    def _on_failed(self, message: str, _details: str) -> None:
        self.panel.show_message(f"{message}\n\n{HINT}")