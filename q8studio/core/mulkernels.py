"""How an int8 model multiplies two 8-bit tensors: as ONNX defines it, and as ONNX Runtime's x86 QLinearMul computes it.

In a QDQ model a Mul reads two dequantized tensors and its output is quantized again. ONNX defines that as
``y_q = sat(rint(S_a (a_q - Z_a) * S_b (b_q - Z_b) / S_y) + Z_y)`` in float32, one rounding per step.
ONNX Runtime fuses it into QLinearMul, whose x86 kernel (mlas ``qlmul.cpp``, SSE2) never dequantizes: it
multiplies the two integers exactly and folds the three scales into one float32 ratio,

    M = (S_a S_b) / S_y,  p = (a_q - Z_a)(b_q - Z_b),  y_q = sat(rint(p M + Z_y)),

with ``S_a S_b``, the division, ``p M`` and ``+ Z_y`` each rounded to float32 (a multiply, then an add: no fused
multiply-add). ``p`` (at most 255 * 255) is exact in float32. The two can differ by one step where the product
lies within float32 rounding of a half-integer. A scalar input, on either side, gives the same results: the
kernel swaps the operands, and both products commute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .qdq import dequantized, output_bounds
from .weights import QuantParams

INT32_INDEFINITE = -(2**31)
"""What x86's float-to-int32 conversion gives for a value out of int32's range (or NaN); it saturates to the
output's minimum, so a huge ratio turns a large positive product into the lowest value."""


@dataclass(frozen=True)
class MulConstants:
    """What QLinearMul computes once per call: the inputs' zero points and the float32 ratio."""

    zero_a: int
    zero_b: int
    zero_y: int
    scales: float  # float32(S_a S_b)
    ratio: float  # M = float32(float32(S_a S_b) / S_y)

    @classmethod
    def of(cls, a: QuantParams, b: QuantParams, y: QuantParams) -> MulConstants:
        scales = np.float32(np.float32(a.scale) * np.float32(b.scale))
        ratio = np.float32(scales / np.float32(y.scale))
        return cls(int(a.zero_point), int(b.zero_point), int(y.zero_point), float(scales), float(ratio))


def qlinear_mul_steps(a_q: np.ndarray, b_q: np.ndarray,
                      constants: MulConstants) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QLinearMul's steps, to show one element: the exact product ``p`` (int64), ``p M``, then ``p M + Z_y``
    (both float32)."""
    product = (np.asarray(a_q, np.int64) - constants.zero_a) * (np.asarray(b_q, np.int64) - constants.zero_b)
    scaled = product.astype(np.float32) * np.float32(constants.ratio)
    return product, scaled, scaled + np.float32(constants.zero_y)


def qlinear_mul(a_q: np.ndarray, b_q: np.ndarray, constants: MulConstants, y: QuantParams) -> np.ndarray:
    """ONNX Runtime's x86 QLinearMul on broadcastable 8-bit inputs: int64 results in the output type's range."""
    _, _, total = qlinear_mul_steps(a_q, b_q, constants)
    rounded = np.where(np.abs(total) < 2**31, np.rint(total), INT32_INDEFINITE).astype(np.int64)
    return np.clip(rounded, *output_bounds(y))


def dequantize_mul_quantize(a_q: np.ndarray, a: QuantParams, b_q: np.ndarray, b: QuantParams, y: QuantParams,
                            *, relu: bool = False) -> np.ndarray:
    """The Mul as the QDQ graph defines it, in float32: DequantizeLinear twice, Mul (and a Relu kept after it),
    QuantizeLinear. int64 results in the output type's range."""
    product = dequantized(a_q, a) * dequantized(b_q, b)
    if relu:
        product = np.maximum(product, np.float32(0))
    low, high = output_bounds(y)
    zero = int(y.zero_point)
    scaled = np.clip(product / np.float32(y.scale), low - zero, high - zero)  # clipped first: no overflow
    return np.rint(scaled).astype(np.int64) + zero
