"""The QLinearMul reference against ONNX Runtime: a QDQ Mul, fused by the runtime, must give exactly the
reference kernel's outputs on every element."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import quant_params
from q8studio.core.intmath import fma_float32
from q8studio.core.mulkernels import MulConstants, dequantize_mul_quantize, qlinear_mul, qlinear_mul_steps
from q8studio.core.runtimegraph import open_session
from q8studio.core.session import cpu_session

QUANTIZED = ["a_q", "b_q", "y_q"]


def qdq_mul(scales: tuple[float, float, float], zeros: tuple[int, int, int], shapes: tuple[list, list],
            qtype: int) -> onnx.ModelProto:
    """float a, b -> Quantize/Dequantize each -> Mul (named "mul") -> Quantize/Dequantize -> y."""
    npt = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    nodes = []
    for name in ("a", "b"):
        nodes += [helper.make_node("QuantizeLinear", [name, f"s_{name}", f"z_{name}"], [f"{name}_q"]),
                  helper.make_node("DequantizeLinear", [f"{name}_q", f"s_{name}", f"z_{name}"], [f"{name}_dq"])]
    nodes += [helper.make_node("Mul", ["a_dq", "b_dq"], ["product"], name="mul"),
              helper.make_node("QuantizeLinear", ["product", "s_y", "z_y"], ["y_q"]),
              helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["y"])]
    initializers = [numpy_helper.from_array(np.array(s, np.float32), f"s_{n}") for n, s in zip("aby", scales)]
    initializers += [numpy_helper.from_array(np.array(z, npt), f"z_{n}") for n, z in zip("aby", zeros)]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in zip("ab", shapes)]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(np.broadcast_shapes(*map(tuple, shapes))))
    graph = helper.make_graph(nodes, "qdq_mul", inputs, [output], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def random_case(rng: np.random.Generator, qtype: int, shapes: tuple[list, list]):
    """Input scales 10**uniform(-3, 0); the output's scale a random 10 to 1000 times their product, so that
    M = S_a S_b / S_y spans 0.001 to 0.1: independent output scales would make M span 0.001 to 1000, and
    most cases would saturate everywhere or round everything to Z_y. Inputs spread a little beyond their own
    ranges, so both the inputs and the output saturate."""
    low, high = (0, 255) if qtype == TensorProto.UINT8 else (-128, 127)
    s_a, s_b = (np.float32(10 ** rng.uniform(-3, 0)) for _ in range(2))
    scales = (float(s_a), float(s_b), float(np.float32(s_a * s_b * 10 ** rng.uniform(1, 3))))
    zeros = tuple(int(z) for z in rng.integers(low, high + 1, 3))
    values = [np.asarray(rng.uniform(low - 20 - zero, high + 20 - zero, shape) * scale, np.float32)
              for shape, scale, zero in zip(shapes, scales, zeros)]
    return scales, zeros, values


SHAPES = {"same": ([2, 8, 9, 7], [2, 8, 9, 7]), "per-channel b": ([2, 8, 9, 7], [1, 8, 1, 1]),
          "scalar b": ([2, 8, 9, 7], []), "one-element b": ([2, 8, 9, 7], [1]), "scalar a": ([], [2, 8, 9, 7])}
QTYPES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}


def test_onnx_runtime_fuses_the_qdq_mul_into_qlinear_mul(tmp_path: Path) -> None:
    model = qdq_mul((0.02, 0.05, 0.1), (128, 120, 130), SHAPES["same"], TensorProto.UINT8)
    _, nodes = open_session(model, tmp_path, outputs=QUANTIZED, threads=1)
    assert [(n.op_type, n.domain) for n in nodes if "mul" in n.op_type.lower()] == [("QLinearMul", "com.microsoft")]


@pytest.mark.parametrize("qtype", QTYPES.values(), ids=QTYPES.keys())
@pytest.mark.parametrize("shapes", SHAPES.values(), ids=SHAPES.keys())
def test_qlinear_mul_reference_is_bit_exact_with_onnx_runtime(qtype: int, shapes: tuple[list, list]) -> None:
    rng = np.random.default_rng(11)
    low, high = (0, 255) if qtype == TensorProto.UINT8 else (-128, 127)
    elements = saturated = differing = 0
    steps = set()
    for _ in range(8):
        scales, zeros, (a, b) = random_case(rng, qtype, shapes)
        session = cpu_session(qdq_mul(scales, zeros, shapes, qtype), outputs=QUANTIZED)
        a_q, b_q, y_q = session.run(QUANTIZED, {"a": a, "b": b})
        pa, pb, py = (quant_params(n, s, z, qtype) for n, s, z in zip("aby", scales, zeros))
        kernel = qlinear_mul(a_q, b_q, MulConstants.of(pa, pb, py), py)
        assert kernel.shape == y_q.shape
        assert np.array_equal(kernel, y_q)
        definition = dequantize_mul_quantize(a_q, pa, b_q, pb, py)
        elements += y_q.size
        saturated += int(np.count_nonzero((y_q == low) | (y_q == high)))
        differing += int(np.count_nonzero(definition != y_q))
        steps |= set(np.abs(definition - y_q.astype(np.int64)).ravel().tolist())
    assert 0 < saturated < elements  # the cases do reach the output's limits, and not only them
    assert differing <= elements // 100
    assert steps <= {0, 1}


def test_the_steps_show_the_exact_product_then_two_float32_roundings() -> None:
    a, b, y = (quant_params(n, s, z, TensorProto.INT8) for n, s, z in (("a", 0.1, 3), ("b", 0.3, -5), ("y", 0.7, 2)))
    constants = MulConstants.of(a, b, y)
    assert constants.ratio == np.float32(np.float32(np.float32(0.1) * np.float32(0.3)) / np.float32(0.7))
    product, scaled, total = qlinear_mul_steps(np.array([-128, 127]), np.array([127, -128]), constants)
    assert product.tolist() == [-131 * 132, 124 * -123]
    assert scaled.dtype == np.float32 and total.tolist() == (scaled + np.float32(2)).tolist()


@pytest.mark.parametrize("qtype", QTYPES.values(), ids=QTYPES.keys())
def test_a_ratio_beyond_int32_gives_the_lowest_value_as_onnx_runtime_does(qtype: int) -> None:
    """With M = 10**6, ``p M`` leaves int32's range: x86's conversion gives INT32_MIN, whatever the sign."""
    low, high = (0, 255) if qtype == TensorProto.UINT8 else (-128, 127)
    middle = (low + high) // 2
    scales, zeros, shapes = (1.0, 1.0, 1e-6), (middle, middle, middle), ([16], [16])
    values = np.linspace(low - middle, high - middle, 16, dtype=np.float32)
    session = cpu_session(qdq_mul(scales, zeros, shapes, qtype), outputs=QUANTIZED)
    a_q, b_q, y_q = session.run(QUANTIZED, {"a": values, "b": values[::-1].copy()})
    pa, pb, py = (quant_params(n, s, z, qtype) for n, s, z in zip("aby", scales, zeros))
    assert np.array_equal(qlinear_mul(a_q, b_q, MulConstants.of(pa, pb, py), py), y_q)
    products = (a_q.astype(np.int64) - middle) * (b_q.astype(np.int64) - middle)
    assert (y_q[products > 2147] == low).all() and (y_q[products < -2147] == low).all()


NEAR_TIES = {  # p M + Z_y lies within float32 rounding of a half-integer: p M and + Z_y each round
    "uint8": (TensorProto.UINT8, (0.011840923689305782, 0.05183098837733269, 0.027021775022149086), (128, 128, 239),
              [79], [159], [204], [205]),
    "int8": (TensorProto.INT8, (0.015497286804020405, 0.0040411436930298805, 0.047051142901182175), (0, 0, 97),
             [-103, 103], [62, 62], [88, 106], [89, 105]),
}


@pytest.mark.parametrize("case", NEAR_TIES.values(), ids=NEAR_TIES.keys())
def test_near_a_tie_onnx_runtime_rounds_the_product_and_the_zero_point_addition_apart(case) -> None:
    """One fused multiply-add (or the dequantized definition) would round these the other way."""
    qtype, scales, zeros, a_expected, b_expected, kernel_expected, definition_expected = case
    shapes = ([len(a_expected)], [len(b_expected)])
    a, b = (((np.array(q) - zero) * np.float32(scale)).astype(np.float32)
            for q, zero, scale in zip((a_expected, b_expected), zeros, scales))
    session = cpu_session(qdq_mul(scales, zeros, shapes, qtype), outputs=QUANTIZED)
    a_q, b_q, y_q = session.run(QUANTIZED, {"a": a, "b": b})
    assert a_q.tolist() == a_expected and b_q.tolist() == b_expected and y_q.tolist() == kernel_expected
    pa, pb, py = (quant_params(n, s, z, qtype) for n, s, z in zip("aby", scales, zeros))
    constants = MulConstants.of(pa, pb, py)
    assert qlinear_mul(a_q, b_q, constants, py).tolist() == kernel_expected
    assert dequantize_mul_quantize(a_q, pa, b_q, pb, py).tolist() == definition_expected
    product, _, _ = qlinear_mul_steps(a_q, b_q, constants)
    fused = fma_float32(product.astype(np.float32), constants.ratio, np.float32(constants.zero_y))
    assert np.rint(fused).tolist() == definition_expected
