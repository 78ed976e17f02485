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

from collections import Counter
from collections.abc import Collection

import numpy as np
import onnx
from onnx import numpy_helper

from .clipping import INT8_SYMMETRIC_WEIGHTS, quant_params, weight_channel_axis

PER_CHANNEL_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def per_channel_weight_overrides(model: onnx.ModelProto, exclude: Collection[str] = ()) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` entries (one dict per channel, the first naming the axis) with the
    scale and zero point of each weight described above, for nodes not in ``exclude``."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    uses = Counter(name for node in model.graph.node for name in node.input)
    overrides: dict[str, list[dict]] = {}
    for node in model.graph.node:
        if node.op_type not in PER_CHANNEL_OPS or node.name in exclude or len(node.input) < 2:
            continue
        tensor = initializers.get(node.input[1])
        if (tensor is None or tensor.data_type != onnx.TensorProto.FLOAT or len(tensor.dims) < 2 or 0 in tensor.dims
                or uses[tensor.name] != 1):
            continue
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        axis = weight_channel_axis(node.op_type, attributes, len(tensor.dims))
        weight = numpy_helper.to_array(tensor)
        rows = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)
        scales, zero_points = quant_params(rows.min(axis=1), rows.max(axis=1), INT8_SYMMETRIC_WEIGHTS, symmetric=True)
        overrides[tensor.name] = [
            {"scale": scale, "zero_point": np.int8(zero_point), **({"axis": axis} if channel == 0 else {})}
            for channel, (scale, zero_point) in enumerate(zip(scales, zero_points))
        ]
    return overrides
