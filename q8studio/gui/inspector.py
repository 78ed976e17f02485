"""The node inspector: what a node is, what flows in and out, what its weights look like, what int8 did."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..core.model import LoadedModel, Node
from ..core.evaluate import INPUT_OP, LayerError, NotMeasured
from ..core.tensorview import WeightSummary, activation_tensor_for, node_weights, weight_users
from ..core.workflow import StudioRun
from . import formatting as fmt


class Inspector(QWidget):
    """A two-column tree (property, value) grouped in sections; sections start expanded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Select a node in the graph or the table.")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)  # node names are escaped: "<b>" in a name is text
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Property", "Value"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 170)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.tree)

    def clear(self) -> None:
        self.tree.clear()
        self.title.setText("Select a node in the graph or the table.")

    def show_node(
        self, model: LoadedModel, name: str, run: StudioRun | None = None, weights: list[WeightSummary] | None = None
    ) -> None:
        """Everything known about a node; ``weights`` None means its statistics are still being computed."""
        node = model.graph.node_by_name(name)
        self.tree.clear()
        self.title.setText(f"<b>{escape(node.op_type)}</b> &nbsp; {escape(node.name)}")
        users = _layers_using(model, node)
        self._section("Node", [
            ("Op type", node.op_type + (f" ({node.domain})" if node.domain else "")),
            ("Kind", node.kind),
            *([("Weight of", users)] if users else []),
            ("Name", node.name),
            ("Namespace", "/".join(node.namespace) or "—"),
            ("Quantizable", _quantizable_text(model, node)),
        ])
        if node.attributes:
            self._section("Attributes", [(key, _attribute_text(value)) for key, value in node.attributes.items()])
        self._section("Inputs", [(name, _tensor_text(model, name)) for name in node.inputs if name])
        self._section("Outputs", [(name, _output_text(model, name)) for name in node.outputs])
        if weights is None and node_weights(model, node):
            self._section("Weights", [("Statistics", "computing…")])
        for summary in weights or []:
            self._weight_section(summary)
        if run is not None:
            self._quantization_section(model, node, run, users)
        self.tree.expandAll()

    def show_input(self, model: LoadedModel, name: str, run: StudioRun | None = None) -> None:
        """A model input, as the per-layer table lists it: what it is, which nodes read it and, after a run,
        how int8 quantizes it (its range and its float-vs-int8 error)."""
        self.tree.clear()
        self.title.setText(f"<b>{INPUT_OP}</b> &nbsp; {escape(name)}")
        readers = [model.graph.nodes[index] for index in model.graph.consumers.get(name, [])]
        self._section("Model input", [
            ("Name", name),
            ("Tensor", _tensor_text(model, name)),
            ("Read by", ", ".join(f"{node.op_type} {node.name}" for node in readers) or "—"),
        ])
        if run is not None:
            self._section("Quantization", _input_quantization_rows(run, name))
        self.tree.expandAll()

    def _weight_section(self, summary: WeightSummary) -> None:
        rows = [
            ("Shape", "[" + ", ".join(str(d) for d in summary.shape) + "]"),
            ("Min", fmt.number(summary.min)),
            ("Max", fmt.number(summary.max)),
            ("Mean", fmt.number(summary.mean)),
            ("Std", fmt.number(summary.std)),
        ]
        if summary.stored is not None:
            rows.insert(1, ("Stored as", fmt.stored(summary.stored)))
        if summary.nonfinite:
            rows.insert(1, ("NaN or infinite", f"{summary.nonfinite:,} values (the statistics leave them out)"))
        if summary.channel_axis is not None and summary.channel_min is not None:
            rows.append(("Channels", f"{summary.channel_min.size} (axis {summary.channel_axis})"))
            spread = summary.range_spread
            shown = "—" if spread is None else f"{fmt.number(spread, 3)}× (widest / narrowest channel)"
            rows.append(("Range spread", shown))
        self._section(f"Weight {summary.name}", rows)

    def _quantization_section(self, model: LoadedModel, node: Node, run: StudioRun, users: str) -> None:
        rows: list[tuple[str, str]] = []
        kept = run.result.float_node(node.name)
        if kept is not None:  # "kept" only when asked for: the quantizer leaves some nodes in float by itself
            rows.append(("Kept in float" if run.float_tally.is_kept(node.name) else "Left in float", kept.reason))
        tensor = activation_tensor_for(node.name, model, run.result.prepared.model, run.result.stats)
        measured = run.error_tensor(node, tensor)
        if measured is not None:
            rows.append(("Tensor", measured))
        if tensor is not None:
            stats = run.result.stats[tensor]
            if tensor != measured:  # a MaxPool's output is quantized with its input's range
                rows.append(("Range of", tensor))
            rows.append(("Observed range", fmt.value_range(stats.min, stats.max)))
            if tensor in run.result.ranges:
                rows.append((f"{run.result.recipe.method} range", fmt.value_range(*run.result.ranges[tensor])))
        if measured is not None:
            rows.extend(_error_rows(run, measured))
        if not rows:
            rows.append(("Int8", f"no activation: it makes a weight of {users}" if users else
                         "no quantized activation of its own (fused or shape-only)"))
        self._section("Quantization", rows)

    def _section(self, title: str, rows: list[tuple[str, str]]) -> None:
        section = QTreeWidgetItem(self.tree, [title])
        font = section.font(0)
        font.setBold(True)
        section.setFont(0, font)
        section.setFirstColumnSpanned(True)
        for key, value in rows:
            item = QTreeWidgetItem(section, [key, value])
            item.setToolTip(0, key)
            item.setToolTip(1, value)


def _input_quantization_rows(run: StudioRun, name: str) -> list[tuple[str, str]]:
    """How the run quantizes a model input: its calibrated range, the range its method kept, and its error."""
    stats = run.result.stats.get(name)
    if stats is None:
        return [("Int8", "not quantized: the model reads it as it is")]
    rows = [("Tensor", name), ("Observed range", fmt.value_range(stats.min, stats.max))]
    if name in run.result.ranges:
        rows.append((f"{run.result.recipe.method} range", fmt.value_range(*run.result.ranges[name])))
    return rows + _error_rows(run, name)


def _quantizable_text(model: LoadedModel, node: Node) -> str:
    """Whether int8 quantization can take the node; in an already-quantized model, none can."""
    if not node.quantizable:
        return "no"
    return "no: the model is already quantized" if model.is_quantized else "yes"


def _error_rows(run: StudioRun, tensor: str) -> list[tuple[str, str]]:
    """The tensor's float-vs-int8 error from the run's comparison: a layer's from the per-layer table,
    a model output's from the output errors (the Float vs int8 tab compares both alike)."""
    errors = run.comparison.errors
    error = next((row for row in errors.layers if row.tensor == tensor), errors.outputs.get(tensor))
    if error is None or isinstance(error, NotMeasured):  # class ids are no calibrated tensor
        return []
    max_error = error.max_abs_error if isinstance(error, LayerError) else error.max_abs
    return [  # the Float vs int8 tab shows a few samples: say which data these are of
        ("Errors over", f"{fmt.count(errors.samples, 'sample')} of {run.evaluation_name}"),
        ("SQNR", fmt.decibels(error.sqnr_db)),
        ("MSE", fmt.number(error.mse)),
        ("Cosine", fmt.number(error.cosine, 6)),
        ("Max |error|", fmt.number(max_error)),
    ]


def no_activation_reason(model: LoadedModel, node: Node, run: StudioRun) -> str:
    """Why a node shows no calibrated activation after ``run``, for the plots that would show it: the
    inspector's reason, not a generic one (a layer kept in float is not left to its neighbours)."""
    kept = run.result.float_node(node.name)
    if kept is not None:
        return f"{node.op_type} {node.name} computes in float32 ({kept.reason}): it has no int8 activation."
    users = _layers_using(model, node)
    if users:
        return f"{node.op_type} {node.name} makes a weight of {users}: see the Weights tab."
    return f"{node.op_type} {node.name} has no calibrated activation (int8 leaves it to its neighbours)."


def _layers_using(model: LoadedModel, node: Node) -> str:
    """The layers whose weight a Constant or ConstantOfShape makes, as "Conv conv1, Conv conv2"; else ""."""
    users = (user for name in node.outputs for user in weight_users(model, name))
    return ", ".join(dict.fromkeys(f"{user.op_type} {user.name}" for user in users))


def _tensor_text(model: LoadedModel, name: str) -> str:
    """Shape and type; a constant is tagged a weight when a layer uses it as one (not a shape, axes or a scale)."""
    info = model.graph.tensors.get(name)
    if info is None:
        return "?"
    known = info.shape is not None or info.dtype is not None
    text = f"{info.shape_text()} {info.dtype or '?'}" if known else "shape and type unknown"
    if not model.graph.is_constant(name):
        return text
    return text + ("  (weight)" if weight_users(model, name) else "  (constant)")


def _output_text(model: LoadedModel, name: str) -> str:
    """An optional output no node reads (a Dropout's mask) says so: its unknown shape is no defect."""
    graph = model.graph
    unused = name not in graph.consumers and name not in graph.outputs
    return _tensor_text(model, name) + ("  (unused)" if unused else "")


def _attribute_text(value: object) -> str:
    if isinstance(value, float):
        return fmt.number(value, 6)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_attribute_text(v) for v in value) + "]"
    return str(value)
