"""Sessions get a model's large weights in memory, and give exactly what a serialized model gives."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import light_model, save, small_cnn, transformer_block, write_npz
from q8studio.__main__ import main
from q8studio.core.calibrate import tensors_to_calibrate
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import BatchRunner, cpu_session, runtime_error, session_options, with_outputs
from q8studio.core.skeleton import is_set_aside


@pytest.mark.parametrize("kind", ["squeezenet", "transformer"])
def test_a_session_with_weights_handed_over_computes_what_the_serialized_model_computes(kind, monkeypatch) -> None:
    """The transformer's embedding table and positional constant are read at every run, not packed
    into kernel buffers at load: the session must own copies of what it was handed."""
    rng = np.random.default_rng(0)
    if kind == "squeezenet":
        model, feed = light_model("squeezenet"), {"data_0": rng.random((1, 3, 224, 224), dtype=np.float32)}
    else:
        model, feed = transformer_block(), {"ids": rng.integers(0, 100, (2, 8))}
    names = tensors_to_calibrate(model)[:12]
    reference = ort.InferenceSession(
        with_outputs(model, names).SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(names, feed)

    parsed: list[onnx.ModelProto] = []
    real_session = ort.InferenceSession

    def recording_session(payload, *args, **kwargs):
        parsed.append(onnx.load_from_string(payload))
        return real_session(payload, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    session = cpu_session(model, outputs=names)
    [shell] = parsed
    assert sum(is_set_aside(t) for t in shell.graph.initializer) >= 4
    assert sum(len(t.raw_data) + len(t.float_data) for t in shell.graph.initializer if is_set_aside(t)) == 0
    del model, shell, parsed
    gc.collect()
    scribble = [np.full(1 << 16, 7.0, np.float32) for _ in range(64)]  # reuse freed memory
    for ours, theirs in zip(session.run(names, feed), reference, strict=True):
        assert np.array_equal(ours, theirs)
    del scribble


def test_a_model_onnx_runtime_refuses_gives_a_one_line_reason() -> None:
    model = light_model("squeezenet")
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(Q8Error, match="^ONNX Runtime cannot load the model: .*NoSuchOp") as raised:
        cpu_session(model)
    assert "\n" not in str(raised.value)
    assert "[ONNXRuntimeError]" not in str(raised.value) and raised.value.details.startswith("[ONNXRuntimeError] : ")


def token_embedding(path: Path) -> Path:
    """Float features plus token ids that index an embedding of 100 rows: ids out of range pass every
    check of the data and fail only once ONNX Runtime runs the Gather."""
    table = numpy_helper.from_array(np.ones((100, 16), np.float32), "table")
    weight = numpy_helper.from_array(np.eye(16, dtype=np.float32), "w")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["embedded"], name="gather"),
             helper.make_node("MatMul", ["x", "w"], ["projected"], name="mm"),
             helper.make_node("Add", ["embedded", "projected"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "ids", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16]),
                                             helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])], [table, weight])
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


GATHER_FAILED = "ONNX Runtime could not run ids.onnx on this data: its Gather node 'gather' failed (indices element "


def test_a_run_onnx_runtime_refuses_names_the_model_and_node_and_folds_its_message_away(tmp_path: Path) -> None:
    model = load_model(token_embedding(tmp_path / "ids.onnx"))
    runner = BatchRunner(model, cpu_session(model.proto))
    with pytest.raises(Q8Error) as raised:
        runner.run(None, {"x": np.zeros((1, 16), np.float32), "ids": np.full(1, 500, np.int64)})
    message, details = str(raised.value), raised.value.details
    assert message.startswith(GATHER_FAILED) and "idx=500" in message and message.endswith("]).")
    assert "\n" not in message and "[ONNXRuntimeError]" not in message and "Status Message" not in message
    assert details.startswith("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : ") and "Name:'gather'" in details


def test_the_command_line_says_a_run_onnx_runtime_refuses_in_one_clean_line(tmp_path: Path, capfd) -> None:
    model = token_embedding(tmp_path / "ids.onnx")
    data = write_npz(tmp_path / "ids.npz", x=np.zeros((8, 16), np.float32), ids=np.full(8, 500, np.int64))
    assert main(["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "ids.int8.onnx")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("q8studio: error: " + GATHER_FAILED) and err.count("\n") == 1, err
    assert "[ONNXRuntimeError]" not in err


@pytest.mark.parametrize("raised, expected", [
    ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. Name:'rs' Status "
     "Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:84 onnxruntime::Reshape"
     "Helper::ReshapeHelper(const onnxruntime::TensorShape&) size != 0 && (input_shape_size % size) == 0 was false. "
     "The input tensor cannot be reshaped to the requested shape. Input shape:{1,16}, requested shape:{5,-1}\n",
     "Failed: its Reshape node 'rs' failed (The input tensor cannot be reshaped to the requested shape. "
     "Input shape:{1,16}, requested shape:{5,-1})."),
    ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running MatMul node. Name:'mm' Status "
     "Message: matmul_helper.h:59 Compute MatMul dimension mismatch",
     "Failed: its MatMul node 'mm' failed (Compute MatMul dimension mismatch)."),
    ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x for the following indices\n "
     "index: 0 Got: 2 Expected: 1\n Please fix either the inputs/outputs or the model.",
     "Failed: Got invalid dimensions for input: x for the following indices index: 0 Got: 2 Expected: 1"),
])
def test_onnx_runtimes_status_and_source_lines_go_to_the_details(raised: str, expected: str) -> None:
    """Messages as ONNX Runtime 1.x words them; none reaches the user's sentence with its codes."""
    error = runtime_error("Failed", RuntimeError(raised))
    assert str(error) == expected and error.details == raised.strip()


def test_a_message_with_nothing_to_explain_has_no_details() -> None:
    error = runtime_error("Failed", ValueError("Required inputs (['x']) are missing from input feed (['y'])."))
    assert str(error) == "Failed: Required inputs (['x']) are missing from input feed (['y'])." and error.details == ""


def test_an_int8_models_quantized_weights_are_handed_over_and_shaped_like_the_whole_model(tmp_path) -> None:
    """8-bit weights (what DequantizeLinear reads in a QDQ model) are set aside like float ones:
    the session computes what ONNX Runtime computes from the file, and shape inference on the
    skeleton types every tensor as it does on the whole model."""
    rng = np.random.default_rng(3)
    source = load_model(save(small_cnn(channels=64), tmp_path / "cnn.onnx"))
    data = load_data(write_npz(tmp_path / "x.npz", x=rng.standard_normal((8, 3, 16, 16)).astype(np.float32)), source)
    path = tmp_path / "cnn.int8.onnx"
    quantize_model(source, data, Recipe(granularity="per-channel"), path)
    whole = onnx.load(str(path))
    assert sum(t.data_type == onnx.TensorProto.INT8 and is_set_aside(t) for t in whole.graph.initializer) >= 2

    feed = data.first_sample()
    from_file = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    loaded = load_model(path)
    for ours, theirs in zip(cpu_session(loaded.proto).run(None, feed), from_file, strict=True):
        assert np.array_equal(ours, theirs)

    inferred = onnx.shape_inference.infer_shapes(whole, check_type=False, strict_mode=False, data_prop=True).graph
    assert sorted(v.SerializeToString() for v in loaded.proto.graph.value_info) == sorted(
        v.SerializeToString() for v in inferred.value_info
    )


def _config(options: ort.SessionOptions, key: str) -> str | None:
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # ONNX Runtime's default applies
        return None


@pytest.mark.parametrize(
    ("spinning", "allow_spinning", "stop_after_run"),
    [("always", None, None), ("within-runs", None, "1"), ("never", "0", None)],
)
def test_each_spinning_policy_sets_the_onnxruntime_options_it_names(spinning, allow_spinning, stop_after_run) -> None:
    options = session_options(threads=2, spinning=spinning)
    assert _config(options, "session.intra_op.allow_spinning") == allow_spinning
    assert _config(options, "session.force_spinning_stop") == stop_after_run
    assert options.intra_op_num_threads == 2
