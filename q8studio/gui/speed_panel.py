"""The Speed tab: where int8 ran, what each layer cost in float32 and in int8, and whether int8 pays.

It only displays a :class:`~q8studio.core.profile.ProfileReport` (profiling runs both models and
belongs in a worker): a sortable table of layers, slowest in int8 first, the verdict in plain
words, a summary (latency, glue, integer share, where float32 enters and leaves int8), and the
buttons that profile again or keep the layers int8 made slower in float.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import (
    QModelIndex,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.floatnodes import FloatTally
from ..core.profile import Boundary, LayerTiming, ProfileReport, slower_in_int8
from . import formatting as fmt
from .banners import banner, banner_style
from .graph_items import ENTER_BADGE, LEAVE_BADGE, faded
from .job_progress import JobProgress
from .overlays import fixed_scale
from .row_table import NODE_ROLE, RowTableModel, select_quietly, sorted_table


COLUMNS: list[tuple[str, str]] = [
    ("Layer", "node"),
    ("Op", "op_type"),
    ("Speed-up", "speedup"),
    ("µs float32", "float_total_us"),
    ("µs int8", "int8_us"),
    ("+ glue µs", "int8_glue_us"),
    ("int8 computes in", "integer"),
    ("float32 kernel", "float_kernels"),
    ("int8 kernel", "int8_kernels"),
    ("MACs", "macs"),
]
SPEEDUP_COLUMN = 2
MAX_ISLANDS_LISTED = 3  # more names would push the rest of the summary out of sight
MAX_BOUNDARIES_LISTED = 2  # the model's input and output; more are counted, for the same reason
SUMMARY_CHARS = 56  # the summary's width: its longest line, the median latency, whole
MAX_NAME_CHARS = 32  # a boundary's tensor name longer than this is cut in the middle: the summary has few lines
KEPT_FLOAT = "float, kept"
"""How the “int8 computes in” column shows a layer holding a node kept in float on request, apart from one
the quantizer left in float (a float island)."""
NOTHING_KEPT = FloatTally((), ())
NUMBER_COLUMNS = {"speedup", "float_total_us", "int8_us", "int8_glue_us", "macs"}
TOOLTIPS = {
    "float_total_us": "Mean time per run of the float32 kernels of this layer, layout kernels included",
    "int8_us": "Mean time per run of the int8 model's kernels of this layer",
    "int8_glue_us": "This layer's share of the int8 model's Quantize/Dequantize and layout kernels",
    "speedup": "float32 time / int8 time, glue included: below 1× int8 made the layer slower",
    "integer": "Whether the int8 model computes this layer with integer kernels or float ones "
               "(“float, kept”: it holds a node kept in float on request; “float”: the quantizer left it so)",
    "macs": "Multiply-accumulates of the layer in the profiled run, at the shapes of its data (Conv, ConvTranspose, "
            "Gemm, MatMul, LSTM/GRU/RNN); ? where they are unknown (an operator not counted, or shapes not known)",
}
_SPEED_SCALE = fixed_scale("speedup")


class SpeedTableModel(RowTableModel[LayerTiming]):
    """One row per profiled layer; sorts on the numbers, shows them formatted."""

    columns = COLUMNS
    header_tips = TOOLTIPS
    name_keys = frozenset({"node", "op_type", "float_kernels", "int8_kernels"})

    def cell_text(self, row: LayerTiming, key: str) -> str:
        return _cell_text(row, key)

    def cell_value(self, row: LayerTiming, key: str) -> object:
        return _cell_value(row, key)

    def row_tip(self, row: LayerTiming) -> str:
        """The nodes and kernels whole: a narrow table elides them."""
        kernels = [f"{model} kernel: {_cell_text(row, key)}" for model, key in
                   (("float32", "float_kernels"), ("int8", "int8_kernels"))]
        unknown = [f"MACs unknown for: {', '.join(row.macs_unknown)}"] if not row.macs_known else []
        return "\n".join([*row.members, f"Op: {row.op_type}", *kernels, *unknown])

    def is_number(self, key: str) -> bool:
        return key in NUMBER_COLUMNS

    def background(self, row: LayerTiming, key: str) -> object:
        if key == "speedup" and row.int8_kernels:
            return faded(_SPEED_SCALE.colour(row.speedup))
        return None


def _cell_value(layer: LayerTiming, key: str) -> object:
    value = getattr(layer, key)
    if isinstance(value, tuple):
        return " + ".join(value)
    if key == "integer":
        return int(value) if layer.int8_kernels else -1
    if key == "macs" and not layer.macs_known:
        return -1  # apart from every count, 0 included: sorted below the layers that compute nothing
    return value


def _cell_text(layer: LayerTiming, key: str) -> str:
    value = getattr(layer, key)
    if isinstance(value, tuple):
        return " + ".join(value) or "—"
    if key == "integer":
        if not layer.int8_kernels:
            return "—"
        return "integer" if value else KEPT_FLOAT if layer.kept_float else "float"
    if key == "speedup":
        return fmt.times(value)
    if key == "macs":
        return f"{value:,}" if layer.macs_known else "?"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def summary_html(report: ProfileReport, tally: FloatTally = NOTHING_KEPT) -> str:
    """Latency, glue, integer share, the float32 boundaries and the float layers (``tally``: the run's float
    nodes), one item a line, in few words: it shares a short tab with the table (the banner above says how
    int8 compares with float32)."""
    lines = []
    if report.latency_ms:
        float_time, int8_time = fmt.latency_pair(*report.latency_ms)
        lines.append(f"Median latency: float32 <b>{float_time}</b>, int8 <b>{int8_time}</b>")
    else:
        float_time, int8_time = fmt.latency_pair(report.float32.run_us / 1000.0, report.int8.run_us / 1000.0)
        lines.append(f"Profiled run: float32 {float_time}, int8 {int8_time}")
    lines.append(f"Slower in int8: {len(slower_in_int8(report))} of {len(report.layers)} layers")
    lines.append(f"Glue per run: Q/DQ {report.int8.qdq_us:.1f} µs, layout {report.int8.layout_us:.1f} µs")
    lines.append(f"Integer kernels: {escape(report.mac_share_text())}")  # of those counted, when some are unknown
    constants = sum(boundary.of_constant for boundary in report.boundaries)
    lines.extend(_boundary_lines([b for b in report.boundaries if not b.of_constant]))
    if constants:
        lines.append(f"{constants} weights/biases are dequantized to float32 on every run")
    return "<br>".join(lines + float_layer_lines(report, tally))


def _boundary_lines(boundaries: list[Boundary]) -> list[str]:
    """Where float32 enters and leaves int8, a short line each (the graph's badges mark the layers);
    past :data:`MAX_BOUNDARIES_LISTED`, as counts (a few layers kept in float add two each)."""
    if len(boundaries) > MAX_BOUNDARIES_LISTED:
        entering = sum(boundary.enters_int8 for boundary in boundaries)
        return [f"float32 → int8 at {entering} tensors, int8 → float32 at {len(boundaries) - entering} "
                f"({ENTER_BADGE} and {LEAVE_BADGE} badges in the graph)"]
    return [f"{_direction(boundary)} at <b>{escape(_elided(boundary.tensor))}</b> ({boundary.at})"
            for boundary in boundaries]


def boundary_details(report: ProfileReport) -> str:
    """Every float32/int8 boundary with its whole tensor name and the layers it serves, a line each:
    the summary's tooltip, since the summary shortens long names and leaves the layers to the graph."""
    return "\n".join(f"{_direction(b)} at {b.tensor} ({b.at}) {'→' if b.enters_int8 else '←'} "
                     f"{', '.join(b.layers) or '—'}" for b in report.boundaries if not b.of_constant)


def _direction(boundary: Boundary) -> str:
    return "float32 → int8" if boundary.enters_int8 else "int8 → float32"


def _elided(name: str) -> str:
    """``name`` cut in the middle to :data:`MAX_NAME_CHARS`: exported tensor names run to 60 characters
    and more, and each would take two or three of the summary's few lines."""
    if len(name) <= MAX_NAME_CHARS:
        return name
    head = (MAX_NAME_CHARS - 1) // 2
    return f"{name[:head]}…{name[len(name) - (MAX_NAME_CHARS - 1 - head):]}"


def float_layer_lines(report: ProfileReport, tally: FloatTally = NOTHING_KEPT) -> list[str]:
    """The layers the int8 model computes in float, in the two kinds of ``tally`` (the run's float nodes): those
    kept in float on request, counted in nodes as every view counts them, and those the quantizer left in
    float, float islands among integer layers. When no layer computes in int8 and none was kept, the line
    says only that: the banner says the rest."""
    left = _listed([layer.node for layer in report.left_in_float], "float")
    if not tally.kept:
        if report.computes_in_int8:
            return [f"Float islands: {left or 'none'}"]
        return ["Kept in float: none; ONNX Runtime ran every layer with float kernels"]
    names = tally.kept_names
    if len(names) <= MAX_ISLANDS_LISTED:
        kept = f"Kept in float: {', '.join(escape(name) for name in names)}"
    else:
        held, total = len(report.kept_in_float), len(report.layers)
        layers = f"all {total} layers" if held == total else fmt.count(held, "layer")
        kept = f"Kept in float: {fmt.count(len(names), 'node')} ({layers})"
    if not left:  # one line: the summary shares a short tab with the table
        return [f"{kept}; no float islands" if report.computes_in_int8 else kept]
    return [kept, f"{'Float islands' if report.computes_in_int8 else 'Left in float'}: {left}"]


def _listed(names: list[str], shown_as: str) -> str:
    if len(names) <= MAX_ISLANDS_LISTED:
        return ", ".join(escape(name) for name in names)
    return f"{len(names)} layers (“{shown_as}”)"


class SpeedPanel(QWidget):
    """The speed profile of the last run; asks for a new profile or for the slower layers kept in float."""

    node_activated = Signal(str)
    profile_requested = Signal()
    keep_float_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.verdict = banner()
        self.notice = banner()
        self.summary = QTextBrowser()
        self.summary.setFrameShape(QFrame.Shape.NoFrame)
        self.summary.setStyleSheet("background: transparent;")
        self.profile_button = QPushButton("Profile again")
        self.profile_button.setToolTip("Run ▸ Profile int8 vs float (Ctrl+P): time every layer of both models")
        self.profile_button.clicked.connect(self.profile_requested)
        self.keep_button = QPushButton("Keep slower layers in float")
        self.keep_button.clicked.connect(self.keep_float_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.job_progress = JobProgress()
        top = QHBoxLayout()  # the verdict and the buttons share one row: the table below gets the height
        top.addWidget(self.verdict, 1)
        top.addWidget(self.profile_button)
        top.addWidget(self.keep_button)
        top.addWidget(self.cancel_button)
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 4, 0)
        column.addWidget(self.summary, 1)
        column.addWidget(self.job_progress)

        self.model = SpeedTableModel(self)
        self.table, self.proxy = sorted_table(self.model, self)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 0)  # a wider tab widens the table: the summary's lines are short
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([self.fontMetrics().averageCharWidth() * SUMMARY_CHARS, 760])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.notice)
        layout.addWidget(splitter, 1)
        self.report: ProfileReport | None = None
        self._state = (False, False)
        self.show_report(None)
        self.show_notice("")

    def show_report(self, report: ProfileReport | None, message: str = "", tally: FloatTally = NOTHING_KEPT) -> None:
        """The profile of the current run, or ``message`` saying why there is none yet; ``tally``: the run's
        float nodes, which tell the layers kept in float on request from those the quantizer left in float."""
        self.report = report
        self.model.set_rows(report.layers if report is not None else [])
        self.proxy.sort(SPEEDUP_COLUMN, Qt.SortOrder.AscendingOrder)
        self.table.horizontalHeader().setSortIndicator(SPEEDUP_COLUMN, Qt.SortOrder.AscendingOrder)
        self.set_busy(*self._state)
        if report is None:
            self.verdict.setText(message)
            self.verdict.setToolTip("")
            self.verdict.setStyleSheet(banner_style(None))
            self.verdict.setVisible(bool(message))
            self.summary.clear()
            self.summary.setToolTip("")
            return
        self.verdict.setText(f"{report.headline(typographic=True)}.")  # the summary below has the rest
        self.verdict.setToolTip(report.verdict(typographic=True))
        self.verdict.setStyleSheet(banner_style(report.pays if report.computes_in_int8 else None))
        self.verdict.show()
        self.summary.setHtml(summary_html(report, tally))
        self.summary.setToolTip(boundary_details(report))

    def show_notice(self, text: str, good: bool | None = None, more: str = "") -> None:
        """A result worth keeping on screen, e.g. what keeping the slower layers in float achieved;
        ``more`` goes in its tooltip, so that the notice takes one line and the table keeps its rows."""
        self.notice.setStyleSheet(banner_style(good))
        self.notice.setText(text)
        self.notice.setToolTip(more)
        self.notice.setVisible(bool(text))

    def set_busy(self, busy: bool, can_start: bool) -> None:
        """While a speed job runs only Cancel works; ``can_start``: there is a run and nothing else runs."""
        self.job_progress.set_running(busy)
        self._state = (busy, can_start)
        self.cancel_button.setEnabled(busy)
        self.profile_button.setEnabled(can_start and not busy)
        has_slower = self.report is not None and bool(slower_in_int8(self.report))
        self.keep_button.setEnabled(can_start and not busy and has_slower)
        self.keep_button.setToolTip(
            "Re-quantize with the layers int8 made slower kept in float, then re-measure" if has_slower or
            self.report is None else "No layer is slower in int8: there is nothing to keep in float")


    def select_node(self, name: str) -> None:
        """Highlight the row of the layer that holds ``name`` without emitting ``node_activated``."""
        select_quietly(self.table, self.proxy, lambda layer: name in layer.members)

    def node_at_row(self, row: int) -> str:
        return str(self.proxy.index(row, 0).data(NODE_ROLE))

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.node_activated.emit(str(current.data(NODE_ROLE)))
