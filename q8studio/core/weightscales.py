"""Per-channel weight scales computed at once, for onnxruntime's quantizer to use as given.

Asked for per-channel weights, ``quantize_static`` computes each output channel's scale in a Python
loop: 60 ms of SqueezeNet's 135 ms write (3,944 channels), more on wider nets. Handed the scales
through its public ``TensorQuantOverrides``, it skips that loop and writes the same model: the scales
come from :func:`~.clipping.quant_params`, its arithmetic for symmetric int8 weights ([-127, 127]),
and the tests check the written model bit for bit against the quantizer's own on onnx's architectures.

Only the common case is handed over: a float32 weight of rank >= 2 feeding, as input 1 and alone, a
Conv, ConvTranspose, Gemm or MatMul. Anything else (a shared weight, a constant first input of a
MatMul, a normalisation's scale) is left to the quantizer, which decides it as before.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from .clipping import INT8_SYMMETRIC_WEIGHTS, quant_params, weight_channel_axis
from .model import LoadedModel

PER_CHANNEL_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def per_channel_weight_overrides(model: LoadedModel, exclude: Collection[str] = ()) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` entries (one dict per channel, the first naming the axis) with the
    scale and zero point of each weight described above, for nodes not in ``exclude``."""
    graph = model.graph
    overrides: dict[str, list[dict]] = {}
    for node in graph.nodes:
        if node.op_type not in PER_CHANNEL_OPS or node.name in exclude or len(node.inputs) < 2:
            continue
        name = node.inputs[1]
        if name not in graph.initializers or len(graph.consumers.get(name, ())) != 1:
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
