"""Models onnxruntime's quantizer fails on: worked around where q8studio can, else the node it failed
on and the ways out named, on the command line as its options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.evaluate import analyse_errors
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe

PER_CHANNEL = Recipe(granularity="per-channel")


def _model(name: str, nodes: list, inputs: list, outputs: list, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(value, key) for key, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _float(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def conv_then_grouped_conv_transpose() -> onnx.ModelProto:
    """A Conv (per channel as asked) into a ConvTranspose of 3 groups with a bias: its weight is
    [C_in 6, C_out/group 2, 3, 3], onnxruntime's per-channel axis 1 has 2 slices for 6 bias values."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("ConvTranspose", ["c", "deconv.w", "deconv.b"], ["y"], name="deconv", strides=[2, 2],
                              group=3)]
    return _model("grouped_deconv", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 17, 17])],
                  {"conv.w": _float(rng, 6, 3, 3, 3), "conv.b": _float(rng, 6),
                   "deconv.w": _float(rng, 6, 2, 3, 3), "deconv.b": _float(rng, 6)})


def passthrough() -> onnx.ModelProto:
    """A Gemm whose model also returns its input 'x' as an output."""
    rng = np.random.default_rng(1)
    return _model("passthrough", [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
                   helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                  {"w": _float(rng, 3, 6)})


def gemm_with_bias(bias: np.ndarray, batch: int | str = "N") -> onnx.ModelProto:
    """A Gemm of 6 inputs and 4 outputs with the constant bias ``bias`` (broadcast to [batch, 4])."""
    rng = np.random.default_rng(2)
    return _model("gemm_bias", [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 6])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
                  {"w": _float(rng, 4, 6), "b": bias.astype(np.float32)})


def gemm_with_a_bias_per_row() -> onnx.ModelProto:
    """A Gemm whose bias differs from one row of its batch of 8 to the next: per channel, onnxruntime's
    quantizer fails on it ("The truth value of an array ... is ambiguous")."""
    return gemm_with_bias(_float(np.random.default_rng(4), 8, 4), batch=8)


def conv_into_an_if() -> onnx.ModelProto:
    """A Conv whose output 'c' the branches of an If read without naming it as the If's input: a Conv
    when the input 'use_conv' is true, a Relu otherwise. onnxruntime's quantizer wrote the If before
    the Conv, which ONNX's checker refuses ("Nodes in a graph must be topologically sorted")."""
    rng = np.random.default_rng(8)
    branch_out = [helper.make_tensor_value_info("branch_y", TensorProto.FLOAT, None)]
    then_branch = helper.make_graph([helper.make_node("Conv", ["c", "then.w"], ["branch_y"], name="then_conv",
                                                      pads=[1, 1, 1, 1])],
                                    "then", [], branch_out, [numpy_helper.from_array(_float(rng, 4, 4, 3, 3), "then.w")])
    else_branch = helper.make_graph([helper.make_node("Relu", ["c"], ["branch_y"], name="else_relu")],
                                    "else", [], branch_out)
    nodes = [helper.make_node("Conv", ["x", "conv.w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("If", ["use_conv"], ["b"], name="branch", then_branch=then_branch,
                              else_branch=else_branch),
             helper.make_node("Conv", ["b", "out.w"], ["y"], name="out_conv")]
    return _model("conv_into_if", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                                          helper.make_tensor_value_info("use_conv", TensorProto.BOOL, [1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
                  {"conv.w": _float(rng, 4, 3, 3, 3), "out.w": _float(rng, 2, 4, 1, 1)})


def a_weight_an_if_shares() -> onnx.ModelProto:
    """A Conv's weight 'shared.w' that the Conv in an If's branch reads too: handed to the quantizer
    already quantized, its float values were gone, and the int8 model did not load."""
    rng = np.random.default_rng(10)
    branch_out = [helper.make_tensor_value_info("branch_y", TensorProto.FLOAT, None)]
    then_branch = helper.make_graph([helper.make_node("Conv", ["c", "shared.w"], ["branch_y"], name="then_conv",
                                                      pads=[1, 1, 1, 1])], "then", [], branch_out)
    else_branch = helper.make_graph([helper.make_node("Relu", ["c"], ["branch_y"], name="else_relu")],
                                    "else", [], branch_out)
    nodes = [helper.make_node("Conv", ["x", "conv.w"], ["c0"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c0", "shared.w"], ["c"], name="shared_conv", pads=[1, 1, 1, 1]),
             helper.make_node("If", ["use_conv"], ["y"], name="branch", then_branch=then_branch,
                              else_branch=else_branch)]
    return _model("weight_shared_with_if", nodes,
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                   helper.make_tensor_value_info("use_conv", TensorProto.BOOL, [1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                  {"conv.w": _float(rng, 4, 3, 3, 3), "shared.w": _float(rng, 4, 4, 3, 3)})


def names_the_quantizer_makes() -> onnx.ModelProto:
    """A Gemm of weight 'w' into 'y', a Mul by the constant 'w_scale' into 'y_QuantizeLinear_Output', an
    Add of the constant 'y_zero_point' and a Mul by the constant 'out_scale' into the output 'out': the
    names onnxruntime's quantizer gives the scale of 'w', the quantized 'y', its zero point and the
    scale of 'out'. It failed on this model ("Unsupported DequantizeLinear operator, dequantization
    from 1."); with the first three renamed only, 'out' was left with a placeholder range."""
    rng = np.random.default_rng(12)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1),
             helper.make_node("Mul", ["y", "w_scale"], ["y_QuantizeLinear_Output"], name="mul"),
             helper.make_node("Add", ["y_QuantizeLinear_Output", "y_zero_point"], ["sum"], name="add"),
             helper.make_node("Mul", ["sum", "out_scale"], ["out"], name="scale")]
    return _model("quantizer_names", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])],
                  {"w": _float(rng, 4, 6), "w_scale": np.array([3.0, -2.0, 1.5, 0.5], np.float32),
                   "y_zero_point": np.array([0.5, 1.0, -0.5, 0.25], np.float32),
                   "out_scale": np.full(4, 5.0, np.float32)})


def a_relu_input_an_if_reads() -> onnx.ModelProto:
    """A Conv into a Relu, the If after them reading the Conv's output 'c' in one branch and the Relu's
    in the other. onnxruntime's quantizer folds the Relu into the Conv by renaming the Conv's output,
    since it counts one reader of 'c': the branch was left reading a value no node makes."""
    rng = np.random.default_rng(14)
    branch_out = [helper.make_tensor_value_info("branch_y", TensorProto.FLOAT, None)]
    then_branch = helper.make_graph([helper.make_node("Sigmoid", ["c"], ["branch_y"], name="then_sigmoid")],
                                    "then", [], branch_out)
    else_branch = helper.make_graph([helper.make_node("Identity", ["r"], ["branch_y"], name="else_identity")],
                                    "else", [], branch_out)
    nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("If", ["use_sigmoid"], ["b"], name="branch", then_branch=then_branch,
                              else_branch=else_branch),
             helper.make_node("Conv", ["b", "out.w"], ["y"], name="out_conv")]
    return _model("relu_input_read_by_if", nodes,
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                   helper.make_tensor_value_info("use_sigmoid", TensorProto.BOOL, [1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
                  {"conv.w": _float(rng, 4, 3, 3, 3), "conv.b": _float(rng, 4), "out.w": _float(rng, 2, 4, 1, 1)})


def _saved(model: onnx.ModelProto, folder: Path, x: np.ndarray) -> tuple[Path, Path]:
    return save(model, folder / "m.onnx"), write_npz(folder / "calib.npz", x=x)


def test_a_grouped_conv_transpose_is_quantized_per_tensor_in_a_per_channel_run(tmp_path) -> None:
    x = np.random.default_rng(3).standard_normal((8, 3, 8, 8)).astype(np.float32)
    model_path, data_path = _saved(conv_then_grouped_conv_transpose(), tmp_path, x)
    model = load_model(model_path)
    result = quantize_model(model, load_data(data_path, model), PER_CHANNEL, tmp_path / "q.onnx")
    axes = {w.tensor: w.axis for w in result.weights}
    assert axes["conv.w"] == 0 and axes["deconv.w"] is None  # the Conv stays per channel
    assert any(note.startswith("deconv [ConvTranspose] has 3 groups: its weight deconv.w is quantized per tensor")
               for note in result.prepared.notes)
    float_y = ort.InferenceSession(str(model_path)).run(None, {"x": x})[0]
    int8_y = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"x": x})[0]
    assert "deconv" not in result.kept_float
    assert np.abs(int8_y - float_y).max() < 0.05 * np.abs(float_y).max()


def test_the_report_says_which_weight_went_per_tensor(tmp_path, capsys) -> None:
    model_path, data_path = _saved(conv_then_grouped_conv_transpose(), tmp_path,
                                   np.random.default_rng(4).standard_normal((8, 3, 8, 8)).astype(np.float32))
    report = tmp_path / "r.json"
    assert main(["quantize", str(model_path), "--calib", str(data_path), "--granularity", "per-channel",
                 "-o", str(tmp_path / "q.onnx"), "--report", str(report)]) == 0
    assert "deconv [ConvTranspose] has 3 groups" in capsys.readouterr().out
    saved = json.loads(report.read_text())
    assert any("deconv.w is quantized per tensor" in note for note in saved["preprocessing"])
    assert {w["tensor"]: w["axis"] for w in saved["weights"]}["deconv.w"] is None


def test_a_model_returning_its_input_quantizes_and_returns_it_unchanged(tmp_path) -> None:
    x = np.random.default_rng(5).standard_normal((10, 6)).astype(np.float32)
    model_path, data_path = _saved(passthrough(), tmp_path, x)
    model = load_model(model_path)
    result = quantize_model(model, load_data(data_path, model), Recipe(), tmp_path / "q.onnx")
    int8 = onnx.load(str(tmp_path / "q.onnx"))
    onnx.checker.check_model(int8, full_check=True)
    assert [o.name for o in int8.graph.output] == ["y", "x"] and [i.name for i in int8.graph.input] == ["x"]
    assert not any("q8studio" in node.name for node in int8.graph.node)
    assert result.int8.is_quantized and not result.float_nodes  # the Gemm is int8
    y, returned = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"x": x})
    np.testing.assert_array_equal(returned, x)
    float_y = ort.InferenceSession(str(model_path)).run(None, {"x": x})[0]
    assert np.abs(y - float_y).max() < 0.05 * np.abs(float_y).max()


@pytest.mark.parametrize("build", [conv_into_an_if, a_weight_an_if_shares])
def test_a_model_whose_if_reads_values_around_it_quantizes_into_a_valid_file(tmp_path, build) -> None:
    x = np.random.default_rng(9).standard_normal((12, 3, 8, 8)).astype(np.float32)
    use_conv = np.arange(12) % 2 == 0
    model_path = save(build(), tmp_path / "m.onnx")
    model = load_model(model_path)
    data = load_data(write_npz(tmp_path / "calib.npz", x=x, use_conv=use_conv), model)
    result = quantize_model(model, data, PER_CHANNEL, tmp_path / "q.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")), full_check=True)
    assert {w.tensor: w.axis for w in result.weights}["conv.w"] == 0
    [branch] = [node for node in result.float_nodes if node.name == "branch"]  # the quantizer does not enter it
    assert branch.reason.endswith("does not enter it: 2 layer(s) inside stay float "
                                  "(else_relu [Relu], then_conv [Conv])")
    float_session, int8_session = ort.InferenceSession(str(model_path)), ort.InferenceSession(str(tmp_path / "q.onnx"))
    for feed in ({"x": x[i:i + 1], "use_conv": use_conv[i:i + 1]} for i in range(12)):  # both branches
        float_y, int8_y = float_session.run(None, feed)[0], int8_session.run(None, feed)[0]
        sqnr_db = 10 * np.log10(np.sum(float_y**2) / np.sum((int8_y - float_y) ** 2))
        assert sqnr_db > 25, sqnr_db

def test_a_relu_whose_input_an_if_reads_is_kept_for_it(tmp_path) -> None:
    rng = np.random.default_rng(15)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    use_sigmoid = np.arange(16) % 2 == 0
    model_path = save(a_relu_input_an_if_reads(), tmp_path / "m.onnx")
    data_path = write_npz(tmp_path / "calib.npz", x=x, use_sigmoid=use_sigmoid)
    model = load_model(model_path)
    data = load_data(data_path, model)
    result = quantize_model(model, data, Recipe(), tmp_path / "q.onnx")
    int8 = onnx.load(str(tmp_path / "q.onnx"))
    onnx.checker.check_model(int8, full_check=True)
    assert {node.name: node for node in int8.graph.node}["conv"].output == ["c"]
    float_session, int8_session = ort.InferenceSession(str(model_path)), ort.InferenceSession(str(tmp_path / "q.onnx"))
    for flag in (True, False):
        feed = {"x": x[:1], "use_sigmoid": np.array([flag])}
        float_y, int8_y = float_session.run(None, feed)[0], int8_session.run(None, feed)[0]
        assert np.abs(int8_y - float_y).max() < 0.05 * np.abs(float_y).max()
    assert {layer.node for layer in analyse_errors(result.prepared.model, result.int8, data).layers} >= {"conv", "relu"}


def test_the_graph_draws_what_an_if_reads_from_around_it_as_an_edge(tmp_path) -> None:
    graph = load_model(save(conv_into_an_if(), tmp_path / "m.onnx")).graph
    index = {node.name: node.index for node in graph.nodes}
    assert (index["conv"], index["branch"], "c") in graph.edges()
    assert (index["branch"], index["out_conv"], "b") in graph.edges()


@pytest.mark.parametrize("recipe", [Recipe(), PER_CHANNEL], ids=["per-tensor", "per-channel"])
def test_tensors_named_as_the_quantizer_names_its_own_keep_their_names_and_values(tmp_path, recipe: Recipe) -> None:
    x = np.random.default_rng(13).standard_normal((32, 6)).astype(np.float32)
    model_path, data_path = _saved(names_the_quantizer_makes(), tmp_path, x)
    model = load_model(model_path)
    data = load_data(data_path, model)
    result = quantize_model(model, data, recipe, tmp_path / "q.onnx")
    assert not result.float_nodes
    assert {w.tensor for w in result.weights} == {"w", "w_scale", "y_zero_point", "out_scale"}
    nodes = {node.name: node for node in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert nodes["mul"].output == ["y_QuantizeLinear_Output"]  # the model's own tensor, under its own name
    assert not any("q8studio" in name for node in nodes.values() for name in [node.name, *node.input, *node.output])
    float_y = ort.InferenceSession(str(model_path)).run(None, {"x": x})[0]
    int8_y = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"x": x})[0]
    assert np.abs(int8_y - float_y).max() < 0.03 * np.abs(float_y).max()
    layers = analyse_errors(result.prepared.model, result.int8, data).layers
    assert {layer.node for layer in layers} >= {"fc", "mul", "add"}  # 'out' is compared as the output
    assert min(layer.sqnr_db for layer in layers) > 30


def test_an_input_named_as_the_scale_of_another_keeps_its_name(tmp_path, capsys) -> None:
    """Inputs 'x' and 'x_scale' (a gain the model multiplies by): the quantizer names the scale of 'x' so."""
    rng = np.random.default_rng(16)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1),
             helper.make_node("Mul", ["y", "x_scale"], ["out"], name="gain")]
    model = _model("input_named_as_a_scale", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6]),
                                                     helper.make_tensor_value_info("x_scale", TensorProto.FLOAT, ["N", 1])],
                   [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])], {"w": _float(rng, 4, 6)})
    model_path = save(model, tmp_path / "m.onnx")
    data_path = write_npz(tmp_path / "calib.npz", x=rng.standard_normal((32, 6)).astype(np.float32),
                          x_scale=rng.uniform(0.5, 2.0, (32, 1)).astype(np.float32))
    assert main(["quantize", str(model_path), "--calib", str(data_path), "-o", str(tmp_path / "q.onnx")]) == 0
    assert [value.name for value in onnx.load(str(tmp_path / "q.onnx")).graph.input] == ["x", "x_scale"]
    capsys.readouterr()
    assert main(["evaluate", str(model_path), str(tmp_path / "q.onnx"), "--data", str(data_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"]["out"]["sqnr_db"] > 30 and {layer["tensor"] for layer in report["layers"]} >= {"x_scale", "y"}


@pytest.mark.parametrize("bias", [np.array([0.3]), np.array([[0.1, -0.2, 0.3, 0.4]]), np.full((8, 4), 0.25)],
                         ids=["one value", "one row", "equal rows"])
def test_a_gemm_bias_broadcast_from_one_value_or_row_is_quantized_per_channel(tmp_path, bias: np.ndarray) -> None:
    """onnxruntime's per-channel quantizer failed on these ("index 1 is out of bounds"): pre-processing
    gives the bias one value per output, the same function."""
    x = np.random.default_rng(6).standard_normal((16, 6)).astype(np.float32)
    model_path, data_path = _saved(gemm_with_bias(bias, batch=8 if bias.shape[0] == 8 else "N"), tmp_path, x)
    model = load_model(model_path)
    result = quantize_model(model, load_data(data_path, model), PER_CHANNEL, tmp_path / "q.onnx")
    assert {w.tensor: w.axis for w in result.weights}["w"] == 0 and not result.float_nodes
    assert any(note.startswith("Gave 1 Gemm bias(es) one value per output") for note in result.prepared.notes)
    float_session, int8_session = ort.InferenceSession(str(model_path)), ort.InferenceSession(str(tmp_path / "q.onnx"))
    for batch in (x[:8], x[8:]):
        float_y, int8_y = float_session.run(None, {"x": batch})[0], int8_session.run(None, {"x": batch})[0]
        assert np.abs(int8_y - float_y).max() < 0.05 * np.abs(float_y).max()


def test_a_quantizer_failure_names_the_node_and_the_ways_out(tmp_path) -> None:
    model_path, data_path = _saved(gemm_with_a_bias_per_row(), tmp_path,
                                   np.random.default_rng(6).standard_normal((16, 6)).astype(np.float32))
    model = load_model(model_path)
    with pytest.raises(Q8Error, match=r"^onnxruntime's quantizer failed on node fc \(Gemm\): .+; try per-tensor "
                                      r"granularity or keeping fc in float\.$"):
        quantize_model(model, load_data(data_path, model), PER_CHANNEL, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_the_command_line_names_its_options_as_the_ways_out(tmp_path, capsys) -> None:
    model_path, data_path = _saved(gemm_with_a_bias_per_row(), tmp_path,
                                   np.random.default_rng(7).standard_normal((16, 6)).astype(np.float32))
    common = ["quantize", str(model_path), "--calib", str(data_path), "-o", str(tmp_path / "q.onnx")]
    assert main([*common, "--granularity", "per-channel"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q8studio: error: onnxruntime's quantizer failed on node fc (Gemm): ") and err.count("\n") == 1
    assert err.endswith("; try --granularity per-tensor or --exclude fc.\n")
    assert main([*common, "--granularity", "per-channel", "--exclude", "fc"]) == 0  # both ways out work
    assert main([*common, "--granularity", "per-tensor"]) == 0
    capsys.readouterr()
    assert main(["methods", str(model_path), "--calib", str(data_path), "--granularity", "per-channel"]) == 2
    assert capsys.readouterr().err.endswith("; try --granularity per-tensor or --exclude fc.\n")  # its options too
