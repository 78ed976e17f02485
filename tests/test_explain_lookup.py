"""Explain on an int8 Sigmoid or LeakyRelu: the 256-entry table ONNX Runtime's QLinearSigmoid and QLinearLeakyRelu
look every value up in, against ONNX Runtime itself.

Single activations are built with onnx.helper as a quantizer writes them and fed every input code, so that the
runtime's output is its whole table; a small Conv -> LeakyRelu -> Conv -> swish -> Concat -> Conv network,
quantized by q8studio, is explained end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import qdq_pooling, quant_params
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.explain import explain_node
from q8studio.core.explainlookup import LookupExplanation
from q8studio.core.lookupkernels import input_codes, leaky_relu, lookup_table, sigmoid
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.runtimegraph import open_session
from q8studio.core.session import cpu_session

QTYPES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}
ACTIVATIONS = {"Sigmoid": ("Sigmoid", {}, sigmoid), "LeakyRelu 0.01": ("LeakyRelu", {"alpha": 0.01}, leaky_relu(0.01)),
               "LeakyRelu 0.2": ("LeakyRelu", {"alpha": 0.2}, leaky_relu(0.2))}


def runtime_sigmoid(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 Sigmoid of ``x``."""
    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "sigmoid",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return cpu_session(model).run(["y"], {"x": x})[0]


def test_sigmoid_is_onnx_runtimes_float32_sigmoid_bit_for_bit() -> None:
    x = np.concatenate([np.random.default_rng(0).uniform(-20, 20, 300_001),
                        np.random.default_rng(1).standard_normal(100_000) * 3, [-18.0, 0.0, 18.0, -30.0, 30.0]])
    x = x.astype(np.float32)
    runtime = runtime_sigmoid(x)
    assert np.array_equal(sigmoid(x), runtime)
    exact = (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    assert np.count_nonzero(exact != runtime) > 0.3 * x.size  # the approximation is what makes the table exact


def runtime_table(tmp_path: Path, activation: tuple, qtype: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One random quantization of ``op_type`` run by ONNX Runtime on every input code: the codes' outputs (its
    table), our table, and the kernels that ran."""
    op_type, attributes, function = activation
    low, high = (0, 256) if qtype == TensorProto.UINT8 else (-128, 128)
    s_x = float(np.float32(10 ** rng.uniform(-2.5, -0.5)))
    s_y = float(np.float32(10 ** rng.uniform(-3, -1.5)))
    zeros = (int(rng.integers(low, high)), int(rng.integers(low, high)))
    model = qdq_pooling(op_type, attributes, [1, 256], (s_x, s_y), zeros, qtype)
    session, kernels = open_session(model, tmp_path, outputs=["x_q", "y_q"], threads=1)
    codes = np.arange(low, high)
    x = ((codes - zeros[0]) * np.float32(s_x)).astype(np.float32).reshape(1, 256)
    x_q, y_q = session.run(["x_q", "y_q"], {"x": x})
    assert np.array_equal(x_q.reshape(-1), codes)  # every code, once, in order
    x_params, y_params = quant_params("x", s_x, zeros[0], qtype), quant_params("y", s_y, zeros[1], qtype)
    return y_q.reshape(-1), lookup_table(x_params, y_params, function), [k.op_type for k in kernels]


@pytest.mark.parametrize("qtype", QTYPES.values(), ids=QTYPES.keys())
@pytest.mark.parametrize("name", ACTIVATIONS.keys())
def test_the_table_is_onnx_runtimes_bit_for_bit(tmp_path: Path, name: str, qtype: int) -> None:
    rng = np.random.default_rng(3)
    for _ in range(12):
        runtime, table, kernels = runtime_table(tmp_path, ACTIVATIONS[name], qtype, rng)
        assert f"QLinear{ACTIVATIONS[name][0]}" in kernels
        assert np.array_equal(table, runtime)


def test_input_codes_run_over_the_whole_type() -> None:
    assert input_codes(quant_params("x", 0.1, 3, TensorProto.UINT8)).tolist() == list(range(256))
    assert input_codes(quant_params("x", 0.1, 3, TensorProto.INT8)).tolist() == list(range(-128, 128))


@pytest.mark.parametrize("net, float_net", [("uint8", "float"), ("chain int8", "chain")])
@pytest.mark.parametrize("node, kernel", [("/gate/Sigmoid", "QLinearSigmoid"), ("/act/LeakyRelu", "QLinearLeakyRelu")])
def test_an_int8_activation_is_explained_bit_exact(quantized_net: dict[str, Path], net: str, float_net: str, node: str,
                                                   kernel: str) -> None:
    """uint8 activations, and int8 ones that ONNX Runtime on x86 runs as uint8 (the codes shown are the model's)."""
    int8 = load_model(quantized_net[net])
    activation_type = net.split()[-1]
    data = load_data(quantized_net["data"], int8)
    e = explain_node(int8, node, data, 2, load_model(quantized_net[float_net]))
    assert isinstance(e, LookupExplanation) and e.runtime_kernel == kernel and e.kind == node.split("/")[-1]
    assert e.checks[0].bit_exact and e.checks[0].total == e.runtime.size
    assert e.table.size == 256 and e.x.dtype == activation_type
    assert np.array_equal(e.table[e.x_q.astype(np.int64) - int(e.codes[0])], e.runtime)
    ex = e.example
    assert ex.kernel_y_q == ex.runtime_y_q == int(e.runtime[ex.index]) == int(e.table[ex.x_q - int(e.codes[0])])
    assert ex.x_q == int(e.x_q[ex.index])
    assert e.code_counts().sum() == e.x_q.size and 1 < e.distinct_outputs() <= 256
    assert np.all(np.abs(np.clip(e.unrounded, *e.table[[0, -1]].tolist()) - e.table) <= 0.5 + 1e-6)
    assert e.sqnr_db is not None and e.sqnr_db > 25
    assert any(f"T[{ex.x_q}] = {ex.kernel_y_q}" == step for step in e.steps())
    assert json.loads(json.dumps(e.to_dict()))["table"] == e.table.tolist()


def test_the_leaky_relu_table_keeps_its_slope(quantized_net: dict[str, Path]) -> None:
    int8 = load_model(quantized_net["uint8"])
    e = explain_node(int8, "/act/LeakyRelu", load_data(quantized_net["data"], int8), 0)
    assert e.function == "LeakyRelu (alpha = 0.1)"
    negative = e.codes < int(e.x.zero_point)
    positive = e.codes > int(e.x.zero_point)
    ratio_below = np.ptp(e.unrounded[negative]) / np.ptp(e.codes[negative])
    ratio_above = np.ptp(e.unrounded[positive]) / np.ptp(e.codes[positive])
    assert ratio_below == pytest.approx(0.1 * ratio_above, rel=1e-5)
    assert len(np.unique(e.table[negative])) < negative.sum() / 4  # below 0 many codes share one output


def test_an_activation_kept_in_float_is_refused_with_the_reason(tmp_path: Path, quantized_net: dict[str, Path]
                                                                ) -> None:
    model = load_model(quantized_net["float"])
    data = load_data(quantized_net["data"], model)
    result = quantize_model(model, data, Recipe(exclude=("/gate/Sigmoid",)), tmp_path / "kept.onnx")
    with pytest.raises(Q8Error, match="runs in float"):
        explain_node(result.int8, "/gate/Sigmoid", data, 0)


def test_the_cli_prints_the_table_and_json_holds_it(quantized_net: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["explain", str(quantized_net["uint8"]), "--node", "/gate/Sigmoid", "--data",
                 str(quantized_net["data"]), "--float", str(quantized_net["float"])]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "Sigmoid of an 8-bit tensor, run by ONNX Runtime as QLinearSigmoid" in out
    assert "bit-exact with ONNX Runtime" in out and "T[x_q] for x_q = 0 .. 255" in out
    rows = [line for line in out.splitlines() if line.strip().split(":")[0].strip().isdigit()]
    assert len(rows) == 16 and all(len(row.split(":")[1].split()) == 16 for row in rows)
    assert main(arguments + ["--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["kind"] == "Sigmoid" and len(record["table"]) == 256 and record["checks"][0]["bit_exact"]
