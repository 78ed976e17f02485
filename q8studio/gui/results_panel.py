"""Results: float32 | int8 side by side beside the per-layer error table (worst first, sortable), the
Speed tab and the Methods tab, with the choice of what colours the graph above them.

The table sorts on the raw numbers (``SORT_ROLE``), not on the text, so 9.5 dB sorts below 10 dB.
Latency and speed-up show the last timing of the models on screen: the speed profile's once there is
one, so they never disagree with the Speed tab (which a new profile re-measures).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import (
    QModelIndex,
    QPoint,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QSplitter,
    QTabWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.evaluate import INPUT_OP, NotMeasured
from ..core.floatnodes import FloatTally
from ..core.workflow import LayerRow, StudioRun, Timing, latest_timing
from . import formatting as fmt
from .graph_items import faded
from .methods_panel import MethodsPanel
from .overlays import OVERLAYS, fixed_scale
from .row_table import NODE_ROLE, RowTableModel, select_quietly, sorted_table
from .speed_panel import SpeedPanel


COLUMNS: list[tuple[str, str]] = [
    ("Layer", "node"),
    ("Op", "op_type"),
    ("SQNR (dB)", "sqnr_db"),
    ("MSE", "mse"),
    ("Cosine", "cosine"),
    ("Max |error|", "max_abs_error"),
    ("Observed range", "observed"),
    ("Clip range", "clip"),
    ("Clipped", "clipped"),
]
OP_COLUMN = 1
SQNR_COLUMN = 2
NUMBER_KEYS = {key for _, key in COLUMNS[SQNR_COLUMN:]}
_SQNR_SCALE = fixed_scale("sqnr_db")
NO_RUN = "Run quantization (Ctrl+R) to compare float32 and int8."
TABLE_TITLE = "<b>Per-layer error</b> (worst first)"
SUMMARY_ROWS = ("Top-1 accuracy", "Top-1 agreement", "Output SQNR", "Output cosine",
                "Median latency", "Speed-up", "File size")
SUMMARY_VALUE_CHARS = 17
"""The width of each float32 | int8 column: the longest figure, "n/a (class ids)", whole."""
LATENCY_ROW = SUMMARY_ROWS.index("Median latency")  # and the speed-up below it
COMPARED = "Median of alternating runs of both models, timed while comparing them"
PROFILED = "Median of alternating runs of both models, timed with the speed profile the Speed tab shows"
UNSTORED_MARK = "*"
UNSTORED_NOTE = "* the float32 file computes its weights when it runs (hover its size)"


def unstored_weights(run: StudioRun) -> str:
    """Why the float32 file is far smaller than the int8 one, when it does not store its weights: a 3.9 KB
    file beside a 58 MB one needs saying. Empty when the file holds them."""
    parameters = run.comparison.float32.unstored_parameters
    if not parameters:
        return ""
    return (f"The float32 file does not store the model's {parameters:,} parameters ({fmt.size(4 * parameters)} "
            "as float32): its graph computes them when it runs, with ConstantOfShape nodes for instance. "
            "Pre-processing folds them into the model, so the int8 file holds them: the two sizes do not compare.")


def float_note(tally: FloatTally) -> str:
    """The run's float nodes in a few words: those kept in float on request (the count every view shows) and
    those the quantizer left in float, which no one kept."""
    parts = [f"{fmt.count(len(tally.kept), 'node')} kept in float"] if tally.kept else []
    if tally.left:  # "17 nodes kept in float, 1 left in float by the quantizer"
        left = f"{len(tally.left):,}" if parts else fmt.count(len(tally.left), "node")
        parts.append(f"{left} left in float by the quantizer")
    return f"{', '.join(parts)} (hover for why)"


class LayerTableModel(RowTableModel[LayerRow]):
    """One row per quantized activation; sorts on the numbers, shows them formatted."""

    columns = COLUMNS

    def cell_text(self, row: LayerRow, key: str) -> str:
        return _cell_text(row, key)

    def cell_value(self, row: LayerRow, key: str) -> object:
        return _cell_value(row, key)

    def row_tip(self, row: LayerRow) -> str:
        return f"{row.node} → {row.tensor}"

    def is_number(self, key: str) -> bool:
        return key in NUMBER_KEYS

    def background(self, row: LayerRow, key: str) -> object:
        return _sqnr_colour(row.sqnr_db) if key == "sqnr_db" and not math.isnan(row.sqnr_db) else None


def _cell_value(row: LayerRow, key: str) -> object:
    if key == "observed":
        value = row.observed_max - row.observed_min
    elif key == "clip":
        value = row.clip_max - row.clip_min
    else:
        value = getattr(row, key)
    if isinstance(value, float) and math.isnan(value):
        return -math.inf
    return value


def _cell_text(row: LayerRow, key: str) -> str:
    if key == "observed":
        return "—" if math.isnan(row.observed_min) else fmt.value_range(row.observed_min, row.observed_max)
    if key == "clip":
        return "shares its input's" if math.isnan(row.clip_min) else fmt.value_range(row.clip_min, row.clip_max)
    if key == "clipped":
        return fmt.percent(None if math.isnan(row.clipped) else row.clipped, 3)
    if key == "sqnr_db":
        if math.isnan(row.sqnr_db):
            return "—"  # a float or int8 value overflowed to infinity
        return "∞" if math.isinf(row.sqnr_db) else f"{row.sqnr_db:.2f}"
    if key == "cosine":
        return f"{row.cosine:.6f}"
    value = getattr(row, key)
    return fmt.number(value) if isinstance(value, float) else str(value)


def _sqnr_colour(sqnr_db: float) -> QColor:
    """The graph's SQNR colour, paler: the table and the graph read the same way."""
    return faded(_SQNR_SCALE.colour(sqnr_db))


class ResultsPanel(QWidget):
    """The comparison of one run; emits the node of a clicked row and Keep-in-float requests."""

    node_activated = Signal(str)
    keep_in_float_requested = Signal(str)
    overlay_metric_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kept_in_float: Callable[[str], bool] = lambda _name: False
        """Whether the user keeps a node in float: its row's menu then offers to quantize it again."""
        self.summary = QTableWidget(len(SUMMARY_ROWS), 2)
        self.summary.setHorizontalHeaderLabels(["float32", "int8"])
        self.summary.setVerticalHeaderLabels(list(SUMMARY_ROWS))
        self.summary.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.summary.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.summary.setMinimumWidth(self.summary.verticalHeader().sizeHint().width()
                                     + 2 * self.fontMetrics().averageCharWidth() * SUMMARY_VALUE_CHARS)
        self.notes = QLabel(NO_RUN)
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.model = LayerTableModel(self)
        self.table, self.proxy = sorted_table(self.model, self)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        self.colour_by = QComboBox()
        for key, overlay in OVERLAYS.items():
            self.colour_by.addItem(overlay.label, key)
        self.colour_by.setToolTip("What colours the graph: a per-layer error, or the speed profile")
        self.colour_by.currentIndexChanged.connect(lambda _: self.overlay_metric_changed.emit(self.metric_key()))
        self.table_title = QLabel(TABLE_TITLE)
        self.speed = SpeedPanel()
        self.speed.node_activated.connect(self.node_activated)
        self.methods = MethodsPanel()
        self.methods.node_activated.connect(self.node_activated)
        corner = QWidget()
        corner_layout = QHBoxLayout(corner)
        corner_layout.setContentsMargins(0, 0, 0, 2)
        corner_layout.addWidget(QLabel("Colour graph by"))
        corner_layout.addWidget(self.colour_by)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._errors_tab(), "Per-layer error")
        self.tabs.addTab(self.speed, "Speed")
        self.tabs.addTab(self.methods, "Methods")
        self.tabs.setCornerWidget(corner, Qt.Corner.TopRightCorner)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tabs)
        self.show_run(None)

    def _errors_tab(self) -> QSplitter:
        """The float32 | int8 figures beside the per-layer table, inside the tab as the Speed tab has its
        summary: beside both tabs, they left the Speed tab's ten columns too little width. The notes on
        the run sit under the table's title, above the table, so that the figures keep their height and
        neither the title nor the notes is cut where the dock is narrow."""
        errors = QWidget()
        errors_layout = QVBoxLayout(errors)
        errors_layout.setContentsMargins(0, 2, 0, 0)
        errors_layout.setSpacing(2)
        errors_layout.addWidget(self.table_title)
        errors_layout.addWidget(self.notes)
        errors_layout.addWidget(self.table, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.summary)
        splitter.addWidget(errors)
        splitter.setStretchFactor(0, 0)  # two columns of figures need no more: a wider dock widens the table
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([self.summary.minimumWidth(), 1000])
        return splitter

    def metric_key(self) -> str:
        return str(self.colour_by.currentData())

    def set_metric(self, key: str) -> None:
        """Choose what colours the graph, as if picked in the box."""
        self.colour_by.setCurrentIndex(self.colour_by.findData(key))

    def show_speed(self) -> None:
        self.tabs.setCurrentWidget(self.speed)

    def show_methods(self) -> None:
        self.tabs.setCurrentWidget(self.methods)

    def show_run(self, run: StudioRun | None, before_run: str = NO_RUN) -> None:
        """The run's figures, or ``before_run`` when there is none yet."""
        unstored = unstored_weights(run) if run is not None else ""
        self._fill_summary(run, unstored)
        self.model.set_rows(run.layer_rows() if run is not None else [])
        self.proxy.sort(SQNR_COLUMN, Qt.SortOrder.AscendingOrder)
        self.table.horizontalHeader().setSortIndicator(SQNR_COLUMN, Qt.SortOrder.AscendingOrder)
        if run is None:
            self.notes.setText(before_run)
            self.notes.setToolTip("")
            self.table_title.setText(TABLE_TITLE)
            return
        result, errors = run.result, run.comparison.errors
        parts = [
            f"{result.recipe.method}, {result.recipe.granularity}, {result.recipe.activation_type} activations"
            + (" (symmetric)" if result.recipe.symmetric_activations else ""),
            f"calibrated on {fmt.count(result.calibration_samples, 'sample')}",
            f"compared on {fmt.count(errors.samples, 'sample')} of {run.evaluation_name}",
        ]
        tally = run.float_tally
        if tally.kept or tally.left:
            parts.append(float_note(tally))
        if result.unfused_int8:  # beside the activation type that causes it
            parts.insert(1, f"so {fmt.count(len(result.unfused_int8), 'layer')} run in float (hover for why)")
        if unstored:
            parts.append(UNSTORED_NOTE)
        self.notes.setText(" · ".join(parts))
        self.notes.setToolTip("\n".join(
            [f"{n.name} [{n.op_type}]: {n.reason}" for n in (*tally.kept, *tally.left)] + result.prepared.notes
        ))
        self.table_title.setText(f"<b>Per-layer error</b> — {len(errors.layers)} quantized activations, worst first")

    def show_timing(self, timing: Timing) -> None:
        """Latency and speed-up of the run's :func:`~q8studio.core.workflow.latest_timing`."""
        measured = PROFILED if timing.timed_by == "profile" else COMPARED
        self._fill_row(LATENCY_ROW, fmt.latency_pair(timing.float32_ms, timing.int8_ms), measured)
        self._fill_row(LATENCY_ROW + 1, ("1.00×", fmt.times(timing.speedup)), measured)

    def _fill_row(self, row: int, pair: tuple[str, str], tip: str = "") -> None:
        for column, text in enumerate(pair):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setToolTip(tip)
            self.summary.setItem(row, column, item)

    def _fill_summary(self, run: StudioRun | None, unstored: str) -> None:
        """The run's figures; ``unstored``: why its float32 file is small (see :func:`unstored_weights`)."""
        if run is None:
            self.summary.clearContents()
            return
        c = run.comparison
        first = next(iter(c.errors.outputs.values()), None)
        if isinstance(first, NotMeasured):
            sqnr = cosine = f"n/a ({first.reason})"
        else:
            sqnr = fmt.decibels(first.sqnr_db) if first else "—"
            cosine = f"{first.cosine:.6f}" if first else "—"
        cells = {
            "Top-1 accuracy": (fmt.percent(c.float32.top1), fmt.percent(c.int8.top1)),
            "Top-1 agreement": ("—", fmt.percent(c.errors.agreement)),
            "Output SQNR": ("—", sqnr),
            "Output cosine": ("—", cosine),
            "File size": (fmt.size(c.float32.file_size) + (UNSTORED_MARK if unstored else ""),
                          fmt.size(c.int8.file_size)),
        }
        for row, label in enumerate(SUMMARY_ROWS):
            if label in cells:
                self._fill_row(row, cells[label], unstored if label == "File size" else "")
        self.show_timing(latest_timing(c, None))  # until a profile times the models

    def select_node(self, name: str) -> None:
        """Highlight the node's row in both tables without emitting ``node_activated``."""
        self.speed.select_node(name)
        select_quietly(self.table, self.proxy, lambda row: row.node == name)

    def node_at_row(self, row: int) -> str:
        """The node of a row in the current (sorted) order."""
        return str(self.proxy.index(row, 0).data(NODE_ROLE))

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.node_activated.emit(str(current.data(NODE_ROLE)))

    def row_menu(self, index: QModelIndex) -> QMenu | None:
        """The menu of a layer's row; none for the model's input, which no layer computes."""
        if not index.isValid() or index.siblingAtColumn(OP_COLUMN).data() == INPUT_OP:
            return None
        node = str(index.data(NODE_ROLE))
        menu = QMenu(self)
        action = QAction(fmt.float_toggle_text(self.kept_in_float(node), node), menu)
        action.triggered.connect(lambda: self.keep_in_float_requested.emit(node))
        menu.addAction(action)
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        menu = self.row_menu(self.table.indexAt(pos))
        if menu is not None:
            menu.exec(self.table.viewport().mapToGlobal(pos))
