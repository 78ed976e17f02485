"""Explain on an int8 GlobalAveragePool: ONNX Runtime's QLinearGlobalAveragePool and the QDQ definition,
against ONNX Runtime itself.

The pooling models are built with onnx.helper as a quantizer writes them (QuantizeLinear and DequantizeLinear
on the input, QuantizeLinear after the pooling), with random scales, zero points, both 8-bit types and several
image sizes; ONNX Runtime fuses them into QLinearGlobalAveragePool, whose output the kernel reference must
reproduce bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core.explain import explain_node
from q8studio.core.explainpool import DEFINITION_CHECK, KERNEL_CHECK, PoolExplanation
from q8studio.core.model import load_model
from q8studio.core.poolkernels import dequantize_average_quantize, qlinear_global_average_pool
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import cpu_session
from q8studio.core.weights import QuantParams


def qdq_pool(scales: tuple[float, float], zeros: tuple[int, int], shape: list, qtype: int = TensorProto.UINT8,
             requantized: bool = True) -> object:
    """float x -> Quantize/Dequantize -> GlobalAveragePool (named "gap") -> Quantize/Dequantize -> y."""
    npt = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "s_x", "z_x"], ["x_dq"]),
             helper.make_node("GlobalAveragePool", ["x_dq"], ["pooled" if requantized else "y"], name="gap")]
    if requantized:
        nodes += [helper.make_node("QuantizeLinear", ["pooled", "s_y", "z_y"], ["y_q"]),
                  helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["y"])]
    initializers = [numpy_helper.from_array(np.array(s, np.float32), f"s_{n}") for n, s in zip("xy", scales)]
    initializers += [numpy_helper.from_array(np.array(z, npt), f"z_{n}") for n, z in zip("xy", zeros)]
    out = list(shape[:2]) + [1] * (len(shape) - 2)
    graph = helper.make_graph(nodes, "qdq_pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def params(name: str, scale: float, zero: int, qtype: int) -> QuantParams:
    dtype = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    return QuantParams(name, np.array(scale, np.float32), np.array(zero, dtype), np.dtype(dtype).name)


SHAPES = {"7x7": [2, 24, 7, 7], "1x1": [1, 8, 1, 1], "odd 5x3": [1, 16, 5, 3], "1-D": [3, 8, 10],
          "large 56x56": [1, 4, 56, 56]}


@pytest.mark.parametrize("qtype", [TensorProto.UINT8, TensorProto.INT8], ids=["uint8", "int8"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_qlinear_global_average_pool_reference_is_bit_exact_with_onnx_runtime(qtype: int, shape: list) -> None:
    rng = np.random.default_rng(11)
    low, high = (0, 256) if qtype == TensorProto.UINT8 else (-128, 128)
    differing = {"kernel": 0, "definition": 0}
    for _ in range(30):
        s_x = 10 ** rng.uniform(-3, 0)  # and S_y within 3x of it: ONNX Runtime refuses S_x/(S_y N) >= 256
        scales = (float(np.float32(s_x)), float(np.float32(s_x * 10 ** rng.uniform(-0.5, 0.5))))
        zeros = (int(rng.integers(low, high)), int(rng.integers(low, high)))
        # means spread over the output's whole range, some beyond it (saturated)
        x = ((rng.standard_normal(shape) * 40 + rng.standard_normal(shape[:2] + [1] * (len(shape) - 2)) * 60)
             * scales[1]).astype(np.float32)
        session = cpu_session(qdq_pool(scales, zeros, shape, qtype), outputs=["x_q", "y_q"])
        x_q, y_q = session.run(["x_q", "y_q"], {"x": x})
        px, py = params("x", scales[0], zeros[0], qtype), params("y", scales[1], zeros[1], qtype)
        assert qlinear_global_average_pool(x_q, px, py).shape == y_q.shape
        differing["kernel"] += int(np.count_nonzero(qlinear_global_average_pool(x_q, px, py) != y_q))
        differing["definition"] += int(np.count_nonzero(dequantize_average_quantize(x_q, px, py) != y_q))
    assert differing["kernel"] == 0
    assert differing["definition"] <= 0.01 * 30 * np.prod(shape[:2])  # a few near-ties round the other way


def test_a_channel_of_one_value_averages_to_that_value() -> None:
    x, y = params("x", 0.5, 10, TensorProto.UINT8), params("y", 0.25, 3, TensorProto.UINT8)
    x_q = np.full((1, 2, 4, 4), 30, np.uint8)  # real value 0.5 * (30 - 10) = 10 everywhere
    assert qlinear_global_average_pool(x_q, x, y).reshape(-1).tolist() == [43, 43]  # 10 / 0.25 + 3


def pool_model_and_data(tmp_path: Path, requantized: bool = True) -> tuple:
    model = load_model(save(qdq_pool((0.02, 0.01), (128, 120), ["N", 16, 6, 6], requantized=requantized),
                            tmp_path / "pool.onnx"))
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 16, 6, 6)) + rng.standard_normal((4, 16, 1, 1))).astype(np.float32)
    return model, load_data(write_npz(tmp_path / "x.npz", x=x), model)


def test_explain_works_a_pooling_through_and_checks_it_against_onnx_runtime(tmp_path: Path) -> None:
    model, data = pool_model_and_data(tmp_path)
    e = explain_node(model, "gap", data, sample=2)
    assert isinstance(e, PoolExplanation) and e.runtime_kernel == "QLinearGlobalAveragePool"
    assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK] and e.checks[0].bit_exact
    assert e.count == 36 and e.x_q.shape == (1, 16, 6, 6) and e.runtime.shape == (1, 16, 1, 1)
    ex = e.example
    assert ex.x_q.shape == (6, 6) and ex.total == int(ex.x_q.astype(np.int64).sum())
    assert ex.acc == ex.total - 36 * 128 and ex.kernel_y_q == ex.runtime_y_q == int(e.runtime[ex.index])
    assert ex.real_mean == pytest.approx(0.02 * ex.acc / 36)
    steps = "\n".join(e.steps())
    assert f"acc = Σ x_q − N·Z_x = {ex.total} − 36·128 = {ex.acc}" in steps
    assert f"ONNX Runtime: y_q = {ex.runtime_y_q}" in steps
    assert json.loads(json.dumps(e.to_dict()))["example"]["x_q"] == ex.x_q.tolist()


def test_explain_a_pooling_on_the_chosen_element(tmp_path: Path) -> None:
    model, data = pool_model_and_data(tmp_path)
    e = explain_node(model, "gap", data, element=(0, 5, 0, 0))
    assert e.example.index == (0, 5, 0, 0) and e.example.x_q.tolist() == e.x_q[0, 5].tolist()
    with pytest.raises(Q8Error, match="outside the output of shape"):
        explain_node(model, "gap", data, element=(0, 16, 0, 0))


def test_a_pooling_whose_output_stays_float_is_refused_with_the_reason(tmp_path: Path) -> None:
    model, data = pool_model_and_data(tmp_path, requantized=False)
    with pytest.raises(Q8Error, match="output is not re-quantized: ONNX Runtime averages the dequantized input"):
        explain_node(model, "gap", data)


@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_the_demos_pooling_is_explained_bit_exact(tmp_path: Path, activations: str) -> None:
    assets = demo_assets()
    float_model = load_model(assets.model)
    result = quantize_model(float_model, load_data(assets.calibration, float_model, samples=60),
                            Recipe(granularity="per-channel", activation_type=activations), tmp_path / "demo.int8.onnx")
    test = load_data(assets.test, result.int8)
    for sample in (0, 7, 200):
        e = explain_node(result.int8, "/gap/GlobalAveragePool", test, sample=sample, float_model=float_model)
        assert e.runtime_kernel == "QLinearGlobalAveragePool" and e.checks[0].bit_exact, e.checks[0].summary()
        assert e.x.dtype == e.y.dtype == activations and e.count == 16
        assert e.float_tensor == "/gap/GlobalAveragePool_output_0" and e.sqnr_db is not None and e.sqnr_db > 25


def test_the_command_line_prints_the_channel_and_the_arithmetic(tmp_path: Path, demo_int8_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assets = demo_assets()
    assert main(["explain", str(demo_int8_path), "--node", "/gap/GlobalAveragePool", "--data", str(assets.test),
                 "--sample", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("/gap/GlobalAveragePool: GlobalAveragePool of an 8-bit tensor, run by ONNX Runtime as "
                          "QLinearGlobalAveragePool (sample 4)")
    assert f"check: {KERNEL_CHECK}: bit-exact with ONNX Runtime (32 elements)" in out
    assert "x_q (4x4):" in out and "acc = Σ x_q − N·Z_x" in out and "ONNX Runtime: y_q = " in out
