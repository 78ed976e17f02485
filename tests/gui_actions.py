"""What a user does with the mouse, shared by the GUI tests."""

from __future__ import annotations

from PySide6.QtCore import Qt

from q8studio.gui.main_window import MainWindow


def click_graph_node(qtbot, window: MainWindow, name: str) -> None:
    """A real mouse click on the node's box in the graph."""
    graph = window.graph
    qtbot.waitUntil(lambda: graph.item_for_node(name) is not None, timeout=5000)
    item = graph.item_for_node(name)
    graph.canvas.centerOn(item)
    pos = graph.canvas.mapFromScene(item.sceneBoundingRect().center())
    qtbot.mouseClick(graph.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
