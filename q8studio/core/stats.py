"""Streaming per-tensor statistics for calibration: min/max, moving averages and a histogram.

Calibration runs every intermediate tensor of every sample through :meth:`TensorStats.update`,
so memory must not grow with the number of samples and the update must cost a few ns per
element. The histogram is exact under streaming: it covers ``[-bound, bound]`` with ``bound``
the smallest power of two >= max|x| seen so far, and when a batch needs a larger bound the
bins are merged pairwise, which is lossless because the bin grid of ``2*bound`` is the grid of
``bound`` with every other edge removed. Feeding data in any batching therefore gives the
histogram computed in one shot with the final bound, bit for bit.

Binning costs about 1.5 ns a value, more than ONNX Runtime spends computing one, so the histogram
of a large activation may take a systematic sample: every ``stride``-th value of the stream of
all values ever seen. Min, max, EMA and count see every value (but for the minimum of a
non-negative activation summarised inside the model, see :mod:`.summaries`); and since the sample
is defined on the whole stream, not per batch, the bit-for-bit property above holds for it too. The
EMA likewise steps once per sample (a row of the leading axis), not once per batch, so the same
samples give the same EMA whatever their batching.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .errors import Q8Error

HIST_BINS: int = 8192
"""Bins of the signed histogram; a power of two so that halving the resolution is exact."""

_HALF = HIST_BINS // 2
_MIN_BOUND = 2.0**-64
"""Floor for the bound so that ``HIST_BINS / (2 * bound)`` stays finite in float32."""
_CHUNK = 1 << 16
"""Elements binned at a time: the float32/intp scratch buffers stay in L2 cache."""

HIST_VALUES_PER_SAMPLE: int = 8192
"""Calibration's default cap on the values of one sample of one tensor that enter its histogram.

On a 224x224 SqueezeNet with 200 samples (benchmarks/histogram_sampling.py), binning every value
made the calibration pass 2.8x plain inference, this cap 1.3x (with :mod:`.summaries`). Ranges then
moved from those of every value by a median 0.14% (percentile 99.99) and 0.30% (MSE), less than
calibrating on another 200 samples moves them (0.29%, 0.91%), and 2.9% (entropy; 1.6%).
"""


def sampling_stride(values_per_sample: int, budget: int) -> int:
    """The stride that keeps about ``budget`` of ``values_per_sample`` values (1: keep all).

    The smallest prime >= ``values_per_sample / budget`` that does not divide ``values_per_sample``:
    such a stride is coprime with every dimension of the tensor, so the sample reaches every
    channel of a channels-last layout, and its offset moves from one sample to the next.
    """
    if budget <= 0 or values_per_sample <= budget:
        return 1
    stride = -(-values_per_sample // budget)
    while not _is_prime(stride) or values_per_sample % stride == 0:
        stride += 1
    return stride


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _bound_for(max_abs: float) -> float:
    """Smallest power of two >= ``max_abs``; 1.0 for all-zero data so the edges stay usable."""
    if max_abs == 0.0:
        return 1.0
    mantissa, exponent = math.frexp(max_abs)  # max_abs = mantissa * 2**exponent, mantissa in [0.5, 1)
    bound = math.ldexp(1.0, exponent - 1) if mantissa == 0.5 else math.ldexp(1.0, exponent)
    return max(bound, _MIN_BOUND)


def _double_bins(hist: np.ndarray) -> np.ndarray:
    """The histogram over ``[-2b, 2b]`` from the one over ``[-b, b]``: bin i moves to N/4 + i//2."""
    out = np.zeros_like(hist)
    out[HIST_BINS // 4 : 3 * HIST_BINS // 4] = hist.reshape(-1, 2).sum(axis=1)
    return out


def _rebinned(hist: np.ndarray, at_bound: int, bound: float, target: float) -> tuple[np.ndarray, int]:
    """The histogram and at-bound count over ``[-target, target]`` from those over ``[-bound, bound]``
    (``target = bound * 2**k``; the input is not modified). Bin pairs merge, and the ``at_bound``
    values equal to +bound leave the merged last bin for the one where +bound now falls."""
    while bound < target:
        hist = _double_bins(hist)
        hist[3 * HIST_BINS // 4 - 1] -= at_bound  # where the old last bin went
        hist[3 * HIST_BINS // 4] += at_bound
        at_bound, bound = 0, bound * 2.0
    return hist, at_bound


def _bin_into(hist: np.ndarray, values: np.ndarray, bound: float, reaches_bound: bool = True) -> None:
    """Add float32 ``values`` (all within ``[-bound, bound]``) to ``hist`` in place.

    The index ``floor((x + bound) / (2 * bound) * N)`` is computed as ``floor(x * s) + N/2`` with
    ``s = N / (2 * bound)`` a power of two: the product is exact in float32, whereas ``x + bound``
    would round and could move a value across a bin edge differently for ``bound`` and
    ``2 * bound``, breaking the exact merge. (One documented exception: when ``bound >= 8192``, a
    negative subnormal whose product underflows to -0 lands in the zero bin instead of the one
    below it.) ``+bound`` itself maps to index N and is clipped into the last bin; a caller that
    knows no value equals ``+bound`` (``reaches_bound`` False) spares that step.
    """
    scale = np.float32(HIST_BINS / (2.0 * bound))
    fbuf = np.empty(min(values.size, _CHUNK), dtype=np.float32)
    ibuf = np.empty(fbuf.size, dtype=np.intp)
    for start in range(0, values.size, _CHUNK):
        chunk = values[start : start + _CHUNK]
        f, idx = fbuf[: chunk.size], ibuf[: chunk.size]
        np.multiply(chunk, scale, out=f)
        np.floor(f, out=idx, casting="unsafe")  # integral after floor, so the cast is exact
        np.add(idx, _HALF, out=idx)
        if reaches_bound:
            np.minimum(idx, HIST_BINS - 1, out=idx)
        np.add.at(hist, idx, 1)  # numpy >= 1.25 runs this faster than bincount plus a sum


@dataclass(frozen=True, eq=False)
class BatchExtent:
    """How many values one batch of a tensor had and the extremes of each of its rows (a row of the
    leading axis, one sample): all that min/max/EMA need of it."""

    count: int
    row_lo: np.ndarray
    row_hi: np.ndarray

    @cached_property
    def lo(self) -> float:
        """Cached, and read directly from a single row: calibration asks for it several times for
        each of thousands of small batches, where numpy's reductions cost microseconds a call."""
        return _extreme(self.row_lo, np.min, math.inf)

    @cached_property
    def hi(self) -> float:
        return _extreme(self.row_hi, np.max, -math.inf)

    @staticmethod
    def union(extents: Iterable[BatchExtent]) -> BatchExtent:
        """The extent of several tensors' batches together (say the inputs of a Concat).

        Parts with as many rows hold the same samples (a Concat along any axis but the first): row i
        of the union spans row i of every part. Otherwise the rows follow one another, as a Concat
        along the first axis lays them out.
        """
        seen = [e for e in extents if e.count]
        if not seen:
            return EMPTY_BATCH
        count = sum(e.count for e in seen)
        if len({e.row_lo.size for e in seen}) == 1:
            return BatchExtent(count, np.minimum.reduce([e.row_lo for e in seen]),
                               np.maximum.reduce([e.row_hi for e in seen]))
        return BatchExtent(count, np.concatenate([e.row_lo for e in seen]), np.concatenate([e.row_hi for e in seen]))


def _extreme(rows: np.ndarray, reduce: Callable[[np.ndarray], Any], empty: float) -> float:
    if rows.size == 1:
        return float(rows[0])
    return float(reduce(rows)) if rows.size else empty


EMPTY_BATCH = BatchExtent(0, np.zeros(0, np.float32), np.zeros(0, np.float32))


@dataclass(eq=False)  # identity equality: comparing histograms elementwise is never meant
class TensorStats:
    """Running statistics of one tensor over the calibration set; memory independent of sample count.

    ``bound`` is 0 before any data, 1.0 while every value seen is zero (zeros always fall in bin
    N/2 whatever the bound, so the first non-zero batch may then set any bound, even a smaller
    one), and otherwise the smallest power of two >= max|x|. ``at_bound`` counts values equal to
    ``+bound``: they are clipped into the last bin, and must move to their own bin when the bound
    doubles for the merge to stay exact. With ``histogram=False`` only min, max and the EMA are
    kept: minmax and ema need nothing more, and binning is most of calibration's cost. The EMA
    (``momentum``: the weight kept at each step) folds in each sample's extremes in turn.
    ``values_per_sample`` caps the values of one sample (a row of the batch's leading axis) that
    are binned (0: all); the first batch fixes the resulting ``stride``. ``parts`` names the tensors
    whose values these statistics combine when they were not computed from values of their own
    (see :meth:`combine_histograms`).
    """

    name: str
    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    bound: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, dtype=np.int64))
    ema_min: float | None = None
    ema_max: float | None = None
    momentum: float = 0.9
    at_bound: int = 0
    histogram: bool = True
    values_per_sample: int = 0
    stride: int = 0
    parts: tuple[str, ...] = ()

    @property
    def max_abs(self) -> float:
        """Largest |x| seen (0.0 before any data)."""
        return max(-self.min, self.max, 0.0)

    def update(self, batch: np.ndarray, samples: int | None = None) -> BatchExtent:
        """Add one batch of values (any shape); NaN or Inf raise :class:`Q8Error` naming the tensor.

        A row of the leading axis is one sample, unless ``samples`` (how many samples the run that
        computed ``batch`` was given) says otherwise: a tensor whose leading axis is not that long has
        no batch axis (a 1-D activation of a single sample, a flattened batch), and its batch is one
        row, as one sample's EMA step and one sample's budget of binned values.
        """
        array = np.asarray(batch, dtype=np.float32)
        values = array.reshape(-1)
        if values.size == 0:
            return EMPTY_BATCH
        rows = array.shape[0] if array.ndim and (samples is None or array.shape[0] == samples) else 1
        per_row = values.reshape(rows, -1)
        extent = BatchExtent(values.size, per_row.min(axis=1), per_row.max(axis=1))
        if self.histogram and self.stride == 0:
            self.stride = sampling_stride(values.size // rows, self.values_per_sample)
        self._absorb(extent, values[(-self.count) % self.stride :: self.stride] if self.histogram else values)
        return extent

    def update_from_grid(self, grid: np.ndarray, row_max: np.ndarray, values_per_row: int, stride: int) -> BatchExtent:
        """Add one batch of a tensor summarised inside the model (:mod:`.summaries`): ``grid`` holds a
        regular sample of each sample's ``values_per_row`` values (one row per sample), each sampled
        value standing for ``stride`` of them, and ``row_max`` each sample's per-channel maxima. The
        grid is binned whole; the minimum is the grid's, which is why only tensors that cannot be
        negative are summarised: their quantization range starts at zero whatever their minimum."""
        rows = len(grid)
        values = np.asarray(grid, dtype=np.float32).reshape(-1)
        extent = BatchExtent(rows * values_per_row, values.reshape(rows, -1).min(axis=1),
                             np.asarray(row_max, dtype=np.float32).reshape(rows, -1).max(axis=1))
        if self.histogram:
            self.stride = stride
        self._absorb(extent, values)
        return extent

    def _absorb(self, extent: BatchExtent, sample: np.ndarray) -> None:
        """Count, min, max and EMA of a batch, and its ``sample`` into the histogram."""
        lo, hi = extent.lo, extent.hi
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise Q8Error(
                f"Tensor {self.name!r} contains NaN or infinite values; "
                "check the model and the calibration data."
            )
        if self.histogram:
            self._grow(_bound_for(max(-lo, hi, self.max_abs)))
            reaches_bound = hi == self.bound
            _bin_into(self.hist, sample, self.bound, reaches_bound)
            if reaches_bound:
                self.at_bound += int(np.count_nonzero(sample == hi))
        self.add_extent(extent)

    def add_extent(self, extent: BatchExtent) -> None:
        """Count, min, max and EMA of a batch, without its histogram: the whole update for a tensor
        whose values are binned as parts of other tensors (see :meth:`combine_histograms`)."""
        if extent.count == 0:
            return
        self.count += extent.count
        self.min, self.max = min(self.min, extent.lo), max(self.max, extent.hi)
        self._update_ema(extent.row_lo.tolist(), extent.row_hi.tolist())

    def combine_histograms(self, parts: Sequence[TensorStats]) -> None:
        """Set the histogram to that of the values of ``parts`` together, as for the output of a
        Concat, which holds exactly its inputs' values: it need not be computed (nor ONNX Runtime
        made to return it) when its inputs' histograms are at hand.

        Each part is re-binned to the common bound (exact) and weighted by its stride over the
        strides' gcd, which becomes the stride: a value binned 1 in s stands for s values. With
        equal strides that is a regular sample of every part; with every value binned it is, bit
        for bit, the histogram of the concatenated values.
        """
        seen = [part for part in parts if part.count > 0 and part.histogram]
        if not self.histogram or not seen:
            return
        self.stride = math.gcd(*(part.stride for part in seen))
        self.bound = _bound_for(max(part.max_abs for part in seen))
        self.hist = np.zeros(HIST_BINS, dtype=np.int64)
        self.at_bound = 0
        for part in seen:
            hist, at_bound = _rebinned(part.hist, part.at_bound, part.bound, self.bound)
            weight = part.stride // self.stride
            self.hist += weight * hist
            self.at_bound += weight * at_bound

    def _grow(self, bound: float) -> None:
        """Re-bin the histogram for a larger ``bound`` by merging bin pairs (exact)."""
        if self.max_abs == 0.0:  # nothing but zeros so far: only bin N/2 is used, valid for any bound
            self.bound = bound
            return
        self.hist, self.at_bound = _rebinned(self.hist, self.at_bound, self.bound, bound)
        self.bound = max(self.bound, bound)

    def _update_ema(self, row_lo: list[float], row_hi: list[float]) -> None:
        """One step per row, i.e. per sample, in order: the EMA then depends on the samples and the
        momentum, not on how many samples each ONNX Runtime run was given (8 with a dynamic batch,
        the fixed batch size, or one at a time). The steps are plain float arithmetic in a loop,
        so any batching gives the same result bit for bit, at about 0.1 µs a row: nothing beside
        inference for a batch of 8 samples, well under a millisecond for 8 x 512 token rows."""
        if not row_lo:
            return
        ema_min, ema_max, start = self.ema_min, self.ema_max, 0
        if ema_min is None or ema_max is None:
            ema_min, ema_max, start = row_lo[0], row_hi[0], 1
        keep, take = self.momentum, 1.0 - self.momentum
        for lo, hi in zip(row_lo[start:], row_hi[start:]):
            ema_min = ema_min * keep + lo * take
            ema_max = ema_max * keep + hi * take
        self.ema_min, self.ema_max = ema_min, ema_max

    @property
    def bin_width(self) -> float:
        return 2.0 * self.bound / HIST_BINS

    @property
    def edges(self) -> np.ndarray:
        """The HIST_BINS + 1 bin edges over ``[-bound, bound]`` (exact: the width is a power of two)."""
        return (np.arange(HIST_BINS + 1, dtype=np.float64) - _HALF) * self.bin_width

    @property
    def centers(self) -> np.ndarray:
        return (np.arange(HIST_BINS, dtype=np.float64) - _HALF + 0.5) * self.bin_width

    def abs_hist(self) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of |x|: HIST_BINS // 2 counts and their edges over ``[0, bound]``.

        The negative half is folded onto the positive one, so a negative value exactly on an edge
        counts in the bin below the edge; the resulting error is below one bin width.
        """
        counts = self.hist[_HALF:] + self.hist[_HALF - 1 :: -1]
        return counts, self.edges[_HALF:]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; the histogram is stored trimmed of its leading and trailing zeros."""
        nonzero = np.flatnonzero(self.hist)
        start, stop = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 0)
        seen = self.count > 0
        return {
            "name": self.name,
            "count": self.count,
            "min": self.min if seen else None,
            "max": self.max if seen else None,
            "bound": self.bound,
            "hist_start": start,
            "hist": self.hist[start:stop].tolist(),
            "at_bound": self.at_bound,
            "ema_min": self.ema_min,
            "ema_max": self.ema_max,
            "momentum": self.momentum,
            "histogram": self.histogram,
            "values_per_sample": self.values_per_sample,
            "stride": self.stride,
            "parts": list(self.parts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorStats:
        hist = np.zeros(HIST_BINS, dtype=np.int64)
        start = int(data["hist_start"])
        hist[start : start + len(data["hist"])] = data["hist"]
        return cls(
            name=data["name"],
            count=int(data["count"]),
            min=math.inf if data["min"] is None else float(data["min"]),
            max=-math.inf if data["max"] is None else float(data["max"]),
            bound=float(data["bound"]),
            hist=hist,
            ema_min=data["ema_min"],
            ema_max=data["ema_max"],
            momentum=float(data["momentum"]),
            at_bound=int(data["at_bound"]),
            histogram=bool(data.get("histogram", True)),
            values_per_sample=int(data.get("values_per_sample", 0)),
            stride=int(data.get("stride", 0)),
            parts=tuple(data.get("parts", ())),
        )


def collect_tensor_stats(
    batches: Iterable[np.ndarray], name: str = "t", momentum: float = 0.9, values_per_sample: int = 0
) -> TensorStats:
    """Statistics of a tensor over ``batches``: for tests and one-shot use."""
    stats = TensorStats(name=name, momentum=momentum, values_per_sample=values_per_sample)
    for batch in batches:
        stats.update(batch)
    return stats
