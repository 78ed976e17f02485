"""Streaming statistics: exactness of the streamed histogram, min/max/EMA, errors, serialisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from q8studio.core.errors import Q8Error
from q8studio.core.stats import (
    EMPTY_BATCH, HIST_BINS, BatchExtent, TensorStats, collect_tensor_stats, sampling_stride,
)


def reference_bound(values: np.ndarray) -> float:
    """Smallest power of two >= max|x|, via log2 (independent of the implementation's frexp),
    never below the documented floor of 2**-64 that keeps the bin scale finite in float32."""
    top = float(np.max(np.abs(values)))
    return 1.0 if top == 0 else max(2.0 ** math.ceil(math.log2(top)), 2.0**-64)


def reference_hist(values: np.ndarray, bound: float) -> np.ndarray:
    """One-shot histogram by the documented rule, in float64 (exact for float32 inputs)."""
    x = values.astype(np.float64).ravel()
    idx = np.floor(x * (HIST_BINS / (2.0 * bound))).astype(np.int64) + HIST_BINS // 2
    return np.bincount(np.minimum(idx, HIST_BINS - 1), minlength=HIST_BINS)


def assert_same(streamed: TensorStats, values: np.ndarray) -> None:
    """Streamed statistics equal the one-shot ones, and both equal the reference."""
    one_shot = collect_tensor_stats([values])
    bound = reference_bound(values)
    for stats in (streamed, one_shot):
        assert stats.bound == bound
        assert stats.count == values.size
        assert stats.min == float(values.min()) and stats.max == float(values.max())
        np.testing.assert_array_equal(stats.hist, reference_hist(values, bound))
    assert streamed.at_bound == one_shot.at_bound == int(np.count_nonzero(values == bound))


def test_streaming_equals_one_shot_with_growing_range() -> None:
    rng = np.random.default_rng(0)
    batches = [
        np.zeros((3, 5), np.float32),  # all zeros first: bound must still end up exact
        (rng.standard_normal(1000) * 1e-3).astype(np.float32),
        np.array([0.5, -0.5, 1.0, -1.0], np.float32),  # exactly on the bound when it is 1
        (rng.standard_normal((4, 50_000)) * 3).astype(np.float32),  # spans several chunks
        np.array([16.0, 16.0, -16.0], np.float32),
        (rng.standard_normal(70_000) * 300).astype(np.float32),
        np.array([2.0**20], np.float32),  # more than log2(HIST_BINS) doublings at once
    ]
    stats = collect_tensor_stats(batches)
    assert_same(stats, np.concatenate([b.ravel() for b in batches]))
    assert stats.bound == 2.0**20 and stats.hist[-1] == 1 and stats.at_bound == 1


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        hnp.arrays(
            np.float32,
            st.integers(1, 40),
            elements=st.one_of(
                # subnormals excluded: with bound >= 8192 a negative subnormal times
                # HIST_BINS / (2 * bound) underflows to -0 (documented in stats._bin_into)
                st.floats(-1e6, 1e6, width=32, allow_subnormal=False),
                st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.25, 2.0, -8.0, 1024.0, 3.0]),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_streaming_equals_one_shot_property(batches: list[np.ndarray]) -> None:
    assert_same(collect_tensor_stats(batches), np.concatenate(batches))


def test_value_on_the_bound_goes_to_last_bin_and_moves_when_bound_doubles() -> None:
    stats = collect_tensor_stats([np.array([1.0, -1.0, 1.0], np.float32)])
    assert stats.bound == 1.0
    assert stats.hist[-1] == 2 and stats.hist[0] == 1 and stats.at_bound == 2
    stats.update(np.array([3.0], np.float32))
    assert stats.bound == 4.0 and stats.at_bound == 0
    np.testing.assert_array_equal(stats.hist, reference_hist(np.array([1.0, -1.0, 1.0, 3.0]), 4.0))


def test_all_zero_data_keeps_bound_one_then_shrinks_exactly() -> None:
    stats = collect_tensor_stats([np.zeros(10, np.float32), np.array([-0.0], np.float32)])
    assert stats.bound == 1.0 and stats.hist[HIST_BINS // 2] == 11 and stats.hist.sum() == 11
    stats.update(np.array([0.01, -0.003], np.float32))
    assert stats.bound == 2.0**-6
    assert_same(stats, np.array([0.0] * 11 + [0.01, -0.003], np.float32))


def test_bound_is_zero_before_data_and_empty_batches_are_ignored() -> None:
    stats = TensorStats("t")
    stats.update(np.zeros((0, 3), np.float32))
    assert (stats.count, stats.bound, stats.ema_min, stats.hist.sum()) == (0, 0.0, None, 0)
    assert stats.min == math.inf and stats.max == -math.inf


def test_any_shape_and_dtype_is_accepted() -> None:
    stats = collect_tensor_stats([np.arange(-3, 9, dtype=np.int64).reshape(3, 2, 2), np.array([0.5])])
    assert (stats.count, stats.min, stats.max, stats.bound) == (13, -3.0, 8.0, 8.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise_naming_the_tensor(bad: float) -> None:
    stats = collect_tensor_stats([np.ones(4, np.float32)], name="/layer1/Relu_output_0")
    with pytest.raises(Q8Error, match="/layer1/Relu_output_0"):
        stats.update(np.array([1.0, bad, 2.0], np.float32))
    assert stats.count == 4 and stats.max == 1.0 and stats.hist.sum() == 4


def test_float64_overflowing_float32_is_rejected() -> None:
    with pytest.raises(Q8Error, match="'big'"), np.errstate(over="ignore"):
        collect_tensor_stats([np.array([1e300])], name="big")


def test_ema_follows_the_recurrence_once_per_sample() -> None:
    batches = [np.array([[-1.0, 2.0]]), np.array([[-3.0, 1.0], [-2.0, 5.0]])]
    stats = collect_tensor_stats(batches, momentum=0.9)
    assert stats.ema_min == pytest.approx((-1.0 * 0.9 + -3.0 * 0.1) * 0.9 + -2.0 * 0.1)  # -1.28
    assert stats.ema_max == pytest.approx((2.0 * 0.9 + 1.0 * 0.1) * 0.9 + 5.0 * 0.1)  # 2.21
    assert (stats.min, stats.max) == (-3.0, 5.0)


@pytest.mark.parametrize("shape", [(24, 3, 5), (24,), (24, 1)])
def test_ema_is_the_same_whatever_the_samples_per_run(shape: tuple[int, ...]) -> None:
    """Batches of 8 (a dynamic batch), of 3 (a fixed one) or single samples (the one-at-a-time
    fallback) give the same EMA bit for bit: it steps once per sample, not once per run."""
    samples = (np.random.default_rng(8).standard_normal(shape) * np.arange(1, 25).reshape(-1, *[1] * (len(shape) - 1)))
    ranges = set()
    for size in (1, 3, 8):
        stats = collect_tensor_stats([samples[i:i + size] for i in range(0, 24, size)], momentum=0.8)
        ranges.add((stats.ema_min, stats.ema_max))
    assert len(ranges) == 1
    per_sample = [float(np.float32(sample.max())) for sample in samples]
    expected = per_sample[0]
    for value in per_sample[1:]:
        expected = expected * 0.8 + value * (1.0 - 0.8)
    assert ranges.pop()[1] == expected


def test_edges_and_centers() -> None:
    stats = collect_tensor_stats([np.array([-3.0, 0.1], np.float32)])
    edges, centers = stats.edges, stats.centers
    assert edges.size == HIST_BINS + 1 and centers.size == HIST_BINS
    assert edges[0] == -4.0 and edges[-1] == 4.0 and edges[HIST_BINS // 2] == 0.0
    np.testing.assert_array_equal(centers, (edges[:-1] + edges[1:]) / 2)
    used = np.flatnonzero(stats.hist)
    values = np.array([-3.0, np.float32(0.1)])
    assert used.size == 2 and np.all((edges[used] <= values) & (values < edges[used + 1]))


def test_abs_hist_matches_numpy_histogram_of_abs() -> None:
    rng = np.random.default_rng(1)
    stats = TensorStats("t")
    width = 8.0 / HIST_BINS
    bins = rng.integers(-HIST_BINS // 2, HIST_BINS // 2, 100_000)
    values = ((bins + rng.uniform(0.1, 0.9, bins.size)) * width).astype(np.float32)  # off the edges
    stats.update(values)
    assert stats.bound == 4.0
    counts, edges = stats.abs_hist()
    assert counts.size == HIST_BINS // 2 and edges[0] == 0.0 and edges[-1] == 4.0
    np.testing.assert_array_equal(counts, np.histogram(np.abs(values), bins=edges)[0])


def test_dict_round_trip_through_json_is_exact_and_compact() -> None:
    rng = np.random.default_rng(2)
    stats = collect_tensor_stats([np.maximum(rng.standard_normal(5000), 0), [4.0]], name="relu", momentum=0.99)
    text = json.dumps(stats.to_dict())
    back = TensorStats.from_dict(json.loads(text))
    np.testing.assert_array_equal(back.hist, stats.hist)
    for field in ("name", "count", "min", "max", "bound", "ema_min", "ema_max", "momentum", "at_bound",
                  "values_per_sample", "stride"):
        assert getattr(back, field) == getattr(stats, field)
    assert len(json.loads(text)["hist"]) <= HIST_BINS // 2 + 1  # negative half of a ReLU is trimmed
    back.update(np.array([-9.0]))
    stats.update(np.array([-9.0]))
    np.testing.assert_array_equal(back.hist, stats.hist)


def test_empty_stats_round_trip() -> None:
    back = TensorStats.from_dict(json.loads(json.dumps(TensorStats("e").to_dict())))
    assert back.count == 0 and back.min == math.inf and back.max == -math.inf and back.hist.sum() == 0


def test_sampled_histogram_bins_every_stride_th_value_of_the_stream() -> None:
    """The histogram of a large activation is a systematic sample of the whole stream, so any
    batching gives the one-shot result bit for bit; min, max, count and EMA still see every value."""
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal((23, 10_000)) * rng.uniform(0.5, 4.0, (23, 1))).astype(np.float32)
    samples[17, 4321] = 40.0  # an outlier the sample may miss: min/max must not
    streamed = TensorStats("t", values_per_sample=1000)
    for start, stop in ((0, 1), (1, 8), (8, 9), (9, 23)):
        streamed.update(samples[start:stop])
    one_shot = collect_tensor_stats([samples], values_per_sample=1000)
    flat = samples.ravel()
    assert streamed.stride == one_shot.stride == 11  # smallest prime >= 10 that does not divide 10,000
    for stats in (streamed, one_shot):
        assert stats.count == flat.size and stats.max == 40.0 and stats.min == float(flat.min())
        assert stats.bound == 64.0
        np.testing.assert_array_equal(stats.hist, reference_hist(flat[::11], 64.0))
    assert streamed.hist.sum() == flat[::11].size


def test_small_tensors_and_a_zero_budget_bin_every_value() -> None:
    values = np.random.default_rng(4).standard_normal((6, 500)).astype(np.float32)
    for stats in (collect_tensor_stats([values], values_per_sample=500), collect_tensor_stats([values])):
        assert stats.stride == 1 and stats.hist.sum() == values.size


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2_000_000), st.integers(1, 50_000))
def test_sampling_stride_is_the_smallest_prime_that_reaches_every_position(size: int, budget: int) -> None:
    stride = sampling_stride(size, budget)
    if size <= budget:
        assert stride == 1
        return
    assert stride * budget >= size and size % stride != 0 and is_prime(stride)
    smaller = range(-(-size // budget), stride)
    assert not any(is_prime(n) and size % n for n in smaller)


def test_sample_reaches_every_channel_of_a_channels_last_tensor() -> None:
    """A stride sharing a factor with the channel count would see only some channels, every sample."""
    height, width, channels = 14, 14, 64
    stride = sampling_stride(height * width * channels, 1000)
    positions = np.arange(0, 3 * height * width * channels, stride) % (height * width * channels)
    first_sample = positions[: (height * width * channels) // stride]
    assert set(first_sample % channels) == set(range(channels))
    assert len(set(positions % stride)) > 1  # the offset moves between samples


def concat_of(parts: list[TensorStats], batches: list[list[np.ndarray]], name: str = "cat") -> TensorStats:
    """Statistics of a Concat built the way calibration builds them: parts updated batch by batch,
    the Concat given each batch's union extent, then the parts' histograms combined."""
    combined = TensorStats(name, values_per_sample=parts[0].values_per_sample, parts=tuple(p.name for p in parts))
    for batch in batches:
        combined.add_extent(BatchExtent.union(part.update(values) for part, values in zip(parts, batch)))
    combined.combine_histograms(parts)
    return combined


def test_concat_statistics_from_its_parts_equal_those_of_the_concatenated_values() -> None:
    """Parts with different bounds (one all zeros) and every value binned: bit for bit the one-shot
    statistics of the concatenation along channels, EMA included (it sees each batch's union)."""
    rng = np.random.default_rng(5)
    wide = (rng.standard_normal((9, 4, 5, 5)) * 3.0).astype(np.float32)
    narrow = rng.uniform(0.0, 0.3, (9, 2, 5, 5)).astype(np.float32)
    zeros = np.zeros((9, 1, 5, 5), np.float32)
    wide[4, 0, 0, 0] = 8.0  # a value on the final bound, which must leave the last bin of the parts
    splits = ((0, 2), (2, 3), (3, 9))
    parts = [TensorStats(n) for n in ("wide", "narrow", "zeros")]
    combined = concat_of(parts, [[a[s:e] for a in (wide, narrow, zeros)] for s, e in splits])

    concatenated = np.concatenate([wide, narrow, zeros], axis=1)
    direct = TensorStats("direct")
    for s, e in splits:
        direct.update(concatenated[s:e])
    assert (combined.count, combined.min, combined.max, combined.bound, combined.at_bound, combined.stride) == (
        direct.count, direct.min, direct.max, direct.bound, direct.at_bound, direct.stride)
    assert (combined.ema_min, combined.ema_max) == (direct.ema_min, direct.ema_max)
    np.testing.assert_array_equal(combined.hist, direct.hist)
    assert combined.parts == ("wide", "narrow", "zeros")


def test_concat_of_differently_sampled_parts_weights_each_value_by_its_stride() -> None:
    """A part binned 1 value in 11 counts 11 times as much as one binned every value (the gcd, 1)."""
    rng = np.random.default_rng(6)
    big = rng.standard_normal((3, 10_000)).astype(np.float32)
    small = rng.uniform(5.0, 6.0, (3, 500)).astype(np.float32)
    parts = [TensorStats("big", values_per_sample=1000), TensorStats("small", values_per_sample=1000)]
    combined = concat_of(parts, [[big, small]])
    assert (parts[0].stride, parts[1].stride, combined.stride) == (11, 1, 1)
    assert combined.count == big.size + small.size and combined.max == float(small.max())
    expected = 11 * reference_hist(big.ravel()[::11], 8.0) + reference_hist(small, 8.0)
    np.testing.assert_array_equal(combined.hist, expected)
    same_stride = concat_of([TensorStats("a", values_per_sample=1000), TensorStats("b", values_per_sample=1000)],
                            [[big, big * 2]])
    assert same_stride.stride == 11 and same_stride.hist.sum() == 2 * big.ravel()[::11].size


def test_batch_extent_union_and_empty_batches() -> None:
    stats = TensorStats("t")
    assert stats.update(np.zeros((0, 3), np.float32)).count == 0
    two_rows = BatchExtent(4, np.array([-1.0, 0.0]), np.array([2.0, 0.25]))
    union = BatchExtent.union([two_rows, stats.update(np.array([[3.0], [0.5]], np.float32)), EMPTY_BATCH])
    assert (union.count, union.lo, union.hi) == (6, -1.0, 3.0)
    assert union.row_lo.tolist() == [-1.0, 0.0] and union.row_hi.tolist() == [3.0, 0.5]  # row by row
    stats.add_extent(BatchExtent.union([]))  # an empty union changes nothing
    assert (stats.count, stats.min, stats.max) == (2, 0.5, 3.0)


def test_the_union_of_parts_with_different_rows_puts_their_rows_one_after_the_other() -> None:
    """A Concat along the sample axis: its rows are the first part's, then the second's."""
    parts = [TensorStats("a"), TensorStats("b")]
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[-5.0, 6.0]])
    combined = TensorStats("cat")
    combined.add_extent(BatchExtent.union([parts[0].update(a), parts[1].update(b)]))
    direct = collect_tensor_stats([np.concatenate([a, b])])
    assert (combined.count, combined.min, combined.max, combined.ema_min, combined.ema_max) == (
        direct.count, direct.min, direct.max, direct.ema_min, direct.ema_max)
