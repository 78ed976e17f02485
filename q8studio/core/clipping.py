"""Quantization ranges from calibration statistics, and the scale/zero-point arithmetic behind them.

Choosing the clipping range trades clipping error (values outside saturate) against rounding
error (a wider range means a coarser step); each method in :data:`METHODS` makes that trade
differently. ``quant_params`` and ``fake_quantize`` reproduce onnxruntime's arithmetic, so the
errors estimated here are the ones the quantized model will show.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .errors import Q8Error
from .stats import HIST_BINS, TensorStats

METHODS: tuple[str, ...] = ("minmax", "percentile", "entropy", "mse", "ema")

_KL_SMOOTHING = 1e-4
"""Mass moved to the reference support so the KL divergence stays finite where Q is empty."""
_KL_CANDIDATES = 2048
"""Most thresholds the entropy search tries on one side: TensorRT's recipe tries 2,048 bins' edges."""
_KL_BLOCK = 256
"""Candidate cuts the entropy search computes together: enough to amortise numpy's cost per call, few
enough that its scratch arrays (0.5 MB each with 256 levels) stay in cache."""
_MSE_CANDIDATES = 100
"""Thresholds per stage of the MSE search (a coarse grid over (0, max|x|], then a fine one)."""


@dataclass(frozen=True)
class QuantType:
    """An integer target: its name and the codes it may use."""

    name: str
    qmin: int
    qmax: int

    @property
    def levels(self) -> int:
        return self.qmax - self.qmin + 1


UINT8 = QuantType("uint8", 0, 255)
INT8 = QuantType("int8", -128, 127)
INT8_SYMMETRIC_WEIGHTS = QuantType("int8", -127, 127)


def effective_qtype(qtype: QuantType, symmetric: bool) -> QuantType:
    """The codes onnxruntime really uses: it drops -128 whenever int8 is symmetric."""
    return INT8_SYMMETRIC_WEIGHTS if symmetric and qtype == INT8 else qtype


# --- scale and zero point -------------------------------------------------------------------


def quant_params(
    rmin: ArrayLike, rmax: ArrayLike, qtype: QuantType, symmetric: bool
) -> tuple[np.float32 | np.ndarray, int | np.ndarray]:
    """Scale (float32) and zero point for the range ``[rmin, rmax]``, exactly as onnxruntime.

    Like ``onnxruntime.quantization.quant_utils.compute_scale_zp`` on float32 ranges: the range is
    widened to include 0 (so 0 is exactly representable), symmetrised if asked, the scale is
    computed in float64 and rounded to float32 last, the zero point is rounded half to even, and a
    scale below float32's smallest normal becomes (1.0, 0). Works elementwise on arrays (one
    range per channel); scalars give ``(np.float32, int)``.
    """
    lo = np.minimum(np.asarray(rmin, dtype=np.float32), 0).astype(np.float64)
    hi = np.maximum(np.asarray(rmax, dtype=np.float32), 0).astype(np.float64)
    if symmetric:
        hi = np.maximum(-lo, hi)
        lo = -hi
    scale = (hi - lo) / (qtype.qmax - qtype.qmin)
    degenerate = scale < np.finfo(np.float32).tiny
    scale = np.where(degenerate, 1.0, scale)
    if symmetric:
        zero_point = np.full(scale.shape, np.round((qtype.qmin + qtype.qmax) / 2.0))
    else:
        zero_point = np.round(qtype.qmin - lo / scale)
    zero_point = np.where(degenerate, 0, zero_point).astype(np.int64)
    scale = scale.astype(np.float32)
    if scale.ndim == 0:
        return np.float32(scale), int(zero_point)
    return scale, zero_point


def fake_quantize(x: ArrayLike, scale: ArrayLike, zero_point: ArrayLike, qtype: QuantType) -> np.ndarray:
    """Quantize then dequantize in float32, as QuantizeLinear/DequantizeLinear do (ties to even)."""
    s = np.asarray(scale, dtype=np.float32)
    z = np.asarray(zero_point, dtype=np.float32)
    q = np.clip(np.rint(np.asarray(x, dtype=np.float32) / s) + z, qtype.qmin, qtype.qmax)
    return (q - z) * s


# --- weights ----------------------------------------------------------------------------------


def weight_channel_axis(op_type: str, attrs: dict, weight_rank: int) -> int:
    """The output-channel axis of a node's weight: where the int8 model's per-channel scales lie.

    For MatMul this is the last axis (the output features of B). onnxruntime's QDQ default for
    MatMul is axis 1, which is that axis only for 2-D weights; q8studio's quantizer call sets it
    to -1 (``QDQOpTypePerChannelSupportToAxis`` in quantize.py), so a batched [B, K, N] weight gets
    one scale per output feature too. A grouped ConvTranspose's weight has no such axis: its axis 1
    holds C_out/group slices, and the quantizer gets it per tensor (``weightscales.per_tensor_weights``).
    """
    if op_type == "Conv":
        return 0
    if op_type == "ConvTranspose":
        return 1
    if op_type == "Gemm":
        return 0 if attrs.get("transB", 0) else 1
    if op_type == "MatMul":
        return weight_rank - 1
    raise Q8Error(f"Per-channel weights are not supported for {op_type} nodes.")


# --- activation ranges ------------------------------------------------------------------------


def needs_histogram(method: str) -> bool:
    """minmax and ema work from running extremes alone; the other methods search a histogram."""
    return method not in ("minmax", "ema")


def method_for(tensor: str, method: str, outputs: Collection[str]) -> str:
    """The clipping method ``tensor`` gets: ``method``, except that a model output keeps its observed range
    (minmax): a classifier's largest outputs decide its prediction, and clipping them turns the top classes
    into ties."""
    return "minmax" if tensor in outputs else method


def activation_range(
    stats: TensorStats,
    method: str,
    *,
    qtype: QuantType = UINT8,
    symmetric: bool = False,
    percentile: float = 99.99,
) -> tuple[float, float]:
    """The clipping range ``(rmin, rmax)`` of an activation, always containing 0.

    ``symmetric`` changes how percentile, entropy and MSE search (on |x|, giving ``(-T, T)``), and
    makes minmax and ema ranges ``(-m, m)``: the range reported is the one the model uses.
    """
    if method not in METHODS:
        raise Q8Error(f"Unknown clipping method {method!r}; choose one of: {', '.join(METHODS)}.")
    if not 0.0 < percentile <= 100.0:
        raise Q8Error(f"The percentile must be in (0, 100], not {percentile}.")
    if stats.count == 0:
        raise Q8Error(f"Tensor {stats.name!r} received no calibration data.")
    if needs_histogram(method) and not stats.histogram:
        raise Q8Error(f"The {method} method needs a histogram of {stats.name!r}, which was not collected.")
    if method == "minmax":
        lo, hi = stats.min, stats.max
    elif method == "ema":
        lo, hi = stats.ema_min, stats.ema_max
    elif stats.max_abs == 0.0:
        lo = hi = 0.0
    elif method == "percentile":
        lo, hi = _percentile_range(stats, percentile, symmetric)
    elif method == "entropy":
        lo, hi = _entropy_range(stats, qtype, symmetric)
    else:
        lo, hi = _mse_range(stats, qtype, symmetric)
    if symmetric:
        reach = max(-lo, hi)
        lo, hi = -reach, reach
    return min(float(lo), 0.0), max(float(hi), 0.0)


def _clip_at(stats: TensorStats, threshold: ArrayLike, symmetric: bool) -> tuple[ArrayLike, ArrayLike]:
    """The range a threshold T on |x| stands for (works on arrays of thresholds too)."""
    if symmetric:
        return -threshold, threshold
    return np.maximum(stats.min, -threshold), np.minimum(stats.max, threshold)


def _hist_quantile(counts: np.ndarray, edges: np.ndarray, fraction: float) -> float:
    """Value below which ``fraction`` of the histogram's mass lies, linear inside the bin."""
    cumulative = np.cumsum(counts)
    target = fraction * cumulative[-1]
    i = min(int(np.searchsorted(cumulative, target)), counts.size - 1)
    below = cumulative[i - 1] if i else 0
    inside = (target - below) / counts[i] if counts[i] else 0.0
    return float(edges[i] + inside * (edges[i + 1] - edges[i]))


def _percentile_range(stats: TensorStats, percentile: float, symmetric: bool) -> tuple[float, float]:
    """p-th percentile of |x| as ``(-T, T)``, or the (100-p)-th and p-th percentiles of x."""
    if symmetric:
        counts, edges = stats.abs_hist()
        top = min(_hist_quantile(counts, edges, percentile / 100.0), stats.max_abs)
        return -top, top
    edges = stats.edges
    lo = _hist_quantile(stats.hist, edges, 1.0 - percentile / 100.0)
    hi = _hist_quantile(stats.hist, edges, percentile / 100.0)
    return float(np.clip(lo, stats.min, stats.max)), float(np.clip(hi, stats.min, stats.max))


def _entropy_range(stats: TensorStats, qtype: QuantType, symmetric: bool) -> tuple[float, float]:
    """Range minimising KL(P || Q), the TensorRT calibration recipe (Migacz 2017).

    Each sign's tail is searched on its own one-sided histogram: folding both signs into |x| would
    let the denser side decide for the other (an input whose background sits at -0.96 and strokes
    reach +2.2 was clipped to +-0.96, and the demo lost 9 points of top-1). A symmetric range
    takes the larger of the two thresholds, each searched with the half of the codes its sign gets.
    Asymmetric non-negative data (ReLU outputs) spend every code on [0, T].
    """
    half = HIST_BINS // 2
    positive, negative, edges = stats.hist[half:], stats.hist[:half][::-1], stats.edges[half:]
    if symmetric:
        levels = qtype.levels // 2
        top = max(
            _kl_threshold(positive, edges, levels, stats.max, zero_bin_first=True) if stats.max > 0.0 else 0.0,
            _kl_threshold(negative, edges, levels, -stats.min, zero_bin_first=False) if stats.min < 0.0 else 0.0,
        )
        return -top, top
    if stats.min >= 0.0:
        return 0.0, _kl_threshold(positive, edges, qtype.levels, stats.max, zero_bin_first=True)
    if stats.max <= 0.0:
        return -_kl_threshold(negative, edges, qtype.levels, -stats.min, zero_bin_first=False), 0.0
    levels = qtype.levels // 2
    low = _kl_threshold(negative, edges, levels, -stats.min, zero_bin_first=False)
    high = _kl_threshold(positive, edges, levels, stats.max, zero_bin_first=True)
    return -low, high


def _kl_threshold(
    counts: np.ndarray, edges: np.ndarray, levels: int, limit: float, *, zero_bin_first: bool
) -> float:
    """Threshold on a one-sided histogram (bin 0 nearest zero) minimising KL(P || Q).

    Tries bin edges from ``levels`` bins past the first non-empty one up to the last non-empty bin,
    every one of them up to :data:`_KL_CANDIDATES` (the 2,048 bins of the classic recipe), evenly
    spaced beyond. The classic recipe starts at ``levels`` because its data starts at zero; data that
    stays away from zero (energies in dB, a shifted input) must have its own ``levels`` bins too,
    or a cut just past its first bin turns P and Q into one identical spike, KL 0, and clips nearly
    every value. P is the
    histogram cut at i with the outliers added to its last bin; Q quantizes the cut histogram
    (without outliers) into ``levels`` groups of near-equal size, spread evenly over each group's
    non-empty bins. Q is constant on each group, so KL needs only group sums: prefix sums make
    every candidate O(levels) and the whole search vectorised. When bin 0 holds the exact zeros
    (``zero_bin_first``) it takes its neighbour's count, as in NVIDIA's calibrator: zeros are
    exact under any threshold, yet a ReLU's zero spike would dominate the KL.
    """
    h = counts.astype(np.float64)
    if zero_bin_first:
        h[0] = h[1]
    if not h.any():  # every binned value lies in the bin at zero, or none was binned: nothing to weigh
        return limit
    filled = np.flatnonzero(h)
    first_cut = min(int(filled[0]) + levels, h.size)  # data in the top few bins: the whole histogram
    last = max(int(filled[-1]) + 1, first_cut)
    step = -(-(last - first_cut + 1) // _KL_CANDIDATES)
    cuts = np.arange(last, first_cut - 1, -step)[::-1]  # the last non-empty edge is always a candidate
    kl = _kl_divergences(h, _KLPrefix.of(h), cuts, levels)
    return min(float(edges[cuts[np.argmin(kl)]]), limit)


@dataclass(frozen=True)
class _KLPrefix:
    """Prefix sums of a histogram (index i: the sum over bins < i) that every candidate cut reads."""

    mass: np.ndarray
    nonempty: np.ndarray
    xlogx: np.ndarray

    @classmethod
    def of(cls, h: np.ndarray) -> _KLPrefix:
        def prefix(values: np.ndarray) -> np.ndarray:
            return np.concatenate([np.zeros(1), np.cumsum(values)])

        return cls(prefix(h), prefix(h > 0), prefix(_xlogx(h)))


def _kl_divergences(h: np.ndarray, prefix: _KLPrefix, cuts: np.ndarray, levels: int) -> np.ndarray:
    """KL(P || Q) for each cut of histogram ``h`` (see :func:`_kl_threshold`), :data:`_KL_BLOCK` cuts at a
    time in scratch arrays allocated once: the kernel hands out fresh arrays of this size zeroed page by
    page, which made the search up to 4x slower than the arithmetic itself."""
    scratch = _KLScratch.of(min(cuts.size, _KL_BLOCK), levels)
    blocks = [cuts[start : start + _KL_BLOCK] for start in range(0, cuts.size, _KL_BLOCK)]
    return np.concatenate([_kl_block(h, prefix, block, levels, scratch) for block in blocks])


@dataclass(frozen=True)
class _KLScratch:
    """Arrays one block of candidate cuts is computed in: group edges, prefix sums read at them, and
    each group's mass and non-empty bins."""

    edges: np.ndarray
    at_edges: np.ndarray
    group_mass: np.ndarray
    group_bins: np.ndarray

    @classmethod
    def of(cls, rows: int, levels: int) -> _KLScratch:
        return cls(np.empty((rows, levels + 1), np.intp), np.empty((rows, levels + 1)), np.empty((rows, levels)),
                   np.empty((rows, levels)))


def _kl_block(h: np.ndarray, prefix: _KLPrefix, cuts: np.ndarray, levels: int, scratch: _KLScratch) -> np.ndarray:
    """KL(P || Q) for a block of at most :data:`_KL_BLOCK` cuts, in place in ``scratch``."""
    rows = cuts.size
    edges, at_edges = scratch.edges[:rows], scratch.at_edges[:rows]
    group_mass, group_bins = scratch.group_mass[:rows], scratch.group_bins[:rows]
    mass, nonempty = prefix.mass, prefix.nonempty
    total, inside, cut_bin = mass[-1], mass[cuts], h[cuts - 1]
    last = cut_bin + (total - inside)  # P's last bin, outliers included
    np.multiply.outer(cuts, np.arange(levels + 1), out=edges)
    if levels & (levels - 1) == 0:  # 2**k levels, as every integer type has: a shift, 8x faster than //
        edges >>= levels.bit_length() - 1
    else:
        edges //= levels
    # Every edge is a valid index; mode "clip" spares the checked copy that "raise" makes with out=, 3x slower.
    np.take(mass, edges, out=at_edges, mode="clip")
    np.subtract(at_edges[:, 1:], at_edges[:, :-1], out=group_mass)
    np.take(nonempty, edges, out=at_edges, mode="clip")
    np.subtract(at_edges[:, 1:], at_edges[:, :-1], out=group_bins)
    group_bins[:, -1] += (last > 0).astype(np.float64) - (cut_bin > 0)
    support = nonempty[cuts] - (cut_bin > 0) + (last > 0)
    group_bins *= inside[:, None]
    np.maximum(group_bins, 1.0, out=group_bins)
    q = np.divide(group_mass, group_bins, out=group_bins)
    q *= 1.0 - _KL_SMOOTHING
    q += (_KL_SMOOTHING / support)[:, None]
    log_q = np.log(q, out=q)
    group_mass[:, -1] += total - inside  # now P's mass per group
    p_log_p = (prefix.xlogx[cuts - 1] + _xlogx(last)) / total - np.log(total)
    return p_log_p - np.einsum("ij,ij->i", group_mass, log_q) / total


def _xlogx(x: np.ndarray) -> np.ndarray:
    return x * np.log(np.where(x > 0, x, 1.0))


def _mse_range(stats: TensorStats, qtype: QuantType, symmetric: bool) -> tuple[float, float]:
    """Range minimising the expected quantize-dequantize squared error over the histogram.

    A grid of thresholds over (0, max|x|] (max|x| itself included, so never worse than minmax
    on the histogram), then a finer grid between the best one's neighbours.
    """
    top, n = stats.max_abs, _MSE_CANDIDATES
    step = top / n
    coarse = step * np.arange(1, n + 1)
    best = coarse[np.argmin(_qdq_errors(stats, coarse, qtype, symmetric))]
    fine = np.linspace(max(best - step, step / n), min(best + step, top), n)
    best = fine[np.argmin(_qdq_errors(stats, fine, qtype, symmetric))]
    lo, hi = _clip_at(stats, best, symmetric)
    return float(lo), float(hi)


def _qdq_errors(stats: TensorStats, thresholds: np.ndarray, qtype: QuantType, symmetric: bool) -> np.ndarray:
    """Sum over the histogram of count * (c - qdq(c))^2, for the range of each threshold."""
    lo, hi = _clip_at(stats, thresholds, symmetric)
    return _range_errors(stats, np.atleast_1d(lo), np.atleast_1d(hi), qtype, symmetric)


def _range_errors(
    stats: TensorStats, lo: np.ndarray, hi: np.ndarray, qtype: QuantType, symmetric: bool
) -> np.ndarray:
    used = np.flatnonzero(stats.hist)
    centers, counts = stats.centers[used], stats.hist[used].astype(np.float64)
    real = effective_qtype(qtype, symmetric)
    scale, zero_point = quant_params(lo, hi, real, symmetric)
    approx = fake_quantize(centers[None, :], scale[:, None], zero_point[:, None], real)
    return np.sum(counts * (centers - approx) ** 2, axis=1)

