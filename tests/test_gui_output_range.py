"""The Activation tab marks as used the range the run quantized the tensor with.

q8studio gives the model's outputs their observed (minmax) range whatever the clipping method (a
classifier's largest outputs decide its prediction). With method entropy the histogram bolded entropy's
range for the demo's logits, [-7.941, 12.08], while the per-layer table and the written model had
minmax's, [-8.736, 12.08].
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui_actions import QUICK_SAMPLES, RUN_TIMEOUT_MS, click_graph_node, open_demo_window
from q8studio.core.quantize import output_tensors
from q8studio.core.recipe import Recipe
from q8studio.core.tensorview import OUTPUT_KEEPS_RANGE, range_used
from q8studio.gui import formatting as fmt
from q8studio.gui.main_window import MainWindow

LOGITS_NODE = "/fc/Gemm"
INNER_NODE = "/stem/relu/Relu"
BOLD_ENTRY = re.compile(r"<b>(\w+)</b></td><td[^>]*>\[([^\]]*)\]")


def test_a_model_output_uses_minmax_whatever_the_method() -> None:
    ranges = {"logits": (-8.7, 12.1), "hidden": (0.0, 3.0)}
    entropy = Recipe(method="entropy")
    used = range_used("logits", entropy, ranges, {"logits"})
    assert (used.method, used.rmin, used.rmax, used.reason) == ("minmax", -8.7, 12.1, OUTPUT_KEEPS_RANGE)
    used = range_used("hidden", entropy, ranges, {"logits"})
    assert (used.method, used.rmin, used.rmax, used.reason) == ("entropy", 0.0, 3.0, "")
    assert range_used("logits", Recipe(method="minmax"), ranges, {"logits"}).reason == ""  # nothing to explain
    assert range_used("never calibrated", entropy, ranges, {"logits"}) is None


@pytest.fixture
def entropy_run(qtbot, tmp_path: Path) -> MainWindow:
    window = open_demo_window(qtbot, tmp_path, samples=QUICK_SAMPLES)
    window.quantize_panel.method.setCurrentText("entropy")
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert window.session.run is not None and window.session.run.result.recipe.method == "entropy"
    window.histograms.tabs.setCurrentIndex(1)
    return window


def shown_activation(qtbot, window: MainWindow, node: str) -> tuple[str, str, str]:
    """Click ``node`` in the graph; the tensor the Activation tab shows, its bold legend entry and its range."""
    click_graph_node(qtbot, window, node)
    panel = window.histograms
    qtbot.waitUntil(lambda: panel.activation_plot.isVisible() and BOLD_ENTRY.search(panel.method_legend.text())
                    is not None and window.session.selection == node, timeout=20_000)
    qtbot.wait(50)
    tensor = re.search(r"<b>(.*?)</b>", panel.activation_header.text()).group(1)
    method, shown = BOLD_ENTRY.search(panel.method_legend.text()).groups()
    return tensor, method, f"[{shown}]"


def clip_range_in_table(window: MainWindow, node: str) -> str:
    model, column = window.results.model, [key for _, key in window.results.model.columns].index("clip")
    row = next(r for r in range(model.rowCount()) if model.index(r, 0).data(Qt.ItemDataRole.DisplayRole) == node)
    return model.index(row, column).data(Qt.ItemDataRole.DisplayRole)


def test_the_logits_histogram_marks_the_range_the_run_used(qtbot, entropy_run: MainWindow) -> None:
    window, result = entropy_run, entropy_run.session.run.result
    tensor, method, shown = shown_activation(qtbot, window, LOGITS_NODE)
    assert tensor in output_tensors(result.prepared.model)
    used = fmt.value_range(*result.ranges[tensor])
    assert (method, shown) == ("minmax", used)  # was ("entropy", "[-7.941, 12.08]")
    assert shown == clip_range_in_table(window, LOGITS_NODE)  # the histogram and the table agree
    lines = window.histograms.method_lines
    assert lines["minmax"][0].pen.style() == Qt.PenStyle.SolidLine
    assert lines["entropy"][0].pen.style() == Qt.PenStyle.DashLine
    assert OUTPUT_KEEPS_RANGE in window.histograms.activation_header.text()
    assert OUTPUT_KEEPS_RANGE in window.histograms.method_legend.toolTip()

    tensor, method, shown = shown_activation(qtbot, window, INNER_NODE)  # inside the model: the recipe's method
    assert (method, shown) == ("entropy", fmt.value_range(*result.ranges[tensor]))
    assert OUTPUT_KEEPS_RANGE not in window.histograms.activation_header.text()
    assert "bold = used" in window.histograms.activation_header.text()
