"""A model's ONNX operator-set version, and raising it with onnx's version converter (and, from before opset 7,
mending the one change of meaning the converter leaves: a PRelu's per-channel slope)."""

from __future__ import annotations

import re

import onnx

from .errors import Q8Error, first_line
from .renaming import fresh_name, value_names

OLDEST_RUNNABLE_OPSET = 7
"""ONNX Runtime runs models from opset 7: older exports (PyTorch's of 2018, opset 6) use versions of Gemm,
BatchNormalization, Add, Mul, PRelu and AveragePool that it has no kernel for."""

_CONVERTER_ASSERTION = re.compile(r"^\S+\.h:\d+: \w+: Assertion `.*?` failed: ")
"""The C++ source place and assertion onnx's converter puts before its reason."""


def onnx_opset(proto: onnx.ModelProto) -> int:
    """The version of the default (ai.onnx) operator set the model imports; 0 if none."""
    return next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), 0)


def converted(proto: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """``proto`` at opset ``version``, checked by onnx's checker; Q8Error with the converter's reason if it
    cannot be (for some operators at some versions the converter has no adapter)."""
    try:
        upgraded = onnx.version_converter.convert_version(proto, version)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # the converter raises RuntimeError/ValidationError/IndexError by op
        reason = _CONVERTER_ASSERTION.sub("", first_line(exc)).replace(" From Version $1", "")
        raise Q8Error(reason) from None
    return upgraded


def prelu_slopes_per_channel(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` (just upgraded from before opset 7) with each PRelu's one-dimensional slope of C values
    unsqueezed to [C, 1, ...]: before opset 7 such a slope applied along the channel axis, from opset 7
    it broadcasts like numpy, along the last axis, and onnx's converter leaves it as it is (ONNX Runtime then
    fails on the shapes, or where the last axis also has C values computes another function)."""
    graph = onnx.shape_inference.infer_shapes(proto).graph
    dims = {value.name: [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
            for value in [*graph.input, *graph.value_info, *graph.output] if value.type.tensor_type.HasField("shape")}
    dims.update({tensor.name: list(tensor.dims) for tensor in graph.initializer})
    taken = value_names(graph)
    upgraded = onnx.ModelProto()
    upgraded.CopyFrom(proto)
    nodes = []
    for node in upgraded.graph.node:
        if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        rank, slope = len(dims.get(node.input[0], [])), dims.get(node.input[1], [])
        if rank >= 3 and len(slope) == 1 and slope[0] != 1:
            name = fresh_name(f"{node.input[1]}_per_channel", taken)
            nodes.append(onnx.helper.make_node("Unsqueeze", [node.input[1]], [name], name=name,
                                               axes=list(range(1, rank - 1))))
            node.input[1] = name
        nodes.append(node)
    del upgraded.graph.node[:]
    upgraded.graph.node.extend(nodes)
    return upgraded

