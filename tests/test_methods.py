"""Every clipping method tried on one calibration: the same numbers as quantizing with each alone."""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path

import numpy as np
import pytest

from builders import save, small_cnn, write_npz
from q8studio.__main__ import main
from q8studio.cli.parser import METHOD_CHOICES
from q8studio.core.clipping import METHODS
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Cancelled, Q8Error
from q8studio.core.evaluate import analyse_errors
from q8studio.core.methods import MethodComparison, MethodScore, compare_methods
from q8studio.core.model import load_model
from q8studio.core.progress import CancelToken, Progress
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe

RECIPE = Recipe(granularity="per-channel", samples=100)


@pytest.fixture(scope="module")
def demo():
    assets = demo_assets()
    model = load_model(assets.model)
    return model, load_data(assets.calibration, model), load_data(assets.test, model).limited(120)


def test_each_score_is_that_of_quantizing_with_the_method_alone(demo, tmp_path) -> None:
    model, calibration, evaluation = demo
    stages: list[str] = []
    scratch_before = set(Path(tempfile.gettempdir()).glob("q8studio-methods-*"))
    comparison = compare_methods(model, calibration, evaluation, RECIPE,
                                 progress=Progress(lambda stage, done, total: stages.append(stage)))
    assert set(Path(tempfile.gettempdir()).glob("q8studio-methods-*")) == scratch_before  # its int8 models are gone
    assert [score.method for score in comparison.scores] == list(METHODS) and comparison.samples == 120
    for score in comparison.scores:
        alone = quantize_model(model, calibration, RECIPE.with_changes(method=score.method), tmp_path / "m.onnx")
        errors = analyse_errors(model, alone.int8, evaluation)
        assert (score.int8_top1, score.agreement) == (errors.int8_top1, errors.agreement)
        assert score.output == "logits" and score.output_sqnr_db == pytest.approx(errors.outputs["logits"].sqnr_db)
        assert score.worst_layer == errors.layers[0]
    assert comparison.float_top1 == errors.float_top1
    # calibrated by the first method only; the others reuse its statistics
    calibrating = {stage.split(":")[0] for stage in stages if stage.endswith(": Calibrating")}
    assert calibrating == {"minmax (1 of 5)"}
    assert any(stage.startswith("ema (5 of 5): Reusing") for stage in stages)


def test_the_best_is_the_most_accurate_then_the_closest() -> None:
    def score(method: str, top1: float | None, agreement: float, sqnr: float) -> MethodScore:
        return MethodScore(method, top1, agreement, "y", sqnr, None)

    labelled = MethodComparison(RECIPE, 10, 0.9, [score("minmax", 0.8, 1.0, 40.0), score("mse", 0.9, 0.9, 20.0),
                                                  score("ema", 0.9, 0.9, 30.0)])
    assert labelled.best.method == "ema"  # top-1 first, SQNR breaks the tie
    unlabelled = MethodComparison(RECIPE, 10, None, [score("minmax", None, 0.95, 40.0), score("mse", None, 0.97, 20.0)])
    assert unlabelled.best.method == "mse" and json.loads(json.dumps(unlabelled.to_dict()))["best"] == "mse"


def test_labels_that_do_not_fit_are_refused_before_calibrating(tmp_path) -> None:
    model_path = save(small_cnn(), tmp_path / "cnn.onnx")
    x = np.random.default_rng(0).standard_normal((6, 3, 16, 16)).astype(np.float32)
    model = load_model(model_path)
    data = load_data(write_npz(tmp_path / "d.npz", x=x, labels=np.full(6, 99)), model)
    stages: list[str] = []
    with pytest.raises(Q8Error, match="labels"):
        compare_methods(model, data, data, Recipe(), progress=Progress(lambda s, d, t: stages.append(s)))
    assert not stages


def test_unknown_methods_are_refused(demo) -> None:
    model, calibration, evaluation = demo
    with pytest.raises(Q8Error, match="^Choose methods among minmax, percentile, entropy, mse, ema"):
        compare_methods(model, calibration, evaluation, RECIPE, methods=("minmax", "kl"))


def test_cancel_stops_the_comparison(demo) -> None:
    model, calibration, evaluation = demo
    token = CancelToken()

    def cancel_on_second_method(stage: str, done: int, total: int) -> None:
        if stage.startswith("percentile"):
            token.cancel()

    with pytest.raises(Cancelled):
        compare_methods(model, calibration, evaluation, RECIPE, progress=Progress(cancel_on_second_method, token))


def test_the_command_line_lists_every_method_and_the_best(capsys) -> None:
    assets = demo_assets()
    common = ["methods", str(assets.model), "--calib", str(assets.calibration), "--samples", "100",
              "--data", str(assets.test), "--eval-samples", "120", "--granularity", "per-channel"]
    assert main(common) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in METHODS]
    assert rows == list(METHODS)
    assert main([*common, "--methods", "minmax", "mse", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["method"] for m in report["methods"]] == ["minmax", "mse"] and report["samples"] == 120
    assert report["best"] in ("minmax", "mse") and report["recipe"]["granularity"] == "per-channel"
    assert report["environment"]["software"]["q8studio"]


def test_the_command_line_prints_the_quantize_command_that_writes_the_best(capsys, tmp_path, monkeypatch) -> None:
    """It used to print the model, data and method followed by "and the settings above"."""
    assets = demo_assets()
    assert main(["methods", str(assets.model), "--calib", str(assets.calibration), "--samples", "100",
                 "--data", str(assets.test), "--eval-samples", "120", "--methods", "minmax", "percentile",
                 "--percentile", "99.9", "--granularity", "per-channel", "--no-symmetric-activations",
                 "--exclude", "/fc/Gemm", "--exclude", "/stem/conv/Conv"]) == 0
    out = capsys.readouterr().out
    best = next(line.split()[2] for line in out.splitlines() if line.startswith("best here: "))
    command = shlex.split(out.splitlines()[-1].removeprefix("to write it: "))
    assert command[:2] == ["q8studio", "quantize"] and ("--percentile" in command) == (best == "percentile")
    monkeypatch.chdir(tmp_path)
    assert main(command[1:]) == 0
    written = capsys.readouterr().out
    assert written.startswith(f"wrote digits_cnn.int8.onnx  ({best}, per-channel, activations uint8)\n")
    assert "/fc/Gemm [Gemm]: kept in float on request" in written and "/stem/conv/Conv [Conv]: kept" in written
    assert "calibrated on 100 samples in" in written and (tmp_path / "digits_cnn.int8.onnx").is_file()


@pytest.mark.parametrize(("options", "reason"), [
    (["--methods", "minmax", "--percentile", "99.9"], "--percentile applies only to percentile, which --methods "
                                                      "leaves out."),
    (["--eval-samples", "0"], "--eval-samples must be at least 1"),
])
def test_options_that_cannot_act_are_refused_in_one_line(capsys, options: list[str], reason: str) -> None:
    assets = demo_assets()
    assert main(["methods", str(assets.model), "--calib", str(assets.calibration), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"q8studio: error: {reason}") and err.count("\n") == 1


def test_the_parser_offers_the_cores_methods() -> None:
    assert METHOD_CHOICES == METHODS
