"""Per-channel weight scales handed to onnxruntime's quantizer: the model it writes must be the one
it writes when it computes them itself, bit for bit, on every kind of weight they are given for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import q8studio.core.quantize as quantize
from builders import light_model, small_cnn, transformer_block
from q8studio.core.model import LoadedModel, load_model, model_from_proto
from q8studio.core.preprocess import prepare_for_quantization
from q8studio.core.recipe import Recipe
from q8studio.core.weightscales import per_channel_weight_overrides, prequantized

PER_CHANNEL = Recipe(granularity="per-channel")


def odd_weights_model() -> onnx.ModelProto:
    """The weights whose axis or scale is easy to get wrong: a Gemm without transB (axis 1), a
    ConvTranspose (axis 1), a batched [2, K, N] MatMul weight (last axis), a channel of zeros and one
    so small that its scale underflows float32, and a weight two nodes share (left to the quantizer)."""
    rng = np.random.default_rng(3)
    conv_t = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    conv_t[:, 1] = 0.0  # a whole output channel of zeros
    conv_t[:, 2] = 1e-38  # its scale would be a float32 subnormal
    weights = {
        "gemm.w": rng.standard_normal((12, 8)).astype(np.float32),
        "convt.w": conv_t,
        "mm.w": rng.standard_normal((2, 6, 5)).astype(np.float32),
        "shared.w": rng.standard_normal((5, 5)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "gemm.w"], ["g"], name="gemm"),
        helper.make_node("Reshape", ["g", "shape4"], ["g4"], name="to_image"),
        helper.make_node("ConvTranspose", ["g4", "convt.w"], ["ct"], name="convt"),
        helper.make_node("Reshape", ["ct", "shape3"], ["ct3"], name="to_rows"),
        helper.make_node("MatMul", ["ct3", "mm.w"], ["m"], name="matmul"),
        helper.make_node("MatMul", ["m", "shared.w"], ["s1"], name="shared_1"),
        helper.make_node("MatMul", ["s1", "shared.w"], ["y"], name="shared_2"),
    ]
    constants = [numpy_helper.from_array(np.array([1, 4, 1, 2], np.int64), "shape4"),
                 numpy_helper.from_array(np.array([2, 3, 6], np.int64), "shape3")]
    graph = helper.make_graph(
        nodes, "odd_weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5])],
        [numpy_helper.from_array(w, name) for name, w in weights.items()] + constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convs_with_biases() -> onnx.ModelProto:
    """Two Convs with biases: "tiny.w" holds weights so small next to its bias that, at the input's
    scale times the weight's, the bias overflows int32 (onnxruntime widens that weight's scale);
    "plain.w" is an ordinary layer whose weight the model also returns as an output."""
    rng = np.random.default_rng(5)
    weights = {
        "plain.w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "plain.b": rng.standard_normal(4).astype(np.float32),
        "tiny.w": (rng.standard_normal((2, 4, 1, 1)) * 1e-6).astype(np.float32),
        "tiny.b": np.array([1e3, -0.5], dtype=np.float32),
    }
    nodes = [helper.make_node("Conv", ["x", "plain.w", "plain.b"], ["c"], name="plain"),
             helper.make_node("Conv", ["c", "tiny.w", "tiny.b"], ["y"], name="tiny")]
    graph = helper.make_graph(
        nodes, "convs_with_biases", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4]),
         helper.make_tensor_value_info("plain.w", TensorProto.FLOAT, [4, 3, 3, 3])],
        [numpy_helper.from_array(w, name) for name, w in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def loaded(model: onnx.ModelProto) -> LoadedModel:
    return model_from_proto(model, Path(f"{model.graph.name}.onnx"))


def written(model: LoadedModel, path: Path, weight_scales: dict[str, list[dict]]) -> onnx.ModelProto:
    quantize._write_qdq_model(model.proto, {}, PER_CHANNEL, path, weight_scales)  # activations: the placeholder range
    return onnx.load(str(path))


def assert_same_model(ours: onnx.ModelProto, theirs: onnx.ModelProto) -> None:
    def nodes(model: onnx.ModelProto) -> list[bytes]:
        return [node.SerializeToString() for node in model.graph.node]

    assert nodes(ours) == nodes(theirs)
    ours_init = {t.name: numpy_helper.to_array(t) for t in ours.graph.initializer}
    theirs_init = {t.name: numpy_helper.to_array(t) for t in theirs.graph.initializer}
    assert ours_init.keys() == theirs_init.keys()
    differing = [name for name in ours_init
                 if ours_init[name].dtype != theirs_init[name].dtype or not np.array_equal(ours_init[name], theirs_init[name])]
    assert not differing


@pytest.mark.parametrize("name", ["squeezenet", "resnet50", "inception_v1", "shufflenet",
                                  "small_cnn", "transformer", "odd_weights", "convs_with_biases"])
def test_handed_weights_write_the_model_the_quantizer_writes_alone(name: str, tmp_path: Path) -> None:
    built = {"small_cnn": small_cnn, "transformer": transformer_block, "odd_weights": odd_weights_model,
             "convs_with_biases": convs_with_biases}
    source = built[name]() if name in built else light_model(name)
    onnx.save(source, str(tmp_path / "source.onnx"))
    prepared = prepare_for_quantization(load_model(tmp_path / "source.onnx"), per_channel=True).model
    weight_scales = per_channel_weight_overrides(prepared)
    assert weight_scales  # the fast path is taken

    ours = written(prepared, tmp_path / "ours.onnx", weight_scales)
    assert_same_model(ours, written(prepared, tmp_path / "theirs.onnx", {}))


def test_scales_are_given_for_the_common_weights_alone() -> None:
    overrides = per_channel_weight_overrides(loaded(odd_weights_model()))
    assert set(overrides) == {"gemm.w", "convt.w", "mm.w"}  # not the shared one
    assert [len(overrides[name]) for name in ("gemm.w", "convt.w", "mm.w")] == [8, 3, 5]
    assert [overrides[name][0]["axis"] for name in ("gemm.w", "convt.w", "mm.w")] == [1, 1, 2]
    assert "axis" not in overrides["gemm.w"][1]
    assert set(per_channel_weight_overrides(loaded(odd_weights_model()), exclude={"gemm", "matmul"})) == {"convt.w"}


def test_a_scale_is_the_largest_magnitude_over_127_and_one_when_it_underflows() -> None:
    weight = np.array([[0.5, -1.27], [0.0, 0.0], [3e-39, 0.0], [2.54, 0.1]], dtype=np.float32)
    gemm = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="gemm", transB=1)], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [numpy_helper.from_array(weight, "w")],
    )
    channels = per_channel_weight_overrides(loaded(helper.make_model(gemm)))["w"]
    scales = np.array([channel["scale"] for channel in channels])
    assert scales.dtype == np.float32 and channels[0]["axis"] == 0
    np.testing.assert_array_equal(scales, np.float32([1.27 / 127, 1.0, 1.0, 2.54 / 127]))
    assert {int(channel["zero_point"]) for channel in channels} == {0}


def test_weights_are_handed_over_quantized_unless_the_quantizer_must_widen_their_scale() -> None:
    model = loaded(odd_weights_model())
    handed, left = prequantized(model.proto, per_channel_weight_overrides(model), {})
    dequantized = {node.input[0]: node.attribute[0].i for node in handed.graph.node if node.op_type == "DequantizeLinear"}
    assert dequantized == {"gemm.w_quantized": 1, "convt.w_quantized": 1, "mm.w_quantized": 2} and not left
    assert not {"gemm.w", "convt.w", "mm.w"} & {tensor.name for tensor in handed.graph.initializer}
    assert {node.name: list(node.input) for node in handed.graph.node}["gemm"][1] == "gemm.w_DequantizeLinear_Output"
    assert "gemm.w" in {tensor.name for tensor in model.proto.graph.initializer}  # the source is not touched

    model = loaded(convs_with_biases())
    overrides = per_channel_weight_overrides(model)
    assert set(overrides) == {"plain.w", "tiny.w"}
    # A weight the model returns, and one whose bias needs a wider scale, stay with the quantizer:
    assert set(prequantized(model.proto, overrides, {"c": 0.01})[1]) == {"plain.w", "tiny.w"}
    # with no range for its input, the quantizer widens nothing:
    assert set(prequantized(model.proto, overrides, {})[1]) == {"plain.w"}
