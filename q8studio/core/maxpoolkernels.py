"""How an int8 model takes a MaxPool: as ONNX defines it, and as ONNX Runtime runs it on 8-bit values.

In a QDQ model a MaxPool reads a dequantized tensor and its output is quantized again, with the input's scale
and zero point (the quantizer gives it those). ONNX defines that as ``y_q = sat(rint(max_w S_x (x_q - Z_x) / S_y)
+ Z_y)`` over each window w. Quantization is monotonic, so the maximum commutes with it: with S_y = S_x and
Z_y = Z_x the output is exactly the largest 8-bit value of the window, and ONNX Runtime drops the
Dequantize/Quantize pair to run MaxPool on the 8-bit tensor itself (NhwcMaxPool on x86). No arithmetic, no
rounding: an int8 MaxPool is exact.

Windows follow ONNX's MaxPool: ``kernel_shape``, ``strides``, ``dilations`` and the leading pads (``pads`` or
``auto_pad``); the output's spatial size is taken from the output ONNX Runtime computed, which settles
``ceil_mode``. Padded positions take no part in the maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .addkernels import output_bounds
from .errors import Q8Error
from .model import Node
from .weights import QuantParams

OUTSIDE = np.iinfo(np.int64).min
"""A window position in the padding: below every 8-bit value, so the maximum never takes it."""


@dataclass(frozen=True)
class PoolGeometry:
    """Where the windows of a pooling lie, per spatial axis: window size, stride, dilation and leading pad."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]

    def positions(self, axis: int, out_size: int) -> np.ndarray:
        """Input positions of every window along ``axis``: [out_size, kernel], negative or past the end in padding."""
        starts = np.arange(out_size)[:, None] * self.strides[axis] - self.pads_begin[axis]
        return starts + np.arange(self.kernel[axis])[None, :] * self.dilations[axis]


def pool_geometry(node: Node, input_spatial: tuple[int, ...]) -> PoolGeometry:
    """The windows of pooling ``node`` on an input of spatial shape ``input_spatial`` (``auto_pad`` resolved)."""
    attributes = node.attributes
    rank = len(input_spatial)
    kernel = tuple(int(k) for k in attributes.get("kernel_shape", ()))  # type: ignore[union-attr]
    if len(kernel) != rank:
        raise Q8Error(f"{node.name} has kernel_shape {list(kernel)} for {rank} spatial axes.")
    strides = tuple(int(s) for s in attributes.get("strides", [1] * rank))  # type: ignore[union-attr]
    dilations = tuple(int(d) for d in attributes.get("dilations", [1] * rank))  # type: ignore[union-attr]
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin = []
        for size, k, s, d in zip(input_spatial, kernel, strides, dilations):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        pads_begin = tuple(begin)
    elif auto_pad == "VALID":
        pads_begin = (0,) * rank
    else:
        pads_begin = tuple(int(p) for p in attributes.get("pads", [0] * 2 * rank)[:rank])  # type: ignore[index]
    return PoolGeometry(kernel, strides, dilations, pads_begin)


def pool_windows(x: np.ndarray, geometry: PoolGeometry, out_spatial: tuple[int, ...], fill: object = OUTSIDE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``x`` ([batch, channel, spatial...]) as [batch, channel, *out_spatial, *kernel], positions
    in the padding holding ``fill``; and which window positions lie inside the input, [*out_spatial, *kernel]."""
    rank = len(out_spatial)
    windows = x
    inside = np.ones((), bool)
    for axis, out_size in enumerate(out_spatial):
        size = x.shape[2 + axis]
        positions = geometry.positions(axis, out_size)
        valid = (positions >= 0) & (positions < size)
        # taken along this axis, the axis becomes (out, kernel) at 2 + 2 * axis; later axes are still whole
        windows = np.take(windows, np.clip(positions, 0, size - 1), axis=2 + 2 * axis)
        shape = [1] * windows.ndim
        shape[2 + 2 * axis], shape[3 + 2 * axis] = valid.shape
        windows = np.where(valid.reshape(shape), windows, np.asarray(fill, windows.dtype))
        inside = np.logical_and.outer(inside, valid)
    order = [0, 1] + [2 + 2 * a for a in range(rank)] + [3 + 2 * a for a in range(rank)]
    inside_order = [2 * a for a in range(rank)] + [2 * a + 1 for a in range(rank)]
    return windows.transpose(order), inside.transpose(inside_order)


def max_pool_8bit(x_q: np.ndarray, x: QuantParams, y: QuantParams, geometry: PoolGeometry,
                  out_spatial: tuple[int, ...]) -> np.ndarray:
    """The largest 8-bit value of each window, as ONNX Runtime's MaxPool on the 8-bit tensor; requantized in float32
    when the output's scale or zero point differs from the input's. int64 results, shaped as the output."""
    windows, _ = pool_windows(x_q.astype(np.int64), geometry, out_spatial)
    largest = windows.max(axis=tuple(range(-len(out_spatial), 0)))
    if same_quantization(x, y):
        return largest
    real = (largest - int(x.zero_point)).astype(np.float32) * np.float32(x.scale)
    return np.clip(np.rint(real / np.float32(y.scale)).astype(np.int64) + int(y.zero_point), *output_bounds(y))


def dequantize_max_quantize(x_q: np.ndarray, x: QuantParams, y: QuantParams, geometry: PoolGeometry,
                            out_spatial: tuple[int, ...]) -> np.ndarray:
    """The MaxPool as the QDQ graph defines it, in float32: DequantizeLinear, the maximum of each window,
    QuantizeLinear. int64 results in the output type's range, shaped as the output."""
    real = (x_q.astype(np.int32) - np.int32(x.zero_point)).astype(np.float32) * np.float32(x.scale)
    windows, _ = pool_windows(real, geometry, out_spatial, fill=-np.inf)
    largest = windows.max(axis=tuple(range(-len(out_spatial), 0)))
    return np.clip(np.rint(largest / np.float32(y.scale)).astype(np.int64) + int(y.zero_point), *output_bounds(y))


def same_quantization(x: QuantParams, y: QuantParams) -> bool:
    """Whether input and output share scale, zero point and type: the MaxPool then needs no requantization."""
    return (x.dtype == y.dtype and float(np.float32(x.scale)) == float(np.float32(y.scale))
            and int(x.zero_point) == int(y.zero_point))
