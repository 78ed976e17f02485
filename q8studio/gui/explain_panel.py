"""The Explain panel: how the selected int8 layer computes, with one output element worked through.

It only displays an :data:`~q8studio.core.explain.Explanation`; computing one runs the model and belongs
in a worker thread (``explain_node``). Top to bottom: a coloured badge with the bit-exact check against
ONNX Runtime, the quantization numbers, per-channel S_w and the error of M0 * 2^-n, the receptive
field and weights of the worked element as grids (padding greyed), and the arithmetic chain from
the int32 sum to the dequantized value. An Add has no weights or accumulator: its numbers are the
three tensors' scales and QLinearAdd's ratios, and its chain the two ways of adding one element. A
GlobalAveragePool's grid is the averaged channel, its chain the exact int32 sum and the one float32 factor;
a MaxPool's or AveragePool's grid is the window (a MaxPool's largest value marked); a Sigmoid's or LeakyRelu's
is its table of 256 entries, also plotted over the curve it rounds, beside the codes the sample reads; a
Softmax's is the worked element's row, input codes above output codes, plotted beside the exponential table.
"""

from __future__ import annotations

from html import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFontDatabase
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.explain import EXPLAINABLE_WORDS, Explanation, NodeExplanation
from ..core.explainadd import AddExplanation
from ..core.explainaveragepool import AveragePoolExplanation
from ..core.explainconcat import ConcatExplanation
from ..core.explainlookup import LookupExplanation
from ..core.explainmaxpool import MaxPoolExplanation
from ..core.explainmove import MoveExplanation
from ..core.explainmul import MulExplanation
from ..core.explainpool import PoolExplanation
from ..core.explainsoftmax import SoftmaxExplanation
from ..core.weights import QuantParams
from . import formatting as fmt
from .plots import PlotRow, make_plot, tick_whole_channels

pg.setConfigOptions(antialias=True, background="w", foreground="#333")  # the app's plot style

BADGE_COLOURS = {"exact": "#2e7d32", "close": "#e08a00", "wrong": "#c62828", "none": "#757575"}
PADDING_BRUSH = QBrush(QColor("#e6e6e6"))
LARGEST_BRUSH = QBrush(QColor("#ffd8a8"))
ZERO_POINT_PADDING = "padding: the zero point Z_x, which stands for real 0"
GRID_CHANNELS = 8  # channels of a receptive field shown as grids; the chain still sums them all
ROW_VALUES = 16  # values per row when a matrix row is shown as a grid


class ExplainPanel(QWidget):
    """Numbers, per-channel plot, worked example and check result of one explained node."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.badge = QLabel()
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # it names nodes, which may hold "<"
        self.content = QWidget()
        body = QVBoxLayout(self.content)
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self._section("Quantization of this layer"))
        body.addWidget(self._numbers_table())
        body.addWidget(self._plots())
        body.addWidget(self._lookup_plots())
        body.addWidget(self._softmax_plots())
        body.addWidget(self._section("Worked example"))
        self.element_label = QLabel()
        self.element_label.setWordWrap(True)
        body.addWidget(self.element_label)
        body.addWidget(self._grids())
        body.addWidget(self._steps_view())
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setTextFormat(Qt.TextFormat.RichText)
        body.addWidget(self.notes)
        body.addStretch(1)
        self.scroll = QScrollArea()  # hidden with its content: empty, it still drew a scroll bar
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.content)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.badge)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.message, 1)  # either the message or the content takes the height
        layout.addWidget(self.scroll, 1)
        self.explanation: Explanation | None = None
        self.show_explanation(None)

    # --- construction -------------------------------------------------------------------------

    @staticmethod
    def _section(text: str) -> QLabel:
        label = QLabel(f"<b>{text}</b>")
        label.setContentsMargins(0, 6, 0, 2)
        return label

    def _numbers_table(self) -> QTableWidget:
        self.numbers = QTableWidget(0, 2)
        self.numbers.setHorizontalHeaderLabels(["Quantity", "Value"])
        self.numbers.verticalHeader().hide()
        self.numbers.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.numbers.horizontalHeader().setStretchLastSection(True)
        self.numbers.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.numbers.setAlternatingRowColors(True)
        return self.numbers

    def _plots(self) -> PlotRow:
        self.scale_plot = _fixed_height_plot("S_w per output channel", "channel", "S_w")
        self.scale_curve = pg.PlotDataItem(pen=pg.mkPen("#1f77b4", width=1.2), symbol="o", symbolSize=5,
                                           symbolBrush="#1f77b4", symbolPen=None)
        self.scale_plot.addItem(self.scale_curve)
        self.channel_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#ff7f0e", width=1.5, style=Qt.PenStyle.DashLine))
        self.scale_plot.addItem(self.channel_line)
        self.error_plot = _fixed_height_plot("M0·2⁻ⁿ/M − 1 per channel", "channel", "relative error")
        self.error_curve = pg.PlotDataItem(pen=None, symbol="s", symbolSize=5, symbolBrush="#d62728", symbolPen=None)
        self.error_plot.addItem(self.error_curve)
        self.plot_row = PlotRow(self.scale_plot, self.error_plot)
        return self.plot_row

    def _lookup_plots(self) -> PlotRow:
        """A Sigmoid's or LeakyRelu's table as a staircase over the curve it rounds, and the codes a sample reads."""
        self.table_plot = _fixed_height_plot("T: output code of each input code", "x_q", "y_q")
        self.unrounded_curve = pg.PlotDataItem(pen=pg.mkPen("#9e9e9e", width=1, style=Qt.PenStyle.DashLine))
        self.table_curve = pg.PlotDataItem(pen=pg.mkPen("#1f77b4", width=1.3), stepMode="center")
        self.entry_point = pg.ScatterPlotItem(size=9, brush=pg.mkBrush("#ff7f0e"), pen=None)
        for item in (self.unrounded_curve, self.table_curve, self.entry_point):
            self.table_plot.addItem(item)
        self.counts_plot = _fixed_height_plot("x_q on this sample", "x_q", "elements")
        self.counts_curve = pg.PlotDataItem(pen=pg.mkPen("#1f77b4", width=1), stepMode="center", fillLevel=0,
                                            brush=pg.mkBrush(31, 119, 180, 90))
        self.counts_plot.addItem(self.counts_curve)
        self.lookup_row = PlotRow(self.table_plot, self.counts_plot)
        return self.lookup_row

    def _softmax_plots(self) -> PlotRow:
        """A Softmax's row, each output code over the quotient it rounds, and the exponential table it reads."""
        self.row_plot = _fixed_height_plot("Its row: y_q at each position", "position along the axis", "y_q")
        self.quotient_curve = pg.PlotDataItem(pen=None, symbol="o", symbolSize=5, symbolBrush="#9e9e9e",
                                              symbolPen=None)
        self.row_curve = pg.PlotDataItem(pen=pg.mkPen("#1f77b4", width=1.3), stepMode="center")
        self.row_point = pg.ScatterPlotItem(size=9, brush=pg.mkBrush("#ff7f0e"), pen=None)
        for item in (self.row_curve, self.quotient_curve, self.row_point):
            self.row_plot.addItem(item)
        self.exp_plot = _fixed_height_plot("E[d]/E[0] = exp(−S_x·d)", "d = x_max − x_q", "")
        self.exp_plot.setLogMode(y=True)
        self.exp_curve = pg.PlotDataItem(pen=pg.mkPen("#9e9e9e", width=1))
        # PlotDataItems, not ScatterPlotItems: only they follow the log axis
        self.exp_points = pg.PlotDataItem(pen=None, symbol="o", symbolSize=6, symbolBrush="#1f77b4", symbolPen=None)
        self.exp_point = pg.PlotDataItem(pen=None, symbol="o", symbolSize=9, symbolBrush="#ff7f0e", symbolPen=None)
        for item in (self.exp_curve, self.exp_points, self.exp_point):
            self.exp_plot.addItem(item)
        self.softmax_row = PlotRow(self.row_plot, self.exp_plot)
        return self.softmax_row

    def _grids(self) -> QWidget:
        self.x_table, self.w_table = _grid_table(), _grid_table()
        self.x_title, self.w_title = QLabel(), QLabel("Weights w_q of this output channel")
        self.grid_note = QLabel()
        self.grids = QWidget()  # hidden as a whole for an Add, which has no receptive field
        column = QVBoxLayout(self.grids)
        column.setContentsMargins(0, 0, 0, 0)
        for title, table in ((self.x_title, self.x_table), (self.w_title, self.w_table)):
            column.addWidget(title)
            column.addWidget(table)
        column.addWidget(self.grid_note)
        return self.grids

    def _steps_view(self) -> QPlainTextEdit:
        self.steps = QPlainTextEdit()
        self.steps.setReadOnly(True)
        self.steps.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.steps.setMinimumHeight(170)
        self.steps.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        return self.steps

    # --- content ------------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        """A one-line state instead of content: "Explaining…", an error, or why a node cannot be explained."""
        self.explanation = None
        self.message.setText(text)
        self.message.show()
        self.content.hide()
        self.scroll.hide()
        self.title.setText("")
        self._set_badge("", "none")

    def show_explanation(self, expl: Explanation | None) -> None:
        if expl is None:
            self.show_message(f"Select a {EXPLAINABLE_WORDS} node of the int8 model to see how it computes.")
            return
        self.explanation = expl
        self.message.hide()
        self.content.show()
        self.scroll.show()
        self.title.setText(f"<b>{escape(expl.node)}</b> — {expl.kind}, run by ONNX Runtime as "
                           f"<b>{escape(expl.runtime_kernel)}</b> "
                           f"(sample {expl.sample})")
        self._show_check(expl)
        self.plot_row.setVisible(isinstance(expl, NodeExplanation))
        self.lookup_row.setVisible(isinstance(expl, LookupExplanation))
        self.softmax_row.setVisible(isinstance(expl, SoftmaxExplanation))
        self.grids.setVisible(not isinstance(expl, (AddExplanation, MulExplanation, MoveExplanation)))
        self.w_title.setVisible(isinstance(expl, NodeExplanation))
        self.w_table.setVisible(isinstance(expl, NodeExplanation))
        if isinstance(expl, AddExplanation):
            self._fill_add(expl)
            return
        if isinstance(expl, MulExplanation):
            self._fill_mul(expl)
            return
        if isinstance(expl, PoolExplanation):
            self._fill_pool(expl)
            return
        if isinstance(expl, (MaxPoolExplanation, AveragePoolExplanation)):
            self._fill_window_pool(expl)
            return
        if isinstance(expl, LookupExplanation):
            self._fill_lookup(expl)
            return
        if isinstance(expl, ConcatExplanation):
            self._fill_concat(expl)
            return
        if isinstance(expl, SoftmaxExplanation):
            self._fill_softmax(expl)
            return
        if isinstance(expl, MoveExplanation):
            self._fill_move(expl)
            return
        self._fill_numbers(expl)
        self._fill_plots(expl)
        self._fill_example(expl)

    def _show_check(self, expl: Explanation) -> None:
        check = expl.checks[0]
        if check.exact:
            self._set_badge("bit-exact with ONNX Runtime" if check.bit_exact else "matches ONNX Runtime (float32)", "exact")
        elif check.max_diff <= 1:
            self._set_badge(f"{check.differing:,} of {check.total:,} off by 1", "close")
        else:
            self._set_badge(f"{check.differing:,} of {check.total:,} differ", "wrong")
        lines = [c.summary() + (f" — {c.cause}" if c.cause else "") for c in expl.checks]
        self.badge.setToolTip("\n".join(lines))
        checks = [f"<b>Check:</b> {escape(line)}" for line in lines]
        self.notes.setText("<br>".join(checks + [escape(note) for note in expl.notes]))

    def _set_badge(self, text: str, state: str) -> None:
        self.badge.setText(text)
        self.badge.setVisible(bool(text))
        self.badge.setStyleSheet(f"background: {BADGE_COLOURS[state]}; color: white; border-radius: 4px; "
                                 "padding: 3px 8px; font-weight: bold;")

    def _fill_add(self, expl: AddExplanation) -> None:
        ratios = expl.ratios
        rows = [*_params_rows("a", expl.a), *_params_rows("b", expl.b), *_params_rows("y", expl.y),
                ("r_a = S_a/S_y (float32)", f"{ratios.a:.9g}"), ("r_b = S_b/S_y (float32)", f"{ratios.b:.9g}"),
                ("c = Z_y − (r_a·Z_a + r_b·Z_b)", f"{ratios.constant:.9g}")]
        self._set_numbers(rows + _float_rows(expl))
        ex = expl.example
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b>: a_q = {ex.a_q}, b_q = {ex.b_q}, added as the QDQ graph "
            "defines it, then as ONNX Runtime's QLinearAdd computes it.")
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_mul(self, expl: MulExplanation) -> None:
        constants = expl.constants
        rows = [*_params_rows("a", expl.a), *_params_rows("b", expl.b), *_params_rows("y", expl.y),
                ("S_a·S_b (float32)", f"{constants.scales:.9g}"),
                ("M = S_a·S_b/S_y (float32)", f"{constants.ratio:.9g}")]
        self._set_numbers(rows + _float_rows(expl))
        ex = expl.example
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b>: a_q = {ex.a_q}, b_q = {ex.b_q}, multiplied as the QDQ graph "
            "defines it, then as ONNX Runtime's QLinearMul computes it.")
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_move(self, expl: MoveExplanation) -> None:
        """A layer that moves values: the numbers, what it does to the shape, the input element the worked one is."""
        rows = [*_params_rows("x", expl.x), *_params_rows("y", expl.y), ("moves", expl.movement)]
        self._set_numbers(rows + _float_rows(expl))
        ex = expl.example
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b> is input element <b>{list(ex.source)}</b>: x_q = {ex.x_q}, "
            f"as ONNX Runtime's {escape(expl.runtime_kernel)} moves it, then as the QDQ graph defines it.")
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_pool(self, expl: PoolExplanation) -> None:
        rows = [*_params_rows("x", expl.x), *_params_rows("y", expl.y), ("N, values averaged", f"{expl.count:,}"),
                ("f = S_x/(S_y·N) (float32)", f"{expl.factor:.9g}")]
        self._set_numbers(rows + _float_rows(expl))
        ex = expl.example
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b>: the mean of channel {ex.index[1]}'s {ex.x_q.size} values, "
            "as the QDQ graph defines it, then as ONNX Runtime's QLinearGlobalAveragePool computes it.")
        self.x_title.setText(f"Input x_q: channel {ex.index[1]}, every value averaged")
        _fill_grid(self.x_table, ex.x_q, np.ones(ex.x_q.shape, bool), image=True)
        self.grid_note.setText("")
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_window_pool(self, expl: MaxPoolExplanation | AveragePoolExplanation) -> None:
        """A MaxPool (its window's largest value marked) or an AveragePool: the numbers, the window as a grid."""
        ex = expl.example
        rows = [*_params_rows("x", expl.x), *_params_rows("y", expl.y), ("window", expl.geometry.summary())]
        if isinstance(expl, MaxPoolExplanation):
            action = f"the largest of its window's {int(ex.inside.sum())} 8-bit values in channel {ex.index[1]}"
            marked, largest = (ex.x_q == ex.largest) & ex.inside, "orange: the largest; "
        else:
            rows += [("count_include_pad", "yes" if expl.count_include_pad else "no"), ("divided by", str(ex.count))]
            action = f"the mean of its window in channel {ex.index[1]}, divided by {ex.count}"
            marked, largest = None, ""
        self._set_numbers(rows + _float_rows(expl))
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b>: {action}, as ONNX Runtime's "
            f"{escape(expl.runtime_kernel)} computes it, then as the QDQ graph defines it.")
        padding = expl.padding_role()
        self.x_title.setText(f"Input x_q: the window ({largest}grey: padding, {padding})")
        window = ex.x_q.reshape(-1, ex.x_q.shape[-1]) if ex.x_q.ndim > 2 else ex.x_q  # a 3-D window's planes stacked
        _fill_grid(self.x_table, window, ex.inside.reshape(window.shape), image=True,
                   highlight=None if marked is None else marked.reshape(window.shape),
                   padding_tip=f"padding: outside the input, {padding}")
        self.grid_note.setText("")
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_lookup(self, expl: LookupExplanation) -> None:
        """A Sigmoid or LeakyRelu: the numbers, the table plotted and as a grid, the codes the sample reads."""
        ex = expl.example
        rows = [*_params_rows("x", expl.x), *_params_rows("y", expl.y), ("function", expl.function),
                ("table T", expl.table_summary())]
        self._set_numbers(rows + _float_rows(expl))
        codes = expl.codes.astype(np.float64)
        edges = np.append(codes - 0.5, codes[-1] + 0.5)
        self.unrounded_curve.setData(codes, expl.unrounded)
        self.table_curve.setData(edges, expl.table.astype(np.float64))
        self.entry_point.setData([float(ex.x_q)], [float(ex.kernel_y_q)])
        self.counts_curve.setData(edges, expl.code_counts().astype(np.float64))
        bounds = (float(expl.table.min()) - 4.0, float(expl.table.max()) + 4.0)
        self.table_plot.setYRange(*bounds, padding=0.02)  # the unrounded curve runs past the saturated ends
        for plot in (self.table_plot, self.counts_plot):
            plot.setXRange(codes[0] - 0.5, codes[-1] + 0.5, padding=0.02)
        self.lookup_row.reflow()
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b>: x_q = {ex.x_q} reads T[{ex.x_q}] = {ex.kernel_y_q} "
            f"(orange in the plot and the table); the entry was made once, by dequantizing the code, applying "
            f"{escape(expl.op_type)} in float32 and quantizing.")
        self.x_title.setText("The table T: y_q for each x_q (dashed in the plot: before rounding)")
        self._fill_table(expl.table, expl.codes, ex.x_q)
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_table(self, table: np.ndarray, codes: np.ndarray, entry: int) -> None:
        """A 256-entry table as sixteen rows of sixteen, the entry of input code ``entry`` marked."""
        grid = table.reshape(-1, ROW_VALUES)
        _fill_grid(self.x_table, grid, np.ones(grid.shape, bool), image=True,
                   highlight=(codes == entry).reshape(grid.shape),
                   row_labels=[str(int(code)) for code in codes[::ROW_VALUES]])
        self.grid_note.setText("Rows start at the code on their left; the column adds to it.")

    def _fill_concat(self, expl: ConcatExplanation) -> None:
        """A Concat: each input's quantization and fate, and the table of the worked element's input if it has one."""
        rows = []
        for n, part in enumerate(expl.inputs):
            rows += _params_rows(f"x{n}", part.params)
            rows.append((f"input {n} → positions {part.start}…{part.start + part.size - 1}",
                         "copied (the output's scale and zero point)" if part.copied else "requantized by a table"))
        self._set_numbers(rows + _params_rows("y", expl.y) + [("axis", str(expl.axis))] + _float_rows(expl))
        ex = expl.example
        source = expl.inputs[ex.source]
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b>: x_q = {ex.x_q} from input {ex.source} at "
            f"{list(ex.source_index)}, " + ("copied." if source.copied else f"which reads T_x{ex.source}[{ex.x_q}] = "
                                            f"{ex.kernel_y_q} (orange in the table)."))
        self.grids.setVisible(not source.copied)
        if source.table is not None:
            self.x_title.setText(f"Input {ex.source}'s requantization table T_x{ex.source}: y_q for each x_q")
            self._fill_table(source.table, source.codes, ex.x_q)
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_softmax(self, expl: SoftmaxExplanation) -> None:
        """A Softmax: the numbers, the worked element's row plotted and as a grid, the exponential table."""
        ex, row = expl.example, expl.row
        rows = [*_params_rows("x", expl.x), *_params_rows("y", expl.y), ("rows", expl.row_summary()),
                ("D, values per row", f"{expl.length:,}"), ("b (table shift, steps of S_x)", f"{expl.shift:.6g}"),
                ("K = floor(1/S_y)", f"{expl.multiplier:g} (1/S_y = {expl.reciprocal:.6g})")]
        self._set_numbers(rows + _float_rows(expl))
        positions = np.arange(row.x_q.size, dtype=np.float64)
        self.row_curve.setData(np.append(positions - 0.5, positions[-1] + 0.5), row.kernel_y_q.astype(np.float64))
        self.quotient_curve.setData(positions, row.quotients + int(expl.y.zero_point))
        self.row_point.setData([float(ex.position)], [float(ex.kernel_y_q)])
        shares = expl.table_shares()
        shown = shares > 0  # an entry that underflowed to 0 has no place on the log axis
        self.exp_curve.setData(np.flatnonzero(shown).astype(np.float64), shares[shown])
        row_shares = shares[row.distances]
        seen = row_shares > 0
        self.exp_points.setData(row.distances[seen].astype(np.float64), row_shares[seen])
        worked = [ex.position] if seen[ex.position] else []
        self.exp_point.setData(row.distances[worked].astype(np.float64), row_shares[worked])
        self.softmax_row.reflow()
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b>: x_q = {ex.x_q}, d = {ex.distance} below its row's largest code "
            f"{ex.x_max}; its table entry E[{ex.distance}] divided by the row's sum and scaled by K gives "
            f"{ex.quotient:.4g}, rounded to y_q = {ex.kernel_y_q} (orange in the plots and the row).")
        self.x_title.setText(f"Its row of {row.x_q.size} values: x_q above y_q")
        self._fill_row(row.x_q, row.kernel_y_q, ex.position)
        self.steps.setPlainText("\n".join(expl.steps()))

    def _fill_row(self, x_q: np.ndarray, y_q: np.ndarray, position: int) -> None:
        """A Softmax row as pairs of grid rows, ``ROW_VALUES`` input codes above their output codes."""
        width = min(ROW_VALUES, x_q.size)
        chunks = -(-x_q.size // width)
        grid = np.full((2 * chunks, width), np.iinfo(np.int64).min, np.int64)
        marked = np.zeros(grid.shape, bool)
        for n, start in enumerate(range(0, x_q.size, width)):
            part = slice(start, start + width)
            grid[2 * n, : x_q[part].size], grid[2 * n + 1, : y_q[part].size] = x_q[part], y_q[part]
            if start <= position < start + width:
                marked[2 * n: 2 * n + 2, position - start] = True
        labels = [f"{symbol} {start}" for start in range(0, x_q.size, width) for symbol in ("x_q", "y_q")]
        _fill_grid(self.x_table, grid, np.ones(grid.shape, bool), image=True, highlight=marked, row_labels=labels)
        self.grid_note.setText("Rows start at the position in their label; the column adds to it.")

    def _set_numbers(self, rows: list[tuple[str, str]]) -> None:
        self.numbers.setRowCount(len(rows))
        for index, (name, value) in enumerate(rows):
            self.numbers.setItem(index, 0, QTableWidgetItem(name))
            self.numbers.setItem(index, 1, QTableWidgetItem(value))
        _fit_height(self.numbers)

    def _fill_numbers(self, expl: NodeExplanation) -> None:
        scaling = expl.scaling
        rows = [*_params_rows("x", expl.x), *_params_rows("w", expl.w)]
        if expl.bias_q is not None:
            rows.append(("bias b_q (int32)", _values(expl.bias_q)))
            if scaling.bias_scale is not None:  # a model written elsewhere, with beta folded into S_b
                rows.append(("bias scale S_b", f"{scaling.bias_scale:.6g}·S_x·S_w"))
        if scaling.summary():
            rows.append(("Gemm alpha, beta", scaling.summary()))
        if expl.y is not None:
            rows += _params_rows("y", expl.y)
            multipliers = expl.multipliers
            alpha = "alpha·" if scaling.alpha != 1.0 else ""
            rows += [
                (f"M = {alpha}S_x·S_w/S_y", _values(np.array([m.real for m in multipliers]))),
                ("M0", _values(np.array([m.m0 for m in multipliers]))),
                ("n (right shift)", _values(np.array([m.shift for m in multipliers]))),
                ("max |error of M0·2⁻ⁿ|", f"{max(abs(m.rel_error) for m in multipliers):.2e}"),
            ]
        else:
            rows.append(("output", "not re-quantized: stays float32 (S_x·S_w·acc)"))
        self._set_numbers(rows + _float_rows(expl))

    def _fill_plots(self, expl: NodeExplanation) -> None:
        channels = np.arange(expl.w.scale.size)
        self.scale_curve.setData(channels, expl.w.scale.reshape(-1).astype(np.float64))
        self.error_curve.setData(np.arange(len(expl.multipliers)), np.array([m.rel_error for m in expl.multipliers]))
        self.error_plot.setVisible(expl.y is not None)  # without requantization there is no M to approximate
        self.channel_line.setValue(expl.example.index[1] if expl.op_type == "Conv" else expl.example.index[-1])
        self.channel_line.setVisible(expl.w.per_channel)  # one scale: no channel to point at
        title = "S_w per output channel" if expl.w.per_channel else "S_w (one for the tensor)"
        self.scale_plot.setTitle(title, size="9pt")
        self.error_plot.setTitle("M0·2⁻ⁿ/M − 1" + (" per channel" if len(expl.multipliers) > 1 else ""), size="9pt")
        count = max(channels.size, len(expl.multipliers))
        for plot in (self.scale_plot, self.error_plot):
            plot.setXRange(-0.5, count - 0.5, padding=0.02)
            plot.enableAutoRange(axis="y")
            tick_whole_channels(plot, count)
        if not expl.w.per_channel:  # one point: show it against zero rather than in a range of its own
            self.scale_plot.setYRange(0.0, 2.0 * float(expl.w.scale), padding=0.05)
        self.plot_row.reflow()

    def _fill_example(self, expl: NodeExplanation) -> None:
        ex = expl.example
        self.x_title.setText("Input x_q: the receptive field (grey: padding)")
        channel = ex.index[1] if expl.op_type == "Conv" else ex.index[-1]
        self.element_label.setText(
            f"Output element <b>{list(ex.index)}</b> (channel {channel}"
            f"{', dashed in the S_w plot' if expl.w.per_channel else ''}): "
            f"{ex.products.size} products (x_q − {ex.x_zero_point})·(w_q − {ex.w_zero_point}), summed in int32."
        )
        _fill_grid(self.x_table, ex.x_q, ex.in_bounds)
        _fill_grid(self.w_table, ex.w_q, np.ones(ex.w_q.shape, bool))
        hidden = ex.x_q.shape[0] - GRID_CHANNELS if ex.x_q.ndim == 3 and ex.x_q[0].size > 1 else 0
        self.grid_note.setText(f"First {GRID_CHANNELS} of {ex.x_q.shape[0]} input channels shown." if hidden > 0 else "")
        self.steps.setPlainText("\n".join(ex.steps()))


def _grid_table() -> QTableWidget:
    table = QTableWidget()
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


def _fit_height(table: QTableWidget, max_rows: int = 16) -> None:
    """Show up to ``max_rows`` rows without an inner scroll bar; the panel itself scrolls."""
    table.resizeRowsToContents()
    table.resizeColumnsToContents()
    rows = sum(table.rowHeight(r) for r in range(min(table.rowCount(), max_rows)))
    scroll = table.horizontalScrollBar().sizeHint().height()  # room for it, should the panel be narrow
    table.setFixedHeight(table.horizontalHeader().height() + rows + 2 * table.frameWidth() + scroll)


def grid_rows(values: np.ndarray, *, image: bool = False) -> tuple[np.ndarray, list[str]]:
    """A receptive field as a 2-D grid and its row labels.

    ``(C, kh, kw)`` windows stack the first channels' rows (labelled ``c<i> r<j>``); a 1-D row of
    a matrix product, or a 1x1 window across channels, wraps every ``ROW_VALUES`` values
    (labelled by the first index). An ``image``, one channel's (H, W) values, keeps its rows.
    """
    if image and values.ndim == 2:  # one channel of an image, as a pooling averages it: its rows as they are
        return values, [f"r{r}" for r in range(values.shape[0])]
    if values.ndim == 3 and values.shape[1] * values.shape[2] > 1:
        shown = values[:GRID_CHANNELS]
        labels = [f"c{c} r{r}" for c in range(shown.shape[0]) for r in range(shown.shape[1])]
        return shown.reshape(-1, shown.shape[2]), labels
    flat = values.reshape(-1)
    width = min(ROW_VALUES, flat.size)
    rows = -(-flat.size // width)
    padded = np.full(rows * width, np.iinfo(np.int64).min, np.int64)
    padded[: flat.size] = flat
    return padded.reshape(rows, width), [str(r * width) for r in range(rows)]


def _fill_grid(table: QTableWidget, values: np.ndarray, in_bounds: np.ndarray, *, image: bool = False,
               highlight: np.ndarray | None = None, padding_tip: str = ZERO_POINT_PADDING,
               row_labels: list[str] | None = None) -> None:
    """``values`` as a table, cells outside ``in_bounds`` greyed as padding and ``highlight`` cells marked;
    ``row_labels`` replaces the rows' own labels."""
    grid, labels = grid_rows(values, image=image)
    labels = row_labels or labels
    mask, _ = grid_rows(in_bounds.astype(np.int64), image=image)
    marked, _ = grid_rows((highlight if highlight is not None else np.zeros(values.shape, bool)).astype(np.int64),
                          image=image)
    table.clear()
    table.setRowCount(grid.shape[0])
    table.setColumnCount(grid.shape[1])
    table.setVerticalHeaderLabels(labels)
    table.setHorizontalHeaderLabels([str(c) for c in range(grid.shape[1])])
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            if grid[r, c] == np.iinfo(np.int64).min:
                continue  # past the end of a wrapped row
            item = QTableWidgetItem(str(int(grid[r, c])))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if not mask[r, c]:
                item.setBackground(PADDING_BRUSH)
                item.setToolTip(padding_tip)
            elif marked[r, c] == 1:
                item.setBackground(LARGEST_BRUSH)
            table.setItem(r, c, item)
    _fit_height(table)


def _float_rows(expl: Explanation) -> list[tuple[str, str]]:
    """The int8 output's SQNR against the float model's, when the float model was given."""
    if expl.float_tensor is None:
        return []
    return [("SQNR vs float", f"{fmt.decibels(expl.sqnr_db)} ({expl.float_tensor})")]


def _params_rows(symbol: str, params: QuantParams) -> list[tuple[str, str]]:
    per = f" per channel (axis {params.axis})" if params.per_channel else ""
    return [
        (f"S_{symbol}{per}", _values(params.scale)),
        (f"Z_{symbol} ({params.dtype})", _values(params.zero_point)),
    ]


def _values(array: np.ndarray) -> str:
    """A scalar as itself; a vector as its range, or its one value when every channel has it."""
    flat = np.asarray(array).reshape(-1)
    text = (lambda v: str(int(v))) if flat.dtype.kind in "iu" else (lambda v: fmt.number(float(v), 6))
    if flat.size == 1:
        return text(flat[0])
    if (flat == flat[0]).all():
        return f"{text(flat[0])} (all {flat.size} channels)"
    return f"{text(flat.min())} … {text(flat.max())} ({flat.size} channels)"


def _fixed_height_plot(title: str, x_label: str, y_label: str) -> pg.PlotWidget:
    plot = make_plot(title, x_label, y_label)
    plot.setFixedHeight(170)
    return plot
