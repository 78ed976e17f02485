"""The per-node numbers the inspector and histogram panels show, checked against direct numpy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import LIGHT_MODELS, light_model, mlp, save, write_npz
from q8studio.core.clipping import INT8, METHODS, activation_range
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core.model import LoadedModel, load_model, model_from_proto
from q8studio.core.quantize import quantize_model
from q8studio.core.probe import TensorProbe, comparison_view
from q8studio.core.recipe import Recipe
from q8studio.core.stats import collect_tensor_stats
from q8studio.core.tensorview import (
    activation_tensor_for,
    clipped_fraction,
    display_histogram,
    display_image,
    method_ranges,
    node_numbers,
    node_weights,
    value_histogram,
    weight_histogram,
    weight_summary,
    weight_users,
)
from q8studio.core.weights import weight_values
from q8studio.core.workflow import StudioRun, quantize_and_compare


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudioRun, object]:
    assets = demo_assets()
    model = load_model(assets.model)
    calibration = load_data(assets.calibration, model, samples=64)
    output = tmp_path_factory.mktemp("run") / "demo.int8.onnx"
    run = quantize_and_compare(model, calibration, None, Recipe(), output, latency_runs=2)
    return run, calibration


def test_weight_summary_matches_numpy_per_channel(cnn_path: Path) -> None:
    model = load_model(cnn_path)
    node = model.graph.node_by_name("/stem/Conv")
    assert node_weights(model, node) == ["stem.w", "stem.b"]
    w = model.weight("stem.w")
    summary = weight_summary(model, "stem.w", node)
    assert summary.channel_axis == 0
    assert summary.min == pytest.approx(w.min()) and summary.max == pytest.approx(w.max())
    assert summary.mean == pytest.approx(w.mean(), rel=1e-5) and summary.std == pytest.approx(w.std(), rel=1e-5)
    np.testing.assert_allclose(summary.channel_min, w.reshape(8, -1).min(axis=1))
    np.testing.assert_allclose(summary.channel_max, w.reshape(8, -1).max(axis=1))
    widths = summary.channel_max - summary.channel_min
    assert summary.range_spread == pytest.approx(widths.max() / widths.min())


def _conv_with_weight(w: np.ndarray) -> LoadedModel:
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    return model_from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), Path("conv.onnx"))


def test_weight_statistics_leave_out_and_count_nan_and_infinite_values() -> None:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    w[0, 0, 0, :] = np.nan
    w[1, 0, 0, 0] = np.inf
    model = _conv_with_weight(w)
    summary = weight_summary(model, "w", model.graph.node_by_name("conv"))
    finite = w[np.isfinite(w)]
    assert summary.nonfinite == 4
    assert (summary.min, summary.max) == (pytest.approx(finite.min()), pytest.approx(finite.max()))
    assert summary.mean == pytest.approx(finite.mean(), rel=1e-5) and summary.std == pytest.approx(finite.std(), rel=1e-5)
    for channel in range(4):
        values = w[channel][np.isfinite(w[channel])]
        assert (summary.channel_min[channel], summary.channel_max[channel]) == (values.min(), values.max())


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_channels_all_constant_have_no_range_spread(value: float) -> None:
    model = _conv_with_weight(np.full((4, 3, 3, 3), value, np.float32))
    assert weight_summary(model, "w", model.graph.node_by_name("conv")).range_spread == 1.0
    one_constant = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    one_constant[2] = value
    model = _conv_with_weight(one_constant)
    assert weight_summary(model, "w", model.graph.node_by_name("conv")).range_spread == math.inf


def test_gemm_channels_follow_transb_and_vectors_have_none(cnn_path: Path) -> None:
    model = load_model(cnn_path)
    gemm = model.graph.node_by_name("/head/fc/Gemm")  # transB=1: weight [10, 8], outputs on axis 0
    assert weight_summary(model, "fc.w", gemm).channel_min.shape == (10,)
    bn = model.graph.node_by_name("/stem/bn/BatchNormalization")
    summary = weight_summary(model, "bn.scale", bn)
    assert summary.channel_axis is None and summary.range_spread is None


def test_display_histogram_keeps_every_count_and_exact_edges() -> None:
    values = np.random.default_rng(0).normal(0.5, 2.0, 50_000).astype(np.float32)
    stats = collect_tensor_stats([values[:20_000], values[20_000:]])
    counts, edges = display_histogram(stats, bins=100)
    assert counts.sum() == values.size
    assert len(edges) == len(counts) + 1 and len(counts) <= 101
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    inside = np.histogram(values, bins=edges)[0]
    np.testing.assert_array_equal(inside, counts)


def test_value_histogram_of_a_constant_is_one_bin() -> None:
    counts, edges = value_histogram(np.full(7, 3.0))
    assert counts.sum() == 7 and edges[0] < 3.0 < edges[-1]


def test_method_ranges_are_the_clipping_module_ranges_and_minmax_clips_nothing() -> None:
    values = np.random.default_rng(1).standard_normal(100_000).astype(np.float32)
    stats = collect_tensor_stats([values])
    ranges = method_ranges(stats, activation_type="int8", symmetric=True, percentile=99.0)
    assert [r.method for r in ranges] == list(METHODS)
    for entry in ranges:
        expected = activation_range(stats, entry.method, qtype=INT8, symmetric=True, percentile=99.0)
        assert (entry.rmin, entry.rmax) == expected
    by_method = {r.method: r for r in ranges}
    assert by_method["minmax"].clipped == 0.0
    true_share = float(np.mean(np.abs(values) > by_method["percentile"].rmax))
    assert by_method["percentile"].clipped == pytest.approx(true_share, abs=2e-4)
    assert by_method["percentile"].clipped == pytest.approx(0.01, abs=1e-3)


def test_clipped_fraction_matches_the_data_share() -> None:
    values = np.random.default_rng(2).uniform(-1.0, 3.0, 200_000).astype(np.float32)
    stats = collect_tensor_stats([values])
    share = clipped_fraction(stats, -0.5, 2.0)
    assert share == pytest.approx(float(np.mean((values < -0.5) | (values > 2.0))), abs=1e-3)


def test_activation_tensor_follows_fusions_and_shared_scales(demo_run: tuple[StudioRun, object]) -> None:
    run, _ = demo_run
    source = load_model(demo_assets().model)
    prepared, stats = run.result.prepared.model, run.result.stats
    # Conv → BatchNorm → ReLU is one int8 layer: all three show the ReLU's output.
    for name in ("/stem/conv/Conv", "/stem/bn/BatchNormalization", "/stem/relu/Relu"):
        assert activation_tensor_for(name, source, prepared, stats) == "/stem/relu/Relu_output_0"
    # MaxPool reuses its input's scale: it shows its (calibrated) input.
    pool = source.graph.node_by_name("/pool/MaxPool")
    assert activation_tensor_for("/pool/MaxPool", source, prepared, stats) == pool.inputs[0]
    assert activation_tensor_for("/fc/Gemm", source, prepared, {}) is None


def test_a_matmul_shows_the_output_of_its_bias_add_never_its_input(tmp_path: Path) -> None:
    # MatMul → bias Add → ReLU (nn.Linear on a 3-D input): pre-processing fuses the first two into a Gemm,
    # so neither the MatMul's nor the Add's output is calibrated; the layer's int8 output is the ReLU's.
    model_path = save(mlp(), tmp_path / "mlp.onnx")
    data = write_npz(tmp_path / "mlp.npz", x=np.random.default_rng(0).standard_normal((16, 20)).astype(np.float32))
    source = load_model(model_path)
    result = quantize_model(source, load_data(data, source), Recipe(), tmp_path / "mlp.int8.onnx")
    stats, prepared = result.stats, result.prepared.model
    assert "h1" not in stats and "h1b" not in stats and "x" in stats
    for name in ("mm1", "add1", "relu1"):
        assert activation_tensor_for(name, source, prepared, stats) == "r1"
    # The MatMul's input is not its output: with nothing calibrated after it, it shows nothing.
    assert activation_tensor_for("mm1", source, prepared, {"x"}) is None


def test_compare_tensor_returns_float_and_dequantized_values(demo_run: tuple[StudioRun, object]) -> None:
    run, calibration = demo_run
    tensor = "/block1/relu/Relu_output_0"
    comparison = TensorProbe(run.result.prepared.model, run.int8).compare(tensor, calibration, samples=5)
    assert comparison.samples == 5
    assert comparison.float_values.shape == comparison.int8_values.shape == (5 * 16 * 16 * 16,)
    lo, hi = run.result.ranges[tensor]
    assert lo == 0.0  # a ReLU output: uint8 with zero point 0, so int8 values are multiples of the scale
    steps = comparison.int8_values / np.float32(hi / 255.0)
    np.testing.assert_allclose(steps, np.rint(steps), atol=1e-3)
    assert 0.0 < np.abs(comparison.error).max() < 0.1 * hi


def test_compare_tensor_explains_a_tensor_without_int8_counterpart(demo_run: tuple[StudioRun, object]) -> None:
    run, calibration = demo_run
    probe = TensorProbe(run.result.prepared.model, run.int8)
    with pytest.raises(Q8Error, match="no int8 counterpart"):
        probe.compare("/stem/bn/BatchNormalization_output_0", calibration)
    logits = probe.compare("logits", calibration, samples=2)  # graph outputs compare directly
    assert logits.float_values.shape == (20,)


def test_display_image_stretches_to_uint8() -> None:
    chw = np.stack([np.full((4, 5), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    rgb = display_image(chw, "NCHW")
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 128, 255]
    gray = display_image(np.arange(12, dtype=np.float32).reshape(3, 4, 1), "NHWC")
    assert gray.shape == (3, 4) and gray.min() == 0 and gray.max() == 255
    assert display_image(np.zeros((1, 2, 2), np.float32), "NCHW").max() == 0
    with pytest.raises(Q8Error):
        display_image(np.zeros((5, 2, 2), np.float32), "NCHW")


def test_range_spread_of_a_dead_channel_is_infinite(cnn_path: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(cnn_path))
    for init in proto.graph.initializer:
        if init.name == "stem.w":
            w = numpy_helper.to_array(init).copy()
            w[3] = 0.0
            init.CopyFrom(numpy_helper.from_array(w, "stem.w"))
    path = tmp_path / "dead.onnx"
    onnx.save(proto, str(path))
    model = load_model(path)
    summary = weight_summary(model, "stem.w", model.graph.node_by_name("/stem/Conv"))
    assert math.isinf(summary.range_spread)


def test_node_numbers_before_and_after_calibration(demo_run: tuple[StudioRun, object]) -> None:
    run, _ = demo_run
    model = load_model(demo_assets().model)
    before = node_numbers(model, "/stem/conv/Conv")
    assert [w.name for w in before.weights] == node_weights(model, model.graph.node_by_name("/stem/conv/Conv"))
    counts, edges = before.weight_histogram
    assert counts.sum() == model.weight(before.weights[0].name).size
    assert before.tensor is None and before.ranges == []

    recipe = Recipe(method="entropy", activation_type="int8", symmetric_activations=True)
    after = node_numbers(model, "/stem/conv/Conv", stats=run.result.stats, prepared=run.result.prepared.model,
                         recipe=recipe)
    assert after.tensor == "/stem/relu/Relu_output_0" and after.stats is run.result.stats[after.tensor]
    assert after.activation_histogram[0].sum() == after.stats.count
    assert after.ranges == method_ranges(after.stats, activation_type="int8", symmetric=True)
    assert node_numbers(model, "/fc/Gemm", stats={}, prepared=run.result.prepared.model).tensor is None


def test_weight_histogram_bins_follow_the_size() -> None:
    assert len(weight_histogram(np.arange(32.0))[0]) == 11
    assert len(weight_histogram(np.arange(100_000.0))[0]) == 100
    assert len(weight_histogram(np.arange(3.0))[0]) == 8


def test_comparison_view_histograms_share_bins(demo_run: tuple[StudioRun, object]) -> None:
    run, calibration = demo_run
    probe = TensorProbe(run.result.prepared.model, run.int8)
    comparison = probe.compare("/block1/relu/Relu_output_0", calibration, samples=3)
    view = comparison_view(comparison, bins=50)
    total = comparison.float_values.size
    assert view.float_counts.sum() == view.int8_counts.sum() == view.error_counts.sum() == total
    assert len(view.edges) == 51 and view.samples == 3
    assert view.max_abs_error == pytest.approx(float(np.abs(comparison.error).max()))
    assert view.mean_error == pytest.approx(float(comparison.error.mean()), abs=1e-7)


def test_an_already_quantized_model_shows_its_int8_weights_dequantized(demo_run: tuple[StudioRun, object]) -> None:
    """A weight's DequantizeLinear and the Conv it feeds show the int8 weight, not its scale."""
    run, _ = demo_run
    int8 = run.int8
    conv = int8.graph.node_by_name("/block1/depthwise/conv/Conv")
    dq = int8.graph.nodes[int8.graph.producer[conv.inputs[1]]]
    name, scale_name, zero_name = dq.inputs
    assert dq.op_type == "DequantizeLinear" and int8.weight(name).dtype == np.int8
    assert node_weights(int8, dq) == [name]
    assert node_weights(int8, conv)[0] == name and len(node_weights(int8, conv)) == 2  # the weight, then the bias
    quantize = next(n for n in int8.graph.nodes if n.op_type == "QuantizeLinear")
    assert node_weights(int8, quantize) == []  # its scale and zero point are no weights

    q, scale, zero = int8.weight(name), float(int8.weight(scale_name)), int(int8.weight(zero_name))
    expected = (q.astype(np.float64) - zero) * scale
    summary = weight_summary(int8, name, dq)
    assert summary.stored is not None and summary.stored.dtype == "int8" and summary.stored.scales == 1
    assert summary.stored.scale == pytest.approx((scale, scale)) and summary.stored.zero_point == (zero, zero)
    assert summary.min == pytest.approx(expected.min()) and summary.max == pytest.approx(expected.max())
    assert summary.channel_axis == 0  # the Conv's output channels
    np.testing.assert_allclose(summary.channel_max, expected.reshape(q.shape[0], -1).max(axis=1), rtol=1e-6)
    float_weight = run.result.prepared.model.weight(name.removesuffix("_quantized"))
    assert np.abs(weight_values(int8, name)[0] - float_weight).max() <= scale / 2 + 1e-6
    counts, _ = node_numbers(int8, dq.name).weight_histogram
    assert counts.sum() == q.size


def test_per_channel_int8_weights_are_dequantized_per_channel() -> None:
    q = np.array([[1, -2, 3], [4, 5, -6], [-7, 8, 9], [10, -11, 12]], np.int8)
    scale, zero = np.array([0.5, 0.25, 2.0, 1.0], np.float32), np.array([0, 1, -1, 2], np.int8)
    dq = helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="dq", axis=0)
    gemm = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)
    graph = helper.make_graph(
        [dq, gemm], "per-channel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(q, "w_q"), numpy_helper.from_array(scale, "w_scale"),
         numpy_helper.from_array(zero, "w_zero")],
    )
    model = model_from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), Path("pc.onnx"))
    assert node_weights(model, model.graph.node_by_name("fc")) == ["w_q"]
    values, stored = weight_values(model, "w_q")
    np.testing.assert_allclose(values, (q.astype(np.float64) - zero[:, None]) * scale[:, None])
    assert stored is not None and (stored.scales, stored.axis) == (4, 0)
    assert stored.scale == (0.25, 2.0) and stored.zero_point == (-1, 2)


def weights_as_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every float initializer made by a Constant node instead, as some exporters write weights."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    floats = [t for t in model.graph.initializer if t.data_type != TensorProto.INT64]
    constants = [helper.make_node("Constant", [], [t.name], name=f"{t.name}/Constant", value=t) for t in floats]
    kept = [t for t in model.graph.initializer if t.data_type == TensorProto.INT64]
    nodes = constants + list(model.graph.node)
    del model.graph.initializer[:], model.graph.node[:]
    model.graph.initializer.extend(kept)
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("name, layers", [("squeezenet", ("n0", "n62")), ("bvlc_alexnet", ("n0", "n22"))])
def test_a_constant_node_shows_the_weight_it_makes_as_its_layer_shows_it(name: str, layers: tuple[str, ...],
                                                                          tmp_path: Path) -> None:
    """Selecting the Constant that makes a Conv's or Gemm's weight shows that weight, per output channel
    of the layer, where it said the node had no weights."""
    model = load_model(save(weights_as_constant_nodes(light_model(name)), tmp_path / f"{name}.onnx"))
    for layer_name in layers:
        layer = model.graph.node_by_name(layer_name)
        weight = layer.inputs[1]
        maker = model.graph.nodes[model.graph.producer[weight]]
        assert maker.op_type == "Constant" and node_weights(model, maker) == [weight]
        assert weight_users(model, weight) == [layer]
        made, used = node_numbers(model, maker.name), node_numbers(model, layer_name)
        assert [w.name for w in made.weights] == [weight] and used.weights[0].name == weight
        ours, theirs = made.weights[0], used.weights[0]
        assert (ours.shape, ours.min, ours.max, ours.channel_axis) == (theirs.shape, theirs.min, theirs.max, 0)
        np.testing.assert_array_equal(ours.channel_max, theirs.channel_max)
        np.testing.assert_array_equal(made.weight_histogram[0], used.weight_histogram[0])
        assert made.weight_histogram[0].sum() == model.weight(weight).size


@pytest.mark.parametrize("name", ["light_squeezenet", "light_bvlc_alexnet"])
def test_every_constant_of_shape_of_a_light_model_shows_the_weight_it_makes(name: str) -> None:
    model = load_model(LIGHT_MODELS / f"{name}.onnx")
    fills = [node for node in model.graph.nodes if node.op_type == "ConstantOfShape"]
    assert fills
    for fill in fills:
        users = weight_users(model, fill.outputs[0])
        assert node_weights(model, fill) == [fill.outputs[0]]
        assert [user.op_type for user in users] in (["Conv"], ["Gemm"])
        assert fill.outputs[0] in node_weights(model, users[0])
    first = node_numbers(model, fills[0].name)  # conv10's bias or conv1's: one value, 0.02, throughout
    assert first.weights[0].min == first.weights[0].max == pytest.approx(0.02)
    assert first.weight_histogram[0].sum() == model.weight(fills[0].outputs[0]).size


def test_a_dropout_shows_its_calibrated_input_which_it_copies() -> None:
    """At inference a Dropout copies its input (pre-processing removes it): its output is its input's."""
    model = load_model(LIGHT_MODELS / "light_squeezenet.onnx")
    dropout = next(node for node in model.graph.nodes if node.op_type == "Dropout")
    assert activation_tensor_for(dropout.name, model, None, {dropout.inputs[0]}) == dropout.inputs[0]
    softmax = next(node for node in model.graph.nodes if node.op_type == "Softmax")
    assert activation_tensor_for(softmax.name, model, None, {softmax.inputs[0]}) is None  # its input is not its output


def test_a_reshape_after_a_maxpool_shows_the_tensor_whose_scale_both_reuse() -> None:
    """AlexNet's pool5 → Reshape: int8 gives both the scale of the ReLU before them and calibrates neither
    output (these are the tensors a run on light_model("bvlc_alexnet") calibrates)."""
    model = load_model(LIGHT_MODELS / "light_bvlc_alexnet.onnx")
    calibrated = {"data_0", "r1", "r3", "r5", "r7", "r9", "r11", "r13", "r17", "r21", "r24", "prob_1"}
    reshape = next(node for node in model.graph.nodes if node.op_type == "Reshape")
    pool = model.graph.nodes[model.graph.producer[reshape.inputs[0]]]
    assert pool.op_type == "MaxPool" and pool.inputs[0] == "r13"
    assert activation_tensor_for(pool.name, model, None, calibrated) == "r13"
    assert activation_tensor_for(reshape.name, model, None, calibrated) == "r13"
    lrn = next(node for node in model.graph.nodes if node.op_type == "LRN")  # kept in float, its own scale
    assert activation_tensor_for(lrn.name, model, None, calibrated) is None
