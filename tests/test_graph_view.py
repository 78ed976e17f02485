"""The graph view: one item per node, clicks vs programmatic selection, search, overlay, groups."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QColor, QHelpEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolTip

from builders import small_cnn
from q8studio.core.model import LoadedModel, model_from_proto
from q8studio.gui.graph_items import BADGE_FILL, ENTER_BADGE, KIND_COLOURS, LEAVE_BADGE, BoxItem
from q8studio.gui.graph_view import ASYNC_LAYOUT_NODES, GraphView
from test_layout import synthetic_graph


@pytest.fixture
def view(qtbot) -> GraphView:
    widget = GraphView()
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def cnn_view(view: GraphView) -> GraphView:
    view.set_model(model_from_proto(small_cnn(), Path("cnn.onnx")))
    return view


def _synthetic_model(n_nodes: int) -> LoadedModel:
    return LoadedModel(path=Path("synthetic.onnx"), proto=onnx.ModelProto(), graph=synthetic_graph(n_nodes))


def _screen_pos(view: GraphView, item: BoxItem) -> QPoint:
    view.canvas.centerOn(item)
    return view.canvas.mapFromScene(item.sceneBoundingRect().center())


def _pixel(view: GraphView, item: BoxItem, dx: float = 6) -> QColor:
    """Colour drawn just inside the left edge of a box, away from its text."""
    image = view.canvas.viewport().grab().toImage()
    point = view.canvas.mapFromScene(QPointF(item.rect().left() + dx, item.rect().center().y()))
    return image.pixelColor(point)


def test_one_item_per_node_coloured_by_kind(cnn_view: GraphView) -> None:
    items = cnn_view.box_items()
    assert len(items) == 12 and not any(item.is_group for item in items.values())
    conv = cnn_view.item_for_node("/stem/Conv")
    assert conv.fill == QColor(KIND_COLOURS["compute"])
    assert cnn_view.item_for_node("/stem/Relu").fill == QColor(KIND_COLOURS["activation"])
    assert _pixel(cnn_view, conv).name() == QColor(KIND_COLOURS["compute"]).name()
    assert cnn_view.kind_legend.isVisible() and "normalisation" in cnn_view.kind_legend.kinds


def test_click_selects_and_emits(cnn_view: GraphView, qtbot) -> None:
    item = cnn_view.item_for_node("/block/Add")
    with qtbot.waitSignal(cnn_view.node_selected) as blocker:
        QTest.mouseClick(cnn_view.canvas.viewport(), Qt.MouseButton.LeftButton, pos=_screen_pos(cnn_view, item))
    assert blocker.args == ["/block/Add"]
    assert cnn_view.selected_node() == "/block/Add" and item.selected


def test_select_node_centres_without_emitting(cnn_view: GraphView, qtbot) -> None:
    cnn_view.canvas.scale(2.5, 2.5)  # zoomed in, so that centring has room to scroll
    cnn_view.canvas.centerOn(cnn_view.item_for_node("/stem/Conv"))
    with qtbot.assertNotEmitted(cnn_view.node_selected):
        cnn_view.select_node("/head/fc/Gemm")
    item = cnn_view.item_for_node("/head/fc/Gemm")
    assert cnn_view.selected_node() == "/head/fc/Gemm" and item.selected
    centre = cnn_view.canvas.mapToScene(cnn_view.canvas.viewport().rect().center())
    assert item.sceneBoundingRect().adjusted(-20, -20, 20, 20).contains(centre)
    assert _pixel(cnn_view, item, dx=1.5).name() != QColor(KIND_COLOURS["compute"]).name()  # the selection ring
    cnn_view.select_node("no such node")
    assert cnn_view.selected_node() == "/head/fc/Gemm"


def test_search_by_op_type_cycles_through_matches(cnn_view: GraphView, qtbot) -> None:
    QTest.keyClicks(cnn_view.search, "gemm")
    with qtbot.waitSignal(cnn_view.node_selected) as blocker:
        QTest.keyClick(cnn_view.search, Qt.Key.Key_Return)
    assert blocker.args == ["/head/fc/Gemm"] and cnn_view.match_label.text() == "1 match"
    cnn_view.search.clear()
    QTest.keyClicks(cnn_view.search, "relu")
    found = []
    for _ in range(4):
        QTest.keyClick(cnn_view.search, Qt.Key.Key_Return)
        found.append(cnn_view.selected_node())
    assert found == ["/stem/Relu", "/block/dw/Relu", "/block/Relu", "/stem/Relu"]
    assert cnn_view.match_label.text() == "1 of 3 matches"
    cnn_view.find_next("nothing like this")
    assert cnn_view.match_label.text() == "No matches"
    cnn_view.set_model(model_from_proto(small_cnn(), Path("another.onnx")))  # another model: a fresh search
    assert cnn_view.search.text() == "" and cnn_view.match_label.text() == ""


def test_overlay_colours_nodes_and_shows_a_legend(cnn_view: GraphView) -> None:
    cnn_view.set_overlay({"/stem/Conv": 5.0, "/block/Add": 22.5, "/head/fc/Gemm": 40.0}, title="SQNR (dB)")
    conv, gemm = cnn_view.item_for_node("/stem/Conv"), cnn_view.item_for_node("/head/fc/Gemm")
    assert conv.fill != conv.base_colour and conv.fill.red() > conv.fill.green()  # worst: red
    assert gemm.fill.green() > gemm.fill.red()  # best: green
    assert cnn_view.item_for_node("/stem/Relu").dimmed
    assert _pixel(cnn_view, conv).name() == conv.fill.name()
    legend = cnn_view.value_legend
    assert legend.isVisible() and legend.title == "SQNR (dB)" and (legend.low, legend.high) == ("5", "40")
    cnn_view.set_overlay({"/stem/Conv": 5.0, "/head/fc/Gemm": 40.0}, title="MSE", low_is_bad=False)
    assert cnn_view.item_for_node("/stem/Conv").fill.green() > cnn_view.item_for_node("/stem/Conv").fill.red()
    cnn_view.set_overlay(None)
    assert conv.fill == conv.base_colour and not conv.dimmed and not legend.isVisible()


def _rect_in(view: GraphView, widget) -> QRect:
    return QRect(widget.mapTo(view, QPoint(0, 0)), widget.size())


@pytest.mark.parametrize("width", [1200, 380], ids=["wide", "narrow"])
def test_one_legend_sits_under_the_graph_within_its_width(cnn_view: GraphView, qtbot, width: int) -> None:
    # While an overlay colours the boxes the kind colours explain none of them: its scale replaces them.
    cnn_view.resize(width, 700)
    kinds, values = cnn_view.kind_legend, cnn_view.value_legend
    qtbot.waitUntil(lambda: kinds.isVisible() and cnn_view.rect().contains(_rect_in(cnn_view, kinds)))
    cnn_view.set_overlay({"/stem/Conv": 5.0, "/head/fc/Gemm": 40.0}, title="SQNR (dB) · ≥ 30 is usually harmless")
    qtbot.waitUntil(lambda: values.isVisible() and cnn_view.rect().contains(_rect_in(cnn_view, values)))
    assert not kinds.isVisible()
    assert not _rect_in(cnn_view, values).intersects(_rect_in(cnn_view, cnn_view.canvas.viewport()))
    assert values.stacked == (width == 380)  # the title above the bar when one row would be cut off
    cnn_view.set_overlay(None)
    qtbot.waitUntil(lambda: kinds.isVisible() and not values.isVisible())
    assert cnn_view.rect().contains(_rect_in(cnn_view, kinds))
    assert kinds.height() > 20 if width == 380 else kinds.height() == 20  # chips wrap onto a second row


def test_marked_nodes_carry_a_badge(cnn_view: GraphView) -> None:
    cnn_view.set_marked({"/stem/Conv"}, "FP32")
    assert cnn_view.item_for_node("/stem/Conv").badges == ("FP32",)
    assert cnn_view.item_for_node("/block/Add").badges == ()
    cnn_view.set_marked(set(), "FP32")
    assert cnn_view.item_for_node("/stem/Conv").badges == ()


def _badge_pixels(view: GraphView, item: BoxItem) -> list[QPointF]:
    """Scene positions of the pixels painted in the badges' fill colour inside the box."""
    image = view.canvas.viewport().grab().toImage()
    box = view.canvas.mapFromScene(item.rect()).boundingRect()
    return [view.canvas.mapToScene(QPoint(x, y)) for x in range(box.left(), box.right() + 1)
            for y in range(box.top(), box.bottom() + 1) if image.pixelColor(x, y).name() == BADGE_FILL]


@pytest.mark.parametrize("node", ["/stem/Conv", "/stem/bn/BatchNormalization"])
def test_badges_never_cover_the_op_type_or_the_node_name(cnn_view: GraphView, node: str) -> None:
    """Three badges on a 136-pixel box were painted over its op type: where they do not fit beside
    the title they take a row of their own above it."""
    for tag in ("FP32", ENTER_BADGE, LEAVE_BADGE):
        cnn_view.set_marked({node}, tag)
    item = cnn_view.item_for_node(node)
    place = item.text_layout()
    assert [tag for tag, _ in place.badges] == ["FP32", ENTER_BADGE, LEAVE_BADGE]  # all three drawn
    inner = item.rect().adjusted(1, 1, -1, -1)
    for text in (place.title, place.detail):
        assert inner.contains(text), (text, inner)
    assert place.title.bottom() <= place.detail.top()
    for tag, chip in place.badges:
        assert inner.contains(chip), tag
        assert not chip.intersects(place.title) and not chip.intersects(place.detail), tag
    cnn_view.canvas.resetTransform()
    cnn_view.canvas.centerOn(item)
    painted = _badge_pixels(cnn_view, item)
    assert painted and all(any(chip.adjusted(-1, -1, 1, 1).contains(p) for _, chip in place.badges) for p in painted)
    cnn_view.set_marked(set(), "FP32")
    assert [tag for tag, _ in item.text_layout().badges] == [ENTER_BADGE, LEAVE_BADGE]


def test_context_menu_keep_in_float_and_collapse(cnn_view: GraphView, qtbot) -> None:
    menu = cnn_view.context_menu(cnn_view.item_for_node("/block/dw/Conv"))
    actions = {a.text(): a for a in menu.actions() if a.text()}
    assert {"Keep in float", "Collapse group block/dw", "Collapse group block"} <= set(actions)
    with qtbot.waitSignal(cnn_view.keep_in_float_requested) as blocker:
        actions["Keep in float"].trigger()
    assert blocker.args == ["/block/dw/Conv"]
    actions["Collapse group block"].trigger()
    group = cnn_view.item_for_node("/block/Add")
    assert group.is_group and group.box.label == "block (5 nodes)"


def test_groups_collapse_all_and_expand_on_double_click(cnn_view: GraphView) -> None:
    cnn_view.collapse_all()
    items = cnn_view.box_items()
    assert sorted(items) == ["g:block", "g:head", "g:pool", "g:stem"]
    assert items["g:head"].box.count == 3
    QTest.mouseDClick(cnn_view.canvas.viewport(), Qt.MouseButton.LeftButton, pos=_screen_pos(cnn_view, items["g:block"]))
    assert not cnn_view.item_for_node("/block/Add").is_group
    assert cnn_view.item_for_node("/stem/Conv").is_group
    cnn_view.select_node("/stem/bn/BatchNormalization")  # reveals its scope
    assert not cnn_view.item_for_node("/stem/bn/BatchNormalization").is_group
    cnn_view.expand_all()
    assert len(cnn_view.box_items()) == 12


def test_tooltips_name_nodes_and_tensors(cnn_view: GraphView) -> None:
    item = cnn_view.item_for_node("/stem/Conv")
    text = cnn_view.tooltip(item, QPointF(), 3)
    assert "Conv  /stem/Conv" in text and "out: stem  [N, 8, 16, 16] float32" in text
    edge = next(e for e in cnn_view._layout.edges if e.tensor == "stem_relu" and len(e.points) == 2)
    (x0, y0), (x1, y1) = edge.points
    assert cnn_view.tooltip(None, QPointF((x0 + x1) / 2, (y0 + y1) / 2), 3) == "stem_relu  [N, 8, 16, 16] float32"
    assert cnn_view.tooltip(None, QPointF(-900, -900), 3) == ""


def test_big_graph_opens_collapsed_and_expands(view: GraphView) -> None:
    view.set_model(_synthetic_model(2000))
    assert 0 < len(view.box_items()) <= 300
    view.expand_all()
    assert len(view.box_items()) == 2000
    view.set_model(None)
    assert view.box_items() == {} and view.selected_node() is None


def test_huge_graph_is_laid_out_off_the_gui_thread(view: GraphView, qtbot) -> None:
    with qtbot.waitSignal(view.layout_ready, timeout=30000):
        view.set_model(_synthetic_model(ASYNC_LAYOUT_NODES))
        assert view.busy_label.isVisible() and not view.box_items()
    assert 0 < len(view.box_items()) <= 300 and not view.busy_label.isVisible()
    name = view._graph.nodes[-1].name
    with qtbot.waitSignal(view.layout_ready, timeout=30000):
        view.select_node(name)  # hidden in a collapsed scope: relayout, then select
    assert not view.item_for_node(name).is_group and view.item_for_node(name).selected


def test_wheel_zooms_and_hover_shows_a_tooltip(cnn_view: GraphView) -> None:
    viewport = cnn_view.canvas.viewport()
    centre = QPointF(viewport.rect().center())
    before = cnn_view.canvas.zoom
    wheel = QWheelEvent(centre, viewport.mapToGlobal(centre), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, wheel)
    assert cnn_view.canvas.zoom == pytest.approx(before * 1.0015**240)
    pos = _screen_pos(cnn_view, cnn_view.item_for_node("/block/Add"))
    QApplication.sendEvent(viewport, QHelpEvent(QEvent.Type.ToolTip, pos, viewport.mapToGlobal(pos)))
    assert QToolTip.text().startswith("Add  /block/Add")
