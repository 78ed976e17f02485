"""The integer-only reference against ONNX Runtime on real int8 models: the demo, Gemm and MatMul models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, write_npz
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core.explain import NodeExplanation, computing_node, explain_node
from q8studio.core.model import LoadedModel, load_model, model_from_proto
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.report import to_json
from q8studio.core.weights import qdq_params, weight_values

DEMO_CONVS = {  # node -> whether a ReLU follows it in the float model (removed by the quantizer)
    "/stem/conv/Conv": True,
    "/block1/depthwise/conv/Conv": True,
    "/block1/pointwise/conv/Conv": False,
    "/down/conv/Conv": True,
    "/block2/depthwise/conv/Conv": True,
    "/block2/pointwise/conv/Conv": False,
}
MAX_OFF_BY_ONE = 1e-3  # the integer path may round differently on near-ties only (see intmath)


def quantized(model_path: Path, data_path: Path, out: Path, **recipe: object) -> LoadedModel:
    model = load_model(model_path)
    result = quantize_model(model, load_data(data_path, model, samples=100), Recipe(**recipe), out)
    return load_model(result.output_path)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    assets = demo_assets()
    out = tmp_path_factory.mktemp("explain-demo")
    models = {g: quantized(assets.model, assets.calibration, out / f"{g}.onnx", granularity=g)
              for g in ("per-tensor", "per-channel")}
    return {"float": load_model(assets.model), "test": assets.test, **models}


def explained(demo: dict, granularity: str, node: str, **kwargs: object) -> NodeExplanation:
    int8 = demo[granularity]
    return explain_node(int8, node, load_data(demo["test"], int8), float_model=demo["float"], **kwargs)


def assert_matches_runtime(e: NodeExplanation) -> None:
    """ONNX Runtime's formula is bit-exact; the integer path at most 1 off on a few near-ties."""
    integer, runtime_formula = e.checks
    assert runtime_formula.exact, runtime_formula.summary()
    assert integer.max_diff <= 1 and integer.fraction <= MAX_OFF_BY_ONE, integer.summary()
    assert integer.exact or "float32" in integer.cause


@pytest.mark.parametrize("granularity", ["per-tensor", "per-channel"])
@pytest.mark.parametrize("node", list(DEMO_CONVS))
def test_demo_convolutions_are_bit_exact_with_qlinearconv(demo: dict, granularity: str, node: str) -> None:
    e = explained(demo, granularity, node, sample=7)
    assert e.runtime_kernel == "QLinearConv"
    assert_matches_runtime(e)
    assert e.w.per_channel == (granularity == "per-channel")
    assert len(e.multipliers) == (e.w.scale.size if e.w.per_channel else 1)
    assert all(2**30 <= m.m0 < 2**31 and abs(m.rel_error) < 2**-30 for m in e.multipliers)
    relu_note = any("removed by the quantizer" in note for note in e.notes)
    assert relu_note == DEMO_CONVS[node]
    if DEMO_CONVS[node]:  # ReLU is the clamp at Z_y = 0 of a uint8 output
        assert int(e.y.zero_point) == 0 and e.runtime.min() >= 0
    else:
        assert any("folded" in note for note in e.notes)  # the BatchNorm's output is the tensor compared
    assert e.sqnr_db is not None and e.sqnr_db > 20


def test_depthwise_conv_is_recognised_and_its_window_has_one_channel(demo: dict) -> None:
    e = explained(demo, "per-channel", "/block2/depthwise/conv/Conv")
    assert e.kind == "depthwise Conv"
    assert e.example.x_q.shape == e.example.w_q.shape == (1, 3, 3)


def test_worked_element_agrees_with_the_whole_output(demo: dict) -> None:
    e = explained(demo, "per-channel", "/stem/conv/Conv", sample=3)
    ex = e.example
    assert ex.y_q == e.reference[ex.index] and ex.ort_y_q == e.runtime[ex.index] == ex.runtime_value
    assert ex.acc == int(ex.products.sum()) and ex.acc_with_bias == ex.acc + ex.bias
    assert ex.before_clamp == ex.scaled + ex.y_zero_point
    assert ex.y_real == pytest.approx(float(e.y.scale) * (ex.y_q - int(e.y.zero_point)))
    assert ex.float_value == pytest.approx(float(e.float_output[ex.index]))
    assert abs(ex.y_real - ex.float_value) < 4 * float(e.y.scale)  # one layer of int8 error, a few steps
    assert e.y.dtype == "uint8" and ex.qmin < ex.y_q < ex.qmax  # the default element is not saturated
    on_border = ex.index[2] in (0, 15) or ex.index[3] in (0, 15)
    assert ex.in_bounds.all() != on_border


def test_caller_chooses_the_element_and_padding_holds_the_zero_point(demo: dict) -> None:
    e = explained(demo, "per-tensor", "/stem/conv/Conv", element=(0, 5, 0, 0))
    ex = e.example
    assert ex.index == (0, 5, 0, 0)
    assert ex.in_bounds.tolist() == [[[False, False, False], [False, True, True], [False, True, True]]]
    assert (ex.x_q[~ex.in_bounds] == int(e.x.zero_point)).all()
    with pytest.raises(Q8Error, match="outside"):
        explained(demo, "per-tensor", "/stem/conv/Conv", element=(0, 16, 0, 0))


@pytest.mark.parametrize("node, element, expected", [
    ("/stem/conv/Conv", (0, 1), r"Element \(0, 1\) has 2 indices; the output of /stem/conv/Conv has 4 axes "
                                r"\(shape \(1, 16, \d+, \d+\)\): give one index per axis\.$"),
    ("/fc/Gemm", (0, 3, 0, 0), r"Element \(0, 3, 0, 0\) has 4 indices; the output of /fc/Gemm has 2 axes "
                               r"\(shape \(1, 10\)\)"),
], ids=["conv-too-few", "gemm-too-many"])
def test_an_element_with_the_wrong_number_of_indices_says_how_many_the_output_needs(
        demo: dict, node: str, element: tuple[int, ...], expected: str) -> None:
    """(0, 1) on a 4-D output is not "outside" it: the user needs the output's rank, not its range."""
    with pytest.raises(Q8Error, match=expected) as raised:
        explained(demo, "per-tensor", node, element=element)
    assert "outside" not in str(raised.value)


def test_final_gemm_is_compared_with_the_model_output(demo: dict) -> None:
    e = explained(demo, "per-channel", "/fc/Gemm")
    assert e.runtime_kernel == "QGemm" and e.kind == "Gemm"
    assert_matches_runtime(e)
    assert e.float_tensor == "logits"  # Gemm -> QuantizeLinear -> DequantizeLinear -> logits
    assert e.example.x_q.shape == e.example.w_q.shape == (32,)


def test_explanation_serialises_to_json(demo: dict) -> None:
    data = json.loads(to_json(explained(demo, "per-channel", "/block1/pointwise/conv/Conv").to_dict()))
    assert data["checks"][1]["exact"] and len(data["w"]["scale"]) == 16 and data["example"]["acc_with_bias"]
    assert data["example"]["multiplier"]["shift"] > 30


@pytest.mark.parametrize(
    "node, message",
    [("image_QuantizeLinear", "is QuantizeLinear, not Conv/Gemm/MatMul/Add/Mul/GlobalAveragePool/MaxPool/"
                              "AveragePool/Sigmoid/LeakyRelu/Concat/Softmax/Reshape/Flatten/Squeeze/Unsqueeze/"
                              "Transpose/Slice/Gather"),
     ("/nope/Conv", "no node named"), ("/stem/conv/Conv", "Sample 99")],
)
def test_unexplainable_requests_are_user_errors(demo: dict, node: str, message: str) -> None:
    int8 = demo["per-tensor"]
    with pytest.raises(Q8Error, match=message):
        explain_node(int8, node, load_data(demo["test"], int8, samples=5), sample=99 if "Sample" in message else 0)


def test_node_kept_in_float_is_not_explainable(tmp_path: Path) -> None:
    assets = demo_assets()
    int8 = quantized(assets.model, assets.calibration, tmp_path / "q.onnx", exclude=("/block1/pointwise/conv/Conv",))
    data = load_data(assets.test, int8, samples=2)
    with pytest.raises(Q8Error, match="was kept in float when this model was quantized"):
        explain_node(int8, "/block1/pointwise/conv/Conv", data)
    del int8.proto.metadata_props[:]  # a file that does not say why the layer is float
    with pytest.raises(Q8Error, match="runs in float: its inputs are not quantized"):
        explain_node(int8, "/block1/pointwise/conv/Conv", data)


# --- Gemm and MatMul models built with onnx.helper -------------------------------------------


def mlp() -> onnx.ModelProto:
    """MatMul + Add + Relu (fused into a Gemm by pre-processing), a Gemm with transB, a final MatMul."""
    rng = np.random.default_rng(0)
    weights = {"w1": (64, 48), "b1": (48,), "w2": (32, 48), "b2": (32,), "w3": (32, 10)}
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.2).astype(np.float32), n) for n, s in weights.items()]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="/mm1/MatMul"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="/mm1/Add"),
        helper.make_node("Relu", ["hb"], ["hr"], name="/relu/Relu"),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["g"], name="/fc/Gemm", transB=1),
        helper.make_node("MatMul", ["g", "w3"], ["y"], name="/out/MatMul"),
    ]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.fixture(scope="module")
def mlp_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("explain-mlp")
    model, data = save(mlp(), out / "mlp.onnx"), out / "mlp.npz"
    write_npz(data, x=np.random.default_rng(1).standard_normal((40, 64)).astype(np.float32))
    models = {g: quantized(model, data, out / f"{g}.onnx", granularity=g) for g in ("per-tensor", "per-channel")}
    return {"float": load_model(model), "data": data, **models}


@pytest.mark.parametrize("granularity", ["per-tensor", "per-channel"])
@pytest.mark.parametrize("node, kernel", [("/fc/Gemm", "QGemm"), ("/out/MatMul", "QLinearMatMul")])
def test_gemm_and_matmul_are_bit_exact(mlp_models: dict, granularity: str, node: str, kernel: str) -> None:
    int8 = mlp_models[granularity]
    e = explain_node(int8, node, load_data(mlp_models["data"], int8), sample=4, float_model=mlp_models["float"])
    assert e.runtime_kernel == kernel
    assert_matches_runtime(e)
    assert e.w.per_channel == (granularity == "per-channel")
    ex = e.example
    assert ex.y_q == e.reference[ex.index] and ex.x_q.shape == ex.w_q.shape
    assert e.sqnr_db is not None and e.sqnr_db > 20


def test_a_node_fused_by_preprocessing_is_explained_under_its_new_name(mlp_models: dict) -> None:
    int8 = mlp_models["per-channel"]
    e = explain_node(int8, "/mm1/MatMul", load_data(mlp_models["data"], int8), float_model=mlp_models["float"])
    assert e.node == "/mm1/MatMul/MatMulAddFusion" and e.op_type == "Gemm" and e.runtime_kernel == "QGemm"
    assert any("fused /mm1/MatMul into" in note for note in e.notes)
    assert any("Relu /relu/Relu" in note for note in e.notes)
    assert_matches_runtime(e)


def activation_product() -> onnx.ModelProto:
    """Attention-like scores: a batched MatMul of two activations (x W1) (x W2)^T."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array((rng.standard_normal((32, 16)) * 0.2).astype(np.float32), n) for n in ("w1", "w2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["a"], name="/a/MatMul"),
        helper.make_node("MatMul", ["x", "w2"], ["b"], name="/b/MatMul"),
        helper.make_node("Transpose", ["b"], ["bt"], name="/bt/Transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["a", "bt"], ["y"], name="/scores/MatMul"),
    ]
    graph = helper.make_graph(nodes, "scores", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_matmul_of_two_activations_is_bit_exact(tmp_path: Path) -> None:
    model = save(activation_product(), tmp_path / "scores.onnx")
    data = write_npz(tmp_path / "x.npz", x=np.random.default_rng(3).standard_normal((8, 12, 32)).astype(np.float32))
    int8 = quantized(model, data, tmp_path / "q.onnx")
    e = explain_node(int8, "/scores/MatMul", load_data(data, int8), sample=2, float_model=load_model(model))
    assert e.runtime_kernel == "QLinearMatMul" and e.runtime.shape == (1, 12, 12)
    assert_matches_runtime(e)
    assert e.w.dtype == "uint8" and any("second input is an activation" in note for note in e.notes)
    assert e.example.x_q.shape == e.example.w_q.shape == (16,) and e.example.y_q == e.reference[e.example.index]


# --- a case where the integer path is not exact, and says why ---------------------------------


def near_tie_conv(xs: np.float32, ws: np.float32, ys: np.float32, requantized: bool = True,
                  weight_zero_point: bool = True) -> onnx.ModelProto:
    """A QDQ 1x1 Conv whose accumulators 20 * x make ``acc * M`` a hair away from half-integers.

    Without ``requantized`` the Conv's float output is the model output (no QuantizeLinear); without
    ``weight_zero_point`` the int8 weight's DequantizeLinear leaves its zero point out (0 of int8).
    """
    inits = {
        "xs": xs, "xz": np.uint8(0), "w": np.full((1, 1, 1, 1), 20, np.int8), "ws": ws, "wz": np.int8(0),
        "b": np.zeros(1, np.int32), "bs": np.float32(xs * ws), "bz": np.int32(0), "ys": ys, "yz": np.uint8(0),
    }
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"], name="x_DequantizeLinear"),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="w_DequantizeLinear"),
        helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], name="b_DequantizeLinear"),
        helper.make_node("Conv", ["xf", "wf", "bf"], ["yf" if requantized else "y"], name="/conv/Conv"),
        helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"], name="y_QuantizeLinear"),
    ][: 5 if requantized else 4]
    if not weight_zero_point:
        del inits["wz"], nodes[1].input[2]
    out_type = TensorProto.UINT8 if requantized else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "near_tie", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 1, 8, 16])],
        [helper.make_tensor_value_info("y", out_type, ["N", 1, 8, 16])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_near_ties_show_up_as_counted_off_by_one_elements_with_their_cause(tmp_path: Path) -> None:
    xs, ws = np.float32(0.0123), np.float32(0.0071)
    ys = np.float32(xs * ws * 40)  # M = S_x S_w / S_y is within float32 rounding of 1/40
    model = load_model(save(near_tie_conv(xs, ws, ys), tmp_path / "tie.onnx"))
    odd = (2 * np.arange(128) + 1).astype(np.uint8).reshape(1, 1, 8, 16)  # acc / 40 = x / 2: all half-integers
    data = load_data(write_npz(tmp_path / "x.npz", x=odd), model)
    e = explain_node(model, "/conv/Conv", data)
    integer, runtime_formula = e.checks
    assert e.runtime_kernel == "QLinearConv" and runtime_formula.exact
    assert integer.max_diff == 1 and 0.3 < integer.fraction < 0.7
    assert "rint(float32(acc) * float32(M))" in integer.cause
    assert f"{integer.differing} of {integer.total}" in integer.summary()


def test_a_weight_dequantizer_without_zero_point_is_read_as_its_int8_weight(tmp_path: Path) -> None:
    """ONNX's default zero point is 0 of the quantized tensor's type: int8 here, not uint8."""
    xs, ws = np.float32(0.0123), np.float32(0.0071)
    model = load_model(save(near_tie_conv(xs, ws, np.float32(0.05), weight_zero_point=False), tmp_path / "nozp.onnx"))
    x = np.random.default_rng(0).integers(0, 256, (1, 1, 8, 16)).astype(np.uint8)
    e = explain_node(model, "/conv/Conv", load_data(write_npz(tmp_path / "x.npz", x=x), model))
    assert (e.w.dtype, e.w.zero_point.dtype, int(e.w.zero_point)) == ("int8", np.int8, 0)
    assert e.checks[1].exact
    values, stored = weight_values(model, "w")
    assert stored is not None and (stored.dtype, stored.zero_point, stored.axis) == ("int8", (0, 0), None)
    np.testing.assert_array_equal(values, np.full((1, 1, 1, 1), np.float32(20 * ws)))


def test_dequantize_and_quantize_parameters_read_as_onnx_defines_them() -> None:
    """A per-channel axis written negative counts from the front; a QuantizeLinear without zero point is uint8."""
    scales = np.array([0.5, 0.25], np.float32)
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "ws"], ["wf"], name="dq", axis=-1),
        helper.make_node("MatMul", ["x", "wf"], ["y"], name="mm"),
        helper.make_node("QuantizeLinear", ["y", "ys"], ["yq"], name="q"),
    ]
    graph = helper.make_graph(
        nodes, "params", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("yq", TensorProto.UINT8, ["N", 2])],
        [numpy_helper.from_array(np.ones((3, 2), np.int8), "w"), numpy_helper.from_array(scales, "ws"),
         numpy_helper.from_array(np.float32(0.1), "ys")],
    )
    model = model_from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), Path("p.onnx"))
    w = qdq_params(model, model.graph.node_by_name("dq"))
    assert (w.tensor, w.dtype, w.axis, w.zero_point.dtype) == ("w", "int8", 1, np.int8)
    np.testing.assert_array_equal(w.scale, scales)
    y = qdq_params(model, model.graph.node_by_name("q"))
    assert (y.tensor, y.dtype, y.axis, y.per_channel) == ("yq", "uint8", None, False)


def test_output_that_is_not_requantized_stays_float(tmp_path: Path) -> None:
    xs, ws = np.float32(0.0123), np.float32(0.0071)
    model = load_model(save(near_tie_conv(xs, ws, np.float32(1.0), requantized=False), tmp_path / "float_out.onnx"))
    x = np.random.default_rng(0).integers(0, 256, (2, 1, 8, 16)).astype(np.uint8)
    e = explain_node(model, "/conv/Conv", load_data(write_npz(tmp_path / "x.npz", x=x), model), sample=1)
    assert e.y is None and e.runtime.dtype == np.float32 and len(e.checks) == 1 and e.checks[0].exact
    np.testing.assert_allclose(e.runtime, float(xs) * float(ws) * 20 * x[1:].astype(np.float64), rtol=1e-6)
    assert any("not re-quantized" in note for note in e.notes) and any("float kernel" in note for note in e.notes)
    ex = e.example
    assert ex.y_q is None and ex.multiplier is None and ex.runtime_value == pytest.approx(ex.real_value, rel=1e-6)
    assert "not requantized" in ex.steps()[-1]


# --- nodes quantization removed: what computes them ---------------------------------------------


@pytest.mark.parametrize("name, computed_by", [
    ("/stem/conv/Conv", "/stem/conv/Conv"),
    ("/block1/depthwise/bn/BatchNormalization", "/block1/depthwise/conv/Conv"),  # folded into its Conv
    ("/stem/bn/BatchNormalization", "/stem/conv/Conv"),  # folded, and the ReLU after it removed too
    ("/stem/relu/Relu", "/stem/conv/Conv"),
    ("/block1/relu/Relu", "/block1/Add"),  # the residual Add's output range clips at zero: QLinearAdd does it
])
def test_each_removed_node_is_computed_by_the_int8_node_writing_its_output(demo: dict, name: str,
                                                                           computed_by: str) -> None:
    int8, float_model = demo["per-tensor"], demo["float"]
    assert name in float_model.graph.by_name
    assert computing_node(int8.graph, float_model.graph, name) == computed_by
    assert computed_by in int8.graph.by_name


def test_a_removed_node_is_explained_through_the_node_computing_it(demo: dict) -> None:
    e = explained(demo, "per-channel", "/block1/depthwise/bn/BatchNormalization")
    assert e.node == "/block1/depthwise/conv/Conv" and e.runtime_kernel == "QLinearConv"
    assert any("/block1/depthwise/conv/Conv computes it" in note for note in e.notes)
    add = explained(demo, "per-channel", "/block1/relu/Relu")  # the residual ReLU: QLinearAdd's output range clips
    assert add.node == "/block1/Add" and add.runtime_kernel == "QLinearAdd"
    assert any("/block1/Add computes it" in note for note in add.notes)


def test_a_dropout_pre_processing_removed_is_computed_by_no_node(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Dropout", ["r"], ["d"], name="dropout"),
             helper.make_node("MatMul", ["d", "w2"], ["y"], name="mm2")]
    weights = [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), n) for n in ("w1", "w2")]
    graph = helper.make_graph(nodes, "dropout", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], weights)
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "dropout.onnx")
    data = write_npz(tmp_path / "x.npz", x=rng.standard_normal((16, 8)).astype(np.float32))
    int8, float_model = quantized(path, data, tmp_path / "q.onnx"), load_model(path)
    assert "dropout" not in int8.graph.by_name
    assert computing_node(int8.graph, float_model.graph, "dropout") is None
    with pytest.raises(Q8Error, match="dropout is not in the int8 model: pre-processing removed it"):
        explain_node(int8, "dropout", load_data(data, int8, samples=1), float_model=float_model)
