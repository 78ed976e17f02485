"""The histogram panel's tabs on the demo: an empty tab shows its message alone, a full one its plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QColor, QTextDocument
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.probe import TensorProbe, comparison_view
from q8studio.core.recipe import Recipe
from q8studio.core.stats import TensorStats
from q8studio.core.tensorview import MethodRange, node_numbers
from q8studio.core.workflow import StudioRun, quantize_and_compare
from q8studio.gui.histograms import HistogramPanel


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> StudioRun:
    assets = demo_assets()
    model = load_model(assets.model)
    calibration = load_data(assets.calibration, model, samples=64)
    evaluation = load_data(assets.test, model, samples=64)
    output = tmp_path_factory.mktemp("run") / "demo.int8.onnx"
    return quantize_and_compare(model, calibration, evaluation, Recipe(), output, latency_runs=2)


@pytest.fixture
def panel(qtbot) -> HistogramPanel:
    panel = HistogramPanel()
    qtbot.addWidget(panel)
    panel.resize(520, 440)  # the Node dock's share of a 1600x1000 window
    panel.show()
    return panel


def demo_model() -> LoadedModel:
    return load_model(demo_assets().model)


def drawn_rows(tab: QWidget) -> int:
    """How many pixel rows of the tab hold dark ink (text, axes, ticks), as a user sees it."""
    image = tab.grab().toImage()
    rows = 0
    for y in range(image.height()):
        if any(QColor(image.pixel(x, y)).value() < 110 for x in range(0, image.width(), 2)):
            rows += 1
    return rows


def assert_message_alone(panel: HistogramPanel, header: QLabel, plots: list[QWidget], message: str) -> None:
    """The message, and nothing else drawn: no axes, ticks or titles of plots without data."""
    QApplication.processEvents()  # the layout follows on the next turn of the event loop, before any paint
    tab = panel.tabs.currentWidget()
    assert header.text() == message
    assert not any(plot.isVisible() for plot in plots)
    assert drawn_rows(tab) <= 2 * header.fontMetrics().height()  # the message, on at most two lines
    assert abs(header.geometry().center().y() - tab.rect().center().y()) <= 4  # centred where the plots were
    # the panel keeps the plots' height: it does not shrink, then grow back on the next node
    assert tab.minimumSizeHint().height() >= sum(plot.minimumHeight() for plot in plots)


def weight_plots(panel: HistogramPanel) -> list[QWidget]:
    return [panel.weight_plot, panel.channel_plot]


def test_a_node_without_weights_shows_the_message_alone_and_the_plots_return(qtbot, panel: HistogramPanel) -> None:
    model = demo_model()
    assert node_numbers(model, "/stem/relu/Relu").weights == []
    panel.show_weight(None, None, "Relu /stem/relu/Relu has no weights.")
    assert_message_alone(panel, panel.weight_header, weight_plots(panel), "Relu /stem/relu/Relu has no weights.")

    conv = node_numbers(model, "/stem/conv/Conv")
    panel.show_weight(conv.weights[0], conv.weight_histogram)
    assert panel.weight_plot.isVisible() and panel.channel_plot.isVisible()
    assert panel.weight_header.text().startswith("<b>stem.conv.weight</b>")
    QApplication.processEvents()
    assert drawn_rows(panel.tabs.currentWidget()) > 10 * panel.weight_header.fontMetrics().height()  # two plots with their axes

    bn = node_numbers(model, "/stem/bn/BatchNormalization")  # a weight without channels: one plot
    panel.show_weight(bn.weights[0], bn.weight_histogram)
    assert panel.weight_plot.isVisible() and not panel.channel_plot.isVisible()
    panel.show_weight(None, None, "MaxPool /pool/MaxPool has no weights.")
    assert_message_alone(panel, panel.weight_header, weight_plots(panel), "MaxPool /pool/MaxPool has no weights.")


def test_the_activation_and_int8_tabs_before_a_run_show_their_message_alone(qtbot, panel: HistogramPanel,
                                                                           demo_run: StudioRun) -> None:
    panel.tabs.setCurrentIndex(1)
    message = "Run quantization (Ctrl+R) to collect this node's calibration statistics."
    panel.show_activation(None, None, [], "", message)
    assert_message_alone(panel, panel.activation_header, [panel.activation_plot], message.replace("'", "&#x27;"))

    numbers = node_numbers(demo_model(), "/stem/relu/Relu", stats=demo_run.result.stats,
                           prepared=demo_run.result.prepared.model)
    panel.show_activation(numbers.stats, numbers.activation_histogram, numbers.ranges, "minmax")
    assert panel.activation_plot.isVisible() and panel.method_legend.isVisible()
    assert "minmax" in panel.method_legend.text()

    panel.tabs.setCurrentIndex(2)
    message = "Run quantization (Ctrl+R) to compare float and int8 values."
    panel.show_comparison(None, message)
    assert_message_alone(panel, panel.int8_header, [panel.overlay_plot, panel.error_plot], message)
    panel.clear()
    for index, plot in enumerate((panel.weight_plot, panel.activation_plot, panel.overlay_plot)):
        panel.tabs.setCurrentIndex(index)
        assert not plot.isVisible()


def test_the_int8_tab_names_the_data_its_samples_come_from(qtbot, panel: HistogramPanel, demo_run: StudioRun) -> None:
    """The window compares on the evaluation data, as the inspector's and the table's errors: the header
    said "calibration samples" of the test set's."""
    model = demo_model()
    test = load_data(demo_assets().test, model)
    tensor = "/block1/relu/Relu_output_0"
    view = comparison_view(TensorProbe(demo_run.result.prepared.model, demo_run.int8).compare(tensor, test, samples=3))
    panel.tabs.setCurrentIndex(2)
    panel.show_comparison(view)
    assert panel.overlay_plot.isVisible() and panel.error_plot.isVisible()
    header = panel.int8_header.text()
    assert f"<b>{tensor}</b> on 3 samples of test.npz" in header and "calibration" not in header
    per_sample = int(np.prod(model.graph.tensors[tensor].shape[1:]))
    assert np.asarray(panel.float_hist.yData).sum() == 3 * per_sample


def test_a_constant_node_that_makes_a_weight_plots_it(qtbot, panel: HistogramPanel) -> None:
    """light_squeezenet holds conv1's weight as a ConstantOfShape: selecting that node shows the weight."""
    from builders import LIGHT_MODELS

    model = load_model(Path(LIGHT_MODELS) / "light_squeezenet.onnx")
    numbers = node_numbers(model, "ConstantOfShape_2")
    panel.show_weight(numbers.weights[0], numbers.weight_histogram, "ConstantOfShape ConstantOfShape_2 has no weights.")
    assert panel.weight_plot.isVisible() and panel.channel_plot.isVisible()
    assert panel.weight_header.text().startswith("<b>conv1_w_0</b> [64, 3, 3, 3]")
    assert np.asarray(panel.weight_hist.yData).sum() == 64 * 3 * 3 * 3
    assert np.asarray(panel.channel_max.yData).size == 64  # conv1's output channels


SIGNED_RANGES = [MethodRange("minmax", -6.354, 9.295, 0.0), MethodRange("percentile", -5.367, 8.214, 2e-4),
                 MethodRange("entropy", -5.574, 8.758, 8e-5), MethodRange("mse", -6.354, 8.63, 5e-5),
                 MethodRange("ema", -4.063, 6.429, 3.2e-3)]
"""The demo's /block2/pointwise/bn output: signed, the widest ranges the demo's legend shows."""


@pytest.mark.parametrize(("width", "rows"), [(300, 5), (440, 3), (900, 2)], ids=["narrow", "dock", "wide"])
def test_the_clipping_legend_takes_as_many_columns_as_its_width_holds(qtbot, width: int, rows: int) -> None:
    """One row per method took five rows, 80 pixels, at any width: in the Node dock's 440 pixels it takes three."""
    panel = HistogramPanel()
    qtbot.addWidget(panel)
    panel.resize(width, 420)
    panel.show()
    panel.tabs.setCurrentIndex(1)
    stats = TensorStats("t")
    stats.update(np.random.default_rng(0).standard_normal((8, 4096)).astype(np.float32) * 2.5)
    panel.show_activation(stats, (stats.hist, stats.edges), SIGNED_RANGES, "minmax")
    legend = panel.method_legend
    qtbot.waitUntil(lambda: legend.text().count("<tr>") == rows)
    assert legend.height() <= rows * legend.fontMetrics().lineSpacing()
    assert all(entry.method in legend.text() for entry in SIGNED_RANGES)
    assert ("clips " in legend.text()) == (rows == 5)  # else a free slot names the columns
    drawn = QTextDocument()
    drawn.setDocumentMargin(0)
    drawn.setDefaultFont(legend.font())
    drawn.setHtml(legend.text())
    assert drawn.idealWidth() <= legend.contentsRect().width()  # every column whole
    assert legend.minimumWidth() < 300  # one column's width: the legend never holds the dock wider


def test_a_weight_of_few_output_channels_ticks_them_at_whole_numbers(qtbot, panel: HistogramPanel, tmp_path) -> None:
    """Two output channels ticked "0 0.2 0.4 0.6 0.8 1" read as fractional channels."""
    from onnx import TensorProto, helper, numpy_helper

    from builders import save

    weight = np.random.default_rng(0).standard_normal((2, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "two_channels",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [numpy_helper.from_array(weight, "w")])
    model = load_model(save(helper.make_model(graph), tmp_path / "m.onnx"))
    conv = node_numbers(model, "conv")
    panel.show_weight(conv.weights[0], conv.weight_histogram)
    QApplication.processEvents()
    axis = panel.channel_plot.getAxis("bottom")
    ticks = [value for _spacing, values in axis.tickValues(-0.5, 1.5, axis.width()) for value in values]
    assert ticks and all(float(value).is_integer() for value in ticks)
