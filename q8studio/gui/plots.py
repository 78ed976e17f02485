"""The one look every small pyqtgraph plot in q8studio shares, a row of plots that stacks them when
their titles would not fit side by side, and labels for vertical lines that never cover each other."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import QBoxLayout, QWidget

LABEL_PAD_PX = 3.0
"""Between a label and its line, and between labels side by side."""
LABEL_TOP_PX = 2.0
LABEL_FILL = (255, 255, 255, 170)
"""Translucent: a label stays legible over the histogram and grid, and the lines it crosses show through."""


def make_plot(title: str, x_label: str, y_label: str, min_height: int = 140) -> pg.PlotWidget:
    """A titled, gridded plot without pyqtgraph's context menu or SI-prefixed axes.

    ``min_height``: the least height at which it reads; a plot whose lines carry stacked labels needs
    more, plots stacked two to a tab less (or they keep the window taller than a laptop's screen)."""
    plot = pg.PlotWidget()
    plot.setTitle(title, size="9pt")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(min_height)
    for axis in ("bottom", "left"):
        plot.getAxis(axis).enableAutoSIPrefix(False)  # "value (x0.001)" reads worse than 0.002
    return plot


UNIT_TICKS_UP_TO = 8  # channels whose plots tick every channel; over more, the automatic ticks are whole


def tick_whole_channels(plot: pg.PlotWidget, count: int) -> None:
    """Tick the x axis of a plot of ``count`` channels at whole numbers: over a few channels the automatic
    ticks read "0 0.2 0.4 0.6 0.8 1" for two of them."""
    plot.getAxis("bottom").setTickSpacing(*((1, 1) if count <= UNIT_TICKS_UP_TO else ()))


SIDE_BY_SIDE_WIDTH = 240
"""Least width of a plot beside another: narrower, a plot of a few dozen channels is hard to read."""


class PlotRow(QWidget):
    """Plots side by side where each has room for its whole title and axes, else one above the other.

    Side by side in the Explain dock's default width (about 440 pixels), the second plot's title read
    "… per channe" and its right edge was cut off.
    """

    def __init__(self, *plots: pg.PlotWidget) -> None:
        super().__init__()
        self.plots = plots
        self.box = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        self.box.setContentsMargins(0, 0, 0, 0)
        for plot in plots:
            self.box.addWidget(plot)

    def needed_width(self) -> int:
        """Width the shown plots take side by side: a title wider than its plot widens pyqtgraph's layout
        past the widget, which then cuts it off."""
        shown = [plot for plot in self.plots if not plot.isHidden()]
        least = [math.ceil(plot.getPlotItem().effectiveSizeHint(Qt.SizeHint.MinimumSize).width()) for plot in shown]
        return sum(max(SIDE_BY_SIDE_WIDTH, width) for width in least) + self.box.spacing() * (len(shown) - 1)

    def reflow(self) -> None:
        """Call after a title changes; resizing reflows by itself."""
        across = self.width() >= self.needed_width()
        direction = QBoxLayout.Direction.LeftToRight if across else QBoxLayout.Direction.TopToBottom
        if self.box.direction() != direction:
            self.box.setDirection(direction)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.reflow()


def stack_rows(spans: Sequence[tuple[float, float]], gap: float = LABEL_PAD_PX) -> list[int]:
    """The row of each horizontal span (left, right): the first row whose spans it clears by ``gap``.

    Labels of lines far apart share the top row; labels of close lines go one under the other.
    """
    rows: list[list[tuple[float, float]]] = []
    chosen = []
    for left, right in spans:
        def clears(taken: list[tuple[float, float]]) -> bool:
            return all(right + gap <= start or left >= end + gap for start, end in taken)

        row = next((i for i, taken in enumerate(rows) if clears(taken)), len(rows))
        if row == len(rows):
            rows.append([])
        rows[row].append((left, right))
        chosen.append(row)
    return chosen


@dataclass
class _Label:
    x: float
    item: pg.TextItem


class LineLabels:
    """Names beside the vertical lines of a plot, laid out in pixels whenever the view moves or resizes.

    A label sits left of its line, or right of it when the plot's left edge is too close; labels that
    would overlap stack in rows from the top of the plot, the rightmost line's first, so that close
    lines get a staircase of labels, each beside its own line. A label whose line is out of view is hidden.
    """

    def __init__(self, plot: pg.PlotWidget) -> None:
        self.plot = plot
        self.view = plot.getViewBox()
        self.labels: list[_Label] = []
        self.view.sigRangeChanged.connect(self.layout)
        self.view.sigResized.connect(self.layout)

    def set_labels(self, labels: Sequence[tuple[float, str, str, bool]]) -> None:
        """(x of the line, text, colour, bold) for each line."""
        self.clear()
        for x, text, colour, bold in labels:
            item = pg.TextItem(text, color=colour, anchor=(0, 0), fill=pg.mkBrush(*LABEL_FILL))
            item.textItem.document().setDocumentMargin(1)
            font = QFont(item.textItem.font())
            font.setBold(bold)
            item.setFont(font)
            item.setZValue(20)
            self.plot.addItem(item, ignoreBounds=True)  # labels follow the view; they must not move it
            self.labels.append(_Label(x, item))
        self.layout()

    def clear(self) -> None:
        for label in self.labels:
            self.plot.removeItem(label.item)
        self.labels = []

    def layout(self) -> None:
        """Sides and rows are chosen in pixels; positions are set in view coordinates, anchored at the
        line, so that a label stays beside its line when the plot moves without resizing."""
        area = self.view.sceneBoundingRect()
        (x0, x1), (y0, y1) = self.view.viewRange()
        if not self.labels or area.width() <= 0 or area.height() <= 0 or x1 <= x0 or y1 <= y0:
            return
        per_px = ((x1 - x0) / area.width(), (y1 - y0) / area.height())
        spans, shown = [], []
        for label in sorted(self.labels, key=lambda label: -label.x):
            label.item.setVisible(x0 <= label.x <= x1)
            if not label.item.isVisible():
                continue
            at = (label.x - x0) / per_px[0]
            size = label.item.textItem.boundingRect()
            left_of_line = at - LABEL_PAD_PX - size.width() >= 0
            start = at - LABEL_PAD_PX - size.width() if left_of_line else at + LABEL_PAD_PX
            spans.append((start, start + size.width()))
            shown.append((label, size.height(), left_of_line))
        for (label, height, left_of_line), row in zip(shown, stack_rows(spans)):
            label.item.setAnchor((1, 0) if left_of_line else (0, 0))
            side = -LABEL_PAD_PX if left_of_line else LABEL_PAD_PX
            label.item.setPos(label.x + side * per_px[0], y1 - (LABEL_TOP_PX + row * height) * per_px[1])
