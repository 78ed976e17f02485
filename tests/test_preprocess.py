"""Pre-processing gives onnxruntime's model, and only onnxruntime's optimiser handles the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

from builders import LIGHT_MODELS, light_model, save, small_cnn, write_npz
from q8studio.core.data import load_data
from q8studio.core.model import load_model
from q8studio.core import preprocess
from q8studio.core.preprocess import prepare_for_quantization
from q8studio.core.profile import profile_models
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import cpu_session
from q8studio.core.skeleton import is_set_aside


def _serialized(values) -> list[bytes]:
    return [value.SerializeToString() for value in values]


def _types(model: onnx.ModelProto) -> dict[str, bytes]:
    """Every typed tensor's type, whether recorded as value_info or as a graph output."""
    return {v.name: v.type.SerializeToString() for v in [*model.graph.value_info, *model.graph.output]}



def test_when_graph_optimisation_fails_the_upgraded_model_is_quantized_as_it_is(tmp_path: Path, monkeypatch) -> None:
    """The skeleton's result and the source's weights come back together as one whole model."""

    def refuse(split):
        raise RuntimeError("optimiser refused")

    monkeypatch.setattr(preprocess, "_optimised", refuse)
    source = small_cnn(opset=9, channels=32)
    prepared = prepare_for_quantization(load_model(save(source, tmp_path / "cnn.onnx")), per_channel=True)
    assert "Pre-processing with graph optimisation failed (optimiser refused)." in prepared.notes
    assert "Quantizing the model without graph optimisation." in prepared.notes
    upgraded = onnx.version_converter.convert_version(source, 13)
    model = prepared.model.proto
    assert _serialized(model.graph.node) == _serialized(upgraded.graph.node)  # BatchNorm still there
    assert {t.name: t.SerializeToString() for t in model.graph.initializer} == {
        t.name: t.SerializeToString() for t in upgraded.graph.initializer
    }
    onnx.checker.check_model(model)

SYMPY_MISSING = ("sympy is required for symbolic shape inference in quantization preprocessing. Install with: "
                 "'pip install sympy' or pass skip_symbolic_shape=True to quant_pre_process.")


@pytest.mark.parametrize("message, quoted", [
    (SYMPY_MISSING, SYMPY_MISSING[:SYMPY_MISSING.index(" quant_pre_process")] + "…"),
    ("x" * 300, "x" * 159 + "…"),
    ("a " * 79 + "bc", "a " * 79 + "bc"),
    ("a " * 79 + "b cd", "a " * 79 + "b…"),  # the space just past the room: "b" is whole
], ids=["cut-between-words", "one-long-word", "fits", "cut-at-a-space"])
def test_a_long_library_message_is_cut_between_words_and_marked(tmp_path: Path, monkeypatch, message: str,
                                                                 quoted: str) -> None:
    """onnxruntime's advice without sympy is longer than a note quotes; it used to end in 'quant_pre_pr'."""

    def refuse(split):
        raise RuntimeError(message)

    monkeypatch.setattr(preprocess, "_optimised", refuse)
    prepared = prepare_for_quantization(load_model(save(small_cnn(), tmp_path / "cnn.onnx")), per_channel=False)
    assert f"Pre-processing with graph optimisation failed ({quoted})." in prepared.notes
    assert len(quoted) <= 160


def test_the_prepared_model_is_onnxruntimes_pre_processing_of_the_upgraded_model(tmp_path: Path) -> None:
    source = small_cnn(opset=9, channels=32)
    prepared = prepare_for_quantization(load_model(save(source, tmp_path / "cnn.onnx")), per_channel=True)
    upgraded = save(onnx.version_converter.convert_version(source, 13), tmp_path / "cnn13.onnx")
    quant_pre_process(str(upgraded), str(tmp_path / "reference.onnx"))
    reference = onnx.load(str(tmp_path / "reference.onnx"))
    model = prepared.model.proto
    assert _serialized(model.graph.node) == _serialized(reference.graph.node)
    assert {t.name: t.SerializeToString() for t in model.graph.initializer} == {
        t.name: t.SerializeToString() for t in reference.graph.initializer
    }
    assert _types(model) == _types(reference)
    tags = {prop.key: prop.value for prop in model.metadata_props}
    assert tags["onnx.quant.pre_process"] == "onnxruntime.quant"  # tagged as pre-processed, as onnxruntime does
    assert [n.op_type for n in model.graph.node][:2] == ["Conv", "Relu"]  # BatchNorm folded into the weights
    assert "onnxruntime's pre-processing upgraded the opset from 9 to 11." in prepared.notes
    assert "Upgraded the opset from 11 to 13 (per-channel DequantizeLinear needs it)." in prepared.notes


def test_passes_that_read_no_weight_values_never_see_the_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SqueezeNet at opset 9 takes every such pass: the upgrade to 11 then 13, symbolic shape
    inference (ONNX cannot shape its Dropout), and ONNX shape inference of the result."""
    seen: dict[str, list[int]] = {"convert_version": [], "symbolic": [], "infer_shapes": []}

    def recording(kind: str, function):
        def record(model: onnx.ModelProto, *args, **kwargs):
            seen[kind].append(sum(is_set_aside(t) for t in model.graph.initializer))
            return function(model, *args, **kwargs)
        return record

    monkeypatch.setattr(onnx.version_converter, "convert_version",
                        recording("convert_version", onnx.version_converter.convert_version))
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", recording("infer_shapes", onnx.shape_inference.infer_shapes))
    monkeypatch.setattr(SymbolicShapeInference, "infer_shapes",
                        staticmethod(recording("symbolic", SymbolicShapeInference.infer_shapes)))
    model = load_model(save(light_model("squeezenet"), tmp_path / "squeezenet.onnx"))
    prepared = prepare_for_quantization(model, per_channel=True)
    assert "Pre-processed with symbolic shape inference, graph optimisation." in prepared.notes
    assert len(seen["convert_version"]) == 2 and seen["symbolic"] and len(seen["infer_shapes"]) >= 3
    assert {count for counts in seen.values() for count in counts} == {0}
    weights = [t.name for t in model.proto.graph.initializer if is_set_aside(t)]
    assert len(weights) > 26 and sorted(weights) == sorted(t.name for t in prepared.model.proto.graph.initializer if is_set_aside(t))


def test_the_optimiser_gets_the_weights_in_memory_not_serialized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ResNet-50's 102 MB of weights reach ONNX Runtime's optimiser as external initializers; the
    model it parses holds references only, and the folded result holds every value."""
    import q8studio.core.preprocess as preprocess

    parsed: list[onnx.ModelProto] = []
    real_session = preprocess.ort.InferenceSession

    def recording_session(payload, options, **kwargs):
        parsed.append(onnx.load_from_string(payload))
        return real_session(payload, options, **kwargs)

    monkeypatch.setattr(preprocess.ort, "InferenceSession", recording_session)
    model = load_model(save(light_model("resnet50"), tmp_path / "resnet50.onnx"))
    prepared = prepare_for_quantization(model, per_channel=False)
    [shell] = parsed
    references = [t for t in shell.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert len(references) > 50 and not any(t.raw_data or t.float_data for t in references)
    assert shell.ByteSize() < 200_000
    assert "Folded 53 BatchNormalization node(s) into the preceding layers." in prepared.notes
    result = prepared.model.proto
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in result.graph.initializer)
    assert sum(numpy_helper.to_array(t).size for t in result.graph.initializer) > 25_000_000


def _projection_then_add(second: str) -> onnx.ModelProto:
    """x @ w, then + ``second``: "r" another input (a residual join) or "b" a constant bias."""
    rng = np.random.default_rng(0)
    values = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", 8]) for name in ("x", "r", "y")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Add", [second, "h"], ["y"], name="join")],
        "projection", values[:2], values[2:],
        [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in (("w", (8, 8)), ("b", (8,)))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_matmul_and_an_add_joining_another_activation_stay_apart_and_become_int8(tmp_path: Path) -> None:
    """ONNX Runtime's optimiser fuses them into a Gemm whose C is an activation, which the quantizer
    leaves in float; a constant bias is still fused into the Gemm, as onnxruntime's pre-processing does."""
    model = load_model(save(_projection_then_add("r"), tmp_path / "residual.onnx"))
    prepared = prepare_for_quantization(model, per_channel=False)
    assert [(n.op_type, n.name, list(n.input)) for n in prepared.model.proto.graph.node] == [
        ("MatMul", "mm", ["x", "w"]), ("Add", "join", ["r", "h"])]
    assert any("Kept 1 MatMul and Add pair(s) apart" in note for note in prepared.notes)
    rng = np.random.default_rng(1)
    data = load_data(write_npz(tmp_path / "d.npz", **{name: rng.standard_normal((8, 8)).astype(np.float32) for name in "xr"}), model)
    result = quantize_model(model, data, Recipe(), tmp_path / "q.onnx")
    assert result.float_nodes == []
    assert profile_models(model, result.int8, data, runs=2).integer_mac_share == 1.0

    biased = prepare_for_quantization(load_model(save(_projection_then_add("b"), tmp_path / "bias.onnx")), per_channel=False)
    assert [(n.op_type, n.name) for n in biased.model.proto.graph.node] == [("Gemm", "mm/MatMulAddFusion")]


def test_constants_the_opset_upgrade_adds_leave_no_graph_input_behind() -> None:
    """DenseNet-121 of onnx's test data is IR 3 at opset 9: raising it to 13 gives each Unsqueeze a
    Constant for its axes, the optimiser folds them, and IR 3 had listed them as graph inputs. Left
    there, ONNX Runtime required 241 of them in every feed and calibration failed."""
    model = load_model(LIGHT_MODELS / "light_densenet121.onnx")
    prepared = prepare_for_quantization(model, per_channel=True).model
    assert [spec.name for spec in prepared.input_specs()] == [spec.name for spec in model.input_specs()] == ["data_0"]
    assert {vi.name for vi in prepared.proto.graph.input} == {"data_0"}


def _scaled_gemms() -> onnx.ModelProto:
    """x[N,6] -> Gemm(alpha 0.5, beta 2, transB) -> Relu -> Gemm(beta 3, no C) -> y[N,4]."""
    rng = np.random.default_rng(5)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w1", (8, 6)), ("c1", (8,)), ("w2", (8, 4)))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "c1"], ["h"], name="fc1", alpha=0.5, beta=2.0, transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2"], ["y"], name="fc2", beta=3.0)]
    graph = helper.make_graph(nodes, "scaled", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_gemms_alpha_and_beta_are_folded_so_the_int8_model_computes_the_same_function(tmp_path: Path) -> None:
    """onnxruntime's quantizer sets beta to 1 and keeps the bias unscaled: 6.7 dB before this fold."""
    model = load_model(save(_scaled_gemms(), tmp_path / "scaled.onnx"))
    x = np.random.default_rng(6).standard_normal((64, 6)).astype(np.float32)
    data = load_data(write_npz(tmp_path / "x.npz", x=x), model)
    prepared = prepare_for_quantization(model, per_channel=False)
    for node in prepared.model.graph.nodes:
        if node.op_type == "Gemm":
            assert node.attributes.get("alpha", 1.0) == 1.0 and node.attributes.get("beta", 1.0) == 1.0, node.name
    assert any("Folded alpha and beta of 2 Gemm" in note for note in prepared.notes)
    float_y = cpu_session(model.proto).run(None, {"x": x})[0]
    np.testing.assert_allclose(cpu_session(prepared.model.proto).run(None, {"x": x})[0], float_y, rtol=1e-5, atol=1e-5)
    result = quantize_model(model, data, Recipe(), tmp_path / "scaled.int8.onnx")
    int8_y = cpu_session(result.int8.proto).run(None, {"x": x})[0]
    sqnr = 10 * np.log10(np.sum(float_y**2) / np.sum((float_y - int8_y) ** 2))
    assert sqnr > 30, sqnr


def test_the_int8_model_declares_the_operator_sets_its_source_declared_and_no_more(tmp_path: Path) -> None:
    """ONNX Runtime's optimiser saved eight more (ai.onnx.ml, com.microsoft.nchwc, org.pytorch.aten, ...) that no
    node used, and the int8 model kept them all."""
    source = small_cnn()
    source.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))  # unused, but the source's own: kept
    model = load_model(save(source, tmp_path / "cnn.onnx"))
    data = load_data(write_npz(tmp_path / "d.npz", x=np.random.default_rng(2).standard_normal((4, 3, 16, 16))
                               .astype(np.float32)), model)
    quantize_model(model, data, Recipe(granularity="per-channel"), tmp_path / "q.onnx")
    int8 = onnx.load(str(tmp_path / "q.onnx"))
    assert sorted((opset.domain, opset.version) for opset in int8.opset_import) == [("", 13), ("ai.onnx.ml", 3)]
