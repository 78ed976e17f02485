"""An already-quantized (QDQ) model opened in the window: it says so at once, shows its int8 weights,
and opens with as much of its graph in view as the zoom allows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gui_actions import tree_rows
from q8studio.core.refusals import quantize_refusal
from q8studio.gui.main_window import MainWindow
from q8studio.gui.results_panel import NO_RUN
from test_gui_window import make_window, plotted


@pytest.fixture
def quantized(qtbot, tmp_path: Path, demo_int8_path: Path) -> MainWindow:
    window = make_window(qtbot, tmp_path / "settings.ini")
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_model(demo_int8_path)
    return window


def _select(qtbot, window: MainWindow, name: str) -> None:
    with qtbot.waitSignal(window.inspect.finished, timeout=5000):
        window.session.select(name)


def test_the_window_says_the_model_is_already_quantized_as_soon_as_it_opens(qtbot, quantized: MainWindow) -> None:
    refusal = quantize_refusal(quantized.session.model)
    assert refusal is not None and "is already quantized" in refusal
    panel = quantized.quantize_panel
    assert panel.refusal_notice.isVisible() and panel.refusal_notice.text() == refusal
    assert not panel.run_button.isEnabled() and not panel.body.isEnabled()
    assert quantized.results.notes.text() == refusal and quantized.results.speed.verdict.text() == refusal
    assert NO_RUN not in quantized.results.notes.text()

    _select(qtbot, quantized, "/stem/conv/Conv")
    assert tree_rows(quantized.inspector.tree)["Node"]["Quantizable"] == "no: the model is already quantized"
    for header in (quantized.histograms.activation_header, quantized.histograms.int8_header):
        assert header.text() == refusal and "Ctrl+R" not in header.text()

    quantized.start_run()  # Ctrl+R: refused at once with the reason, before asking for data
    assert quantized.errors.last_message == refusal and not quantized.runner.busy
    quantized.errors.close()


def test_a_float_model_opened_next_can_be_quantized_again(qtbot, quantized: MainWindow, cnn_path: Path) -> None:
    with qtbot.waitSignal(quantized.model_loaded, timeout=10_000):
        quantized.open_model(cnn_path)
    panel = quantized.quantize_panel
    assert not panel.refusal_notice.isVisible() and panel.run_button.isEnabled() and panel.body.isEnabled()
    assert panel.stage.text() == "Ready." and quantized.results.notes.text() == NO_RUN


def test_a_weight_dequantizer_and_its_conv_show_the_int8_weight(qtbot, quantized: MainWindow) -> None:
    model = quantized.session.model
    conv = model.graph.node_by_name("/block1/depthwise/conv/Conv")
    dq = model.graph.nodes[model.graph.producer[conv.inputs[1]]]
    weight = dq.inputs[0]
    q, scale = model.weight(weight), model.weight(dq.inputs[1])
    assert q.dtype == np.int8 and scale.shape == (q.shape[0],)  # per channel
    for name in (dq.name, conv.name):
        _select(qtbot, quantized, name)
        header = quantized.histograms.weight_header.text()
        assert header.startswith(f"<b>{weight}</b> {list(q.shape)} int8 × {q.shape[0]} scales ")
        assert "has no weights" not in header
        _, counts = plotted(quantized.histograms.weight_hist)
        assert counts.sum() == q.size  # every int8 value, not the one scale
        rows = tree_rows(quantized.inspector.tree)[f"Weight {weight}"]
        assert rows["Stored as"].startswith(f"int8 × {q.shape[0]} scales")
        assert rows["Channels"].startswith(f"{q.shape[0]} (axis 0)")


def test_a_wide_graph_opens_without_empty_space_beside_it(quantized: MainWindow) -> None:
    canvas = quantized.graph.canvas
    content = canvas.content
    shown = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert content.width() > shown.width()  # too wide to show whole at a readable zoom
    assert shown.left() >= content.left() - 1 and shown.right() <= content.right() + 1
