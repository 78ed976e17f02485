"""Make the layers kept in float compute in float when ONNX Runtime runs the int8 model.

ONNX Runtime computes in integers any node it finds between DequantizeLinear and QuantizeLinear:
its QDQ fusions turn DQ -> Add -> Q into QLinearAdd and DQ -> MaxPool -> Q into an int8 MaxPool,
and its WeightBiasQuantization pass (1.21 and later) even quantizes, per tensor, the float weights of
a Conv, ConvTranspose or Gemm sitting there. A layer kept in float between int8 neighbours sits
exactly there: the neighbours need the Q and DQ nodes around it. So the quantizer's output alone
keeps nothing in float. Each kept layer here reads its dequantized inputs through the same
arithmetic written out, Cast then Sub zero point then Mul scale: the very values DequantizeLinear
gives, and no DequantizeLinear for a fusion to start from. Their names carry
:data:`WRITTEN_OUT`, so profiles count them as the Dequantize work they are.

Operators that only move or select values (MaxPool, Reshape, Transpose, ...) give in int8 exactly
their float result quantized, and ONNX Runtime moves the QuantizeLinear past them to run them on
integers anyway: those are left as they are, since rewriting would only add work.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator

import onnx
from onnx import helper, numpy_helper

from .model import Graph, Node
from .renaming import fresh_name

DEQUANTIZE = "DequantizeLinear"
KEPT_IN_FLOAT_KEY = "q8studio.kept_in_float"
WRITTEN_OUT = "/dequantize_in_float/"
"""In the name of every node (and of the kernel ONNX Runtime runs it as) of a written-out DequantizeLinear."""
SAME_VALUES_IN_INT8 = frozenset({
    "MaxPool", "GlobalMaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity",
    "Slice", "Split", "Gather", "DepthToSpace", "SpaceToDepth",
})


def keep_in_float(model: onnx.ModelProto, kept: Collection[str]) -> None:
    """Make ``model``'s ``kept`` nodes compute in float (see :func:`dequantize_explicitly`) and list
    them in its metadata: a profile of the file alone then tells them from float islands."""
    dequantize_explicitly(model, kept)
    recorded = [entry for entry in model.metadata_props if entry.key != KEPT_IN_FLOAT_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(recorded)
    model.metadata_props.add(key=KEPT_IN_FLOAT_KEY, value=json.dumps(sorted(kept)))


def recorded_kept_in_float(model: onnx.ModelProto) -> tuple[str, ...]:
    """The nodes :func:`keep_in_float` listed in the model's metadata (none for a model it did not write)."""
    for entry in model.metadata_props:
        if entry.key == KEPT_IN_FLOAT_KEY:
            try:
                names = json.loads(entry.value)
            except ValueError:
                return ()
            return tuple(name for name in names if isinstance(name, str)) if isinstance(names, list) else ()
    return ()


def dequantize_explicitly(model: onnx.ModelProto, kept: Collection[str]) -> int:
    """Rewrite ``model`` in place so that the nodes named in ``kept`` read no DequantizeLinear output;
    return how many dequantized tensors got the written-out arithmetic.

    Only activations are rewritten: a weight a kept node reads is float already (the quantizer
    left it alone). A DequantizeLinear that int8 layers still read stays for them.
    """
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    names = _NameSource(model)
    explicit: dict[str, str] = {}  # dequantized tensor -> the same values computed in the open
    added: dict[str, list[onnx.NodeProto]] = {}  # a DequantizeLinear's output -> the nodes replacing it
    for node in graph.node:
        if node.name not in kept or node.op_type in SAME_VALUES_IN_INT8:
            continue
        for position, tensor in enumerate(node.input):
            dq = producers.get(tensor)
            if dq is None or dq.op_type != DEQUANTIZE or not _is_activation_dq(dq, initializers):
                continue
            if tensor not in explicit:
                nodes, explicit[tensor] = _written_out(dq, initializers, names, graph)
                added[tensor] = nodes
            node.input[position] = explicit[tensor]
    if not added:
        return 0
    _splice(graph, added)
    return len(added)


def is_written_out_dequantize(name: str) -> bool:
    """Whether a node or kernel is part of a DequantizeLinear written out by :func:`dequantize_explicitly`."""
    return WRITTEN_OUT in name


def written_out_result(graph: Graph, first: Node) -> str:
    """The tensor a written-out DequantizeLinear starting at node ``first`` ends in."""
    current = first
    while True:
        readers = [graph.nodes[i] for i in graph.consumers.get(current.outputs[0], [])]
        following = [r for r in readers if is_written_out_dequantize(r.name)]
        if not following:
            return current.outputs[0]
        current = following[0]


def _is_activation_dq(dq: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> bool:
    """A per-tensor DequantizeLinear of a computed tensor (not of a weight), with constant parameters."""
    scale = initializers.get(dq.input[1])
    zero_point = dq.input[2] if len(dq.input) > 2 else ""
    return (
        dq.input[0] not in initializers
        and scale is not None
        and numpy_helper.to_array(scale).size == 1
        and (not zero_point or zero_point in initializers)
    )


def _written_out(
    dq: onnx.NodeProto, initializers: dict[str, onnx.TensorProto], names: _NameSource, graph: onnx.GraphProto
) -> tuple[list[onnx.NodeProto], str]:
    """Nodes computing ``dq``'s output as (float(x) - zero_point) * scale, and the tensor they write."""
    quantized, scale = dq.input[0], dq.input[1]
    float_type = initializers[scale].data_type
    stem = dq.output[0]
    as_float = names.tensor(f"{stem}_as_float")
    stem_name = f"{dq.name}{WRITTEN_OUT}"
    nodes = [helper.make_node("Cast", [quantized], [as_float], names.node(f"{stem_name}Cast"), to=float_type)]
    shifted = as_float
    zero_point = initializers.get(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
    if zero_point is not None and numpy_helper.to_array(zero_point).any():
        value = numpy_helper.to_array(zero_point).astype(helper.tensor_dtype_to_np_dtype(float_type))
        float_zero_point = names.tensor(f"{dq.input[2]}_as_float")
        graph.initializer.append(numpy_helper.from_array(value, float_zero_point))
        shifted = names.tensor(f"{stem}_shifted")
        nodes.append(helper.make_node("Sub", [as_float, float_zero_point], [shifted], names.node(f"{stem_name}Sub")))
    output = names.tensor(f"{stem}_in_float")
    nodes.append(helper.make_node("Mul", [shifted, scale], [output], names.node(f"{stem_name}Mul")))
    return nodes, output


def _splice(graph: onnx.GraphProto, added: dict[str, list[onnx.NodeProto]]) -> None:
    """Put each group of new nodes right after its DequantizeLinear (whose inputs are ready there, so
    the order stays topological) and drop a DequantizeLinear nothing reads any more."""
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for nodes in added.values():
        read.update(name for node in nodes for name in node.input)
    order: list[onnx.NodeProto] = []
    for node in graph.node:
        replacing = added.get(node.output[0]) if node.op_type == DEQUANTIZE else None
        if replacing is None or node.output[0] in read:
            order.append(_copy(node))
        order.extend(replacing or ())
    graph.ClearField("node")
    graph.node.extend(order)


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copied = onnx.NodeProto()
    copied.CopyFrom(node)
    return copied


class _NameSource:
    """Fresh node and tensor names: a made-up name must never take one the model already uses."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self._nodes = {node.name for node in graph.node}
        self._tensors = set(_tensor_names(graph))

    def node(self, wanted: str) -> str:
        return fresh_name(wanted, self._nodes)

    def tensor(self, wanted: str) -> str:
        return fresh_name(wanted, self._tensors)


def _tensor_names(graph: onnx.GraphProto) -> Iterator[str]:
    yield from (t.name for t in graph.initializer)
    yield from (v.name for v in (*graph.input, *graph.output, *graph.value_info))
    for node in graph.node:
        yield from node.input
        yield from node.output
