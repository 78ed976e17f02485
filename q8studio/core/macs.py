"""Multiply-accumulates of a model's nodes in one run, at the shapes the run's data give them.

A model's static shapes leave its batch, height and width or sequence length symbolic; counted as 1
they made a convolution on 16x16 images weigh one pixel's work. The profile runs real data, so the
shapes are known: ONNX's shape inference runs again with the inputs fixed to the data's shapes. A
node whose shapes stay unknown, or whose operator is not counted here, has unknown MACs (None), never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import onnx

from .model import Graph, LoadedModel, Node
from .skeleton import skeleton_of

Shape = tuple[int, ...]

COUNTED_OPS = frozenset({"Conv", "FusedConv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN"})
UNCOUNTED_OPS = frozenset({"Einsum", "Attention", "MultiHeadAttention", "FusedMatMul"})
"""Operators that multiply-accumulate in ways not counted here: their MACs are unknown, not 0."""
MAC_OPS = COUNTED_OPS | UNCOUNTED_OPS


def count_macs(model: LoadedModel, input_shapes: Mapping[str, Shape]) -> dict[str, int | None]:
    """Node -> its multiply-accumulates in a run whose inputs have ``input_shapes``, None when unknown,
    for each node of :data:`MAC_OPS`. Shape inference runs only when the static shapes leave one unknown."""
    nodes = [node for node in model.graph.nodes if node.op_type in MAC_OPS]
    shapes = static_shapes(model.graph)
    counts = {node.name: node_macs(node, shapes) for node in nodes}
    if any(counts[node.name] is None for node in nodes if node.op_type in COUNTED_OPS):
        shapes |= run_shapes(model.proto, input_shapes)
        counts = {node.name: node_macs(node, shapes) for node in nodes}
    return counts


def static_shapes(graph: Graph) -> dict[str, Shape]:
    """The tensors whose every dimension the model fixes."""
    shapes = {}
    for name, info in graph.tensors.items():
        if info.shape is not None and all(isinstance(d, int) and d >= 0 for d in info.shape):
            shapes[name] = tuple(d for d in info.shape if isinstance(d, int))
    return shapes


def run_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Shape]) -> dict[str, Shape]:
    """Tensor -> its shape when the inputs have ``input_shapes``, for the tensors shape inference sizes.

    Inference runs on the model's skeleton (no weight values) with the inputs' dimensions fixed and
    the symbolic shapes the model states cleared, so that none of them is kept over a concrete one.
    """
    skeleton = skeleton_of(model)
    del skeleton.graph.value_info[:]
    for value in skeleton.graph.output:
        if value.type.HasField("tensor_type") and value.name not in input_shapes:
            value.type.tensor_type.ClearField("shape")
    for value in [*skeleton.graph.input, *skeleton.graph.output]:  # an output may be an input passed through
        if value.type.HasField("tensor_type") and value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for size in input_shapes[value.name]:
                dims.add().dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=False, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError):
        return {}
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]:
        shape = _known_shape(value)
        if shape is not None:
            shapes[value.name] = shape
    return shapes


def _known_shape(value: onnx.ValueInfoProto) -> Shape | None:
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    dims = value.type.tensor_type.shape.dim
    if any(dim.WhichOneof("value") != "dim_value" for dim in dims):
        return None
    return tuple(dim.dim_value for dim in dims)


def node_macs(node: Node, shapes: Mapping[str, Shape]) -> int | None:
    """Multiply-accumulates of one node from fully known ``shapes``; None when a shape it needs is unknown
    or its operator is not counted. A ConvTranspose scatters every input value over its kernel, so it is
    counted from its input, not its output (strides make the two differ)."""
    def shape(position: int, of_output: bool = False) -> Shape | None:
        names = node.outputs if of_output else node.inputs
        return shapes.get(names[position]) if position < len(names) and names[position] else None

    op = node.op_type
    first = shape(0)
    if op in ("Conv", "FusedConv"):
        out, weight = shape(0, of_output=True), shape(1)
        return None if out is None or weight is None else math.prod(out) * math.prod(weight[1:])
    if op == "ConvTranspose":
        weight = shape(1)
        return None if first is None or weight is None else math.prod(first) * math.prod(weight[1:])
    if op in ("Gemm", "MatMul"):
        out = shape(0, of_output=True)
        if out is None or not first:
            return None
        trans_a = op == "Gemm" and bool(node.attributes.get("transA", 0))
        return math.prod(out) * (first[-2] if trans_a else first[-1])
    if op in ("LSTM", "GRU", "RNN"):  # each step and sequence: input weights W times x, recurrence R times h
        weights, recurrence = shape(1), shape(2)
        if first is None or len(first) != 3 or weights is None or recurrence is None:
            return None
        return first[0] * first[1] * (math.prod(weights) + math.prod(recurrence))
    return None
