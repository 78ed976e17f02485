"""Legends: the graph view's (the colour of each kind of node, or the scale of an overlay), and the
clipping methods' under the activation histogram.

They sit in a strip of their own under the graph, never over it: a legend floating over the view
covered whatever nodes the view showed beneath it. One shows at a time: while an overlay colours the
boxes, the kind colours explain none of them (an orange 0.5x speed-up box read as an "activation").
Each fits the width of the strip, wrapping rather than being cut off in a narrow window.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent, QResizeEvent, QTextDocument
from PySide6.QtWidgets import QLabel, QWidget

from ..core.tensorview import MethodRange
from . import formatting as fmt
from .graph_items import CANVAS_BACKGROUND, KIND_COLOURS, TEXT, font_of, metrics_of

MARGIN = 3  # around the legend in its strip
VALUE_HEIGHT = 28  # a colour bar with its labels under it, beside the title
TITLE_HEIGHT = 16  # the overlay's title, on a row of its own when the strip is too narrow beside it
BAR_WIDTH = 150
CHIP_ROW = 16  # one row of kind chips
STRIP_LINE = "#e3e7ec"


class _LegendPanel(QWidget):
    """A small panel with a light rounded background."""

    def _background(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor("#c8ced6"))
        painter.setBrush(QColor(255, 255, 255, 225))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)


class ValueLegend(_LegendPanel):
    """A title and either a colour bar with the values at its ends and middle under it, or named colour
    chips: in one row, or the title above the rest when one row is wider than the strip."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.title = ""
        self.low = self.mid = self.high = ""
        self.stops: tuple[QColor, ...] = ()
        self.categories: tuple[tuple[str, QColor], ...] = ()
        self.stacked = False
        self.setFixedSize(BAR_WIDTH, VALUE_HEIGHT)

    def show_scale(self, title: str, low: str, high: str, stops: tuple[QColor, QColor, QColor], mid: str = "") -> None:
        """``stops``: the colours at the low end, the middle and the high end of the bar."""
        self.title, self.low, self.mid, self.high, self.stops, self.categories = title, low, mid, high, stops, ()
        self.show()

    def show_categories(self, title: str, categories: tuple[tuple[str, QColor], ...]) -> None:
        """One chip per named colour, e.g. "integer kernel" and "float kernel"."""
        self.title, self.categories, self.stops = title, categories, ()
        self.low = self.mid = self.high = ""
        self.show()

    def _title_width(self) -> float:
        return metrics_of(8.5, True).horizontalAdvance(self.title)

    def _content_width(self) -> float:
        if self.categories:
            return sum(metrics_of(7.5).horizontalAdvance(label) + 28 for label, _ in self.categories)
        return BAR_WIDTH

    def fit(self, width: int) -> None:
        """Take one row if it fits in ``width`` pixels, else the title above the bar or chips."""
        one_row = 10 + self._title_width() + 12 + self._content_width() + 6
        self.stacked = one_row > width
        if self.stacked:
            needed = math.ceil(10 + max(self._title_width(), self._content_width()) + 6)
            self.setFixedSize(min(needed, width), TITLE_HEIGHT + VALUE_HEIGHT)
        else:
            self.setFixedSize(math.ceil(one_row), VALUE_HEIGHT)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        self._background(painter)
        painter.setPen(QColor(TEXT))
        painter.setFont(font_of(8.5, True))
        if self.stacked:
            title = metrics_of(8.5, True).elidedText(self.title, Qt.TextElideMode.ElideRight, self.width() - 16)
            painter.drawText(QRectF(10, 2, self.width() - 12, TITLE_HEIGHT), Qt.AlignmentFlag.AlignVCenter, title)
            x, top = 10.0, float(TITLE_HEIGHT)
        else:
            width = self._title_width()
            painter.drawText(QRectF(10, 0, width + 2, self.height()), Qt.AlignmentFlag.AlignVCenter, self.title)
            x, top = 10 + width + 12, 0.0
        if self.categories:
            self._paint_categories(painter, x, top)
            return
        bar = QRectF(x, top + 4, BAR_WIDTH, 9)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for position, colour in zip((0.0, 0.5, 1.0), self.stops):
            gradient.setColorAt(position, colour)
        painter.setPen(QColor("#9aa3ad"))
        painter.setBrush(gradient)
        painter.drawRect(bar)
        painter.setPen(QColor(TEXT))
        painter.setFont(font_of(7.5))
        labels = QRectF(x, top + 13, BAR_WIDTH, 14)
        painter.drawText(labels, Qt.AlignmentFlag.AlignLeft, self.low)
        painter.drawText(labels, Qt.AlignmentFlag.AlignHCenter, self.mid)
        painter.drawText(labels, Qt.AlignmentFlag.AlignRight, self.high)

    def _paint_categories(self, painter: QPainter, x: float, top: float) -> None:
        painter.setFont(font_of(7.5))
        for label, colour in self.categories:
            painter.setPen(colour.darker(150))
            painter.setBrush(colour)
            painter.drawRoundedRect(QRectF(x, top + (VALUE_HEIGHT - 12) / 2, 12, 12), 2, 2)
            painter.setPen(QColor(TEXT))
            width = metrics_of(7.5).horizontalAdvance(label)
            painter.drawText(QRectF(x + 16, top, width + 4, VALUE_HEIGHT), Qt.AlignmentFlag.AlignVCenter, label)
            x += width + 28


class KindLegend(_LegendPanel):
    """Colour chips for the node kinds present in the graph, in as many rows as the width needs."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.kinds: list[str] = []
        self._chips: list[tuple[str, float, float]] = []  # kind, x, y

    def set_kinds(self, kinds: list[str]) -> None:
        self.kinds = kinds

    def fit(self, width: int) -> None:
        """Place the chips left to right, starting a new row where the next would pass ``width`` pixels."""
        metrics = metrics_of(7.5)
        self._chips, x, y, widest = [], 8.0, 2.0, 0.0
        for kind in self.kinds:
            step = metrics.horizontalAdvance(kind) + 22
            if x > 8.0 and x + step > width:
                x, y = 8.0, y + CHIP_ROW
            self._chips.append((kind, x, y))
            x += step
            widest = max(widest, x)
        self.setFixedSize(int(widest + 8), int(y + CHIP_ROW + 2))
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        self._background(painter)
        painter.setFont(font_of(7.5))
        for kind, x, y in self._chips:
            painter.setPen(QColor(KIND_COLOURS[kind]).darker(150))
            painter.setBrush(QColor(KIND_COLOURS[kind]))
            painter.drawRoundedRect(QRectF(x, y + 3, 10, 10), 2, 2)
            painter.setPen(QColor(TEXT))
            width = metrics_of(7.5).horizontalAdvance(kind)
            painter.drawText(QRectF(x + 13, y, width + 4, CHIP_ROW), Qt.AlignmentFlag.AlignVCenter, kind)


class LegendBar(QWidget):
    """The strip under the graph that holds its legend: the node kinds, or an overlay's scale."""

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
        """Show the overlay's scale, else the kinds; fit it to the strip's width and take the height it
        needs (none when neither shows)."""
        self.kinds.setVisible(bool(self.kinds.kinds) and self.values.isHidden())
        legend = next((legend for legend in (self.values, self.kinds) if not legend.isHidden()), None)
        if legend is None:
            self.setFixedHeight(0)
            return
        legend.fit(max(self.width() - 2 * MARGIN, 1))
        legend.move(MARGIN, MARGIN)
        self.setFixedHeight(legend.height() + 2 * MARGIN)

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.arrange()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(CANVAS_BACKGROUND))
        painter.setPen(QColor(STRIP_LINE))
        painter.drawLine(0, 0, self.width(), 0)


METHOD_COLOURS: dict[str, str] = {
    "minmax": "#d62728",
    "percentile": "#2ca02c",
    "entropy": "#9467bd",
    "mse": "#ff7f0e",
    "ema": "#17becf",
}


METHOD_LEGEND_GAP = 10
"""Pixels between the clipping legend's columns."""
METHOD_LEGEND_KEY = "#777777"


METHOD_LEGEND_TIP = ("Each calibration method's clipping range [min, max] and the share of calibration values "
                     "outside it. Bold, with a solid line: the method whose range the run used.")


def method_colour(method: str) -> str:
    return METHOD_COLOURS.get(method, "#000000")


def _cell(text: str, colour: str = "", pad: int = 4) -> str:
    """One cell of the legend's table, ``pad`` pixels clear of the next."""
    return f"<td style='padding-right:{pad}px{f'; color:{colour}' if colour else ''}'>{text}</td>"


def _legend_html(ranges: list[MethodRange], chosen: str, columns: int) -> str:
    """A table under the plot (never over the data): colour, method, range and share of values clipped,
    the methods down ``columns`` side-by-side columns. A slot the methods leave free says what the
    numbers are, under the columns it names; without one, each share reads "clips …"."""
    rows = math.ceil(len(ranges) / columns)
    keyed = rows * columns > len(ranges)
    cells = [_cell("━━" if entry.method == chosen else "╍╍", method_colour(entry.method), 3)
             + _cell(f"<b>{entry.method}</b>" if entry.method == chosen else entry.method)
             + _cell(f"[{fmt.number(entry.rmin)}, {fmt.number(entry.rmax)}]")
             + _cell(f"{'' if keyed else 'clips '}{fmt.percent(entry.clipped, 3)}", pad=0) for entry in ranges]
    if keyed:
        key = METHOD_LEGEND_KEY
        cells.append(_cell("") + _cell("") + _cell("[min, max]", key) + _cell("clipped", key, 0))
    gap = f"<td width='{METHOD_LEGEND_GAP}'></td>"
    html = ["<tr>" + gap.join(cells[row::rows]) + "</tr>" for row in range(rows)]
    return "<table cellspacing='0' cellpadding='0'>" + "".join(html) + "</table>"


class MethodLegend(QLabel):
    """The clipping methods' legend in as many columns as the width holds (at most three).

    One method per row took five rows: at 1366x768 the Node dock's plots then needed 387 pixels, which
    left the property tree three rows. Its least width is that of one column, so it never holds the
    dock wider.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setTextFormat(Qt.TextFormat.RichText)
        self._ranges: list[MethodRange] = []
        self._chosen = ""
        self.setToolTip(METHOD_LEGEND_TIP)

    def set_ranges(self, ranges: list[MethodRange], chosen: str, reason: str = "") -> None:
        """``chosen``: the method whose range the run used; ``reason``: why, when not the recipe's method."""
        self._ranges, self._chosen = list(ranges), chosen
        self.setToolTip(METHOD_LEGEND_TIP + (f" Here {chosen}: {reason}." if reason else ""))
        self.setMinimumWidth(math.ceil(self._width_of(_legend_html(ranges, chosen, 1))) if ranges else 0)
        self._reflow()

    def clear(self) -> None:
        self._ranges = []
        self.setMinimumWidth(0)
        self.setToolTip(METHOD_LEGEND_TIP)
        super().clear()

    def sizeHint(self) -> QSize:
        """One column's width: the legend takes the width it is given, it does not ask for more."""
        return QSize(self.minimumWidth(), super().sizeHint().height())

    def _width_of(self, html: str) -> float:
        document = QTextDocument()
        document.setDocumentMargin(0)
        document.setDefaultFont(self.font())
        document.setHtml(html)
        return document.idealWidth()

    def _reflow(self) -> None:
        if not self._ranges:
            return
        for columns in range(min(3, len(self._ranges)), 0, -1):
            html = _legend_html(self._ranges, self._chosen, columns)
            if columns == 1 or self._width_of(html) <= self.contentsRect().width():
                break
        if html != self.text():
            self.setText(html)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._reflow()
