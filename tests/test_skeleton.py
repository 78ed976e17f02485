"""Whole-model passes run on the skeleton give what they give on the whole model, which they never touch."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from builders import light_model, small_cnn
from q8studio.core.skeleton import SET_ASIDE_MIN_BYTES, save_with_weights_beside, skeleton_of, transformed


def _initializers(model: onnx.ModelProto) -> dict[str, bytes]:
    return {tensor.name: tensor.SerializeToString() for tensor in model.graph.initializer}


def _serialized(values) -> list[bytes]:
    return [value.SerializeToString() for value in values]


def test_large_float_weights_become_inputs_of_their_type_and_shape() -> None:
    model = light_model("squeezenet")
    before = model.SerializeToString()
    skeleton = skeleton_of(model)
    assert model.SerializeToString() == before
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    stand_ins = {value.name: value for value in skeleton.graph.input[len(model.graph.input):]}
    kept = {tensor.name for tensor in skeleton.graph.initializer}
    assert stand_ins and kept and stand_ins.keys() | kept == weights.keys() and not stand_ins.keys() & kept
    for name, value in stand_ins.items():
        tensor = value.type.tensor_type
        assert tensor.elem_type == weights[name].data_type == onnx.TensorProto.FLOAT
        assert [d.dim_value for d in tensor.shape.dim] == list(weights[name].dims)
        assert numpy_helper.to_array(weights[name]).nbytes >= SET_ASIDE_MIN_BYTES
    assert all(numpy_helper.to_array(weights[name]).nbytes < SET_ASIDE_MIN_BYTES for name in kept)
    assert _serialized(skeleton.graph.node) == _serialized(model.graph.node)
    assert skeleton.ByteSize() < model.ByteSize() / 50


def test_integer_initializers_stay_whatever_their_size() -> None:
    """Passes read integer tensors' values (shapes, indices): those never leave the skeleton."""
    indices = numpy_helper.from_array(np.arange(1024, dtype=np.int64), "indices")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "indices"], ["y"])], "gather",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2048])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1024])], [indices],
    )
    skeleton = skeleton_of(helper.make_model(graph))
    assert [t.name for t in skeleton.graph.initializer] == ["indices"] and len(skeleton.graph.input) == 1


def test_a_pass_on_the_skeleton_gives_the_whole_models_result() -> None:
    model = light_model("squeezenet")  # opset 9
    before = model.SerializeToString()
    direct = onnx.version_converter.convert_version(model, 13)
    split = transformed(model, lambda skeleton: onnx.version_converter.convert_version(skeleton, 13))
    assert model.SerializeToString() == before
    assert split.weights and sum(len(t.raw_data) + len(t.float_data) for t in split.shell.graph.initializer) < 8_000
    via_skeleton = split.assembled()
    assert _serialized(via_skeleton.graph.node) == _serialized(direct.graph.node)
    assert _initializers(via_skeleton) == _initializers(direct)
    assert _serialized(via_skeleton.graph.input) == _serialized(direct.graph.input)
    assert _serialized(via_skeleton.opset_import) == _serialized(direct.opset_import)
    onnx.checker.check_model(via_skeleton)


def test_weights_listed_among_the_inputs_stay_listed() -> None:
    """IR version 3 required every initializer to be a graph input too; such a model comes back as it was."""
    model = small_cnn(channels=32)
    model.graph.input.extend(
        helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in model.graph.initializer
    )
    model.ir_version = 3
    skeleton = skeleton_of(model)
    assert len(skeleton.graph.input) == len(model.graph.input)
    assert len(skeleton.graph.initializer) < len(model.graph.initializer)
    result = transformed(model, lambda skeleton: skeleton).assembled()
    assert _serialized(result.graph.input) == _serialized(model.graph.input)
    assert _initializers(result) == _initializers(model)


def test_a_model_saved_with_its_weights_beside_loads_back_whole(tmp_path) -> None:
    model = small_cnn(channels=32)
    big = np.arange(600, dtype=np.float32).reshape(20, 30)
    model.graph.initializer.append(numpy_helper.from_array(big, "unused_raw"))
    model.graph.initializer.append(helper.make_tensor("unused_listed", onnx.TensorProto.FLOAT, [20, 30], big.ravel().tolist()))
    before = model.SerializeToString()
    save_with_weights_beside(model, tmp_path / "m.onnx")
    assert model.SerializeToString() == before
    assert (tmp_path / "m.onnx").stat().st_size < 3_000 and (tmp_path / "m.onnx.weights").stat().st_size > 14_000
    loaded = onnx.load(str(tmp_path / "m.onnx"))
    assert _serialized(loaded.graph.node) == _serialized(model.graph.node)
    arrays = {t.name: numpy_helper.to_array(t) for t in loaded.graph.initializer}
    assert arrays.keys() == {t.name for t in model.graph.initializer}
    for tensor in model.graph.initializer:
        assert np.array_equal(arrays[tensor.name], numpy_helper.to_array(tensor))
