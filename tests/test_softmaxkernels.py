"""The QLinearSoftmax reference against ONNX Runtime: a QDQ Softmax, fused by the runtime, must give exactly the
reference kernel's outputs on every element, rows chosen near rounding ties included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import quant_params
from q8studio.core.runtimegraph import open_session
from q8studio.core.session import cpu_session
from q8studio.core.softmaxkernels import (
    Rows,
    dequantize_softmax_quantize,
    exp_table,
    output_multiplier,
    qlinear_softmax,
    softmax_sums,
)

QTYPES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}


def qdq_softmax(shape: list[int], axis: int, opset: int, scales: tuple[float, float], zeros: tuple[int, int],
                qtype: int) -> onnx.ModelProto:
    """8-bit x_q -> DequantizeLinear -> Softmax (named "softmax") -> QuantizeLinear -> 8-bit y_q."""
    npt = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    nodes = [helper.make_node("DequantizeLinear", ["x_q", "s_x", "z_x"], ["x"]),
             helper.make_node("Softmax", ["x"], ["p"], name="softmax", axis=axis),
             helper.make_node("QuantizeLinear", ["p", "s_y", "z_y"], ["y_q"])]
    initializers = [numpy_helper.from_array(np.array(s, np.float32), f"s_{n}") for n, s in zip("xy", scales)]
    initializers += [numpy_helper.from_array(np.array(z, npt), f"z_{n}") for n, z in zip("xy", zeros)]
    graph = helper.make_graph(nodes, "qdq_softmax", [helper.make_tensor_value_info("x_q", qtype, shape)],
                              [helper.make_tensor_value_info("y_q", qtype, shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def run_softmax(x_q: np.ndarray, axis: int, opset: int, scales: tuple[float, float], zeros: tuple[int, int],
                qtype: int) -> np.ndarray:
    """ONNX Runtime's y_q for ``x_q``."""
    session = cpu_session(qdq_softmax(list(x_q.shape), axis, opset, scales, zeros, qtype), threads=1)
    return session.run(None, {"x_q": x_q})[0]


def params(scales: tuple[float, float], zeros: tuple[int, int], qtype: int):
    return tuple(quant_params(n, s, z, qtype) for n, s, z in zip("xy", scales, zeros))


def random_case(rng: np.random.Generator, qtype: int) -> tuple[tuple[float, float], tuple[int, int]]:
    """S_x from 0.003 to 0.4; S_y about 1/255 as a calibrated probability's range gives it, but not exactly, so
    that floor(1/S_y) falls below 1/S_y; Z_y the low end mostly (a probability is never negative)."""
    low, high = (0, 255) if qtype == TensorProto.UINT8 else (-128, 127)
    zero_y = low if rng.random() < 0.7 else int(rng.integers(low, low + 20))
    return (float(rng.uniform(0.003, 0.4)), float(1 / rng.uniform(150, 300))), (int(rng.integers(low, high)), zero_y)


def test_onnx_runtime_fuses_the_qdq_softmax_into_qlinear_softmax(tmp_path: Path) -> None:
    model = qdq_softmax([2, 10], -1, 13, (0.1, 1 / 256), (128, 0), TensorProto.UINT8)
    _, nodes = open_session(model, tmp_path, threads=1)
    assert [(n.op_type, n.domain) for n in nodes if "softmax" in n.op_type.lower()] == [("QLinearSoftmax",
                                                                                          "com.microsoft")]


LAYOUTS = {  # shape, axis, opset: rows along an inner and the last axis, and the flattened rows before opset 13
    "last axis": ([3, 4, 37], -1, 13), "channel axis": ([2, 10, 3, 5], 1, 17),
    "flattened, opset 11": ([2, 5, 3, 4], 1, 11), "long rows": ([2, 300], 1, 13),
}


@pytest.mark.parametrize("qtype", QTYPES.values(), ids=QTYPES.keys())
@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_qlinear_softmax_reference_is_bit_exact_with_onnx_runtime(qtype: int, layout: tuple) -> None:
    shape, axis, opset = layout
    rng = np.random.default_rng(3)
    low, high = (0, 255) if qtype == TensorProto.UINT8 else (-128, 127)
    npt = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    elements = differing = 0
    for _ in range(6):
        scales, zeros = random_case(rng, qtype)
        x_q = rng.integers(low, high + 1, shape).astype(npt)
        y_q = run_softmax(x_q, axis, opset, scales, zeros, qtype)
        x, y = params(scales, zeros, qtype)
        rows = Rows.of(tuple(shape), axis, opset)
        assert np.array_equal(qlinear_softmax(x_q, x, y, rows), y_q)
        definition = dequantize_softmax_quantize(x_q, x, y, rows)
        assert np.abs(definition - y_q.astype(np.int64)).max() <= 1
        elements, differing = elements + y_q.size, differing + int(np.count_nonzero(definition != y_q))
    assert 0 < differing < elements // 4  # K = floor(1/S_y) does move outputs, but a step at most and rarely


def test_flattened_rows_hold_every_value_from_the_axis_on() -> None:
    rows = Rows.of((2, 5, 3, 4), 1, 11)
    values = np.arange(120).reshape(2, 5, 3, 4)
    assert rows.length == 60 and rows.rows(values).shape == (2, 60)
    assert np.array_equal(rows.restored(rows.rows(values)), values)
    assert rows.place((1, 2, 0, 3)) == (1, 2 * 12 + 3)
    inner = Rows.of((2, 5, 3, 4), -3, 13)  # since opset 13, one axis
    assert inner.length == 5 and inner.rows(values).shape == (24, 5)
    assert np.array_equal(inner.restored(inner.rows(values)), values)
    row, position = inner.place((1, 2, 0, 3))
    assert position == 2 and inner.rows(values)[row].tolist() == values[1, :, 0, 3].tolist()


def candidate_quotients(rows: np.ndarray, x, y) -> dict[str, np.ndarray]:
    """y_q by the reference and by three float32 ways of forming E[d] K / Σ, which round near-ties otherwise."""
    sums = softmax_sums(rows, x, y)
    entries, total, multiplier = sums.entries, sums.sums[:, None], output_multiplier(y)
    return {"reference": np.rint(sums.quotients),
            "float32 (E K) / Σ": np.rint((entries * multiplier).astype(np.float32) / total),
            "float32 (E / Σ) K": np.rint((entries / total).astype(np.float32) * multiplier),
            "float32 E (1 / Σ) K": np.rint(entries * (np.float32(1) / total) * multiplier)}


@pytest.mark.parametrize("qtype", QTYPES.values(), ids=QTYPES.keys())
def test_near_a_tie_the_quotient_is_taken_in_double_precision(qtype: int) -> None:
    """Rows where forming the quotient in float32 would round an output the other way: ONNX Runtime agrees with
    the reference on each, and differs from every float32 candidate somewhere."""
    rng = np.random.default_rng(5)
    low, high = (0, 255) if qtype == TensorProto.UINT8 else (-128, 127)
    npt = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    candidates_wrong: set[str] = set()
    found = 0
    while found < 12:
        scales, zeros = random_case(rng, qtype)
        x, y = params(scales, zeros, qtype)
        codes = rng.integers(high - 40, high + 1, (200, int(rng.choice([3, 5, 10, 20]))))
        ways = candidate_quotients(codes, x, y)
        apart = np.flatnonzero(np.any([(w != ways["reference"]).any(axis=1) for w in ways.values()], axis=0))
        if apart.size == 0:
            continue
        x_q = codes[apart[:1]].astype(npt)
        y_q = run_softmax(x_q, 1, 13, scales, zeros, qtype).astype(np.int64)
        assert np.array_equal(qlinear_softmax(x_q, x, y, Rows.of(x_q.shape, 1, 13)), y_q)
        for name, way in candidate_quotients(x_q.astype(np.int64), x, y).items():
            if not np.array_equal(np.clip(way + zeros[1], low, high), y_q):
                candidates_wrong.add(name)
        found += 1
    assert candidates_wrong == {"float32 (E K) / Σ", "float32 (E / Σ) K", "float32 E (1 / Σ) K"}


def test_the_table_lifts_the_largest_entry_near_float32s_limit_and_decays_by_s_x() -> None:
    x = quant_params("x", 0.05, 0, TensorProto.UINT8)
    table = exp_table(x, 100)
    largest_sum = np.finfo(np.float32).max / 100
    assert table.dtype == np.float32 and largest_sum / np.e ** 5.01 < table[0] < largest_sum / np.e ** 4.99
    ratios = table[1:20].astype(np.float64) / table[:19]
    assert np.allclose(ratios, np.exp(-0.05), rtol=1e-6)
    assert table.astype(np.float64).sum() * 100 < np.finfo(np.float32).max  # a row of D largest entries fits


def test_k_rounds_one_over_s_y_down() -> None:
    assert output_multiplier(quant_params("y", 1 / 255.4, 0, TensorProto.UINT8)) == 255
    assert output_multiplier(quant_params("y", 1 / 256, 0, TensorProto.UINT8)) == 256
    assert output_multiplier(quant_params("y", 0.0039199, 0, TensorProto.UINT8)) == 255  # 1/S_y = 255.109
