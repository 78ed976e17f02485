"""Where int8 ran and what it cost: ONNX Runtime's profiler on the demo and on onnx.helper models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import mlp, save, write_npz
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.kernelprofile import _kernel_times, _profile_events
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.profile import (
    RUNTIME_ROW,
    ProfileReport,
    boundary_marks,
    int8_pays,
    kernel_overlay,
    mark_kept_float,
    profile_models,
    slower_in_int8,
    speedup_overlay,
)
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.report import to_json
from q8studio.core.runtimegraph import RuntimeNode, op_family, resolve_name, source_node
from q8studio.core.speedup import SLOWER_IN_INT8, keep_slow_float

# Outside its kernels, ONNX Runtime's executor spends a few microseconds per kernel on every run
# (planning and releasing buffers, and with profiling on, recording the event): about 3 us on the
# development machine. Kernel times must add up to the run time up to that, with room for a busy
# machine; a model with heavy kernels must have almost all of its run time inside them.
PER_KERNEL_OVERHEAD_US = 10.0
FIXED_OVERHEAD_US = 40.0
HEAVY_MODEL_COVERAGE = 0.8
PROFILE = {"runs": 40, "warmup": 5, "threads": 1}


def quantized(model_path: Path, data_path: Path, out: Path, **recipe: object) -> LoadedModel:
    model = load_model(model_path)
    result = quantize_model(model, load_data(data_path, model, samples=50), Recipe(**recipe), out)
    return load_model(result.output_path)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> ProfileReport:
    assets = demo_assets()
    out = tmp_path_factory.mktemp("profile-demo")
    float_model = load_model(assets.model)
    int8 = quantized(assets.model, assets.calibration, out / "q.onnx", granularity="per-channel")
    return profile_models(float_model, int8, load_data(assets.test, float_model, samples=1), latency_runs=20, **PROFILE)


def layer(report: ProfileReport, name: str):
    return next(row for row in report.layers if row.node == name)


def test_quantized_demo_convolutions_run_in_integer_kernels(demo_report: ProfileReport) -> None:
    convs = [row for row in demo_report.layers if row.op_type == "Conv"]
    assert len(convs) == 6
    for row in convs:
        assert "QLinearConv" in row.int8_kernels and row.integer and row.integer_macs == row.macs > 0
        assert any(k.startswith("Conv") for k in row.float_kernels)
    assert layer(demo_report, "/fc/Gemm").int8_kernels == ("QGemm",)
    assert demo_report.integer_mac_share == 1.0 and not demo_report.float_islands
    assert layer(demo_report, "/stem/conv/Conv").macs == 16 * 16 * 16 * 9  # 16 channels of 16x16, 3x3x1 taps


def test_fused_float_nodes_join_the_layer_that_computes_them(demo_report: ProfileReport) -> None:
    stem = layer(demo_report, "/stem/conv/Conv")
    assert set(stem.members) == {"/stem/conv/Conv", "/stem/bn/BatchNormalization", "/stem/relu/Relu"}
    pointwise = layer(demo_report, "/block1/pointwise/conv/Conv")  # float sums the Add into the Conv
    assert "/block1/Add" in pointwise.members and "QLinearAdd" in pointwise.int8_kernels
    float_nodes = {n.name for n in load_model(demo_assets().model).graph.nodes}
    assert float_nodes <= {m for row in demo_report.layers for m in row.members}


@pytest.mark.parametrize("side", ["float32", "int8"])
def test_kernel_times_add_up_to_the_run_time(demo_report: ProfileReport, side: str) -> None:
    profile = getattr(demo_report, side)
    gap = profile.run_us - profile.kernel_us
    assert 0 <= gap <= PER_KERNEL_OVERHEAD_US * len(profile.kernels) + FIXED_OVERHEAD_US
    rows = sum(row.float_total_us if side == "float32" else row.int8_total_us for row in demo_report.layers)
    assert rows == pytest.approx(profile.kernel_us)  # every kernel, glue included, is charged to a layer


def test_float32_enters_and_leaves_int8_at_the_model_edges(demo_report: ProfileReport) -> None:
    edges = {(b.tensor, b.at, b.enters_int8) for b in demo_report.boundaries}
    assert edges == {("image", "model input", True), ("logits", "model output", False)}
    glue = {b.kernel: b.layers for b in demo_report.boundaries}
    assert glue == {"image_QuantizeLinear": ("/stem/conv/Conv",), "logits_DequantizeLinear": ("/fc/Gemm",)}
    assert demo_report.int8.qdq_us > 0 and layer(demo_report, "/stem/conv/Conv").int8_glue_us > 0


def test_slower_layers_and_verdict_are_consistent(demo_report: ProfileReport) -> None:
    slower = slower_in_int8(demo_report)
    assert slower == [row.node for row in demo_report.layers if row.integer and row.int8_total_us > row.float_total_us]
    assert ("does not pay" in demo_report.verdict()) == (demo_report.ratio >= 0.95)
    assert demo_report.verdict().startswith(f"{demo_report.headline()}; ")
    data = json.loads(to_json(demo_report.to_dict()))
    assert data["slower_in_int8"] == slower and len(data["layers"]) == len(demo_report.layers)


def test_graph_overlays_cover_every_node_of_each_layer(demo_report: ProfileReport) -> None:
    speed, kernels = speedup_overlay(demo_report), kernel_overlay(demo_report)
    stem = layer(demo_report, "/stem/conv/Conv")
    assert speed["/stem/relu/Relu"] == speed["/stem/conv/Conv"] == stem.speedup
    assert set(kernels.values()) == {1.0} and set(kernels) == set(speed)
    assert boundary_marks(demo_report) == {"Q": {"/stem/conv/Conv"}, "DQ": {"/fc/Gemm"}}


def test_int8_activations_leave_float_convolutions_between_qdq(tmp_path: Path) -> None:
    """On x86 ONNX Runtime fuses int8-activation QDQ only where it can switch to uint8 (here the 1x1
    convolutions); the other convolutions run in float between Dequantize and Quantize kernels."""
    assets = demo_assets()
    float_model = load_model(assets.model)
    int8 = quantized(assets.model, assets.calibration, tmp_path / "s8.onnx", activation_type="int8")
    report = profile_models(float_model, int8, load_data(assets.test, float_model, samples=1), latency_runs=0, **PROFILE)
    stem = layer(report, "/stem/conv/Conv")
    assert not stem.integer and stem.int8_kernels == ("Conv (float)",) and stem.integer_macs == 0
    assert {"/stem/conv/Conv", "/block1/depthwise/conv/Conv"} <= {row.node for row in report.float_islands}
    assert "QLinearConv" in layer(report, "/block1/pointwise/conv/Conv").int8_kernels
    assert 0.0 < report.integer_mac_share < 0.5
    assert any(b.at == "constant, dequantized on every run" for b in report.boundaries)
    assert kernel_overlay(report)["/stem/conv/Conv"] == 0.0 and "/block1/depthwise/conv/Conv" in boundary_marks(report)["Q"]
    assert report.int8.qdq_us > 0


def conv_stack(channels: int = 48, size: int = 40, depth: int = 4) -> onnx.ModelProto:
    """Convolutions heavy enough that kernels, not executor overhead, fill the run."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(depth):
        w = (rng.standard_normal((channels, channels if i else 3, 3, 3)) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], name=f"/conv{i}/Conv", pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"/relu{i}/Relu"))
        x = f"r{i}"
    graph = helper.make_graph(nodes, "stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, size, size])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_heavy_kernels_account_for_nearly_all_of_the_run(tmp_path: Path) -> None:
    model = save(conv_stack(), tmp_path / "stack.onnx")
    data = write_npz(tmp_path / "x.npz", x=np.random.default_rng(1).standard_normal((4, 3, 40, 40)).astype(np.float32))
    int8 = quantized(model, data, tmp_path / "q.onnx")
    report = profile_models(load_model(model), int8, load_data(data, int8), latency_runs=0, **PROFILE)
    for profile in (report.float32, report.int8):
        assert HEAVY_MODEL_COVERAGE * profile.run_us <= profile.kernel_us <= profile.run_us
    assert [row.node for row in report.layers] == [f"/conv{i}/Conv" for i in range(4)]
    assert all(row.integer and row.macs > 0 for row in report.layers)


def test_keep_slow_float_on_the_demo_writes_the_fastest_candidate(tmp_path: Path, stem_slower: None) -> None:
    assets = demo_assets()
    model = load_model(assets.model)
    outcome = keep_slow_float(model, load_data(assets.calibration, model, samples=50), Recipe(), tmp_path / "k.onnx",
                              load_data(assets.test, model, samples=1), rounds=2, profile_runs=30, latency_runs=20,
                              threads=1)
    assert len(outcome.candidates) >= 2 and outcome.default.exclude == ()
    # the first candidate's calibration serves the others: none calibrates a tensor again
    first = outcome.default.result.stats
    for candidate in outcome.candidates[1:]:
        assert candidate.result.statistics_reused == len([name for name in candidate.result.stats if name in first])
    assert outcome.kept_float and set(outcome.kept_float) <= {n.name for n in model.graph.nodes}
    assert outcome.chosen.latency_ms == min(c.latency_ms for c in outcome.candidates)
    assert outcome.chosen.result.output_path == tmp_path / "k.onnx" and load_model(tmp_path / "k.onnx")
    assert outcome.chosen.int8.path == tmp_path / "k.onnx" and outcome.chosen.int8.file_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.onnx"]
    assert ("does not pay" in outcome.verdict()) == (not outcome.pays)
    count = len(outcome.kept_float)
    assert f"({count} node{'s' if count > 1 else ''} kept in float)" in outcome.verdict()
    assert json.loads(to_json(outcome.to_dict()))["kept_float"] == list(outcome.kept_float)
    reasons = {node.name: node.reason for node in outcome.chosen.result.float_nodes}
    assert set(outcome.kept_float) <= set(reasons)  # listed, and not as if the user had asked
    assert {reasons[name] for name in outcome.kept_float} == {SLOWER_IN_INT8}


# --- tying runtime kernels to source nodes --------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("/fc/Gemm", "/fc/Gemm"),
    ("/stem/conv/Conv_token_1", "/stem/conv/Conv"),
    ("/pool/MaxPool_token_20_token_3", "/pool/MaxPool"),
    ("fused /mm1/MatMul/MatMulAddFusion", "/mm1/MatMul"),
    ("/mm1/MatMul/MatMulAddFusion", "/mm1/MatMul"),
    ("Transpose_token_23", None),
    ("/stem/Other", None),  # a scope is not a node, however its name reads
])
def test_rewritten_kernel_names_resolve_to_whole_source_names(name: str, expected: str | None) -> None:
    names = {"/fc/Gemm", "/stem/conv/Conv", "/pool/MaxPool", "/mm1/MatMul", "/stem"}
    assert resolve_name(name, names) == expected


def test_nchwc_kernels_are_named_after_their_fused_output() -> None:
    graph = load_model(demo_assets().model).graph
    kernel = RuntimeNode("/block1/pointwise/bn/BatchNormalization_output_0_nchwc", "Conv", "com.microsoft.nchwc", (), ())
    assert source_node(kernel, graph) == "/block1/pointwise/conv/Conv"  # walked up from the folded BatchNorm
    assert [op_family(op) for op in ("QLinearConv", "NhwcMaxPool", "QGemm", "FusedConv", "Conv", "QuantizeLinear")] == [
        "Conv", "MaxPool", "Gemm", "Conv", "Conv", "QuantizeLinear"]


def pool_before_quantize(conv: bool, qdq: bool) -> onnx.ModelProto:
    """[Conv + Relu ->] AveragePool -> Reshape [-> Quantize -> Dequantize]: ONNX Runtime moves that Quantize
    up past the Reshape and renames the pool's output ``p_pre_q``, the name its NCHWc kernel is given."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([1, 16], np.int64), "shape")]
    nodes, x = [], "x"
    if conv:
        inits.append(numpy_helper.from_array((rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32), "w"))
        nodes += [helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c"], ["a"], name="/relu/Relu")]
        x = "a"
    nodes += [helper.make_node("AveragePool", [x], ["p"], name="/pool/AveragePool", kernel_shape=[8, 8]),
              helper.make_node("Reshape", ["p", "shape"], ["r"], name="/flat/Reshape")]
    out = "r"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["r", "s", "z"], ["q"], name="r_QuantizeLinear"),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="r_DequantizeLinear")]
        out = "y"
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("conv", [False, True], ids=["reordered-input", "after-nchwc-conv"])
def test_nchwc_kernel_of_a_renamed_tensor_joins_its_model_node(tmp_path: Path, conv: bool) -> None:
    float_model = load_model(save(pool_before_quantize(conv, qdq=False), tmp_path / "f.onnx"))
    int8 = load_model(save(pool_before_quantize(conv, qdq=True), tmp_path / "q.onnx"))
    data = write_npz(tmp_path / "x.npz", x=np.random.default_rng(1).standard_normal((1, 16, 8, 8)).astype(np.float32))
    report = profile_models(float_model, int8, load_data(data, float_model), latency_runs=0, **PROFILE)
    assert "p_pre_q_nchwc" in {k.name for k in report.int8.kernels}  # the rename this test is about
    pool = layer(report, "/pool/AveragePool")
    assert pool.float_kernels == ("AveragePool (NCHWc)",) and pool.int8_kernels == ("AveragePool (NCHWc) (float)",)
    assert pool.float_us > 0 and pool.int8_us > 0
    nodes = {n.name for n in int8.graph.nodes}
    assert {row.node for row in report.layers} <= nodes
    assert set(slower_in_int8(report)) | {row.node for row in report.float_islands} <= nodes


def test_kernels_no_model_node_accounts_for_are_not_offered_to_keep_in_float(demo_report: ProfileReport) -> None:
    stray = replace(demo_report.layers[0], node="t_pre_q_nchwc", op_type=RUNTIME_ROW, members=("t_pre_q_nchwc",),
                    float_kernels=(), float_us=0.0, float_glue_us=0.0, int8_kernels=("AveragePool (NCHWc) (float)",),
                    int8_us=5.0, int8_glue_us=0.0, macs=0, integer_macs=0, integer=False)
    report = replace(demo_report, layers=[*demo_report.layers, stray])
    assert stray.int8_total_us > stray.float_total_us and not stray.slower_in_int8
    assert stray.node not in slower_in_int8(report) and stray not in report.float_islands


def test_a_layer_float_in_both_models_is_never_slower_in_int8(demo_report: ProfileReport) -> None:
    """Once a layer is kept in float, its two timings are float against float: their difference is noise."""
    kept = [replace(row, int8_kernels=tuple(f"{k} (float)" for k in row.float_kernels), integer=False,
                    integer_macs=0, int8_us=row.float_total_us + 1.0) for row in demo_report.layers]
    report = replace(demo_report, layers=kept)
    assert all(row.int8_total_us > row.float_total_us for row in kept)
    assert slower_in_int8(report) == [] and not any(row.slower_in_int8 for row in kept)
    assert f"0 of {len(kept)} layers are slower in int8" in report.verdict()
    # nor does int8 pay, or fail to, when no layer computes in int8: two float models differ by noise
    faster = replace(report, latency_ms=(1.0, 0.5))
    assert not faster.pays
    assert faster.headline() == "No layer computes in int8: the int8 model takes 0.50x the float32 time"


# --- layers kept in float are not float islands -----------------------------------------------


def demo_keeping(tmp_path: Path, exclude: tuple[str, ...]) -> tuple[ProfileReport, ProfileReport]:
    """The demo quantized with ``exclude`` kept in float, profiled knowing which nodes its recipe kept in
    float (as the window does) and from the two models alone (as ``q8studio profile`` does)."""
    assets = demo_assets()
    model = load_model(assets.model)
    result = quantize_model(model, load_data(assets.calibration, model, samples=50), Recipe(exclude=exclude),
                            tmp_path / "q.onnx")
    data = load_data(assets.test, model, samples=1)
    told = profile_models(model, result.int8, data, latency_runs=0, kept_float=result.kept_float, **PROFILE)
    return told, profile_models(model, result.int8, data, latency_runs=0, **PROFILE)


def test_layers_kept_in_float_are_listed_apart_from_float_islands(tmp_path: Path) -> None:
    # a BatchNorm is named as the user sees it: pre-processing folds it into the stem Conv, kept with it
    told, untold = demo_keeping(tmp_path, ("/stem/bn/BatchNormalization", "/fc/Gemm"))
    assert told.computes_in_int8 and not layer(told, "/fc/Gemm").integer
    assert [row.node for row in told.kept_in_float] == ["/stem/conv/Conv", "/fc/Gemm"]
    assert told.float_islands == []
    data = json.loads(to_json(told.to_dict()))
    assert data["kept_in_float"] == ["/stem/conv/Conv", "/fc/Gemm"] and data["float_islands"] == []
    assert [row["node"] for row in data["layers"] if row["kept_float"]] == data["kept_in_float"]
    # the int8 file alone says it too: its kept layers read a DequantizeLinear written out in float ops
    assert [row.node for row in untold.kept_in_float] == ["/stem/conv/Conv", "/fc/Gemm"]
    assert untold.float_islands == []
    # float32 leaves int8 before /fc/Gemm: at the tensor the float model names, not the Dequantize's output
    float_tensors = load_model(demo_assets().model).graph.tensors
    for report in (told, untold):
        leaving = [(b.tensor, b.layers) for b in report.boundaries if not b.enters_int8 and not b.of_constant]
        assert leaving == [("/flatten/Flatten_output_0", ("/flatten/Flatten",))] and leaving[0][0] in float_tensors


def test_with_every_layer_kept_in_float_there_are_no_islands(tmp_path: Path) -> None:
    """What keeping the slower layers in float does on a CPU where int8 pays nowhere."""
    everything = tuple(node.name for node in load_model(demo_assets().model).quantizable_nodes())
    told, untold = demo_keeping(tmp_path, everything)
    for report in (told, untold):
        assert not report.computes_in_int8 and report.float_islands == [] and report.integer_mac_share == 0.0
    assert told.kept_in_float == [row for row in told.layers if row.in_model]
    assert [row.node for row in untold.kept_in_float] == [row.node for row in told.kept_in_float]  # the file lists them


def test_only_layers_holding_a_kept_node_count_as_kept(demo_report: ProfileReport) -> None:
    """Kept Conv -> MaxPool reading its float output -> Quantize/Dequantize -> int8 Conv -> float Relu: the
    MaxPool stays float because the Conv does, but nobody kept it: like the Relu it is left in float, so the
    kept count is the nodes asked for, as every view counts them."""
    template = demo_report.layers[0]
    rows = [replace(template, node=name, members=(name,), integer=integer)
            for name, integer in (("/a/Conv", False), ("/p/MaxPool", False), ("/b/Conv", True), ("/c/Relu", False))]
    marked = mark_kept_float(rows, {"/a/Conv", "/b/Conv"})  # /b/Conv runs in integers all the same
    assert [row.kept_float for row in marked] == [True, False, False, False]
    report = replace(demo_report, layers=marked)
    assert [row.node for row in report.float_islands] == [row.node for row in report.left_in_float] == [
        "/p/MaxPool", "/c/Relu"]
    assert [row.node for row in report.kept_in_float] == ["/a/Conv"]
    assert mark_kept_float(rows, ()) == rows


def scale_shift_block(channels: int = 16, size: int = 16) -> onnx.ModelProto:
    """A DenseNet unit: Conv -> BN -> Mul by an Unsqueeze'd scale -> Add of an Unsqueeze'd shift -> Relu,
    MaxPool, then BN -> Mul -> Add -> Relu -> Conv, and a Concat of the pool and that Conv.

    Float ONNX Runtime folds the first chain into one NCHWc Conv named after the Relu's output; the
    Unsqueeze nodes come after the data nodes they feed. The second BN and Mul read the pool's
    output, which the Concat reads too: nothing folds them, and NCHWc runs each as a depthwise
    convolution named ``<output>_bn_nchwc`` / ``<output>_mul_nchwc``. In int8 the Concat becomes a
    QLinearConcat, whose first input is a float scale, and the Add absorbs the Relu after it.
    """
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([1, 2], np.int64), "axes")]
    nodes = []

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def conv(scope: str, x: str, inputs: int) -> str:
        w = init(f"{scope}/w", rng.standard_normal((channels, inputs, 3, 3)) * 0.2)
        nodes.append(helper.make_node("Conv", [x, w], [f"{scope}/c"], name=f"{scope}/conv/Conv", pads=[1, 1, 1, 1]))
        return f"{scope}/c"

    def scale_shift(scope: str, x: str) -> str:
        bn = [init(f"{scope}/bn_{key}", rng.uniform(low, high, channels))
              for key, low, high in (("scale", 0.5, 1.5), ("bias", -0.1, 0.1), ("mean", -0.1, 0.1), ("var", 0.5, 1.5))]
        s, t = init(f"{scope}/s", rng.uniform(0.5, 1.5, channels)), init(f"{scope}/t", rng.uniform(-0.1, 0.1, channels))
        nodes.extend([
            helper.make_node("BatchNormalization", [x, *bn], [f"{scope}/b"], name=f"{scope}/bn/BatchNormalization"),
            helper.make_node("Unsqueeze", [s, "axes"], [f"{scope}/us"], name=f"{scope}/Unsqueeze"),
            helper.make_node("Mul", [f"{scope}/b", f"{scope}/us"], [f"{scope}/m"], name=f"{scope}/Mul"),
            helper.make_node("Unsqueeze", [t, "axes"], [f"{scope}/ut"], name=f"{scope}/Unsqueeze_1"),
            helper.make_node("Add", [f"{scope}/m", f"{scope}/ut"], [f"{scope}/a"], name=f"{scope}/Add"),
            helper.make_node("Relu", [f"{scope}/a"], [f"{scope}/r"], name=f"{scope}/Relu"),
        ])
        return f"{scope}/r"

    stem = scale_shift("/stem", conv("/stem", "x", 3))
    nodes.append(helper.make_node("MaxPool", [stem], ["p"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]))
    block = conv("/block", scale_shift("/block", "p"), channels)
    nodes.append(helper.make_node("Concat", ["p", block], ["y"], name="/block/Concat", axis=1))
    half = size // 2
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2 * channels, half, half])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.fixture(scope="module")
def dense_report(tmp_path_factory: pytest.TempPathFactory) -> ProfileReport:
    out = tmp_path_factory.mktemp("profile-dense")
    model = save(scale_shift_block(), out / "dense.onnx")
    data = write_npz(out / "x.npz", x=np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32))
    float_model = load_model(model)
    return profile_models(float_model, quantized(model, data, out / "q.onnx"), load_data(data, float_model),
                          latency_runs=0, **PROFILE)


def test_a_conv_folding_computed_scale_and_shift_keeps_its_float_kernel(dense_report: ProfileReport) -> None:
    assert "/stem/r_nchwc" in {k.name for k in dense_report.float32.kernels}  # named after the Relu's output
    stem = layer(dense_report, "/stem/conv/Conv")
    assert stem.float_kernels == ("Conv (NCHWc)",) and stem.int8_kernels == ("QLinearConv",)
    assert stem.float_us > 0 and stem.int8_us > 0
    assert {"/stem/bn/BatchNormalization", "/stem/Mul", "/stem/Add", "/stem/Relu"} <= set(stem.members)
    assert layer(dense_report, "/block/conv/Conv").float_kernels == ("Conv (NCHWc)",)


def test_batchnorm_and_mul_run_as_depthwise_convolutions_keep_their_own_rows(dense_report: ProfileReport) -> None:
    kernels = {k.name: k.node for k in dense_report.float32.kernels}
    assert kernels["/block/b_bn_nchwc"] == "/block/bn/BatchNormalization"
    assert kernels["/block/m_mul_nchwc"] == "/block/Mul"
    for name in ("/block/bn/BatchNormalization", "/block/Mul"):
        row = layer(dense_report, name)
        assert row.float_kernels == ("Conv (NCHWc)",) and row.float_us > 0 and row.int8_kernels
    nodes = {node.name for node in scale_shift_block().graph.node}
    assert {row.node for row in dense_report.layers} <= nodes  # no row named after a runtime tensor
    assert all(row.float_kernels and row.int8_kernels for row in dense_report.layers)  # no "infx" or "0.00x"


def test_a_relu_the_int8_model_dropped_joins_the_add_that_absorbed_it(dense_report: ProfileReport) -> None:
    add = layer(dense_report, "/block/Add")
    assert "/block/Relu" in add.members and add.float_kernels == ("Add", "Relu") and add.int8_kernels == ("QLinearAdd",)


def test_qlinear_concat_is_an_integer_kernel(dense_report: ProfileReport) -> None:
    """QLinearConcat's first input is the output scale (float32); its data inputs are 8-bit."""
    concat = layer(dense_report, "/block/Concat")
    assert concat.int8_kernels == ("QLinearConcat",) and concat.integer
    assert concat not in dense_report.float_islands
    assert [row.node for row in dense_report.float_islands] == ["/block/bn/BatchNormalization"]


def test_whether_int8_pays_agrees_with_the_ratio_as_printed() -> None:
    """Verdicts print the ratio to two decimals: 0.9496 shows as 0.95, which does not pay."""
    assert int8_pays(0.9449) and int8_pays(0.5)
    assert not int8_pays(0.9496) and not int8_pays(0.95) and not int8_pays(1.2)


# --- what the profile compares: a float model and its QDQ int8 model --------------------------


@pytest.fixture
def mlp_files(tmp_path: Path) -> tuple[Path, Path]:
    data = write_npz(tmp_path / "x.npz", x=np.random.default_rng(1).standard_normal((20, 20)).astype(np.float32))
    return save(mlp(), tmp_path / "mlp.onnx"), data


@pytest.mark.parametrize("quantization, found", [
    ("qoperator", "QGemm/QLinearAdd/QLinearMatMul operators (the QOperator format)"),
    ("dynamic", "DynamicQuantizeLinear/MatMulInteger operators (dynamic quantization)"),
])
def test_an_int8_model_not_in_qdq_format_is_refused_in_one_line(
    mlp_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], quantization: str, found: str
) -> None:
    """Those formats replace the float operators the profile ties kernels to: it paired float layers with the
    wrong kernels and called every int8 layer slower, or 0% of the MACs integer, instead of refusing."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_dynamic, quantize_static

    from q8studio.__main__ import main

    model, data = mlp_files
    int8 = model.with_name(f"{quantization}.onnx")
    if quantization == "dynamic":
        quantize_dynamic(str(model), str(int8))
    else:
        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.feeds = iter([{"x": row[None]} for row in np.load(data)["x"]])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.feeds, None)

        quantize_static(str(model), str(int8), Reader(), quant_format=QuantFormat.QOperator)
    code = main(["profile", str(model), str(int8), "--data", str(data), "--runs", "2", "--latency-runs", "0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{int8.name} has {found}" in err and "QDQ int8 model" in err


def test_a_model_kept_in_float_throughout_lists_one_name_per_layer_kept(
    mlp_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every node excluded: pre-processing fused mm1 + add1 into ``mm1/MatMulAddFusion``, which shares its row with
    relu1. The summary counted 3 layers and named 5 nodes, and called a model float throughout free of islands."""
    from q8studio.cli.printing import print_profile

    model_path, data_path = mlp_files
    model = load_model(model_path)
    data = load_data(data_path, model)
    exclude = tuple(node.name for node in model.graph.nodes)
    result = quantize_model(model, data, Recipe(exclude=exclude), model_path.with_name("q.onnx"))
    for kept in (result.kept_float, None):  # as the window does, and from the file's metadata
        report = profile_models(model, result.int8, data, latency_runs=0, kept_float=kept, **PROFILE)
        assert not report.computes_in_int8
        assert [row.kept_label for row in report.kept_in_float] == ["mm1", "gemm2", "gemm3"]
        print_profile(report)
        out = capsys.readouterr().out
        assert "kept in float (3): mm1, gemm2, gemm3\n" in out
        assert "float islands" not in out and "the int8 model computes in float throughout" in out


def test_profile_files_are_read_a_line_at_a_time_or_whole(tmp_path: Path) -> None:
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = ort.InferenceSession(str(demo_assets().model), options, providers=["CPUExecutionProvider"])
    for _ in range(4):
        session.run(None, {"image": np.zeros((1, 1, 16, 16), np.float32)})
    path = Path(session.end_profiling())
    every = json.loads(path.read_text())
    assert list(_profile_events(path, '"model_run"')) == [e for e in every if e["name"] == "model_run"]
    one_line = tmp_path / "one_line.json"  # laid out otherwise: parsed whole
    one_line.write_text(json.dumps(every))
    assert list(_profile_events(one_line, '"model_run"')) == every
    times, run_us, integer = _kernel_times(path, warmup=1)
    assert (times, run_us, integer) == _kernel_times(one_line, warmup=1)
    kernels = {e["name"].removesuffix("_kernel_time") for e in every if e["name"].endswith("_kernel_time")}
    assert set(times) == kernels and 0 < sum(times.values()) <= run_us and not integer  # a float model
