"""The GUI's quantize-then-compare run, without a window: results, layer rows, overlay, cancel."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from builders import save, with_argmax
from q8studio.core import preprocess
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.environment import environment
from q8studio.core.errors import Cancelled, Q8Error
from q8studio.core.evaluate import compare_models, require_labels_fit
from q8studio.core.model import load_model
from q8studio.core.progress import CancelToken, Progress
from q8studio.core.recipe import Recipe
from q8studio.core.profile import profile_models
from q8studio.core.report import run_report, to_json
from q8studio.core.workflow import METRICS, overlay_values, quantize_and_compare


def test_run_compares_the_source_model_on_the_evaluation_data(tmp_path: Path) -> None:
    assets = demo_assets()
    model = load_model(assets.model)
    calibration = load_data(assets.calibration, model, samples=48)
    test = load_data(assets.test, model, samples=40)
    stages: list[str] = []
    run = quantize_and_compare(
        model, calibration, test, Recipe(method="percentile"), tmp_path / "m.int8.onnx",
        latency_runs=2, progress=Progress(callback=lambda stage, done, total: stages.append(stage), min_interval_s=0),
    )
    assert run.result.output_path.is_file() and run.int8.path == run.result.output_path
    assert run.comparison.errors.samples == 40 and run.comparison.float32.file_size == model.file_size
    assert run.evaluation_name == assets.test.name
    assert {"Calibrating", "Comparing", "Timing"} <= set(stages)
    again = compare_models(model, run.int8, test, latency_runs=1)
    assert run.comparison.errors.int8_top1 == again.errors.int8_top1
    assert [layer.tensor for layer in run.comparison.errors.layers] == [layer.tensor for layer in again.errors.layers]

    rows = run.layer_rows()
    assert [row.tensor for row in rows] == [layer.tensor for layer in run.comparison.errors.layers]
    for row in rows:
        if row.tensor in run.result.ranges:
            assert (row.clip_min, row.clip_max) == run.result.ranges[row.tensor]
            assert row.observed_min == run.result.stats[row.tensor].min
            assert 0.0 <= row.clipped < 0.01

    for metric in METRICS:
        values = overlay_values(rows, metric, model, run.result.prepared.model)
        assert values and all(math.isfinite(v) for v in values.values())
    sqnr = overlay_values(rows, "sqnr_db", model, run.result.prepared.model)
    relu = next(row for row in rows if row.tensor == "/stem/relu/Relu_output_0")
    assert sqnr["/stem/conv/Conv"] == sqnr["/stem/relu/Relu"] == relu.sqnr_db  # one fused int8 layer


def test_a_model_file_moved_away_after_opening_still_runs_to_the_end(tmp_path: Path) -> None:
    """The window holds the model in memory: the run, its size column included, needs no file."""
    assets = demo_assets()
    path = tmp_path / "moved.onnx"
    path.write_bytes(assets.model.read_bytes())
    model = load_model(path)
    path.unlink()
    data = load_data(assets.test, model, samples=24)
    run = quantize_and_compare(model, data, None, Recipe(samples=24), tmp_path / "m.int8.onnx", latency_runs=1)
    assert run.comparison.float32.file_size == assets.model.stat().st_size
    assert run.comparison.int8.file_size == run.result.output_path.stat().st_size

def test_evaluation_defaults_to_the_calibration_data(tmp_path: Path) -> None:
    assets = demo_assets()
    model = load_model(assets.model)
    calibration = load_data(assets.calibration, model)
    run = quantize_and_compare(model, calibration, None, Recipe(samples=24), tmp_path / "m.onnx", latency_runs=1)
    assert run.comparison.errors.samples == 24


def test_cancel_stops_the_run_before_writing(tmp_path: Path) -> None:
    assets = demo_assets()
    model = load_model(assets.model)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        quantize_and_compare(model, load_data(assets.calibration, model), None, Recipe(), tmp_path / "m.onnx",
                             progress=Progress(cancel_token=token))
    assert not (tmp_path / "m.onnx").exists()


def test_the_source_model_stays_usable_without_sympy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without sympy, onnxruntime's pre-processing strips the weights of the proto it is given."""
    monkeypatch.setitem(sys.modules, "onnxruntime.tools.symbolic_shape_infer", None)  # what a missing sympy does
    monkeypatch.setattr(preprocess, "_onnx_infers_every_shape", lambda proto: False)  # the demo needs no sympy
    assets = demo_assets()
    model = load_model(assets.model)
    before = model.proto.SerializeToString()
    run = quantize_and_compare(model, load_data(assets.calibration, model, samples=16), None, Recipe(),
                               tmp_path / "m.onnx", latency_runs=1)
    assert any("sympy" in note for note in run.result.prepared.notes)  # the fallback path really ran
    assert model.proto.SerializeToString() == before
    assert run.comparison.errors.samples == 16


def test_calibration_labels_the_model_cannot_output_stop_the_run_before_quantizing(tmp_path: Path) -> None:
    """Without evaluation data the run compares on the calibration data: its labels are checked first."""
    assets = demo_assets()
    with np.load(assets.calibration) as calib:
        images = calib["image"][:16]
    path = tmp_path / "calib.npz"
    np.savez(path, image=images, labels=np.full(16, 42))
    model = load_model(assets.model)
    out = tmp_path / "m.onnx"
    with pytest.raises(Q8Error, match="range from 42 to 42.*compares on the calibration data; choose evaluation data"):
        quantize_and_compare(model, load_data(path, model), None, Recipe(), out)
    assert not out.exists()


def test_labels_are_checked_against_the_classes_an_argmax_picks_from(tmp_path: Path) -> None:
    assets = demo_assets()
    model = load_model(save(with_argmax(onnx.load(assets.model)), tmp_path / "argmax.onnx"))
    with np.load(assets.test) as test:
        images, labels = test["image"][:8], test["labels"][:8].copy()
    labels[3] = 12
    np.savez(tmp_path / "bad.npz", image=images, labels=labels)
    with pytest.raises(Q8Error, match="range from .* to 12, but the model's output has 10 classes"):
        require_labels_fit(load_data(tmp_path / "bad.npz", model), model)


def test_a_run_report_says_which_timing_it_gives_as_the_run_s_latency(tmp_path: Path) -> None:
    """The window shows the speed profile's latency once it has one: the report must say the same."""
    assets = demo_assets()
    model = load_model(assets.model)
    calibration = load_data(assets.calibration, model, samples=16)
    run = quantize_and_compare(model, calibration, None, Recipe(), tmp_path / "m.int8.onnx", latency_runs=2)
    timed = profile_models(model, run.int8, calibration, runs=2, warmup=0, latency_runs=2)
    untimed = profile_models(model, run.int8, calibration, runs=2, warmup=0, latency_runs=0)
    comparison = run.comparison
    for profile, expected in [
        (timed, {"float32_ms": timed.latency_ms[0], "int8_ms": timed.latency_ms[1], "speedup": timed.speedup,
                 "timed_by": "profile", "threads": 0}),
        (untimed, {"float32_ms": comparison.float32.latency_ms, "int8_ms": comparison.int8.latency_ms,
                   "speedup": comparison.speedup, "timed_by": "comparison", "threads": 0}),
        (None, {"float32_ms": comparison.float32.latency_ms, "int8_ms": comparison.int8.latency_ms,
                "speedup": comparison.speedup, "timed_by": "comparison", "threads": 0}),
    ]:
        report = json.loads(to_json(run_report(run, profile, source=model.path, calibration=calibration,
                                               exported=None)))
        assert report["latency"] == expected
        assert report["evaluation"]["float32"]["latency_ms"] == comparison.float32.latency_ms
        assert report["profile"] == (json.loads(to_json(profile.to_dict())) if profile is not None else None)
        assert report["output_model"] is None and report["recipe"] == Recipe().to_dict()
        assert report["environment"] == environment() and "environment" not in report["evaluation"]  # said once
        assert report["methods"] is None  # no comparison of clipping methods was made
