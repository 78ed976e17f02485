"""The graph view's legends: the colour of each kind of node, and the scale of an overlay."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QWidget

from .graph_items import KIND_COLOURS, TEXT, font_of, metrics_of


class _CornerPanel(QWidget):
    """A small translucent panel floating over the view; mouse events fall through to the view."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def _background(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor("#c8ced6"))
        painter.setBrush(QColor(255, 255, 255, 225))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)


class ValueLegend(_CornerPanel):
    """Title and either a colour bar with the values at its ends and middle, or named colour chips."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.title = ""
        self.low = self.mid = self.high = ""
        self.stops: tuple[QColor, ...] = ()
        self.categories: tuple[tuple[str, QColor], ...] = ()
        self.setFixedSize(190, 58)

    def show_scale(self, title: str, low: str, high: str, stops: tuple[QColor, QColor, QColor], mid: str = "") -> None:
        """``stops``: the colours at the low end, the middle and the high end of the bar."""
        self.title, self.low, self.mid, self.high, self.stops, self.categories = title, low, mid, high, stops, ()
        self._show()

    def show_categories(self, title: str, categories: tuple[tuple[str, QColor], ...]) -> None:
        """One chip per named colour, e.g. "integer kernel" and "float kernel"."""
        self.title, self.categories, self.stops = title, categories, ()
        self.low = self.mid = self.high = ""
        self._show()

    def _show(self) -> None:
        width = metrics_of(8.5, True).horizontalAdvance(self.title) + 24
        if self.categories:
            width = max(width, sum(metrics_of(7.5).horizontalAdvance(label) + 28 for label, _ in self.categories) + 12)
        self.setFixedSize(int(max(190, width)), 50 if self.categories else 58)
        self.show()
        self.update()

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        self._background(painter)
        painter.setPen(QColor(TEXT))
        painter.setFont(font_of(8.5, True))
        painter.drawText(QRectF(10, 4, self.width() - 20, 16), Qt.AlignmentFlag.AlignLeft, self.title)
        if self.categories:
            self._paint_categories(painter)
            return
        bar = QRectF(10, 23, self.width() - 20, 10)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for position, colour in zip((0.0, 0.5, 1.0), self.stops):
            gradient.setColorAt(position, colour)
        painter.setPen(QColor("#9aa3ad"))
        painter.setBrush(gradient)
        painter.drawRect(bar)
        painter.setPen(QColor(TEXT))
        painter.setFont(font_of(7.5))
        labels = QRectF(10, 36, self.width() - 20, 16)
        painter.drawText(labels, Qt.AlignmentFlag.AlignLeft, self.low)
        painter.drawText(labels, Qt.AlignmentFlag.AlignHCenter, self.mid)
        painter.drawText(labels, Qt.AlignmentFlag.AlignRight, self.high)

    def _paint_categories(self, painter: QPainter) -> None:
        painter.setFont(font_of(7.5))
        x = 10.0
        for label, colour in self.categories:
            painter.setPen(colour.darker(150))
            painter.setBrush(colour)
            painter.drawRoundedRect(QRectF(x, 30, 12, 12), 2, 2)
            painter.setPen(QColor(TEXT))
            width = metrics_of(7.5).horizontalAdvance(label)
            painter.drawText(QRectF(x + 16, 27, width + 4, 18), Qt.AlignmentFlag.AlignVCenter, label)
            x += width + 28


class KindLegend(_CornerPanel):
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

    def paintEvent(self, event: object) -> None:
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
