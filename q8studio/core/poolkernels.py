"""How an int8 model averages a channel: as ONNX defines it, and as ONNX Runtime's QLinearGlobalAveragePool does.

In a QDQ model a GlobalAveragePool reads a dequantized tensor and its output is quantized again. ONNX defines
that as ``y_q = sat(rint(mean(S_x (x_q - Z_x)) / S_y) + Z_y)`` in float32. ONNX Runtime fuses it into
QLinearGlobalAveragePool, whose CPU kernel (mlas) never dequantizes: it sums the channel's N 8-bit values in
int32, takes Z_x away N times, and requantizes with one float32 factor,

    acc = Σ x_q - N Z_x,   f = S_x / (S_y N),   y_q = sat(rint(acc f) + Z_y),

``S_y N`` and ``S_x / (S_y N)`` each rounded to float32. The mean's division by N is inside f: the sum is
exact, so the only roundings are f's and the final one.
"""

from __future__ import annotations

import numpy as np

from .addkernels import output_bounds
from .weights import QuantParams


def pooled_values(x_q: np.ndarray) -> int:
    """N, the values averaged into one output: every position of a channel ([batch, channel, spatial...])."""
    return int(np.prod(x_q.shape[2:], dtype=np.int64))


def pool_factor(x: QuantParams, y: QuantParams, count: int) -> np.float32:
    """f = S_x / (S_y N) in float32, rounded as the kernel rounds it: the product first, then the quotient."""
    return np.float32(np.float32(x.scale) / (np.float32(y.scale) * np.float32(count)))


def channel_sums(x_q: np.ndarray, x: QuantParams) -> np.ndarray:
    """acc = Σ x_q - N Z_x per [batch, channel], int64 (the kernel's int32 holds it for any N below 2^23)."""
    spatial = tuple(range(2, x_q.ndim))
    return x_q.astype(np.int64).sum(axis=spatial) - pooled_values(x_q) * int(x.zero_point)


def qlinear_global_average_pool(x_q: np.ndarray, x: QuantParams, y: QuantParams) -> np.ndarray:
    """ONNX Runtime's QLinearGlobalAveragePool: int64 results in the output type's range, shaped as the output
    ([batch, channel, 1, ...])."""
    scaled = channel_sums(x_q, x).astype(np.float32) * pool_factor(x, y, pooled_values(x_q))
    result = np.clip(np.rint(scaled).astype(np.int64) + int(y.zero_point), *output_bounds(y))
    return result.reshape(result.shape + (1,) * (x_q.ndim - 2))


def dequantize_average_quantize(x_q: np.ndarray, x: QuantParams, y: QuantParams) -> np.ndarray:
    """The GlobalAveragePool as the QDQ graph defines it, in float32: DequantizeLinear, the mean of each channel,
    QuantizeLinear. int64 results in the output type's range, shaped as the output."""
    real = (x_q.astype(np.int32) - np.int32(x.zero_point)).astype(np.float32) * np.float32(x.scale)
    mean = real.mean(axis=tuple(range(2, x_q.ndim)), dtype=np.float32, keepdims=True)
    return np.clip(np.rint(mean / np.float32(y.scale)).astype(np.int64) + int(y.zero_point), *output_bounds(y))
