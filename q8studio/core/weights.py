"""The int8 weights of a QDQ model: how a Quantize/DequantizeLinear's parameters read, the weights'
dequantized values, and the error of every weight (and bias) onnxruntime wrote into the int8 model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import Q8Error
from .metrics import measure
from .model import LoadedModel, Node

QUANTIZED_SUFFIX = "_quantized"  # onnxruntime names a quantized initializer <float name>_quantized


@dataclass(frozen=True)
class StoredInt:
    """How an already-quantized model stores a weight: integers that a DequantizeLinear turns into
    (q − zero point) × scale when the model runs."""

    dtype: str
    scale: tuple[float, float]  # the smallest and the largest scale
    zero_point: tuple[int, int]  # the smallest and the largest zero point
    scales: int  # 1 for the whole tensor, else one per slice along ``axis``
    axis: int | None


@dataclass(frozen=True)
class QuantParams:
    """How one tensor is quantized: the 8-bit tensor's name, scale(s), zero point(s), type, axis."""

    tensor: str
    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str
    axis: int | None = None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def to_dict(self) -> dict[str, object]:
        return {"tensor": self.tensor, "scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(),
                "dtype": self.dtype, "axis": self.axis}


@dataclass(frozen=True)
class WeightError:
    tensor: str
    node: str
    op_type: str
    axis: int | None
    shape: tuple[int, ...]
    sqnr_db: float
    mse: float
    cosine: float
    max_abs_error: float

    def to_dict(self) -> dict[str, object]:
        return {
            "tensor": self.tensor, "node": self.node, "op_type": self.op_type, "axis": self.axis,
            "shape": list(self.shape), "sqnr_db": self.sqnr_db, "mse": self.mse, "cosine": self.cosine,
            "max_abs_error": self.max_abs_error,
        }


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | int, axis: int | None) -> np.ndarray:
    """S·(q − Z), per tensor or broadcast along ``axis`` per channel, as float32.

    8- and 16-bit values and their difference are exact in float32, so one rounding of the product
    gives the same float32 as ONNX Runtime's DequantizeLinear, and as computing in float64 at a
    quarter of the memory (VGG-19's 400 MB fc weight went through 800 MB int64 and float64 copies).
    Wider integers (int32 biases) take the exact route instead: q − Z and the product in float64,
    rounded to float32 once. ONNX Runtime converts q − Z to float32 before it multiplies, so for
    |q − Z| above 2**24 its value can differ from this one by an ulp; this is the bias's exact value.
    """
    exact = np.float32 if q.dtype.itemsize <= 2 else np.float64
    scale = np.asarray(scale, dtype=np.float32)
    zero = np.asarray(zero_point, dtype=exact)
    if axis is not None and scale.ndim == 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(exact) - zero) * scale).astype(np.float32, copy=False)


def weight_values(model: LoadedModel, name: str) -> tuple[np.ndarray, StoredInt | None]:
    """A weight's values and, for an integer weight, how it is stored (its values are then dequantized)."""
    values = model.weight(name)
    dq = weight_dequantizer(model, name)
    if dq is None:
        return values, None
    params = qdq_params(model, dq)
    scale, zero = params.scale, params.zero_point
    stored = StoredInt(params.dtype, (float(scale.min()), float(scale.max())),
                       (int(zero.min()), int(zero.max())), int(scale.size), params.axis)
    return dequantize(values, scale, zero, params.axis), stored


def qdq_params(model: LoadedModel, node: Node) -> QuantParams:
    """Scale, zero point, integer type and axis of a QuantizeLinear or DequantizeLinear with constant
    parameters, read as ONNX defines them.

    A missing zero point is 0 of the integer tensor's type (uint8 for a QuantizeLinear whose output
    type is unknown), so a DequantizeLinear of int8 weights without one is int8, not uint8. A
    per-channel ``axis`` (default 1) is counted from the front even when written negative (the
    quantizer writes -1 for MatMul weights), so every reader names the same axis.
    """
    tensor = node.inputs[0] if node.op_type == "DequantizeLinear" else node.outputs[0]
    try:
        scale = model.weight(node.inputs[1]).astype(np.float32)
        given = model.weight(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    except Q8Error:
        raise Q8Error(
            f"{node.name} takes its scale or zero point from another node; only constant ones can be read."
        ) from None
    info = model.graph.tensors.get(tensor)
    if given is None:
        given = np.zeros((), info.dtype if info is not None and info.dtype else np.uint8)
    zero = np.asarray(given)
    axis = None
    if scale.size > 1:
        axis = int(node.attributes.get("axis", 1))  # type: ignore[call-overload]
        if info is not None and info.shape is not None:
            axis %= len(info.shape)
    return QuantParams(tensor, scale, zero, zero.dtype.name, axis)


def weight_dequantizer(model: LoadedModel, name: str) -> Node | None:
    """The DequantizeLinear that turns integer constant ``name`` (initializer or constant node's output)
    into float values with constant parameters, one per tensor or per channel (blocked scales are not
    shown as weights)."""
    graph = model.graph
    if not graph.is_constant(name) or graph.tensors[name].is_float:
        return None
    for index in graph.consumers.get(name, []):
        node = graph.nodes[index]
        if (node.op_type == "DequantizeLinear" and node.inputs[0] == name and not node.attributes.get("block_size")
                and all(graph.is_constant(t) for t in node.inputs[1:] if t)
                and len(graph.tensors[node.inputs[1]].shape or ()) <= 1):
            return node
    return None


def weight_errors(prepared: LoadedModel, int8: LoadedModel) -> list[WeightError]:
    """Float weights of ``prepared`` against their dequantized int8 values in ``int8``, worst first."""
    float_initializers = prepared.graph.initializers
    results = []
    for node in int8.graph.nodes:
        if node.op_type != "DequantizeLinear" or node.inputs[0] not in int8.graph.initializers:
            continue
        quantized_name = node.inputs[0]
        float_name = quantized_name.removesuffix(QUANTIZED_SUFFIX)
        if float_name not in float_initializers:
            continue
        q, params = int8.weight(quantized_name), qdq_params(int8, node)
        errors = measure(prepared.weight(float_name), dequantize(q, params.scale, params.zero_point, params.axis))
        consumer = _first_consumer(int8, node.outputs[0])
        results.append(WeightError(
            float_name, consumer[0], consumer[1], params.axis, tuple(q.shape),
            errors.sqnr_db, errors.mse, errors.cosine, errors.max_abs,
        ))
    return sorted(results, key=lambda w: w.sqnr_db)


def _first_consumer(model: LoadedModel, tensor: str) -> tuple[str, str]:
    consumers = model.graph.consumers.get(tensor, [])
    if not consumers:
        return "", ""
    node = model.graph.nodes[consumers[0]]
    return node.name, node.op_type
