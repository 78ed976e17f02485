"""Clipping ranges and the quantization arithmetic, checked against onnxruntime itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

from q8studio.core.clipping import (
    INT8,
    INT8_SYMMETRIC_WEIGHTS,
    METHODS,
    UINT8,
    QuantType as Target,
    _KLPrefix,
    _kl_divergences,
    _range_errors,
    activation_range,
    effective_qtype,
    fake_quantize,
    quant_params,
    weight_channel_axis,
)
from q8studio.core.errors import Q8Error
from q8studio.core.stats import TensorStats, collect_tensor_stats

ONNX_TYPES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}
finite32 = st.floats(-(2.0**100), 2.0**100, width=32)


def weight_range(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric range ``(-max|w|, max|w|)`` of a weight: for the whole tensor (shape ()) or per channel."""
    magnitude = np.abs(np.asarray(w, dtype=np.float32))
    others = None if axis is None else tuple(d for d in range(magnitude.ndim) if d != axis % magnitude.ndim)
    top = np.asarray(magnitude.max(axis=others))
    return -top, top


def weight_quant_params(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 [-127, 127] scales (float32) and zero points (int8) of a weight, from quant_params."""
    lo, hi = weight_range(w, axis)
    scale, zero_point = quant_params(lo, hi, INT8_SYMMETRIC_WEIGHTS, symmetric=True)
    return np.asarray(scale, dtype=np.float32), np.asarray(zero_point, dtype=np.int8)


def expected_qdq_mse(stats: TensorStats, rmin: float, rmax: float, qtype: Target = UINT8,
                     symmetric: bool = False) -> float:
    """Mean squared quantize-dequantize error of the binned values (bin centres) for a range, as the
    MSE search weighs it."""
    errors = _range_errors(stats, np.array([rmin]), np.array([rmax]), qtype, symmetric)
    return float(errors[0]) / float(stats.hist.sum())


def ort_scale_zp(rmin: float, rmax: float, qtype, symmetric: bool) -> tuple[np.float32, int]:
    dtype = np.uint8 if qtype.qmin == 0 else np.int8  # onnxruntime passes qmin/qmax typed like this
    qmin, qmax = np.array(qtype.qmin, dtype), np.array(qtype.qmax, dtype)
    zero_point, scale = compute_scale_zp(np.float32(rmin), np.float32(rmax), qmin, qmax, symmetric)
    return np.float32(scale), int(zero_point)


# --- quant_params / fake_quantize --------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(finite32, finite32, st.sampled_from([UINT8, INT8, INT8_SYMMETRIC_WEIGHTS]), st.booleans())
def test_quant_params_equal_onnxruntime(rmin: float, rmax: float, qtype, symmetric: bool) -> None:
    scale, zero_point = quant_params(rmin, rmax, qtype, symmetric)
    assert isinstance(scale, np.float32) and isinstance(zero_point, int)
    assert (scale, zero_point) == ort_scale_zp(rmin, rmax, qtype, symmetric)


@pytest.mark.parametrize("qtype", [UINT8, INT8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_quant_params_equal_onnxruntime_on_typical_ranges(qtype, symmetric: bool) -> None:
    rng = np.random.default_rng(0)
    lows = -np.abs(rng.standard_normal(300) * 10.0 ** rng.uniform(-6, 3, 300))
    highs = np.abs(rng.standard_normal(300) * 10.0 ** rng.uniform(-6, 3, 300))
    lows[:20], highs[20:40] = 0.0, 0.0  # one-sided ranges, as after ReLU
    for lo, hi in zip(lows, highs):
        assert quant_params(lo, hi, qtype, symmetric) == ort_scale_zp(lo, hi, qtype, symmetric)


@pytest.mark.parametrize("qtype", [UINT8, INT8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_effective_qtype_is_what_onnxruntime_uses(qtype, symmetric: bool) -> None:
    qmin, qmax = get_qmin_qmax_for_qType(ONNX_TYPES[qtype.name], symmetric=symmetric)
    assert (effective_qtype(qtype, symmetric).qmin, effective_qtype(qtype, symmetric).qmax) == (qmin, qmax)


def test_quant_params_work_elementwise() -> None:
    lows, highs = np.array([-1.0, 0.0, -3.0, 0.0]), np.array([2.0, 0.5, 0.0, 0.0])
    for symmetric in (False, True):
        scales, zero_points = quant_params(lows, highs, UINT8, symmetric)
        assert scales.dtype == np.float32 and scales.shape == (4,)
        for i in range(4):
            assert (scales[i], zero_points[i]) == quant_params(lows[i], highs[i], UINT8, symmetric)


@settings(max_examples=300, deadline=None)
@given(finite32, finite32, st.sampled_from([UINT8, INT8]), st.booleans())
def test_quant_params_properties(rmin: float, rmax: float, qtype, symmetric: bool) -> None:
    real = effective_qtype(qtype, symmetric)
    scale, zero_point = quant_params(rmin, rmax, real, symmetric)
    assert real.qmin <= zero_point <= real.qmax
    assert fake_quantize(0.0, scale, zero_point, real) == 0.0  # zero is exactly representable
    lo, hi = min(np.float32(rmin), 0.0), max(np.float32(rmax), 0.0)
    if symmetric:
        lo, hi = -max(-lo, hi), max(-lo, hi)
    if hi - lo >= np.finfo(np.float32).tiny * (real.qmax - real.qmin):
        step = float(scale) * 1.0001
        assert abs(float(scale) * (real.qmin - zero_point) - lo) <= step
        assert abs(float(scale) * (real.qmax - zero_point) - hi) <= step


def qdq_session(scale: np.ndarray, zero_point: np.ndarray, onnx_type: int, axis: int = 1) -> ort.InferenceSession:
    inits = [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero_point, "z")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=axis),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis),
    ]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("qtype, np_type", [(UINT8, np.uint8), (INT8, np.int8)])
def test_fake_quantize_equals_onnxruntime_qdq(qtype, np_type) -> None:
    rng = np.random.default_rng(3)
    scale, zero_point = quant_params(-1.7, 2.9, qtype, symmetric=False)
    ties = (np.arange(-300, 300) + 0.5) * scale  # exactly halfway between codes: ties to even
    x = np.concatenate([rng.uniform(-4, 5, 20_000), ties]).astype(np.float32)
    session = qdq_session(np.array(scale), np.array(zero_point, np_type), ONNX_TYPES[qtype.name])
    expected = session.run(None, {"x": x})[0]
    np.testing.assert_array_equal(fake_quantize(x, scale, zero_point, qtype), expected)


def test_fake_quantize_per_channel_equals_onnxruntime() -> None:
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((2, 5, 3)) * np.array([1, 2, 3, 4, 9])[None, :, None]).astype(np.float32)
    scales, zero_points = weight_quant_params(w, 1)
    session = qdq_session(scales, zero_points, TensorProto.INT8, axis=1)
    mine = fake_quantize(w, scales[None, :, None], zero_points[None, :, None], INT8)
    np.testing.assert_array_equal(mine, session.run(None, {"x": w})[0])


# --- weights ----------------------------------------------------------------------------------


def test_weight_range_per_tensor_and_per_channel() -> None:
    w = np.array([[[1.0, -5.0]], [[0.5, 0.25]], [[-2.0, 0.0]]], np.float32)  # shape (3, 1, 2)
    lo, hi = weight_range(w, None)
    assert lo.shape == hi.shape == () and (lo, hi) == (-5.0, 5.0)
    lo, hi = weight_range(w, 0)
    np.testing.assert_array_equal(hi, [5.0, 0.5, 2.0])
    np.testing.assert_array_equal(lo, -hi)
    np.testing.assert_array_equal(weight_range(w, -1)[1], [2.0, 5.0])


def test_weight_quant_params_of_a_zero_channel() -> None:
    scales, zero_points = weight_quant_params(np.array([[0.0, 0.0], [1.27, -0.5]], np.float32), 0)
    assert scales.dtype == np.float32 and zero_points.dtype == np.int8
    np.testing.assert_array_equal(scales, np.array([1.0, np.float32(1.27) / 127.0], np.float32))
    np.testing.assert_array_equal(zero_points, [0, 0])


def test_unknown_op_has_no_channel_axis() -> None:
    with pytest.raises(Q8Error, match="Relu"):
        weight_channel_axis("Relu", {}, 2)


class RandomReader(CalibrationDataReader):
    def __init__(self, shape: list[int]) -> None:
        rng = np.random.default_rng(5)
        self._feeds = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(2)])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


WEIGHT_CASES = {
    # name: (op_type, attrs, weight shape, input shape, output shape)
    "Conv": ("Conv", {}, (4, 3, 3, 3), [1, 3, 6, 6], [1, 4, 4, 4]),
    "ConvTranspose": ("ConvTranspose", {}, (3, 5, 2, 2), [1, 3, 4, 4], [1, 5, 5, 5]),
    "Gemm transB=0": ("Gemm", {"transB": 0}, (6, 7), [2, 6], [2, 7]),
    "Gemm transB=1": ("Gemm", {"transB": 1}, (7, 6), [2, 6], [2, 7]),
    "MatMul": ("MatMul", {}, (6, 7), [2, 6], [2, 7]),
    "MatMul 3-D": ("MatMul", {}, (3, 6, 7), [3, 2, 6], [3, 2, 7]),
}


def quantized_weight(tmp_path: Path, case: str, per_channel: bool, fmt=QuantFormat.QDQ, extra=None):
    """Quantize a one-node model with onnxruntime; return (weight, scale, zero point, q, axis)."""
    op_type, attrs, w_shape, x_shape, y_shape = WEIGHT_CASES[case]
    w = (np.random.default_rng(6).standard_normal(w_shape) * np.linspace(0.1, 3, w_shape[-1])).astype(np.float32)
    node = helper.make_node(op_type, ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "f.onnx")
    quantize_static(
        tmp_path / "f.onnx", tmp_path / "q.onnx", RandomReader(x_shape), quant_format=fmt,
        per_channel=per_channel, weight_type=QuantType.QInt8, extra_options=extra or {},
    )
    q = onnx.load(tmp_path / "q.onnx")
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    axis = None
    for n in q.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] == "w_quantized" and inits["w_scale"].ndim:
            attributes = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            axis = attributes.get("axis", 1) % len(w_shape)
    return w, inits["w_scale"], inits["w_zero_point"], inits["w_quantized"], axis


@pytest.mark.parametrize("case", [c for c in WEIGHT_CASES if c != "MatMul 3-D"])
def test_weight_axis_and_scales_match_onnxruntime_qdq(tmp_path: Path, case: str) -> None:
    op_type, attrs, w_shape, _, _ = WEIGHT_CASES[case]
    w, scale, zero_point, q, ort_axis = quantized_weight(tmp_path, case, per_channel=True)
    axis = weight_channel_axis(op_type, attrs, len(w_shape))
    assert axis == ort_axis
    my_scale, my_zero_point = weight_quant_params(w, axis)
    np.testing.assert_array_equal(my_scale, scale)
    np.testing.assert_array_equal(my_zero_point, zero_point)
    shape = [-1 if d == axis else 1 for d in range(w.ndim)]
    np.testing.assert_array_equal(np.rint(w / my_scale.reshape(shape)), q)


@pytest.mark.parametrize(
    "fmt, extra",
    [(QuantFormat.QOperator, None), (QuantFormat.QDQ, {"QDQOpTypePerChannelSupportToAxis": {"MatMul": -1}})],
)
def test_3d_matmul_weight_axis_is_the_last_one(tmp_path: Path, fmt, extra) -> None:
    """onnxruntime's QDQ default for MatMul is axis 1 whatever the rank; the option above fixes it."""
    w, scale, _, _, _ = quantized_weight(tmp_path, "MatMul 3-D", per_channel=True, fmt=fmt, extra=extra)
    axis = weight_channel_axis("MatMul", {}, 3)
    assert axis == 2
    np.testing.assert_array_equal(weight_quant_params(w, axis)[0], scale)


def test_per_tensor_weight_scale_matches_onnxruntime(tmp_path: Path) -> None:
    w, scale, zero_point, _, _ = quantized_weight(tmp_path, "Conv", per_channel=False)
    my_scale, my_zero_point = weight_quant_params(w, None)
    assert my_scale.shape == () and my_scale == scale and my_zero_point == zero_point == 0


# --- activation ranges ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gaussian() -> np.ndarray:
    return np.random.default_rng(7).standard_normal(1_000_000).astype(np.float32)


def with_outliers(bulk: np.ndarray, per_side: int) -> np.ndarray:
    return np.concatenate([bulk, np.full(per_side, 50.0, np.float32), np.full(per_side, -50.0, np.float32)])


def test_minmax_and_ema() -> None:
    stats = collect_tensor_stats([np.array([[-1.0, 2.0]]), np.array([[-3.0, 1.0], [-2.0, 5.0]])])
    assert activation_range(stats, "minmax") == (-3.0, 5.0)
    lo, hi = activation_range(stats, "ema")
    assert lo == pytest.approx(-1.28) and hi == pytest.approx(2.21)


@pytest.mark.parametrize("method", ["minmax", "ema"])
def test_symmetric_minmax_and_ema_report_the_range_the_model_uses(method: str) -> None:
    """(-m, m), m the larger side: what onnxruntime makes of the observed range, so the same scale."""
    stats = collect_tensor_stats([np.array([-0.96, 2.18], np.float32), np.array([-0.5, 1.0], np.float32)])
    observed = activation_range(stats, method)
    lo, hi = activation_range(stats, method, symmetric=True)
    assert lo == -hi == -max(-observed[0], observed[1])
    assert quant_params(lo, hi, INT8, True) == ort_scale_zp(*observed, INT8, True)


def test_ranges_always_contain_zero() -> None:
    stats = collect_tensor_stats([np.random.default_rng(8).uniform(2.0, 3.0, 10_000)])
    for method in METHODS:
        lo, hi = activation_range(stats, method)
        assert lo == 0.0 and 2.0 < hi <= 3.0, method
    negative = collect_tensor_stats([-np.random.default_rng(8).uniform(2.0, 3.0, 10_000)])
    for method in METHODS:
        lo, hi = activation_range(negative, method)
        assert -3.0 <= lo < -2.0 and hi == 0.0, method


def test_all_zero_tensor_gives_zero_range() -> None:
    stats = collect_tensor_stats([np.zeros(100, np.float32)])
    for method in METHODS:
        for symmetric in (False, True):
            assert activation_range(stats, method, symmetric=symmetric) == (0.0, 0.0)


@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_percentile_within_one_bin_of_numpy(gaussian: np.ndarray, p: float) -> None:
    stats = collect_tensor_stats([gaussian])
    lo, hi = activation_range(stats, "percentile", percentile=p)
    assert abs(hi - np.percentile(gaussian, p)) <= stats.bin_width
    assert abs(lo - np.percentile(gaussian, 100 - p)) <= stats.bin_width
    lo, hi = activation_range(stats, "percentile", percentile=p, symmetric=True)
    assert lo == -hi and abs(hi - np.percentile(np.abs(gaussian), p)) <= stats.bin_width


def test_percentile_never_beyond_observed_range() -> None:
    stats = collect_tensor_stats([np.array([-0.3, 0.1, 0.2, 0.7], np.float32)])
    assert activation_range(stats, "percentile", percentile=100.0) == activation_range(stats, "minmax")
    lo, hi = activation_range(stats, "percentile", percentile=99.0)
    assert stats.min <= lo <= 0.0 <= hi <= stats.max
    assert activation_range(stats, "percentile", percentile=100.0, symmetric=True)[1] == np.float32(0.7)


@pytest.mark.parametrize("p", [0.0, -1.0, 100.5, float("nan")])
def test_bad_percentile_is_rejected(p: float) -> None:
    stats = collect_tensor_stats([np.ones(3)])
    with pytest.raises(Q8Error, match="percentile"):
        activation_range(stats, "percentile", percentile=p)


def test_unknown_method_and_missing_data_are_rejected() -> None:
    with pytest.raises(Q8Error, match="minmax, percentile, entropy, mse, ema"):
        activation_range(collect_tensor_stats([np.ones(3)]), "kl")
    with pytest.raises(Q8Error, match="'lonely'"):
        activation_range(collect_tensor_stats([], name="lonely"), "minmax")


@pytest.mark.parametrize("qtype", [UINT8, INT8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_entropy_and_mse_clip_rare_outliers(gaussian: np.ndarray, qtype, symmetric: bool) -> None:
    """Four values at +-50 among 1e6 N(0,1): clipping them lowers the error over minmax."""
    stats = collect_tensor_stats([with_outliers(gaussian, 2)])
    minmax_error = expected_qdq_mse(stats, *activation_range(stats, "minmax"), qtype, symmetric)
    entropy = activation_range(stats, "entropy", qtype=qtype, symmetric=symmetric)
    mse = activation_range(stats, "mse", qtype=qtype, symmetric=symmetric)
    assert 2.0 <= entropy[1] <= 10.0 and -10.0 <= entropy[0] <= -2.0
    assert 10.0 <= mse[1] <= 40.0  # clipping error of 4 values balanced against rounding of 1e6
    assert expected_qdq_mse(stats, *entropy, qtype, symmetric) < 0.8 * minmax_error
    assert expected_qdq_mse(stats, *mse, qtype, symmetric) < 0.5 * minmax_error


def test_entropy_ignores_a_heavier_tail_that_mse_keeps(gaussian: np.ndarray) -> None:
    """20 outliers at +-50 among 2e5: KL clips them; squared error says clipping costs more."""
    stats = collect_tensor_stats([with_outliers(gaussian[:200_000], 10)])
    entropy = activation_range(stats, "entropy")
    mse = activation_range(stats, "mse")
    assert 2.0 <= entropy[1] <= 10.0
    assert mse[1] > 40.0
    errors = {m: expected_qdq_mse(stats, *activation_range(stats, m)) for m in METHODS}
    assert errors["mse"] == min(errors.values()) and errors["mse"] < errors["minmax"]


@pytest.mark.parametrize("symmetric", [False, True])
def test_mse_on_gaussian_matches_dense_search(gaussian: np.ndarray, symmetric: bool) -> None:
    stats = collect_tensor_stats([gaussian])
    lo, hi = activation_range(stats, "mse", symmetric=symmetric)
    assert 3.5 <= hi <= 4.5 and lo == pytest.approx(-hi)  # the known 8-bit optimum is near 4 sigma
    dense = min(
        expected_qdq_mse(stats, max(stats.min, -t), min(stats.max, t), UINT8, symmetric)
        for t in np.linspace(2.0, stats.max_abs, 4000)
    )
    assert expected_qdq_mse(stats, lo, hi, UINT8, symmetric) <= dense * 1.0001


@pytest.mark.parametrize("method", ["entropy", "mse"])
def test_relu_output(gaussian: np.ndarray, method: str) -> None:
    relu = np.maximum(gaussian, 0.0)  # half exact zeros, half a half-normal
    stats = collect_tensor_stats([relu])
    lo, hi = activation_range(stats, method)
    assert lo == 0.0 and 3.0 <= hi <= stats.max
    minmax_error = expected_qdq_mse(stats, *activation_range(stats, "minmax"))
    assert expected_qdq_mse(stats, lo, hi) < minmax_error


def test_expected_qdq_mse_predicts_the_real_error(gaussian: np.ndarray) -> None:
    stats = collect_tensor_stats([gaussian])
    for lo, hi in [(-2.0, 2.5), (stats.min, stats.max), (-1.0, 0.5)]:
        scale, zero_point = quant_params(lo, hi, UINT8, symmetric=False)
        real = np.mean((gaussian - fake_quantize(gaussian, scale, zero_point, UINT8)).astype(np.float64) ** 2)
        assert expected_qdq_mse(stats, lo, hi) == pytest.approx(real, rel=0.02)


def test_expected_qdq_mse_uses_the_codes_onnxruntime_uses(gaussian: np.ndarray) -> None:
    """Symmetric int8 is evaluated on [-127, 127], like the model onnxruntime will write."""
    stats = collect_tensor_stats([gaussian])
    used = np.flatnonzero(stats.hist)
    centers, counts = stats.centers[used], stats.hist[used]
    scale, zero_point = quant_params(-3.0, 3.0, INT8_SYMMETRIC_WEIGHTS, symmetric=True)
    approx = fake_quantize(centers, scale, zero_point, INT8_SYMMETRIC_WEIGHTS)
    expected = np.sum(counts * (centers - approx) ** 2) / stats.count
    assert expected_qdq_mse(stats, -3.0, 3.0, INT8, symmetric=True) == pytest.approx(expected, rel=1e-12)


def naive_kl(h: np.ndarray, cut: int, levels: int, eps: float = 1e-4) -> float:
    """The recipe written out bin by bin, to check the vectorised prefix-sum version."""
    p = h[:cut].astype(np.float64)
    p[-1] += h[cut:].sum()
    kept = h[:cut].astype(np.float64)
    q = np.zeros(cut)
    for j in range(levels):
        a, b = j * cut // levels, (j + 1) * cut // levels
        used = p[a:b] > 0
        if used.any():
            q[a:b][used] = kept[a:b].sum() / used.sum()
    q = q / q.sum() if q.sum() else q
    q = (1 - eps) * q + eps * (p > 0) / np.count_nonzero(p)
    p = p / p.sum()
    return float(sum(pk * np.log(pk / qk) for pk, qk in zip(p, q) if pk > 0))


def test_vectorised_kl_equals_naive_recipe() -> None:
    rng = np.random.default_rng(9)
    h = np.round(np.abs(rng.standard_normal(700)) * 50 * np.exp(-np.arange(700) / 150)).astype(np.float64)
    h[[5, 6, 7, 200, 201, 350]] = 0.0
    h[600:690] = 0.0  # empty stretch: some cuts put outliers into an empty last group
    h[695] = 3.0
    cuts = np.array([128, 129, 200, 257, 333, 601, 650, 689, 690, 700])
    for levels in (128, 256):
        valid = cuts[cuts >= levels]
        expected = [naive_kl(h, c, levels) for c in valid]
        np.testing.assert_allclose(_kl_divergences(h, _KLPrefix.of(h), valid, levels), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("positive_max", [1e-3, 1e-25])
def test_entropy_keeps_a_positive_side_that_fits_in_the_bin_at_zero(positive_max: float) -> None:
    """Mostly negative values (log-mel energies in dB, say) with a maximum below one bin width:
    the positive side has nothing to search, so it keeps its observed maximum."""
    values = np.random.default_rng(12).normal(-60.0, 10.0, 50_000).astype(np.float32)
    values[:5] = positive_max
    stats = collect_tensor_stats([values])
    assert positive_max < stats.bin_width
    rmin, rmax = activation_range(stats, "entropy", qtype=UINT8)
    assert rmax == pytest.approx(positive_max)
    assert -110.0 < rmin < -60.0


@pytest.mark.parametrize("low, high", [(0.3, 0.9), (245.0, 255.0)])
def test_entropy_does_not_clip_data_that_stays_away_from_zero(low: float, high: float) -> None:
    """A cut just past the lowest value would make P and Q one identical spike (KL 0); data within
    the top ``levels`` bins of the histogram leaves no cut but the last."""
    values = np.random.default_rng(13).uniform(low, high, 100_000).astype(np.float32)
    lo, hi = activation_range(collect_tensor_stats([values]), "entropy", qtype=UINT8)
    assert lo == 0.0 and hi > low + 0.9 * (high - low)


def test_entropy_keeps_each_side_of_an_asymmetric_tensor() -> None:
    """An image input: a background spike at -0.96 and strokes spread up to +2.2. Folding both signs
    into |x| would clip the strokes at 0.96; the asymmetric search keeps nearly all of them."""
    rng = np.random.default_rng(11)
    background = np.full(80_000, -0.96, np.float32)
    strokes = rng.uniform(-0.96, 2.2, 20_000).astype(np.float32)
    stats = collect_tensor_stats([np.concatenate([background, strokes])])
    rmin, rmax = activation_range(stats, "entropy", qtype=UINT8)
    assert rmin == pytest.approx(-0.96, abs=0.01)
    assert rmax > 1.9
    sym_lo, sym_hi = activation_range(stats, "entropy", qtype=INT8, symmetric=True)
    assert sym_lo == -sym_hi


def test_symmetric_entropy_keeps_the_sparse_side_of_a_one_sided_spike() -> None:
    """The demo's input: background pixels at -0.96, strokes spread up to +2.18. On |x| the spike
    decided for both signs and clipped the strokes to 0.96 (top-1 98.9% -> 89.4%)."""
    rng = np.random.default_rng(0)
    values = np.concatenate([np.full(8000, -0.96), rng.uniform(-0.96, 2.18, 2000)]).astype(np.float32)
    lo, hi = activation_range(collect_tensor_stats([values]), "entropy", symmetric=True)
    assert lo == -hi and hi >= 2.0
