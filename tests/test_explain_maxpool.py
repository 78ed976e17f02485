"""Explain on an int8 MaxPool: the largest 8-bit value of each window, and the QDQ definition, against ONNX
Runtime itself.

The pooling models are built with onnx.helper as a quantizer writes them (QuantizeLinear and DequantizeLinear
on the input, QuantizeLinear after the pooling) over the window shapes real networks use: strided, padded,
dilated, ceil_mode, auto_pad, 1-D and 3-D, both 8-bit types. With the input's quantization on the output
ONNX Runtime runs the MaxPool on the 8-bit tensor; with another it runs it in float and requantizes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from builders import KERNEL_WAYS, qdq_pooling, quant_params, run_exposed, save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core.explain import explain_node
from q8studio.core.explainmaxpool import DEFINITION_CHECK, KERNEL_CHECK, MaxPoolExplanation
from q8studio.core.maxpoolkernels import dequantize_max_quantize, max_pool_8bit
from q8studio.core.model import load_model
from q8studio.core.poolwindows import pool_geometry
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe


WINDOWS = {
    "2x2 stride 2": ({"kernel_shape": [2, 2], "strides": [2, 2]}, [2, 8, 16, 16]),
    "3x3 stride 2 padded": ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, [2, 5, 15, 14]),
    "ceil_mode": ({"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, [1, 4, 10, 9]),
    "padded ceil_mode": ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
                         [1, 4, 8, 8]),
    "dilated, uneven pads": ({"kernel_shape": [3, 2], "strides": [1, 2], "dilations": [2, 1], "pads": [2, 0, 1, 1]},
                             [1, 3, 9, 8]),
    "SAME_UPPER": ({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, [1, 3, 10, 9]),
    "SAME_LOWER": ({"kernel_shape": [4, 4], "strides": [3, 3], "auto_pad": "SAME_LOWER"}, [1, 3, 10, 11]),
    "1-D": ({"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, [2, 6, 17]),
    "3-D": ({"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}, [1, 3, 6, 6, 6]),
}


@pytest.mark.parametrize("qtype, int8_kernels", KERNEL_WAYS.values(), ids=KERNEL_WAYS.keys())
@pytest.mark.parametrize("attributes, shape", WINDOWS.values(), ids=WINDOWS.keys())
def test_max_pool_references_are_bit_exact_with_onnx_runtime(tmp_path: Path, qtype: int, int8_kernels: bool,
                                                             attributes: dict, shape: list) -> None:
    rng = np.random.default_rng(5)
    low, high = (0, 256) if qtype == TensorProto.UINT8 else (-128, 128)
    for same in (True, False):  # the quantizer's own output quantization, and another one
        s_x = float(np.float32(10 ** rng.uniform(-3, 0)))
        scales = (s_x, s_x if same else float(np.float32(s_x * 1.7)))
        z_x = int(rng.integers(low, high))
        zeros = (z_x, z_x if same else int(rng.integers(low, high)))
        model = load_model(save(qdq_pooling("MaxPool", attributes, shape, scales, zeros, qtype), tmp_path / "pool.onnx"))
        x = (rng.standard_normal(shape) * 60 * s_x).astype(np.float32)  # saturates at both ends too
        x_q, y_q = run_exposed(model, ["x_q", "y_q"], {"x": x}, int8_kernels=int8_kernels)
        px, py = quant_params("x", scales[0], zeros[0], qtype), quant_params("y", scales[1], zeros[1], qtype)
        geometry = pool_geometry(model.graph.by_name["pool"], tuple(shape[2:]))
        by_kernel = max_pool_8bit(x_q, px, py, geometry, y_q.shape[2:])
        assert by_kernel.shape == y_q.shape
        np.testing.assert_array_equal(by_kernel, y_q)
        np.testing.assert_array_equal(dequantize_max_quantize(x_q, px, py, geometry, y_q.shape[2:]), y_q)


def test_padding_takes_no_part_in_the_maximum(tmp_path: Path) -> None:
    """Every value below the zero point: a padded window whose padding counted as Z_x (real 0) would give Z_x."""
    model = load_model(save(qdq_pooling("MaxPool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, [1, 1, 2, 2],
                                         (1.0, 1.0), (100, 100)), tmp_path / "pool.onnx"))
    x_q = np.array([[[[10, 20], [30, 40]]]], np.uint8)
    px = quant_params("x", 1.0, 100, TensorProto.UINT8)
    geometry = pool_geometry(model.graph.by_name["pool"], (2, 2))
    assert max_pool_8bit(x_q, px, px, geometry, (2, 2)).reshape(-1).tolist() == [40, 40, 40, 40]


def pool_model_and_data(tmp_path: Path, requantized: bool = True) -> tuple:
    attributes = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    model = load_model(save(qdq_pooling("MaxPool", attributes, ["N", 6, 9, 9], (0.02, 0.02), (128, 128),
                                         requantized=requantized), tmp_path / "pool.onnx"))
    x = np.random.default_rng(3).standard_normal((4, 6, 9, 9)).astype(np.float32)
    return model, load_data(write_npz(tmp_path / "x.npz", x=x), model)


def test_explain_works_a_max_pool_through_and_checks_it_against_onnx_runtime(tmp_path: Path) -> None:
    model, data = pool_model_and_data(tmp_path)
    e = explain_node(model, "pool", data, sample=2)
    assert isinstance(e, MaxPoolExplanation) and "MaxPool" in e.runtime_kernel
    assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK]
    assert all(c.bit_exact for c in e.checks) and e.checks[0].total == 6 * 5 * 5
    assert e.geometry.summary() == "3x3, stride 2x2, leading pad 1x1"
    ex = e.example
    window = e.x_q[ex.index[0], ex.index[1]]
    rows, columns = (np.array(p) for p in ex.positions)
    assert rows.tolist() == [2 * ex.index[2] - 1 + i for i in range(3)]
    inside = window[np.clip(rows, 0, 8)][:, np.clip(columns, 0, 8)][ex.inside]
    assert ex.largest == int(inside.max()) == ex.kernel_y_q == ex.runtime_y_q == int(e.runtime[ex.index])
    assert ex.x_q[ex.at] == ex.largest and ex.definition_y_q == ex.largest
    steps = "\n".join(e.steps())
    assert f"largest x_q of its {int(ex.inside.sum())} values = {ex.largest}" in steps
    assert f"y_q = max x_q = {ex.largest}  (no arithmetic, no rounding)" in steps
    assert any("on the uint8 tensor itself" in note for note in e.notes)
    assert json.loads(json.dumps(e.to_dict()))["example"]["x_q"] == ex.x_q.tolist()


def test_a_corner_window_marks_its_padding(tmp_path: Path) -> None:
    model, data = pool_model_and_data(tmp_path)
    e = explain_node(model, "pool", data, element=(0, 4, 0, 0))
    ex = e.example
    assert ex.index == (0, 4, 0, 0) and ex.positions == ((-1, 0, 1), (-1, 0, 1))
    assert ex.inside.tolist() == [[False, False, False], [False, True, True], [False, True, True]]
    assert ex.largest == int(e.x_q[0, 4, :2, :2].max()) == ex.runtime_y_q
    assert "rows -1–1, columns -1–1 (5 in the padding, not compared)" in e.steps()[0]
    with pytest.raises(Q8Error, match="outside the output of shape"):
        explain_node(model, "pool", data, element=(0, 6, 0, 0))


def test_a_max_pool_whose_output_stays_float_is_refused_with_the_reason(tmp_path: Path) -> None:
    model, data = pool_model_and_data(tmp_path, requantized=False)
    with pytest.raises(Q8Error, match="output is not re-quantized: ONNX Runtime takes the maximum of the dequant"):
        explain_node(model, "pool", data)


def test_another_output_quantization_is_requantized_in_float(tmp_path: Path) -> None:
    model = load_model(save(qdq_pooling("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, ["N", 4, 8, 8],
                                         (0.02, 0.03), (128, 100)), tmp_path / "pool.onnx"))
    x = np.random.default_rng(4).standard_normal((2, 4, 8, 8)).astype(np.float32)
    e = explain_node(model, "pool", load_data(write_npz(tmp_path / "x.npz", x=x), model))
    assert [c.reference for c in e.checks] == [DEFINITION_CHECK] and e.checks[0].bit_exact
    assert any("requantized" in note for note in e.notes)
    ex = e.example
    assert ex.kernel_y_q == ex.definition_y_q == ex.runtime_y_q
    assert ex.kernel_y_q == int(np.clip(np.rint(np.float32(0.02) * (ex.largest - 128) / np.float32(0.03)) + 100, 0, 255))


@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_the_demos_max_pool_is_explained_bit_exact(tmp_path: Path, activations: str) -> None:
    assets = demo_assets()
    float_model = load_model(assets.model)
    result = quantize_model(float_model, load_data(assets.calibration, float_model, samples=60),
                            Recipe(activation_type=activations), tmp_path / "demo.int8.onnx")
    test = load_data(assets.test, result.int8)
    for sample in (0, 7, 200):
        e = explain_node(result.int8, "/pool/MaxPool", test, sample=sample, float_model=float_model)
        assert [c.reference for c in e.checks] == [KERNEL_CHECK, DEFINITION_CHECK], e.notes
        assert all(c.bit_exact for c in e.checks) and e.checks[0].total == 16 * 8 * 8
        assert e.x.dtype == e.y.dtype == activations and e.x_q.shape == (1, 16, 16, 16)
        assert e.float_tensor == "/pool/MaxPool_output_0" and e.sqnr_db is not None and e.sqnr_db > 25
        assert any("adds no error of its own" in note for note in e.notes)


def test_the_command_line_prints_the_window_and_its_largest_value(tmp_path: Path, demo_int8_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assets = demo_assets()
    assert main(["explain", str(demo_int8_path), "--node", "/pool/MaxPool", "--data", str(assets.test),
                 "--sample", "4", "--element", "0", "3", "2", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("/pool/MaxPool: MaxPool of an 8-bit tensor (2x2, stride 2x2), run by ONNX Runtime as ")
    assert f"check: {KERNEL_CHECK}: bit-exact with ONNX Runtime (1024 elements)" in out
    assert "window x_q (2x2):" in out and "window of channel 3: rows 4–5, columns 10–11" in out
    assert "ONNX Runtime: y_q = " in out
