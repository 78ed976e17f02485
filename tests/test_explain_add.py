"""Explain on an int8 Add: ONNX Runtime's x86 QLinearAdd and the QDQ definition, against ONNX Runtime itself.

The Add models are built with onnx.helper as a quantizer writes them (DequantizeLinear on each input,
QuantizeLinear after the Add), with random scales, zero points and both 8-bit types; ONNX Runtime fuses
them into QLinearAdd, whose output the references must reproduce bit for bit.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, write_npz
from q8studio.core.addkernels import AddRatios, dequantize_add_quantize, qlinear_add
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core.explain import explain_node
from q8studio.core.explainadd import DEFINITION_CHECK, KERNEL_CHECK, AddExplanation
from q8studio.core.intmath import fma_float32
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.report import to_json
from q8studio.core.session import cpu_session
from q8studio.core.weights import QuantParams


def qdq_add(scales: tuple[float, float, float], zeros: tuple[int, int, int], shapes: tuple[list, list],
            qtype: int = TensorProto.UINT8, requantized: bool = True) -> object:
    """float a, b -> Quantize/Dequantize each -> Add (named "add") -> Quantize/Dequantize -> y."""
    npt = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    nodes = []
    for name in ("a", "b"):
        nodes += [helper.make_node("QuantizeLinear", [name, f"s_{name}", f"z_{name}"], [f"{name}_q"]),
                  helper.make_node("DequantizeLinear", [f"{name}_q", f"s_{name}", f"z_{name}"], [f"{name}_dq"])]
    nodes.append(helper.make_node("Add", ["a_dq", "b_dq"], ["sum" if requantized else "y"], name="add"))
    if requantized:
        nodes += [helper.make_node("QuantizeLinear", ["sum", "s_y", "z_y"], ["y_q"]),
                  helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["y"])]
    initializers = [numpy_helper.from_array(np.array(s, np.float32), f"s_{n}") for n, s in zip("aby", scales)]
    initializers += [numpy_helper.from_array(np.array(z, npt), f"z_{n}") for n, z in zip("aby", zeros)]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in zip("ab", shapes)]
    rank = max(len(shape) for shape in shapes)
    padded = [[1] * (rank - len(shape)) + list(shape) for shape in shapes]
    out = [next((d for d in dims if d != 1), 1) for dims in zip(*padded)]
    graph = helper.make_graph(nodes, "qdq_add", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def random_case(rng: np.random.Generator, qtype: int, shapes: tuple[list, list]):
    scales = tuple(float(np.float32(10 ** rng.uniform(-3.5, 0))) for _ in range(3))
    low, high = (0, 256) if qtype == TensorProto.UINT8 else (-128, 128)
    zeros = tuple(int(z) for z in rng.integers(low, high, 3))
    values = [(rng.standard_normal(shape) * 60 * s).astype(np.float32) for shape, s in zip(shapes, scales)]
    return scales, zeros, values


def params(name: str, scale: float, zero: int, qtype: int) -> QuantParams:
    dtype = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    return QuantParams(name, np.array(scale, np.float32), np.array(zero, dtype), np.dtype(dtype).name)


SHAPES = {"same": ([1, 16, 9, 9], [1, 16, 9, 9]), "per-channel b": ([1, 16, 9, 9], [1, 16, 1, 1]),
          "scalar b": ([1, 16, 9, 9], [1]), "rows": ([2, 40], [40])}


@pytest.mark.parametrize("qtype", [TensorProto.UINT8, TensorProto.INT8], ids=["uint8", "int8"])
@pytest.mark.parametrize("shapes", SHAPES.values(), ids=SHAPES.keys())
def test_qlinear_add_reference_is_bit_exact_with_onnx_runtime(qtype: int, shapes) -> None:
    rng = np.random.default_rng(7)
    differing = {"kernel": 0, "definition": 0}
    for _ in range(40):
        scales, zeros, (a, b) = random_case(rng, qtype, shapes)
        session = cpu_session(qdq_add(scales, zeros, shapes, qtype), outputs=["a_q", "b_q", "y_q"])
        a_q, b_q, y_q = session.run(["a_q", "b_q", "y_q"], {"a": a, "b": b})
        pa, pb, py = (params(n, s, z, qtype) for n, s, z in zip("aby", scales, zeros))
        differing["kernel"] += int(np.count_nonzero(qlinear_add(a_q, b_q, AddRatios.of(pa, pb, py), py) != y_q))
        differing["definition"] += int(np.count_nonzero(dequantize_add_quantize(a_q, pa, b_q, pb, py) != y_q))
    assert differing["kernel"] == 0
    assert differing["definition"] <= 10  # the shortcut rounds differently on a few near-ties only


def correctly_rounded_float32(exact: Fraction) -> np.float32:
    """The float32 nearest to ``exact``, ties to even: the oracle for one fused multiply-add."""
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    distance = [abs(Fraction(float(c)) - exact) for c in candidates]
    best = min(distance)
    ties = [c for c, d in zip(candidates, distance) if d == best]
    return min(ties, key=lambda c: int(np.array(c).view(np.int32)) & 1)


def test_fma_float32_rounds_once_where_rounding_through_float64_rounds_twice() -> None:
    x, y = np.float32(1 + 2**-23), np.float32(2**-24 * (1 - 2**-23))
    z = np.float32(1 + 2**-23)  # x y + z lies just below a float32 tie that float64 rounds onto
    exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
    assert fma_float32(x, y, z) == correctly_rounded_float32(exact) == z
    assert np.float32(np.float64(x) * np.float64(y) + np.float64(z)) != z  # the double rounding it avoids


def test_fma_float32_matches_exact_arithmetic_on_random_values() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 256, 2000).astype(np.float32)
    y = np.float32(10.0) ** rng.uniform(-9, 2, 2000).astype(np.float32)
    z = (rng.standard_normal(2000) * 300).astype(np.float32)
    got = fma_float32(x, y, z)
    for xi, yi, zi, gi in zip(x, y, z, got):
        assert gi == correctly_rounded_float32(Fraction(float(xi)) * Fraction(float(yi)) + Fraction(float(zi)))


def add_model_and_data(tmp_path: Path, shapes: tuple[list, list], qtype: int = TensorProto.UINT8, **kwargs):
    """The QDQ Add with a dynamic batch axis ("N" in ``shapes``), and 3 samples of both inputs."""
    rng = np.random.default_rng(11)
    scales, zeros, _ = random_case(rng, qtype, [[1, *shape[1:]] for shape in shapes])
    model = load_model(save(qdq_add(scales, zeros, shapes, qtype, **kwargs), tmp_path / "add.onnx"))
    a, b = ((rng.standard_normal([3, *shape[1:]]) * 60 * scale).astype(np.float32)
            for shape, scale in zip(shapes, scales))
    return model, load_data(write_npz(tmp_path / "ab.npz", a=a, b=b), model)


def test_explain_works_an_add_through_and_checks_it_against_onnx_runtime(tmp_path: Path) -> None:
    model, data = add_model_and_data(tmp_path, (["N", 16, 9, 9], ["N", 16, 9, 9]))
    e = explain_node(model, "add", data, sample=2)
    assert isinstance(e, AddExplanation) and e.runtime_kernel == "QLinearAdd"
    assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK] and e.checks[0].bit_exact
    feed = {name: values[2:3] for name, values in next(data.batches(3)).items()}
    y_q = cpu_session(model.proto, outputs=["y_q"]).run(["y_q"], feed)[0]
    np.testing.assert_array_equal(e.runtime, y_q)
    ex = e.example
    assert ex.kernel_y_q == ex.runtime_y_q == int(y_q[ex.index])
    assert ex.a_q == int(e.a_q[ex.index]) and ex.b_q == int(e.b_q[ex.index])
    assert ex.real_a == pytest.approx(float(e.a.scale) * (ex.a_q - int(e.a.zero_point)))
    assert ex.total == pytest.approx(ex.a_q * e.ratios.a + ex.b_q * e.ratios.b + e.ratios.constant, abs=1e-3)
    assert f"  y_q = rint(t), in [0, 255] = {ex.kernel_y_q}" in e.steps()
    assert to_json(e.to_dict())  # the CLI's --json


def test_explain_an_add_of_a_broadcast_input_on_the_chosen_element(tmp_path: Path) -> None:
    model, data = add_model_and_data(tmp_path, (["N", 16, 9, 9], ["N", 16, 1, 1]), TensorProto.INT8)
    e = explain_node(model, "add", data, sample=1, element=(0, 5, 2, 3))
    assert e.checks[0].bit_exact and e.b_q.shape == (1, 16, 1, 1)
    assert e.example.index == (0, 5, 2, 3) and e.example.b_q == int(e.b_q[0, 5, 0, 0])
    with pytest.raises(Q8Error, match="outside the output"):
        explain_node(model, "add", data, element=(0, 16, 0, 0))


def test_an_add_whose_output_stays_float_is_refused_with_the_reason(tmp_path: Path) -> None:
    model, data = add_model_and_data(tmp_path, (["N", 8], ["N", 8]), requantized=False)
    with pytest.raises(Q8Error, match="output is not re-quantized: ONNX Runtime adds the dequantized inputs"):
        explain_node(model, "add", data)


def test_the_demos_residual_adds_are_explained_bit_exact(tmp_path: Path) -> None:
    assets = demo_assets()
    float_model = load_model(assets.model)
    result = quantize_model(float_model, load_data(assets.calibration, float_model, samples=60),
                            Recipe(method="entropy", granularity="per-channel"), tmp_path / "demo.int8.onnx")
    test = load_data(assets.test, result.int8)
    for node in ("/block1/Add", "/block2/Add"):
        e = explain_node(result.int8, node, test, sample=5, float_model=float_model)
        assert e.runtime_kernel == "QLinearAdd" and e.checks[0].bit_exact, e.checks[0].summary()
        assert e.float_tensor is not None and e.sqnr_db is not None and e.sqnr_db > 20
        assert any("removed by the quantizer" in note for note in e.notes)  # the ReLU after the residual Add
