"""Explain of a Gemm whose alpha and beta are not 1, in an int8 model q8studio did not write.

onnxruntime's quantize_static, run directly (no q8studio pre-processing to fold alpha and beta away), keeps
alpha, resets beta to 1 and writes the bias with scale S_b = beta * S_x * S_w: the int8 Gemm computes
alpha S_x S_w acc + S_b b_q, so M carries alpha and the bias is worth beta S_b / (alpha S_x S_w) accumulator
steps per step of b_q. The explanation must agree with ONNX Runtime bit for bit, or refuse with a reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from builders import save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.explain import NodeExplanation, explain_node
from q8studio.core.model import LoadedModel, load_model, model_from_proto

SAMPLES = 32


class _Samples(CalibrationDataReader):
    def __init__(self, x: np.ndarray) -> None:
        self._feeds = iter({"x": x[i : i + 1]} for i in range(len(x)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def gemm(alpha: float, beta: float) -> onnx.ModelProto:
    """x[N, 6] -> Gemm(alpha, beta, transB=1) with a constant weight and bias -> y[N, 4]."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (4, 6)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.5, (4,)).astype(np.float32), "b")]
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1, alpha=alpha, beta=beta)
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


def ort_quantized(tmp: Path, alpha: float, beta: float) -> tuple[Path, Path, Path]:
    """The float model, its int8 model written by onnxruntime's quantize_static alone, and their data."""
    model = save(gemm(alpha, beta), tmp / "gemm.onnx")
    x = np.random.default_rng(1).normal(0, 1, (SAMPLES, 6)).astype(np.float32)
    data = write_npz(tmp / "x.npz", x=x)
    int8 = tmp / "gemm.int8.onnx"
    quantize_static(str(model), str(int8), _Samples(x), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return model, int8, data


@pytest.fixture(scope="module")
def alpha_beta(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return ort_quantized(tmp_path_factory.mktemp("gemm-alpha-beta"), alpha=0.5, beta=2.0)


def explained(int8: LoadedModel, data: Path, float_model: Path | None = None, sample: int = 0) -> NodeExplanation:
    e = explain_node(int8, "fc", load_data(data, int8), sample=sample,
                     float_model=load_model(float_model) if float_model else None)
    assert isinstance(e, NodeExplanation)
    return e


def scales(int8: LoadedModel) -> dict[str, float]:
    """The int8 model's stored scales and the Gemm's attributes, read straight from the file."""
    proto = int8.proto
    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    node = next(n for n in proto.graph.node if n.op_type == "Gemm")
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    dq = {n.output[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    scale = {name: values[dq[node.input[i]].input[1]].item() for i, name in enumerate("xwb")}
    return {**scale, "y": values["y_scale"].item(), "alpha": attributes.get("alpha", 1.0),
            "beta": attributes.get("beta", 1.0)}


def runtime_output(int8_path: Path, data: Path) -> np.ndarray:
    """What ONNX Runtime computes for the whole data set: the int8 model's (dequantized) output."""
    session = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": np.load(data)["x"]})[0]


def test_the_int8_model_keeps_alpha_and_moves_beta_into_the_bias_scale(alpha_beta: tuple[Path, Path, Path]) -> None:
    s = scales(load_model(alpha_beta[1]))  # the premise of the tests below, as onnxruntime writes it
    assert s["alpha"] == 0.5 and s["beta"] == 1.0
    assert s["b"] == pytest.approx(2.0 * s["x"] * s["w"], rel=1e-6)


@pytest.mark.parametrize("sample", [0, 7, 19, SAMPLES - 1])
def test_alpha_beta_gemm_is_bit_exact_with_onnx_runtime(alpha_beta: tuple[Path, Path, Path], sample: int) -> None:
    model, int8_path, data = alpha_beta
    int8 = load_model(int8_path)
    e = explained(int8, data, model, sample=sample)
    assert all(check.bit_exact for check in e.checks), [c.summary() for c in e.checks]
    np.testing.assert_array_equal(e.reference, e.runtime)
    s = scales(int8)  # and the reference, dequantized, is the model output ONNX Runtime gives on its own
    zero = int(e.y.zero_point)
    np.testing.assert_allclose(s["y"] * (e.reference.astype(np.float64) - zero),
                               runtime_output(int8_path, data)[sample : sample + 1], rtol=0, atol=1e-6)


def test_the_explanation_multiplier_includes_alpha(alpha_beta: tuple[Path, Path, Path]) -> None:
    model, int8_path, data = alpha_beta
    int8 = load_model(int8_path)
    e = explained(int8, data, model)
    s = scales(int8)
    expected_m = 0.5 * s["x"] * s["w"] / s["y"]
    assert e.multipliers[0].real == pytest.approx(expected_m, rel=1e-12)
    assert float(e.ort_multipliers[0]) == pytest.approx(expected_m, rel=1e-6)
    ex = e.example
    assert ex.multiplier is not None and ex.multiplier.real == pytest.approx(expected_m, rel=1e-12)
    factor = round(s["beta"] * s["b"] / (s["alpha"] * s["x"] * s["w"]))  # 4: beta 2 in S_b, over alpha 0.5
    assert factor == 4 and ex.bias_factor == factor and e.scaling.bias_factor == factor
    assert ex.acc_with_bias == ex.acc + factor * ex.bias
    assert ex.real_value == pytest.approx(0.5 * s["x"] * s["w"] * ex.acc_with_bias, rel=1e-6)
    assert ex.y_q == ex.ort_y_q == int(e.runtime[ex.index])
    steps = "\n".join(ex.steps())
    assert "M = alpha·S_x·S_w/S_y (alpha = 0.5)" in steps and "+ bias 4·b_q 4·" in steps
    assert e.to_dict()["scaling"] == {"alpha": 0.5, "beta": 1.0, "bias_scale": pytest.approx(2.0), "bias_factor": 4}


def test_cli_shows_alpha_and_agrees_with_the_runtime(alpha_beta: tuple[Path, Path, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model, int8_path, data = alpha_beta
    assert main(["explain", str(int8_path), "--node", "fc", "--data", str(data), "--float", str(model)]) == 0
    out = capsys.readouterr().out
    for text in ("bias   b  int32  scale S_b = 2*S_x*S_w", "M = alpha*S_x*S_w/S_y =",
                 "Gemm alpha = 0.5, beta = 1: M = alpha·S_x·S_w/S_y; the int32 accumulator adds 4·b_q",
                 "check: integer reference (M0, n): bit-exact with ONNX Runtime",
                 "check: ONNX Runtime's float32 requantization: bit-exact with ONNX Runtime"):
        assert text in out, text
    assert "unexpected" not in out


def test_beta_alone_is_what_the_kernel_makes_of_the_bias_scale(tmp_path: Path) -> None:
    """alpha = 1, beta = 2: the quantizer leaves beta = 1 and S_b = 2 S_x S_w, which ONNX Runtime fuses into QGemm;
    QGemm adds b_q as it stands, so the reference follows it and a note says the bias is not what S_b says."""
    model, int8_path, data = ort_quantized(tmp_path, alpha=1.0, beta=2.0)
    e = explained(load_model(int8_path), data, model, sample=3)
    assert all(check.bit_exact for check in e.checks), [c.summary() for c in e.checks]
    assert e.scaling.alpha == 1.0 and e.scaling.bias_scale == pytest.approx(2.0)
    if e.runtime_kernel == "QGemm":
        assert e.scaling.bias_factor == 1 and any("QGemm adds b_q" in note for note in e.notes)
    else:  # a runtime that does not fuse it runs the QDQ graph, where the bias is worth 2 steps
        assert e.scaling.bias_factor == 2


def with_gemm_attribute(int8: LoadedModel, name: str, value: float) -> LoadedModel:
    proto = onnx.ModelProto()
    proto.CopyFrom(int8.proto)
    node = next(n for n in proto.graph.node if n.op_type == "Gemm")
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value)])
    return model_from_proto(proto, int8.path)


def test_a_bias_worth_no_whole_number_of_steps_is_refused_in_one_line(alpha_beta: tuple[Path, Path, Path]) -> None:
    """beta = 0.3 left in the QDQ graph (ONNX Runtime never fuses beta != 1): 0.3 * 2 / 0.5 = 1.2 steps per b_q."""
    _, int8_path, data = alpha_beta
    int8 = with_gemm_attribute(load_model(int8_path), "beta", 0.3)
    with pytest.raises(Q8Error, match=r"cannot be worked through in integers.*= 1\.2 accumulator steps") as error:
        explained(int8, data)
    assert "\n" not in str(error.value)


def test_a_negative_alpha_is_refused(alpha_beta: tuple[Path, Path, Path]) -> None:
    _, int8_path, data = alpha_beta
    int8 = with_gemm_attribute(load_model(int8_path), "alpha", -0.5)
    with pytest.raises(Q8Error, match=r"alpha = -0\.5: Explain needs alpha > 0"):
        explained(int8, data)


def test_the_explain_panel_shows_alpha_beta_and_the_bias_scale(qtbot, alpha_beta: tuple[Path, Path, Path]) -> None:
    from q8studio.gui.explain_panel import ExplainPanel

    model, int8_path, data = alpha_beta
    e = explained(load_model(int8_path), data, model)
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.show_explanation(e)
    rows = {panel.numbers.item(r, 0).text(): panel.numbers.item(r, 1).text() for r in range(panel.numbers.rowCount())}
    assert rows["bias scale S_b"] == "2·S_x·S_w"
    assert rows["Gemm alpha, beta"] == e.scaling.summary() and "adds 4·b_q" in rows["Gemm alpha, beta"]
    assert "M = alpha·S_x·S_w/S_y" in rows and "M = S_x·S_w/S_y" not in rows
