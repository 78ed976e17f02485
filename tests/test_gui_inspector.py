"""The node inspector on real models: what it says of constants, weights, outputs and their int8 error."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from builders import LIGHT_MODELS, save
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.recipe import Recipe
from q8studio.core.tensorview import node_numbers
from q8studio.core.workflow import StudioRun, overlay_values, quantize_and_compare
from q8studio.gui import formatting as fmt
from q8studio.gui.inspector import Inspector
from gui_actions import tree_rows
from test_tensorview import weights_as_constant_nodes


@pytest.fixture
def inspector(qtbot) -> Inspector:
    widget = Inspector()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture(scope="module")
def constant_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, StudioRun]:
    """The demo with its weights made by Constant nodes, quantized and compared on its test set."""
    folder = tmp_path_factory.mktemp("constants")
    model = load_model(save(weights_as_constant_nodes(onnx.load(str(demo_assets().model))), folder / "demo.onnx"))
    calibration = load_data(demo_assets().calibration, model, samples=64)
    evaluation = load_data(demo_assets().test, model, samples=64)
    run = quantize_and_compare(model, calibration, evaluation, Recipe(), folder / "demo.int8.onnx", latency_runs=2)
    return model, run


@pytest.mark.parametrize("name, fill, layer", [
    ("light_squeezenet", "ConstantOfShape_2", "Conv n0"),
    ("light_bvlc_alexnet", "ConstantOfShape_11", "Gemm n16"),
])
def test_a_constant_of_shape_says_which_layer_it_makes_a_weight_of(inspector: Inspector, name: str, fill: str,
                                                                   layer: str) -> None:
    model = load_model(LIGHT_MODELS / f"{name}.onnx")
    inspector.show_node(model, fill)
    rows = tree_rows(inspector.tree)
    weight = model.graph.node_by_name(fill).outputs[0]
    assert rows["Node"]["Weight of"] == layer
    assert rows["Outputs"][weight].endswith("float32  (weight)")
    assert rows["Weights"] == {"Statistics": "computing…"}  # its weight is on its way, as a Conv's is
    if name == "light_squeezenet":
        inspector.show_node(model, fill, weights=node_numbers(model, fill).weights)
        section = tree_rows(inspector.tree)[f"Weight {weight}"]
        assert section["Shape"] == "[64, 3, 3, 3]" and section["Channels"] == "64 (axis 0)"
    inspector.show_node(model, layer.split()[1])
    assert "Weight of" not in tree_rows(inspector.tree)["Node"]  # a layer makes no weight of another


def test_after_a_run_a_constant_weight_is_no_activation(inspector: Inspector,
                                                       constant_demo: tuple[LoadedModel, StudioRun]) -> None:
    model, run = constant_demo
    inspector.show_node(model, "stem.conv.weight/Constant", run)
    rows = tree_rows(inspector.tree)
    assert rows["Node"]["Weight of"] == "Conv /stem/conv/Conv"
    assert rows["Quantization"] == {"Int8": "no activation: it makes a weight of Conv /stem/conv/Conv"}


def test_a_model_output_shows_its_int8_error(inspector: Inspector, constant_demo: tuple[LoadedModel, StudioRun]) -> None:
    """The Float vs int8 tab compares a model's output; the inspector gave no error for it."""
    model, run = constant_demo
    inspector.show_node(model, "/fc/Gemm", run)
    quantization = tree_rows(inspector.tree)["Quantization"]
    output = run.comparison.errors.outputs["logits"]
    assert quantization["Tensor"] == "logits"
    assert quantization["Errors over"] == "64 samples of test.npz"
    assert quantization["SQNR"] == fmt.decibels(output.sqnr_db) and quantization["Cosine"] == fmt.number(output.cosine, 6)
    assert quantization["Max |error|"] == fmt.number(output.max_abs)


def test_the_last_layer_and_a_maxpool_show_the_error_the_table_and_graph_show(
        inspector: Inspector, constant_demo: tuple[LoadedModel, StudioRun]) -> None:
    """The model's output is a quantized activation like any other (a row of the table, a colour of the graph); a
    MaxPool's output is quantized with its input's range, and its own error is the one shown, not its input's."""
    model, run = constant_demo
    rows = {row.tensor: row for row in run.layer_rows()}
    assert rows["logits"].node == "/fc/Gemm" and rows["logits"].sqnr_db == run.comparison.errors.outputs["logits"].sqnr_db
    colours = overlay_values(run.layer_rows(), "sqnr_db", model, run.result.prepared.model)
    assert colours["/fc/Gemm"] == rows["logits"].sqnr_db
    maxpool = rows["/pool/MaxPool_output_0"]
    assert colours["/pool/MaxPool"] == maxpool.sqnr_db
    inspector.show_node(model, "/pool/MaxPool", run)
    shown = tree_rows(inspector.tree)["Quantization"]
    assert shown["Tensor"] == "/pool/MaxPool_output_0" and shown["Range of"] == "/block1/relu/Relu_output_0"
    assert shown["SQNR"] == fmt.decibels(maxpool.sqnr_db)


def test_scales_and_zero_points_are_constants_not_weights(inspector: Inspector, demo_int8_path: Path) -> None:
    """The histograms leave a Quantize/DequantizeLinear's scale and zero point out of its weights;
    the inspector tagged them weights."""
    model = load_model(demo_int8_path)
    quantize = next(node for node in model.graph.nodes if node.op_type == "QuantizeLinear")
    inspector.show_node(model, quantize.name)
    inputs = tree_rows(inspector.tree)["Inputs"]
    assert inputs[quantize.inputs[1]].endswith("float32  (constant)")
    assert inputs[quantize.inputs[2]].endswith("8  (constant)")  # uint8 or int8
    conv = model.graph.node_by_name("/stem/conv/Conv")
    dequantize = model.graph.nodes[model.graph.producer[conv.inputs[1]]]
    inspector.show_node(model, dequantize.name)
    inputs = tree_rows(inspector.tree)["Inputs"]
    assert inputs[dequantize.inputs[0]].endswith("int8  (weight)")
    assert inputs[dequantize.inputs[1]].endswith("float32  (constant)")


def test_an_unused_output_of_unknown_shape_says_so(inspector: Inspector) -> None:
    """A Dropout's mask, which shape inference leaves unknown and no node reads, read "? ?"."""
    model = load_model(LIGHT_MODELS / "light_squeezenet.onnx")
    dropout = next(node for node in model.graph.nodes if node.op_type == "Dropout")
    inspector.show_node(model, dropout.name)
    outputs = tree_rows(inspector.tree)["Outputs"]
    assert outputs[dropout.outputs[1]] == "shape and type unknown  (unused)"
    assert outputs[dropout.outputs[0]] == "[1, 512, 13, 13] float32"
