"""Per-channel weight scales computed at once, for onnxruntime's quantizer to use as given.

Asked for per-channel weights, ``quantize_static`` computes each output channel's scale in a Python
loop: 60 ms of SqueezeNet's 135 ms write (3,944 channels), more on wider nets. Handed the scales
through its public ``TensorQuantOverrides``, it skips that loop and writes the same model: the scales
come from :func:`~.clipping.quant_params`, its arithmetic for symmetric int8 weights ([-127, 127]),
and the tests check the written model bit for bit against the quantizer's own on onnx's architectures.

Only the common case is handed over: a float32 weight of rank >= 2 feeding, as input 1 and alone, a
Conv, ConvTranspose, Gemm or MatMul. Anything else (a shared weight, a constant first input of a
MatMul, a normalisation's scale) is left to the quantizer, which decides it as before.

A grouped ConvTranspose's weight is handed over per tensor instead (:func:`per_tensor_weights`).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from .clipping import INT8_SYMMETRIC_WEIGHTS, quant_params, weight_channel_axis
from .model import LoadedModel, Node

PER_CHANNEL_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def per_channel_weight_overrides(model: LoadedModel, exclude: Collection[str] = ()) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` entries (one dict per channel, the first naming the axis; one dict
    without an axis for a weight of :func:`per_tensor_weights`) with the scale and zero point of each
    weight described above, for nodes not in ``exclude``."""
    graph = model.graph
    overrides = {name: [_per_tensor(model.weight(name))] for name in per_tensor_weights(model, exclude)}
    for node in graph.nodes:
        if node.op_type not in PER_CHANNEL_OPS or node.name in exclude or len(node.inputs) < 2:
            continue
        name = node.inputs[1]
        if name not in graph.initializers or name in overrides or len(graph.consumers.get(name, ())) != 1:
            continue
        weight = model.weight(name)
        if weight.dtype != np.float32 or weight.ndim < 2 or weight.size == 0:
            continue
        axis = weight_channel_axis(node.op_type, node.attributes, weight.ndim)
        rows = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)
        scales, zero_points = quant_params(rows.min(axis=1), rows.max(axis=1), INT8_SYMMETRIC_WEIGHTS, symmetric=True)
        overrides[name] = [
            {"scale": scale, "zero_point": np.int8(zero_point), **({"axis": axis} if channel == 0 else {})}
            for channel, (scale, zero_point) in enumerate(zip(scales, zero_points))
        ]
    return overrides


def per_tensor_weights(model: LoadedModel, exclude: Collection[str] = ()) -> dict[str, Node]:
    """The constant weights of grouped ConvTranspose nodes not in ``exclude``, with their node: no
    axis of such a weight holds one slice per output channel ([C_in, C_out/group, kH, kW]).
    onnxruntime takes axis 1 anyway, so a bias, one value per output channel, gets a scale per
    C_out/group and its quantizer fails ("operands could not be broadcast"); per tensor it works."""
    graph = model.graph
    return {
        node.inputs[1]: node
        for node in graph.nodes
        if node.op_type == "ConvTranspose" and int(node.attributes.get("group", 1)) > 1  # type: ignore[call-overload]
        and node.name not in exclude and len(node.inputs) > 1 and node.inputs[1] in graph.initializers
    }


def _per_tensor(weight: np.ndarray) -> dict:
    """The ``TensorQuantOverrides`` entry of a weight quantized per tensor (no axis), symmetric int8."""
    scale, zero_point = quant_params(weight.min(), weight.max(), INT8_SYMMETRIC_WEIGHTS, symmetric=True)
    return {"scale": scale, "zero_point": np.int8(zero_point)}
