"""Explain on an int8 Concat: ONNX Runtime's QLinearConcat copies an input quantized as its output and
requantizes any other through a 256-entry table, against ONNX Runtime itself.

Three-input Concats are built with onnx.helper as a quantizer writes them, with random scales (one input
sharing the output's); the Conv -> LeakyRelu -> Conv -> swish -> Concat -> Conv network, quantized by
q8studio, is explained end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.explain import explain_node
from q8studio.core.explainconcat import ConcatExplanation
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe

SHAPES = ([1, 3, 5, 5], [1, 4, 5, 5], [1, 1, 5, 5])


def qdq_concat(scales: list[float], zeros: list[int], dtype: type) -> onnx.ModelProto:
    """Three float inputs -> Quantize/Dequantize each -> Concat on axis 1 ("cat") -> Quantize/Dequantize -> y;
    the last scale and zero point are the output's."""
    nodes, initializers, inputs = [], [], []
    for n, (scale, zero) in enumerate(zip(scales, zeros)):
        name = f"x{n}" if n < len(SHAPES) else "y"
        initializers += [numpy_helper.from_array(np.array(scale, np.float32), f"s_{name}"),
                         numpy_helper.from_array(np.array(zero, dtype), f"z_{name}")]
        if n < len(SHAPES):
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *SHAPES[n][1:]]))
            nodes += [helper.make_node("QuantizeLinear", [name, f"s_{name}", f"z_{name}"], [f"{name}_q"]),
                      helper.make_node("DequantizeLinear", [f"{name}_q", f"s_{name}", f"z_{name}"], [f"{name}_dq"])]
    nodes += [helper.make_node("Concat", [f"x{n}_dq" for n in range(len(SHAPES))], ["c"], name="cat", axis=1),
              helper.make_node("QuantizeLinear", ["c", "s_y", "z_y"], ["y_q"]),
              helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["y"])]
    graph = helper.make_graph(nodes, "cat", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                                     ["N", 8, 5, 5])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_copies_and_tables_are_onnx_runtimes_bit_for_bit(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(4)
    low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    for trial in range(6):
        scales = [float(np.float32(10 ** rng.uniform(-3, 0))) for _ in range(4)]
        zeros = [int(z) for z in rng.integers(low, high + 1, 4)]
        scales[1], zeros[1] = scales[3], zeros[3]  # the second input is quantized as the output: copied
        model = load_model(save(qdq_concat(scales, zeros, dtype), tmp_path / f"c{trial}.onnx"))
        data = write_npz(tmp_path / "x.npz", **{f"x{n}": (rng.standard_normal([2, *shape[1:]]) * 80 * scales[3])
                                                   .astype(np.float32) for n, shape in enumerate(SHAPES)})
        e = explain_node(model, "cat", load_data(data, model), 1)
        assert isinstance(e, ConcatExplanation) and e.runtime_kernel == "QLinearConcat"
        assert e.checks[0].bit_exact and e.checks[0].total == 8 * 25  # one sample of the two
        assert [i.copied for i in e.inputs] == [False, True, False]
        assert [(i.start, i.size) for i in e.inputs] == [(0, 3), (3, 4), (7, 1)]
        assert e.example.source in (0, 2)  # an element of a requantized input shows its arithmetic


@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
def test_an_int8_concat_is_explained_bit_exact(quantized_net: dict[str, Path], activation_type: str) -> None:
    int8 = load_model(quantized_net[activation_type])
    e = explain_node(int8, "/cat/Concat", load_data(quantized_net["data"], int8), 4, load_model(quantized_net["float"]))
    assert e.checks[0].bit_exact and e.axis == 1 and len(e.inputs) == 2
    assert sum(i.copied for i in e.inputs) >= 1  # the quantizer gives the output one input's quantization
    ex = e.example
    source = e.inputs[ex.source]
    assert not source.copied and ex.kernel_y_q == ex.runtime_y_q == int(e.runtime[ex.index])
    assert ex.kernel_y_q == int(source.table[ex.x_q - int(source.codes[0])])
    assert e.sqnr_db is not None and e.sqnr_db > 25
    assert json.loads(json.dumps(e.to_dict()))["inputs"][ex.source]["table"] == source.table.tolist()


def test_a_copied_element_shows_no_arithmetic(quantized_net: dict[str, Path]) -> None:
    int8 = load_model(quantized_net["uint8"])
    data = load_data(quantized_net["data"], int8)
    copied = next(n for n, i in enumerate(explain_node(int8, "/cat/Concat", data, 0).inputs) if i.copied)
    e = explain_node(int8, "/cat/Concat", data, 0, element=(0, 8 * copied + 2, 3, 4))  # 8 channels per input
    assert e.example.source == copied and e.example.source_index == (0, 2, 3, 4)
    assert e.example.kernel_y_q == e.example.x_q and "copied" in e.steps()[1]


def test_a_concat_kept_in_float_is_refused_with_the_reason(tmp_path: Path, quantized_net: dict[str, Path]) -> None:
    model = load_model(quantized_net["float"])
    data = load_data(quantized_net["data"], model)
    result = quantize_model(model, data, Recipe(exclude=("/cat/Concat",)), tmp_path / "kept.onnx")
    with pytest.raises(Q8Error, match="runs in float|not re-quantized"):
        explain_node(result.int8, "/cat/Concat", data, 0)


def test_the_cli_names_what_becomes_of_each_input(quantized_net: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(quantized_net["uint8"]), "--node", "/cat/Concat", "--data",
                 str(quantized_net["data"])]) == 0
    out = capsys.readouterr().out
    assert "Concat of 2 8-bit tensors along axis 1, run by ONNX Runtime as QLinearConcat" in out
    assert "input 0: output positions 0 .. 7 along axis 1" in out and "input 1: output positions 8 .. 15" in out
    assert "copied (the output's scale and zero point)" in out
    assert "check: copies and requantization tables: bit-exact" in out
