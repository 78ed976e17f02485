"""Explain on an int8 Softmax: ONNX Runtime's QLinearSoftmax (a table of exponentials, a float32 sum, K =
floor(1/S_y)) worked through on a Conv -> Softmax -> Conv network quantized by q8studio, against ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

from builders import save, softmax_net, write_npz
from q8studio.__main__ import main
from q8studio.core.data import load_data
from q8studio.core.errors import Q8Error
from q8studio.core.explain import explain_node
from q8studio.core.explainsoftmax import SoftmaxExplanation
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe

NODE = "/attn/Softmax"


@pytest.fixture(scope="module")
def softmax_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """softmax_net quantized with uint8 and int8 activations, its opset-11 form per tensor (which keeps the
    opset, so that the softmax flattens from its axis), and the net quantized by onnxruntime's quantize_static:
    paths under "float", "float11", "data", "uint8", "int8", "opset11", "ort"."""
    folder = tmp_path_factory.mktemp("softmax")
    images = np.random.default_rng(0).standard_normal((6, 3, 12, 12), np.float32)
    paths = {"float": save(softmax_net(), folder / "sm.onnx"),
             "float11": save(softmax_net(opset=11), folder / "sm11.onnx"),
             "data": write_npz(folder / "x.npz", x=images)}
    for name, source, recipe in (("uint8", "float", Recipe()), ("int8", "float", Recipe(activation_type="int8")),
                                 ("opset11", "float11", Recipe(granularity="per-tensor"))):
        model = load_model(paths[source])
        paths[name] = folder / f"sm.{name}.onnx"
        quantize_model(model, load_data(paths["data"], model), recipe, paths[name])
    paths["ort"] = folder / "sm.ort.onnx"
    quantize_static(str(paths["float"]), str(paths["ort"]), Samples(images), quant_format=QuantFormat.QDQ)
    return paths


class Samples(CalibrationDataReader):
    """Each image as one calibration batch, as quantize_static reads them."""

    def __init__(self, images: np.ndarray) -> None:
        self.batches = iter({"x": image[None]} for image in images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def explain(paths: dict[str, Path], name: str, sample: int = 1, **options) -> SoftmaxExplanation:
    """``NODE`` of model ``name`` of the fixture explained on ``sample``, the float model beside it."""
    int8 = load_model(paths[name])
    float_model = load_model(paths["float11" if name == "opset11" else "float"])
    e = explain_node(int8, NODE, load_data(paths["data"], int8), sample, float_model, **options)
    assert isinstance(e, SoftmaxExplanation)
    return e


@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
def test_an_int8_softmax_is_explained_bit_exact(softmax_models: dict[str, Path], activation_type: str) -> None:
    e = explain(softmax_models, activation_type)
    assert e.runtime_kernel == "QLinearSoftmax" and e.kind == "Softmax" and e.x.dtype == activation_type
    assert e.checks[0].bit_exact and e.checks[0].total == e.runtime.size == 8 * 12 * 12
    assert e.axis == 1 and not e.flattened and e.length == 8
    assert e.multiplier == np.floor(1 / np.float32(e.y.scale))
    row, ex = e.row, e.example
    assert row.x_q.size == 8 and np.array_equal(row.kernel_y_q, row.runtime_y_q)
    b, _, h, w = ex.index
    assert row.runtime_y_q.tolist() == e.runtime[b, :, h, w].tolist() and ex.x_max == int(row.x_q.max())
    assert ex.kernel_y_q == ex.runtime_y_q == int(e.runtime[ex.index])
    assert ex.distance == ex.x_max - ex.x_q and row.distances[ex.position] == ex.distance
    assert ex.quotient == pytest.approx(ex.entry * e.multiplier / ex.total, rel=1e-12)
    assert abs(ex.definition_y_q - ex.kernel_y_q) <= 1
    assert e.sqnr_db is not None and e.sqnr_db > 25
    assert f"K = floor(1/S_y) = floor({1 / float(np.float32(e.y.scale)):.6f}) = {e.multiplier:g}" in e.steps()
    assert json.loads(json.dumps(e.to_dict()))["row"]["x_q"] == row.x_q.tolist()


def test_quantize_statics_scale_of_1_over_255_gives_k_254_and_explain_names_it(softmax_models: dict[str, Path]
                                                                               ) -> None:
    """float32(1/255) lies a hair above 1/255, so floor(1/S_y) = 254: every output runs 0.4% low."""
    e = explain(softmax_models, "ort")
    assert np.float32(e.y.scale) == np.float32(1 / 255) and e.multiplier == 254
    named = "ONNX Runtime multiplies by K = floor(1/S_y) = 254, not 1/S_y = 255"
    assert any(note.startswith(named) for note in e.notes)
    kernel, definition = e.checks
    assert kernel.bit_exact and definition.reference.startswith("dequantize, softmax, quantize")
    assert 0 < definition.differing and definition.max_diff == 1 and "floor(1/S_y)" in definition.cause
    assert mean_row_steps(e) == pytest.approx(254, abs=0.5)  # a row's probabilities add up to 254/255, not 1


def mean_row_steps(e: SoftmaxExplanation) -> float:
    """The output steps y_q - Z_y of a row (a pixel's 8 channels), added up and averaged over the rows: 1/S_y
    where the probabilities add up to 1, give or take the rounding of each."""
    steps = e.runtime.astype(np.int64) - int(e.y.zero_point)
    return float(steps.sum(axis=1).mean())


def test_q8studio_gives_the_output_a_whole_reciprocal_scale_so_the_kernel_meets_the_definition(
        softmax_models: dict[str, Path]) -> None:
    e = explain(softmax_models, "uint8")
    assert 1 / float(np.float32(e.y.scale)) - e.multiplier < 1e-4
    assert all(check.bit_exact for check in e.checks)
    assert not any("floor(1/S_y)" in note for note in e.notes)
    assert mean_row_steps(e) == pytest.approx(e.multiplier, abs=0.5)


def test_before_opset_13_a_row_holds_every_value_from_the_axis_on(softmax_models: dict[str, Path]) -> None:
    e = explain(softmax_models, "opset11")
    assert load_model(softmax_models["opset11"]).opset == 11
    assert e.flattened and e.length == 8 * 12 * 12 and e.row.x_q.size == e.length
    assert e.checks[0].bit_exact and e.runtime_kernel == "QLinearSoftmax"
    assert e.row_summary() == "axis 1 on (flattened, opset < 13)"


def test_the_chosen_element_is_worked_with_its_row(softmax_models: dict[str, Path]) -> None:
    e = explain(softmax_models, "int8", sample=0, element=(0, 5, 3, 7))
    assert e.example.index == (0, 5, 3, 7) and e.example.position == 5
    assert e.example.x_q == int(e.row.x_q[5]) and e.example.runtime_y_q == int(e.runtime[0, 5, 3, 7])
    assert e.row.runtime_y_q.tolist() == e.runtime[0, :, 3, 7].tolist()


def test_a_softmax_kept_in_float_is_refused_with_the_reason(tmp_path: Path, softmax_models: dict[str, Path]) -> None:
    model = load_model(softmax_models["float"])
    data = load_data(softmax_models["data"], model)
    result = quantize_model(model, data, Recipe(exclude=(NODE,)), tmp_path / "kept.onnx")
    with pytest.raises(Q8Error, match="runs in float|not re-quantized"):
        explain_node(result.int8, NODE, data, 0)


def test_the_cli_prints_the_row_and_json_holds_it(softmax_models: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["explain", str(softmax_models["uint8"]), "--node", NODE, "--data", str(softmax_models["data"]),
                 "--float", str(softmax_models["float"])]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "Softmax of an 8-bit tensor along axis 1, run by ONNX Runtime as QLinearSoftmax" in out
    assert "bit-exact with ONNX Runtime" in out and "its row: x_q, then y_q (8 values)" in out
    assert "K = floor(1/S_y)" in out and "E[d] = exp((b − d)·S_x)" in out
    assert main(arguments + ["--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["kind"] == "Softmax" and record["length"] == 8 and record["checks"][0]["bit_exact"]
    assert len(record["row"]["kernel_y_q"]) == 8
