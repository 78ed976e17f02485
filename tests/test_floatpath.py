"""Layers kept in float compute in float in ONNX Runtime, not just in the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.evaluate import dequantized_counterparts
from q8studio.core.floatpath import (
    KEPT_IN_FLOAT_KEY, dequantize_explicitly, is_written_out_dequantize, recorded_kept_in_float,
)
from q8studio.core.kernelprofile import profile_model
from q8studio.core.model import load_model
from q8studio.core.profile import profile_models
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import first_run_feed

SCALE, ZERO_POINT = 0.05, 128


def conv_between_quantized_neighbours() -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv (float weights) -> Q -> DQ -> y: what a quantizer writes for a Conv kept in
    float whose neighbours are int8."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, 4).astype(np.float32)
    initializers = [
        numpy_helper.from_array(np.float32(SCALE), "s"),
        numpy_helper.from_array(np.uint8(ZERO_POINT), "zp"),
        numpy_helper.from_array(np.float32(0.1), "s_out"),
        numpy_helper.from_array(np.uint8(ZERO_POINT), "zp_out"),
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(bias, "b"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["x_q"], "x_Q"),
        helper.make_node("DequantizeLinear", ["x_q", "s", "zp"], ["x_dq"], "x_DQ"),
        helper.make_node("Conv", ["x_dq", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "s_out", "zp_out"], ["c_q"], "c_Q"),
        helper.make_node("DequantizeLinear", ["c_q", "s_out", "zp_out"], ["y"], "c_DQ"),
    ]
    graph = helper.make_graph(
        nodes, "kept", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def run(model: onnx.ModelProto, x: np.ndarray, level: ort.GraphOptimizationLevel) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_a_float_conv_between_int8_neighbours_computes_in_float_after_the_rewrite() -> None:
    model = conv_between_quantized_neighbours()
    x = np.random.default_rng(1).uniform(-6, 6, (1, 3, 8, 8)).astype(np.float32)
    as_written = run(model, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)  # the model's own float Conv
    # the trap: ONNX Runtime quantizes the float weights and runs the Conv in int8
    assert not np.array_equal(run(model, x, ort.GraphOptimizationLevel.ORT_ENABLE_ALL), as_written)

    assert dequantize_explicitly(model, {"conv"}) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == [
        "QuantizeLinear", "Cast", "Sub", "Mul", "Conv", "QuantizeLinear", "DequantizeLinear",
    ]  # the DequantizeLinear only the kept Conv read is gone
    assert all(is_written_out_dequantize(n.name) for n in model.graph.node[1:4])
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        np.testing.assert_array_equal(run(model, x, level), as_written)


def test_a_dequantized_tensor_int8_layers_also_read_keeps_its_dequantize() -> None:
    model = conv_between_quantized_neighbours()
    graph = model.graph
    graph.node.append(helper.make_node("Relu", ["x_dq"], ["r"], "int8_reader"))
    graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 3, 8, 8]))
    dequantize_explicitly(model, {"conv"})
    onnx.checker.check_model(model, full_check=True)
    assert next(n for n in graph.node if n.name == "int8_reader").input[0] == "x_dq"
    assert sum(n.op_type == "DequantizeLinear" for n in graph.node) == 2
    assert next(n for n in graph.node if n.name == "conv").input[0] != "x_dq"


def test_a_zero_point_of_zero_needs_no_subtraction_and_names_never_collide() -> None:
    model = conv_between_quantized_neighbours()
    graph = model.graph
    zero = next(t for t in graph.initializer if t.name == "zp")
    zero.CopyFrom(numpy_helper.from_array(np.uint8(0), "zp"))
    graph.initializer.append(numpy_helper.from_array(np.float32(1.0), "x_dq_in_float"))  # a name the rewrite wants
    dequantize_explicitly(model, {"conv"})
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in graph.node][1:3] == ["Cast", "Mul"]
    assert next(n for n in graph.node if n.name == "conv").input[0] == "x_dq_in_float_1"


@pytest.fixture(scope="module")
def demo():
    assets = demo_assets()
    model = load_model(assets.model)
    return model, load_data(assets.calibration, model, samples=32)


@pytest.mark.parametrize("kept", ["/block1/depthwise/conv/Conv", "/down/conv/Conv", "/block1/Add", "/fc/Gemm"])
def test_a_layer_kept_in_float_runs_float_kernels_in_onnx_runtime(demo, tmp_path: Path, kept: str) -> None:
    model, calibration = demo
    result = quantize_model(model, calibration, Recipe(granularity="per-channel", exclude=(kept,)),
                            tmp_path / "q.onnx")
    profile = profile_model(result.int8, first_run_feed(result.int8, calibration), runs=1, warmup=0, threads=1)
    computing = [k for k in profile.kernels if k.node == kept]
    assert computing and not any(k.integer for k in computing), [(k.name, k.op_type) for k in computing]
    others = [k for k in profile.kernels if k.node and k.node != kept and k.op_type.startswith("QLinear")]
    assert others  # the rest of the model still runs in int8
    # the tensors only the kept layer reads still get their per-layer error
    reads = {t for n in model.graph.nodes if n.name == kept for t in n.inputs} & set(result.ranges)
    assert reads <= set(dequantized_counterparts(result.int8))


def test_a_kept_max_pool_is_left_alone(demo, tmp_path: Path) -> None:
    """MaxPool gives the same values in int8; ONNX Runtime runs it on integers either way."""
    model, calibration = demo
    result = quantize_model(model, calibration, Recipe(exclude=("/pool/MaxPool",)), tmp_path / "q.onnx")
    assert not any(is_written_out_dequantize(n.name) for n in result.int8.graph.nodes)


def test_the_profile_counts_a_written_out_dequantize_as_one_boundary_and_as_glue(demo, tmp_path: Path) -> None:
    model, calibration = demo
    kept = "/down/conv/Conv"
    result = quantize_model(model, calibration, Recipe(exclude=(kept,)), tmp_path / "q.onnx")
    report = profile_models(model, result.int8, calibration.limited(1), latency_runs=0, kept_float=result.kept_float,
                            runs=2, warmup=0, threads=1)
    written = [b for b in report.boundaries if is_written_out_dequantize(b.kernel)]
    assert len(written) == 1 and not written[0].enters_int8 and written[0].at == "inside the model"
    assert written[0].layers == ("/pool/MaxPool",)  # like a DequantizeLinear, it serves the layer it follows
    assert all(k.glue for k in report.int8.kernels if is_written_out_dequantize(k.name))
    assert [row.node for row in report.kept_in_float] == [kept]
    assert not any(is_written_out_dequantize(row.node) for row in report.layers)


def test_the_int8_file_lists_the_layers_it_keeps_in_float(demo, tmp_path: Path) -> None:
    model, calibration = demo
    kept = ("/stem/bn/BatchNormalization", "/fc/Gemm")  # the BatchNorm is folded into the stem Conv
    result = quantize_model(model, calibration, Recipe(exclude=kept), tmp_path / "q.onnx")
    assert recorded_kept_in_float(load_model(tmp_path / "q.onnx").proto) == ("/fc/Gemm", "/stem/conv/Conv")
    plain = quantize_model(model, calibration, Recipe(), tmp_path / "plain.onnx", previous=result)
    assert recorded_kept_in_float(plain.int8.proto) == ()
    damaged = plain.int8.proto
    damaged.metadata_props.add(key=KEPT_IN_FLOAT_KEY, value="not json")
    assert recorded_kept_in_float(damaged) == ()


def test_a_kept_layer_is_named_by_the_node_kept_not_by_the_row_it_shares(demo, tmp_path: Path) -> None:
    """In float32 the residual Add fuses into the pointwise Conv, whose name the profile's row takes;
    the int8 model runs that Conv in int8 and only the Add in float."""
    model, calibration = demo
    result = quantize_model(model, calibration, Recipe(exclude=("/block1/Add",)), tmp_path / "q.onnx")
    report = profile_models(model, result.int8, calibration.limited(1), latency_runs=0, runs=2, warmup=0, threads=1)
    assert [row.kept_label for row in report.kept_in_float] == ["/block1/Add"]
