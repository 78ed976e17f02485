"""Exposing a tensor of a model with int8 activations without changing what ONNX Runtime runs.

ONNX Runtime's x86 kernels take 8-bit activations as uint8. Before it fuses a model whose activations
are int8, it rewrites each QuantizeLinear -> DequantizeLinear pair of int8 to uint8 (codes and zero
point + 128: the same real values), but only where the QuantizeLinear's output goes to that one
DequantizeLinear. Exposing the output, as Explain does to read a layer's codes, makes it a model output
too: the pair stays int8 and the layers beside it run otherwise than in the model as it stands. On
``tests/builders.softmax_net`` with int8 activations, exposing the Softmax's codes ran the Softmax and the
Conv after it in float where the model fuses both; on ``activation_net``, exposing its codes fused int8
kernels (QLinearSigmoid, QLinearMul) for layers the model as it stands runs in float.

So a session exposing tensors first converts, in the model itself, the pairs ONNX Runtime converts when
it runs the model as it stands; ONNX Runtime is asked which (:func:`converted_quantizers`), as it decides
after rewrites of its own and only on CPUs whose kernels want uint8. The exposed codes then come back as
uint8, and :class:`~.session.BatchRunner` returns them in the model's int8 (:func:`as_int8`).

The same rule says which layers a pair left int8 keeps in float (:func:`layers_beside_shared_int8`), for
quantize's note and Explain's.
"""

from __future__ import annotations

import copy
from collections.abc import Collection

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .model import Graph, Node
from .optypes import QDQ_OPS

CODE_KERNELS = ("MaxPool",)
"""Layers whose plain kernel runs on 8-bit codes as they are."""

SHIFT = 128
"""What turns an int8 code or zero point into the uint8 one of the same real value."""

CONVERTED_ZERO_POINT = "qdq_s8_to_u8_zp_conversion"
"""How ONNX Runtime names the uint8 zero points it writes for the pairs it converts."""

PAIR_FUSER = "QDQSelectorActionTransformer"
"""ONNX Runtime's pass fusing Quantize/Dequantize into QLinear kernels: off while it is asked which pairs
it converts, so that their QuantizeLinear nodes are still there, by name, to say so."""


def int8_quantizers(graph: onnx.GraphProto) -> list[str]:
    """The named QuantizeLinear nodes writing int8 codes with one zero point: those ONNX Runtime may convert.
    Converted pairs are told by their QuantizeLinear's name, which every loaded model's nodes have
    (:func:`~.model.load_model` names them)."""
    zero_points = {tensor.name: tensor for tensor in graph.initializer}
    return [
        node.name for node in graph.node
        if node.op_type == "QuantizeLinear" and node.name and len(node.input) > 2
        and (zero_point := zero_points.get(node.input[2])) is not None
        and zero_point.data_type == TensorProto.INT8 and not zero_point.dims
    ]


def converted_quantizers(optimized: onnx.GraphProto) -> frozenset[str]:
    """The QuantizeLinear nodes of ONNX Runtime's optimized graph whose pair it converted to uint8."""
    return frozenset(
        node.name for node in optimized.node
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2].startswith(CONVERTED_ZERO_POINT)
    )


def with_uint8_pairs(model: onnx.ModelProto, quantizers: Collection[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose QuantizeLinear nodes named in ``quantizers``, and the DequantizeLinear
    nodes reading their codes, use uint8: each int8 zero point Z becomes a uint8 initializer Z + 128."""
    converted = copy.deepcopy(model)
    graph = converted.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    taken = {name for node in graph.node for name in (*node.input, *node.output)} | set(initializers)
    uint8_names: dict[str, str] = {}

    def uint8_zero_point(name: str) -> str:
        if name not in uint8_names:
            fresh = f"{name}_uint8"
            while fresh in taken:
                fresh += "_"
            taken.add(fresh)
            value = numpy_helper.to_array(initializers[name]).astype(np.int16) + SHIFT
            graph.initializer.append(numpy_helper.from_array(value.astype(np.uint8), fresh))
            uint8_names[name] = fresh
        return uint8_names[name]

    codes = set()
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.name in quantizers:
            node.input[2] = uint8_zero_point(node.input[2])
            codes.add(node.output[0])
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in codes:
            node.input[2] = uint8_zero_point(node.input[2])
    for info in graph.value_info:
        if info.name in codes:
            info.type.tensor_type.elem_type = TensorProto.UINT8
    return converted


def as_int8(codes: np.ndarray) -> np.ndarray:
    """uint8 codes of a converted pair as the model's int8 codes of the same real values."""
    return (codes.astype(np.int16) - SHIFT).astype(np.int8)


def shared_int8_codes(graph: Graph, node: Node) -> tuple[str, list[str]] | None:
    """An int8 tensor that ``node`` reads or writes through a Quantize/Dequantize pair and that several layers
    read, with their names: a pair ONNX Runtime on x86 leaves int8, which keeps ``node`` from fusing."""
    for code in _codes_beside(graph, node):
        if graph.tensors.get(code) is None or graph.tensors[code].dtype != "int8":
            continue
        readers = [graph.nodes[i] for i in graph.consumers.get(code, [])]
        layers = [graph.nodes[i].name for r in readers if r.op_type == "DequantizeLinear"
                  for i in graph.consumers.get(r.outputs[0], [])]
        layers += [r.name for r in readers if r.op_type != "DequantizeLinear"]
        if len(layers) > 1:
            return code, layers
    return None


def _codes_beside(graph: Graph, node: Node) -> list[str]:
    """The codes of ``node``'s activations: what the DequantizeLinear nodes before it read, what the
    QuantizeLinear nodes after it write."""
    before = [graph.nodes[graph.producer[name]] for name in node.inputs if name in graph.producer]
    after = [graph.nodes[i] for name in node.outputs for i in graph.consumers.get(name, [])]
    return ([n.inputs[0] for n in before if n.op_type == "DequantizeLinear" and n.inputs[0] in graph.producer]
            + [n.outputs[0] for n in after if n.op_type == "QuantizeLinear"])


def layers_beside_shared_int8(graph: Graph) -> list[str]:
    """The quantized layers of ``graph`` that read or write int8 codes going to several layers: those ONNX Runtime
    on x86 runs in float. A MaxPool is not one: its plain kernel runs on the codes as they are."""
    return [node.name for node in graph.nodes
            if node.op_type not in QDQ_OPS and node.op_type not in CODE_KERNELS and shared_int8_codes(graph, node)]


def unfused_int8_note(graph: Graph, node: Node) -> str | None:
    """Why ONNX Runtime ran ``node`` of a model with int8 activations in float, when a shared int8 pair says why."""
    shared = shared_int8_codes(graph, node)
    if shared is None:
        return None
    code, layers = shared
    return (f"ONNX Runtime's x86 kernels take 8-bit activations as uint8: it turns an int8 Quantize/Dequantize pair "
            f"into uint8 only where its codes go to one layer, and a layer beside a pair left int8 runs in float. "
            f"Here the codes {code} go to {' and '.join([', '.join(layers[:-1]), layers[-1]])}. With uint8 "
            "activations (the default) such a layer fuses.")
