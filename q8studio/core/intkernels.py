"""Integer-only reference kernels: QLinearConv, QLinearMatMul and a quantized Gemm.

They take the 8-bit tensors, scales and zero points exactly as an ONNX model stores them and
follow the integer recipe step by step: subtract zero points, accumulate products in integers
(int64 here, which holds any int32 accumulator exactly), add the int32 bias, requantize with
``M = S_in * S_w / S_out`` (times a Gemm's alpha), add the output zero point and clamp. ``requant="integer"`` applies
M as a fixed-point multiplier and shift (:func:`~.intmath.requantize`); ``requant="ort"``
reproduces ONNX Runtime's float32 requantization (:func:`~.intmath.requantize_float32`).

A fused ReLU is nothing but a lower clamp at the output zero point: that is where real 0 sits
in the output grid, so clamping there removes every negative value at no extra cost.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from .errors import Q8Error
from .intmath import Multiplier, decompose_multiplier, float32_multiplier, requantize, requantize_float32

Requant = Literal["integer", "ort"]
ScaleLike = float | np.ndarray
ZeroPointLike = int | np.ndarray


def channel_multipliers(in_scale: float, w_scale: ScaleLike, out_scale: float, alpha: float = 1.0) -> list[Multiplier]:
    """One decomposed ``M = alpha * S_in * S_w / S_out`` per weight scale, from the stored float32 scales.

    The ratio is taken in float64 so the fixed-point multiplier approximates the real ratio of
    the stored scales, not a float32 rounding of it. ``alpha`` is a Gemm's: it scales the whole
    accumulator, so it belongs in M.
    """
    ratios = float(alpha) * float(np.float32(in_scale)) * np.asarray(w_scale, np.float32).astype(np.float64).reshape(-1)
    return [decompose_multiplier(r / float(np.float32(out_scale))) for r in ratios]


def runtime_multiplier(in_scale: float, w_scale: ScaleLike, out_scale: float, alpha: float = 1.0) -> np.ndarray:
    """M in float32 as ONNX Runtime's kernels compute it; QGemm takes ``(alpha * S_in * S_w) / S_out`` in that
    order, and alpha = 1 leaves the other kernels' ``(S_in * S_w) / S_out`` unchanged."""
    return float32_multiplier(np.float32(alpha) * np.float32(in_scale), w_scale, out_scale)


def _output_range(qtype: Any, zero_point: int, relu: bool) -> tuple[int, int]:
    """``(qmin, qmax)`` of the output integer type, raised to the zero point for a fused ReLU."""
    info = np.iinfo(qtype)
    if info.bits != 8:
        raise Q8Error(f"Outputs must be int8 or uint8, not {np.dtype(qtype)}.")
    qmin = max(int(info.min), int(zero_point)) if relu else int(info.min)
    return qmin, int(info.max)


def _scale_accumulators(
    acc: np.ndarray, in_scale: float, w_scale: ScaleLike, out_scale: float, requant: Requant, axis: int,
    alpha: float = 1.0,
) -> np.ndarray:
    """``round(acc * M)`` as int64, before the output zero point and the clamp.

    ``w_scale`` holds one scale per channel along ``axis`` or a single one.
    """
    lowest, highest = -(2**62), 2**62  # no clamp yet, but a bound every int64 and float32 can hold
    if requant == "integer":
        multipliers = channel_multipliers(in_scale, w_scale, out_scale, alpha)
        return requantize(acc, multipliers, 0, lowest, highest, axis=axis)
    if requant == "ort":
        multiplier = runtime_multiplier(in_scale, w_scale, out_scale, alpha)
        return requantize_float32(acc, multiplier, 0, lowest, highest, axis=axis)
    raise Q8Error(f"Unknown requantization {requant!r}: use 'integer' or 'ort'.")


def _requantize_output(
    acc: np.ndarray,
    in_scale: float,
    w_scale: ScaleLike,
    out_scale: float,
    out_zp: int,
    qtype: Any,
    relu: bool,
    requant: Requant,
    axis: int,
    alpha: float = 1.0,
) -> np.ndarray:
    """Requantize, add the output zero point and clamp to ``qtype`` (raised to Z_y for ReLU)."""
    qmin, qmax = _output_range(qtype, out_zp, relu)
    scaled = _scale_accumulators(acc, in_scale, w_scale, out_scale, requant, axis, alpha)
    return np.clip(scaled + out_zp, qmin, qmax).astype(qtype)


def _centered(q: np.ndarray, zero_point: ZeroPointLike, axis: int = 0) -> np.ndarray:
    """``q - zero_point`` in int64; an array zero point is per channel along ``axis``."""
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        raise Q8Error(f"Quantized tensors must be integers, not {q.dtype}.")
    zp = np.asarray(zero_point, np.int64)
    if zp.ndim:
        shape = [1] * q.ndim
        shape[axis] = zp.size
        zp = zp.reshape(shape)
    return q.astype(np.int64) - zp


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int) -> int:
    """Output length of one spatial axis (ONNX Conv, explicit pads)."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def conv_accumulate(
    x_q: np.ndarray,
    x_zp: int,
    w_q: np.ndarray,
    w_zp: ZeroPointLike,
    bias_q: np.ndarray | None = None,
    *,
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilations: Sequence[int] = (1, 1),
    group: int = 1,
) -> np.ndarray:
    """Integer accumulators ``Σ (x_q - Z_x)(w_q - Z_w) + b_q`` of a 2-D NCHW convolution, as int64.

    Padding is applied after subtracting Z_x, so padded positions contribute 0: they stand for
    real 0, as in ONNX QLinearConv. Vectorised as im2col and one int64 matmul batched over the groups.
    """
    x, w = _centered(x_q, x_zp, axis=1), _centered(w_q, w_zp, axis=0)
    if x.ndim != 4 or w.ndim != 4:
        raise Q8Error("Conv needs 4-D NCHW input and OIHW weights.")
    (n, c, _, _), (o, cg, kh, kw) = x.shape, w.shape
    if c != cg * group or o % group:
        raise Q8Error(f"Conv shapes do not fit group={group}: input {x.shape}, weights {w.shape}.")
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = strides, dilations, pads
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = conv_output_size(x.shape[2], kh, sh, dh, 0, 0)
    wo = conv_output_size(x.shape[3], kw, sw, dw, 0, 0)
    if ho < 1 or wo < 1:
        raise Q8Error(f"The {kh}x{kw} kernel does not fit the padded {x.shape[2]}x{x.shape[3]} input.")
    cols = np.empty((n, c, kh, kw, ho, wo), np.int64)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            cols[:, :, i, j] = x[:, :, top : top + sh * (ho - 1) + 1 : sh, left : left + sw * (wo - 1) + 1 : sw]
    cols = cols.reshape(n, group, cg * kh * kw, ho * wo)
    acc = np.matmul(w.reshape(group, o // group, cg * kh * kw), cols).reshape(n, o, ho, wo)
    if bias_q is not None:
        acc += np.asarray(bias_q, np.int64).reshape(1, o, 1, 1)
    return acc


def qlinear_conv(
    x_q: np.ndarray,
    x_scale: float,
    x_zp: int,
    w_q: np.ndarray,
    w_scale: ScaleLike,
    w_zp: ZeroPointLike,
    bias_q: np.ndarray | None,
    y_scale: float,
    y_zp: int,
    *,
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilations: Sequence[int] = (1, 1),
    group: int = 1,
    y_qtype: Any = None,
    relu: bool = False,
    requant: Requant = "integer",
) -> np.ndarray:
    """ONNX QLinearConv from integers: int accumulation, int32 bias, requantize, clamp.

    ``w_scale`` is a scalar or one scale per output channel; ``bias_q`` has scale
    ``S_x * S_w`` and zero point 0. ``y_qtype`` defaults to the input's dtype.
    """
    geometry = {"strides": strides, "pads": pads, "dilations": dilations, "group": group}
    acc = conv_accumulate(x_q, x_zp, w_q, w_zp, bias_q, **geometry)
    qtype = np.asarray(x_q).dtype if y_qtype is None else y_qtype
    return _requantize_output(acc, x_scale, w_scale, y_scale, int(y_zp), qtype, relu, requant, axis=1)


def matmul_accumulate(a_q: np.ndarray, a_zp: int, b_q: np.ndarray, b_zp: ZeroPointLike) -> np.ndarray:
    """Integer accumulators ``(a_q - Z_a) @ (b_q - Z_b)`` as int64; an array Z_b is per column."""
    return np.matmul(_centered(a_q, a_zp), _centered(b_q, b_zp, axis=-1))


def qlinear_matmul(
    a_q: np.ndarray,
    a_scale: float,
    a_zp: int,
    b_q: np.ndarray,
    b_scale: ScaleLike,
    b_zp: ZeroPointLike,
    y_scale: float,
    y_zp: int,
    *,
    y_qtype: Any = None,
    relu: bool = False,
    requant: Requant = "integer",
) -> np.ndarray:
    """ONNX QLinearMatMul from integers; ``b_scale``/``b_zp`` are per tensor or per column."""
    acc = matmul_accumulate(a_q, a_zp, b_q, b_zp)
    qtype = np.asarray(a_q).dtype if y_qtype is None else y_qtype
    return _requantize_output(acc, a_scale, b_scale, y_scale, int(y_zp), qtype, relu, requant, axis=-1)


def qlinear_gemm(
    a_q: np.ndarray,
    a_scale: float,
    a_zp: int,
    b_q: np.ndarray,
    b_scale: ScaleLike,
    b_zp: ZeroPointLike,
    bias_q: np.ndarray | None,
    y_scale: float,
    y_zp: int,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    y_qtype: Any = None,
    relu: bool = False,
    requant: Requant = "integer",
) -> np.ndarray:
    """A quantized 2-D Gemm as ONNX Runtime's QGemm defines it: ``alpha S_a S_b (A @ B + C) / S_y``.

    The int32 bias C is in the accumulator's units, ``alpha * S_a * S_b``: a QDQ bias of another
    scale must be converted by the caller. Per-channel ``b_scale``/``b_zp`` follow the output
    columns (rows of B when ``trans_b``).
    """
    a, b = np.asarray(a_q), np.asarray(b_q)
    acc = matmul_accumulate(a.T if trans_a else a, a_zp, b.T if trans_b else b, b_zp)
    if bias_q is not None:
        acc += np.asarray(bias_q, np.int64)
    qtype = a.dtype if y_qtype is None else y_qtype
    return _requantize_output(acc, a_scale, b_scale, y_scale, int(y_zp), qtype, relu, requant, axis=-1, alpha=alpha)


def _receptive_field(
    x_q: np.ndarray,
    x_zp: int,
    n: int,
    channels: slice,
    kernel: tuple[int, int],
    h: int,
    w: int,
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """The input taps behind output position ``(h, w)`` and a ``(kh, kw)`` mask of the unpadded ones.

    Padded taps hold ``x_zp``: the quantized value of real 0, which is what padding means.
    """
    rows = h * strides[0] - pads[0] + np.arange(kernel[0]) * dilations[0]
    cols = w * strides[1] - pads[1] + np.arange(kernel[1]) * dilations[1]
    height, width = x_q.shape[2:]
    in_bounds = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    taps = x_q[n, channels][:, rows.clip(0, height - 1)][:, :, cols.clip(0, width - 1)].astype(np.int64)
    return np.where(in_bounds, taps, int(x_zp)), in_bounds


def explain_conv_element(
    x_q: np.ndarray,
    x_scale: float,
    x_zp: int,
    w_q: np.ndarray,
    w_scale: ScaleLike,
    w_zp: ZeroPointLike,
    bias_q: np.ndarray | None,
    y_scale: float,
    y_zp: int,
    n: int,
    c: int,
    h: int,
    w: int,
    *,
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilations: Sequence[int] = (1, 1),
    group: int = 1,
    y_qtype: Any = None,
    relu: bool = False,
    requant: Requant = "integer",
) -> dict[str, Any]:
    """Every intermediate value behind output element ``y[n, c, h, w]`` of :func:`qlinear_conv`.

    Keys: ``x_q``, ``w_q`` and ``products`` (``(x_q - Z_x)(w_q - Z_w)``), each ``(C/group, kh, kw)``;
    ``in_bounds`` (False at padding); ``acc`` (the int32 sum), ``bias``, ``acc_with_bias``;
    ``real_value`` (``S_x S_w acc_with_bias``, what float arithmetic on the dequantized inputs
    gives); ``multiplier`` (the decomposed M); ``before_clamp`` (requantized plus Z_y);
    ``y_q`` (after the clamp); ``y_real`` (``S_y (y_q - Z_y)``).
    Computed from the receptive field alone, so it also checks the vectorised kernel.
    """
    x_q, w_q = np.asarray(x_q), np.asarray(w_q)
    o, cg, kh, kw = w_q.shape
    out_h = conv_output_size(x_q.shape[2], kh, strides[0], dilations[0], pads[0], pads[2])
    out_w = conv_output_size(x_q.shape[3], kw, strides[1], dilations[1], pads[1], pads[3])
    if not (0 <= n < x_q.shape[0] and 0 <= c < o and 0 <= h < out_h and 0 <= w < out_w):
        raise Q8Error(f"Output element ({n}, {c}, {h}, {w}) is outside ({x_q.shape[0]}, {o}, {out_h}, {out_w}).")
    first = (c // (o // group)) * cg
    channels = slice(first, first + cg)
    patch, in_bounds = _receptive_field(x_q, x_zp, n, channels, (kh, kw), h, w, strides, pads, dilations)
    w_zero = int(np.broadcast_to(np.asarray(w_zp), (o,))[c])
    w_scale_c = float(np.broadcast_to(np.asarray(w_scale, np.float32), (o,))[c])
    products = (patch - int(x_zp)) * (w_q[c].astype(np.int64) - w_zero)
    acc = int(products.sum())
    bias = 0 if bias_q is None else int(np.asarray(bias_q)[c])
    scaled = _scale_accumulators(np.array([acc + bias]), x_scale, w_scale_c, y_scale, requant, axis=0)
    before_clamp = int(scaled[0]) + int(y_zp)
    qmin, qmax = _output_range(x_q.dtype if y_qtype is None else y_qtype, int(y_zp), relu)
    y_q = min(max(before_clamp, qmin), qmax)
    return {
        "x_q": patch,
        "in_bounds": in_bounds,
        "w_q": w_q[c].astype(np.int64),
        "products": products,
        "acc": acc,
        "bias": bias,
        "acc_with_bias": acc + bias,
        "real_value": float(np.float32(x_scale)) * w_scale_c * (acc + bias),
        "multiplier": channel_multipliers(x_scale, w_scale_c, y_scale)[0],
        "before_clamp": before_clamp,
        "y_q": y_q,
        "y_real": float(np.float32(y_scale)) * (y_q - int(y_zp)),
    }
