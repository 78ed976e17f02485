"""Multiply-accumulates in `profile`: every weighted operator counted, at the shapes of the profiled data,
and a share of integer MACs that never claims 100% while it leaves some out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.macs import count_macs
from q8studio.core.model import LoadedModel, load_model, model_from_proto
from q8studio.core.profile import LayerTiming, ProfileReport, profile_models
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe

PROFILE = {"runs": 2, "warmup": 1, "latency_runs": 0, "threads": 1}


def _weight(name: str, *shape: int, seed: int = 0) -> onnx.TensorProto:
    values = np.random.default_rng(seed).standard_normal(shape) * 0.3
    return numpy_helper.from_array(values.astype(np.float32), name)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto,
           weights: list[onnx.TensorProto], *extra_opsets: onnx.OperatorSetIdProto) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "macs", inputs, [output], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), *extra_opsets], ir_version=8)
    onnx.checker.check_model(model)
    return model


def conv_deconv() -> onnx.ModelProto:
    """Conv 3->4 (3x3, pad 1) then ConvTranspose 4->6 (2x2, stride 2) on [N, 3, 8, 8]: ONNX Runtime has no
    int8 ConvTranspose kernel, so the int8 model runs it in float."""
    return _model(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
         helper.make_node("ConvTranspose", ["r1", "wt", "bt"], ["y"], name="deconv", strides=[2, 2])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 16, 16]),
        [_weight("w1", 4, 3, 3, 3), _weight("wt", 4, 6, 2, 2), _weight("bt", 6)])


def dynamic_hw() -> onnx.ModelProto:
    """Conv 3->8 (3x3, pad 1), global pooling and a Gemm 8->4 on [N, 3, H, W]."""
    return _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
         helper.make_node("Flatten", ["g"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "wf"], ["y"], name="fc", transB=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
        [_weight("w", 8, 3, 3, 3), _weight("b", 8), _weight("wf", 4, 8)])


def unknown_shape() -> onnx.ModelProto:
    """MatMul, com.microsoft Inverse (which ONNX's own shape inference cannot size), MatMul on [N, 4, 4]:
    the second MatMul's shapes stay unknown whatever the data."""
    return _model(
        [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
         helper.make_node("Inverse", ["m1"], ["inv"], name="inverse", domain="com.microsoft"),
         helper.make_node("MatMul", ["inv", "w2"], ["y"], name="mm2")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 4])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4]),
        [numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2 + 0.1, "w1"), _weight("w2", 4, 4)],
        helper.make_opsetid("com.microsoft", 1))


def _profiled(tmp_path: Path, model: onnx.ModelProto, data: np.ndarray, **recipe: object) -> ProfileReport:
    float_model = load_model(save(model, tmp_path / "float.onnx"))
    dataset = load_data(write_npz(tmp_path / "data.npz", x=data), float_model)
    result = quantize_model(float_model, dataset, Recipe(**recipe), tmp_path / "int8.onnx")
    return profile_models(float_model, load_model(result.output_path), dataset, **PROFILE)


def _layer(report: ProfileReport, name: str) -> LayerTiming:
    return next(layer for layer in report.layers if layer.node == name)


def _loaded(model: onnx.ModelProto) -> LoadedModel:
    return model_from_proto(model, Path("m.onnx"))


# --- exact counts -------------------------------------------------------------------------------


@pytest.mark.parametrize("group, channels_in, per_group_out, stride, pads", [
    (1, 4, 6, 2, [0, 0, 0, 0]), (2, 4, 3, 2, [0, 0, 0, 0]), (1, 4, 6, 1, [1, 1, 1, 1])])
def test_a_convtranspose_counts_every_input_value_times_its_kernel(group: int, channels_in: int, per_group_out: int,
                                                                   stride: int, pads: list[int]) -> None:
    """Each input value is multiplied by the (C_out / group) x kH x kW weights it scatters over: strides and
    padding change the output, not the work. Checked against a loop that does exactly those products."""
    model = _model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", group=group,
                                     strides=[stride, stride], pads=pads)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels_in, "H", "W"])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "C", "H2", "W2"]),
                   [_weight("w", channels_in, per_group_out, 3, 3)])
    counted = count_macs(_loaded(model), {"x": (2, channels_in, 5, 7)})["deconv"]
    products = sum(1 for _n in range(2) for _c in range(channels_in) for _h in range(5) for _w in range(7)
                   for _o in range(per_group_out) for _kh in range(3) for _kw in range(3))
    assert counted == products == 2 * channels_in * 5 * 7 * per_group_out * 9


def test_recurrent_layers_count_input_and_recurrent_weights_at_every_step() -> None:
    """LSTM: 4 gates of `hidden` units, each a dot product with the input (5) and the state (8), per step and sequence."""
    hidden, size, steps, batch = 8, 5, 6, 3
    model = _model([helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], name="lstm", hidden_size=hidden)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "N", size])],
                   helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "N", hidden]),
                   [_weight("W", 1, 4 * hidden, size), _weight("R", 1, 4 * hidden, hidden)])
    assert count_macs(_loaded(model), {"x": (steps, batch, size)}) == {"lstm": steps * batch * 4 * hidden * (size + hidden)}


def test_batched_matmul_and_transposed_gemm_count_each_output_times_the_inner_size() -> None:
    model = _model([helper.make_node("MatMul", ["x", "w"], ["m"], name="bmm"),
                    helper.make_node("Reshape", ["m", "flat"], ["f"], name="reshape"),
                    helper.make_node("Gemm", ["wa", "f"], ["y"], name="gemm", transA=1, transB=1)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "T", 8])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, "M"]),
                   [_weight("w", 3, 8, 6), numpy_helper.from_array(np.array([-1, 18], np.int64), "flat"),
                    _weight("wa", 18, 2)])
    # [2, 3, 5, 8] x [3, 8, 6] -> [2, 3, 5, 6], 8 each; Gemm: A^T [2, 18] x f^T [18, 10] -> [2, 10], 18 each
    assert count_macs(_loaded(model), {"x": (2, 3, 5, 8)}) == {"bmm": 2 * 3 * 5 * 6 * 8, "gemm": 2 * 10 * 18}


# --- the profile ----------------------------------------------------------------------------------


def test_a_float_convtranspose_counts_and_the_integer_share_says_so(tmp_path: Path) -> None:
    """A ConvTranspose counted 0 MACs, and the report said integer kernels ran 100% of them while it ran in float."""
    data = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    report = _profiled(tmp_path, conv_deconv(), data)
    conv, deconv = _layer(report, "conv"), _layer(report, "deconv")
    assert conv.integer and conv.macs == conv.integer_macs == 4 * 8 * 8 * 3 * 3 * 3
    assert deconv.computes_in_float and deconv.macs == 4 * 8 * 8 * 6 * 2 * 2 and deconv.integer_macs == 0
    assert report.integer_mac_share == pytest.approx(6912 / (6912 + 6144))
    assert "integer kernels ran 53% of the multiply-accumulates;" in report.verdict()


def test_macs_of_a_model_with_dynamic_height_and_width_are_those_of_the_data(tmp_path: Path) -> None:
    """[N, 3, H, W] on 16x16 images: the Conv counted one pixel (216 MACs) and the float Conv's share was tiny."""
    data = np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)
    report = _profiled(tmp_path, dynamic_hw(), data, exclude=("conv",))
    conv, fc = _layer(report, "conv"), _layer(report, "fc")
    assert conv.kept_float and conv.macs == 16 * 16 * 8 * 27 == 55_296 and conv.integer_macs == 0
    assert fc.integer and fc.macs == fc.integer_macs == 32
    assert report.integer_mac_share == pytest.approx(32 / (55_296 + 32))
    assert report.macs_unknown == []


def test_macs_whose_shapes_stay_unknown_are_marked_and_the_share_says_it_leaves_them_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The second MatMul's shapes are unknown even with the data's: it counted 0 (1 per symbolic dimension when
    its shapes were partly known), and the report claimed 100% though that MatMul runs in float."""
    data = np.eye(4, dtype=np.float32)[None] + np.random.default_rng(2).random((4, 4, 4), dtype=np.float32) * 0.1
    report = _profiled(tmp_path, unknown_shape(), data, exclude=("mm2",))
    assert "integer kernels ran 100% of the multiply-accumulates counted (unknown for mm2);" in report.verdict()
    mm1, mm2 = _layer(report, "mm1"), _layer(report, "mm2")
    assert mm1.macs_known and mm1.macs == mm1.integer_macs == 4 * 4 * 4
    assert not mm2.macs_known and mm2.macs_unknown == ("mm2",) and mm2.computes_in_float
    assert report.macs_unknown == ["mm2"]

    code = main(["profile", str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"), "--data",
                 str(tmp_path / "data.npz"), "--runs", "2", "--latency-runs", "0"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("mm2 "))
    assert row.split()[-4:] == ["?", "kept", "in", "float"]  # MACs column: "?", not 0
    assert "integer kernels ran 100.0% of the multiply-accumulates counted (unknown for mm2)" in out

    assert main(["profile", str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"), "--data",
                 str(tmp_path / "data.npz"), "--runs", "2", "--latency-runs", "0", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    rows = {row["node"]: row for row in written["layers"]}
    assert rows["mm2"]["macs"] is None and rows["mm2"]["integer_macs"] is None and rows["mm2"]["macs_unknown"] == ["mm2"]
    assert rows["mm1"]["macs"] == 64 and written["macs_unknown"] == ["mm2"]
