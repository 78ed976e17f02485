"""Sessions get a model's large weights in memory, and give exactly what a serialized model gives."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from builders import light_model, save, small_cnn, transformer_block, write_npz
from q8studio.core.calibrate import tensors_to_calibrate
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import cpu_session, session_options, with_outputs
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
