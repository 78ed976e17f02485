"""How an int8 model takes a MaxPool: as ONNX defines it, and as ONNX Runtime runs it on 8-bit values.

In a QDQ model a MaxPool reads a dequantized tensor and its output is quantized again, with the input's scale
and zero point (the quantizer gives it those). ONNX defines that as ``y_q = sat(rint(max_w S_x (x_q - Z_x) / S_y)
+ Z_y)`` over each window w. Quantization is monotonic, so the maximum commutes with it: with S_y = S_x and
Z_y = Z_x the output is exactly the largest 8-bit value of the window, and ONNX Runtime drops the
Dequantize/Quantize pair to run MaxPool on the 8-bit tensor itself (NhwcMaxPool on x86). No arithmetic, no
rounding: an int8 MaxPool is exact.

The windows are those of :mod:`.poolwindows`; padded positions take no part in the maximum.
"""

from __future__ import annotations

import numpy as np

from .poolwindows import PoolGeometry, pool_windows
from .qdq import dequantized, quantized, same_quantization
from .weights import QuantParams


def max_pool_8bit(x_q: np.ndarray, x: QuantParams, y: QuantParams, geometry: PoolGeometry,
                  out_spatial: tuple[int, ...]) -> np.ndarray:
    """The largest 8-bit value of each window, as ONNX Runtime's MaxPool on the 8-bit tensor; requantized in float32
    when the output's scale or zero point differs from the input's. int64 results, shaped as the output."""
    windows, _ = pool_windows(x_q.astype(np.int64), geometry, out_spatial)
    largest = windows.max(axis=tuple(range(-len(out_spatial), 0)))
    if same_quantization(x, y):
        return largest
    return quantized(dequantized(largest, x), y)


def dequantize_max_quantize(x_q: np.ndarray, x: QuantParams, y: QuantParams, geometry: PoolGeometry,
                            out_spatial: tuple[int, ...]) -> np.ndarray:
    """The MaxPool as the QDQ graph defines it, in float32: DequantizeLinear, the maximum of each window,
    QuantizeLinear. int64 results in the output type's range, shaped as the output."""
    windows, _ = pool_windows(dequantized(x_q, x), geometry, out_spatial, fill=-np.inf)
    return quantized(windows.max(axis=tuple(range(-len(out_spatial), 0))), y)

