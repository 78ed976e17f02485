"""The Methods tab: every clipping method's int8 model against float32, from one calibration.

A row per method; the best (accuracy first, then output SQNR) is marked. Selecting a row shows that
method's worst layer in the graph and the histograms, which draw every method's clipping range on it;
"Use" (or a double click) makes the row's method the one the next run quantizes with.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from ..core.methods import MethodComparison, MethodScore
from . import formatting as fmt
from .banners import GOOD_BACKGROUND, banner, banner_style
from .graph_items import faded
from .job_progress import JobProgress
from .overlays import fixed_scale
from .row_table import NODE_ROLE, RowTableModel, select_quietly, sorted_table

COLUMNS: list[tuple[str, str]] = [
    ("Method", "method"),
    ("int8 top-1", "int8_top1"),
    ("vs float32", "top1_change"),
    ("Agreement", "agreement"),
    ("Output SQNR (dB)", "output_sqnr_db"),
    ("Worst layer", "node"),
    ("Its SQNR (dB)", "worst_sqnr_db"),
]
TOOLTIPS = {
    "int8_top1": "Top-1 accuracy of this method's int8 model on the labelled samples",
    "top1_change": "int8 top-1 minus float32 top-1, in percentage points",
    "agreement": "Share of samples where the int8 model's top class is the float32 model's",
    "output_sqnr_db": "Signal-to-quantization-noise ratio of the model's output: higher is closer to float32",
    "node": "The layer this method quantizes worst (lowest SQNR): select the row to see it in the graph",
    "worst_sqnr_db": "SQNR of the worst layer's output",
}
NUMBER_KEYS = {key for _, key in COLUMNS} - {"method", "node"}
BEST_MARK = " ★ best"
INVITATION = ("Run ▸ Compare clipping methods (Ctrl+M) quantizes the model with each clipping method, from one "
              "calibration, and compares each int8 model with float32: which method keeps this model closest.")
_SQNR_SCALE = fixed_scale("sqnr_db")


class MethodTableModel(RowTableModel[MethodScore]):
    """One row per method tried; ``best`` is marked, changes against float32 need ``float_top1``."""

    columns = COLUMNS
    header_tips = TOOLTIPS

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.best = ""
        self.float_top1: float | None = None

    def show(self, comparison: MethodComparison | None) -> None:
        self.best = comparison.best.method if comparison is not None else ""
        self.float_top1 = comparison.float_top1 if comparison is not None else None
        self.set_rows(comparison.scores if comparison is not None else [])

    def cell_text(self, row: MethodScore, key: str) -> str:
        if key == "method":
            return row.method + (BEST_MARK if row.method == self.best else "")
        if key == "int8_top1":
            return fmt.percent(row.int8_top1)
        if key == "top1_change":
            change = self._change(row)
            return "—" if change is None else f"{100 * change:+.2f} pts"
        if key == "agreement":
            return fmt.percent(row.agreement)
        if key == "output_sqnr_db":
            return "n/a" if row.output_sqnr_db is None else f"{row.output_sqnr_db:.2f}"
        if key == "node":
            return row.worst_layer.node if row.worst_layer is not None else "—"
        worst = row.worst_layer
        return "—" if worst is None else f"{worst.sqnr_db:.2f}"

    def cell_value(self, row: MethodScore, key: str) -> object:
        values: dict[str, object] = {
            "method": row.method,
            "int8_top1": row.int8_top1,
            "top1_change": self._change(row),
            "agreement": row.agreement,
            "output_sqnr_db": row.output_sqnr_db,
            "node": row.worst_layer.node if row.worst_layer is not None else "",
            "worst_sqnr_db": row.worst_layer.sqnr_db if row.worst_layer is not None else None,
        }
        value = values[key]
        return float("-inf") if value is None else value

    def node_of(self, row: MethodScore) -> str:
        return row.worst_layer.node if row.worst_layer is not None else ""

    def row_tip(self, row: MethodScore) -> str:
        worst = row.worst_layer
        layer = f"; worst layer {worst.node} ({worst.op_type}) at {worst.sqnr_db:.2f} dB" if worst is not None else ""
        return f"{row.method}: SQNR of output {row.output}{layer}. Double-click to quantize with {row.method}."

    def is_number(self, key: str) -> bool:
        return key in NUMBER_KEYS

    def background(self, row: MethodScore, key: str) -> object:
        if key == "method" and row.method == self.best:
            return QColor(GOOD_BACKGROUND)
        if key in ("output_sqnr_db", "worst_sqnr_db"):
            value = row.output_sqnr_db if key == "output_sqnr_db" else (
                row.worst_layer.sqnr_db if row.worst_layer is not None else None)
            return faded(_SQNR_SCALE.colour(value)) if value is not None else None
        return None

    def _change(self, row: MethodScore) -> float | None:
        if row.int8_top1 is None or self.float_top1 is None:
            return None
        return row.int8_top1 - self.float_top1


class MethodsPanel(QWidget):
    """Shows a :class:`~q8studio.core.methods.MethodComparison`; asks for one, or to use a method."""

    compare_requested = Signal()
    cancel_requested = Signal()
    method_chosen = Signal(str)
    node_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.verdict = banner()
        self.details = banner()  # unstyled: the settings and data the comparison used
        self.compare_button = QPushButton("Compare methods")
        self.compare_button.setToolTip("Run ▸ Compare clipping methods (Ctrl+M)")
        self.compare_button.clicked.connect(self.compare_requested)
        self.use_button = QPushButton("Use method")
        self.use_button.clicked.connect(self._use_selected)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.job_progress = JobProgress()
        top = QHBoxLayout()
        top.addWidget(self.verdict, 1)
        top.addWidget(self.compare_button)
        top.addWidget(self.use_button)
        top.addWidget(self.cancel_button)

        self.model = MethodTableModel(self)
        self.table, self.proxy = sorted_table(self.model, self)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        self.table.doubleClicked.connect(lambda index: self.method_chosen.emit(self._method_at(index)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 0)
        layout.setSpacing(2)  # one-line rows above the table: its five rows fit a 768-pixel-high screen
        layout.addLayout(top)
        layout.addWidget(self.details)
        layout.addWidget(self.job_progress)
        layout.addWidget(self.table, 1)
        self.comparison: MethodComparison | None = None
        self._state = (False, False)
        self.show_comparison(None, INVITATION)

    def show_comparison(self, comparison: MethodComparison | None, message: str = "", compared_on: str = "",
                        good: bool | None = None) -> None:
        """``comparison``'s table and verdict, or ``message`` saying why there is none (``good`` False: it
        failed); ``compared_on``: the data it scored, as "360 samples of test.npz"."""
        self.comparison = comparison
        self.model.show(comparison)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # in the order tried
        if comparison is None:
            self.verdict.setText(message)
            self.verdict.setStyleSheet(banner_style(good))
            self.details.clear()
            self._update_buttons()
            return
        best = comparison.best
        self.verdict.setText(_verdict(comparison, best))
        self.verdict.setStyleSheet(banner_style(None))
        recipe = comparison.recipe
        symmetric = ", symmetric" if recipe.symmetric_activations else ""
        self.details.setText(
            f"{recipe.granularity} weights, {recipe.activation_type} activations{symmetric}; calibrated once, "
            f"compared on {compared_on or fmt.count(comparison.samples, 'sample')}. Chosen on these samples: "
            "judge it on others too.")
        self.select_method(best.method)

    def select_method(self, method: str) -> None:
        select_quietly(self.table, self.proxy, lambda score: score.method == method)
        self._update_buttons()

    def selected_method(self) -> str:
        index = self.table.currentIndex()
        return self._method_at(index) if index.isValid() else ""

    def set_busy(self, busy: bool, can_start: bool) -> None:
        """While the comparison runs only Cancel works; ``can_start``: a model is open and nothing else runs."""
        self.job_progress.set_running(busy)
        self._state = (busy, can_start)
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy, can_start = self._state
        method = self.selected_method()
        self.cancel_button.setEnabled(busy)
        self.compare_button.setEnabled(can_start and not busy)
        self.use_button.setEnabled(bool(method))
        self.use_button.setText(f"Use {method}" if method else "Use method")
        self.use_button.setToolTip(f"Quantize with {method} at the next run (Ctrl+R)" if method else
                                   "Select a method's row to quantize with it at the next run")

    def _method_at(self, index: QModelIndex) -> str:
        return self.model.rows[self.proxy.mapToSource(index).row()].method

    def _use_selected(self) -> None:
        method = self.selected_method()
        if method:
            self.method_chosen.emit(method)

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_buttons()
        node = str(current.data(NODE_ROLE)) if current.isValid() else ""
        if node:
            self.node_activated.emit(node)


def _verdict(comparison: MethodComparison, best: MethodScore) -> str:
    """One line: the best method and what it keeps, against float32 when there are labels."""
    if best.int8_top1 is not None and comparison.float_top1 is not None:
        kept = f"int8 top-1 {fmt.percent(best.int8_top1)} (float32 {fmt.percent(comparison.float_top1)})"
    else:
        kept = f"top-1 agreement {fmt.percent(best.agreement)}"
    sqnr = f", output SQNR {fmt.decibels(best.output_sqnr_db)}" if best.output_sqnr_db is not None else ""
    decided = "int8 top-1" if best.int8_top1 is not None else "agreement"
    return (f"Best here: <b>{best.method}</b>, {kept}{sqnr} "
            f"<span style='color: #555'>(highest {decided}, then output SQNR)</span>")
