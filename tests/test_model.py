"""Loading real models, and the one-line reason for each kind of unusable file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import light_model, save, small_cnn
from q8studio.core.errors import Q8Error
from q8studio.core.model import load_model, namespace_of
from q8studio.core.refusals import quantize_refusal, require_float_tensors
from q8studio.core.session import cpu_session


def test_small_cnn_graph_structure(cnn_path: Path) -> None:
    model = load_model(cnn_path)
    graph = model.graph
    assert [n.op_type for n in graph.nodes][:3] == ["Conv", "BatchNormalization", "Relu"]
    assert graph.inputs == ["x"] and graph.outputs == ["logits"]
    # shape inference reached the intermediate tensors
    assert graph.tensors["pool"].shape == ("N", 8, 8, 8)
    assert graph.tensors["stem.w"].is_initializer
    # the residual Add joins the stem and the pointwise conv
    add = graph.node_by_name("/block/Add")
    producers = {graph.nodes[graph.producer[t]].name for t in add.inputs}
    assert producers == {"/block/pw/Conv", "/stem/Relu"}
    assert (graph.producer["stem_relu"], add.index, "stem_relu") in graph.edges()
    quantizable = {n.name for n in model.quantizable_nodes()}
    assert {"/stem/Conv", "/block/dw/Conv", "/head/fc/Gemm", "/block/Add"} <= quantizable
    assert graph.node_by_name("/block/dw/Conv").namespace == ("block", "dw")
    assert graph.node_by_name("/stem/bn/BatchNormalization").kind == "normalisation"


def test_summary_counts_parameters_and_ops(cnn_path: Path) -> None:
    summary = load_model(cnn_path).summary()
    expected_params = sum(int(np.prod(t.dims)) for t in small_cnn().graph.initializer)
    assert summary["parameters"] == expected_params
    assert summary["ops"]["Conv"] == 3 and summary["ops"]["Relu"] == 3
    assert summary["inputs"] == [{"name": "x", "shape": ["N", 3, 16, 16], "dtype": "float32"}]


def test_unnamed_nodes_get_unique_names(tmp_path: Path) -> None:
    proto = small_cnn()
    for node in proto.graph.node:
        node.name = ""
    names = [n.name for n in load_model(save(proto, tmp_path / "m.onnx")).graph.nodes]
    assert len(set(names)) == len(names) and names[0] == "Conv_0"


def test_made_up_names_never_take_an_exporter_given_name(tmp_path: Path) -> None:
    """Node 1 (a BatchNormalization) is unnamed and would become 'BatchNormalization_1', the name the
    exporter gave node 2; node 3 repeats node 2's name."""
    proto = small_cnn()
    nodes = proto.graph.node
    nodes[1].name, nodes[2].name, nodes[3].name = "", "BatchNormalization_1", "BatchNormalization_1"
    model = load_model(save(proto, tmp_path / "m.onnx"))
    names = [n.name for n in model.graph.nodes]
    assert len(set(names)) == len(names)
    assert names[1:4] == ["BatchNormalization_1_1", "BatchNormalization_1", "Conv_3"]
    cpu_session(model.proto)  # ONNX Runtime refuses two nodes of one name


def test_namespace_of_exporter_names() -> None:
    assert namespace_of("/encoder/layer.3/attention/MatMul") == ("encoder", "layer.3", "attention")
    assert namespace_of("Conv_12") == ()


def test_real_architecture_from_onnx_package(tmp_path: Path) -> None:
    model = load_model(save(light_model("squeezenet"), tmp_path / "squeezenet.onnx"))
    assert model.opset == 9
    assert model.summary()["ops"]["Conv"] == 26
    assert model.graph.tensors[model.graph.inputs[0]].shape == (1, 3, 224, 224)


def test_external_data_model_loads(tmp_path: Path) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(small_cnn(), str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    model = load_model(path)
    assert model.weight("stem.w").shape == (8, 3, 3, 3)
    assert model.file_size > path.stat().st_size  # the external file counts


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.onnx", "No such file"),
        (lambda d: d, "is not a file"),
        (lambda d: _write(d / "empty.onnx", b""), "is empty"),
        (lambda d: _write(d / "notes.onnx", b"hello, I am a text file\n" * 20), "not an ONNX model"),
        (lambda d: _write(d / "cut.onnx", small_cnn().SerializeToString()[:900]), "truncated"),
        (lambda d: save(_with_opset(small_cnn(), 99), d / "new.onnx"),
         rf"^new.onnx uses ONNX opset 99, newer than the newest this installation knows "
         rf"\({onnx.defs.onnx_opset_version()}\)"),
    ],
    ids=["missing", "directory", "empty", "text", "truncated", "opset-too-new"],
)
def test_bad_files_give_one_line_reasons(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(Q8Error, match=message) as info:
        load_model(make(tmp_path))
    assert "\n" not in str(info.value)


def _with_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    next(entry for entry in model.opset_import if entry.domain in ("", "ai.onnx")).version = version
    return model


def _cut_weight(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.raw_data = tensor.raw_data[: len(tensor.raw_data) // 2]
    return model


def _unknown_op(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.node[2].op_type = "NoSuchOp"
    return model


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: _unknown_op(small_cnn()), "not a valid ONNX model: No Op registered for NoSuchOp"),
        (lambda: _cut_weight(small_cnn(channels=32), "stem.w"),
         r"not a valid ONNX model: weight 'stem.w' holds 432 values where its shape \[32, 3, 3, 3\] needs 864"),
        (lambda: _cut_weight(small_cnn(channels=32), "bn.scale"), "not a valid ONNX model: .*raw_data size"),
    ],
    ids=["unknown-op", "large-weight-cut", "small-weight-cut"],
)
def test_invalid_models_give_one_line_reasons(tmp_path: Path, make, message: str) -> None:
    """The checker sees the skeleton; large weights' sizes are checked apart, with the same outcome."""
    path = tmp_path / "bad.onnx"
    path.write_bytes(make().SerializeToString())
    with pytest.raises(Q8Error, match=message) as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_shapes_inferred_on_the_skeleton_are_those_of_the_whole_model(tmp_path: Path) -> None:
    source = light_model("inception_v1")
    whole = onnx.shape_inference.infer_shapes(source, check_type=False, strict_mode=False, data_prop=True)
    model = load_model(save(source, tmp_path / "inception.onnx"))
    assert len(model.proto.graph.value_info) > 100
    assert [v.SerializeToString() for v in model.proto.graph.value_info] == [
        v.SerializeToString() for v in whole.graph.value_info
    ]


def test_missing_external_data_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(small_cnn(), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(Q8Error, match="external data file 'weights.bin'"):
        load_model(path)


def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    """onnx refuses a location that leaves the model's folder; that is the user's file, not our bug."""
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "ext.onnx"
    onnx.save(small_cnn(), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    (folder / "weights.bin").rename(tmp_path / "weights.bin")
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    onnx.save(proto, str(path))
    with pytest.raises(Q8Error, match="^Could not read the external data of ext.onnx: .*outside"):
        load_model(path)


def test_model_without_float_tensors_cannot_be_quantized(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"], name="add")], "ints",
        [helper.make_tensor_value_info(n, TensorProto.INT32, [4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [4])],
    )
    model = load_model(save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "i.onnx"))
    with pytest.raises(Q8Error, match="no float tensors to quantize"):
        require_float_tensors(model)


def test_an_already_quantized_model_is_refused_before_any_data_is_chosen(demo_int8_path: Path) -> None:
    """What the window shows as soon as such a model opens, and what quantizing it raises."""
    model = load_model(demo_int8_path)
    refusal = quantize_refusal(model)
    assert model.is_quantized and refusal is not None
    assert refusal.startswith(f"demo.int8.onnx is already quantized ({len(model.int8_nodes())} int8 operators such as ")
    assert refusal.endswith("; quantize its float model instead.")
    with pytest.raises(Q8Error) as raised:
        require_float_tensors(model)
    assert str(raised.value) == refusal
    assert model.quantizable_nodes() == [] and any(n.quantizable for n in model.graph.nodes)
    assert model.summary()["already_quantized"] is True and model.summary()["quantizable_nodes"] == []
    float_model = load_model(save(small_cnn(), demo_int8_path.parent / "float.onnx"))
    assert quantize_refusal(float_model) is None and not float_model.is_quantized
    assert float_model.quantizable_nodes() and float_model.summary()["already_quantized"] is False


@pytest.mark.parametrize("dtype, elem_type, message", [
    (np.float16, TensorProto.FLOAT16, "stores weights in FLOAT16"), (np.float64, TensorProto.DOUBLE, "computes in float64")])
def test_a_model_in_another_float_type_is_refused_for_quantization(tmp_path: Path, dtype, elem_type, message) -> None:
    """onnxruntime's quantizer would cast float16 weights at run time and quantize them as activations,
    and leave float64 layers in float: neither gives an int8 model."""
    proto = small_cnn()
    for tensor in proto.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(dtype), tensor.name))
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        value.type.tensor_type.elem_type = elem_type
    model = load_model(save(proto, tmp_path / "other.onnx"))
    with pytest.raises(Q8Error, match=f"^other.onnx {message}; .* convert it to float32 first"):
        require_float_tensors(model)
    values = [helper.make_tensor_value_info(tensor, elem_type, [2, 2]) for tensor in ("a", "b", "y")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "weightless", values[:2], values[2:])
    model = load_model(save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "mm.onnx"))
    with pytest.raises(Q8Error, match=f"^mm.onnx computes in {np.dtype(dtype).name}; .* convert it to float32"):
        require_float_tensors(model)


def test_a_float64_constant_in_a_float32_model_is_no_reason_to_refuse(tmp_path: Path) -> None:
    proto = small_cnn()
    proto.graph.initializer.append(numpy_helper.from_array(np.array(2.0), "unused_double"))
    require_float_tensors(load_model(save(proto, tmp_path / "full.onnx")))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
