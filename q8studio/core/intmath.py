"""Requantization arithmetic: turning an int32 accumulator into an 8-bit output.

After an integer convolution or matrix product, the real result is ``S_in * S_w * acc``;
in output units that is ``M * acc`` with ``M = S_in * S_w / S_out``. Two ways of applying M
are offered, because they answer different questions:

* :func:`requantize` is the textbook integer-only path: ``M ≈ M0 * 2**-shift`` with ``M0`` a
  31-bit integer, so run time needs one int64 multiply and a rounding right shift. This is
  what integer-only accelerators do and what the explanation shows.
* :func:`requantize_float32` mirrors ONNX Runtime's CPU kernels (QLinearConv, QLinearMatMul, QGemm),
  which compute ``M`` in float32 and round ``float32(acc) * M``. Matching them bit for bit
  proves the reference kernels describe what the runtime really computes.

Both round half to even: it is what ONNX Runtime's float rounding does, so the integer path
agrees with it at exact ties, and it is unbiased (ties do not drift the mean of a layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import Q8Error

MAX_MULTIPLIER_BITS = 31
"""M0 < 2**31 and |acc| <= 2**31 keep ``|acc * M0| < 2**62``, safely inside int64."""


@dataclass(frozen=True)
class Multiplier:
    """A real multiplier M written as ``m0 * 2**-shift`` with ``m0`` in ``[2**(bits-1), 2**bits)``.

    ``shift`` is a right shift; it is negative (a left shift) only when M >= 2**bits.
    ``rel_error`` is signed: ``approx / real - 1``.
    """

    m0: int
    shift: int
    real: float
    approx: float
    rel_error: float


def decompose_multiplier(M: float, bits: int = MAX_MULTIPLIER_BITS) -> Multiplier:
    """Split M into a ``bits``-bit integer mantissa and a power-of-two shift.

    The mantissa is rounded to nearest, so the relative error is at most ``2**-bits``.
    """
    M = float(M)
    if not math.isfinite(M) or M <= 0.0:
        raise Q8Error(f"A requantization multiplier must be a positive finite number, not {M}.")
    if not 1 <= bits <= MAX_MULTIPLIER_BITS:
        raise Q8Error(f"The multiplier mantissa must have 1 to {MAX_MULTIPLIER_BITS} bits, not {bits}.")
    fraction, exponent = math.frexp(M)  # M = fraction * 2**exponent, fraction in [0.5, 1)
    m0 = round(math.ldexp(fraction, bits))  # exact scaling, then round half to even
    if m0 == 1 << bits:  # the fraction rounded up to 1.0
        m0 >>= 1
        exponent += 1
    shift = bits - exponent
    approx = math.ldexp(m0, -shift)
    return Multiplier(m0=m0, shift=shift, real=M, approx=approx, rel_error=approx / M - 1.0)


def _multiplier_arrays(
    mult: Multiplier | Sequence[Multiplier], ndim: int, axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(m0, shift)`` as int64 arrays that broadcast against an ``ndim``-D accumulator.

    A sequence means one multiplier per channel along ``axis`` (per-channel weights).
    """
    mults = [mult] if isinstance(mult, Multiplier) else list(mult)
    shape = [1] * ndim
    if len(mults) > 1:
        shape[axis] = len(mults)
    m0 = np.array([m.m0 for m in mults], dtype=np.int64).reshape(shape)
    shift = np.array([m.shift for m in mults], dtype=np.int64).reshape(shape)
    return m0, shift


def rounding_right_shift(value: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``value / 2**shift`` rounded half to even, in int64 arithmetic only.

    Needs ``shift >= 0`` and ``|value| < 2**62`` (always true for an int32 accumulator times a
    31-bit M0). The floor comes from the arithmetic shift; the bits shifted out decide whether
    to round up. Shifts above 62 give 0 because then ``|value| / 2**shift < 1/2``.
    """
    value, shift = np.broadcast_arrays(np.asarray(value, np.int64), np.asarray(shift, np.int64))
    s = np.clip(shift, 1, 62)
    floor = value >> s
    remainder = value & ((np.int64(1) << s) - 1)  # value mod 2**s, also for negative values
    half = np.int64(1) << (s - 1)
    round_up = (remainder > half) | ((remainder == half) & (floor & 1 == 1))
    return np.select([shift == 0, shift > 62], [value, 0], floor + round_up)


def apply_multiplier(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``round(acc * m0 * 2**-shift)`` in int64, saturating instead of overflowing on left shifts."""
    acc = np.asarray(acc)
    if acc.dtype.kind not in "iu":
        raise Q8Error(f"Accumulators must be integers, not {acc.dtype}.")
    acc = acc.astype(np.int64)
    if acc.size and int(np.abs(acc).max()) > 2**31:
        raise Q8Error("Accumulators must fit in 32 bits for the int64 multiply not to overflow.")
    product = acc * m0
    right = rounding_right_shift(product, np.maximum(shift, 0))
    left = np.clip(-shift, 0, 62)  # only for M >= 2**bits, which saturates any 8-bit output
    limit = np.iinfo(np.int64).max >> left
    return np.where(shift < 0, np.clip(product, -limit, limit) << left, right)


def requantize(
    acc: np.ndarray,
    mult: Multiplier | Sequence[Multiplier],
    zero_point: int,
    qmin: int,
    qmax: int,
    *,
    axis: int = 1,
) -> np.ndarray:
    """Integer-only ``clamp(round(acc * M) + zero_point, qmin, qmax)`` as int64.

    ``mult`` is one :class:`Multiplier` or one per channel along ``axis``.
    """
    m0, shift = _multiplier_arrays(mult, np.ndim(acc), axis)
    return np.clip(apply_multiplier(acc, m0, shift) + int(zero_point), qmin, qmax)


def float32_multiplier(in_scale: float, w_scale: float | np.ndarray, out_scale: float) -> np.ndarray:
    """M as ONNX Runtime's CPU kernels compute it: ``(S_in * S_w) / S_out`` in float32, in that order.

    The order matters: the three orderings give different float32 results for some scales.
    """
    in_scale, w_scale, out_scale = (np.asarray(s, np.float32) for s in (in_scale, w_scale, out_scale))
    return np.asarray(in_scale * w_scale / out_scale, np.float32)


def requantize_float32(
    acc: np.ndarray,
    multiplier: float | np.ndarray,
    zero_point: int,
    qmin: int,
    qmax: int,
    *,
    axis: int = 1,
) -> np.ndarray:
    """``clamp(rint(float32(acc) * float32(M)) + zero_point)``: ONNX Runtime's float requantization.

    ``multiplier`` is a scalar or one value per channel along ``axis``. Both the int-to-float
    conversion and the product round to float32, which is why this path can differ from
    :func:`requantize` by one step when ``acc * M`` lies very close to a half-integer.
    The clamp happens in float before rounding, as in the runtime, so no cast can overflow.
    """
    multiplier = np.asarray(multiplier, np.float32)
    acc = np.asarray(acc)
    if multiplier.ndim:
        shape = [1] * acc.ndim
        shape[axis] = multiplier.size
        multiplier = multiplier.reshape(shape)
    zero_point = int(zero_point)
    product = np.clip(acc.astype(np.float32) * multiplier, qmin - zero_point, qmax - zero_point)
    return np.rint(product).astype(np.int64) + zero_point


def fma_float32(x: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float) -> np.ndarray:
    """``x * y + z`` of float32 values rounded once to float32, as a fused multiply-add instruction computes it.

    The product of two float32 values is exact in float64 (48 significant bits). The sum is rounded to float64
    by "round to odd": when it is inexact (its error, from Knuth's two-sum, is not zero) its last bit is forced
    to 1, so it never sits on a float32 rounding tie it did not reach exactly; rounding that to float32 then
    gives the correctly rounded result (53 >= 24 + 2 bits). Rounding float64 to nearest twice would be off by
    one float32 step in rare ties.
    """
    product = np.asarray(x, np.float32).astype(np.float64) * np.asarray(y, np.float32).astype(np.float64)
    addend = np.asarray(z, np.float32).astype(np.float64)
    total = product + addend
    back = total - addend
    error = (product - back) + (addend - (total - back))
    even = (total.view(np.int64) & 1) == 0
    towards = np.where(error > 0, np.inf, -np.inf)
    total = np.where((error != 0) & even, np.nextafter(total, towards), total)
    return total.astype(np.float32)
