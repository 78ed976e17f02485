"""The Explain dock: how the last run's int8 model computes the selected node, on one chosen sample.

Explaining builds an ONNX Runtime session (0.1 to 1 s), so it runs on its own worker; a newer
selection or sample supersedes the request in flight. A dock behind another tab explains
nothing until it is shown, so clicking through the graph costs nothing extra.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ..core.explain import EXPLAINABLE_WORDS, Explanation, computing_node, explain_node, unexplainable
from .explain_panel import ExplainPanel
from .session import Session
from .tasks import TaskRunner

NO_RUN = "Run quantization (Ctrl+R) first: Explain then shows how the int8 model computes the selected layer."
HINT = f"Select a {EXPLAINABLE_WORDS} layer that the int8 model computes: Explain works through those."


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
        session.run_changed.connect(self._on_run_changed)
        session.selection_changed.connect(lambda _name: self.refresh())
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
        target = computing_node(run.int8.graph, model.graph, name)
        if target is None:
            self.runner.cancel()
            self.panel.show_message(f"{name} is not in the int8 model: pre-processing removed it.\n\n{HINT}")
            return
        kept = run.result.float_node(target)
        node = run.int8.graph.by_name.get(target)  # None for a node pre-processing fused: the core resolves it
        refusal = f"{target} is a float layer of the int8 model: {kept.reason}." if kept else (
            unexplainable(node) if node is not None else "")
        if target != name:
            computed = "int8 computes it" if kept is None else "it is computed"
            self.redirect.setText(f"<i>{escape(name)}</i> is not in the int8 model: {computed} as part of "
                                  f"<b>{escape(target)}</b>{'' if refusal else ', explained below'}.")
            self.redirect.show()
        if refusal:  # said here: the worker could only give a vaguer reason, later
            self.runner.cancel()
            self.panel.show_message(f"{refusal}\n\n{HINT}")
            return
        sample = self.sample.value()
        self.panel.show_message(f"Explaining {target} on sample {sample}…")
        int8 = run.int8
        self.runner.start(lambda _progress: explain_node(int8, target, data, sample, model))

    def _on_explained(self, explanation: Explanation) -> None:
        self.panel.show_explanation(explanation)

    def _on_failed(self, message: str, _details: str) -> None:
        self.panel.show_message(f"{message}\n\n{HINT}")