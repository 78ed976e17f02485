"""The summary's file sizes say when the float32 file does not store its weights: onnx's light_* models
compute theirs at run time, and a 15 KB float32 file beside a 1.2 MB int8 one looked like int8 grew it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builders import LIGHT_MODELS, write_npz
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import load_model
from q8studio.core.recipe import Recipe
from q8studio.core.workflow import StudioRun, quantize_and_compare
from q8studio.gui.results_panel import SUMMARY_ROWS, ResultsPanel

FILE_SIZE_ROW = SUMMARY_ROWS.index("File size")
NOTE = "* the float32 file computes its weights when it runs"


def run_on(model_path: Path, data_path: Path, output: Path) -> StudioRun:
    model = load_model(model_path)
    data = load_data(data_path, model, samples=2)
    return quantize_and_compare(model, data, None, Recipe(samples=2), output, latency_runs=1)


def file_sizes(qtbot, run: StudioRun) -> tuple[list[str], list[str], str]:
    """The float32 and int8 cells of the File size row, their tooltips, and the notes on the run."""
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.show_run(run)
    items = [panel.summary.item(FILE_SIZE_ROW, column) for column in range(2)]
    return [item.text() for item in items], [item.toolTip() for item in items], panel.notes.text()


def test_a_float32_file_without_its_weights_is_marked_and_explained(qtbot, tmp_path: Path) -> None:
    images = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    data = write_npz(tmp_path / "data.npz", data_0=images)
    run = run_on(LIGHT_MODELS / "light_squeezenet.onnx", data, tmp_path / "squeezenet.int8.onnx")
    parameters = run.comparison.float32.unstored_parameters  # SqueezeNet 1.1's, ConstantOfShape fills included
    assert parameters == load_model(LIGHT_MODELS / "light_squeezenet.onnx").parameter_count() == 1_235_496
    assert run.comparison.float32.file_size < 20_000 < run.comparison.int8.file_size
    (float_size, int8_size), (float_tip, int8_tip), notes = file_sizes(qtbot, run)
    assert float_size.endswith("KB*") and not int8_size.endswith("*")
    assert f"{parameters:,} parameters" in float_tip and "computes them when it runs" in float_tip
    assert int8_tip == float_tip and NOTE in notes


def test_a_float32_file_with_its_weights_is_not_marked(qtbot, tmp_path: Path) -> None:
    assets = demo_assets()
    run = run_on(assets.model, assets.test, tmp_path / "demo.int8.onnx")
    (float_size, int8_size), tips, notes = file_sizes(qtbot, run)
    assert "*" not in float_size + int8_size and tips == ["", ""] and NOTE not in notes
