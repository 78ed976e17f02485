"""The streaming calibration pass on the bundled demo: what it records equals a one-shot computation."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from q8studio.core.calibrate import concat_parts, collect_statistics, tensors_to_calibrate
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import load_model
from q8studio.core.session import cpu_session
from q8studio.core.stats import collect_tensor_stats, sampling_stride
from q8studio.core.summaries import plan_summaries

from builders import light_model, save, small_cnn, write_npz


@pytest.mark.parametrize(("model_name", "histogram_values"), [("demo", 0), ("demo", 1000), ("wide", 0), ("wide", 2048)])
def test_streamed_pass_equals_one_shot_statistics_of_every_activation(tmp_path, model_name: str, histogram_values: int) -> None:
    """Batches of 8 through the worker thread give, bit for bit, the statistics of all samples at once
    (the EMA included), with every value binned (0) or a sample of each sample's values. The demo's
    activations (4,096 values a sample) bin a flat sample; the 48x48 Relu outputs of the wider CNN
    (18,432 values, 9 budgets of 2,048) are summarised inside the model: their histogram is that of
    the grid of every third row and column, their maximum still that of every value."""
    if model_name == "demo":
        demo = demo_assets()
        model = load_model(demo.model)
        data = load_data(demo.calibration, model).limited(37)  # not a multiple of the batch size
    else:
        model = load_model(save(small_cnn(size=48), tmp_path / "wide.onnx"))
        images = np.random.default_rng(0).standard_normal((37, 3, 48, 48)).astype(np.float32)
        data = load_data(write_npz(tmp_path / "calib.npz", x=images), model)
    names = tensors_to_calibrate(model.proto)
    summarised = plan_summaries(model, names, histogram_values)

    streamed = collect_statistics(model, data, names=names, histogram_values=histogram_values)

    all_at_once = next(data.batches(37))
    everything = dict(zip(names, cpu_session(model.proto, outputs=names).run(names, all_at_once)))
    assert set(summarised) == ({"stem_relu", "dw_relu", "res_relu"} if model_name == "wide" and histogram_values else set())
    for name in names:
        values, got = everything[name], streamed[name]
        if name in summarised:
            assert summarised[name].step == 3
            grid = values[:, :, ::3, ::3]
            one_shot = collect_tensor_stats([grid], name=name)
            assert got.stride == round(values[0].size / grid[0].size) > 1
            assert (got.min, got.max) == (float(values.min()), float(values.max())) == (0.0, float(values.max()))
            expected_ema_max = float(values[0].max())
            for sample in values[1:]:
                expected_ema_max = expected_ema_max * 0.9 + float(sample.max()) * (1.0 - 0.9)
            assert (got.ema_min, got.ema_max) == (one_shot.ema_min, expected_ema_max)
        else:
            one_shot = collect_tensor_stats([values], name=name, values_per_sample=histogram_values)
            assert (got.min, got.max, got.stride, got.ema_min, got.ema_max) == (
                one_shot.min, one_shot.max, one_shot.stride, one_shot.ema_min, one_shot.ema_max)
            assert (got.stride > 1) == (0 < histogram_values < values[0].size)
        assert got.bound == one_shot.bound
        np.testing.assert_array_equal(got.hist, one_shot.hist)  # the EMA steps per sample, whatever the batch
        assert got.count == 37 * values[0].size


@pytest.mark.parametrize("histogram_values", [0, 8192])
def test_concat_outputs_of_squeezenet_are_combined_from_their_inputs(tmp_path, histogram_values: int) -> None:
    """SqueezeNet's eight Concats are not run out of ONNX Runtime: their statistics come from their
    inputs', and equal those of the Concat outputs themselves (histograms bit for bit when every value
    is binned; a regular sample of the same values, at the parts' stride, when sampled)."""
    model = load_model(save(light_model("squeezenet"), tmp_path / "squeezenet.onnx"))
    images = np.random.default_rng(0).random((3, 3, 224, 224), dtype=np.float32)
    data = load_data(write_npz(tmp_path / "calib.npz", data_0=images), model)
    names = tensors_to_calibrate(model.proto)
    combined = concat_parts(model.proto, names)
    assert len(combined) == 8 and all(len(parts) == 2 for parts in combined.values())

    streamed = collect_statistics(model, data, names=names, histogram_values=histogram_values)

    session = cpu_session(model.proto, outputs=list(combined))
    per_image = [session.run(list(combined), {"data_0": image[None]}) for image in images]  # batch axis is 1
    for i, (name, parts) in enumerate(combined.items()):
        got, direct = streamed[name], collect_tensor_stats([outputs[i] for outputs in per_image], name=name)
        assert got.parts == tuple(parts)
        assert (got.count, got.min, got.max, got.bound) == (direct.count, direct.min, direct.max, direct.bound)
        assert (got.ema_min, got.ema_max) == (direct.ema_min, direct.ema_max)
        part_strides = {streamed[part].stride for part in parts}
        if histogram_values == 0:
            np.testing.assert_array_equal(got.hist, direct.hist)
        else:
            assert part_strides == {got.stride} and got.stride > 1
            assert got.hist.sum() == sum(streamed[part].hist.sum() for part in parts)


def test_a_concat_with_an_input_not_calibrated_is_run_out_as_usual(tmp_path) -> None:
    model = load_model(save(light_model("squeezenet"), tmp_path / "squeezenet.onnx")).proto
    names = tensors_to_calibrate(model)
    first_concat = next(n for n in model.graph.node if n.op_type == "Concat")
    without_one_input = [name for name in names if name != first_concat.input[0]]
    assert first_concat.output[0] not in concat_parts(model, without_one_input)
    assert len(concat_parts(model, without_one_input)) == 7


def flattening_model(width: int) -> onnx.ModelProto:
    """x [1, width] -> Reshape to [width] -> Relu: an activation without a batch axis."""
    shape = numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]), helper.make_node("Relu", ["flat"], ["y"])],
        "flattening", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [width])], [shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_an_activation_without_a_batch_axis_is_one_sample_per_run(tmp_path) -> None:
    """Its EMA steps once per sample, not once per value, and its histogram bins a sample's budget
    of values (it used to take each of 4,096 values for a sample: all binned, 4,096 EMA steps)."""
    model = load_model(save(flattening_model(4096), tmp_path / "flat.onnx"))
    samples = np.random.default_rng(3).standard_normal((6, 1, 4096)).astype(np.float32)
    samples *= np.arange(1, 7, dtype=np.float32).reshape(6, 1, 1)  # each sample wider than the last
    data = load_data(write_npz(tmp_path / "x.npz", x=samples[:, 0]), model)

    got = collect_statistics(model, data, names=["flat"], ema_momentum=0.9, histogram_values=1000)["flat"]

    expected_min, expected_max, take = float(samples[0].min()), float(samples[0].max()), 1.0 - 0.9
    for sample in samples[1:]:
        expected_min = expected_min * 0.9 + float(sample.min()) * take
        expected_max = expected_max * 0.9 + float(sample.max()) * take
    assert (got.ema_min, got.ema_max) == (expected_min, expected_max)
    assert got.stride == sampling_stride(4096, 1000) > 1 and got.hist.sum() < 6 * 4096 / 2
    assert (got.count, got.min, got.max) == (6 * 4096, float(samples.min()), float(samples.max()))
