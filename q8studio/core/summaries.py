"""Large non-negative activations summarised inside ONNX Runtime instead of returned whole.

Returning an intermediate tensor is what makes calibration slower than inference: ONNX Runtime
computes convolutions in a blocked channel layout (NCHWc) and must convert every returned
activation back to NCHW, then numpy reads it twice more for its min and max. On a 224x224
SqueezeNet that was 11 MB a sample and a quarter of the calibration pass. For a 4-D activation
that cannot be negative (a Relu's output, or a pooling or Concat of such), two layout-aware
operators added to the graph give all that calibration needs at a fraction of the traffic:

- ``GlobalMaxPool`` gives each channel's maximum, hence the exact maximum of each sample;
- a ``MaxPool`` with a 1x1 kernel and stride ``step`` picks the values on a regular spatial grid
  (every channel, every ``step``-th row and column): the sample the histogram bins. Its minimum is
  the tensor's minimum whenever the grid holds a zero, which a Relu's output nearly always does;
  otherwise it is the smallest sampled value, above the true one. The int8 model is the same
  either way: an activation's quantization range always includes zero.

An odd ``step`` keeps the grid from following the period-2 patterns of stride-2 layers. A grid sees
the same positions in every sample, where the flat sample of a tensor returned whole
(:func:`.stats.sampling_stride`) moves from one sample to the next, so only the large tensors are
summarised, where the saving is, and only on grids fine enough to weigh the border fairly
(:data:`MIN_BUDGETS`, :data:`MIN_GRID_LINES`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import onnx
from onnx import helper

from .model import LoadedModel
from .renaming import fresh_name

NON_NEGATIVE_OPS = frozenset({"Relu"})
"""Operators whose output is never negative, whatever their input."""

SIGN_KEEPING_OPS = frozenset({"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool", "Concat", "Identity"})
"""Operators whose output is non-negative when all their inputs are."""

MIN_BUDGETS = 8
"""A tensor is summarised only when a sample of it holds at least this many budgets of values.
A smaller one costs little to return whole, and a fixed grid misses what sits at a few positions:
on a 224x224 SqueezeNet (benchmarks/histogram_sampling.py) the top values of a 32x27x27 Relu all
lay on its first row, and a grid of every 3rd row moved its percentile-99.99 range by 8%."""

MIN_GRID_LINES = 8
"""The grid keeps at least this many rows and columns. Its first row and column stand for ``step``
of the tensor's, where the tensor has one border row and column (which zero padding makes differ
from the rest): an excess weight of (step - 1) / size, which 8 lines keep below 1/7."""


@dataclass(frozen=True)
class Summary:
    """How one activation is summarised: the outputs holding its per-channel maxima (``maxima``)
    and its grid sample (``grid``), the grid's ``step``, and the values of one sample of it."""

    tensor: str
    maxima: str
    grid: str
    step: int
    values_per_sample: int
    grid_values_per_sample: int

    @property
    def stride(self) -> int:
        """How many of the tensor's values one grid value stands for (the histogram's weight)."""
        return max(1, round(self.values_per_sample / self.grid_values_per_sample))


def non_negative_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors that cannot hold a negative value: outputs of :data:`NON_NEGATIVE_OPS`, and of
    :data:`SIGN_KEEPING_OPS` fed only such tensors (graph order: producers come first), and of a
    ``Clip`` whose lower bound is a constant >= 0 (the Relu6 of MobileNets)."""
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    found: set[str] = set()
    for node in model.graph.node:
        data_inputs = [name for name in node.input if name]
        if (
            node.op_type in NON_NEGATIVE_OPS
            or (node.op_type in SIGN_KEEPING_OPS and data_inputs and all(name in found for name in data_inputs))
            or (node.op_type == "Clip" and _clip_floor(node, constants) >= 0.0)
        ):
            found.update(node.output[:1])
    return found


def _clip_floor(node: onnx.NodeProto, constants: dict[str, onnx.TensorProto]) -> float:
    """A Clip's constant lower bound; -inf when it has none or it is computed at run time."""
    for attribute in node.attribute:  # opset < 11
        if attribute.name == "min":
            return attribute.f
    if len(node.input) > 1 and node.input[1] in constants:
        values = onnx.numpy_helper.to_array(constants[node.input[1]]).reshape(-1)
        if values.size == 1:
            return float(values[0])
    return float("-inf")


def plan_summaries(model: LoadedModel, names: Iterable[str], budget: int) -> dict[str, Summary]:
    """The tensors among ``names`` to summarise, when at most ``budget`` values of each sample are
    binned (0: every value, so none is summarised): float32, 4-D with static channels and spatial
    size, non-negative, and large enough for a fair grid (:func:`_grid_step`)."""
    if budget <= 0:
        return {}
    graph = model.graph
    taken = {node.name for node in graph.nodes} | set(graph.tensors) | set(graph.producer) | set(graph.consumers)
    plans = {}
    for name in non_negative_tensors(model.proto).intersection(names):
        info = graph.tensors.get(name)
        shape = info.shape if info is not None and info.dtype == "float32" else None
        if shape is None or len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
            continue
        channels, height, width = shape[1:]
        step = _grid_step(channels, height, width, budget)
        if step is None:
            continue
        grid_values = channels * _ceil_div(height, step) * _ceil_div(width, step)
        plans[name] = Summary(
            name, fresh_name(f"{name}_channel_max", taken), fresh_name(f"{name}_grid", taken), step,
            channels * height * width, grid_values,
        )
    return plans


def _grid_step(channels: int, height: int, width: int, budget: int) -> int | None:
    """The smallest odd step >= 3 whose grid keeps at most ``budget`` values of a sample; None when
    the sample holds fewer than :data:`MIN_BUDGETS` budgets or no such grid keeps
    :data:`MIN_GRID_LINES` rows and columns."""
    if channels * height * width < MIN_BUDGETS * budget:
        return None
    step = 3
    while _ceil_div(height, step) >= MIN_GRID_LINES and _ceil_div(width, step) >= MIN_GRID_LINES:
        if channels * _ceil_div(height, step) * _ceil_div(width, step) <= budget:
            return step
        step += 2
    return None


def add_summary_nodes(model: onnx.ModelProto, summaries: Iterable[Summary]) -> None:
    """Append to ``model``'s graph the operators that compute each summary's outputs."""
    for summary in summaries:
        model.graph.node.extend([
            helper.make_node("GlobalMaxPool", [summary.tensor], [summary.maxima], name=summary.maxima),
            helper.make_node("MaxPool", [summary.tensor], [summary.grid], name=summary.grid,
                             kernel_shape=[1, 1], strides=[summary.step, summary.step]),
        ])


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
