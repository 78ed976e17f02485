"""Numbers the inspector and histogram panels show for one node or tensor.

The GUI computes nothing itself; what it plots about a single weight or activation comes from
here: weight statistics and per-channel ranges (an already-quantized model's dequantized int8
weights too), a display-sized view of a calibration histogram, every clipping method's range for
one tensor and how much of the data each cuts, and a preprocessed image as displayable pixels.
The float and int8 values of one activation side by side come from :mod:`.probe`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from .clipping import INT8, METHODS, UINT8, activation_range, method_for, weight_channel_axis
from .errors import Q8Error
from .model import Graph, LoadedModel, Node
from .optypes import QDQ_OPS, SHARES_INPUT_SCALE
from .recipe import Recipe
from .stats import TensorStats
from .weights import StoredInt, weight_dequantizer, weight_values

DISPLAY_BINS = 200
"""Bins of a histogram on screen: enough to show shape, few enough to draw instantly."""


@dataclass(frozen=True)
class WeightSummary:
    """Statistics of one weight tensor, and its per-output-channel range when it has channels.

    For an integer weight (``stored``) the statistics are of its dequantized values: those are
    what the model computes with. They are of the finite values; ``nonfinite`` counts the NaN and
    infinite ones, which a float model may carry unnoticed and int8 cannot represent.
    """

    name: str
    shape: tuple[int, ...]
    min: float
    max: float
    mean: float
    std: float
    channel_axis: int | None
    channel_min: np.ndarray | None
    channel_max: np.ndarray | None
    stored: StoredInt | None = None
    nonfinite: int = 0

    @property
    def range_spread(self) -> float | None:
        """Widest channel range over the narrowest: a large spread is why per-channel quantization helps.
        Channels all equally constant have no spread (1); a constant one beside others, an infinite one."""
        if self.channel_min is None or self.channel_max is None:
            return None
        widths = self.channel_max - self.channel_min
        widths = widths[np.isfinite(widths)]
        if widths.size == 0:
            return None
        narrowest, widest = float(widths.min()), float(widths.max())
        if widest == 0.0:
            return 1.0
        return math.inf if narrowest == 0.0 else widest / narrowest


def node_weights(model: LoadedModel, node: Node) -> list[str]:
    """The node's weights, the main one (highest rank) first.

    Its float constants (initializers or constant nodes' outputs) and, in an already-quantized model,
    the integer constants that a DequantizeLinear turns into its weights (for that DequantizeLinear,
    its own input). The scale and zero point of a Quantize/DequantizeLinear say how a tensor is
    stored; they are no weights. A Constant or ConstantOfShape that makes a layer's weight has that
    weight as its own: the value is what the node holds.
    """
    made = [name for name in node.outputs if weight_users(model, name)]
    names = made + _input_weights(model, node)
    return sorted(dict.fromkeys(names), key=lambda name: -len(model.graph.tensors[name].shape or ()))


def weight_users(model: LoadedModel, name: str) -> list[Node]:
    """The layers that have tensor ``name`` as a weight (for integers, the layer after their DequantizeLinear):
    what the node that makes a weight is for."""
    graph = model.graph
    users = [graph.nodes[index] for index in graph.consumers.get(name, [])]
    return [_weight_user(model, user) for user in users if name in _input_weights(model, user)]


def _input_weights(model: LoadedModel, node: Node) -> list[str]:
    graph = model.graph
    names = []
    for name in node.inputs[:1] if node.op_type in QDQ_OPS else node.inputs:
        producer = graph.producer.get(name)
        if producer is not None and graph.nodes[producer].op_type == "DequantizeLinear":
            name = graph.nodes[producer].inputs[0]
        if graph.is_constant(name) and (graph.tensors[name].is_float or weight_dequantizer(model, name) is not None):
            names.append(name)
    return names


def weight_summary(model: LoadedModel, name: str, node: Node) -> WeightSummary:
    """Min/max/mean/std of a weight, plus per-channel min/max along the axis int8 would use."""
    values, stored = weight_values(model, name)
    w = values.astype(np.float64)
    finite = np.isfinite(w)
    axis = _channel_axis(_weight_layer(model, name, node), w.ndim) if w.ndim >= 2 else None
    channel_min = channel_max = None
    if axis is not None:  # fmin/fmax skip the NaN that stand for non-finite values; a channel of them stays NaN
        others = tuple(d for d in range(w.ndim) if d != axis)
        masked = np.where(finite, w, np.nan)
        channel_min, channel_max = np.fmin.reduce(masked, axis=others), np.fmax.reduce(masked, axis=others)
    kept = w[finite]
    return WeightSummary(
        name=name,
        shape=tuple(w.shape),
        min=float(kept.min()) if kept.size else math.nan,
        max=float(kept.max()) if kept.size else math.nan,
        mean=float(kept.mean()) if kept.size else math.nan,
        std=float(kept.std()) if kept.size else math.nan,
        channel_axis=axis,
        channel_min=channel_min,
        channel_max=channel_max,
        stored=stored,
        nonfinite=int(w.size - kept.size),
    )


def _weight_layer(model: LoadedModel, name: str, node: Node) -> Node:
    """The node whose output channels weight ``name`` of ``node`` has: for the Constant that makes
    it, the first layer using it; for a DequantizeLinear, its consumer (a Conv); else the node."""
    if name in node.outputs:
        users = weight_users(model, name)
        return users[0] if users else node
    return _weight_user(model, node)


def _weight_user(model: LoadedModel, node: Node) -> Node:
    """A DequantizeLinear's consumer (a Conv), else the node itself."""
    consumers = model.graph.consumers.get(node.outputs[0], []) if node.op_type == "DequantizeLinear" else []
    return model.graph.nodes[consumers[0]] if consumers else node


def _channel_axis(node: Node, rank: int) -> int | None:
    try:
        return weight_channel_axis(node.op_type, node.attributes, rank) % rank
    except Q8Error:  # not a per-channel op (e.g. a BatchNorm scale): no channel view
        return None


def value_histogram(values: np.ndarray, bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of finite values; a constant tensor gets one bin around its value."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64), np.array([-0.5, 0.5])
    lo, hi = float(flat.min()), float(flat.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.histogram(flat, bins=bins, range=(lo, hi))


def weight_histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A weight's histogram with a bin count that suits its size (a 32-value bias gets ~11 bins)."""
    size = int(np.asarray(values).size)
    return value_histogram(values, bins=int(np.clip(2.0 * math.sqrt(size), 8, 100)))


def display_histogram(stats: TensorStats, bins: int = DISPLAY_BINS) -> tuple[np.ndarray, np.ndarray]:
    """The calibration histogram cut to its occupied bins and merged into about ``bins`` bins.

    Whole groups of adjacent bins are summed, so every count is exact and the edges are edges of
    the full histogram; nothing is re-estimated.
    """
    used = np.flatnonzero(stats.hist)
    if used.size == 0:
        return np.zeros(1, dtype=np.int64), np.array([-0.5, 0.5])
    first, last = int(used[0]), int(used[-1]) + 1
    group = max(1, math.ceil((last - first) / bins))
    stop = first + group * math.ceil((last - first) / group)
    hist = np.zeros(stop - first, dtype=np.int64)
    available = min(stop, stats.hist.size) - first
    hist[:available] = stats.hist[first:first + available]
    counts = hist.reshape(-1, group).sum(axis=1)
    edges = (np.arange(first, stop + 1, group, dtype=np.float64) - stats.hist.size // 2) * stats.bin_width
    return counts, edges


@dataclass(frozen=True)
class MethodRange:
    """One clipping method's range for a tensor and the share of calibration values it clips."""

    method: str
    rmin: float
    rmax: float
    clipped: float


def method_ranges(
    stats: TensorStats, *, activation_type: str = "uint8", symmetric: bool = False, percentile: float = 99.99
) -> list[MethodRange]:
    """Every method's range for one calibrated tensor, so a plot can show what each one cuts."""
    qtype = UINT8 if activation_type == "uint8" else INT8
    ranges = []
    for method in METHODS:
        lo, hi = activation_range(stats, method, qtype=qtype, symmetric=symmetric, percentile=percentile)
        ranges.append(MethodRange(method, lo, hi, clipped_fraction(stats, lo, hi)))
    return ranges


OUTPUT_KEEPS_RANGE = "a model output keeps its observed range whatever the method"
"""Why a model output's range is minmax whatever the recipe's method (:func:`~.quantize.activation_ranges`)."""


@dataclass(frozen=True)
class RangeUsed:
    """The range a run gave one tensor, the method it is the range of, and why when that is not the recipe's."""

    method: str
    rmin: float
    rmax: float
    reason: str = ""


def range_used(
    tensor: str, recipe: Recipe, ranges: Mapping[str, tuple[float, float]], outputs: Collection[str] = ()
) -> RangeUsed | None:
    """The range the run quantized ``tensor`` with (``ranges``: the run's, :attr:`~.quantize.QuantizeResult.ranges`)
    and the method it comes from: the recipe's, except for the model's ``outputs``
    (:func:`~.quantize.output_tensors`), which keep their observed range, minmax, whatever the method. None for a
    tensor the run gave no range."""
    if tensor not in ranges:
        return None
    rmin, rmax = ranges[tensor]
    method = method_for(tensor, recipe.method, outputs)
    return RangeUsed(method, rmin, rmax, OUTPUT_KEEPS_RANGE if method != recipe.method else "")


def clipped_fraction(stats: TensorStats, rmin: float, rmax: float) -> float:
    """Share of calibration values outside ``[rmin, rmax]``.

    Bins wholly outside count fully; a bin the limit cuts counts in proportion to the part of it
    beyond the limit, where a bin's occupied part ends at the observed min/max (so minmax clips 0).
    """
    if stats.count == 0:
        return 0.0
    edges = stats.edges
    left, right = np.maximum(edges[:-1], stats.min), np.minimum(edges[1:], stats.max)
    width = np.maximum(right - left, 0.0)
    above = np.clip(right - max(rmax, stats.min), 0.0, width)
    below = np.clip(min(rmin, stats.max) - left, 0.0, width)
    share = np.divide(above + below, width, out=(left > rmax).astype(np.float64), where=width > 0)
    return float(np.sum(stats.hist * np.minimum(share, 1.0))) / float(stats.hist.sum())


INFERENCE_IDENTITY = frozenset({"Dropout"})
"""Ops that copy their input when the model runs (pre-processing removes them): their input is their output."""
FUSED_KINDS = frozenset({"activation", "normalisation"})
"""Nodes int8 fuses into the layer before them: a Conv's int8 output is the one after its ReLU."""


def activation_tensor_for(
    node_name: str, source: LoadedModel, prepared: LoadedModel | None, available: Collection[str]
) -> str | None:
    """The calibrated tensor that stands for a node's output, or None.

    The node's own output when it was calibrated; otherwise, when int8 fuses the node with what
    follows (Conv → BatchNorm → ReLU, MatMul → bias Add → ReLU), the output of that fused chain;
    otherwise, for ops that reuse their input's scale (MaxPool, Reshape), copy it (Dropout) or output
    no float at all (ArgMax: the scores it reads), their calibrated input, or that of the op before
    them when it reuses its input's scale too (MaxPool → Reshape). Any other node's input is not its
    output, so it gets None. The source graph is searched first, then the quantized (BatchNorm-folded)
    one, which may hold the node too.
    """
    graphs = [source.graph] + ([prepared.graph] if prepared is not None else [])
    for graph in graphs:
        node = graph.by_name.get(node_name)
        if node is None:
            continue
        found = _fused_output(graph, node, available)
        if found is None:
            found = _calibrated_input(graph, node, available)
        if found is not None:
            return found
    return None


def _calibrated_input(graph: Graph, node: Node, available: Collection[str], steps: int = 3) -> str | None:
    """The calibrated input standing for ``node``'s output, through a chain of such ops (the input of
    a MaxPool before a Reshape: int8 gives both the MaxPool's input scale, calibrating neither output)."""
    for _ in range(steps):
        if not _input_stands_for_output(graph, node):
            return None
        found = next((name for name in node.inputs if name in available), None)
        producer = graph.producer.get(node.inputs[0]) if node.inputs else None
        if found is not None or producer is None:
            return found
        node = graph.nodes[producer]
    return None


def _fused_output(graph: Graph, node: Node, available: Collection[str], steps: int = 3) -> str | None:
    for _ in range(steps):
        hit = next((name for name in node.outputs if name in available), None)
        if hit is not None:
            return hit
        consumers = graph.consumers.get(node.outputs[0], []) if len(node.outputs) == 1 else []
        if len(consumers) != 1 or not _fuses_into(graph, node, graph.nodes[consumers[0]]):
            return None
        node = graph.nodes[consumers[0]]
    return None


def _input_stands_for_output(graph: Graph, node: Node) -> bool:
    if node.op_type in SHARES_INPUT_SCALE or node.op_type in INFERENCE_IDENTITY:
        return True
    outputs = [graph.tensors.get(name) for name in node.outputs]
    return all(info is not None and info.dtype is not None and not info.is_float for info in outputs)


def _fuses_into(graph: Graph, node: Node, consumer: Node) -> bool:
    """Whether int8 computes ``consumer`` as part of ``node``'s layer: an activation or normalisation
    after it, or the bias Add of a MatMul (pre-processing fuses the two into a Gemm)."""
    if consumer.kind in FUSED_KINDS:
        return True
    return (node.op_type == "MatMul" and consumer.op_type == "Add" and len(consumer.inputs) == 2
            and any(name in graph.initializers for name in consumer.inputs))


def display_image(sample: np.ndarray, layout: str) -> np.ndarray:
    """A preprocessed sample (C,H,W or H,W,C) stretched to uint8 pixels, (H,W) or (H,W,3).

    Normalised inputs have arbitrary ranges; min-max stretching shows what the model sees.
    """
    pixels = np.asarray(sample, dtype=np.float64)
    if pixels.ndim == 4:
        pixels = pixels[0]
    if pixels.ndim != 3:
        raise Q8Error(f"A sample of shape {list(pixels.shape)} is not an image.")
    if layout == "NCHW":
        pixels = pixels.transpose(1, 2, 0)
    if pixels.shape[2] not in (1, 3):
        raise Q8Error(f"An image needs 1 or 3 channels, not {pixels.shape[2]}.")
    lo, hi = float(pixels.min()), float(pixels.max())
    scaled = (pixels - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(pixels)
    image = np.ascontiguousarray(np.rint(scaled).astype(np.uint8))
    return image[:, :, 0] if image.shape[2] == 1 else image


@dataclass(frozen=True)
class NodeNumbers:
    """Everything the inspector and histogram panels show about one node, computed in one go.

    Computing it takes from milliseconds to seconds (entropy and MSE searches, big weights), so
    the GUI runs it off its own thread and only draws the result.
    """

    node: str
    weights: list[WeightSummary]
    weight_histogram: tuple[np.ndarray, np.ndarray] | None
    tensor: str | None = None
    stats: TensorStats | None = None
    activation_histogram: tuple[np.ndarray, np.ndarray] | None = None
    ranges: list[MethodRange] = field(default_factory=list)
    used: RangeUsed | None = None
    """The range the run quantized :attr:`tensor` with, given the run's ranges (:func:`range_used`)."""


def node_numbers(
    model: LoadedModel,
    node_name: str,
    *,
    stats: dict[str, TensorStats] | None = None,
    prepared: LoadedModel | None = None,
    recipe: Recipe | None = None,
    used_ranges: Mapping[str, tuple[float, float]] | None = None,
    outputs: Collection[str] = (),
) -> NodeNumbers:
    """Weight statistics and histogram, and (after a calibration) the activation histogram and ranges;
    with the run's ``used_ranges`` and model ``outputs``, the range the run used (:func:`range_used`)."""
    node = model.graph.node_by_name(node_name)
    names = node_weights(model, node)
    summaries = [weight_summary(model, name, node) for name in names]
    histogram = weight_histogram(weight_values(model, names[0])[0]) if names else None
    if stats is None:
        return NodeNumbers(node_name, summaries, histogram)
    tensor = activation_tensor_for(node_name, model, prepared, stats)
    if tensor is None:
        return NodeNumbers(node_name, summaries, histogram)
    recipe = recipe or Recipe()
    ranges = method_ranges(stats[tensor], activation_type=recipe.activation_type,
                           symmetric=recipe.symmetric_activations, percentile=recipe.percentile)
    used = range_used(tensor, recipe, used_ranges, outputs) if used_ranges is not None else None
    return NodeNumbers(node_name, summaries, histogram, tensor, stats[tensor], display_histogram(stats[tensor]), ranges,
                       used)
