"""What a user does (opens the demo, clicks, drags), shared by the GUI tests."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QTreeWidget

from q8studio.gui.main_window import MainWindow

RUN_TIMEOUT_MS = 60_000


QUICK_SAMPLES = 120
"""Calibration samples the GUI tests run the demo on (it has 500): keeps the suite fast."""


def open_demo_window(qtbot, tmp_path: Path, samples: int | None = None) -> MainWindow:
    """A shown window, with settings of its own in ``tmp_path``, that has opened the bundled demo
    (to calibrate on ``samples`` of its samples, when given)."""
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_demo()
    if samples is not None:
        window.quantize_panel.samples.setValue(samples)
    return window


def click_graph_node(qtbot, window: MainWindow, name: str) -> None:
    """A real mouse click on the node's box in the graph."""
    graph = window.graph
    qtbot.waitUntil(lambda: graph.item_for_node(name) is not None, timeout=5000)
    item = graph.item_for_node(name)
    graph.canvas.centerOn(item)
    pos = graph.canvas.mapFromScene(item.sceneBoundingRect().center())
    qtbot.mouseClick(graph.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def drag_dock_separator(qtbot, window: MainWindow, dock: QDockWidget, dx: int) -> None:
    """Press on the separator left of ``dock``, move ``dx`` pixels and release, as a user resizes a dock.
    The window moves a separator on a timer, so the move is given time before the release."""
    x = (window.centralWidget().geometry().right() + dock.geometry().left()) // 2
    y = dock.geometry().center().y()
    assert window.childAt(QPoint(x, y)) is None  # on the separator itself

    def send(kind: QEvent.Type, at: int, buttons: Qt.MouseButton) -> None:
        pos = QPoint(at, y)
        QApplication.sendEvent(window, QMouseEvent(kind, QPointF(pos), QPointF(window.mapToGlobal(pos)),
                                                   Qt.MouseButton.LeftButton, buttons, Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, x, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseMove, x + dx, Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    send(QEvent.Type.MouseButtonRelease, x + dx, Qt.MouseButton.NoButton)


def run_to_end(qtbot, window: MainWindow):
    """Quantize and compare, and wait for the profile too: the run's :class:`~q8studio.core.workflow.StudioRun`."""
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert window.session.profile is not None, window.results.speed.verdict.text()
    return window.session.run


def tree_rows(tree: QTreeWidget) -> dict[str, dict[str, str]]:
    """A property tree as {section: {name: value}}."""
    sections = {}
    for i in range(tree.topLevelItemCount()):
        section = tree.topLevelItem(i)
        sections[section.text(0)] = {section.child(j).text(0): section.child(j).text(1)
                                     for j in range(section.childCount())}
    return sections
