"""The one look every small pyqtgraph plot in q8studio shares."""

from __future__ import annotations

import pyqtgraph as pg


def make_plot(title: str, x_label: str, y_label: str) -> pg.PlotWidget:
    """A titled, gridded plot without pyqtgraph's context menu or SI-prefixed axes."""
    plot = pg.PlotWidget()
    plot.setTitle(title, size="9pt")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(140)
    for axis in ("bottom", "left"):
        plot.getAxis(axis).enableAutoSIPrefix(False)  # "value (x0.001)" reads worse than 0.002
    return plot
