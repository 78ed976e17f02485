"""Weights held by Constant and ConstantOfShape nodes instead of initializers: the inspector, the
weight histogram and statistics, and the parameter count show them like initializer weights."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import LIGHT_MODELS, save
from q8studio.core.errors import Q8Error
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.tensorview import node_numbers, node_weights
from q8studio.gui.inspector import _tensor_text


def _conv_fed_by_constants(w: np.ndarray, b: np.ndarray, folder: Path) -> LoadedModel:
    """A Conv whose weight comes from a Constant's tensor and whose bias from a Constant's floats,
    beside a ConstantOfShape of a computed shape (a fill, no weight) and a fixed one."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    nodes = [
        helper.make_node("Constant", [], ["w"], name="w_const", value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["b"], name="b_const", value_floats=b.tolist()),
        helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv"),
        helper.make_node("Shape", ["y"], ["y_shape"], name="shape"),
        helper.make_node("ConstantOfShape", ["y_shape"], ["zeros"], name="runtime_fill"),
        helper.make_node("Add", ["y", "zeros"], ["y0"], name="add_zeros"),
        helper.make_node("ConstantOfShape", ["fixed_shape"], ["halves"], name="fixed_fill",
                         value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Add", ["y0", "halves"], ["out"], name="add_halves"),
    ]
    fixed_shape = numpy_helper.from_array(np.array([1, 4, 2, 2], np.int64), "fixed_shape")
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 2, 2])],
                              [fixed_shape])
    return load_model(save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), folder / "c.onnx"))


def test_constant_node_outputs_are_a_conv_weights_and_parameters(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    model = _conv_fed_by_constants(w, b, tmp_path)
    conv = model.graph.node_by_name("conv")

    assert node_weights(model, conv) == ["w", "b"]
    np.testing.assert_array_equal(model.weight("w"), w)
    assert model.weight("b").dtype == np.float32 and np.array_equal(model.weight("b"), b)
    numbers = node_numbers(model, "conv")
    assert [(s.name, s.shape) for s in numbers.weights] == [("w", (4, 3, 3, 3)), ("b", (4,))]
    assert numbers.weights[0].min == pytest.approx(w.min()) and numbers.weights[0].max == pytest.approx(w.max())
    assert numbers.weight_histogram[0].sum() == w.size
    assert model.summary()["parameters"] == w.size + b.size + 1 * 4 * 2 * 2  # the fixed fill, not its int64 shape

    np.testing.assert_array_equal(model.weight("halves"), np.full((1, 4, 2, 2), 0.5, np.float32))
    assert node_weights(model, model.graph.node_by_name("add_zeros")) == []  # a fill of a computed shape
    with pytest.raises(Q8Error, match="not a weight"):
        model.weight("zeros")
    assert conv.quantizable and not model.graph.node_by_name("w_const").quantizable


def test_light_model_weights_made_by_constant_of_shape_are_shown() -> None:
    """onnx's light_* models hold every weight as a ConstantOfShape of an initializer shape."""
    model = load_model(LIGHT_MODELS / "light_squeezenet.onnx")
    conv = next(node for node in model.graph.nodes if node.op_type == "Conv")
    numbers = node_numbers(model, conv.name)

    assert node_weights(model, conv)[0] == conv.inputs[1]
    assert numbers.weights[0].shape == (64, 3, 3, 3)
    fill = numbers.weights[0].min
    assert fill == numbers.weights[0].max == pytest.approx(0.02)  # the file's one fill value
    assert numbers.weight_histogram[0].sum() == 64 * 3 * 3 * 3

    proto = onnx.load(str(LIGHT_MODELS / "light_squeezenet.onnx"))
    initializers = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    filled = [math.prod(initializers[n.input[0]]) for n in proto.graph.node if n.op_type == "ConstantOfShape"]
    floats = [v for v in initializers.values() if v.dtype != np.int64]  # shapes are not parameters
    assert model.summary()["parameters"] == sum(v.size for v in floats) + sum(filled)
    assert model.summary()["parameters"] > 1_200_000  # SqueezeNet 1.1 has about 1.24 million


def test_the_inspector_tags_a_weight_as_weight_and_its_int64_shape_as_constant() -> None:
    model = load_model(LIGHT_MODELS / "light_squeezenet.onnx")
    conv = next(node for node in model.graph.nodes if node.op_type == "Conv")
    fill = model.graph.nodes[model.graph.producer[conv.inputs[1]]]
    assert _tensor_text(model, conv.inputs[1]) == "[64, 3, 3, 3] float32  (weight)"
    assert _tensor_text(model, fill.inputs[0]) == "[4] int64  (constant)"
    assert _tensor_text(model, conv.inputs[0]).endswith("float32")
