"""The main window on the demo: selection from graph and table, a full run, cancel, export, errors.

Assertions look at data first (what the inspector lists, what a plot holds, which row is
selected) and compare it with what the core computes for the same input.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage, QPainter, QTextDocument
from PySide6.QtWidgets import QMessageBox

from builders import save, with_argmax
from gui_actions import QUICK_SAMPLES, click_graph_node, tree_rows
from q8studio.__main__ import main as cli_main
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core.evaluate import compare_models
from q8studio.core.imagefolder import ImageFolderSource, ImagePreprocessing
from q8studio.core.model import load_model
from q8studio.core.recipe import Recipe
from q8studio.core.stats import BatchExtent, TensorStats
from q8studio.core.tensorview import MethodRange, WeightSummary, display_image, weight_histogram
from q8studio.gui import formatting as fmt
from q8studio.gui.histograms import LOG_TICKS, HistogramPanel
from q8studio.gui import exports as exports_module
from q8studio.gui import main_window as main_window_module
from q8studio.gui import runs as runs_module
from q8studio.gui.main_window import COMPARE_SAMPLES, MainWindow
from q8studio.gui.plots import stack_rows
from q8studio.gui.quantize_panel import PREVIEW_PIXELS
from q8studio.gui.results_panel import COLUMNS
from q8studio.gui.row_table import NODE_ROLE, SORT_ROLE

RUN_TIMEOUT_MS = 60_000


def make_window(qtbot, settings_path: Path) -> MainWindow:
    window = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture
def window(qtbot, tmp_path: Path) -> MainWindow:
    return make_window(qtbot, tmp_path / "settings.ini")


@pytest.fixture
def demo(qtbot, window: MainWindow) -> MainWindow:
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_demo()
    window.quantize_panel.samples.setValue(QUICK_SAMPLES)
    return window


def run_to_end(qtbot, window: MainWindow):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        window.start_run()
    return blocker.args[0]


def plotted(item) -> tuple[np.ndarray, np.ndarray]:
    """The data a curve was given (``getData`` would return it log-transformed in log mode)."""
    return np.asarray(item.xData), np.asarray(item.yData)


def test_start_page_then_demo_with_its_data(qtbot, window: MainWindow) -> None:
    assert window.stack.currentWidget() is window.start_page
    assert not window.docks["quantize"].isVisible()
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        qtbot.mouseClick(window.start_page.findChildren(type(window.quantize_panel.run_button))[1],
                         Qt.MouseButton.LeftButton)
    assets = demo_assets()
    assert window.stack.currentWidget() is window.graph
    assert window.session.model.path == assets.model
    assert window.quantize_panel.calibration.path() == assets.calibration
    assert window.quantize_panel.evaluation.path() == assets.test
    assert not window.quantize_panel.preview.pixmap().isNull()
    assert window.recent_files()[0] == assets.model.resolve()
    assert "digits_cnn.onnx" in window.windowTitle()


def test_graph_click_shows_the_node_in_inspector_and_histograms(qtbot, demo: MainWindow) -> None:
    name = "/block1/depthwise/conv/Conv"
    with qtbot.waitSignal(demo.inspect.finished, timeout=5000):
        click_graph_node(qtbot, demo, name)
    assert demo.session.selected == name
    model = demo.session.model
    node = model.graph.node_by_name(name)
    rows = tree_rows(demo.inspector.tree)
    assert rows["Node"]["Op type"] == "Conv" and rows["Node"]["Name"] == name
    assert rows["Attributes"]["group"] == str(node.attributes["group"])
    weight = model.weight("block1.depthwise.conv.weight")
    section = rows["Weight block1.depthwise.conv.weight"]
    assert section["Min"] == fmt.number(float(weight.min())) and section["Max"] == fmt.number(float(weight.max()))
    assert section["Channels"].startswith(f"{weight.shape[0]} (axis 0)")
    activation = model.graph.tensors[node.inputs[0]]
    assert rows["Inputs"][node.inputs[0]] == f"{activation.shape_text()} float32" == "[batch, 16, 16, 16] float32"
    x, y = plotted(demo.histograms.weight_hist)
    assert y.sum() == weight.size
    np.testing.assert_allclose(x, weight_histogram(weight)[1])
    _, channel_max = plotted(demo.histograms.channel_max)
    np.testing.assert_allclose(channel_max, weight.reshape(weight.shape[0], -1).max(axis=1), rtol=1e-6)
    assert "Run quantization" in demo.histograms.activation_header.text()


def test_a_node_whose_numbers_fail_says_so_in_every_tab(qtbot, demo: MainWindow, monkeypatch) -> None:
    run_to_end(qtbot, demo)

    def fails(*_args, **_kwargs):
        raise Q8Error("The weight is unreadable.")

    for name in ("node_numbers", "run_node_numbers"):  # before a run, and after it with the run's ranges
        monkeypatch.setattr(main_window_module, name, fails)
    with qtbot.waitSignal(demo.inspect.failed, timeout=5000):
        click_graph_node(qtbot, demo, "/block1/depthwise/conv/Conv")
    assert demo.errors.last_message == "The weight is unreadable."
    for header in (demo.histograms.weight_header, demo.histograms.activation_header, demo.histograms.int8_header):
        assert "Computing" not in header.text() and "The weight is unreadable." in header.text()


def test_full_run_matches_the_core_and_table_clicks_select_nodes(qtbot, demo: MainWindow, monkeypatch) -> None:
    overlays: list[tuple[dict, str]] = []
    original = demo.graph.set_overlay
    monkeypatch.setattr(demo.graph, "set_overlay",
                        lambda values, **kw: (overlays.append((values, kw.get("title", ""))), original(values, **kw)))
    demo.quantize_panel.histogram_values.setValue(1000)  # of the 4,096 values per sample of the blocks' tensors
    run = run_to_end(qtbot, demo)
    assets = demo_assets()
    model = load_model(assets.model)
    test = load_data(assets.test, model)
    core = compare_models(model, run.int8, test, latency_runs=1)

    summary = demo.results.summary
    cell = lambda row, column: summary.item(row, column).text()  # noqa: E731
    assert cell(0, 0) == fmt.percent(core.errors.float_top1) and cell(0, 1) == fmt.percent(core.errors.int8_top1)
    assert cell(1, 1) == fmt.percent(core.errors.agreement)
    output = next(iter(core.errors.outputs.values()))
    assert cell(2, 1) == fmt.decibels(output.sqnr_db) and cell(3, 1) == f"{output.cosine:.6f}"
    profile = demo.session.profile  # the latency the Speed tab shows too
    assert cell(4, 1) == fmt.latency_pair(*profile.latency_ms)[1] and cell(5, 1) == f"{profile.speedup:.2f}×"
    assert cell(6, 0) == fmt.size(model.file_size) and cell(6, 1) == fmt.size(run.result.output_path.stat().st_size)

    proxy = demo.results.proxy
    shown = [demo.results.node_at_row(r) for r in range(proxy.rowCount())]
    assert shown == [layer.node for layer in core.errors.layers]  # worst first, the core's order
    sqnr_column = [c[1] for c in COLUMNS].index("sqnr_db")
    assert proxy.index(0, sqnr_column).data() == f"{core.errors.layers[0].sqnr_db:.2f}"

    mse_column = [c[1] for c in COLUMNS].index("mse")
    demo.results.table.sortByColumn(mse_column, Qt.SortOrder.DescendingOrder)
    mse = [proxy.index(r, mse_column).data(SORT_ROLE) for r in range(proxy.rowCount())]
    assert mse == sorted(mse, reverse=True)  # numeric, not text order

    values, title = overlays[-1]
    assert "SQNR" in title and values[core.errors.layers[0].node] == pytest.approx(core.errors.layers[0].sqnr_db)

    # a table click selects the node everywhere and shows its activation and int8 error
    target_row = next(r for r in range(proxy.rowCount()) if demo.results.node_at_row(r) == "/block1/relu/Relu")
    with qtbot.waitSignal(demo.probe.finished, timeout=10_000):
        rect = demo.results.table.visualRect(proxy.index(target_row, 0))
        qtbot.mouseClick(demo.results.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert demo.session.selected == "/block1/relu/Relu"
    assert demo.graph.selected_node() == "/block1/relu/Relu"
    assert tree_rows(demo.inspector.tree)["Node"]["Name"] == "/block1/relu/Relu"
    tensor = "/block1/relu/Relu_output_0"
    quantization = tree_rows(demo.inspector.tree)["Quantization"]
    layer = next(layer for layer in core.errors.layers if layer.tensor == tensor)
    assert quantization["Tensor"] == tensor and quantization["SQNR"] == fmt.decibels(layer.sqnr_db)
    assert quantization["Errors over"] == f"{core.errors.samples} samples of test.npz"  # not the tab's few samples
    stats = run.result.stats[tensor]
    per_sample = int(np.prod(demo.session.model.graph.tensors[tensor].shape[1:]))
    _, counts = plotted(demo.histograms.activation_hist)
    # 1 value in 5 of its 16 channels of 16x16 (the smallest prime >= 4,096 / 1,000 not dividing 4,096)
    assert stats.count == 120 * per_sample == 120 * 4096 and stats.stride == 5
    assert counts.sum() == stats.hist.sum() == 120 * 4096 // 5
    assert "1 value in 5" in demo.histograms.activation_header.text()
    minmax_line = demo.histograms.method_lines["minmax"][0]
    assert minmax_line.value() == pytest.approx(run.result.ranges[tensor][1])
    assert set(demo.histograms.method_lines) == {"minmax", "percentile", "entropy", "mse", "ema"}
    assert_method_labels_readable(qtbot, demo.histograms)  # at the window's default size and layout
    _, float_counts = plotted(demo.histograms.float_hist)
    _, int8_counts = plotted(demo.histograms.int8_hist)
    assert float_counts.sum() == int8_counts.sum() == COMPARE_SAMPLES * per_sample


def test_a_class_id_output_shows_accuracy_and_no_output_error(qtbot, window: MainWindow, tmp_path: Path) -> None:
    assets = demo_assets()
    path = save(with_argmax(onnx.load(assets.model)), tmp_path / "argmax.onnx")
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_model(path)
    window.quantize_panel.set_calibration(assets.calibration)
    window.quantize_panel.set_evaluation(assets.test)
    window.quantize_panel.samples.setValue(64)
    run = run_to_end(qtbot, window)
    errors = run.comparison.errors
    assert errors.float_top1 is not None and errors.agreement is not None
    summary = window.results.summary
    cell = lambda row, column: summary.item(row, column).text()  # noqa: E731
    assert cell(0, 0) == fmt.percent(errors.float_top1) and cell(0, 1) == fmt.percent(errors.int8_top1)
    assert cell(1, 1) == fmt.percent(errors.agreement)
    assert cell(2, 1) == cell(3, 1) == "n/a (class ids)"
    assert "class_id" not in {row.tensor for row in window.results.model.rows}
    with qtbot.waitSignal(window.probe.finished, timeout=10_000):
        click_graph_node(qtbot, window, "argmax")
    quantization = tree_rows(window.inspector.tree)["Quantization"]  # the float scores ArgMax reads, not the ids
    assert quantization["Tensor"] == "logits" and window.errors.last_message == ""


def test_cancel_leaves_the_window_usable(qtbot, demo: MainWindow) -> None:
    with qtbot.waitSignal(demo.run_ended, timeout=5000) as blocker:
        demo.start_run()
        assert demo.runner.busy and not demo.quantize_panel.run_button.isEnabled()
        qtbot.keyClick(demo, Qt.Key.Key_Escape)
    assert blocker.args == ["cancelled"]
    assert demo.session.run is None and demo.quantize_panel.run_button.isEnabled()
    assert demo.quantize_panel.stage.text() == "Cancelled."
    assert run_to_end(qtbot, demo) is demo.session.run


def test_export_model_report_and_recipe_round_trip(qtbot, demo: MainWindow, tmp_path: Path) -> None:
    demo.session.toggle_float("/fc/Gemm")
    assert demo.quantize_panel.recipe().exclude == ("/fc/Gemm",)
    panel = demo.quantize_panel
    panel.method.setCurrentText("percentile")
    panel.percentile.setValue(99.9)
    panel.granularity.setCurrentText("per-channel")
    run = run_to_end(qtbot, demo)
    assert any(n.name == "/fc/Gemm" for n in run.result.float_nodes)

    assert demo.exporter.export_report(tmp_path / "early.json")  # the run's int8 file is scratch: not named
    early = json.loads((tmp_path / "early.json").read_text())
    assert early["output_model"] is None and early["evaluation"]["int8_model"] is None

    exported = tmp_path / "out" / "digits.int8.onnx"
    assert demo.exporter.export_model(exported)
    int8 = load_model(exported)
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.nodes)
    onnx.checker.check_model(int8.proto)

    source = demo.session.model.path
    before = source.read_bytes()
    assert not demo.exporter.export_model(source)
    assert demo.errors.last_message.startswith("Refusing to write the int8 model over the source model")
    assert source.read_bytes() == before
    demo.errors.close()

    report_path = tmp_path / "report.json"
    assert demo.exporter.export_report(report_path)
    report = json.loads(report_path.read_text())
    assert report["recipe"]["method"] == "percentile" and report["evaluation"]["int8"]["top1"] is not None
    assert report["output_model"] == report["evaluation"]["int8_model"] == str(exported)

    recipe_path = tmp_path / "recipe.json"
    assert demo.exporter.save_recipe(recipe_path)
    panel.method.setCurrentText("minmax")
    panel.granularity.setCurrentText("per-tensor")
    panel.histogram_values.setValue(0)
    demo.session.set_exclusions(())
    assert demo.exporter.load_recipe(recipe_path)
    assert panel.recipe() == Recipe.load(recipe_path) == run.result.recipe
    assert demo.session.exclude == ("/fc/Gemm",)


def test_no_export_replaces_the_model_or_its_data(qtbot, window: MainWindow, tmp_path: Path) -> None:
    assets = demo_assets()
    model, calib, test = (Path(shutil.copy(p, tmp_path)) for p in (assets.model, assets.calibration, assets.test))
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_model(model)
    window.quantize_panel.set_calibration(calib)
    window.quantize_panel.set_evaluation(test)
    window.quantize_panel.samples.setValue(40)
    run_to_end(qtbot, window)
    exports = {"the report": window.exporter.export_report, "the recipe": window.exporter.save_recipe,
               "the int8 model": window.exporter.export_model}
    for what, export in exports.items():
        for path in (model, calib, test):
            before = path.read_bytes()
            assert not export(path)
            assert window.errors.last_message.startswith(f"Refusing to write {what} over "), window.errors.last_message
            assert path.read_bytes() == before
            window.errors.close()
    # a write that cannot happen is one sentence naming the file asked for, not a scratch file beside it
    assert not window.exporter.export_report(calib / "r.json")
    assert window.errors.last_message == f"Cannot write the report {calib / 'r.json'}: {calib} is a file, not a folder."


@pytest.mark.parametrize("settings", [
    {"method": "ema", "ema_momentum": 0.999},
    {"method": "percentile", "percentile": 50.000001},  # the lowest a recipe allows, to the decimals the window keeps
    {"method": "percentile", "percentile": 99.99999},
    {"samples": 3_000_000_000 // 2},
])
def test_load_recipe_keeps_every_value_a_recipe_allows(demo: MainWindow, tmp_path: Path, settings) -> None:
    recipe = Recipe(**settings)
    recipe.save(tmp_path / "recipe.json")
    assert demo.exporter.load_recipe(tmp_path / "recipe.json")
    assert demo.quantize_panel.recipe() == recipe


def test_load_recipe_leaves_out_layers_the_model_does_not_have(demo: MainWindow, tmp_path: Path) -> None:
    Recipe(method="entropy", exclude=("/fc/Gemm", "n200")).save(tmp_path / "recipe.json")
    assert demo.exporter.load_recipe(tmp_path / "recipe.json")
    assert demo.session.exclude == ("/fc/Gemm",) and demo.quantize_panel.recipe().method == "entropy"
    assert demo.errors.last_message.startswith("Loaded the recipe, without the 1 node it keeps in float ")
    assert "n200" in demo.errors.last_message


def test_load_recipe_keeps_a_layer_of_the_pre_processed_model(qtbot, window: MainWindow, tmp_path: Path) -> None:
    """Keep slower layers in float can keep a node pre-processing made (a MatMul and an Add fused into a Gemm)."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"), helper.make_node("Add", ["m", "B"], ["y"], name="add")],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W"),
         numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "mlp.onnx"))
    np.savez(tmp_path / "x.npz", x=rng.standard_normal((4, 16)).astype(np.float32))
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_model(tmp_path / "mlp.onnx")
    window.quantize_panel.set_calibration(tmp_path / "x.npz")
    run = run_to_end(qtbot, window)
    fused = [node.name for node in run.result.prepared.model.graph.nodes]
    assert fused == ["mm/MatMulAddFusion"]
    Recipe(exclude=tuple(fused)).save(tmp_path / "recipe.json")
    assert window.exporter.load_recipe(tmp_path / "recipe.json")
    assert window.session.exclude == tuple(fused) and window.errors.last_message == ""


def test_load_recipe_of_an_image_folder_report_restores_its_preprocessing(qtbot, demo: MainWindow,
                                                                            tmp_path: Path) -> None:
    """Like ``quantize --recipe REPORT``: the report's run is reproduced only with the samples it made."""
    model, images = demo_assets().model, demo_assets().model.parent / "images"
    assert cli_main(["quantize", str(model), "--calib", str(images), "--mean", "0.5", "--std", "0.25", "--method",
                     "mse", "-o", str(tmp_path / "first.onnx"), "--report", str(tmp_path / "report.json")]) == 0
    assert cli_main(["quantize", str(model), "--calib", str(images), "--recipe", str(tmp_path / "report.json"),
                     "-o", str(tmp_path / "cli.int8.onnx")]) == 0
    panel = demo.quantize_panel
    assert panel.set_calibration(images) and panel.preprocessing_box.isVisibleTo(panel)
    assert demo.exporter.load_recipe(tmp_path / "report.json")
    assert (panel.method.currentText(), panel.mean_edit.text(), panel.std_edit.text()) == ("mse", "0.5", "0.25")
    assert "image preprocessing" in demo.statusBar().currentMessage()
    run = run_to_end(qtbot, demo)
    assert run.result.output_path.read_bytes() == (tmp_path / "cli.int8.onnx").read_bytes()


def test_a_recipe_loaded_on_the_start_page_keeps_its_layers_for_the_model_opened(
        qtbot, window: MainWindow, tmp_path: Path, cnn_path: Path) -> None:
    Recipe(method="entropy", exclude=("/fc/Gemm", "n200")).save(tmp_path / "recipe.json")
    assert window.exporter.load_recipe(tmp_path / "recipe.json") and window.errors.last_message == ""
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_demo()
    panel = window.quantize_panel
    assert window.session.exclude == ("/fc/Gemm",) and panel.recipe().method == "entropy"
    assert [panel.float_list.item(i).text() for i in range(panel.float_list.count())] == ["/fc/Gemm"]
    assert "FP32" in window.graph.item_for_node("/fc/Gemm").badges
    message = window.errors.last_message
    assert message.startswith("Opened digits_cnn.onnx with the recipe recipe.json, without the 1 node it keeps")
    assert message.endswith("does not have: n200.")
    window.errors.close()
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):  # the recipe was for the model opened first
        window.open_model(cnn_path)
    assert window.session.exclude == () and window.errors.last_message == message


def test_a_report_loaded_on_the_start_page_keeps_its_preprocessing_for_the_model_opened(
        qtbot, window: MainWindow, tmp_path: Path) -> None:
    model, images = demo_assets().model, demo_assets().model.parent / "images"
    assert cli_main(["quantize", str(model), "--calib", str(images), "--mean", "0.5", "--std", "0.25",
                     "-o", str(tmp_path / "m.onnx"), "--report", str(tmp_path / "report.json")]) == 0
    assert window.exporter.load_recipe(tmp_path / "report.json")
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_model(model)
    panel = window.quantize_panel
    assert panel.set_calibration(images)
    assert (panel.mean_edit.text(), panel.std_edit.text()) == ("0.5", "0.25")
    assert (panel.preprocessing().mean, panel.preprocessing().std) == ((0.5,), (0.25,))
    assert window.errors.last_message == ""


@pytest.mark.parametrize("settings, reason", [
    ({"percentile": 99.9999999}, "decimals"),
    ({"samples": 2**31}, "more than the window takes"),
])
def test_load_recipe_refuses_what_the_window_cannot_hold(demo: MainWindow, tmp_path: Path, settings, reason) -> None:
    before = demo.quantize_panel.recipe()
    Recipe(**settings).save(tmp_path / "recipe.json")
    assert not demo.exporter.load_recipe(tmp_path / "recipe.json")
    assert reason in demo.errors.last_message
    assert demo.quantize_panel.recipe() == before


def test_corrupt_model_gives_a_dialog_and_keeps_the_open_model(qtbot, demo: MainWindow, tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.onnx"
    corrupt.write_bytes(demo_assets().model.read_bytes()[:2000])
    with qtbot.waitSignal(demo.loader.failed, timeout=10_000):
        demo.open_model(corrupt)
    dialog = demo.errors.dialog
    assert isinstance(dialog, QMessageBox) and dialog.isVisible()
    assert "truncated or corrupted" in dialog.text() and dialog.text().count(".") <= 3
    assert demo.session.model.path == demo_assets().model
    dialog.accept()
    demo.session.select("/fc/Gemm")
    assert tree_rows(demo.inspector.tree)["Node"]["Op type"] == "Gemm"


def test_mismatched_data_gives_a_dialog_and_keeps_the_choice(qtbot, demo: MainWindow, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, image=np.zeros((4, 3, 16, 16), np.float32))
    assert not demo.quantize_panel.set_calibration(wrong)
    assert "expects" in demo.errors.last_message and demo.errors.dialog.isVisible()
    assert demo.quantize_panel.calibration.path() == demo_assets().calibration
    nan = tmp_path / "nan.npz"
    np.savez(nan, image=np.full((4, 1, 16, 16), np.nan, np.float32))
    assert not demo.quantize_panel.set_calibration(nan)  # shapes fit; the values are checked as a run checks them
    assert "NaN" in demo.errors.last_message and demo.quantize_panel.calibration.path() == demo_assets().calibration


def test_a_failed_run_says_so_briefly_and_a_new_model_starts_clean(qtbot, demo: MainWindow, monkeypatch,
                                                                  cnn_path: Path) -> None:
    run_to_end(qtbot, demo)
    names = ", ".join(f"'tensor_{i}__SHAPE'" for i in range(200))
    message = f"ONNX Runtime could not run the model on this data: Required inputs ({names}) are missing."

    def fails(*_args):
        raise Q8Error(message)

    monkeypatch.setattr(main_window_module, "run_and_profile", fails)
    with qtbot.waitSignal(demo.run_ended, timeout=RUN_TIMEOUT_MS):
        demo.start_run()
    stage = demo.quantize_panel.stage
    assert stage.text().startswith("Failed: ONNX Runtime could not run") and len(stage.text()) <= 240
    assert stage.toolTip() == "Failed: " + message and demo.errors.last_message == message
    assert demo.statusBar().currentMessage() == "Quantization failed."
    demo.errors.close()

    with qtbot.waitSignal(demo.model_loaded, timeout=10_000):
        demo.open_model(cnn_path)
    assert stage.text() == "Ready." and stage.toolTip() == "" and demo.quantize_panel.progress.value() == 0
    assert demo.results.table_title.text() == "<b>Per-layer error</b> (worst first)"
    assert demo.results.notes.toolTip() == "" and demo.results.proxy.rowCount() == 0


def test_keep_in_float_from_the_graph_marks_the_node(qtbot, demo: MainWindow) -> None:
    demo.graph.keep_in_float_requested.emit("/block2/Add")
    assert demo.session.exclude == ("/block2/Add",)
    assert "FP32" in demo.graph.item_for_node("/block2/Add").badges
    assert [demo.quantize_panel.float_list.item(i).text() for i in range(demo.quantize_panel.float_list.count())] \
        == ["/block2/Add"]
    demo.graph.keep_in_float_requested.emit("/block2/Add")  # the same request again quantizes it again
    assert demo.session.exclude == ()


def test_keep_a_batchnorm_row_in_float_then_run_again(qtbot, demo: MainWindow) -> None:
    """The table names a folded layer by its BatchNorm; keeping that row in float keeps its Conv."""
    run_to_end(qtbot, demo)
    proxy = demo.results.proxy
    op_column = [c[1] for c in COLUMNS].index("op_type")
    rows = {proxy.index(r, op_column).data(): r for r in range(proxy.rowCount())}
    assert demo.results.row_menu(proxy.index(rows["Input"], 0)) is None  # no layer computes the input
    menu = demo.results.row_menu(proxy.index(rows["BatchNormalization"], 0))
    batchnorm = demo.results.node_at_row(rows["BatchNormalization"])
    menu.actions()[0].trigger()
    assert demo.session.exclude == (batchnorm,)
    run = run_to_end(qtbot, demo)
    conv = next(n.name for n in demo.session.model.graph.nodes
                if n.outputs[0] in demo.session.model.graph.node_by_name(batchnorm).inputs)
    assert (conv, "kept in float on request") in [(n.name, n.reason) for n in run.result.float_nodes]


def test_drop_an_onnx_file_opens_it(qtbot, window: MainWindow, cnn_path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(cnn_path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.dropEvent(event)
    assert window.session.model.path == cnn_path
    assert window.quantize_panel.calibration.path() is None


def test_a_window_with_a_model_fits_a_laptop_screen(qtbot, demo: MainWindow) -> None:
    # 1366x768 leaves about 700 pixels under a task bar and a title bar; at 718 the Results fell off it.
    demo.resize(1024, 680)
    qtbot.waitUntil(lambda: demo.height() == 680, timeout=2000)


def test_geometry_is_remembered(qtbot, tmp_path: Path) -> None:
    first = make_window(qtbot, tmp_path / "s.ini")
    first.resize(700, 500)  # the start page fits the offscreen screen (800x600); restoring clamps to it
    first.close()
    second = make_window(qtbot, tmp_path / "s.ini")
    assert (second.width(), second.height()) == (700, 500)


def test_a_scripted_window_ignores_and_keeps_the_layout_the_user_left(qtbot, tmp_path: Path) -> None:
    """A screenshot shows the default size whatever window the user left, and leaves that one saved."""
    first = make_window(qtbot, tmp_path / "s.ini")
    first.resize(700, 500)
    first.close()
    scripted = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), remember_layout=False)
    qtbot.addWidget(scripted)
    scripted.show()
    assert (scripted.width(), scripted.height()) == (1400, 900)
    scripted.close()
    third = make_window(qtbot, tmp_path / "s.ini")
    assert (third.width(), third.height()) == (700, 500)


def test_recent_files_are_remembered(qtbot, tmp_path: Path, cnn_path: Path) -> None:
    first = make_window(qtbot, tmp_path / "s.ini")
    with qtbot.waitSignal(first.model_loaded, timeout=10_000):
        first.open_model(cnn_path)
    first.close()
    second = make_window(qtbot, tmp_path / "s.ini")
    assert second.recent_files() == [cnn_path.resolve()]
    assert second.start_page.recent.item(0).toolTip() == str(cnn_path.resolve())
    assert [a.text() for a in second.recent_menu.actions()] == [str(cnn_path.resolve())]
    with qtbot.waitSignal(second.model_loaded, timeout=10_000):
        item = second.start_page.recent.item(0)
        qtbot.mouseClick(second.start_page.recent.viewport(), Qt.MouseButton.LeftButton,
                         pos=second.start_page.recent.visualItemRect(item).center())
    assert second.session.model.path == cnn_path.resolve()


def test_image_folder_shows_preprocessing_and_a_preview(qtbot, demo: MainWindow) -> None:
    assets = demo_assets()
    panel = demo.quantize_panel
    assert not panel.preprocessing_box.isVisibleTo(panel)  # .npz data needs no image settings
    panel.set_preprocessing(ImagePreprocessing.from_json(assets.preprocessing))
    assert panel.set_calibration(assets.images)
    assert panel.preprocessing_box.isVisibleTo(panel)
    calibration, evaluation = panel.datasets()
    assert calibration.count == 10 and calibration.labels is not None and evaluation.count == 360
    expected = display_image(ImageFolderSource(assets.images, panel.preprocessing()).load(0), "NCHW")
    image = panel.preview.pixmap().toImage()
    assert image.width() == image.height() == PREVIEW_PIXELS  # 16x16 scaled up, nearest neighbour
    assert image.pixelColor(0, 0).red() == expected[0, 0]
    panel.std_edit.setText("not a number")
    with pytest.raises(Q8Error, match="must be numbers"):
        panel.datasets()


def test_the_preprocessing_form_reads_back_what_it_was_given(demo: MainWindow) -> None:
    """The demo's scale is 1/255 and its mean 0.30538231134414673: rounded for display, the run would
    preprocess other samples than the settings file says."""
    given = ImagePreprocessing.from_json(demo_assets().preprocessing)
    demo.quantize_panel.set_preprocessing(given)
    assert demo.quantize_panel.preprocessing() == given
    assert demo.quantize_panel.std_edit.text() == "0.3186022937297821"


def test_cancel_during_calibration_stops_within_two_seconds(qtbot, demo: MainWindow, tmp_path: Path) -> None:
    with np.load(demo_assets().calibration) as data:
        images = np.tile(data["image"], (40, 1, 1, 1))  # 20,000 samples: calibration would take many seconds
    big = tmp_path / "big.npz"
    np.savez(big, image=images)
    assert demo.quantize_panel.set_calibration(big)
    demo.quantize_panel.samples.setValue(0)
    stages: list[str] = []
    demo.runner.progress.connect(lambda stage, *_: stages.append(stage))
    demo.start_run()
    qtbot.waitUntil(lambda: "Calibrating" in stages, timeout=30_000)
    started = time.monotonic()
    with qtbot.waitSignal(demo.run_ended, timeout=5000) as blocker:
        demo.cancel_run()
    assert blocker.args == ["cancelled"] and time.monotonic() - started < 2.0
    assert demo.session.run is None and not demo.runner.busy


def test_keyboard_shortcuts(qtbot, demo: MainWindow) -> None:
    demo.activateWindow()
    qtbot.waitUntil(demo.isActiveWindow, timeout=2000)
    qtbot.keyClick(demo, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert demo.graph.search.hasFocus()
    with qtbot.waitSignal(demo.run_ended, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.keyClick(demo, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        assert demo.runner.busy
        qtbot.keyClick(demo, Qt.Key.Key_Escape)
    assert blocker.args == ["cancelled"]


def test_node_names_that_look_like_html_are_shown_as_written(qtbot, window: MainWindow, tmp_path: Path) -> None:
    names = ["<b>bold</b> & co", "x<y>z"]
    nodes = [helper.make_node("Relu", ["x"], ["y"], name=names[0]), helper.make_node("Sigmoid", ["y"], ["z"], name=names[1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), tmp_path / "m.onnx")
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_model(path)

    def shown(label) -> str:
        document = QTextDocument()
        document.setHtml(label.text())
        return document.toPlainText()

    for name in names:
        window.session.select(name)
        qtbot.waitUntil(lambda: name in shown(window.histograms.weight_header), timeout=5000)
        assert shown(window.inspector.title).endswith(name)
        assert shown(window.histograms.weight_header).endswith(f"{name} has no weights.")


def test_histogram_header_says_when_a_concat_histogram_combines_its_inputs(qtbot) -> None:
    rng = np.random.default_rng(0)
    parts = [TensorStats("left", values_per_sample=10), TensorStats("right", values_per_sample=10)]
    concat = TensorStats("cat", values_per_sample=10, parts=("left", "right"))
    concat.add_extent(BatchExtent.union(p.update(rng.random((2, 50), dtype=np.float32)) for p in parts))
    concat.combine_histograms(parts)
    panel = HistogramPanel()
    qtbot.addWidget(panel)
    panel.show_activation(concat, (concat.hist, concat.edges), [], "minmax")
    header = panel.activation_header.text()
    assert "histogram combined from its inputs left, right (regular samples, 1 value in 7)" in header
    _, counts = plotted(panel.activation_hist)
    assert counts.sum() == 2 * len(range(0, 100, 7))  # 7: the smallest prime >= 50/10 not dividing 50



def test_log_count_axes_write_every_decade_alike() -> None:
    labels = [label for _, label in LOG_TICKS[0]]
    assert labels[:8] == ["1", "10", "100", "1k", "10k", "100k", "1M", "10M"]
    assert not [label for label in labels if "e" in label or "0000" in label]


LOG_TICKS_VALUE = {label: value for level in LOG_TICKS for value, label in level}


def drawn_count_labels(panel: HistogramPanel, counts: np.ndarray) -> list[str]:
    """The labels the weight plot's log count axis draws for a histogram of ``counts``."""
    edges = np.arange(counts.size + 1, dtype=np.float64)
    panel.show_weight(WeightSummary("w", (int(counts.sum()),), 0.0, 5.0, 1.0, 1.0, None, None, None), (counts, edges))
    panel.weight_plot.grab()
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = panel.weight_plot.getAxis("left").generateDrawSpecs(painter)
    finally:
        painter.end()
    return sorted({text for _, _, text in texts}, key=lambda label: LOG_TICKS_VALUE[label])


def test_log_count_axis_of_a_few_values_has_more_than_one_label(qtbot) -> None:
    """A small layer's weights: every count below 10 used to leave the axis a single label, 1."""
    panel = HistogramPanel()
    qtbot.addWidget(panel)
    panel.resize(460, 400)
    panel.show()
    assert drawn_count_labels(panel, np.array([1, 3, 2, 0, 1])) == ["1", "2"]
    assert drawn_count_labels(panel, np.array([1, 10**6, 2, 0, 1])) == ["1", "10", "100", "1k", "10k", "100k", "1M"]


def assert_method_labels_readable(qtbot, panel: HistogramPanel) -> None:
    """Every clipping method's name is inside the plot, beside its own line, and clear of the others."""
    panel.tabs.setCurrentIndex(1)  # Activation: the plot ranges its view, and the labels follow, once painted
    qtbot.waitUntil(lambda: all(label.item.isVisible() for label in panel.method_labels.labels), timeout=2000)
    panel.activation_plot.grab()  # labels keep their size on screen by following the view's scale when painted
    view = panel.activation_plot.getViewBox()
    area = view.sceneBoundingRect()
    rects = {label.item.textItem.toPlainText(): label.item.sceneBoundingRect()
             for label in panel.method_labels.labels if label.item.isVisible()}
    assert set(rects) == set(panel.method_lines)
    for name, rect in rects.items():
        assert area.contains(rect), (name, rect, area)
        line = view.mapViewToScene(QPointF(panel.method_lines[name][0].value(), 0.0)).x()
        assert rect.right() <= line or rect.left() >= line, name  # beside its line, not across it
        assert min(abs(rect.right() - line), abs(rect.left() - line)) < 6, name
    inner = {name: rect.adjusted(0.5, 0.5, -0.5, -0.5) for name, rect in rects.items()}  # touching is not overlapping
    clashes = [(a, b) for a in inner for b in inner if a < b and inner[a].intersects(inner[b])]
    assert not clashes, clashes


CLOSE_RANGES = [MethodRange("minmax", -6.35, 9.69, 0.0), MethodRange("percentile", -5.12, 7.93, 2e-4),
                MethodRange("entropy", -6.13, 9.07, 2e-5), MethodRange("mse", -6.35, 8.31, 4e-5),
                MethodRange("ema", -5.09, 7.65, 3e-4)]
"""The demo's /block2/pointwise/bn output: five upper limits within 2.1 of each other."""


@pytest.mark.parametrize("log_counts", [True, False], ids=["log", "linear"])
@pytest.mark.parametrize("size", [(460, 400), (300, 320), (900, 700)], ids=["dock", "narrow", "wide"])
def test_clipping_method_labels_of_close_ranges_do_not_overlap(qtbot, size: tuple[int, int], log_counts: bool) -> None:
    stats = TensorStats("t")
    stats.update(np.random.default_rng(0).standard_normal((8, 4096)).astype(np.float32) * 2.5)
    panel = HistogramPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    panel.log_counts.setChecked(log_counts)
    panel.show_activation(stats, (stats.hist, stats.edges), CLOSE_RANGES, "minmax")
    assert_method_labels_readable(qtbot, panel)
    bold = {label.item.textItem.toPlainText(): label.item.textItem.font().bold() for label in panel.method_labels.labels}
    assert bold == {entry.method: entry.method == "minmax" for entry in CLOSE_RANGES}  # bold = used, as the lines
    panel.show_activation(None, None, [], "", "Select a node")
    assert panel.method_labels.labels == [] and not [item for item in panel.activation_plot.getViewBox().addedItems
                                                     if item.__class__.__name__ == "TextItem"]


def test_labels_stack_only_where_they_would_overlap() -> None:
    assert stack_rows([(100, 150), (120, 170), (10, 60), (145, 200), (0, 30)]) == [0, 1, 0, 2, 1]
    assert stack_rows([(0, 10), (13, 20)], gap=3) == [0, 0]  # far enough apart to share a row

def test_log_counts_draw_a_bin_of_one_value(qtbot) -> None:
    """A single outlier is what log counts are for: its bin must be filled, not a line on the axis."""
    panel = HistogramPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 500)
    panel.show()
    counts = np.array([0, 5000, 300, 0, 0, 0, 0, 1], dtype=np.int64)
    edges = np.arange(counts.size + 1, dtype=np.float64)
    summary = WeightSummary("w", (counts.sum(),), 1.0, 8.0, 1.5, 0.5, None, None, None)
    panel.show_weight(summary, (counts, edges))
    panel.weight_plot.getViewBox().autoRange(padding=0.05)
    qtbot.wait(50)
    image = panel.weight_plot.grab().toImage()

    def pixel(x: float, log_count: float):
        scene = panel.weight_plot.getViewBox().mapViewToScene(QPointF(x, log_count))
        return image.pixelColor(panel.weight_plot.mapFromScene(scene)).name()

    just_above_the_base = -0.25  # below a count of one, above the fill's start
    assert pixel(7.5, just_above_the_base) == pixel(1.5, just_above_the_base)  # the outlier's bin, the big one's
    assert pixel(7.5, just_above_the_base) != pixel(4.5, just_above_the_base)  # an empty bin shows the background


def test_a_second_run_with_another_method_reuses_the_calibration(qtbot, demo: MainWindow) -> None:
    """Trying another clipping method needs no second calibration pass, and the window says so."""
    first = run_to_end(qtbot, demo)
    assert first.result.statistics_reused == 0
    demo.quantize_panel.method.setCurrentText("entropy")
    second = run_to_end(qtbot, demo)
    assert second.result.statistics_reused == len(second.result.stats) > 0
    assert all(second.result.stats[name] is first.result.stats[name] for name in second.result.stats)
    assert "Calibration statistics reused from the previous run." in demo.quantize_panel.stage.text()
    demo.quantize_panel.samples.setValue(119)  # other samples: calibrated afresh
    assert run_to_end(qtbot, demo).result.statistics_reused == 0


def test_run_is_refused_while_another_model_is_being_opened(qtbot, demo: MainWindow, tmp_path: Path) -> None:
    """The model being opened replaces the current one: a run started meanwhile would land on it."""
    from builders import save, small_cnn

    other = save(small_cnn(), tmp_path / "cnn.onnx")
    with qtbot.waitSignal(demo.model_loaded, timeout=10_000):
        demo.open_model(other)
        assert demo.loader.busy
        demo.start_run()
        assert not demo.runner.busy
    assert demo.session.model.path == other and demo.session.run is None


RUN_STAGES = ("Pre-processing", "Calibrating", "Choosing ranges", "Writing the int8 model", "Comparing",
              "Preparing the tensor probe", "Profiling")
"""The stages of a run of the window, in the order they happen."""


def test_the_progress_label_shows_every_stage_of_a_run_in_order(qtbot, demo: MainWindow) -> None:
    """Choosing ranges and writing the int8 model follow calibration's last step within milliseconds:
    they must show all the same, not leave "Calibrating 120/120" on screen while the file is written."""
    shown: list[str] = []
    demo.runner.progress.connect(lambda *_: shown.append(demo.quantize_panel.stage.text()))
    run_to_end(qtbot, demo)
    firsts = [next((i for i, text in enumerate(shown) if text.startswith(stage)), None) for stage in RUN_STAGES]
    assert None not in firsts and firsts == sorted(firsts), shown


def outputs_of_runs(monkeypatch) -> list[Path]:
    """Where each run of the window writes its int8 model, in the order the runs start."""
    written: list[Path] = []
    real = main_window_module.run_and_profile

    def recorded(model, calibration, evaluation, recipe, output, *args):
        written.append(output)
        return real(model, calibration, evaluation, recipe, output, *args)

    monkeypatch.setattr(main_window_module, "run_and_profile", recorded)
    return written


def test_only_the_run_shown_keeps_its_int8_file(qtbot, demo: MainWindow, monkeypatch) -> None:
    """A large model's int8 file is hundreds of MB: a cancelled, failed or replaced run's goes at once."""
    written = outputs_of_runs(monkeypatch)
    run_to_end(qtbot, demo)
    written_when_cancelled: list[bool] = []

    def cancel_once_compared(stage: str, *_args) -> None:
        if stage == "Comparing":
            written_when_cancelled.append(written[-1].is_file())
            demo.cancel_run()

    demo.runner.progress.connect(cancel_once_compared)
    with qtbot.waitSignal(demo.run_ended, timeout=RUN_TIMEOUT_MS) as blocker:
        demo.start_run()
    demo.runner.progress.disconnect(cancel_once_compared)
    assert blocker.args == ["cancelled"] and written_when_cancelled[0]
    assert written[0].is_file() and not written[1].exists()

    def fails(*_args):
        raise Q8Error("The tensor probe failed.")

    with monkeypatch.context() as patch:
        patch.setattr(runs_module, "TensorProbe", fails)  # after the int8 model was written and compared
        with qtbot.waitSignal(demo.run_ended, timeout=RUN_TIMEOUT_MS) as blocker:
            demo.start_run()
    assert blocker.args == ["failed"] and written[0].is_file() and not written[2].exists()
    demo.errors.close()

    assert run_to_end(qtbot, demo).result.output_path == written[3]
    assert not written[0].exists() and written[3].is_file()  # the first run can no longer be shown nor exported
    demo.close()
    assert not written[3].exists()


def test_an_export_keeps_the_int8_file_of_a_run_replaced_while_its_dialog_is_open(
        qtbot, demo: MainWindow, monkeypatch, cnn_path: Path, tmp_path: Path) -> None:
    """The save dialog runs the event loop: a model being opened can finish loading, and replace the run."""
    source = run_to_end(qtbot, demo).result.output_path
    expected = source.read_bytes()
    target = tmp_path / "exported.int8.onnx"

    def dialog(*_args) -> tuple[str, str]:
        with qtbot.waitSignal(demo.model_loaded, timeout=10_000):
            demo.open_model(cnn_path)
        assert demo.session.run is None and source.is_file()
        return str(target), ""

    monkeypatch.setattr(exports_module.QFileDialog, "getSaveFileName", dialog)
    assert demo.exporter.export_model()
    assert target.read_bytes() == expected and not source.exists()


def test_a_layer_kept_in_float_says_so_where_its_activation_would_show(qtbot, demo: MainWindow) -> None:
    """Not the generic 'int8 leaves it to its neighbours': the plots give the inspector's reason."""
    kept = "/block1/depthwise/conv/Conv"
    demo.session.set_exclusions([node.name for node in demo.session.model.quantizable_nodes()])
    run = run_to_end(qtbot, demo)
    reason = next(node.reason for node in run.result.float_nodes if node.name == kept)
    with qtbot.waitSignal(demo.inspect.finished, timeout=10_000):
        demo.session.select(kept)
    expected = f"Conv {kept} computes in float32 ({reason}): it has no int8 activation."
    assert demo.histograms.activation_header.text() == expected
    assert demo.histograms.int8_header.text() == expected


def test_a_node_kept_in_float_is_offered_back_to_int8_by_its_menus(qtbot, demo: MainWindow) -> None:
    """The menus said "Keep in float" on a node already kept, and choosing it quantized the node again
    while the status bar still said it was kept."""
    run_to_end(qtbot, demo)
    layers = demo.results.proxy
    index = next(layers.index(row, 0) for row in range(layers.rowCount()) if layers.index(row, 0).data(NODE_ROLE))
    name = str(index.data(NODE_ROLE))
    graph_menu = demo.graph.context_menu(demo.graph.item_for_node(name))
    [keep] = [action for action in graph_menu.actions() if action.text() == "Keep in float"]
    keep.trigger()
    assert demo.session.exclude == (name,)
    assert demo.statusBar().currentMessage() == f"Kept in float at the next run: {name}"
    graph_menu = demo.graph.context_menu(demo.graph.item_for_node(name))
    assert "Keep in float" not in [action.text() for action in graph_menu.actions()]
    assert [action.text() for action in demo.results.row_menu(index).actions()] == [f"Quantize {name} in int8 again"]
    [back] = [action for action in graph_menu.actions() if action.text() == "Quantize in int8 again"]
    back.trigger()
    assert demo.session.exclude == ()
    assert demo.statusBar().currentMessage() == f"Quantized in int8 again at the next run: {name}"


def test_one_sample_is_one_sample(qtbot, demo: MainWindow) -> None:
    """"calibrated on 1 samples" read like a typo in a tool that counts samples everywhere."""
    demo.quantize_panel.samples.setValue(1)
    run_to_end(qtbot, demo)
    assert "calibrated on 1 sample ·" in demo.results.notes.text()
    assert "1 samples" not in demo.results.notes.text() + demo.quantize_panel.stage.text()
