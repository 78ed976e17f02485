"""The graph view's legends: the colour of each kind of node, and the scale of an overlay.

They sit in a strip of their own under the graph, never over it: a legend floating over the view
covered whatever nodes the view showed beneath it.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QWidget

from .graph_items import CANVAS_BACKGROUND, KIND_COLOURS, TEXT, font_of, metrics_of

MARGIN = 3  # around the legends in their strip, and between two stacked ones
VALUE_HEIGHT = 28  # a colour bar with its labels under it, beside the title
BAR_WIDTH = 150
STRIP_LINE = "#e3e7ec"


class _LegendPanel(QWidget):
    """A small panel with a light rounded background."""

    def _background(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor("#c8ced6"))
        painter.setBrush(QColor(255, 255, 255, 225))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)


class ValueLegend(_LegendPanel):
    """In one row, a title and either a colour bar with the values at its ends and middle under it, or
    named colour chips."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.title = ""
        self.low = self.mid = self.high = ""
        self.stops: tuple[QColor, ...] = ()
        self.categories: tuple[tuple[str, QColor], ...] = ()
        self.setFixedSize(BAR_WIDTH, VALUE_HEIGHT)

    def show_scale(self, title: str, low: str, high: str, stops: tuple[QColor, QColor, QColor], mid: str = "") -> None:
        """``stops``: the colours at the low end, the middle and the high end of the bar."""
        self.title, self.low, self.mid, self.high, self.stops, self.categories = title, low, mid, high, stops, ()
        self._show()

    def show_categories(self, title: str, categories: tuple[tuple[str, QColor], ...]) -> None:
        """One chip per named colour, e.g. "integer kernel" and "float kernel"."""
        self.title, self.categories, self.stops = title, categories, ()
        self.low = self.mid = self.high = ""
        self._show()

    def _title_width(self) -> float:
        return metrics_of(8.5, True).horizontalAdvance(self.title)

    def _show(self) -> None:
        if self.categories:
            content = sum(metrics_of(7.5).horizontalAdvance(label) + 28 for label, _ in self.categories)
        else:
            content = BAR_WIDTH
        self.setFixedSize(int(10 + self._title_width() + 12 + content + 6), VALUE_HEIGHT)
        self.show()
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        self._background(painter)
        painter.setPen(QColor(TEXT))
        painter.setFont(font_of(8.5, True))
        title = self._title_width()
        painter.drawText(QRectF(10, 0, title + 2, self.height()), Qt.AlignmentFlag.AlignVCenter, self.title)
        x = 10 + title + 12
        if self.categories:
            self._paint_categories(painter, x)
            return
        bar = QRectF(x, 4, BAR_WIDTH, 9)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for position, colour in zip((0.0, 0.5, 1.0), self.stops):
            gradient.setColorAt(position, colour)
        painter.setPen(QColor("#9aa3ad"))
        painter.setBrush(gradient)
        painter.drawRect(bar)
        painter.setPen(QColor(TEXT))
        painter.setFont(font_of(7.5))
        labels = QRectF(x, 13, BAR_WIDTH, 14)
        painter.drawText(labels, Qt.AlignmentFlag.AlignLeft, self.low)
        painter.drawText(labels, Qt.AlignmentFlag.AlignHCenter, self.mid)
        painter.drawText(labels, Qt.AlignmentFlag.AlignRight, self.high)

    def _paint_categories(self, painter: QPainter, x: float) -> None:
        painter.setFont(font_of(7.5))
        for label, colour in self.categories:
            painter.setPen(colour.darker(150))
            painter.setBrush(colour)
            painter.drawRoundedRect(QRectF(x, (self.height() - 12) / 2, 12, 12), 2, 2)
            painter.setPen(QColor(TEXT))
            width = metrics_of(7.5).horizontalAdvance(label)
            painter.drawText(QRectF(x + 16, 0, width + 4, self.height()), Qt.AlignmentFlag.AlignVCenter, label)
            x += width + 28


class KindLegend(_LegendPanel):
    """Colour chips for the node kinds present in the graph."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.kinds: list[str] = []

    def set_kinds(self, kinds: list[str]) -> None:
        self.kinds = kinds
        metrics = metrics_of(7.5)
        width = sum(metrics.horizontalAdvance(k) + 22 for k in kinds) + 8
        self.setFixedSize(int(width), 20)
        self.setVisible(bool(kinds))
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        self._background(painter)
        painter.setFont(font_of(7.5))
        x = 8.0
        for kind in self.kinds:
            painter.setPen(QColor(KIND_COLOURS[kind]).darker(150))
            painter.setBrush(QColor(KIND_COLOURS[kind]))
            painter.drawRoundedRect(QRectF(x, 5, 10, 10), 2, 2)
            painter.setPen(QColor(TEXT))
            width = metrics_of(7.5).horizontalAdvance(kind)
            painter.drawText(QRectF(x + 13, 2, width + 4, 16), Qt.AlignmentFlag.AlignVCenter, kind)
            x += width + 22


class LegendBar(QWidget):
    """The strip under the graph that holds its legends: the node kinds at the left, an overlay's
    scale at the right, or one above the other when the two do not fit side by side."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kinds = KindLegend(self)
        self.values = ValueLegend(self)
        self.values.hide()
        self.arrange()

    def set_kinds(self, kinds: list[str]) -> None:
        self.kinds.set_kinds(kinds)
        self.arrange()

    def show_scale(self, title: str, low: str, high: str, stops: tuple[QColor, QColor, QColor], mid: str = "") -> None:
        self.values.show_scale(title, low, high, stops, mid)
        self.arrange()

    def show_categories(self, title: str, categories: tuple[tuple[str, QColor], ...]) -> None:
        self.values.show_categories(title, categories)
        self.arrange()

    def hide_values(self) -> None:
        self.values.hide()
        self.arrange()

    def arrange(self) -> None:
        """Place the shown legends and take the height they need (none when no legend shows)."""
        shown = [legend for legend in (self.kinds, self.values) if legend.isVisibleTo(self)]
        side_by_side = sum(legend.width() for legend in shown) + (len(shown) + 1) * MARGIN <= self.width()
        rows = ([shown] if side_by_side else [[legend] for legend in shown]) if shown else []
        y = MARGIN
        for row in rows:
            height = max(legend.height() for legend in row)
            for legend in row:
                right = legend is self.values and len(row) == 2
                legend.move(self.width() - MARGIN - legend.width() if right else MARGIN,
                            y + (height - legend.height()) // 2)
            y += height + MARGIN
        self.setFixedHeight(y if rows else 0)

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.arrange()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(CANVAS_BACKGROUND))
        painter.setPen(QColor(STRIP_LINE))
        painter.drawLine(0, 0, self.width(), 0)
