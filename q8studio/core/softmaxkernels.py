"""How ONNX Runtime's QLinearSoftmax computes an 8-bit softmax: a table of exponentials, a sum and a quotient.

ONNX Runtime fuses DequantizeLinear -> Softmax -> QuantizeLinear into QLinearSoftmax. A softmax depends on each
value's distance below the row's largest, and with 8-bit inputs that distance is ``S_x d`` for a whole number
``d = x_max - x_q`` in 0..255, so the kernel builds a table of 256 exponentials once per run:

    E[d] = float32(exp((b - d) S_x)),   b = max(0, ln(FLT_MAX / D) - 5) / S_x   (the ln in float32)

(the common factor e^{b S_x} spreads the row over float32's range while keeping a sum of D entries below
FLT_MAX). Then, for each row of D values along the axis, it sums the row's entries in float32, in order, and
writes

    y_q = sat(rint(E[d] K / Σ) + Z_y),   K = floor(1 / S_y)   (the quotient in double precision)

K is 1/S_y rounded *down* to a whole number, so every output is K S_y times the definition's: slightly low,
by up to one step at a probability of 1. Measured bit-exact against ONNX Runtime 1.32 on x86, including rows
chosen where each candidate formula rounds a near-tie differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .model import Node
from .qdq import dequantized, output_bounds, quantized
from .weights import QuantParams

HEADROOM = 5.0
"""ln of the factor ONNX Runtime keeps between a row's largest possible sum and FLT_MAX."""


def softmax_axis(node: Node, opset: int) -> int:
    """The axis attribute, or its default: 1 before opset 13 (which flattened from it), -1 since."""
    return int(node.attributes.get("axis", 1 if opset < 13 else -1))


@dataclass(frozen=True)
class Rows:
    """A tensor seen as the softmax sees it: rows of D values, and how to put them back in the tensor's shape.

    Since opset 13 a row runs along ``axis``; before, the tensor was flattened to two dimensions at ``axis``, so
    a row holds every value from that axis on."""

    shape: tuple[int, ...]
    axis: int
    flattened: bool  # opset < 13

    @classmethod
    def of(cls, shape: tuple[int, ...], axis: int, opset: int) -> Rows:
        return cls(tuple(shape), axis % len(shape), opset < 13)

    @property
    def length(self) -> int:
        """D, the values a row holds."""
        return math.prod(self.shape[self.axis:]) if self.flattened else self.shape[self.axis]

    def rows(self, values: np.ndarray) -> np.ndarray:
        """[rows, D]."""
        if self.flattened:
            return values.reshape(-1, self.length)
        return np.moveaxis(values, self.axis, -1).reshape(-1, self.length)

    def restored(self, rows: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`rows`."""
        if self.flattened:
            return rows.reshape(self.shape)
        moved = tuple(np.delete(np.array(self.shape), self.axis)) + (self.length,)
        return np.moveaxis(rows.reshape(moved), -1, self.axis)

    def place(self, index: tuple[int, ...]) -> tuple[int, int]:
        """The row holding element ``index``, and the element's position in it."""
        position = np.zeros(self.shape, bool)
        position[index] = True
        row, column = np.argwhere(self.rows(position))[0]
        return int(row), int(column)


def table_shift(x: QuantParams, length: int) -> float:
    """b: the exponent's offset, in steps of S_x, that lifts the row's largest entry near FLT_MAX / (D e^5)."""
    largest_sum = np.float32(np.finfo(np.float32).max) / np.float32(length)
    log_in_float32 = float(np.float32(math.log(float(largest_sum))))
    return max(0.0, log_in_float32 - HEADROOM) / float(np.float32(x.scale))


def exp_table(x: QuantParams, length: int) -> np.ndarray:
    """E[d] for d = x_max - x_q = 0..255 (float32, [256]): exp((b - d) S_x), in double, rounded to float32."""
    shift, scale = table_shift(x, length), float(np.float32(x.scale))
    return np.array([math.exp((shift - d) * scale) for d in range(256)], np.float32)


def output_multiplier(y: QuantParams) -> np.float32:
    """K = floor(1 / S_y): the whole number of output steps the kernel gives a probability of 1."""
    return np.float32(np.floor(np.float32(1.0) / np.float32(y.scale)))


@dataclass(frozen=True)
class SoftmaxSums:
    """Every row's intermediate values: the distances below the row's largest code, their table entries, the sums."""

    distances: np.ndarray  # d = x_max - x_q, [rows, D]
    entries: np.ndarray  # E[d], float32, [rows, D]
    sums: np.ndarray  # Σ E[d] in order, float32, [rows]
    quotients: np.ndarray  # E[d] K / Σ in double, before rounding, [rows, D]


def softmax_sums(rows: np.ndarray, x: QuantParams, y: QuantParams) -> SoftmaxSums:
    """The kernel's steps for ``rows`` of 8-bit codes ([rows, D])."""
    codes = rows.astype(np.int64)
    distances = codes.max(axis=1, keepdims=True) - codes
    entries = exp_table(x, rows.shape[1])[distances]
    sums = np.cumsum(entries, axis=1, dtype=np.float32)[:, -1]  # numpy's cumsum adds in order, as the kernel
    quotients = entries.astype(np.float64) * float(output_multiplier(y)) / sums.astype(np.float64)[:, None]
    return SoftmaxSums(distances, entries, sums, quotients)


def qlinear_softmax(x_q: np.ndarray, x: QuantParams, y: QuantParams, layout: Rows) -> np.ndarray:
    """y_q as ONNX Runtime's QLinearSoftmax computes it: int64, shaped as ``x_q``."""
    sums = softmax_sums(layout.rows(x_q), x, y)
    return layout.restored(_saturated(sums.quotients, y))


def _saturated(quotients: np.ndarray, y: QuantParams) -> np.ndarray:
    """sat(rint(q) + Z_y)."""
    low, high = output_bounds(y)
    return np.clip(np.rint(quotients) + int(y.zero_point), low, high).astype(np.int64)


def float_softmax(values: np.ndarray) -> np.ndarray:
    """softmax of float32 rows ([rows, D]) in float32: exp(v - max), divided by the row's sum."""
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32)


def dequantize_softmax_quantize(x_q: np.ndarray, x: QuantParams, y: QuantParams, layout: Rows) -> np.ndarray:
    """y_q as the QDQ graph defines it: dequantize, softmax in float32, quantize with S_y. int64, shaped as x_q."""
    probabilities = float_softmax(layout.rows(dequantized(x_q, x)))
    return layout.restored(quantized(probabilities, y))
