"""One quantize-then-compare run, as the GUI performs it, and the per-layer rows it displays.

The GUI runs this in a worker thread: quantize with the recipe, then compare the source float
model with the int8 one on the evaluation data (the calibration data when there is none).
Both steps report to the same :class:`Progress`, so Cancel stops either.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .data import Dataset
from .errors import Q8Error
from .evaluate import Comparison, LayerError, compare_models, require_labels_fit
from .floatnodes import FloatTally, tally_float_nodes
from .model import LoadedModel, Node
from .profile import ProfileReport
from .progress import NO_PROGRESS, Progress
from .quantize import QuantizeResult, output_tensors, quantize_model
from .recipe import Recipe
from .runcounts import LATENCY_RUNS
from .tensorview import (
    NodeNumbers,
    activation_tensor_for,
    clipped_fraction,
    display_histogram,
    method_ranges,
    node_numbers,
    range_used,
)

METRICS: dict[str, tuple[str, bool]] = {
    "sqnr_db": ("SQNR (dB)", True),
    "cosine": ("cosine similarity", True),
    "mse": ("MSE", False),
}
"""Per-layer metrics that can colour the graph: key -> (title, whether a low value is bad)."""


@dataclass(frozen=True)
class LayerRow:
    """One row of the per-layer table: the error, the observed range and the range the method kept."""

    node: str
    op_type: str
    tensor: str
    sqnr_db: float
    mse: float
    cosine: float
    max_abs_error: float
    observed_min: float
    observed_max: float
    clip_min: float
    clip_max: float
    clipped: float


@dataclass
class StudioRun:
    """Everything one GUI run produced: the quantization, the int8 model and the comparison."""

    result: QuantizeResult
    int8: LoadedModel
    comparison: Comparison
    evaluation_data: str
    evaluation_name: str  # the evaluation file or folder's name, for one-line captions
    _rows: list[LayerRow] | None = field(default=None, init=False, repr=False)

    def layer_rows(self) -> list[LayerRow]:
        """The comparison's per-layer errors (worst first) joined with their calibration ranges."""
        if self._rows is None:  # the table, the graph colours and the inspector all ask for them
            self._rows = [self._row(layer) for layer in self.comparison.errors.layers]
        return self._rows

    @property
    def float_tally(self) -> FloatTally:
        """The int8 model's nodes kept in float on request and those the quantizer left in float: the one
        count of kept nodes the notes, the Speed tab and the notice of Keep slower layers in float show.
        Not cached: Keep slower layers in float relabels the nodes it chose after the run is made."""
        return tally_float_nodes(self.result.float_nodes, self.result.kept_float)

    def error_tensor(self, node: Node, calibrated: str | None) -> str | None:
        """The tensor whose float-vs-int8 error stands for ``node``: its own output when the comparison measured
        it (a MaxPool quantized with its input's range has an error of its own, though no calibration), else the
        ``calibrated`` tensor standing for it (a Conv's fused ReLU), as the graph colours and the table have it."""
        return own_measured_output(node, {row.tensor for row in self.layer_rows()}) or calibrated

    def _row(self, layer: LayerError) -> LayerRow:
        stats = self.result.stats.get(layer.tensor)
        clip = self.result.ranges.get(layer.tensor, (math.nan, math.nan))
        return LayerRow(
            node=layer.node, op_type=layer.op_type, tensor=layer.tensor,
            sqnr_db=layer.sqnr_db, mse=layer.mse, cosine=layer.cosine, max_abs_error=layer.max_abs_error,
            observed_min=stats.min if stats else math.nan,
            observed_max=stats.max if stats else math.nan,
            clip_min=clip[0], clip_max=clip[1],
            clipped=clipped_fraction(stats, *clip) if stats and layer.tensor in self.result.ranges else math.nan,
        )


@dataclass(frozen=True)
class Timing:
    """One timing of both models: median latency of a run of each, the speed-up, and what timed them."""

    float32_ms: float
    int8_ms: float
    speedup: float
    timed_by: str  # "profile" or "comparison"
    threads: int  # 0: ONNX Runtime's default

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def latest_timing(comparison: Comparison, profile: ProfileReport | None) -> Timing:
    """The timing a run shows: the speed profile's clean latency once it measured one (it runs after the
    comparison, and again on request), else the comparison's, so the summary never disagrees with the
    Speed tab and a report says what the window said."""
    if profile is not None and profile.latency_ms is not None:
        return Timing(*profile.latency_ms, profile.speedup, "profile", profile.threads)
    return Timing(comparison.float32.latency_ms, comparison.int8.latency_ms, comparison.speedup, "comparison",
                  comparison.threads)


def quantize_and_compare(
    model: LoadedModel,
    calibration: Dataset,
    evaluation: Dataset | None,
    recipe: Recipe,
    output: Path,
    *,
    latency_runs: int = LATENCY_RUNS,
    previous: QuantizeResult | None = None,
    progress: Progress = NO_PROGRESS,
) -> StudioRun:
    """Quantize ``model`` to ``output`` and compare it with the float model on the evaluation data.

    Histograms are always collected: the GUI draws them with every method's clipping range, and
    the next run can reuse them (``previous``, see :func:`~.quantize.quantize_model`).
    """
    data = comparison_data(calibration, evaluation, recipe)
    try:  # checked before quantizing, not after: a long run must not fail at its last step
        require_labels_fit(data, model)
    except Q8Error as exc:
        unchosen = "; choose evaluation data, or calibration data without them" if evaluation is None else ""
        raise Q8Error(f"{exc} The run compares on {'the evaluation' if evaluation else 'the calibration'} data"
                      f"{unchosen}.") from None
    result = quantize_model(model, calibration, recipe, output, histograms=True, previous=previous, progress=progress)
    comparison = compare_models(model, result.int8, data, latency_runs=latency_runs, progress=progress)
    return StudioRun(result, result.int8, comparison, data.source, data.name)


def comparison_data(calibration: Dataset, evaluation: Dataset | None, recipe: Recipe) -> Dataset:
    """The samples a run compares float32 and int8 on: the evaluation data, else the calibration samples
    ``recipe`` calibrates on."""
    return evaluation if evaluation is not None else calibration.limited(recipe.samples)


def input_numbers(result: QuantizeResult, name: str) -> NodeNumbers:
    """What the histograms show for model input ``name``, as :func:`~.tensorview.node_numbers` gives a node's:
    its calibration histogram and every method's range (an input has no weights). The per-layer table lists
    an input's error like a layer's, so selecting its row shows the input's numbers. ``tensor`` is None
    when the run did not calibrate the input (an integer image is not quantized)."""
    stats = result.stats.get(name)
    if stats is None:
        return NodeNumbers(name, [], None)
    recipe = result.recipe
    ranges = method_ranges(stats, activation_type=recipe.activation_type, symmetric=recipe.symmetric_activations,
                           percentile=recipe.percentile)
    used = range_used(name, recipe, result.ranges, output_tensors(result.prepared.model))
    return NodeNumbers(name, [], None, name, stats, display_histogram(stats), ranges, used)


def run_node_numbers(model: LoadedModel, name: str, result: QuantizeResult) -> NodeNumbers:
    """:func:`~.tensorview.node_numbers` of node ``name`` after ``result``'s run: with its calibration, every
    method's range, and the range the run actually used (a model output keeps its observed range)."""
    return node_numbers(model, name, stats=result.stats, prepared=result.prepared.model, recipe=result.recipe,
                        used_ranges=result.ranges, outputs=output_tensors(result.prepared.model))


def own_measured_output(node: Node, measured: Container[str]) -> str | None:
    """The first of ``node``'s outputs whose float-vs-int8 error was measured: it stands for the node before any
    calibrated tensor does, in the graph colours and the Node dock alike."""
    return next((name for name in node.outputs if name in measured), None)


def overlay_values(rows: list[LayerRow], metric: str, shown: LoadedModel, prepared: LoadedModel) -> dict[str, float]:
    """Node name -> the metric of the quantized activation that stands for it, to colour the graph.

    A node gets the row of its own output, or of the tensor :func:`activation_tensor_for` picks
    (a Conv fused with its ReLU gets the ReLU's error), so the colours match the histograms.
    """
    by_tensor = {row.tensor: getattr(row, metric) for row in rows}
    values: dict[str, float] = {}
    for node in shown.graph.nodes:
        tensor = own_measured_output(node, by_tensor) or activation_tensor_for(node.name, shown, prepared, by_tensor)
        if tensor is not None and math.isfinite(by_tensor[tensor]):
            values[node.name] = by_tensor[tensor]
    return values
