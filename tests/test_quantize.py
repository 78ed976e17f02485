"""Quantization on real models: outputs that ONNX Runtime runs, the underlying tool's traps handled."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import LIGHT_MODELS, inverse_inputs, inverse_model, light_model, mlp, save, small_cnn, transformer_block, write_npz
from q8studio.core.clipping import activation_range
from q8studio.core.data import load_data
from q8studio.core.errors import Cancelled, Q8Error
from q8studio.core.evaluate import analyse_errors
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.profile import profile_models
from q8studio.core.progress import CancelToken, Progress
from q8studio.core import quantize as quantize_module
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.report import quantize_report
from q8studio.core.session import cpu_session
from q8studio.core.skeleton import is_set_aside
from q8studio.core.speedup import keep_slow_float
from q8studio.core.weights import dequantize


def _quantize(model_path: Path, data_path: Path, out: Path, **recipe: object):
    model = load_model(model_path)
    return quantize_model(model, load_data(data_path, model), Recipe(**recipe), out)


@pytest.mark.parametrize("granularity", ["per-tensor", "per-channel"])
@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_small_cnn_quantizes_to_a_runnable_qdq_model(cnn_path, cnn_data, tmp_path, granularity, activations) -> None:
    result = _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", granularity=granularity, activation_type=activations)
    proto = onnx.load(str(result.output_path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    # the model the result carries is the file on disk, not a staging copy
    assert result.int8.path == result.output_path
    assert result.int8.file_size == result.output_path.stat().st_size
    assert [n.name for n in result.int8.proto.graph.node] == [n.name for n in proto.graph.node]
    assert "BatchNormalization" not in ops  # folded before quantizing
    assert any("Folded 1 BatchNormalization" in note for note in result.prepared.notes)
    # activations are quantized to the requested type
    q_types = {numpy_helper.to_array(i).dtype for i in proto.graph.initializer if i.name.endswith("_zero_point")}
    assert np.dtype(activations) in q_types
    # every weight is quantized; per-channel gives one scale per output channel
    stem = next(w for w in result.weights if w.tensor.endswith("stem.w"))
    assert stem.axis == (0 if granularity == "per-channel" else None)
    assert stem.sqnr_db > 30
    errors = analyse_errors(result.prepared.model, load_model(result.output_path), load_data(cnn_data, load_model(cnn_path)))
    assert errors.outputs["logits"].sqnr_db > 25 and errors.outputs["logits"].cosine > 0.99


@pytest.mark.parametrize("granularity", ["per-tensor", "per-channel"])
def test_weight_errors_dequantize_as_onnx_runtime_does(cnn_path, cnn_data, tmp_path, granularity) -> None:
    """The weight table's dequantized values are bit for bit what ONNX Runtime's DequantizeLinear gives."""
    result = _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", granularity=granularity)
    proto = onnx.load(str(result.output_path))
    initializers = {t.name for t in proto.graph.initializer}
    weight_dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers]
    proto.graph.output.extend(onnx.ValueInfoProto(name=n.output[0]) for n in weight_dq)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the DQ nodes
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [n.output[0] for n in weight_dq]
    by_runtime = dict(zip(names, session.run(names, {"x": np.zeros((1, 3, 16, 16), np.float32)})))
    arrays = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in weight_dq:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) if arrays[node.input[1]].size > 1 else None
        zero = arrays[node.input[2]] if len(node.input) > 2 else 0
        ours = dequantize(arrays[node.input[0]], arrays[node.input[1]], zero, axis)
        assert ours.dtype == np.float32 and np.array_equal(ours, by_runtime[node.output[0]]), node.input[0]
    assert len(result.weights) == len(weight_dq) >= 4


def test_ranges_reach_the_int8_model(cnn_path, cnn_data, tmp_path) -> None:
    """The scale and zero point onnxruntime wrote for an activation come from our range."""
    result = _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", method="percentile", percentile=99.0)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(result.output_path)).graph.initializer}
    rmin, rmax = result.ranges["gap"]
    assert rmin == 0.0 and rmax < result.stats["gap"].max  # percentile clipped the top
    assert inits["gap_scale"] == pytest.approx(rmax / 255.0, rel=1e-6)
    assert int(inits["gap_zero_point"]) == 0


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy", "mse", "ema"])
def test_every_tensor_gets_its_own_range_and_outputs_keep_theirs(cnn_path, cnn_data, tmp_path, method) -> None:
    """Ranges are computed side by side for the histogram searches; each must still be its tensor's."""
    result = _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", method=method)
    ranges = quantize_module.activation_ranges(result.stats, result.recipe, outputs={"logits"})
    assert set(ranges) == set(result.stats) and len(ranges) >= 4
    for name, stats in result.stats.items():
        expected = activation_range(stats, "minmax" if name == "logits" else method)
        assert ranges[name] == expected, name
    assert ranges["logits"] == (min(result.stats["logits"].min, 0.0), max(result.stats["logits"].max, 0.0))


def test_per_channel_on_old_opset_model_is_upgraded_and_runs(tmp_path) -> None:
    """Trap (a): per-channel DequantizeLinear needs opset 13; an opset-9 model must be upgraded first."""
    model_path = save(light_model("squeezenet"), tmp_path / "squeezenet.onnx")
    images = np.random.default_rng(0).random((3, 3, 224, 224), dtype=np.float32)
    data_path = write_npz(tmp_path / "calib.npz", data_0=images)
    result = _quantize(model_path, data_path, tmp_path / "sq.int8.onnx", granularity="per-channel")
    assert any("Upgraded the opset from 11 to 13" in note for note in result.prepared.notes)
    proto = onnx.load(str(result.output_path))
    assert proto.opset_import[0].version >= 13
    assert any(a.name == "axis" for n in proto.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute)
    out = cpu_session(proto).run(None, {"data_0": images[:1]})[0]
    assert out.shape == (1, 1000, 1, 1) and np.isfinite(out).all()
    # its Concats' ranges come from their inputs' statistics, and the report says so
    concats = {n.output[0]: list(n.input) for n in result.prepared.model.proto.graph.node if n.op_type == "Concat"}
    ranges = quantize_report(result, source=model_path, calibration=None)["ranges"]
    assert {name: r["combined_from"] for name, r in ranges.items() if r["combined_from"]} == concats
    assert len(concats) == 8


def test_failed_symbolic_shape_inference_falls_back_and_leaves_no_files(tmp_path, monkeypatch) -> None:
    """Trap (b): onnxruntime's symbolic shape inference fails on com.microsoft.Inverse and writes a
    scratch file into the working directory; we fall back, say so, and leave the directory clean."""
    model_path = save(inverse_model(), tmp_path / "inverse.onnx")
    data_path = write_npz(tmp_path / "x.npz", x=inverse_inputs())
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = _quantize(model_path, data_path, tmp_path / "inverse.int8.onnx")
    assert any("symbolic shape inference" in note and "failed" in note for note in result.prepared.notes)
    assert any(note.startswith("Pre-processed with ONNX shape inference") for note in result.prepared.notes)
    assert os.listdir(workdir) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inverse.int8.onnx", "inverse.onnx", "work", "x.npz"]
    assert [(n.name, n.op_type) for n in result.float_nodes] == [("inverse", "Inverse")]


def test_pre_processing_changes_the_working_directory_only_for_symbolic_shape_inference(
    cnn_path, cnn_data, tmp_path, monkeypatch
) -> None:
    """The working directory belongs to the whole process, the GUI thread included: only the
    symbolic step, which may drop a scratch file there, runs in a private one."""
    moves: list[str] = []
    real_chdir = os.chdir

    def recording_chdir(folder: str) -> None:
        moves.append(str(folder))
        real_chdir(folder)

    monkeypatch.setattr(os, "chdir", recording_chdir)
    _quantize(cnn_path, cnn_data, tmp_path / "cnn.int8.onnx")
    assert moves == []

    _quantize(save(inverse_model(), tmp_path / "inverse.onnx"), write_npz(tmp_path / "x.npz", x=inverse_inputs()),
              tmp_path / "inverse.int8.onnx")
    assert len(moves) == 2 and "q8studio-prep-" in moves[0] and moves[1] == os.getcwd()


def test_symbolic_shape_inference_runs_only_where_onnx_cannot_follow_the_shapes(cnn_path, cnn_data, tmp_path) -> None:
    """It costs a sympy import (longer than pre-processing a small CNN) and adds nothing where ONNX's
    own inference already shapes every tensor; a reshape to a computed shape still gets it."""
    static = _quantize(cnn_path, cnn_data, tmp_path / "cnn.int8.onnx")
    assert "symbolic shape inference is not needed" in " ".join(static.prepared.notes)
    assert "Pre-processed with ONNX shape inference, graph optimisation." in static.prepared.notes

    weight = numpy_helper.from_array(np.random.default_rng(5).standard_normal((8, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Shape", ["x"], ["shape"]),
         helper.make_node("Reshape", ["y", "shape"], ["reshaped"]), helper.make_node("Relu", ["reshaped"], ["out"])],
        "computed_reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 8])],
        [weight],
    )
    model_path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "reshape.onnx")
    data_path = write_npz(tmp_path / "x.npz", x=np.random.default_rng(6).standard_normal((4, 8)).astype(np.float32))
    dynamic = _quantize(model_path, data_path, tmp_path / "reshape.int8.onnx")
    assert "Pre-processed with symbolic shape inference, graph optimisation." in dynamic.prepared.notes


def test_entropy_searches_real_thresholds(tmp_path) -> None:
    """Trap (c): onnxruntime's default entropy calibrator reproduces minmax; ours must not."""
    model_path = save(small_cnn(), tmp_path / "cnn.onnx")
    rng = np.random.default_rng(3)
    images = rng.standard_normal((32, 3, 16, 16)).astype(np.float32)
    images[0, 0, 0, 0] = 40.0  # one outlier pixel
    data_path = write_npz(tmp_path / "d.npz", x=images)
    minmax = _quantize(model_path, data_path, tmp_path / "mm.onnx", method="minmax")
    entropy = _quantize(model_path, data_path, tmp_path / "en.onnx", method="entropy")
    assert minmax.ranges["x"][1] == pytest.approx(40.0)
    assert entropy.ranges["x"][1] < 10.0
    assert (tmp_path / "mm.onnx").read_bytes() != (tmp_path / "en.onnx").read_bytes()


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet"])
def test_onnx_architecture_files_as_shipped_quantize(name, tmp_path) -> None:
    """IR 3 files whose weights are ConstantOfShape nodes: optimisation folds those away, and
    every initializer is listed as a graph input, which the int8 model must not require."""
    model = load_model(LIGHT_MODELS / f"light_{name}.onnx")
    spec = model.input_specs()[0]
    rng = np.random.default_rng(0)
    images = rng.random((2, *[int(d) for d in spec.shape[1:]]), dtype=np.float32)
    data = load_data(write_npz(tmp_path / "d.npz", **{spec.name: images}), model)
    result = quantize_model(model, data, Recipe(granularity="per-channel"), tmp_path / "q.onnx")
    assert [i.name for i in onnx.load(str(result.output_path)).graph.input] == [spec.name]
    assert sum(n.op_type == "QuantizeLinear" for n in result.int8.graph.nodes) > 20


def test_excluded_nodes_stay_float_and_are_listed(cnn_path, cnn_data, tmp_path) -> None:
    result = _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", exclude=("/head/fc/Gemm",))
    assert ("/head/fc/Gemm", "kept in float on request") in [(n.name, n.reason) for n in result.float_nodes]
    proto = onnx.load(str(result.output_path))
    gemm = next(n for n in proto.graph.node if n.name == "/head/fc/Gemm")
    assert gemm.input[1] == "fc.w"  # the float weight, no DequantizeLinear in front


def test_keeping_a_folded_batchnorm_in_float_keeps_the_conv_it_folds_into(cnn_path, cnn_data, tmp_path) -> None:
    result = _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", exclude=("/stem/bn/BatchNormalization",))
    assert ("/stem/Conv", "kept in float on request") in [(n.name, n.reason) for n in result.float_nodes]
    assert any("folded into /stem/Conv" in note for note in result.prepared.notes)
    proto = onnx.load(str(result.output_path))
    conv = next(n for n in proto.graph.node if n.name == "/stem/Conv")
    assert conv.input[1] in {t.name for t in proto.graph.initializer}  # float weight, no DequantizeLinear
    assert result.recipe.exclude == ("/stem/bn/BatchNormalization",)  # the report reproduces what was asked


def test_keeping_a_matmul_fused_with_its_add_keeps_the_gemm_they_became(tmp_path) -> None:
    model = save(mlp(), tmp_path / "mlp.onnx")
    data = write_npz(tmp_path / "mlp.npz", x=np.random.default_rng(0).standard_normal((16, 20)).astype(np.float32))
    for asked in ("mm1", "add1"):
        result = _quantize(model, data, tmp_path / f"{asked}.onnx", exclude=(asked, asked))
        gemm = next(n for n in result.int8.graph.nodes if n.name.startswith("mm1/"))
        assert (gemm.name, "kept in float on request") in [(n.name, n.reason) for n in result.float_nodes]
        assert not any(name.endswith("DequantizeLinear_Output") for name in gemm.inputs)  # float in, float weight
        assert [note for note in result.prepared.notes if asked in note] == [
            f"{asked} is folded into {gemm.name}: keeping {gemm.name} in float."]


def test_an_excluded_add_is_listed_as_kept_in_float(cnn_path, cnn_data, tmp_path) -> None:
    result = _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", exclude=("/block/Add",))
    assert ("/block/Add", "kept in float on request") in [(n.name, n.reason) for n in result.float_nodes]
    default = _quantize(cnn_path, cnn_data, tmp_path / "d.onnx")
    assert "/block/Add" not in [n.name for n in default.float_nodes]


def _with_sum(inputs: int) -> onnx.ModelProto:
    """small_cnn at opset 9 with its residual join a Sum of ``inputs`` tensors, as older exporters wrote it."""
    model = small_cnn(opset=9)
    join = next(node for node in model.graph.node if node.name == "/block/Add")
    join.op_type, join.name = "Sum", "/block/Sum"
    join.input.extend(["stem_relu"] * (inputs - 2))
    return model


def test_a_two_input_sum_is_quantized_as_an_add_under_its_own_name(cnn_data, tmp_path) -> None:
    model_path = save(_with_sum(2), tmp_path / "sum.onnx")
    source = model_path.read_bytes()
    result = _quantize(model_path, cnn_data, tmp_path / "q.onnx")
    assert "Made 1 two-input Sum node(s) Add nodes, which onnxruntime quantizes (it leaves Sum in float)." in (
        result.prepared.notes
    )
    proto = onnx.load(str(result.output_path))
    producers = {output: node.op_type for node in proto.graph.node for output in node.output}
    join = next(node for node in proto.graph.node if node.name == "/block/Sum")
    assert join.op_type == "Add"
    assert [producers[name] for name in join.input] == ["DequantizeLinear", "DequantizeLinear"]
    assert [node.op_type for node in proto.graph.node if join.output[0] in node.input] == ["QuantizeLinear"]
    assert "/block/Sum" not in [node.name for node in result.float_nodes]
    assert model_path.read_bytes() == source
    kept = _quantize(model_path, cnn_data, tmp_path / "kept.onnx", exclude=("/block/Sum",))
    assert ("/block/Sum", "kept in float on request") in [(node.name, node.reason) for node in kept.float_nodes]


def test_a_sum_of_three_inputs_stays_a_float_sum(cnn_data, tmp_path) -> None:
    result = _quantize(save(_with_sum(3), tmp_path / "sum3.onnx"), cnn_data, tmp_path / "q.onnx")
    assert ("/block/Sum", "Sum") in [(node.name, node.op_type) for node in result.float_nodes]
    assert not any("Sum" in note for note in result.prepared.notes)


def _maxpool_kernels(model_path: Path, data_path: Path, int8: LoadedModel) -> tuple[str, ...]:
    """The kernels ONNX Runtime runs for small_cnn's MaxPool in the int8 model."""
    report = profile_models(load_model(model_path), int8, load_data(data_path, int8, samples=1),
                            runs=3, warmup=1, threads=1, latency_runs=0)
    return next(layer for layer in report.layers if layer.node == "/pool/MaxPool").int8_kernels


def test_a_maxpool_below_opset_12_runs_in_int8_after_an_upgrade(cnn_data, tmp_path) -> None:
    model_path = save(small_cnn(opset=11), tmp_path / "cnn11.onnx")
    result = _quantize(model_path, cnn_data, tmp_path / "q.onnx")
    assert "Upgraded the opset from 11 to 12 (onnxruntime quantizes MaxPool from opset 12)." in result.prepared.notes
    assert _maxpool_kernels(model_path, cnn_data, result.int8) == ("NhwcMaxPool",)


def test_a_model_that_cannot_be_upgraded_keeps_its_maxpool_in_float(cnn_data, tmp_path, monkeypatch) -> None:
    def refuse(model, target):
        raise RuntimeError("no adapter for this op")

    monkeypatch.setattr(onnx.version_converter, "convert_version", refuse)
    model_path = save(small_cnn(opset=11), tmp_path / "cnn11.onnx")
    result = _quantize(model_path, cnn_data, tmp_path / "q.onnx")
    assert ("MaxPool stays in float: onnxruntime quantizes it from opset 12, and this opset-11 model cannot be "
            "upgraded (no adapter for this op).") in result.prepared.notes
    assert _maxpool_kernels(model_path, cnn_data, result.int8) == ("MaxPool (float)",)


def test_unknown_exclusion_is_a_user_error(cnn_path, cnn_data, tmp_path) -> None:
    with pytest.raises(Q8Error, match="No node named 'nope'"):
        _quantize(cnn_path, cnn_data, tmp_path / "q.onnx", exclude=("nope",))
    assert not (tmp_path / "q.onnx").exists()


def test_source_model_is_never_overwritten(cnn_path, cnn_data) -> None:
    before = cnn_path.read_bytes()
    with pytest.raises(Q8Error, match="^Refusing to write the int8 model over the source model"):
        _quantize(cnn_path, cnn_data, cnn_path)
    assert cnn_path.read_bytes() == before


@pytest.mark.parametrize("victim", ["weights.bin", "calib.npz"])
def test_no_file_the_run_reads_is_overwritten(tmp_path: Path, victim: str) -> None:
    """The model's external data and the calibration data are read too: quantize_model and
    keep_slow_float refuse to write over them, as the command line does."""
    model_path = tmp_path / "m.onnx"
    onnx.save(small_cnn(), str(model_path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    data_path = write_npz(tmp_path / "calib.npz", x=np.random.default_rng(0).random((4, 3, 16, 16), np.float32))
    model = load_model(model_path)
    data = load_data(data_path, model)
    before = (tmp_path / victim).read_bytes()
    with pytest.raises(Q8Error, match=f"^Refusing to write the int8 model over the .*{victim}"):
        quantize_model(model, data, Recipe(), tmp_path / victim)
    with pytest.raises(Q8Error, match=f"^Refusing to write the int8 model over the .*{victim}"):
        keep_slow_float(model, data, Recipe(), tmp_path / victim, data)
    assert (tmp_path / victim).read_bytes() == before


def test_nan_in_calibration_data_leaves_no_output(cnn_path, tmp_path) -> None:
    images = np.zeros((4, 3, 16, 16), np.float32)
    images[2] = np.inf
    data_path = write_npz(tmp_path / "inf.npz", x=images)
    with pytest.raises(Q8Error, match="NaN or Inf"):
        _quantize(cnn_path, data_path, tmp_path / "out" / "q.onnx")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_an_int8_model_onnx_runtime_refuses_is_never_written(cnn_path, cnn_data, tmp_path, monkeypatch) -> None:
    """The trap of per-channel weights below opset 13, forced on the written file: the check loads
    the file itself, so the user gets the reason and no model."""
    real_write = quantize_module._write_qdq_model

    def write_at_opset_12(prepared, ranges, recipe, output, *weight_scales, **options):
        real_write(prepared, ranges, recipe, output, *weight_scales, **options)
        model = onnx.load(str(output))
        next(o for o in model.opset_import if o.domain in ("", "ai.onnx")).version = 12
        onnx.save(model, str(output))

    monkeypatch.setattr(quantize_module, "_write_qdq_model", write_at_opset_12)
    with pytest.raises(Q8Error, match="^The int8 model was not written, because it does not run: ONNX Runtime cannot load") as raised:
        _quantize(cnn_path, cnn_data, tmp_path / "out" / "q.onnx", granularity="per-channel")
    assert "\n" not in str(raised.value) and "axis" in str(raised.value)
    assert f"from {tmp_path / 'out' / 'q.onnx'} failed" in str(raised.value)  # not the hidden file written first
    assert sorted(tmp_path.iterdir()) == sorted([cnn_path, cnn_data])  # not even the folder made for it


def test_cancel_stops_calibration_and_writes_nothing(cnn_path, cnn_data, tmp_path) -> None:
    token = CancelToken()
    seen: list[tuple[str, int]] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        seen.append((stage, done))
        if stage == "Calibrating" and done >= 8:
            token.cancel()

    model = load_model(cnn_path)
    with pytest.raises(Cancelled):
        quantize_model(
            model, load_data(cnn_data, model), Recipe(), tmp_path / "q.onnx",
            progress=Progress(on_progress, token, min_interval_s=0.0),
        )
    assert max(done for stage, done in seen if stage == "Calibrating") < 24
    assert not (tmp_path / "q.onnx").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".q.onnx")] == []


def _model_and_data(kind: str, folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    if kind == "cnn":
        return save(small_cnn(), folder / "cnn.onnx"), write_npz(folder / "cnn.npz", x=rng.standard_normal((24, 3, 16, 16)).astype(np.float32))
    if kind == "transformer":
        return save(transformer_block(), folder / "tb.onnx"), write_npz(folder / "tb.npz", ids=rng.integers(0, 100, (16, 8)))
    return save(light_model("squeezenet"), folder / "sq.onnx"), write_npz(folder / "sq.npz", data_0=rng.random((2, 3, 224, 224), dtype=np.float32))


@pytest.mark.parametrize("kind", ["cnn", "transformer", "squeezenet"])
def test_ranges_the_quantizer_does_not_read_do_not_change_the_model(kind, tmp_path, monkeypatch) -> None:
    """Calibration skips tensors the dry run (on the model's skeleton) shows onnxruntime never
    reads a range for; the int8 model must be byte-identical to one built with statistics of every
    candidate tensor. The three models hold Conv, Gemm, MatMul, Gather, Add and LayerNorm constants
    large enough to be set aside."""
    import q8studio.core.quantize as quantize_module

    model_path, data_path = _model_and_data(kind, tmp_path)
    recipe = dict(method="entropy", granularity="per-channel")
    reduced = _quantize(model_path, data_path, tmp_path / "reduced.onnx", **recipe)
    monkeypatch.setattr(quantize_module, "ranges_read_by_quantizer", lambda proto, r: quantize_module.tensors_to_calibrate(proto))
    full = _quantize(model_path, data_path, tmp_path / "full.onnx", **recipe)
    assert set(reduced.ranges) < set(full.ranges)
    assert (tmp_path / "reduced.onnx").read_bytes() == (tmp_path / "full.onnx").read_bytes()


def test_the_quantizer_reads_the_weights_from_beside_the_graph_and_writes_the_same_model(tmp_path, monkeypatch) -> None:
    """onnxruntime's quantizer gets a small graph file and the weights' bytes beside it: its shape
    inference of the file no longer parses them. The int8 model is byte for byte the one it writes
    from a whole-model file, but for the mark onnx leaves on a weight it read from beside the graph
    (its data_location set to its default, "stored inside"), which the weights quantized beforehand
    keep."""
    import q8studio.core.quantize as quantize_module

    model_path, data_path = _model_and_data("squeezenet", tmp_path)
    recipe = dict(method="entropy", granularity="per-channel")
    _quantize(model_path, data_path, tmp_path / "beside.onnx", **recipe)
    monkeypatch.setattr(quantize_module, "save_with_weights_beside", lambda model, path: onnx.save(model, str(path)))
    _quantize(model_path, data_path, tmp_path / "whole.onnx", **recipe)
    beside, whole = onnx.load(str(tmp_path / "beside.onnx")), onnx.load(str(tmp_path / "whole.onnx"))
    marked = [tensor.name for tensor in beside.graph.initializer if tensor.HasField("data_location")]
    assert marked and all(name.endswith(("_quantized", "_scale", "_zero_point")) for name in marked)
    for tensor in beside.graph.initializer:
        tensor.ClearField("data_location")
    assert beside.SerializeToString() == whole.SerializeToString()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.onnx", "sq.npz", "sq.onnx", "whole.onnx"]


def test_the_dry_run_never_sees_a_large_weight(tmp_path, monkeypatch) -> None:
    """Saving and quantizing the weights was the whole cost of the dry run on large models."""
    import q8studio.core.quantize as quantize_module

    model_path, data_path = _model_and_data("transformer", tmp_path)
    real_write, handed = quantize_module._write_qdq_model, []

    def recording_write(prepared, ranges, recipe, output, *weight_scales, **options):
        handed.append({t.name: is_set_aside(t) for t in prepared.graph.initializer})
        real_write(prepared, ranges, recipe, output, *weight_scales, **options)

    monkeypatch.setattr(quantize_module, "_write_qdq_model", recording_write)
    _quantize(model_path, data_path, tmp_path / "q.onnx")
    dry_run, write = handed
    assert not any(dry_run.values())
    assert {"embedding", "up.w", "down.w", "head.w"} <= {name for name, large in write.items() if large}


def test_quantizing_leaves_the_loaded_model_intact(tmp_path) -> None:
    """onnxruntime's pre-processing, on its fallback path, moves weights out of the protobuf it is
    handed; ours is never handed over."""
    model = load_model(save(inverse_model(), tmp_path / "inverse.onnx"))
    before = model.proto.SerializeToString()
    data = load_data(write_npz(tmp_path / "x.npz", x=inverse_inputs()), model)
    quantize_model(model, data, Recipe(), tmp_path / "q.onnx")
    assert model.proto.SerializeToString() == before


def test_model_outputs_keep_their_observed_range(tmp_path) -> None:
    """Clipping a classifier's largest outputs turns its top classes into ties; outputs, and what
    they merely reshape, keep minmax whatever the method."""
    proto = small_cnn()
    graph = proto.graph
    graph.node[-1].output[0] = "logits_flat"
    graph.node.append(helper.make_node("Softmax", ["logits_flat"], ["probs"], name="/head/Softmax", axis=1))
    graph.node.append(helper.make_node("Reshape", ["probs", "shape"], ["out"], name="/head/Reshape"))
    graph.initializer.append(numpy_helper.from_array(np.array([-1, 10, 1, 1], np.int64), "shape"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 10, 1, 1]))
    images = np.random.default_rng(5).standard_normal((32, 3, 16, 16)).astype(np.float32)
    result = _quantize(save(proto, tmp_path / "m.onnx"), write_npz(tmp_path / "d.npz", x=images),
                       tmp_path / "q.onnx", method="percentile", percentile=90.0)
    probs = result.stats["probs"]
    low, high = result.ranges["probs"]  # a Softmax's: its scale 1/K (softmaxscales) widens it by under a step
    assert low == 0.0 and probs.max <= high < probs.max * (1 + 1 / 255)
    assert result.ranges["gap"][1] < result.stats["gap"].max  # inner layers are clipped as asked


def test_an_upsampling_resize_is_int8_though_its_scales_stay_float(tmp_path) -> None:
    """The quantizer quantizes a Resize's data alone; its float scales are no sign of a float layer."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "down.w"], ["d"], name="down", strides=[2, 2]),
             helper.make_node("Resize", ["d", "", "scales"], ["up"], name="up", mode="nearest"),
             helper.make_node("Conv", ["up", "out.w"], ["y"], name="out", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "upsample", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 8, 8])],
        [numpy_helper.from_array(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), "down.w"),
         numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
         numpy_helper.from_array(rng.standard_normal((2, 4, 3, 3)).astype(np.float32), "out.w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model_path = save(model, tmp_path / "m.onnx")
    data_path = write_npz(tmp_path / "x.npz", x=rng.standard_normal((8, 3, 8, 8)).astype(np.float32))
    result = _quantize(model_path, data_path, tmp_path / "q.onnx")
    int8 = onnx.load(str(tmp_path / "q.onnx")).graph.node
    resize = next(node for node in int8 if node.op_type == "Resize")
    assert any(node.op_type == "DequantizeLinear" and node.output[0] == resize.input[0] for node in int8)
    assert any(node.op_type == "QuantizeLinear" and node.input[0] == resize.output[0] for node in int8)
    assert result.float_nodes == []
