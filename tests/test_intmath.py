"""Integer requantization and reference kernels, checked against exact arithmetic and ONNX Runtime."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from q8studio.core.errors import Q8Error
from q8studio.core.intkernels import (
    conv_accumulate,
    explain_conv_element,
    qlinear_conv,
    qlinear_gemm,
    qlinear_matmul,
)
from q8studio.core.intmath import (
    Multiplier,
    decompose_multiplier,
    float32_multiplier,
    requantize,
    requantize_float32,
)

F32 = np.float32
WIDE = (-(2**62), 2**62)  # clamp bounds that never bind
multipliers = st.one_of(  # plain floats crowd the top decades, so also draw the exponent uniformly
    st.floats(min_value=1e-8, max_value=1e3), st.floats(min_value=-8, max_value=3).map(lambda e: 10.0**e)
)
accumulators = st.integers(min_value=-(2**31), max_value=2**31)


def exact_product(acc: int, mult: Multiplier) -> Fraction:
    return Fraction(acc) * Fraction(mult.m0, 1) * Fraction(2) ** -mult.shift


# --- decompose_multiplier -------------------------------------------------------------------


def test_decompose_worked_example() -> None:
    mult = decompose_multiplier(0.0353)
    assert 2**30 <= mult.m0 < 2**31
    assert mult.shift == 35
    assert mult.approx == mult.m0 / 2**35
    assert abs(mult.rel_error) < 2**-31


@given(M=multipliers, bits=st.integers(min_value=1, max_value=31))
@settings(max_examples=400, deadline=None)
def test_decompose_range_and_error(M: float, bits: int) -> None:
    mult = decompose_multiplier(M, bits)
    assert 2 ** (bits - 1) <= mult.m0 < 2**bits
    assert Fraction(mult.approx) == Fraction(mult.m0) * Fraction(2) ** -mult.shift
    rel = abs(Fraction(mult.m0) * Fraction(2) ** -mult.shift / Fraction(M) - 1)
    assert rel <= Fraction(1, 2**bits) < Fraction(1, 2 ** (bits - 1))
    assert mult.real == M and math.isclose(mult.rel_error, float(mult.approx / M - 1), abs_tol=1e-18)


@pytest.mark.parametrize("M, shift", [(1.0, 30), (1.5, 30), (1000.0, 21), (2.0**31, -1), (2.0**40, -10)])
def test_decompose_large_multipliers_use_small_or_negative_shifts(M: float, shift: int) -> None:
    mult = decompose_multiplier(M)
    assert mult.shift == shift and mult.approx == M


def test_mantissa_rounding_up_to_a_power_of_two_renormalises() -> None:
    mult = decompose_multiplier(1 - 2**-40, bits=8)
    assert (mult.m0, mult.shift) == (128, 7)


@pytest.mark.parametrize("M", [0.0, -0.5, float("nan"), float("inf")])
def test_decompose_rejects_non_positive_or_non_finite(M: float) -> None:
    with pytest.raises(Q8Error):
        decompose_multiplier(M)


@pytest.mark.parametrize("bits", [0, 32])
def test_decompose_rejects_mantissas_that_could_overflow(bits: int) -> None:
    with pytest.raises(Q8Error):
        decompose_multiplier(0.1, bits)


# --- requantize -----------------------------------------------------------------------------


@given(acc=accumulators, M=multipliers, bits=st.integers(min_value=8, max_value=31))
@settings(max_examples=500, deadline=None)
def test_requantize_is_exact_rounding_of_the_fixed_point_multiplier(acc: int, M: float, bits: int) -> None:
    """The integer path rounds acc * M0 * 2**-shift exactly, half to even (Python's round)."""
    mult = decompose_multiplier(M, bits)
    got = int(requantize(np.array([acc]), mult, 0, *WIDE)[0])
    assert got == round(exact_product(acc, mult))


@given(acc=accumulators, M=multipliers)
@settings(max_examples=500, deadline=None)
def test_requantize_matches_the_real_multiplier_except_near_ties(acc: int, M: float) -> None:
    """It equals round(acc * M) unless acc * M lies within |acc * (M0 2^-shift - M)| of a half-integer."""
    mult = decompose_multiplier(M)
    got = int(requantize(np.array([acc]), mult, 0, *WIDE)[0])
    real = Fraction(acc) * Fraction(M)
    if got != round(real):
        distance_to_tie = abs(real - (math.floor(real) + Fraction(1, 2)))
        assert distance_to_tie <= abs(real - exact_product(acc, mult))


def test_requantize_rounds_ties_half_to_even() -> None:
    acc = np.arange(-7, 8)
    got = requantize(acc, decompose_multiplier(0.5), 0, -128, 127)
    assert got.tolist() == [-4, -3, -2, -2, -2, -1, 0, 0, 0, 1, 2, 2, 2, 3, 4]


def test_requantize_adds_zero_point_then_clamps() -> None:
    got = requantize(np.array([-1000, -3, 0, 3, 1000]), decompose_multiplier(1.0), 10, 0, 255)
    assert got.tolist() == [0, 7, 10, 13, 255]


def test_requantize_per_channel_along_an_axis() -> None:
    acc = np.array([[100, 100, 100], [-7, -7, -7]])
    mults = [decompose_multiplier(m) for m in (0.5, 0.25, 0.03)]
    assert requantize(acc, mults, 0, -128, 127, axis=-1).tolist() == [[50, 25, 3], [-4, -2, 0]]


def test_requantize_left_shift_saturates_instead_of_overflowing() -> None:
    got = requantize(np.array([-(2**31), -1, 0, 1, 2**31]), decompose_multiplier(2.0**50), 0, -128, 127)
    assert got.tolist() == [-128, -128, 0, 127, 127]


def test_requantize_tiny_multiplier_gives_zero() -> None:
    mult = decompose_multiplier(1e-30)
    assert mult.shift > 62
    assert requantize(np.array([2**31, -(2**31)]), mult, 3, -128, 127).tolist() == [3, 3]


@pytest.mark.parametrize("acc", [np.array([0.5]), np.array([2**33])])
def test_requantize_rejects_non_integer_or_too_wide_accumulators(acc: np.ndarray) -> None:
    with pytest.raises(Q8Error):
        requantize(acc, decompose_multiplier(0.1), 0, -128, 127)


def test_float32_path_rounds_a_float32_product() -> None:
    acc = np.array([-3, -1, 1, 3, 5, 2**25 + 1], np.int64)
    got = requantize_float32(acc, 0.5, 0, *WIDE)
    assert got.tolist() == [-2, 0, 0, 2, 2, 2**24]  # 2**25 + 1 is not a float32


def test_float32_multiplier_keeps_runtime_operation_order() -> None:
    xs, ws, ys = F32(0.0123), F32(0.00731), F32(0.0417)
    assert float32_multiplier(xs, ws, ys) == F32(F32(xs * ws) / ys)


def test_integer_and_float32_paths_rarely_disagree_and_never_by_more_than_one() -> None:
    """Within the 8-bit output range float32 rounding moves about one result in a million by one step."""
    rng = np.random.default_rng(7)
    differ = total = 0
    for _ in range(40):
        xs, ws, ys = (F32(v) for v in rng.uniform(1e-3, 1e-1, 3))
        multiplier = float(xs) * float(ws) / float(ys)
        acc = rng.integers(-int(256 / multiplier), int(256 / multiplier), 100_000)
        integer = requantize(acc, decompose_multiplier(multiplier), 0, *WIDE)
        floating = requantize_float32(acc, float32_multiplier(xs, ws, ys), 0, *WIDE)
        assert np.abs(integer - floating).max() <= 1
        differ, total = differ + int((integer != floating).sum()), total + acc.size
    assert differ <= 2e-5 * total


def test_simple_ratio_multipliers_turn_near_ties_into_float32_ties() -> None:
    """M a hair away from 1/40: float32 rounds acc * M onto the half-integer, the exact path does not."""
    xs, ws = F32(0.0123), F32(0.0071)
    ys = F32(xs * ws * 40)
    multiplier = float(xs) * float(ws) / float(ys)
    acc = 20 * np.arange(-101, 102, 2)  # acc / 40 is always a half-integer
    integer = requantize(acc, decompose_multiplier(multiplier), 0, *WIDE)
    floating = requantize_float32(acc, float32_multiplier(xs, ws, ys), 0, *WIDE)
    assert multiplier != 1 / 40
    np.testing.assert_array_equal(floating, np.rint(acc / 40))
    np.testing.assert_array_equal(integer, np.rint(acc * multiplier))
    assert 0.4 < np.mean(integer != floating) < 0.6


# --- reference kernels on their own ---------------------------------------------------------


@dataclass(frozen=True)
class ConvCase:
    """A random QLinearConv problem; zero points and scales are drawn per case."""

    name: str
    x_dtype: type = np.uint8
    w_dtype: type = np.int8
    per_channel: bool = False
    c_in: int = 8
    c_out: int = 16
    group: int = 1
    kernel: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (1, 1, 1, 1)
    dilations: tuple[int, int] = (1, 1)
    bias: bool = True
    w_zp: int = 0
    batch: int = 2
    size: tuple[int, int] = (14, 13)

    @property
    def attrs(self) -> dict:
        return {"strides": self.strides, "pads": self.pads, "dilations": self.dilations, "group": self.group}


CONV_CASES = [
    ConvCase("u8 per-tensor"),
    ConvCase("u8 per-channel", per_channel=True),
    ConvCase("s8 per-tensor", x_dtype=np.int8),
    ConvCase("s8 per-channel", x_dtype=np.int8, per_channel=True),
    ConvCase("u8 depthwise", per_channel=True, c_in=16, group=16),
    ConvCase("s8 depthwise", x_dtype=np.int8, per_channel=True, c_in=16, group=16, strides=(2, 2)),
    ConvCase("u8 grouped", c_in=8, c_out=12, group=4),
    ConvCase("u8 stride 2, asymmetric pads", strides=(2, 2), pads=(0, 1, 2, 1)),
    ConvCase("s8 dilation 2", x_dtype=np.int8, per_channel=True, dilations=(2, 2), pads=(2, 2, 2, 2)),
    ConvCase("u8 5x3 kernel, no bias, no padding", kernel=(5, 3), pads=(0, 0, 0, 0), bias=False),
    ConvCase("u8 weights with zero point", w_dtype=np.uint8, w_zp=131),
]


def random_q(rng: np.random.Generator, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(int(info.min), int(info.max) + 1, shape).astype(dtype)


def random_weights(rng: np.random.Generator, w_dtype: type, x_dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """Symmetric int8 weights, 7-bit next to uint8 inputs as quantizers do on x86 (reduce_range).

    ONNX Runtime's u8s8 kernels on x86 CPUs without VNNI add pairs of products in int16, which
    saturates for full-range weights; 7-bit weights keep the comparison valid on any CPU.
    """
    if w_dtype == np.uint8:
        return random_q(rng, np.uint8, shape)
    limit = 63 if x_dtype == np.uint8 else 127
    return rng.integers(-limit, limit + 1, shape).astype(np.int8)


def conv_problem(case: ConvCase, seed: int = 0) -> dict:
    """Inputs for qlinear_conv, with y_scale chosen so that most outputs are not clamped."""
    rng = np.random.default_rng(seed)
    x_info = np.iinfo(case.x_dtype)
    w_q = random_weights(rng, case.w_dtype, case.x_dtype, (case.c_out, case.c_in // case.group, *case.kernel))
    w_scale = rng.uniform(2e-3, 2e-2, case.c_out if case.per_channel else ()).astype(F32)
    t = {
        "x_q": random_q(rng, case.x_dtype, (case.batch, case.c_in, *case.size)),
        "x_scale": F32(rng.uniform(5e-3, 5e-2)),
        "x_zp": case.x_dtype(rng.integers(int(x_info.min) // 4, int(x_info.max) // 2)),
        "w_q": w_q,
        "w_scale": w_scale,
        "w_zp": np.full(w_scale.shape, case.w_zp, case.w_dtype),
        "bias_q": rng.integers(-5000, 5000, case.c_out).astype(np.int32) if case.bias else None,
    }
    acc = conv_accumulate(t["x_q"], t["x_zp"], w_q, t["w_zp"], t["bias_q"], **case.attrs)
    t["y_scale"] = F32(float(t["x_scale"]) * float(np.mean(w_scale)) * float(acc.std()) / 45)
    t["y_zp"] = case.x_dtype(rng.integers(int(x_info.min) // 2, int(x_info.max) // 2))
    return t


def matmul_problem(a_dtype: type, per_column: bool, seed: int, bias: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    a_info = np.iinfo(a_dtype)
    k, n = 48, 24
    b_scale = rng.uniform(2e-3, 2e-2, n if per_column else ()).astype(F32)
    t = {
        "a_q": random_q(rng, a_dtype, (2, 40, k)),
        "a_scale": F32(rng.uniform(5e-3, 5e-2)),
        "a_zp": a_dtype(rng.integers(int(a_info.min) // 4, int(a_info.max) // 2)),
        "b_q": random_weights(rng, np.int8, a_dtype, (k, n)),
        "b_scale": b_scale,
        "b_zp": np.zeros(b_scale.shape, np.int8),
        "y_zp": a_dtype(rng.integers(int(a_info.min) // 2, int(a_info.max) // 2)),
    }
    if bias:
        t["bias_q"] = rng.integers(-5000, 5000, n).astype(np.int32)
    acc = np.matmul(t["a_q"].astype(np.int64) - int(t["a_zp"]), t["b_q"].astype(np.int64))
    t["y_scale"] = F32(float(t["a_scale"]) * float(np.mean(b_scale)) * float(acc.std()) / 45)
    return t


def naive_conv_acc(t: dict, case: ConvCase) -> np.ndarray:
    """Direct seven-loop convolution, for checking the im2col geometry on small inputs."""
    x = np.pad(t["x_q"].astype(np.int64) - int(t["x_zp"]), ((0, 0), (0, 0), case.pads[0::2], case.pads[1::2]))
    w = t["w_q"].astype(np.int64) - np.asarray(t["w_zp"], np.int64).reshape(-1, 1, 1, 1)
    (sh, sw), (dh, dw) = case.strides, case.dilations
    o, cg, kh, kw = w.shape
    ho = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], o, ho, wo), np.int64)
    for n in range(x.shape[0]):
        for oc in range(o):
            first = oc // (o // case.group) * cg
            for i in range(ho):
                for j in range(wo):
                    patch = x[n, first : first + cg, i * sh : i * sh + dh * kh : dh, j * sw : j * sw + dw * kw : dw]
                    out[n, oc, i, j] = int((patch * w[oc]).sum())
    if t["bias_q"] is not None:
        out += t["bias_q"].reshape(1, -1, 1, 1)
    return out


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.name)
def test_conv_accumulate_matches_a_direct_loop(case: ConvCase) -> None:
    small = replace(case, batch=1, size=(9, 8))
    t = conv_problem(small, seed=3)
    acc = conv_accumulate(t["x_q"], t["x_zp"], t["w_q"], t["w_zp"], t["bias_q"], **small.attrs)
    np.testing.assert_array_equal(acc, naive_conv_acc(t, small))


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.name)
def test_explained_element_agrees_with_the_kernel(case: ConvCase) -> None:
    t = conv_problem(case, seed=5)
    y = qlinear_conv(**t, **case.attrs)
    rng = np.random.default_rng(1)
    corners = [(0, 0, 0, 0), (y.shape[0] - 1, y.shape[1] - 1, y.shape[2] - 1, y.shape[3] - 1)]
    for n, c, h, w in corners + [tuple(int(rng.integers(s)) for s in y.shape) for _ in range(6)]:
        info = explain_conv_element(**t, n=n, c=c, h=h, w=w, **case.attrs)
        assert info["y_q"] == y[n, c, h, w]
        assert info["acc_with_bias"] == info["acc"] + info["bias"] == int(info["products"].sum()) + info["bias"]
        assert info["x_q"].shape == info["w_q"].shape == (case.c_in // case.group, *case.kernel)
        assert info["y_real"] == pytest.approx(float(t["y_scale"]) * (int(y[n, c, h, w]) - int(t["y_zp"])))


def test_explanation_shows_padding_as_the_zero_point_and_every_stage() -> None:
    x_q = np.full((1, 1, 2, 2), 200, np.uint8)
    w_q = np.ones((1, 1, 3, 3), np.int8)
    info = explain_conv_element(
        x_q, 0.1, 100, w_q, 0.5, 0, np.array([7], np.int32), 2.0, 10, n=0, c=0, h=0, w=0, pads=(1, 1, 1, 1)
    )
    assert info["in_bounds"].tolist() == [[False, False, False], [False, True, True], [False, True, True]]
    assert info["x_q"][0, 0].tolist() == [100, 100, 100] and info["x_q"][0, 1].tolist() == [100, 200, 200]
    assert (info["acc"], info["bias"], info["acc_with_bias"]) == (400, 7, 407)
    assert info["real_value"] == pytest.approx(0.1 * 0.5 * 407)
    assert info["multiplier"].approx == pytest.approx(0.025)
    assert info["before_clamp"] == round(407 * 0.025) + 10 == 20
    assert info["y_q"] == 20 and info["y_real"] == pytest.approx(20.0)


def test_fused_relu_clamps_at_the_output_zero_point() -> None:
    t = conv_problem(CONV_CASES[0], seed=11)
    plain = qlinear_conv(**t, pads=(1, 1, 1, 1))
    relu = qlinear_conv(**t, pads=(1, 1, 1, 1), relu=True)
    np.testing.assert_array_equal(relu, np.maximum(plain, t["y_zp"]))
    assert (plain < t["y_zp"]).any()


@pytest.mark.parametrize(
    "attrs", [{"group": 3}, {"dilations": (8, 8)}], ids=["group does not divide", "kernel larger than input"]
)
def test_conv_rejects_impossible_geometry(attrs: dict) -> None:
    t = conv_problem(CONV_CASES[0])
    with pytest.raises(Q8Error):
        qlinear_conv(**t, **attrs)


@pytest.mark.parametrize("position", [(2, 0, 0, 0), (0, 16, 0, 0), (0, 0, 14, 0), (0, 0, 0, -1)])
def test_explanation_rejects_elements_outside_the_output(position: tuple[int, int, int, int]) -> None:
    t = conv_problem(CONV_CASES[0])
    n, c, h, w = position
    with pytest.raises(Q8Error):
        explain_conv_element(**t, n=n, c=c, h=h, w=w, pads=(1, 1, 1, 1))


def test_gemm_transposes_and_bias_agree_with_matmul() -> None:
    t = matmul_problem(np.uint8, per_column=True, seed=12, bias=True)
    a, b, bias = t["a_q"][0], t["b_q"], t.pop("bias_q")
    t.pop("a_q"), t.pop("b_q")
    plain = qlinear_gemm(a, b_q=b, bias_q=bias, **t)
    transposed = qlinear_gemm(a.T.copy(), b_q=b.T.copy(), bias_q=bias, trans_a=True, trans_b=True, **t)
    np.testing.assert_array_equal(plain, transposed)
    without_bias = qlinear_gemm(a, b_q=b, bias_q=None, **t)
    np.testing.assert_array_equal(without_bias, qlinear_matmul(a, b_q=b, **t))
    assert not np.array_equal(plain, without_bias)


def test_unknown_requantization_is_rejected() -> None:
    t = conv_problem(CONV_CASES[0])
    with pytest.raises(Q8Error):
        qlinear_conv(**t, requant="double")  # type: ignore[arg-type]


def test_conv_64_channels_32x32_is_fast() -> None:
    case = ConvCase("speed", c_in=64, c_out=64, batch=1, size=(32, 32), per_channel=True)
    t = conv_problem(case)
    start = time.perf_counter()
    qlinear_conv(**t, **case.attrs)
    assert time.perf_counter() - start < 1.0


# --- bit-exactness against ONNX Runtime ----------------------------------------------------


def make_model(nodes: list, inputs: list, output_type: int, initializers: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("y", output_type, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def session(model: onnx.ModelProto, **config: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def optimized_ops(model: onnx.ModelProto, tmp_path, **config: str) -> list[str]:
    """Operator types left after ONNX Runtime's default graph optimizations (the kernels it runs)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]


def tensor_type(dtype: type) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def input_info(name: str, array: np.ndarray) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, tensor_type(array.dtype), array.shape)


def qlinear_conv_model(t: dict, case: ConvCase) -> onnx.ModelProto:
    names = ["x", "x_scale", "x_zp", "w_q", "w_scale", "w_zp", "y_scale", "y_zp"] + (["bias_q"] if case.bias else [])
    node = helper.make_node("QLinearConv", names, ["y"], **case.attrs)
    inits = {k: t[k] for k in names[1:]}
    return make_model([node], [input_info("x", t["x_q"])], tensor_type(case.x_dtype), inits)


def qdq_conv_model(t: dict, case: ConvCase, relu: bool) -> onnx.ModelProto:
    """DQ(x), DQ(w), DQ(bias) -> Conv [-> Relu] -> Q, the layout a QDQ quantizer writes."""
    inits = {k: t[k] for k in ("x_scale", "x_zp", "w_q", "w_scale", "w_zp", "bias_q", "y_scale", "y_zp")}
    inits["b_scale"] = (t["x_scale"] * t["w_scale"]).astype(F32)
    inits["b_zp"] = np.zeros(t["w_scale"].shape, np.int32)
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["xf"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["wf"], axis=0),
        helper.make_node("DequantizeLinear", ["bias_q", "b_scale", "b_zp"], ["bf"], axis=0),
        helper.make_node("Conv", ["xf", "wf", "bf"], ["cf"], **case.attrs),
    ]
    if relu:
        nodes.append(helper.make_node("Relu", ["cf"], ["rf"]))
    nodes.append(helper.make_node("QuantizeLinear", ["rf" if relu else "cf", "y_scale", "y_zp"], ["y"]))
    return make_model(nodes, [input_info("x", t["x_q"])], tensor_type(case.x_dtype), inits)


def compare(ours: np.ndarray, reference: np.ndarray) -> tuple[int, int]:
    """(elements that differ, largest difference)."""
    diff = np.abs(ours.astype(np.int64) - reference.astype(np.int64))
    return int((diff > 0).sum()), int(diff.max())


def assert_close_to_runtime(ours: np.ndarray, reference: np.ndarray, fraction: float = 1e-3) -> None:
    """The integer path may differ by one step on near-ties only (see requantize_float32)."""
    count, largest = compare(ours, reference)
    assert largest <= 1 and count <= max(1, fraction * ours.size)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.name)
def test_qlinear_conv_matches_onnxruntime(case: ConvCase) -> None:
    t = conv_problem(case, seed=1)
    expected = session(qlinear_conv_model(t, case)).run(None, {"x": t["x_q"]})[0]
    ort_path = qlinear_conv(**t, **case.attrs, requant="ort")
    assert ort_path.dtype == expected.dtype
    np.testing.assert_array_equal(ort_path, expected)
    assert_close_to_runtime(qlinear_conv(**t, **case.attrs), expected)


QDQ_CASES = [replace(c, bias=True) for c in CONV_CASES if c.x_dtype == np.uint8 and c.w_zp == 0]


@pytest.mark.parametrize("relu", [False, True], ids=["no relu", "relu"])
@pytest.mark.parametrize("case", QDQ_CASES, ids=lambda c: c.name)
def test_qdq_conv_fused_by_onnxruntime_matches(case: ConvCase, relu: bool, tmp_path) -> None:
    """uint8 QDQ Conv becomes QLinearConv; a Relu before Q with Z_y = 0 disappears into the clamp."""
    t = conv_problem(case, seed=2)
    t["y_zp"] = np.uint8(0) if relu else t["y_zp"]
    model = qdq_conv_model(t, case, relu)
    ops = optimized_ops(model, tmp_path)
    assert "QLinearConv" in ops and "Relu" not in ops
    expected = session(model).run(None, {"x": t["x_q"]})[0]
    np.testing.assert_array_equal(qlinear_conv(**t, **case.attrs, relu=relu, requant="ort"), expected)
    assert_close_to_runtime(qlinear_conv(**t, **case.attrs, relu=relu), expected)


def test_int8_qdq_conv_runs_in_float_by_default_and_fuses_when_allowed(tmp_path) -> None:
    """An int8 QDQ Conv fed int8 codes as they are (no QuantizeLinear pair for ONNX Runtime to turn into uint8)
    fuses on x86 only with session.qdqisint8allowed=1."""
    case = replace(CONV_CASES[3], name="s8 qdq")
    t = conv_problem(case, seed=4)
    model = qdq_conv_model(t, case, relu=False)
    allow = {"session.qdqisint8allowed": "1"}
    assert "QLinearConv" in optimized_ops(model, tmp_path, **allow)
    np.testing.assert_array_equal(
        qlinear_conv(**t, **case.attrs, requant="ort"), session(model, **allow).run(None, {"x": t["x_q"]})[0]
    )
    if "QLinearConv" not in optimized_ops(model, tmp_path):  # float Conv: rounding differs a little
        assert_close_to_runtime(qlinear_conv(**t, **case.attrs), session(model).run(None, {"x": t["x_q"]})[0], 1e-2)


def test_qdq_conv_relu_with_nonzero_output_zero_point_stays_float(tmp_path) -> None:
    """With Z_y above qmin the Relu cannot vanish into the clamp, so ORT keeps a float FusedConv."""
    case = CONV_CASES[1]
    t = conv_problem(case, seed=6)
    t["y_zp"] = np.uint8(100)
    model = qdq_conv_model(t, case, relu=True)
    assert "QLinearConv" not in optimized_ops(model, tmp_path)
    expected = session(model).run(None, {"x": t["x_q"]})[0]
    assert_close_to_runtime(qlinear_conv(**t, **case.attrs, relu=True), expected, 1e-2)


@pytest.mark.parametrize("per_column", [False, True], ids=["per-tensor", "per-column"])
@pytest.mark.parametrize("a_dtype", [np.uint8, np.int8])
def test_qlinear_matmul_matches_onnxruntime(a_dtype: type, per_column: bool) -> None:
    t = matmul_problem(a_dtype, per_column, seed=8)
    names = ["a_q", "a_scale", "a_zp", "b_q", "b_scale", "b_zp", "y_scale", "y_zp"]
    node = helper.make_node("QLinearMatMul", names, ["y"])
    model = make_model([node], [input_info("a_q", t["a_q"])], tensor_type(a_dtype), {k: t[k] for k in names[1:]})
    expected = session(model).run(None, {"a_q": t["a_q"]})[0]
    np.testing.assert_array_equal(qlinear_matmul(**t, requant="ort"), expected)
    assert_close_to_runtime(qlinear_matmul(**t), expected)


def qdq_gemm_model(t: dict, trans_b: bool) -> onnx.ModelProto:
    inits = {k: t[k] for k in ("a_scale", "a_zp", "b_scale", "b_zp", "bias_q", "y_scale", "y_zp")}
    inits["b_q"] = t["b_q"].T.copy() if trans_b else t["b_q"]
    inits["bias_scale"] = (t["a_scale"] * t["b_scale"]).astype(F32)
    inits["bias_zp"] = np.zeros(t["b_scale"].shape, np.int32)
    nodes = [
        helper.make_node("DequantizeLinear", ["a_q", "a_scale", "a_zp"], ["af"]),
        helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["bf"], axis=0 if trans_b else 1),
        helper.make_node("DequantizeLinear", ["bias_q", "bias_scale", "bias_zp"], ["cf"], axis=0),
        helper.make_node("Gemm", ["af", "bf", "cf"], ["yf"], transB=int(trans_b)),
        helper.make_node("QuantizeLinear", ["yf", "y_scale", "y_zp"], ["y"]),
    ]
    return make_model(nodes, [input_info("a_q", t["a_q"])], tensor_type(t["a_q"].dtype), inits)


@pytest.mark.parametrize("trans_b", [False, True], ids=["B", "B^T"])
@pytest.mark.parametrize("per_column", [False, True], ids=["per-tensor", "per-column"])
@pytest.mark.parametrize("a_dtype", [np.uint8, np.int8])
def test_qdq_gemm_fused_into_qgemm_matches(a_dtype: type, per_column: bool, trans_b: bool, tmp_path) -> None:
    """ORT replaces DQ -> Gemm -> Q by com.microsoft QGemm, which requantizes like QLinearConv."""
    t = matmul_problem(a_dtype, per_column, seed=9, bias=True)
    t["a_q"] = t["a_q"][0]
    model = qdq_gemm_model(t, trans_b)
    assert optimized_ops(model, tmp_path) == ["QGemm"]
    expected = session(model).run(None, {"a_q": t["a_q"]})[0]
    kwargs = {**t, "b_q": t["b_q"].T if trans_b else t["b_q"], "trans_b": trans_b}
    np.testing.assert_array_equal(qlinear_gemm(**kwargs, requant="ort"), expected)
    assert_close_to_runtime(qlinear_gemm(**kwargs), expected)


def discriminating_accumulators(xs: np.float32, ws: np.float32, ys: np.float32) -> np.ndarray:
    """Accumulators whose requantized value depends on exactly how M is computed and applied.

    Only accumulators next to ``(k + 1/2) / M`` can tell roundings apart, so only those are tried.
    """
    multiplier = float32_multiplier(xs, ws, ys)
    ties = (np.arange(-120, 120) + 0.5) / float(multiplier)
    acc = np.unique(np.concatenate([np.floor(ties), np.ceil(ties)])).astype(np.int64)
    runtime_like = requantize_float32(acc, multiplier, 0, *WIDE)
    alternatives = [
        requantize(acc, decompose_multiplier(float(xs) * float(ws) / float(ys)), 0, *WIDE),
        np.rint(acc * float(multiplier)),  # float32 M, but an exact product
        requantize_float32(acc, xs * (ws / ys), 0, *WIDE),  # another float32 operation order
    ]
    return acc[np.any([alt != runtime_like for alt in alternatives], axis=0)]


def bias_probe_model(op: str, xs: np.float32, ws: np.ndarray, ys: np.float32, acc: np.ndarray) -> onnx.ModelProto:
    """A model whose int32 accumulators are exactly ``acc``: zero input, unit weights, acc as bias.

    Channel ``i`` has weight scale ``ws[i]``, so one model probes many multipliers.
    """
    inits = {"xs": xs, "xz": np.uint8(0), "ws": ws, "wz": np.zeros(ws.shape, np.int8), "ys": ys, "yz": np.uint8(128)}
    inits["b"] = acc
    if op == "QLinearConv":
        inits["w"] = np.ones((acc.size, 1, 1, 1), np.int8)
        nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"])]
        x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 1, 1])
    else:
        inits.update(w=np.ones((1, acc.size), np.int8), bs=(xs * ws).astype(F32), bz=np.zeros(ws.shape, np.int32))
        nodes = [
            helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
            helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], axis=1),
            helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], axis=0),
            helper.make_node("Gemm", ["xf", "wf", "bf"], ["yf"]),
            helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"]),
        ]
        x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1])
    return make_model(nodes, [x], TensorProto.UINT8, inits)


@pytest.mark.parametrize("op", ["QLinearConv", "QGemm"])
def test_runtime_requantizes_float32_acc_times_float32_m(op: str, tmp_path) -> None:
    """Where the candidate formulas disagree, ONNX Runtime always sides with requantize_float32."""
    rng = np.random.default_rng(13)
    for xs in rng.uniform(1e-3, 1e-1, 3).astype(F32):
        ys = F32(xs * rng.uniform(50, 500))  # M = S_w / 50..500, typical of conv layers
        w_scales = rng.uniform(1e-3, 1e-1, 200).astype(F32)
        probes = [(w, a) for w in w_scales for a in discriminating_accumulators(xs, w, ys)]
        ws, acc = np.array([w for w, _ in probes], F32), np.array([a for _, a in probes], np.int32)
        assert acc.size >= 100 and (acc > 0).any() and (acc < 0).any()
        model = bias_probe_model(op, xs, ws, ys, acc)
        assert op in optimized_ops(model, tmp_path)
        shape = (1, 1, 1, 1) if op == "QLinearConv" else (1, 1)
        got = session(model).run(None, {"x": np.zeros(shape, np.uint8)})[0]
        expected = requantize_float32(acc, float32_multiplier(xs, ws, ys), 128, 0, 255, axis=0)
        np.testing.assert_array_equal(got.reshape(-1), expected)
