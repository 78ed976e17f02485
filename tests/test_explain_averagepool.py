"""Explain on an int8 AveragePool: ONNX Runtime's QLinearAveragePool (a float32 average of dequantized values)
and the QDQ definition, against ONNX Runtime itself.

The pooling models are built with onnx.helper as a quantizer writes them, over strided, padded, ceil_mode,
count_include_pad, auto_pad, 1-D and 3-D windows and both 8-bit types; ONNX Runtime fuses them into
QLinearAveragePool, whose output the kernel reference must reproduce bit for bit. A small Conv -> Relu ->
AveragePool -> Conv network, quantized by q8studio, is explained end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from builders import KERNEL_WAYS, average_pool_net, qdq_pooling, quant_params, run_exposed, save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.explain import explain_node
from q8studio.core.explainaveragepool import DEFINITION_CHECK, KERNEL_CHECK, AveragePoolExplanation
from q8studio.core.model import load_model
from q8studio.core.poolkernels import dequantize_average_pool_quantize, qlinear_average_pool
from q8studio.core.poolwindows import pool_geometry
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe

WINDOWS = {
    "2x2 stride 2": ({"kernel_shape": [2, 2], "strides": [2, 2]}, [2, 8, 16, 16]),
    "3x3 padded": ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, [2, 5, 15, 14]),
    "count_include_pad": ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1},
                          [2, 5, 15, 14]),
    "ceil_mode": ({"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, [1, 4, 10, 9]),
    "uneven pads": ({"kernel_shape": [3, 2], "strides": [1, 2], "pads": [2, 0, 1, 1]}, [1, 3, 9, 8]),
    "SAME_UPPER": ({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, [1, 3, 10, 9]),
    "1-D": ({"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, [2, 6, 17]),
    "3-D": ({"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}, [1, 3, 6, 6, 6]),
    "7x7 whole image": ({"kernel_shape": [7, 7]}, [1, 16, 7, 7]),
}
CEIL_AND_PADS = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1,
                 "count_include_pad": 1}


def run_pooling(tmp_path: Path, attributes: dict, shape: list, qtype: int, rng: np.random.Generator,
                int8_kernels: bool = False) -> tuple:
    """One random quantization of an AveragePool, run by ONNX Runtime: its 8-bit input and output, the
    references' arguments."""
    low, high = (0, 256) if qtype == TensorProto.UINT8 else (-128, 128)
    s_x = float(np.float32(10 ** rng.uniform(-3, 0)))
    scales = (s_x, float(np.float32(s_x * 10 ** rng.uniform(-0.5, 0.5))))
    zeros = (int(rng.integers(low, high)), int(rng.integers(low, high)))
    model = load_model(save(qdq_pooling("AveragePool", attributes, shape, scales, zeros, qtype), tmp_path / "p.onnx"))
    x = ((rng.standard_normal(shape) * 40 + rng.standard_normal(shape[:2] + [1] * (len(shape) - 2)) * 60)
         * scales[1]).astype(np.float32)  # means over the output's whole range, some beyond it
    x_q, y_q = run_exposed(model, ["x_q", "y_q"], {"x": x}, int8_kernels=int8_kernels)
    px, py = quant_params("x", scales[0], zeros[0], qtype), quant_params("y", scales[1], zeros[1], qtype)
    geometry = pool_geometry(model.graph.by_name["pool"], tuple(shape[2:]))
    return x_q, y_q, (x_q, px, py, geometry, y_q.shape[2:], bool(attributes.get("count_include_pad", 0)))


@pytest.mark.parametrize("qtype, int8_kernels", KERNEL_WAYS.values(), ids=KERNEL_WAYS.keys())
@pytest.mark.parametrize("attributes, shape", WINDOWS.values(), ids=WINDOWS.keys())
def test_qlinear_average_pool_reference_is_bit_exact_with_onnx_runtime(tmp_path: Path, qtype: int, int8_kernels: bool,
                                                                       attributes: dict, shape: list) -> None:
    rng = np.random.default_rng(7)
    differing = {"kernel": 0, "definition": 0}
    total = 0
    for _ in range(8):
        x_q, y_q, arguments = run_pooling(tmp_path, attributes, shape, qtype, rng, int8_kernels)
        assert qlinear_average_pool(*arguments).shape == y_q.shape
        differing["kernel"] += int(np.count_nonzero(qlinear_average_pool(*arguments) != y_q))
        differing["definition"] += int(np.count_nonzero(dequantize_average_pool_quantize(*arguments) != y_q))
        total += y_q.size
    assert differing["kernel"] == 0
    assert differing["definition"] <= 0.01 * total  # a few near-ties round the other way


def test_a_window_past_the_end_pad_is_averaged_over_the_whole_kernel(tmp_path: Path) -> None:
    """ceil_mode with count_include_pad: QLinearAveragePool divides the last windows by 9, the QDQ graph (and
    ONNX Runtime's float AveragePool) by the positions within the input and its pads."""
    x_q, y_q, arguments = run_pooling(tmp_path, CEIL_AND_PADS, [1, 4, 8, 8], TensorProto.UINT8,
                                      np.random.default_rng(1))
    np.testing.assert_array_equal(qlinear_average_pool(*arguments), y_q)
    definition = dequantize_average_pool_quantize(*arguments)
    assert (definition[..., :-1, :-1] == y_q[..., :-1, :-1]).mean() > 0.99  # windows within the pads agree
    assert (definition[..., -1, :] != y_q[..., -1, :]).any()  # the last row of windows reaches past them


def avgnet(tmp_path: Path, attributes: dict) -> tuple:
    """Conv -> Relu -> AveragePool -> Conv, quantized by q8studio: the float and the int8 model, and data."""
    float_model = load_model(save(average_pool_net(attributes), tmp_path / "avgnet.onnx"))
    rng = np.random.default_rng(0)
    data_path = write_npz(tmp_path / "x.npz", x=rng.standard_normal((16, 3, 12, 12)).astype(np.float32))
    result = quantize_model(float_model, load_data(data_path, float_model), Recipe(), tmp_path / "avgnet.int8.onnx")
    return float_model, result.int8, load_data(data_path, result.int8), data_path


def test_explain_works_an_average_pool_through_on_a_quantized_network(tmp_path: Path) -> None:
    float_model, int8, data, _ = avgnet(tmp_path, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
    e = explain_node(int8, "/pool/AveragePool", data, sample=3, float_model=float_model)
    assert isinstance(e, AveragePoolExplanation) and e.runtime_kernel == "QLinearAveragePool"
    assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK] and e.checks[0].bit_exact
    assert e.float_tensor == "p" and e.sqnr_db is not None and e.sqnr_db > 25
    ex = e.example
    window = e.x_q[ex.index[0], ex.index[1]]
    rows, columns = (np.array(p) for p in ex.positions)
    values = window[np.clip(rows, 0, 11)][:, np.clip(columns, 0, 11)][ex.inside]
    real = (values.astype(np.float32) - np.float32(e.x.zero_point)) * np.float32(e.x.scale)
    assert ex.total == pytest.approx(float(real.sum(dtype=np.float64)), rel=1e-5)
    assert ex.count == ex.definition_count == int(ex.inside.sum())  # padding not counted
    assert ex.kernel_y_q == ex.runtime_y_q == int(e.runtime[ex.index])
    steps = "\n".join(e.steps())
    assert f"QLinearAveragePool: mean = {ex.total:.9g}/{ex.count}" in steps and f"y_q = {ex.runtime_y_q}" in steps
    assert json.loads(json.dumps(e.to_dict()))["example"]["x_q"] == ex.x_q.tolist()


def test_a_corner_window_past_the_pads_shows_both_counts(tmp_path: Path) -> None:
    float_model, int8, data, _ = avgnet(tmp_path, CEIL_AND_PADS)
    e = explain_node(int8, "/pool/AveragePool", data, sample=3, float_model=float_model, element=(0, 2, 6, 6))
    ex = e.example
    assert ex.positions == ((11, 12, 13), (11, 12, 13)) and int(ex.inside.sum()) == 1
    assert ex.count == 9 and ex.definition_count == 4  # the kernel divides by 9; the graph counts the pads only
    assert e.checks[0].bit_exact and not e.checks[1].exact and "past the end pad" in e.checks[1].cause
    assert f"definition: mean = {ex.total:.9g}/4" in "\n".join(e.steps())


@pytest.mark.parametrize("attributes, exclude, said", [
    (CEIL_AND_PADS, (), True),
    ({**CEIL_AND_PADS, "count_include_pad": 0}, (), False),  # the kernel and the graph count alike
    ({**CEIL_AND_PADS, "ceil_mode": 0}, (), False),  # no window reaches past the pads
    (CEIL_AND_PADS, ("/pool/AveragePool",), False),  # kept in float: no QLinearAveragePool
], ids=["ceil_mode and count_include_pad", "pads not counted", "floor mode", "kept in float"])
def test_quantize_says_where_qlinear_average_pool_computes_another_function(tmp_path: Path, attributes: dict,
                                                                           exclude: tuple, said: bool) -> None:
    float_model = load_model(save(average_pool_net(attributes), tmp_path / "avgnet.onnx"))
    data_path = write_npz(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((8, 3, 12, 12), np.float32))
    result = quantize_model(float_model, load_data(data_path, float_model), Recipe(exclude=exclude),
                            tmp_path / "avgnet.int8.onnx")
    notes = [note for note in result.prepared.notes if "reach past the end pads by the whole kernel size" in note]
    assert len(notes) == said
    if said:  # and it does: the definition differs from what ONNX Runtime computes
        assert notes[0].startswith("/pool/AveragePool [AveragePool]") and "--exclude /pool/AveragePool" in notes[0]
        e = explain_node(result.int8, "/pool/AveragePool", load_data(data_path, result.int8), 0)
        assert e.runtime_kernel == "QLinearAveragePool" and not e.checks[1].exact


def test_an_average_pool_whose_output_stays_float_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = load_model(save(qdq_pooling("AveragePool", {"kernel_shape": [2, 2]}, ["N", 2, 4, 4], (0.1, 0.1), (0, 0),
                                        requantized=False), tmp_path / "p.onnx"))
    data = load_data(write_npz(tmp_path / "x.npz", x=np.ones((2, 2, 4, 4), np.float32)), model)
    with pytest.raises(Q8Error, match="output is not re-quantized: ONNX Runtime averages the dequantized input"):
        explain_node(model, "pool", data)


def test_the_command_line_prints_the_window_and_the_float32_average(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, _, _, data_path = avgnet(tmp_path, CEIL_AND_PADS)
    assert main(["explain", str(tmp_path / "avgnet.int8.onnx"), "--node", "/pool/AveragePool", "--data",
                 str(data_path), "--element", "0", "2", "6", "6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("/pool/AveragePool: AveragePool of an 8-bit tensor (3x3, stride 2x2, leading pad 1x1, "
                          "count_include_pad), run by ONNX Runtime as QLinearAveragePool (sample 0)")
    assert "window x_q (3x3; padding shown as Z_x, counted as 0):" in out
    assert "QLinearAveragePool: mean = " in out and "/9 = " in out and "past the end pad" in out
