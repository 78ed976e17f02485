"""How an int8 model takes a layer that only moves values: a Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
Slice or Gather.

Each output element of such a layer is one input element, and the quantizer gives the output the input's
scale and zero point. ONNX defines the layer in a QDQ model as dequantize, move, quantize:
``y_q = sat(rint(S_x (x_q - Z_x) / S_y) + Z_y)`` of the element moved, which with S_y = S_x and Z_y = Z_x is
x_q itself. ONNX Runtime then drops the Dequantize/Quantize pair and runs the layer on the 8-bit tensor: an
int8 move is a copy, exact.

Where each output element comes from is found by applying the layer, as ONNX defines it, to the positions of
the input's elements (numbered in row-major order) instead of to their values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .qdq import dequantized, quantized
from .weights import QuantParams

RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
"""Layers that keep row-major order: output element k is input element k, whatever the shapes."""

MOVERS = (*RESHAPES, "Transpose", "Slice", "Gather")


def source_positions(op_type: str, attributes: Mapping[str, object], x_shape: tuple[int, ...],
                     y_shape: tuple[int, ...], operands: Mapping[str, np.ndarray]) -> np.ndarray:
    """For every output element, the row-major position of the input element it is: int64, shaped as the output.

    ``operands`` holds a Slice's starts, ends, axes and steps and a Gather's indices (its inputs after the first,
    or a Slice-1's attributes); a reshape needs only the output's shape.
    """
    positions = np.arange(int(np.prod(x_shape)), dtype=np.int64).reshape(x_shape)
    if op_type in RESHAPES:
        return positions.reshape(y_shape)
    if op_type == "Transpose":
        perm = attributes.get("perm")
        return np.transpose(positions, None if perm is None else [int(p) for p in perm])  # type: ignore[union-attr]
    if op_type == "Gather":
        axis = int(attributes.get("axis", 0)) % len(x_shape)  # type: ignore[call-overload]
        indices = operands["indices"].astype(np.int64)
        return np.take(positions, np.where(indices < 0, indices + x_shape[axis], indices), axis=axis)
    if op_type == "Slice":
        return _sliced(positions, operands)
    raise ValueError(f"{op_type} is not one of {', '.join(MOVERS)}")


def _sliced(positions: np.ndarray, operands: Mapping[str, np.ndarray]) -> np.ndarray:
    """ONNX Slice: per axis, starts and ends counted from the end when negative, then clamped (to [0, dim] with a
    positive step, [-1, dim - 1] with a negative one), which Python's own slices do otherwise."""
    starts, ends = (operands[name].astype(np.int64).reshape(-1) for name in ("starts", "ends"))
    axes = operands.get("axes")
    steps = operands.get("steps")
    axes = np.arange(starts.size) if axes is None else axes.astype(np.int64).reshape(-1)
    steps = np.ones(starts.size, np.int64) if steps is None else steps.astype(np.int64).reshape(-1)
    for axis, start, end, step in zip(axes, starts, ends, steps):
        axis = int(axis) % positions.ndim
        dim = positions.shape[axis]
        start, end = (int(v) + dim if v < 0 else int(v) for v in (start, end))
        high = dim if step > 0 else dim - 1
        start, end = min(max(start, 0), high), min(max(end, 0 if step > 0 else -1), high)
        positions = np.take(positions, np.arange(start, end, int(step)), axis=axis)
    return positions


def moved_8bit(x_q: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The layer on the 8-bit tensor, as ONNX Runtime runs it once the Dequantize/Quantize pair is dropped:
    each output element is the input element at its position. int64 results."""
    return x_q.astype(np.int64).reshape(-1)[positions]


def dequantize_move_quantize(x_q: np.ndarray, x: QuantParams, y: QuantParams, positions: np.ndarray) -> np.ndarray:
    """The layer as the QDQ graph defines it, in float32: DequantizeLinear, the move, QuantizeLinear. int64 results
    in the output type's range."""
    return quantized(dequantized(x_q, x).reshape(-1)[positions], y)
