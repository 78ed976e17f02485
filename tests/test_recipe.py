"""Recipes: the settings of a run, as typed values and as the JSON a user may edit by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from q8studio.__main__ import main
from q8studio.core.errors import Q8Error
from q8studio.core.recipe import Recipe


def test_recipe_round_trips_through_json(tmp_path: Path) -> None:
    recipe = Recipe(method="entropy", granularity="per-channel", samples=50, exclude=("/fc/Gemm",),
                    symmetric_activations=True, activation_type="int8")
    recipe.save(tmp_path / "r.json")
    assert Recipe.load(tmp_path / "r.json") == recipe


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"symmetric_activations": "false"}, "symmetric_activations must be true or false (got 'false')"),
        ({"samples": 5.5}, "samples must be a whole number (got 5.5)"),
        ({"samples": True}, "samples must be a whole number (got True)"),
        ({"percentile": "99.9"}, "percentile must be a number"),
        ({"histogram_values": None}, "histogram_values must be a whole number"),
        ({"exclude": "/stem/Conv"}, "exclude must be a list of node names (got '/stem/Conv')"),
        ({"exclude": [3]}, "exclude must be a list of node names"),
        ({"exclude": None}, "exclude must be a list of node names (got None)"),
        ({"exclude": {"/stem/Conv": True}}, "exclude must be a list of node names"),
    ],
)
def test_hand_edited_recipe_with_a_wrong_type_is_refused(tmp_path: Path, setting: dict, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"q8studio_recipe": 1, **setting}))
    with pytest.raises(Q8Error, match="^The recipe's " + message.replace("(", r"\(").replace(")", r"\)")):
        Recipe.load(path)


@pytest.mark.parametrize("make, message", [
    (lambda folder: folder / "missing.json", "No such file: {path}"),
    (lambda folder: folder, "{path} is a folder, not a recipe or report."),
    (lambda folder: _written(folder / "garbage.json", b"{garbage"), "garbage.json is not a recipe or report: it is not "
                                                                    "JSON text."),
    (lambda folder: _written(folder / "model.onnx", b"\x08\x07\x12\xa8\xff"), "model.onnx is not a recipe or "
                                                                                "report: it is not JSON text."),
], ids=["missing", "folder", "not-json", "binary"])
def test_a_file_that_is_no_recipe_is_refused_in_one_sentence(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(Q8Error) as refused:
        Recipe.load(path)
    assert str(refused.value) == message.format(path=path)
    assert "Errno" not in str(refused.value) and "codec" not in str(refused.value)


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_a_recipe_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    """Its settings may mean something this version does not know: refuse rather than guess."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"q8studio_recipe": 99, "method": "entropy"}))
    with pytest.raises(Q8Error, match=r"is a recipe of version 99, newer than this q8studio reads \(1\)"):
        Recipe.load(path)
    path.write_text(json.dumps({"q8studio_report": 2, "recipe": {"method": "entropy"}}))
    with pytest.raises(Q8Error, match=r"is a report of version 2, newer than"):
        Recipe.load(path)
    for version in (0, "1", None, True, 1.0):
        path.write_text(json.dumps({"q8studio_recipe": version, "method": "entropy"}))
        with pytest.raises(Q8Error, match="with the version .*, which no q8studio writes"):
            Recipe.load(path)


def test_a_hand_written_recipe_without_the_version_and_a_reports_recipe_load(tmp_path: Path) -> None:
    (tmp_path / "hand.json").write_text(json.dumps({"method": "entropy"}))
    report = {"q8studio_report": 1, "recipe": {**Recipe(method="mse").to_dict()}, "ranges": {}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert Recipe.load(tmp_path / "hand.json") == Recipe(method="entropy")
    assert Recipe.load(tmp_path / "report.json") == Recipe(method="mse")


def test_an_evaluation_report_is_not_taken_for_a_recipe(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"q8studio_report": 1, "float_model": "a.onnx", "int8_model": "b.onnx"}))
    with pytest.raises(Q8Error, match="is a report without a recipe"):
        Recipe.load(path)


def test_command_line_turns_a_recipes_symmetric_activations_off(tmp_path: Path, cnn_path: Path, cnn_data: Path) -> None:
    Recipe(symmetric_activations=True).save(tmp_path / "sym.json")
    out = tmp_path / "o.onnx"
    args = ["quantize", str(cnn_path), "--calib", str(cnn_data), "-o", str(out), "--recipe", str(tmp_path / "sym.json")]
    assert main([*args, "--save-recipe", str(tmp_path / "kept.json")]) == 0
    assert main([*args, "--no-symmetric-activations", "--save-recipe", str(tmp_path / "off.json")]) == 0
    assert Recipe.load(tmp_path / "kept.json").symmetric_activations is True
    assert Recipe.load(tmp_path / "off.json").symmetric_activations is False


def test_unused_settings_are_the_changed_ones_the_method_does_not_read() -> None:
    assert Recipe().unused_settings() == {} and Recipe(method="ema").unused_settings() == {}
    assert Recipe(method="minmax", percentile=99.9, histogram_values=100).unused_settings() == {
        "percentile": 99.9, "histogram_values": 100}
    assert Recipe(method="percentile", percentile=99.9, histogram_values=100).unused_settings() == {}
    assert Recipe(method="entropy", ema_momentum=0.5).unused_settings() == {"ema_momentum": 0.5}
    assert Recipe(method="ema", ema_momentum=0.5, histogram_values=0).unused_settings() == {"histogram_values": 0}
