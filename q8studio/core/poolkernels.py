"""How an int8 model averages: as ONNX defines it, and as ONNX Runtime's QLinearGlobalAveragePool and
QLinearAveragePool do.

In a QDQ model a GlobalAveragePool reads a dequantized tensor and its output is quantized again. ONNX defines
that as ``y_q = sat(rint(mean(S_x (x_q - Z_x)) / S_y) + Z_y)`` in float32. ONNX Runtime fuses it into
QLinearGlobalAveragePool, whose CPU kernel (mlas) never dequantizes: it sums the channel's N 8-bit values in
int32, takes Z_x away N times, and requantizes with one float32 factor,

    acc = Σ x_q - N Z_x,   f = S_x / (S_y N),   y_q = sat(rint(acc f) + Z_y),

``S_y N`` and ``S_x / (S_y N)`` each rounded to float32. The mean's division by N is inside f: the sum is
exact, so the only roundings are f's and the final one.

An AveragePool over windows is fused into QLinearAveragePool, which does not stay in integers: it
dequantizes each value to float32, ``S_x (x_q - Z_x)``, sums a window's values in float32 in row order,
divides by the count (the values inside the input, or with ``count_include_pad`` the whole window) and
quantizes as ``sat(nearbyint(mean / S_y + Z_y))``, the zero point added in float32 before rounding.
ONNX's definition counts a window's explicit pads but not what ``ceil_mode`` adds past them, and rounds
``mean / S_y`` before adding Z_y.
"""

from __future__ import annotations

import numpy as np

from .poolwindows import PoolGeometry, pool_windows, window_mask
from .qdq import dequantized, output_bounds, quantized
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
    mean = dequantized(x_q, x).mean(axis=tuple(range(2, x_q.ndim)), dtype=np.float32, keepdims=True)
    return quantized(mean, y)


def qlinear_average_pool(x_q: np.ndarray, x: QuantParams, y: QuantParams, geometry: PoolGeometry,
                         out_spatial: tuple[int, ...], count_include_pad: bool) -> np.ndarray:
    """ONNX Runtime's QLinearAveragePool: int64 results in the output type's range, shaped as the output."""
    sums, inside = window_sums(x_q, x, geometry, out_spatial)
    counts = np.full(inside.shape[:len(out_spatial)], np.prod(geometry.kernel), np.float32) if count_include_pad \
        else _counts(inside, len(out_spatial))
    mean = sums / counts
    scaled = mean / np.float32(y.scale) + np.float32(y.zero_point)
    return np.clip(np.rint(scaled).astype(np.int64), *output_bounds(y))


def dequantize_average_pool_quantize(x_q: np.ndarray, x: QuantParams, y: QuantParams, geometry: PoolGeometry,
                                     out_spatial: tuple[int, ...], count_include_pad: bool) -> np.ndarray:
    """The AveragePool as the QDQ graph defines it, in float32 (summed in row order, as ONNX Runtime's float
    kernel sums): int64 results in the output type's range, shaped as the output."""
    sums, inside = window_sums(x_q, x, geometry, out_spatial)
    counted = window_mask(geometry, tuple(x_q.shape[2:]), out_spatial, with_pads=True) if count_include_pad \
        else inside
    return quantized(sums / _counts(counted, len(out_spatial)), y)


def window_sums(x_q: np.ndarray, x: QuantParams, geometry: PoolGeometry, out_spatial: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each window's dequantized values summed in float32 one after another in row order, as the kernels add
    them ([batch, channel, *out_spatial]); and which window positions lie inside the input."""
    windows, inside = pool_windows(dequantized(x_q, x), geometry, out_spatial, fill=np.float32(0.0))  # adding 0 changes no sum
    flat = windows.reshape(windows.shape[:2 + len(out_spatial)] + (-1,))
    sums = np.zeros(flat.shape[:-1], np.float32)
    for position in range(flat.shape[-1]):
        sums += flat[..., position]
    return sums, inside


def _counts(mask: np.ndarray, rank: int) -> np.ndarray:
    """The positions each window counts, as float32: [*out_spatial] from a [*out_spatial, *kernel] mask."""
    return mask.sum(axis=tuple(range(rank, mask.ndim))).astype(np.float32)
