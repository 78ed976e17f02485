"""How an int8 model adds two 8-bit tensors: as ONNX defines it, and as ONNX Runtime's x86 QLinearAdd computes it.

In a QDQ model an Add reads two dequantized tensors and its output is quantized again. ONNX defines that as
``y_q = sat(rint((S_a (a_q - Z_a) + S_b (b_q - Z_b)) / S_y) + Z_y)`` in float32, one rounding per step.
ONNX Runtime fuses it into QLinearAdd, whose x86 kernel (mlas, AVX2) never dequantizes: it folds the three
scales into two float32 ratios and the zero points into one constant,

    r_a = S_a / S_y,  r_b = S_b / S_y,  c = Z_y - (r_a Z_a + r_b Z_b),
    y_q = sat(rint(a_q r_a + (b_q r_b + c))),

each ``u v + w`` a fused multiply-add (one rounding), and ``r_a Z_a + r_b Z_b`` one too. The two can differ
by one step where the sum lies within float32 rounding of a half-integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .intmath import fma_float32
from .qdq import dequantized, output_bounds, quantized
from .weights import QuantParams


@dataclass(frozen=True)
class AddRatios:
    """What QLinearAdd computes once per call: the scale ratios and the constant (all float32)."""

    a: float  # r_a = S_a / S_y
    b: float  # r_b = S_b / S_y
    constant: float  # c = Z_y - (r_a Z_a + r_b Z_b)

    @classmethod
    def of(cls, a: QuantParams, b: QuantParams, y: QuantParams) -> AddRatios:
        ratio_a = np.float32(np.float32(a.scale) / np.float32(y.scale))
        ratio_b = np.float32(np.float32(b.scale) / np.float32(y.scale))
        folded = fma_float32(ratio_a, np.float32(int(a.zero_point)), ratio_b * np.float32(int(b.zero_point)))
        return cls(float(ratio_a), float(ratio_b), float(np.float32(np.float32(int(y.zero_point)) - folded)))


def qlinear_add_sums(a_q: np.ndarray, b_q: np.ndarray, ratios: AddRatios) -> tuple[np.ndarray, np.ndarray]:
    """QLinearAdd's two float32 fused multiply-adds: ``b_q r_b + c``, then ``a_q r_a`` plus that."""
    inner = fma_float32(np.asarray(b_q, np.float32), ratios.b, ratios.constant)
    return inner, fma_float32(np.asarray(a_q, np.float32), ratios.a, inner)


def qlinear_add(a_q: np.ndarray, b_q: np.ndarray, ratios: AddRatios, y: QuantParams) -> np.ndarray:
    """ONNX Runtime's x86 QLinearAdd on broadcastable 8-bit inputs: int64 results in the output type's range."""
    _, total = qlinear_add_sums(a_q, b_q, ratios)
    return np.clip(np.rint(total).astype(np.int64), *output_bounds(y))


def dequantize_add_quantize(a_q: np.ndarray, a: QuantParams, b_q: np.ndarray, b: QuantParams, y: QuantParams,
                            *, relu: bool = False) -> np.ndarray:
    """The Add as the QDQ graph defines it, in float32: DequantizeLinear twice, Add (and a Relu kept after it),
    QuantizeLinear. int64 results in the output type's range."""
    total = dequantized(a_q, a) + dequantized(b_q, b)
    if relu:
        total = np.maximum(total, np.float32(0))
    return quantized(total, y)
