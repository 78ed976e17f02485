"""Weight, activation and float-vs-int8 plots for the selected node (pyqtgraph).

Histograms are step curves (``stepMode="center"``: x holds the bin edges). Each tab states in
its header what it shows, or why it is empty; an empty tab shows that message alone, so an empty
plot never looks like a bug.
"""

from __future__ import annotations

from html import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QCheckBox, QLabel, QTabWidget, QVBoxLayout, QWidget

from ..core.probe import ComparisonView
from ..core.stats import TensorStats
from ..core.tensorview import MethodRange, RangeUsed, WeightSummary
from . import formatting as fmt
from .legends import MethodLegend, method_colour
from .plots import LineLabels, make_plot, tick_whole_channels

pg.setConfigOptions(antialias=True, background="w", foreground="#333")


def _count_label(count: int) -> str:
    """1, 20, 500, 1k, 20k, 5M: one notation for every count on a log axis."""
    power = len(str(count)) - 1
    return f"{count // 10 ** (power - power % 3)}{' kMGT'[power // 3].strip()}"


LOG_TICKS = [
    [(float(power), _count_label(10**power)) for power in range(13)],
    [(float(np.log10(step * 10**power)), _count_label(step * 10**power)) for power in range(13) for step in (2, 5)],
]
"""Log-scale count axes label decades, all in one notation, 1, 10, 100, 1k … 1M (a ReLU's activation axis
read 100000 under 1e+06), and 2 and 5 times them where there is room: a histogram whose counts stay below
10 (a small layer's weights) would otherwise have a single tick, 1. pyqtgraph drops the second level
when its labels would crowd the axis, so a long range keeps its decades alone."""
LOG_FILL_LEVEL = -0.5
"""On a log scale a bin of one value is at log10(1) = 0: the fill must start below it, or single
outliers, the values log counts exist to show, draw nothing."""
FLOAT_COLOUR = "#1f77b4"
INT8_COLOUR = "#ff7f0e"
ERROR_COLOUR = "#7f7f7f"


def _step(colour: str, alpha: int = 90) -> pg.PlotDataItem:
    """A histogram curve: outlined steps filled down to zero."""
    brush = pg.mkColor(colour)
    brush.setAlpha(alpha)
    return pg.PlotDataItem(stepMode="center", fillLevel=0, pen=pg.mkPen(colour, width=1.2), brush=brush)


def _header() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)  # names and messages are escaped: "<b>" in a name is text
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class PlotTab(QWidget):
    """A header over plots; without data, the header's message alone, centred where the plots were.

    Empty axes with ticks around a "no weights" message looked like a plot that failed to draw.
    """

    def __init__(self, *content: QWidget) -> None:
        super().__init__()
        self.header = _header()
        self.content = content
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(2, 2, 2, 2)
        self.box.addWidget(self.header)
        for widget in content:
            self.box.addWidget(widget, 1 if isinstance(widget, pg.PlotWidget) else 0)
        self.showing_message = False

    def show_message(self, message: str) -> None:
        """Hide the plots; the message keeps their height, so the panel does not shrink and grow back
        from one node to the next."""
        self.header.setText(escape(message))
        self.header.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.showing_message = True
        self.header.setMinimumHeight(sum(widget.minimumHeight() for widget in self.content))
        self.box.setStretchFactor(self.header, 1)
        for widget in self.content:
            widget.hide()

    def show_content(self, header: str) -> None:
        """``header`` (rich text) over the plots."""
        self.header.setText(header)
        self.header.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.showing_message = False
        self._fit_header()
        self.box.setStretchFactor(self.header, 0)
        for widget in self.content:
            widget.show()

    def _fit_header(self) -> None:
        """Hold the wrapped header's whole height: layouts ask a label only its height unwrapped, so at
        1366x768 the tab got less than it needed and its plot's axis slid under the legend."""
        if not self.showing_message:
            margins = self.box.contentsMargins()
            self.header.setMinimumHeight(0)  # a label's height for a width is at least its least height
            self.header.setMinimumHeight(self.header.heightForWidth(self.width() - margins.left() - margins.right()))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_header()


STACKED_PLOT_HEIGHT = 90
"""Least height of the plots two tabs stack: at 140 each, a window with a model open could not be made
shorter than 718 pixels, taller than a 1366x768 laptop's screen."""
LABELLED_PLOT_HEIGHT = 200
"""Least height of the activation plot: room for five clipping methods' labels stacked beside their lines."""


class HistogramPanel(QWidget):
    """Three tabs: the node's main weight, its calibrated activation, and its int8 error."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log_counts = QCheckBox("Log counts")
        self.log_counts.setChecked(True)  # a ReLU's spike at zero flattens everything else on a linear scale
        self.log_counts.setToolTip("Show histogram counts on a log scale (rare outliers become visible)")
        self.log_counts.toggled.connect(self._apply_log)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._weights_tab(), "Weights")
        self.tabs.addTab(self._activation_tab(), "Activation")
        self.tabs.addTab(self._int8_tab(), "Float vs int8")
        self.tabs.setCornerWidget(self.log_counts)  # beside the tabs: a row of its own cost a laptop 26 pixels
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tabs)
        self.method_lines: dict[str, list[pg.InfiniteLine]] = {}
        self._apply_log(True)
        self.clear()

    # --- construction -------------------------------------------------------------------------

    def _weights_tab(self) -> QWidget:
        self.weight_plot = make_plot("Weight values", "value", "count", STACKED_PLOT_HEIGHT)
        self.weight_hist = _step(FLOAT_COLOUR)
        self.weight_plot.addItem(self.weight_hist)
        self.channel_plot = make_plot("Per-channel range", "output channel", "value", STACKED_PLOT_HEIGHT)
        self.channel_max = pg.PlotDataItem(pen=pg.mkPen("#d62728", width=1.5), symbol="o", symbolSize=4,
                                           symbolBrush="#d62728", symbolPen=None)
        self.channel_min = pg.PlotDataItem(pen=pg.mkPen(FLOAT_COLOUR, width=1.5), symbol="o", symbolSize=4,
                                           symbolBrush=FLOAT_COLOUR, symbolPen=None)
        band = pg.mkColor("#aaaaaa")
        band.setAlpha(60)
        self.channel_band = pg.FillBetweenItem(self.channel_min, self.channel_max, brush=band)
        for item in (self.channel_band, self.channel_max, self.channel_min):
            self.channel_plot.addItem(item)
        self.weight_tab = PlotTab(self.weight_plot, self.channel_plot)
        self.weight_header = self.weight_tab.header
        return self.weight_tab

    def _activation_tab(self) -> QWidget:
        self.activation_plot = make_plot("Calibration histogram and clipping ranges", "value", "count",
                                         LABELLED_PLOT_HEIGHT)
        self.activation_hist = _step("#555555", alpha=70)
        self.activation_plot.addItem(self.activation_hist)
        self.method_labels = LineLabels(self.activation_plot)
        self.method_legend = MethodLegend()
        self.activation_tab = PlotTab(self.activation_plot, self.method_legend)
        self.activation_header = self.activation_tab.header
        return self.activation_tab

    def _int8_tab(self) -> QWidget:
        self.overlay_plot = make_plot(
            f"<span style='color:{FLOAT_COLOUR}'>float32</span> vs "
            f"<span style='color:{INT8_COLOUR}'>int8 (dequantized)</span> values", "value", "count", STACKED_PLOT_HEIGHT
        )
        self.float_hist = _step(FLOAT_COLOUR, alpha=60)
        self.int8_hist = _step(INT8_COLOUR, alpha=60)
        self.overlay_plot.addItem(self.float_hist)
        self.overlay_plot.addItem(self.int8_hist)
        self.error_plot = make_plot("Error (int8 − float)", "error", "count", STACKED_PLOT_HEIGHT)
        self.error_hist = _step(ERROR_COLOUR)
        self.error_plot.addItem(self.error_hist)
        self.int8_tab = PlotTab(self.overlay_plot, self.error_plot)
        self.int8_header = self.int8_tab.header
        return self.int8_tab

    # --- content ------------------------------------------------------------------------------

    def clear(self) -> None:
        self.show_weight(None, None, "Select a node to see its weights.")
        self.show_activation(None, None, [], "", "Select a node to see its calibrated activation.")
        self.show_comparison(None, "Select a node to compare its float and int8 values.")

    def show_weight(
        self, summary: WeightSummary | None, histogram: tuple[np.ndarray, np.ndarray] | None, message: str = ""
    ) -> None:
        """The weight's histogram and, for per-channel ops, each output channel's min and max."""
        if summary is None or histogram is None:
            self.weight_tab.show_message(message)
            self.weight_hist.setData([], [])
            self._clear_channels()
            return
        counts, edges = histogram
        self.weight_hist.setData(edges, counts)
        stored = f" {fmt.stored(summary.stored)}, shown dequantized" if summary.stored is not None else ""
        self.weight_tab.show_content(
            f"<b>{escape(summary.name)}</b> {list(summary.shape)}{stored} — min {fmt.number(summary.min)}, "
            f"max {fmt.number(summary.max)}, mean {fmt.number(summary.mean)}, std {fmt.number(summary.std)}"
            + (f"; <b>{summary.nonfinite:,} NaN or infinite values</b>, left out" if summary.nonfinite else "")
        )
        if summary.channel_min is None or summary.channel_max is None:
            self._clear_channels()
            return
        self.channel_plot.show()
        channels = np.arange(summary.channel_min.size)
        tick_whole_channels(self.channel_plot, channels.size)
        self.channel_min.setData(channels, summary.channel_min)
        self.channel_max.setData(channels, summary.channel_max)
        self.channel_plot.setTitle(
            f"Per-channel <span style='color:#d62728'>max</span> / <span style='color:{FLOAT_COLOUR}'>min</span> "
            f"(axis {summary.channel_axis}), spread {fmt.number(summary.range_spread, 3)}×",
            size="9pt",
        )
        self._autorange()

    def show_activation(
        self,
        stats: TensorStats | None,
        histogram: tuple[np.ndarray, np.ndarray] | None,
        ranges: list[MethodRange],
        used: RangeUsed | str | None,
        message: str = "",
    ) -> None:
        """The calibration histogram with a vertical line at each method's limits; the one of the method whose
        range the run used is bold (``used``: the run's :class:`~.tensorview.RangeUsed`, or a method's name).
        Why the run used it, when not for the recipe's method (a model output keeps its observed range), is said.

        ``message`` explains an empty plot, or prefixes the header of a full one.
        """
        if isinstance(used, str):
            used = RangeUsed(used, float("nan"), float("nan")) if used else None
        chosen, reason = (used.method, used.reason) if used is not None else ("", "")
        for lines in self.method_lines.values():
            for line in lines:
                self.activation_plot.removeItem(line)
        self.method_lines = {}
        self.method_labels.clear()
        self.method_legend.clear()
        if stats is None or histogram is None:
            self.activation_tab.show_message(message)
            self.activation_hist.setData([], [])
            return
        counts, edges = histogram
        self.activation_hist.setData(edges, counts)
        self.activation_tab.show_content(
            (f"{escape(message)}<br>" if message else "") +
            f"<b>{escape(stats.name)}</b> — {stats.count:,} values, observed [{fmt.number(stats.min)}, "
            f"{fmt.number(stats.max)}]{_histogram_note(stats)}. Lines: each method's clipping range"
            + (f" (bold = used: {escape(chosen)}, since {escape(reason)})." if reason
               else " (bold = used)." if chosen else ".")
        )
        for entry in ranges:
            self._add_method(entry, entry.method == chosen, stats.min < 0)
        self.method_labels.set_labels(
            [(entry.rmax, entry.method, method_colour(entry.method), entry.method == chosen) for entry in ranges])
        self.method_legend.set_ranges(ranges, chosen, reason)
        self._autorange()

    def _add_method(self, entry: MethodRange, chosen: bool, signed: bool) -> None:
        """The method's lines; its name goes beside the upper one (:class:`~.plots.LineLabels`)."""
        style = Qt.PenStyle.SolidLine if chosen else Qt.PenStyle.DashLine
        pen = pg.mkPen(method_colour(entry.method), width=3 if chosen else 1.5, style=style)
        lines = [pg.InfiniteLine(entry.rmax, angle=90, pen=pen)]
        if signed and entry.rmin < 0:
            lines.append(pg.InfiniteLine(entry.rmin, angle=90, pen=pen))
        for line in lines:
            line.setZValue(10 if chosen else 5)
            self.activation_plot.addItem(line)
        self.method_lines[entry.method] = lines

    def show_comparison(self, view: ComparisonView | None, message: str = "") -> None:
        """Float and dequantized int8 histograms on shared bins, and the error histogram."""
        if view is None:
            self.int8_tab.show_message(message)
            for item in (self.float_hist, self.int8_hist, self.error_hist):
                item.setData([], [])
            return
        self.float_hist.setData(view.edges, view.float_counts)
        self.int8_hist.setData(view.edges, view.int8_counts)
        self.error_hist.setData(view.error_edges, view.error_counts)
        self.int8_tab.show_content(
            f"<b>{escape(view.tensor)}</b> on {fmt.count(view.samples, 'sample')} of {escape(view.data_name)} — "
            f"mean error {fmt.number(view.mean_error)}, max |error| {fmt.number(view.max_abs_error)}"
        )
        self._autorange()

    def _clear_channels(self) -> None:
        """Only weights quantized per output channel (Conv, Gemm, MatMul) get the channel plot."""
        self.channel_min.setData([], [])
        self.channel_max.setData([], [])
        self.channel_plot.hide()

    def _apply_log(self, on: bool) -> None:
        for plot in (self.weight_plot, self.activation_plot, self.overlay_plot, self.error_plot):
            plot.setLogMode(x=False, y=on)
            plot.getAxis("left").setTicks(LOG_TICKS if on else None)
        for item in (self.weight_hist, self.activation_hist, self.float_hist, self.int8_hist, self.error_hist):
            item.setFillLevel(LOG_FILL_LEVEL if on else 0)
        self._autorange()

    def _autorange(self) -> None:
        for plot in (self.weight_plot, self.channel_plot, self.activation_plot, self.overlay_plot, self.error_plot):
            plot.enableAutoRange()


def _histogram_note(stats: TensorStats) -> str:
    """Says when the histogram is not simply every value of this tensor: a regular sample of them,
    or the combination of the histograms of a Concat's inputs."""
    sample = f"1 value in {stats.stride:,}" if stats.stride > 1 else ""
    if stats.parts:
        combined = f"; histogram combined from its inputs {', '.join(stats.parts)}"
        return f"{combined} (regular samples, {sample})" if sample else combined
    return f"; histogram of a regular sample, {sample}" if sample else ""
