"""Explain on an int8 Mul: ONNX Runtime's QLinearMul (an exact integer product, one float32 ratio) and the QDQ
definition, against ONNX Runtime itself, on networks q8studio quantizes: a swish's x·sigmoid(x) and a
per-channel gate by a constant."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import activation_net, save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.explain import explain_node
from q8studio.core.explainmul import DEFINITION_CHECK, KERNEL_CHECK, MulExplanation
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe


def gate_net() -> onnx.ModelProto:
    """Conv -> Relu -> Mul by a constant [1, 8, 1, 1] gate ("/gate/Mul") -> Conv: the Relu keeps the Mul from
    folding into the Conv."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("g", (1, 8, 1, 1)), ("w2", (4, 8, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="/relu/Relu"),
             helper.make_node("Mul", ["r1", "g"], ["m"], name="/gate/Mul"),
             helper.make_node("Conv", ["m", "w2"], ["y"], name="/conv2/Conv")]
    graph = helper.make_graph(nodes, "gate", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 12, 12])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def product_net() -> onnx.ModelProto:
    """Two Convs of the input multiplied ("/product/Mul") -> Conv: each product input read by the Mul alone, so that
    with int8 activations ONNX Runtime on x86 converts their pairs to uint8 and fuses the Mul."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
               for name, shape in (("wa", (8, 3, 3, 3)), ("wb", (8, 3, 1, 1)), ("w2", (4, 8, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="/a/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="/b/Conv"),
             helper.make_node("Mul", ["a", "b"], ["m"], name="/product/Mul"),
             helper.make_node("Conv", ["m", "w2"], ["y"], name="/conv2/Conv")]
    graph = helper.make_graph(nodes, "product",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 12, 12])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, Path]]:
    """(float, int8, data) per case: the swish and the constant gate with uint8 activations, the product of two
    Convs with int8 ones (the swish's and the gate's int8 Muls run in float on x86: one reads a tensor read twice,
    whose pair ONNX Runtime keeps int8; the other an int8 constant)."""
    folder = tmp_path_factory.mktemp("mul")
    data = write_npz(folder / "x.npz", x=np.random.default_rng(1).standard_normal((6, 3, 12, 12), np.float32))
    found = {}
    for name, model, activation_type in (("swish uint8", activation_net(), "uint8"),
                                         ("gate", gate_net(), "uint8"), ("product int8", product_net(), "int8")):
        float_path = save(model, folder / f"{name.replace(' ', '_')}.onnx")
        loaded = load_model(float_path)
        out = folder / f"{name.replace(' ', '_')}.int8.onnx"
        quantize_model(loaded, load_data(data, loaded), Recipe(activation_type=activation_type), out)
        found[name] = (float_path, out, data)
    return found


@pytest.mark.parametrize("case, node", [("swish uint8", "/swish/Mul"), ("gate", "/gate/Mul"),
                                        ("product int8", "/product/Mul")])
def test_an_int8_mul_is_explained_bit_exact(networks: dict, case: str, node: str) -> None:
    float_path, int8_path, data_path = networks[case]
    int8 = load_model(int8_path)
    e = explain_node(int8, node, load_data(data_path, int8), 3, load_model(float_path))
    assert isinstance(e, MulExplanation) and e.runtime_kernel == "QLinearMul" and not e.relu
    assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK]
    assert e.checks[0].bit_exact and e.checks[0].total == e.runtime.size
    assert e.checks[1].fraction <= 0.01 and e.checks[1].max_diff <= 1
    ex = e.example
    assert ex.kernel_y_q == ex.runtime_y_q == int(e.runtime[ex.index])
    assert ex.product == (ex.a_q - int(e.a.zero_point)) * (ex.b_q - int(e.b.zero_point))
    assert ex.shifted == pytest.approx(ex.product * e.constants.ratio + int(e.y.zero_point), rel=1e-6)
    assert e.sqnr_db is not None and e.sqnr_db > 20
    assert json.loads(json.dumps(e.to_dict()))["example"]["product"] == ex.product


def test_a_constant_gate_broadcasts_per_channel(networks: dict) -> None:
    float_path, int8_path, data_path = networks["gate"]
    int8 = load_model(int8_path)
    e = explain_node(int8, "/gate/Mul", load_data(data_path, int8), 0, element=(0, 5, 2, 7))
    assert e.b_q.shape == (1, 8, 1, 1) and e.example.b_q == int(e.b_q[0, 5, 0, 0])
    assert e.example.a_q == int(e.a_q[0, 5, 2, 7])


def test_the_cli_prints_the_ratio_and_both_ways(networks: dict, capsys: pytest.CaptureFixture[str]) -> None:
    float_path, int8_path, data_path = networks["swish uint8"]
    assert main(["explain", str(int8_path), "--node", "/swish/Mul", "--data", str(data_path), "--float",
                 str(float_path)]) == 0
    out = capsys.readouterr().out
    assert "/swish/Mul: Mul of two 8-bit tensors, run by ONNX Runtime as QLinearMul" in out
    assert "QLinearMul: M = S_a*S_b/S_y = " in out and f"check: {KERNEL_CHECK}: bit-exact" in out
    assert "p = (a_q − Z_a)·(b_q − Z_b) = " in out and "ONNX Runtime: y_q = " in out
