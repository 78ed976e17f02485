"""Float vs int8 comparison: the metrics' arithmetic and what the comparison reports on real models."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, with_argmax, write_npz
from q8studio.core.clipping import activation_range
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.cli.printing import print_comparison
from q8studio.core.evaluate import CLASS_IDS, NotMeasured, analyse_errors, compare_models, require_labels_fit
from q8studio.core.metrics import ErrorAccumulator, measure
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import cpu_session


def test_sqnr_db() -> None:
    ref = np.array([1.0, -1.0, 1.0, -1.0])
    assert measure(ref, ref + 0.1).sqnr_db == pytest.approx(20.0)
    assert measure(ref, ref).sqnr_db == math.inf
    assert measure(np.zeros(3), np.ones(3)).sqnr_db == -math.inf


def test_error_accumulator_matches_direct_formulas_across_batches() -> None:
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(10_000)
    approx = reference + rng.standard_normal(10_000) * 0.01
    acc = ErrorAccumulator()
    for part in np.array_split(np.arange(10_000), 7):
        acc.update(reference[part], approx[part])
    noise = reference - approx
    assert acc.sqnr_db == pytest.approx(10 * np.log10((reference**2).sum() / (noise**2).sum()))
    assert acc.mse == pytest.approx((noise**2).mean())
    cosine = reference @ approx / np.linalg.norm(reference) / np.linalg.norm(approx)
    assert acc.cosine == pytest.approx(cosine)
    assert acc.max_abs == pytest.approx(np.abs(noise).max())


def test_error_accumulator_on_float32_activations_is_as_exact_as_float64() -> None:
    """Activations arrive as float32; summing them in chunks must not cost the float64 accuracy."""
    rng = np.random.default_rng(1)
    reference = np.maximum(rng.standard_normal((4, 64, 56, 56)), 0).astype(np.float32)  # a ReLU output
    approx = (np.round(reference / 0.02) * 0.02).astype(np.float32)  # its quantize-dequantize
    acc = ErrorAccumulator()
    acc.update(reference[:3], approx[:3])
    acc.update(reference[3:], approx[3:])
    r, q = reference.astype(np.float64).ravel(), approx.astype(np.float64).ravel()
    assert acc.count == r.size
    assert acc.signal == pytest.approx(r @ r, rel=1e-6)
    assert acc.noise == pytest.approx((r - q) @ (r - q), rel=1e-6)
    assert acc.dot == pytest.approx(r @ q, rel=1e-6)
    assert acc.approx == pytest.approx(q @ q, rel=1e-6)
    assert acc.max_abs == pytest.approx(np.abs(r - q).max(), rel=1e-6)


def test_error_accumulator_survives_activations_beyond_float32_squares() -> None:
    """Untrained networks grow activations past 1e19, whose squares overflow float32."""
    reference = np.full(1000, 3e19, dtype=np.float32)
    approx = reference * np.float32(1.001)
    acc = ErrorAccumulator()
    acc.update(reference, approx)
    assert acc.sqnr_db == pytest.approx(60.0, abs=0.01) and acc.cosine == pytest.approx(1.0)
    assert math.isfinite(acc.mse)


def test_cosine_of_nearly_equal_tensors_stays_at_most_one() -> None:
    """Σr·q and √(Σr²·Σq²) round apart; a cosine above 1 reached the report."""
    reference = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    approx = reference.copy()
    approx[0] += 1e-3
    acc = ErrorAccumulator()
    acc.update(reference, approx)
    assert acc.dot / math.sqrt(acc.signal * acc.approx) > 1.0  # the rounding this guards against
    assert acc.cosine == 1.0

def _conv_head_model():
    """A classifier whose head is a convolution: logits shaped [N, 10, 1, 1], as in squeezenet."""
    w = numpy_helper.from_array(np.random.default_rng(2).standard_normal((10, 3, 4, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="head")], "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10, 1, 1])], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_agreement_and_accuracy_for_a_convolutional_head(tmp_path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 3, 4, 4)).astype(np.float32)
    float_model = load_model(save(_conv_head_model(), tmp_path / "head.onnx"))
    data = load_data(write_npz(tmp_path / "d.npz", x=x, labels=rng.integers(0, 10, 40)), float_model)
    quantize_model(float_model, data, Recipe(), tmp_path / "head.int8.onnx")
    comparison = compare_models(float_model, load_model(tmp_path / "head.int8.onnx"), data, latency_runs=3)
    errors = comparison.errors
    assert errors.agreement is not None and errors.agreement > 0.8
    session = cpu_session(float_model.proto)
    logits = np.concatenate([session.run(None, feed)[0] for feed in data.batches(8)]).reshape(40, 10)
    assert errors.float_top1 == pytest.approx(float((logits.argmax(1) == data.labels).mean()))
    assert comparison.float32.file_size == (tmp_path / "head.onnx").stat().st_size


@pytest.mark.parametrize("keepdims", [0, 1])
def test_class_id_output_gives_accuracy_and_agreement_and_no_output_error(tmp_path, keepdims: int) -> None:
    """An ArgMax output holds the predicted class: compared with the labels, not by SQNR."""
    assets = demo_assets()
    float_model = load_model(save(with_argmax(onnx.load(assets.model), keepdims), tmp_path / "argmax.onnx"))
    calibration = load_data(assets.calibration, float_model)
    quantize_model(float_model, calibration, Recipe(samples=64), tmp_path / "argmax.int8.onnx")
    int8_model = load_model(tmp_path / "argmax.int8.onnx")
    comparison = compare_models(float_model, int8_model, load_data(assets.test, float_model), latency_runs=1)

    test = np.load(assets.test)
    logits = ort.InferenceSession(str(assets.model)).run(None, {"image": test["image"]})[0]
    int8_ids = ort.InferenceSession(str(tmp_path / "argmax.int8.onnx")).run(None, {"image": test["image"]})[0]
    float_ids, int8_ids = logits.argmax(axis=1), int8_ids.reshape(-1)
    errors = comparison.errors
    assert errors.float_top1 == comparison.float32.top1 == pytest.approx(float((float_ids == test["labels"]).mean()))
    assert errors.int8_top1 == comparison.int8.top1 == pytest.approx(float((int8_ids == test["labels"]).mean()))
    assert errors.agreement == pytest.approx(float((float_ids == int8_ids).mean()))
    assert errors.float_top1 > 0.9
    assert errors.outputs == {"class_id": NotMeasured(CLASS_IDS)}
    output = comparison.to_dict()["outputs"]["class_id"]
    assert output["sqnr_db"] is None and output["not_applicable"] == CLASS_IDS


def test_minmax_skips_histograms_and_histogram_methods_need_them(cnn_path, cnn_data, tmp_path) -> None:
    model = load_model(cnn_path)
    data = load_data(cnn_data, model)
    result = quantize_model(model, data, Recipe(method="minmax"), tmp_path / "q.onnx")
    stats = next(iter(result.stats.values()))
    assert not stats.histogram and stats.hist.sum() == 0 and stats.count > 0
    with pytest.raises(Q8Error, match="needs a histogram"):
        activation_range(stats, "entropy")
    shown = quantize_model(model, data, Recipe(method="minmax"), tmp_path / "q2.onnx", histograms=True)
    assert next(iter(shown.stats.values())).hist.sum() > 0
    assert (tmp_path / "q.onnx").read_bytes() == (tmp_path / "q2.onnx").read_bytes()


def test_layer_errors_are_worst_first_and_cover_quantized_activations(cnn_path, cnn_data, tmp_path) -> None:
    model = load_model(cnn_path)
    data = load_data(cnn_data, model)
    result = quantize_model(model, data, Recipe(), tmp_path / "q.onnx")
    errors = analyse_errors(result.prepared.model, load_model(tmp_path / "q.onnx"), data)
    sqnrs = [layer.sqnr_db for layer in errors.layers]
    assert sqnrs == sorted(sqnrs) and len(sqnrs) >= 5
    assert {"stem_relu", "gap"} <= {layer.tensor for layer in errors.layers}
    assert all(0.9 < layer.cosine <= 1.0 for layer in errors.layers)


def test_each_model_input_row_carries_the_input_name(tmp_path) -> None:
    """A model with two inputs had two per-layer rows called "(input)", which could not be told apart."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(4, 4)).astype(np.float32), f"w{i}") for i in (0, 1)]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w0"], ["ma"], name="ma"), helper.make_node("MatMul", ["b", "w1"], ["mb"], name="mb"),
         helper.make_node("Add", ["ma", "mb"], ["y"], name="sum")],
        "two_inputs",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 4]) for name in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        weights,
    )
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "two.onnx")
    model = load_model(path)
    data = load_data(write_npz(tmp_path / "d.npz", a=rng.normal(size=(32, 4)).astype(np.float32),
                               b=rng.normal(size=(32, 4)).astype(np.float32)), model)
    result = quantize_model(model, data, Recipe(), tmp_path / "two.int8.onnx")
    layers = analyse_errors(model, result.int8, data).layers
    inputs = {row.node: row.tensor for row in layers if row.op_type == "Input"}
    assert inputs == {"a": "a", "b": "b"}


def _features_then_logits(argmax: bool = False) -> onnx.ModelProto:
    """Outputs an embedding feat [N, 16] first, then the class logits [N, 4] (or their ArgMax class ids)."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["feat"], name="relu"),
             helper.make_node("Gemm", ["feat", "w2", "b2"], ["logits"], name="fc2", transB=1)]
    scores = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])
    if argmax:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["class_id"], name="argmax", axis=1, keepdims=0))
        scores = helper.make_tensor_value_info("class_id", TensorProto.INT64, ["N"])
    weights = [numpy_helper.from_array(array.astype(np.float32), name) for name, array in (
        ("w1", rng.normal(0, 0.5, (16, 8))), ("b1", rng.normal(0, 0.1, 16)),
        ("w2", rng.normal(0, 0.5, (4, 16))), ("b2", rng.normal(0, 0.1, 4)))]
    graph = helper.make_graph(
        nodes, "features_then_logits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["N", 16]), scores], weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("argmax", [False, True])
def test_top1_is_scored_on_the_output_that_classifies_the_labels(tmp_path, capsys, argmax: bool) -> None:
    """Features listed before the logits were scored against the labels: 1.5% where the truth is 100%."""
    path = save(_features_then_logits(argmax), tmp_path / "two.onnx")
    x = np.random.default_rng(4).normal(0, 1, (200, 8)).astype(np.float32)
    logits = ort.InferenceSession(_features_then_logits().SerializeToString()).run(["logits"], {"x": x})[0]
    float_model = load_model(path)
    data = load_data(write_npz(tmp_path / "d.npz", x=x, labels=logits.argmax(1)), float_model)
    int8 = quantize_model(float_model, data, Recipe(), tmp_path / "two.int8.onnx").int8
    comparison = compare_models(float_model, int8, data, latency_runs=1)

    scored = "class_id" if argmax else "logits"
    int8_scores = ort.InferenceSession(str(tmp_path / "two.int8.onnx")).run([scored], {"x": x})[0]
    int8_ids = int8_scores if argmax else int8_scores.argmax(1)
    errors = comparison.errors
    assert errors.float_top1 == 1.0
    assert errors.int8_top1 == pytest.approx(float((int8_ids == data.labels).mean()))
    assert errors.agreement == errors.int8_top1
    assert errors.scored_output == scored and comparison.to_dict()["scored_output"] == scored
    print_comparison(comparison)
    assert f"on output '{scored}'" in capsys.readouterr().out.splitlines()[1]


def test_without_labels_agreement_names_the_first_classifier_output(tmp_path, capsys) -> None:
    float_model = load_model(save(_features_then_logits(), tmp_path / "two.onnx"))
    x = np.random.default_rng(4).normal(0, 1, (64, 8)).astype(np.float32)
    data = load_data(write_npz(tmp_path / "d.npz", x=x), float_model)
    int8 = quantize_model(float_model, data, Recipe(), tmp_path / "two.int8.onnx").int8
    comparison = compare_models(float_model, int8, data, latency_runs=1)
    assert comparison.errors.scored_output == "feat" and comparison.errors.agreement is not None
    print_comparison(comparison)
    assert "on output 'feat'" in capsys.readouterr().out


def test_labels_no_output_can_classify_are_refused_naming_the_scored_output(tmp_path) -> None:
    float_model = load_model(save(_features_then_logits(), tmp_path / "two.onnx"))
    x = np.zeros((4, 8), np.float32)
    data = load_data(write_npz(tmp_path / "d.npz", x=x, labels=np.array([0, 1, 2, 20])), float_model)
    with pytest.raises(Q8Error, match="range from 0 to 20, but no output of the model has that many classes: "
                                      "top-1 would be scored on 'feat', which has 16"):
        require_labels_fit(data, float_model)


def test_a_single_output_is_scored_without_naming_it_in_the_text(tmp_path, capsys) -> None:
    rng = np.random.default_rng(3)
    float_model = load_model(save(_conv_head_model(), tmp_path / "head.onnx"))
    data = load_data(write_npz(tmp_path / "d.npz", x=rng.standard_normal((16, 3, 4, 4)).astype(np.float32),
                               labels=rng.integers(0, 10, 16)), float_model)
    quantize_model(float_model, data, Recipe(), tmp_path / "head.int8.onnx")
    comparison = compare_models(float_model, load_model(tmp_path / "head.int8.onnx"), data, latency_runs=1)
    assert comparison.errors.scored_output == "y"
    print_comparison(comparison)
    assert "on output" not in capsys.readouterr().out
