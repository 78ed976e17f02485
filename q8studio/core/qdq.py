"""What DequantizeLinear and QuantizeLinear compute, in float32 as ONNX Runtime does: the first and last steps of
every reference kernel that dequantizes, computes and quantizes again."""

from __future__ import annotations

import numpy as np

from .weights import QuantParams


def output_bounds(y: QuantParams) -> tuple[int, int]:
    """The lowest and highest code of the tensor's 8-bit type, where quantizing saturates."""
    info = np.iinfo(np.dtype(y.dtype))
    return int(info.min), int(info.max)


def dequantized(x_q: np.ndarray, x: QuantParams) -> np.ndarray:
    """S_x (x_q - Z_x) in float32, as DequantizeLinear computes it."""
    return (np.asarray(x_q, np.int32) - np.int32(x.zero_point)).astype(np.float32) * np.float32(x.scale)


def quantized(values: np.ndarray, y: QuantParams) -> np.ndarray:
    """sat(rint(v / S_y) + Z_y) of float32 values, as QuantizeLinear computes it: int64 in y's range."""
    scaled = np.rint(np.asarray(values, np.float32) / np.float32(y.scale)).astype(np.int64)
    return np.clip(scaled + int(y.zero_point), *output_bounds(y))


def same_quantization(x: QuantParams, y: QuantParams) -> bool:
    """Whether two tensors share one 8-bit type, scale and zero point, so that a code means the same value in both
    and moving it needs no arithmetic (a MaxPool, a Concat's copied input)."""
    return (x.dtype == y.dtype and float(np.float32(x.scale)) == float(np.float32(y.scale))
            and int(x.zero_point) == int(y.zero_point))
