"""Per-channel weights quantized at once, for onnxruntime's quantizer to use as given.

Asked for per-channel weights, ``quantize_static`` computes each output channel's scale, then
quantizes the channel, in a Python loop: 60 ms of SqueezeNet's 135 ms write (3,944 channels), more on
wider nets. q8studio computes the scales at once (:func:`per_channel_weight_overrides`, with
:func:`~.clipping.quant_params`, its arithmetic for symmetric int8 weights, [-127, 127]) and hands
the weights over already quantized (:func:`prequantized`): an int8 initializer and a
DequantizeLinear, which the quantizer keeps as they are and reads a bias's weight scale from. It
writes the same model, and the tests check that bit for bit on onnx's architectures; SqueezeNet's
write took 78 ms with the scales handed over, 36 ms with the weights.

Only the common case is handed over: a float32 weight of rank >= 2 feeding, as input 1 and alone, a
Conv, ConvTranspose, Gemm or MatMul. Anything else (a shared weight, a constant first input of a
MatMul, a normalisation's scale) is left to the quantizer, which decides it as before.

A grouped ConvTranspose's weight is handed over per tensor instead (:func:`per_tensor_weights`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from .clipping import INT8, INT8_SYMMETRIC_WEIGHTS, quant_params, weight_channel_axis
from .model import LoadedModel, Node
from .skeleton import without_initializers

PER_CHANNEL_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_INT32_STEPS = float(2**32 - 2)
"""The steps of the int32 range onnxruntime quantizes a bias in, [-(2^31 - 1), 2^31 - 1]."""
_BIAS_SCALE_MARGIN = 2.0
"""How far a bias scale must clear the smallest onnxruntime accepts for a weight to be handed over
quantized: below it, onnxruntime widens the weight's scale (see :func:`prequantized`)."""
_BLOCK_VALUES = 65_536
"""Weights quantized together (256 KB of float32): a block stays in the core's cache."""


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


def prequantized(
    model: onnx.ModelProto, overrides: Mapping[str, list[dict]], activation_scales: Mapping[str, float]
) -> tuple[onnx.ModelProto, dict[str, list[dict]]]:
    """``model`` with the per-channel weights of ``overrides`` quantized (an int8 initializer into a
    DequantizeLinear named as onnxruntime's quantizer names its own), and the overrides left for the
    quantizer to apply; ``model`` is not touched.

    A weight stays with the quantizer when its layer's bias would need a wider weight scale: a bias
    scale (input scale x weight scale) so small that the bias overflows int32 makes onnxruntime widen
    that weight's scale, which it can only do to a weight it quantizes itself. ``activation_scales``
    holds the scale of each activation the quantizer has a range for (one it has none for gets no
    widening).
    """
    consumer = {name: node for node in model.graph.node for name in node.input[1:2] if name in overrides}
    values = {tensor.name: tensor for tensor in model.graph.initializer}
    outputs = {value.name for value in model.graph.output}
    quantized: dict[str, tuple[onnx.TensorProto, ...]] = {}
    left = {}
    for name, channels in overrides.items():
        node = consumer.get(name)
        bias = values.get(node.input[2]) if node is not None and len(node.input) > 2 else None
        if node is None or name in outputs or "axis" not in channels[0]:
            left[name] = channels
            continue
        scales = np.array([channel["scale"] for channel in channels], dtype=np.float32)
        if not _bias_fits(scales, activation_scales.get(node.input[0]), bias):
            left[name] = channels
            continue
        zero_points = np.array([channel["zero_point"] for channel in channels], dtype=np.int8)
        quantized[name] = _quantized_weight(name, values[name], channels[0]["axis"], scales, zero_points)

    result = without_initializers(model)
    result.graph.initializer.extend(tensor for tensor in model.graph.initializer if tensor.name not in quantized)
    for name, tensors in quantized.items():
        result.graph.initializer.extend(tensors)
        dequantized = f"{name}_DequantizeLinear_Output"
        result.graph.node.append(onnx.helper.make_node(
            "DequantizeLinear", [tensor.name for tensor in tensors], [dequantized],
            name=f"{name}_DequantizeLinear", axis=overrides[name][0]["axis"]))
    for node in result.graph.node:
        if len(node.input) > 1 and node.input[1] in quantized:
            node.input[1] = f"{node.input[1]}_DequantizeLinear_Output"
    return result, left


def _bias_fits(scales: np.ndarray, input_scale: float | None, bias: onnx.TensorProto | None) -> bool:
    """Whether onnxruntime would leave a weight's ``scales`` as they are: with no bias, no input
    scale, or a bias whose every value fits int32 at the bias scale (with :data:`_BIAS_SCALE_MARGIN`)."""
    if bias is None or input_scale is None:
        return True
    values = numpy_helper.to_array(bias).astype(np.float64).reshape(-1)
    if values.size != len(scales):
        return False
    bias_scales = input_scale * scales.astype(np.float64)
    smallest = 2.0 * np.abs(values) / _INT32_STEPS
    return bool(np.all(bias_scales >= _BIAS_SCALE_MARGIN * smallest))


def _quantized_weight(
    name: str, weight: onnx.TensorProto, axis: int, scales: np.ndarray, zero_points: np.ndarray
) -> tuple[onnx.TensorProto, ...]:
    """The int8 values, scales and zero points of ``weight`` quantized per channel along ``axis`` as
    onnxruntime does (float32 division, rounding half to even, clipped to int8), named as it names them.

    Computed a block of rows at a time in one small buffer: on VGG-19 (143 M weights) whole-array
    steps took 1.2 s, most of it the kernel handing out fresh pages for their float temporaries.
    """
    values = _float32_values(weight)
    along_axis = [-1 if dim == axis else 1 for dim in range(values.ndim)]
    scale_of, zero_point_of = scales.reshape(along_axis), zero_points.reshape(along_axis)
    quantized = np.empty(values.shape, dtype=np.int8)
    rows = max(1, _BLOCK_VALUES // max(1, values[0].size))
    buffer = np.empty((rows, *values.shape[1:]), dtype=np.float32)
    for start in range(0, values.shape[0], rows):
        block = slice(start, start + rows)
        step = buffer[: len(values[block])]
        scale, zero_point = (scale_of[block], zero_point_of[block]) if axis == 0 else (scale_of, zero_point_of)
        np.divide(values[block], scale, out=step)
        np.rint(step, out=step)
        step += zero_point
        np.clip(step, INT8.qmin, INT8.qmax, out=step)
        quantized[block] = step
    return (numpy_helper.from_array(quantized, f"{name}_quantized"),
            numpy_helper.from_array(scales, f"{name}_scale"),
            numpy_helper.from_array(zero_points, f"{name}_zero_point"))


def _float32_values(tensor: onnx.TensorProto) -> np.ndarray:
    """The values of a float32 initializer, read in place from its bytes where it has them."""
    if tensor.HasField("raw_data") and np.little_endian:
        return np.frombuffer(tensor.raw_data, dtype=np.float32).reshape(tuple(tensor.dims))
    return numpy_helper.to_array(tensor)
