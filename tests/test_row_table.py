"""The per-layer table shows every number a run can produce, and a failing cell never takes the window down."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt

from q8studio.core.workflow import LayerRow
from q8studio.gui.results_panel import COLUMNS, LayerTableModel


def _row(sqnr_db: float) -> LayerRow:
    return LayerRow("n129", "Conv", "r129", sqnr_db, math.inf, math.nan, math.inf, 0.0, 1.97e20, 0.0, 1.97e20, 0.0)


def test_a_nan_sqnr_is_shown_as_a_dash_without_colour(qtbot) -> None:
    """Untrained networks overflow float32: the SQNR of such a layer is NaN, which crashed the
    window when its colour was computed."""
    model = LayerTableModel()
    model.set_rows([_row(math.nan), _row(31.5)])
    column = [key for _, key in COLUMNS].index("sqnr_db")
    nan_cell, finite_cell = model.index(0, column), model.index(1, column)
    assert model.data(nan_cell) == "—" and model.data(nan_cell, Qt.ItemDataRole.BackgroundRole) is None
    assert model.data(finite_cell) == "31.50" and model.data(finite_cell, Qt.ItemDataRole.BackgroundRole) is not None


def test_a_cell_that_fails_is_left_empty(qtbot, monkeypatch, caplog) -> None:
    model = LayerTableModel()
    model.set_rows([_row(20.0)])

    def broken(_row, _key):
        raise ValueError("a bug in a cell")

    monkeypatch.setattr(model, "cell_text", broken)
    assert model.data(model.index(0, 0)) is None
    assert "A table cell could not be shown" in caplog.text


def test_the_results_panel_can_be_painted(qtbot) -> None:
    """A child widget stored as ``metric`` shadowed QPaintDevice.metric(): grab() crashed the process."""
    from q8studio.gui.results_panel import ResultsPanel

    panel = ResultsPanel()
    qtbot.addWidget(panel)
    assert not panel.grab().isNull() and panel.devicePixelRatio() > 0
