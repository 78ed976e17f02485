"""The Explain panel shows the numbers, plot, worked example and check of an explained demo node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRectF

pytest.importorskip("pytestqt")

from builders import average_pool_net, save, softmax_net, write_npz  # noqa: E402
from q8studio.core.data import load_data  # noqa: E402
from q8studio.core.demo import demo_assets  # noqa: E402
from q8studio.core.explain import Explanation, NodeExplanation, explain_node  # noqa: E402
from q8studio.core.model import load_model  # noqa: E402
from q8studio.core.quantize import quantize_model  # noqa: E402
from q8studio.core.recipe import Recipe  # noqa: E402
from q8studio.gui import formatting as fmt  # noqa: E402
from q8studio.gui.explain_panel import LARGEST_BRUSH, PADDING_BRUSH, ExplainPanel, grid_rows  # noqa: E402


@pytest.fixture(scope="module")
def explanations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NodeExplanation]:
    assets = demo_assets()
    model = load_model(assets.model)
    out = tmp_path_factory.mktemp("gui-explain") / "q.onnx"
    result = quantize_model(model, load_data(assets.calibration, model, samples=100), Recipe(granularity="per-channel"), out)
    int8 = load_model(result.output_path)
    data = load_data(assets.test, int8, samples=4)
    found = {name: explain_node(int8, name, data, 1, model)
             for name in ("/block1/depthwise/conv/Conv", "/fc/Gemm", "/gap/GlobalAveragePool", "/pool/MaxPool")}
    found["corner"] = explain_node(int8, "/stem/conv/Conv", data, 1, model, element=(0, 3, 0, 0))
    return found


def explain_activation_net(paths: dict[str, Path], net: str, node: str) -> Explanation:
    """``node`` of a quantized activation net (the quantized_net fixture: "uint8", "chain int8"), on sample 1."""
    int8 = load_model(paths[net])
    float_net = "chain" if net.startswith("chain") else "float"
    return explain_node(int8, node, load_data(paths["data"], int8), 1, load_model(paths[float_net]))


def table_rows(panel: ExplainPanel) -> dict[str, str]:
    return {panel.numbers.item(r, 0).text(): panel.numbers.item(r, 1).text() for r in range(panel.numbers.rowCount())}


def test_panel_shows_the_numbers_of_the_explained_node(qtbot, explanations, tmp_path: Path) -> None:
    e = explanations["/block1/depthwise/conv/Conv"]
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(620, 1000)
    panel.show_explanation(e)
    rows = table_rows(panel)
    assert rows["S_x"] == fmt.number(float(e.x.scale), 6)
    assert rows["Z_x (uint8)"] == str(int(e.x.zero_point))
    assert rows["S_w per channel (axis 0)"].endswith("(16 channels)")
    assert rows["Z_w (int8)"] == "0 (all 16 channels)"
    assert rows["S_y"] == fmt.number(float(e.y.scale), 6)
    assert rows["n (right shift)"] == f"{min(m.shift for m in e.multipliers)} … {max(m.shift for m in e.multipliers)} (16 channels)"
    assert rows["SQNR vs float"].startswith(fmt.decibels(e.sqnr_db))
    assert "depthwise Conv" in panel.title.text() and "QLinearConv" in panel.title.text()
    assert panel.badge.text() == "bit-exact with ONNX Runtime" and not panel.badge.isHidden()
    x, y = panel.scale_curve.getData()
    np.testing.assert_array_equal(x, np.arange(16))
    np.testing.assert_allclose(y, e.w.scale)
    np.testing.assert_allclose(panel.error_curve.getData()[1], [m.rel_error for m in e.multipliers])
    assert panel.channel_line.value() == e.example.index[1]
    _, labelled = panel.scale_plot.getAxis("bottom").tickValues(-0.5, 15.5, 300)[0]  # the major ticks
    assert labelled and all(value == int(value) for value in labelled)  # channel numbers
    assert panel.grab().save(str(tmp_path / "explain_panel.png"))


def test_per_tensor_weights_point_at_no_channel(qtbot, tmp_path: Path) -> None:
    """One weight scale: no dashed channel line to promise, one multiplier, not one per channel."""
    assets = demo_assets()
    model = load_model(assets.model)
    result = quantize_model(model, load_data(assets.calibration, model, samples=50), Recipe(), tmp_path / "q.onnx")
    int8 = load_model(result.output_path)
    explanation = explain_node(int8, "/stem/conv/Conv", load_data(assets.test, int8, samples=1), 0, model)
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.show_explanation(explanation)
    assert not explanation.w.per_channel and not panel.channel_line.isVisible()
    assert "dashed" not in panel.element_label.text()
    assert "per channel" not in panel.error_plot.plotItem.titleLabel.text
    for plot in (panel.scale_plot, panel.error_plot):  # one channel, numbered 0, not -0.4 ... 0.4
        ticks = [value for _, values in plot.getAxis("bottom").tickValues(-0.52, 0.52, 200) for value in values]
        assert ticks == [0.0]


def _drawn_within(plot) -> bool:
    """The plot's axes and its whole title lie inside the widget: pyqtgraph lays a title wider than the
    plot out past the widget's right edge, where it is cut off."""
    item = plot.getPlotItem()
    title = item.titleLabel.item
    inside, to_view = QRectF(plot.viewport().rect()), plot.viewportTransform()
    return all(inside.contains(to_view.mapRect(rect))
               for rect in (item.sceneBoundingRect(), title.mapRectToScene(title.boundingRect())))


@pytest.mark.parametrize("width", [440, 1000], ids=["dock", "wide"])
def test_both_plots_fit_the_panel_with_their_titles_whole(qtbot, explanations, width: int) -> None:
    """Side by side in the dock's default width of about 440 pixels, the second title read "… per channe":
    the plots stack there, and sit side by side only where both fit."""
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(width, 900)
    panel.show()
    panel.show_explanation(explanations["/block1/depthwise/conv/Conv"])
    qtbot.wait(20)
    assert "per channel" in panel.error_plot.plotItem.titleLabel.text
    viewport = panel.scroll.viewport()
    for plot in (panel.scale_plot, panel.error_plot):
        left = plot.mapTo(viewport, plot.rect().topLeft()).x()
        assert left >= 0 and left + plot.width() <= viewport.width()
        assert _drawn_within(plot), (width, plot.plotItem.titleLabel.text)
    side_by_side = panel.scale_plot.y() == panel.error_plot.y()
    assert side_by_side == (width == 1000)


def test_worked_example_grids_and_arithmetic_chain(qtbot, explanations) -> None:
    e = explanations["/block1/depthwise/conv/Conv"]
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.show_explanation(e)
    ex = e.example
    cells = [[int(panel.x_table.item(r, c).text()) for c in range(3)] for r in range(3)]
    assert cells == ex.x_q[0].tolist()
    assert [[int(panel.w_table.item(r, c).text()) for c in range(3)] for r in range(3)] == ex.w_q[0].tolist()
    text = panel.steps.toPlainText()
    assert f"= {ex.acc}" in text and f"round({ex.acc_with_bias}·{ex.multiplier.m0} / 2^{ex.multiplier.shift})" in text
    assert f"clamp to [{ex.qmin}, {ex.qmax}] = {ex.y_q}" in text


def test_gemm_rows_wrap_and_messages_replace_the_content(qtbot, explanations) -> None:
    e = explanations["/fc/Gemm"]
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.show_explanation(e)
    assert panel.x_table.rowCount() == 2 and panel.x_table.columnCount() == 16  # 32 inputs, 16 per row
    assert panel.x_table.item(1, 0).text() == str(int(e.example.x_q[16]))
    panel.show_message("Explaining /fc/Gemm…")
    assert panel.content.isHidden() and panel.message.text() == "Explaining /fc/Gemm…" and panel.badge.isHidden()
    panel.show_explanation(None)
    assert panel.explanation is None
    assert ("Select a Conv, Gemm, MatMul, Add, Mul, GlobalAveragePool, MaxPool, AveragePool, Sigmoid, LeakyRelu, "
            "Concat, Softmax, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice or Gather node"
            ) in panel.message.text()


def test_a_pooling_shows_its_channel_as_a_grid_and_no_weights(qtbot, explanations, tmp_path: Path) -> None:
    e = explanations["/gap/GlobalAveragePool"]
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(620, 1000)
    panel.show_explanation(e)
    rows = table_rows(panel)
    assert rows["N, values averaged"] == "16" and rows["f = S_x/(S_y·N) (float32)"] == f"{e.factor:.9g}"
    assert rows["S_x"] == fmt.number(float(e.x.scale), 6) and rows["SQNR vs float"].startswith(fmt.decibels(e.sqnr_db))
    assert "QLinearGlobalAveragePool" in panel.title.text() and panel.badge.text() == "bit-exact with ONNX Runtime"
    ex = e.example
    assert panel.x_table.rowCount() == 4 and panel.x_table.columnCount() == 4  # the 4x4 channel as it is
    assert [[int(panel.x_table.item(r, c).text()) for c in range(4)] for r in range(4)] == ex.x_q.tolist()
    assert f"channel {ex.index[1]}" in panel.x_title.text()
    assert panel.w_table.isHidden() and panel.w_title.isHidden() and panel.plot_row.isHidden()
    assert f"= {ex.acc}" in panel.steps.toPlainText()
    panel.show_explanation(explanations["/block1/depthwise/conv/Conv"])  # a convolution brings its weights back
    assert not panel.w_table.isHidden() and not panel.plot_row.isHidden()
    assert panel.x_title.text().startswith("Input x_q: the receptive field")
    panel.show_explanation(e)
    assert panel.grab().save(str(tmp_path / "explain_pool.png"))


def test_a_max_pool_shows_its_window_with_the_largest_value_marked(qtbot, explanations, tmp_path: Path) -> None:
    e = explanations["/pool/MaxPool"]
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(620, 1000)
    panel.show_explanation(e)
    rows = table_rows(panel)
    assert rows["window"] == "2x2, stride 2x2" and rows["S_y"] == rows["S_x"] == fmt.number(float(e.x.scale), 6)
    assert "MaxPool" in panel.title.text() and panel.badge.text() == "bit-exact with ONNX Runtime"
    ex = e.example
    assert [[int(panel.x_table.item(r, c).text()) for c in range(2)] for r in range(2)] == ex.x_q.tolist()
    marked = [[panel.x_table.item(r, c).background().color().name() == LARGEST_BRUSH.color().name()
               for c in range(2)] for r in range(2)]
    assert marked == (ex.x_q == ex.largest).tolist() and marked[ex.at[0]][ex.at[1]]
    assert panel.w_table.isHidden() and panel.plot_row.isHidden()
    assert panel.steps.toPlainText().splitlines() == e.steps()
    assert panel.grab().save(str(tmp_path / "explain_max_pool.png"))


def test_an_average_pool_shows_its_window_and_what_it_divides_by(qtbot, tmp_path: Path) -> None:
    float_model = load_model(save(average_pool_net({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                                    "ceil_mode": 1, "count_include_pad": 1}), tmp_path / "a.onnx"))
    data_path = write_npz(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((4, 3, 12, 12), np.float32))
    int8 = quantize_model(float_model, load_data(data_path, float_model), Recipe(), tmp_path / "a.int8.onnx").int8
    e = explain_node(int8, "/pool/AveragePool", load_data(data_path, int8), 1, float_model, element=(0, 2, 6, 6))
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(620, 1000)
    panel.show_explanation(e)
    rows = table_rows(panel)
    assert rows["count_include_pad"] == "yes" and rows["divided by"] == "9" and rows["window"] == e.geometry.summary()
    assert "QLinearAveragePool" in panel.title.text() and panel.badge.text() == "bit-exact with ONNX Runtime"
    padded = [[panel.x_table.item(r, c).background().color().name() == PADDING_BRUSH.color().name()
               for c in range(3)] for r in range(3)]
    assert padded == (~e.example.inside).tolist() and "counted as 0" in panel.x_title.text()
    assert panel.steps.toPlainText().splitlines() == e.steps() and panel.w_table.isHidden()
    assert panel.grab().save(str(tmp_path / "explain_average_pool.png"))


def test_a_sigmoid_shows_its_table_and_the_entry_its_element_reads(qtbot, tmp_path: Path, quantized_net) -> None:
    e = explain_activation_net(quantized_net, "chain int8", "/gate/Sigmoid")
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(620, 1400)
    panel.show_explanation(e)
    rows = table_rows(panel)
    assert rows["function"] == "Sigmoid" and rows["table T"] == e.table_summary()
    assert "QLinearSigmoid" in panel.title.text() and panel.badge.text() == "bit-exact with ONNX Runtime"
    assert panel.x_table.rowCount() == 16 and panel.x_table.columnCount() == 16
    labels = [panel.x_table.verticalHeaderItem(r).text() for r in range(16)]
    assert labels[0] == "-128" and labels[-1] == "112"
    grid = [[int(panel.x_table.item(r, c).text()) for c in range(16)] for r in range(16)]
    assert np.array_equal(np.array(grid).reshape(-1), e.table)
    marked = [(r, c) for r in range(16) for c in range(16)
              if panel.x_table.item(r, c).background().color().name() == LARGEST_BRUSH.color().name()]
    assert marked == [divmod(e.example.x_q + 128, 16)]
    assert not panel.lookup_row.isHidden() and panel.plot_row.isHidden() and panel.w_table.isHidden()
    steps_x, steps_y = panel.table_curve.getData()
    assert steps_y.tolist() == e.table.tolist() and len(steps_x) == 257
    assert panel.counts_curve.getData()[1].sum() == e.x_q.size
    assert panel.steps.toPlainText().splitlines() == e.steps()
    assert panel.grab().save(str(tmp_path / "explain_sigmoid.png"))


def test_a_mul_shows_its_ratio_and_no_grids(qtbot, quantized_net) -> None:
    e = explain_activation_net(quantized_net, "uint8", "/swish/Mul")
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.show_explanation(e)
    rows = table_rows(panel)
    assert rows["M = S_a·S_b/S_y (float32)"] == f"{e.constants.ratio:.9g}" and "S_b" in rows
    assert "QLinearMul" in panel.title.text() and panel.badge.text() == "bit-exact with ONNX Runtime"
    assert panel.grids.isHidden() and panel.lookup_row.isHidden() and panel.plot_row.isHidden()
    assert f"a_q = {e.example.a_q}, b_q = {e.example.b_q}" in panel.element_label.text()
    assert panel.steps.toPlainText().splitlines() == e.steps()


def test_a_concat_shows_each_inputs_fate_and_the_requantization_table(qtbot, tmp_path: Path,
                                                                        quantized_net) -> None:
    e = explain_activation_net(quantized_net, "uint8", "/cat/Concat")
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(620, 1400)
    panel.show_explanation(e)
    rows = table_rows(panel)
    fates = [rows[f"input {n} → positions {i.start}…{i.start + i.size - 1}"] for n, i in enumerate(e.inputs)]
    assert fates == ["copied (the output's scale and zero point)" if i.copied else "requantized by a table"
                     for i in e.inputs]
    assert "QLinearConcat" in panel.title.text() and panel.badge.text() == "bit-exact with ONNX Runtime"
    source = e.inputs[e.example.source]
    grid = [[int(panel.x_table.item(r, c).text()) for c in range(16)] for r in range(16)]
    assert not panel.grids.isHidden() and np.array_equal(np.array(grid).reshape(-1), source.table)
    assert panel.steps.toPlainText().splitlines() == e.steps()
    assert panel.grab().save(str(tmp_path / "explain_concat.png"))


def test_padding_cells_are_greyed(qtbot, explanations) -> None:
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.show_explanation(explanations["corner"])
    padded = [[panel.x_table.item(r, c).background().color().name() == PADDING_BRUSH.color().name()
               for c in range(3)] for r in range(3)]
    assert padded == [[True, True, True], [True, False, False], [True, False, False]]


def test_windows_and_matrix_rows_become_grids() -> None:
    grid, labels = grid_rows(np.arange(18).reshape(2, 3, 3))
    assert grid.shape == (6, 3) and labels[:4] == ["c0 r0", "c0 r1", "c0 r2", "c1 r0"]
    wrapped, row_labels = grid_rows(np.arange(20))
    assert wrapped.shape == (2, 16) and row_labels == ["0", "16"]


def test_a_softmax_shows_its_row_and_the_exponential_table(qtbot, tmp_path: Path) -> None:
    float_model = load_model(save(softmax_net(), tmp_path / "s.onnx"))
    data_path = write_npz(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((4, 3, 12, 12), np.float32))
    int8 = quantize_model(float_model, load_data(data_path, float_model), Recipe(), tmp_path / "s.int8.onnx").int8
    e = explain_node(int8, "/attn/Softmax", load_data(data_path, int8), 1, float_model, element=(0, 6, 4, 4))
    panel = ExplainPanel()
    qtbot.addWidget(panel)
    panel.resize(620, 1200)
    panel.show_explanation(e)
    rows = table_rows(panel)
    assert rows["K = floor(1/S_y)"].startswith(f"{e.multiplier:g} (1/S_y = ") and rows["D, values per row"] == "8"
    assert "QLinearSoftmax" in panel.title.text() and panel.badge.text() == "bit-exact with ONNX Runtime"
    assert not panel.softmax_row.isHidden() and panel.lookup_row.isHidden() and panel.w_table.isHidden()
    labels = [panel.x_table.verticalHeaderItem(r).text() for r in range(panel.x_table.rowCount())]
    assert labels == ["x_q 0", "y_q 0"]
    grid = [[int(panel.x_table.item(r, c).text()) for c in range(8)] for r in range(2)]
    assert grid == [e.row.x_q.tolist(), e.row.kernel_y_q.tolist()]
    marked = [(r, c) for r in range(2) for c in range(8)
              if panel.x_table.item(r, c).background().color().name() == LARGEST_BRUSH.color().name()]
    assert marked == [(0, 6), (1, 6)]
    assert panel.row_curve.getData()[1].tolist() == e.row.kernel_y_q.tolist()
    distances, shares = panel.exp_points.getData()  # on the log axis: log10 of each share
    assert 10 ** shares == pytest.approx(np.exp(-float(np.float32(e.x.scale)) * distances), rel=1e-5)
    assert panel.steps.toPlainText().splitlines() == e.steps()
    assert panel.grab().save(str(tmp_path / "explain_softmax.png"))
