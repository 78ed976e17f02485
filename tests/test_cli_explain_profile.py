"""`q8studio explain`, `q8studio profile` and `quantize --keep-slow-float` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from q8studio.__main__ import main
from q8studio.cli.printing import print_profile
from q8studio.core.demo import demo_assets
from q8studio.core.kernelprofile import ModelProfile
from q8studio.core.model import load_model
from q8studio.core.profile import LayerTiming, ProfileReport, slower_in_int8


@pytest.fixture(scope="module")
def demo_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assets = demo_assets()
    out = tmp_path_factory.mktemp("cli-explain") / "m.int8.onnx"
    argv = ["quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "100",
            "--granularity", "per-channel", "-o", str(out)]
    assert main(argv) == 0
    return out


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_prints_numbers_worked_example_and_check(demo_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assets = demo_assets()
    code, out, _ = run(["explain", str(demo_int8), "--node", "/block1/depthwise/conv/Conv", "--data", str(assets.test),
                        "--float", str(assets.model), "--sample", "2"], capsys)
    assert code == 0
    assert "depthwise Conv, run by ONNX Runtime as QLinearConv (sample 2)" in out
    for text in ("S_x =", "Z_x =", "S_w per channel (axis 0)", "S_y =", "M0 =", "n =", "receptive field x_q (1x3x3",
                 "acc = Σ", "requantize: round(", "clamp to [0, 255]", "ONNX Runtime's float32 requantization: bit-exact",
                 "SQNR of the int8 output", "removed by the quantizer"):
        assert text in out, text


def test_explain_works_the_residual_relu_through_the_add_computing_it(
        demo_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assets = demo_assets()
    code, out, _ = run(["explain", str(demo_int8), "--node", "/block1/relu/Relu", "--data", str(assets.test),
                        "--float", str(assets.model), "--sample", "4"], capsys)
    assert code == 0
    assert "/block1/Add: Add of two 8-bit tensors, run by ONNX Runtime as QLinearAdd (sample 4)" in out
    assert "note: /block1/relu/Relu is not in the int8 model: /block1/Add computes it" in out
    assert "check: QLinearAdd's float32 ratios (x86): bit-exact with ONNX Runtime" in out
    for text in ("S_a =", "Z_b =", "r_a = S_a/S_y =", "a + b =", "t = a_q·r_a + t =", "float model:"):
        assert text in out, text


def test_explain_json_of_the_final_gemm(demo_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", str(demo_int8), "--node", "/fc/Gemm", "--data", str(demo_assets().test),
                        "--element", "0", "3", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["runtime_kernel"] == "QGemm" and data["example"]["index"] == [0, 3]
    assert data["checks"][1]["exact"] and data["checks"][0]["max_diff"] <= 1


def test_profile_prints_the_per_layer_kernel_table(demo_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assets = demo_assets()
    code, out, _ = run(["profile", str(assets.model), str(demo_int8), "--data", str(assets.test), "--runs", "30",
                        "--latency-runs", "10", "--threads", "1"], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("/block2/depthwise/conv/Conv"))
    assert "Conv (NCHWc)" in row and "QLinearConv" in row
    assert "float32 enters int8 at image (model input)" in out and "float32 leaves int8 at logits (model output)" in out
    assert "integer kernels ran 100.0% of the multiply-accumulates" in out
    assert "int8 pays" in out or "int8 does not pay here" in out


def _conv_row(name: str, float_us: float, int8_us: float) -> LayerTiming:
    return LayerTiming(node=name, op_type="Conv", members=(name,), float_kernels=("Conv",),
                       int8_kernels=("QLinearConv",), float_us=float_us, float_glue_us=0.0, int8_us=int8_us,
                       int8_glue_us=0.0, macs=1000, integer_macs=1000, integer=True)


def test_a_layer_is_called_slower_only_when_its_speed_up_shows_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    """0.4% slower shows as 1.00x and is not called slower, nor offered to keep in float; 1% slower shows 0.99x."""
    run_profile = ModelProfile(kernels=[], run_us=201.0, runs=1, glue_owners={}, absorbed={}, graph=[])
    report = ProfileReport([_conv_row("conv_a", 100.0, 100.4), _conv_row("conv_b", 100.0, 101.0)],
                           run_profile, run_profile, [])
    print_profile(report)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("conv_")}
    assert "1.00x" in rows["conv_a"] and "slower" not in rows["conv_a"]
    assert "0.99x" in rows["conv_b"] and rows["conv_b"].endswith("slower in int8")
    assert slower_in_int8(report) == ["conv_b"] and "slower in int8 (1): conv_b" in out
    assert "1 of 2 layers are slower in int8" in report.verdict()


def test_a_layer_the_int8_model_no_longer_runs_has_no_speed_up(capsys: pytest.CaptureFixture[str]) -> None:
    """A Transpose quantization removed took float time and no int8 time: its speed-up printed as "infx",
    where the JSON writes null."""
    run_profile = ModelProfile(kernels=[], run_us=20.0, runs=1, glue_owners={}, absorbed={}, graph=[])
    removed = LayerTiming(node="tr", op_type="Transpose", members=("tr",), float_kernels=("Transpose",),
                          int8_kernels=(), float_us=6.5, float_glue_us=0.0, int8_us=0.0, int8_glue_us=0.0, macs=0,
                          integer_macs=0, integer=False)
    print_profile(ProfileReport([removed, _conv_row("conv", 10.0, 8.0)], run_profile, run_profile, []))
    out = capsys.readouterr().out
    assert "inf" not in out
    assert next(line for line in out.splitlines() if line.startswith("tr ")).split()[-2:] == ["-", "0"]


def test_profile_json(demo_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assets = demo_assets()
    code, out, _ = run(["profile", str(assets.model), str(demo_int8), "--data", str(assets.test), "--runs", "20",
                        "--latency-runs", "0", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["latency_ms"] is None and data["integer_mac_share"] == 1.0
    assert {row["node"] for row in data["layers"]} >= {"/stem/conv/Conv", "/fc/Gemm"}
    assert data["int8"]["kernel_sum_us"] <= data["int8"]["run_us"]


def test_quantize_keep_slow_float(tmp_path: Path, capsys: pytest.CaptureFixture[str], stem_slower: None) -> None:
    assets = demo_assets()
    out_model = tmp_path / "fast.onnx"
    code, out, _ = run(["quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "50",
                        "-o", str(out_model), "--keep-slow-float", "--data", str(assets.test), "--threads", "1",
                        "--save-recipe", str(tmp_path / "recipe.json"), "--report", str(tmp_path / "r.json")], capsys)
    assert code == 0 and load_model(out_model)
    assert "speed: float32" in out and "(ratio" in out and "kept in float, the model running fastest so" in out
    assert "calibration statistics of 50 samples reused from an earlier run" in out  # no "calibrated in 0.00 s"
    left_in_int8 = any(node.kind == "qdq" for node in load_model(out_model).graph.nodes)
    assert ("nothing is left in int8" in out) == (not left_in_int8)
    recipe = json.loads((tmp_path / "recipe.json").read_text())
    assert recipe["exclude"] and "/stem/conv/Conv" in recipe["exclude"]  # the saved recipe reproduces the export
    speed = json.loads((tmp_path / "r.json").read_text())["keep_slow_float"]  # what chose the layers kept in float
    assert speed["kept_float"] and set(speed["kept_float"]) <= set(recipe["exclude"])
    assert speed["verdict"] in out and speed["candidates"][0]["exclude"] == []


@pytest.mark.parametrize("argv, message", [
    (["explain", "{int8}", "--node", "image_QuantizeLinear", "--data", "{test}"],
     "is QuantizeLinear, not Conv/Gemm/MatMul/Add/Mul/GlobalAveragePool/MaxPool/AveragePool/Sigmoid/LeakyRelu/Concat/"
     "Softmax/Reshape/Flatten/Squeeze/Unsqueeze/Transpose/Slice/Gather"),
    (["explain", "{int8}", "--node", "/stem/bn/BatchNormalization", "--data", "{test}"], "add --float FLOAT.onnx"),
    (["explain", "{int8}", "--node", "/stem/conv/Conv", "--data", "{test}", "--sample", "100000"], "does not exist"),
    (["quantize", "{model}", "--calib", "{calib}", "-o", "{tmp}/x.onnx", "--keep-slow-float"], "needs --data DATA"),
    (["profile", "{model}", "{int8}", "--data", "{test}", "--runs", "0"], "at least one run"),
])
def test_user_errors_are_one_line_with_exit_code_2(
    demo_int8: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assets = demo_assets()
    paths = {"int8": demo_int8, "test": assets.test, "model": assets.model, "calib": assets.calibration, "tmp": tmp_path}
    code, _, err = run([a.format(**paths) for a in argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
