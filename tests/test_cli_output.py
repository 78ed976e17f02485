"""What the commands print for a terminal: the profile table's columns and the latencies' units."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from builders import image_copies
from q8studio.__main__ import main
from q8studio.cli.printing import NAME_COLUMN_MAX, print_keep_float, print_profile
from q8studio.core.units import latencies
from q8studio.core.demo import demo_assets
from q8studio.core.imagefolder import REPORT_EVERY
from q8studio.core.kernelprofile import ModelProfile
from q8studio.core.profile import LayerTiming, ProfileReport
from q8studio.core.speedup import KeepFloatOutcome

FUSED = ("Conv (NCHWc) (float)", "QLinearAdd")  # the demo's pointwise Conv kept in float, its Add in int8


def _layer(node: str, float_kernels: tuple[str, ...], int8_kernels: tuple[str, ...]) -> LayerTiming:
    return LayerTiming(node=node, op_type="Conv", members=(node,), float_kernels=float_kernels,
                       int8_kernels=int8_kernels, float_us=12.5, float_glue_us=0.0, int8_us=3.25, int8_glue_us=1.0,
                       macs=65_536, integer_macs=65_536, integer=True)


def _report(layers: list[LayerTiming], latency_ms: tuple[float, float] | None = None) -> ProfileReport:
    run = ModelProfile(kernels=[], run_us=100.0, runs=1, glue_owners={}, absorbed={}, graph=[])
    return ProfileReport(layers, run, run, [], latency_ms=latency_ms)


def _table(out: str) -> list[str]:
    """The header and rows of the profile table: the lines down to its footnote."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    end = next(i for i, line in enumerate(lines) if line.startswith("(microseconds per run"))
    return lines[start:end]


def test_profile_columns_fit_the_longest_layer_and_kernel_names(capsys: pytest.CaptureFixture[str]) -> None:
    """The table cut names at 34, 26 and 28 characters without a mark: "QLinearAdd" read "QLine"."""
    long_node = "/encoder/layers.11/attention/self/query/MatMul"  # 46 characters
    print_profile(_report([_layer("/block1/pointwise/conv/Conv", ("Conv (NCHWc)",), FUSED),
                           _layer(long_node, ("MatMul + Add (float) + Transpose",), ("QGemm",))]))
    header, fused, long = _table(capsys.readouterr().out)
    assert fused.split("  ")[0] == "/block1/pointwise/conv/Conv"
    assert "Conv (NCHWc) (float) + QLinearAdd " in fused and "QLine " not in fused
    assert long.startswith(f"{long_node} MatMul + Add (float) + Transpose ")
    # the numbers stay under their headings, right-aligned, whatever the names' widths
    for heading, value in (("float us", "12.5"), ("int8 us", "3.2"), ("+glue us", "1.0"), ("MACs", "65,536")):
        end = header.index(heading) + len(heading)
        assert fused[end - len(value):end] == value and long[end - len(value):end] == value, heading


def test_a_name_beyond_the_widest_column_loses_its_middle(capsys: pytest.CaptureFixture[str]) -> None:
    node = "/model/" + "very_long_block_name/" * 5 + "conv/Conv"
    print_profile(_report([_layer(node, ("Conv",), ("QLinearConv",))]))
    header, row = _table(capsys.readouterr().out)
    cell = row[:NAME_COLUMN_MAX]
    assert "…" in cell and cell.startswith("/model/very_long") and cell.endswith("conv/Conv")
    assert row[NAME_COLUMN_MAX] == " " and header.index("float32 kernel") == NAME_COLUMN_MAX + 1


@pytest.mark.parametrize("ms, shown", [
    ((0.0129, 0.0197), ("12.9 µs", "19.7 µs")),  # the demo: "0.013" and "0.020" in ms with three decimals
    ((0.1234, 0.9876), ("123.4 µs", "987.6 µs")),
    ((0.75, 1.5), ("0.750 ms", "1.500 ms")),  # one unit for both: ms once either reaches 1 ms
    ((12.34, 123.4), ("12.340 ms", "123.400 ms")),
])
def test_latencies_take_one_unit_and_three_significant_digits(ms: tuple[float, float], shown: tuple[str, str]) -> None:
    assert latencies(*ms) == shown


def test_evaluate_prints_the_demo_latencies_in_microseconds(demo_int8_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """As the window and the README give them ("12 µs"); the JSON keeps milliseconds."""
    assets = demo_assets()
    evaluate = ["evaluate", str(assets.model), str(demo_int8_path), "--data", str(assets.test), "--samples", "20",
                "--latency-runs", "5"]
    assert main(evaluate) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("median latency"))
    found = re.fullmatch(r"median latency +(\d+\.\d) µs +(\d+\.\d) µs   speed-up (\d+\.\d\d)x", line)
    assert found, line
    float_us, int8_us, speedup = map(float, found.groups())
    assert 1.0 <= float_us < 1000.0 and 1.0 <= int8_us < 1000.0 and speedup == pytest.approx(float_us / int8_us, abs=0.02)
    assert main([*evaluate, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0.0 < scores["float32"]["latency_ms"] < 1.0 and 0.0 < scores["int8"]["latency_ms"] < 1.0


def test_profile_and_keep_slow_float_print_latencies_as_evaluate_does(capsys: pytest.CaptureFixture[str]) -> None:
    print_profile(_report([_layer("conv", ("Conv",), ("QLinearConv",))], latency_ms=(0.0104, 0.0279)))
    assert capsys.readouterr().out.splitlines()[0] == ("latency (median, alternating, threads all): "
                                                       "float32 10.4 µs, int8 27.9 µs")
    in_int8 = SimpleNamespace(computes_in_int8=True)
    default = SimpleNamespace(exclude=(), latency_ms=0.0197, report=in_int8)
    chosen = SimpleNamespace(exclude=("/stem/conv/Conv",), latency_ms=0.0121, report=in_int8)
    print_keep_float(KeepFloatOutcome(float_ms=0.0129, candidates=[default, chosen], chosen=chosen))  # type: ignore[list-item]
    assert capsys.readouterr().out.splitlines()[0] == ("speed: float32 12.9 µs; default int8 19.7 µs (ratio 1.53); "
                                                       "written int8 12.1 µs (ratio 0.94)")


def test_profile_of_the_demo_shows_every_kernel_name_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README hunt's run: a BatchNorm kept in float leaves its Conv in float, fused with the int8 Add after it."""
    assets = demo_assets()
    int8 = tmp_path / "ex.onnx"
    assert main(["quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "32", "-o", str(int8),
                 "--exclude", "/block1/pointwise/bn/BatchNormalization", "/block2/Add"]) == 0
    profile = ["profile", str(assets.model), str(int8), "--data", str(assets.test), "--runs", "3",
               "--latency-runs", "0", "--threads", "1"]
    capsys.readouterr()
    assert main(profile) == 0
    rows = {line.split(" ")[0]: line for line in _table(capsys.readouterr().out)[1:]}
    assert main([*profile, "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    for layer in layers:
        for kernels in (layer["float_kernels"], layer["int8_kernels"]):
            assert f" {' + '.join(kernels) or '-'} " in rows[layer["node"]], layer["node"]
    assert any(" + ".join(layer["int8_kernels"]) == " + ".join(FUSED) for layer in layers)


class _Terminal(io.StringIO):
    """Standard error as a terminal: progress is shown only there."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_files_of_a_large_folder_counted_as_they_are_listed(
        demo_int8_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets, folder = demo_assets(), image_copies(tmp_path / "many", REPORT_EVERY + 10)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["evaluate", str(assets.model), str(demo_int8_path), "--data", str(folder),
                 "--preprocess", str(assets.preprocessing)]) == 0
    shown = terminal.getvalue()
    assert f"\rListing images: {REPORT_EVERY:,} so far" in shown
    first_dates = "\rReading file dates: 0/1034"
    assert first_dates + " " * (len(f"Listing images: {REPORT_EVERY:,} so far") - len(first_dates) + 1) in shown
