"""Drawing for the graph view: box and edge items, and the canvas that shows them.

Items are deliberately light: a box is a QGraphicsRectItem (its bounding rect stays in C++)
that paints itself, and edges are drawn a band of layers at a time, so that a 10,000-node graph
becomes ~10,000 small items plus a few hundred paths instead of tens of thousands of objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush, QColor, QContextMenuEvent, QFont, QFontMetricsF, QHelpEvent, QMouseEvent, QPainter,
    QPainterPath, QPen, QPolygonF, QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem, QGraphicsRectItem, QGraphicsScene, QGraphicsView, QStyleOptionGraphicsItem, QToolTip, QWidget,
)

from q8studio.core.layout import Box, EdgePath
from q8studio.core.model import Node, TensorInfo

KIND_COLOURS: dict[str, str] = {
    "compute": "#9fc3ee",
    "activation": "#f7c48a",
    "normalisation": "#c9b5ea",
    "pooling": "#93d5cc",
    "shape": "#d5d9df",
    "qdq": "#f2a3b5",
    "elementwise": "#afdda1",
    "other": "#ececec",
}
GROUP_FILL = "#eef2f7"
GROUP_BORDER = "#5b6b82"
EDGE_COLOUR = "#8c95a3"
ACCENT = "#1f6feb"
TEXT = "#1d232b"
CANVAS_BACKGROUND = "#fafbfc"
FADED_TEXT = "#7d8590"
DETAIL_TEXT = "#4a5260"
BADGE_FILL = "#37474f"
ENTER_BADGE, LEAVE_BADGE = "→int8", "→fp32"  # where float32 enters and leaves the int8 model at run time
OVERLAY_STOPS = ("#e35d4f", "#f5d35c", "#6cc06f")  # bad → middling → good
NO_VALUE_COLOUR = "#c4c4c4"  # a value that is not a number: neither good nor bad
TEXT_LOD = 0.4  # below this zoom, boxes are flat colour: text would be unreadable anyway
READABLE_SCALE = 0.5  # below this, the picture is an overview rather than something to read
MAX_SCALE = 4.0
TITLE_PT, DETAIL_PT, BADGE_PT = 9.0, 7.5, 6.5  # point sizes of a box's op type, its node name and its badges
BADGE_HEIGHT = 10.0
BUSY_STYLE = "background: rgba(255, 255, 255, 230); border: 1px solid #c8ced6; border-radius: 5px; padding: 8px;"


@cache
def font_of(size: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(size)
    font.setBold(bold)
    return font


@cache
def metrics_of(size: float, bold: bool = False) -> QFontMetricsF:
    return QFontMetricsF(font_of(size, bold))


def label_widths(op_types: set[str]) -> dict[str, float]:
    """Width each op type's title needs; the layout widens boxes to fit (measured here: core has no fonts)."""
    return {op: metrics_of(TITLE_PT, True).horizontalAdvance(op) for op in op_types}


def overlay_colour(goodness: float) -> QColor:
    """Red (0, bad) → yellow → green (1, good); grey for NaN (say, the SQNR of a tensor that
    overflowed to infinity), which is neither."""
    if math.isnan(goodness):
        return QColor(NO_VALUE_COLOUR)
    t = min(max(goodness, 0.0), 1.0) * (len(OVERLAY_STOPS) - 1)
    i = min(int(t), len(OVERLAY_STOPS) - 2)
    a, b = QColor(OVERLAY_STOPS[i]), QColor(OVERLAY_STOPS[i + 1])
    f = t - i
    return QColor.fromRgbF(*(a.getRgbF()[k] * (1 - f) + b.getRgbF()[k] * f for k in range(3)))


@dataclass(frozen=True)
class OverlayScale:
    """Per-node values and how to read them: which end of [vmin, vmax] is bad, and how the bar is spaced.

    ``spacing`` "log" spreads ratios evenly (0.25x, 1x and 4x sit at the ends and the middle);
    "log_to_one" spreads values that crowd towards 1 by their distance from it (0.98, 0.998,
    0.9998). ``categories`` turns the scale into named colours, one per integer value.
    ``fixed`` says the ends were chosen, not taken from the values: values beyond them saturate.
    """

    values: dict[str, float]
    title: str
    low_is_bad: bool
    vmin: float
    vmax: float
    spacing: str = "linear"
    categories: tuple[tuple[str, str], ...] = ()
    unit: str = ""
    fixed: bool = False

    def _axis(self, value: float) -> float:
        if self.spacing == "log":
            return math.log(max(value, 1e-12))
        if self.spacing == "log_to_one":
            return -math.log(max(1.0 - value, 1e-12))
        return value

    def _from_axis(self, position: float) -> float:
        if self.spacing == "log":
            return math.exp(position)
        if self.spacing == "log_to_one":
            return 1.0 - math.exp(-position)
        return position

    def goodness(self, value: float) -> float:
        """0 for the worst end of the scale, 1 for the best."""
        lo, hi = self._axis(self.vmin), self._axis(self.vmax)
        t = 1.0 if hi <= lo else (self._axis(value) - lo) / (hi - lo)
        return t if self.low_is_bad else 1.0 - t

    def colour(self, value: float) -> QColor:
        if self.categories:
            index = min(max(int(round(value)), 0), len(self.categories) - 1)
            return QColor(self.categories[index][1])
        return overlay_colour(self.goodness(value))

    def middle(self) -> float:
        """The value at the middle of the colour bar."""
        return self._from_axis((self._axis(self.vmin) + self._axis(self.vmax)) / 2)

    def labels(self) -> tuple[str, str, str]:
        """The values at the bar's low end, middle and high end; saturating ends read "≤" and "≥"."""
        low, high = (f"{'≤' if self.fixed else ''}{self.vmin:.4g}{self.unit}",
                     f"{'≥' if self.fixed else ''}{self.vmax:.4g}{self.unit}")
        return low, f"{self.middle():.4g}{self.unit}", high


def _tensor_text(name: str, tensors: Mapping[str, TensorInfo]) -> str:
    info = tensors.get(name)
    return f"{name}  {info.shape_text()} {info.dtype or ''}".rstrip() if info else name


def node_tooltip(node: Node, tensors: Mapping[str, TensorInfo]) -> str:
    lines = [f"{node.op_type}  {node.name}", f"kind: {node.kind}"]
    lines += [f"in:  {_tensor_text(t, tensors)}" for t in node.inputs if t][:6]
    lines += [f"out: {_tensor_text(t, tensors)}" for t in node.outputs if t][:4]
    return "\n".join(lines)


def group_tooltip(box: Box) -> str:
    return f"{'/'.join(box.group or ())}: {box.count} nodes ({box.detail})\ndouble-click to expand"


def edge_tooltip(names: tuple[str, ...], tensors: Mapping[str, TensorInfo]) -> str:
    more = f"\n+ {len(names) - 1} more tensors" if len(names) > 1 else ""
    return _tensor_text(names[0], tensors) + more


def faded(colour: QColor) -> QColor:
    """A colour washed towards white: nodes that have no overlay value step back."""
    return QColor.fromRgbF(*(c * 0.35 + 0.65 for c in colour.getRgbF()[:3]))


class BoxItem(QGraphicsRectItem):
    """One node or collapsed group; paints its own rectangle, labels and badges."""

    def __init__(self, box: Box, base_colour: QColor) -> None:
        super().__init__(box.x, box.y, box.w, box.h)
        self.box = box
        self.base_colour = base_colour
        self.fill = base_colour
        self.dimmed = False
        self.selected = False
        self.badges: tuple[str, ...] = ()
        self._texts: tuple[str, str] | None = None
        self._placed: tuple[tuple[str, ...], BoxText] | None = None
        self.setPen(Qt.PenStyle.NoPen)
        self.setZValue(2)

    @property
    def is_group(self) -> bool:
        return self.box.kind == "group"

    def set_selected(self, selected: bool) -> None:
        self.selected = selected
        self.update()

    def set_fill(self, colour: QColor | None, dimmed: bool = False) -> None:
        """Overlay colour (None: back to the kind colour); ``dimmed`` fades it and its text."""
        self.fill = faded(self.base_colour) if dimmed else (colour or self.base_colour)
        self.dimmed = dimmed
        self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        rect = self.rect()
        if option.levelOfDetailFromTransform(painter.worldTransform()) < TEXT_LOD:
            overview = self.fill.darker(120) if self.is_group else self.fill  # pale group fill would vanish
            painter.fillRect(rect, QColor(ACCENT) if self.selected else overview)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        inner = rect.adjusted(1, 1, -1, -1)
        if self.selected:
            pen = QPen(QColor(ACCENT), 3.0)
        elif self.is_group:
            pen = QPen(QColor(GROUP_BORDER), 1.3, Qt.PenStyle.DashLine)
        else:
            pen = QPen(self.fill.darker(150), 1.0)
        painter.setPen(pen)
        painter.setBrush(QBrush(self.fill))
        radius = 10.0 if self.is_group else 5.0
        painter.drawRoundedRect(inner, radius, radius)
        title, detail = self._labels()
        place = self.text_layout()
        centred = Qt.AlignmentFlag.AlignCenter
        painter.setPen(QColor(FADED_TEXT if self.dimmed else TEXT))
        painter.setFont(font_of(TITLE_PT, True))
        # drawn in the box's full width: a rect as tight as the text could clip its antialiased edges
        painter.drawText(QRectF(rect.x(), place.title.y(), rect.width(), place.title.height()), centred, title)
        painter.setPen(QColor(FADED_TEXT if self.dimmed else DETAIL_TEXT))
        painter.setFont(font_of(DETAIL_PT))
        painter.drawText(QRectF(rect.x(), place.detail.y(), rect.width(), place.detail.height()), centred, detail)
        self._paint_badges(painter, place.badges)

    def _labels(self) -> tuple[str, str]:
        """Elided once: a box's width never changes."""
        if self._texts is None:
            width = self.box.w - 14
            title = ("▸ " if self.is_group else "") + self.box.label
            self._texts = (metrics_of(TITLE_PT, True).elidedText(title, Qt.TextElideMode.ElideRight, width),
                           # a node's name ends with what is specific; a group's summary starts with it
                           metrics_of(DETAIL_PT).elidedText(self.box.detail, Qt.TextElideMode.ElideRight
                                                            if self.is_group else Qt.TextElideMode.ElideLeft, width))
        return self._texts

    def text_layout(self) -> BoxText:
        """Where the title, the detail and the badges go; computed again only when the badges change."""
        if self._placed is None or self._placed[0] != self.badges:
            self._placed = (self.badges, place_texts(self.rect(), *self._labels(), self.badges))
        return self._placed[1]

    @staticmethod
    def _paint_badges(painter: QPainter, chips: tuple[tuple[str, QRectF], ...]) -> None:
        painter.setFont(font_of(BADGE_PT, True))
        for tag, chip in chips:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(BADGE_FILL))
            painter.drawRoundedRect(chip, 3, 3)
            painter.setPen(QColor("white"))
            painter.drawText(chip, Qt.AlignmentFlag.AlignCenter, tag)


@dataclass(frozen=True)
class BoxText:
    """The rects a box's texts take: one line of title (op type), one of detail (node name), badge chips."""

    title: QRectF
    detail: QRectF
    badges: tuple[tuple[str, QRectF], ...]


def place_texts(rect: QRectF, title: str, detail: str, badges: tuple[str, ...]) -> BoxText:
    """Title and detail centred in the box, badges in its top-right corner; where a badge would cover
    the title (a long op type, or three badges on a 136-pixel box), the badges take a row of their own
    above the two lines. Badges that would pass the box's left edge are left out."""
    title_m, detail_m = metrics_of(TITLE_PT, True), metrics_of(DETAIL_PT)
    chips: list[tuple[str, QRectF]] = []
    right = rect.right() - 3
    for tag in badges:
        width = metrics_of(BADGE_PT, True).horizontalAdvance(tag) + 6
        if right - width < rect.left() + 3:
            break
        chips.append((tag, QRectF(right - width, rect.top() + 2, width, BADGE_HEIGHT)))
        right -= width + 3

    def lines(top: float) -> tuple[QRectF, QRectF]:
        title_w, detail_w = title_m.horizontalAdvance(title), detail_m.horizontalAdvance(detail)
        centre = rect.center().x()
        return (QRectF(centre - title_w / 2, top, title_w, title_m.height()),
                QRectF(centre - detail_w / 2, top + title_m.height(), detail_w, detail_m.height()))

    title_rect, detail_rect = lines(rect.center().y() - (title_m.height() + detail_m.height()) / 2)
    if any(chip.intersects(title_rect) or chip.intersects(detail_rect) for _, chip in chips):
        title_rect, detail_rect = lines(rect.top() + 2 + BADGE_HEIGHT)
    return BoxText(title_rect, detail_rect, tuple(chips))


class EdgeBundleItem(QGraphicsItem):
    """Many edges as one stroked path plus one filled path of arrowheads."""

    def __init__(self, edges: list[EdgePath], colour: str, width: float) -> None:
        super().__init__()
        self._lines = QPainterPath()
        self._arrows = QPainterPath()
        drawn: set[tuple[float, ...]] = set()
        for edge in edges:
            self._add(edge.points, drawn)
        self._colour = QColor(colour)
        self._width = width
        self._bounds = self._lines.boundingRect().united(self._arrows.boundingRect()).adjusted(-width, -width, width, width)
        self.setZValue(1)

    def _add(self, points: tuple[tuple[float, float], ...], drawn: set[tuple[float, ...]]) -> None:
        """Append one polyline and its arrowhead; segments already drawn (shared trunks) are skipped."""
        (x0, y0), (x1, y1) = points[-2], points[-1]
        length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-6)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        base = (x1 - 7 * ux, y1 - 7 * uy)
        pen_at = None
        for a, b in zip(points, (*points[1:-1], base)):
            if (*a, *b) in drawn:
                continue
            drawn.add((*a, *b))
            if pen_at != a:
                self._lines.moveTo(*a)
            self._lines.lineTo(*b)
            pen_at = b
        self._arrows.addPolygon(QPolygonF([QPointF(x1, y1), QPointF(base[0] - 3.5 * uy, base[1] + 3.5 * ux),
                                           QPointF(base[0] + 3.5 * uy, base[1] - 3.5 * ux)]))
        self._arrows.closeSubpath()

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        detailed = option.levelOfDetailFromTransform(painter.worldTransform()) >= TEXT_LOD
        pen = QPen(self._colour, self._width if detailed else 1.0)
        pen.setCosmetic(not detailed)
        if detailed:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._lines)
        if detailed:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self._colour)
            painter.drawPath(self._arrows)


class GraphCanvas(QGraphicsView):
    """Shows the scene: wheel zoom under the mouse, drag to pan, fit; reports gestures as signals.

    Like Netron and Model Explorer it has no scroll bars: dragging pans and the wheel zooms.
    """

    clicked = Signal(object)  # the BoxItem under a click that was not a drag, or None
    group_activated = Signal(object)  # the scope of a double-clicked group box
    menu_requested = Signal(object, QPoint)  # BoxItem or None, global position
    user_moved = Signal()  # the user zoomed or started to drag
    resized = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(QGraphicsScene(parent), parent)
        self.content = QRectF(0, 0, 1, 1)  # the graph's extent, which fit() shows
        self.tooltip_for: Callable[[BoxItem | None, QPointF, float], str] = lambda item, at, tolerance: ""
        self._press: QPoint | None = None
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(CANVAS_BACKGROUND))
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def fit_scale(self) -> float:
        port = self.viewport().rect()
        return min(port.width() / max(self.content.width(), 1.0), port.height() / max(self.content.height(), 1.0))

    def fit(self) -> None:
        """The whole graph, never enlarged past 100 %."""
        self.fitInView(self.content, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom > 1.0:
            self.resetTransform()
            self.centerOn(self.content.center())

    def set_zoom(self, zoom: float) -> None:
        self.scale(zoom / self.zoom, zoom / self.zoom)

    def centre_readably(self, item: QGraphicsItem) -> None:
        """Centre an item, zooming in to 100 % first if the view is too far out to read it."""
        if self.zoom < READABLE_SCALE:
            self.resetTransform()
        self.centerOn(item)

    def box_at(self, pos: QPoint) -> BoxItem | None:
        return next((item for item in self.items(pos) if isinstance(item, BoxItem)), None)

    def wheelEvent(self, event: QWheelEvent) -> None:
        least = min(max(self.fit_scale() * 0.5, 1e-4), 1.0)
        self.set_zoom(min(max(self.zoom * 1.0015 ** event.angleDelta().y(), least), MAX_SCALE))
        self.user_moved.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._press = event.position().toPoint() if event.button() == Qt.MouseButton.LeftButton else None
        self.user_moved.emit()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        pos = event.position().toPoint()
        if self._press is not None and (pos - self._press).manhattanLength() < 5:
            self.clicked.emit(self.box_at(pos))
        self._press = None

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        box = self.box_at(event.position().toPoint())
        if box is not None and box.is_group:
            self.group_activated.emit(box.box.group)
        else:
            super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        self.menu_requested.emit(self.box_at(event.pos()), event.globalPos())

    def viewportEvent(self, event: QEvent) -> bool:
        if isinstance(event, QHelpEvent) and event.type() == QEvent.Type.ToolTip:
            text = self.tooltip_for(self.box_at(event.pos()), self.mapToScene(event.pos()), 6.0 / self.zoom)
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        handled = super().viewportEvent(event)
        if event.type() == QEvent.Type.Resize:
            self.resized.emit()
        return handled
