"""How int8 really runs, in the window: Explain dock, Speed tab, speed overlays, keep slower layers in float.

Each test runs the demo once (120 calibration samples); what the window shows is compared with
what the core computes for the same models and data.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from builders import save, small_cnn
from gui_actions import QUICK_SAMPLES, RUN_TIMEOUT_MS, click_graph_node, open_demo_window, run_to_end
from test_profile_macs import unknown_shape
from q8studio.core import evaluate as evaluate_module
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.explain import explain_node
from q8studio.core.model import load_model
from q8studio.core.profile import (
    ProfileReport,
    boundary_marks,
    kernel_overlay,
    profile_models,
    slower_in_int8,
    speedup_overlay,
)
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.speedup import SLOWER_IN_INT8
from q8studio.gui import formatting as fmt
from q8studio.gui import int8_actions as int8_actions_module
from q8studio.gui.banners import BANNERS
from q8studio.gui.explain_dock import HINT
from q8studio.gui.graph_items import ENTER_BADGE, LEAVE_BADGE, OverlayScale
from q8studio.gui.main_window import DEFAULT_SIZE, MainWindow
from q8studio.gui.results_panel import SUMMARY_ROWS
from q8studio.gui.row_table import SORT_ROLE
from q8studio.gui.speed_panel import (
    COLUMNS,
    TOOLTIPS,
    SpeedPanel,
    boundary_details,
    float_layer_lines,
    summary_html,
)

DEPTHWISE = "/block1/depthwise/conv/Conv"


@pytest.fixture
def demo(qtbot, tmp_path: Path) -> MainWindow:
    window = open_demo_window(qtbot, tmp_path, samples=QUICK_SAMPLES)
    return window


def explained(qtbot, window: MainWindow, node: str, sample: int = 0):
    panel = window.explain_dock.panel
    qtbot.waitUntil(lambda: panel.explanation is not None and panel.explanation.node == node
                    and panel.explanation.sample == sample, timeout=10_000)
    return panel.explanation


def numbers(window: MainWindow) -> dict[str, str]:
    table = window.explain_dock.panel.numbers
    return {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}


def test_explain_dock_explains_the_selected_node_like_the_core(qtbot, demo: MainWindow) -> None:
    dock = demo.explain_dock
    assert demo.tabifiedDockWidgets(dock) == [demo.docks["inspector"]]
    run = run_to_end(qtbot, demo)
    dock.raise_()
    click_graph_node(qtbot, demo, DEPTHWISE)
    shown = explained(qtbot, demo, DEPTHWISE)
    test = load_data(demo_assets().test, run.int8)
    core = explain_node(run.int8, DEPTHWISE, test, 0, demo.session.model)
    np.testing.assert_array_equal(shown.x.scale, core.x.scale)
    np.testing.assert_array_equal(shown.w.scale, core.w.scale)
    assert [(m.m0, m.shift) for m in shown.multipliers] == [(m.m0, m.shift) for m in core.multipliers]
    assert shown.example.index == core.example.index and shown.example.y_q == core.example.y_q
    assert numbers(demo)["S_x"] == fmt.number(float(core.x.scale), 6)
    assert numbers(demo)["S_y"] == fmt.number(float(core.y.scale), 6)
    assert numbers(demo)["M0"] == str(core.multipliers[0].m0)
    assert dock.panel.badge.text() == "bit-exact with ONNX Runtime"
    assert dock.source.text() == "of 360 in test.npz" and dock.sample.maximum() == 359

    dock.sample.setValue(3)
    shown = explained(qtbot, demo, DEPTHWISE, sample=3)
    np.testing.assert_array_equal(shown.x_q, explain_node(run.int8, DEPTHWISE, test, 3).x_q)

    demo.session.select("/flatten/Flatten")  # a layer that moves 8-bit values: a copy, no arithmetic
    flattened = explained(qtbot, demo, "/flatten/Flatten", sample=3)
    core_flatten = explain_node(run.int8, "/flatten/Flatten", test, 3, demo.session.model)
    assert numbers(demo)["moves"] == core_flatten.movement == "[1, 32, 1, 1] → [1, 32], row-major order kept"
    assert dock.panel.steps.toPlainText().splitlines() == core_flatten.steps()
    assert flattened.runtime_kernel == "Flatten" and dock.panel.badge.text() == "bit-exact with ONNX Runtime"
    assert dock.panel.grids.isHidden() and dock.panel.plot_row.isHidden() and dock.redirect.isHidden()
    assert f"is input element <b>{list(core_flatten.example.source)}</b>" in dock.panel.element_label.text()

    demo.session.select("/block1/depthwise/bn/BatchNormalization")  # folded into the convolution in int8
    explained(qtbot, demo, DEPTHWISE, sample=3)
    assert not dock.redirect.isHidden() and DEPTHWISE in dock.redirect.text()

    demo.session.select("/block1/relu/Relu")  # the residual Add's int8 output range does its clipping
    added = explained(qtbot, demo, "/block1/Add", sample=3)
    assert dock.redirect.text().endswith("int8 computes it as part of <b>/block1/Add</b>, explained below.")
    core_add = explain_node(run.int8, "/block1/Add", test, 3, demo.session.model)
    assert numbers(demo)["S_b"] == fmt.number(float(core_add.b.scale), 6)
    assert numbers(demo)["r_a = S_a/S_y (float32)"] == f"{core_add.ratios.a:.9g}"
    assert dock.panel.steps.toPlainText().splitlines() == core_add.steps()
    assert dock.panel.badge.text() == "bit-exact with ONNX Runtime" and added.runtime_kernel == "QLinearAdd"
    assert dock.panel.plot_row.isHidden() and dock.panel.grids.isHidden()

    click_graph_node(qtbot, demo, DEPTHWISE)  # a Conv again: its plots and grids come back
    explained(qtbot, demo, DEPTHWISE, sample=3)
    assert not dock.panel.plot_row.isHidden() and not dock.panel.grids.isHidden()


def test_explain_says_why_a_layer_is_float(qtbot, demo: MainWindow) -> None:
    demo.session.set_exclusions(["/stem/bn/BatchNormalization"])  # pre-processing folds it into the stem Conv
    run_to_end(qtbot, demo)
    dock = demo.explain_dock
    dock.raise_()
    demo.session.select("/stem/bn/BatchNormalization")
    expected = "/stem/conv/Conv is a float layer of the int8 model: kept in float on request."
    qtbot.waitUntil(lambda: dock.panel.message.text().startswith(expected), timeout=5000)
    qtbot.waitUntil(lambda: not dock.runner.busy, timeout=10_000)  # nothing sent to the worker overwrites it
    assert dock.panel.message.text().startswith(expected) and dock.panel.explanation is None
    assert HINT in dock.panel.message.text() and dock.panel.scroll.isHidden()
    assert "is computed as part of <b>/stem/conv/Conv</b>." in dock.redirect.text()
    assert "int8 computes" not in dock.redirect.text()
    demo.session.select(DEPTHWISE)  # an int8 layer is explained as before
    explained(qtbot, demo, DEPTHWISE)
    assert dock.redirect.isHidden()

def test_hidden_explain_dock_waits_until_shown(qtbot, demo: MainWindow) -> None:
    run_to_end(qtbot, demo)
    demo.docks["inspector"].raise_()
    qtbot.waitUntil(lambda: demo.explain_dock.visibleRegion().isEmpty(), timeout=2000)
    demo.session.select("/fc/Gemm")
    assert not demo.explain_dock.runner.busy and demo.explain_dock.panel.explanation is None
    demo.explain_dock.raise_()
    assert explained(qtbot, demo, "/fc/Gemm").op_type == "Gemm"


def test_speed_tab_overlays_and_boundaries_show_the_profile(qtbot, demo: MainWindow) -> None:
    run = run_to_end(qtbot, demo)
    report = demo.session.profile
    speed = demo.results.speed
    assert speed.proxy.rowCount() == len(report.layers)
    shown = [speed.node_at_row(r) for r in range(speed.proxy.rowCount())]
    assert shown == [layer.node for layer in sorted(report.layers, key=lambda layer: layer.speedup)]  # slowest first
    column = {key: i for i, (_, key) in enumerate(COLUMNS)}
    first = min(report.layers, key=lambda layer: layer.speedup)
    assert speed.proxy.index(0, column["speedup"]).data() == f"{first.speedup:.2f}×"
    assert speed.proxy.index(0, column["int8_kernels"]).data() == " + ".join(first.int8_kernels)
    assert speed.proxy.index(0, column["integer"]).data() == ("integer" if first.integer else "float")
    assert speed.proxy.index(0, column["macs"]).data(SORT_ROLE) == first.macs
    # the banner says the verdict's first clause; its tooltip and the summary say the rest
    assert speed.verdict.text() == f"{report.headline(typographic=True)}."
    assert speed.verdict.toolTip() == report.verdict(typographic=True)
    assert report.verdict(typographic=True).startswith(report.headline(typographic=True) + ";")
    summary = speed.summary.toPlainText()
    assert "float32 → int8 at image (model input)" in summary
    assert "int8 → float32 at logits (model output)" in summary
    # layers kept in float mid-model add two boundaries each: past two they are counted in one line
    inner = [replace(b, tensor=f"t{i}", at="inside the model") for i, b in enumerate(report.boundaries[:2] * 3)]
    many = summary_html(replace(report, boundaries=report.boundaries + inner))
    assert "float32 → int8 at 4 tensors, int8 → float32 at 4" in many and "(model input)" not in many
    # an exported model's long tensor name is cut in the middle; the tooltip has it whole, with its layer
    long_name = "/encoder/layers.11/attention/output/dense/MatMul_output_0"
    named = replace(report, boundaries=[replace(report.boundaries[-1], tensor=long_name, at="inside the model")])
    assert "int8 → float32 at <b>/encoder/layers…/MatMul_output_0</b> (inside the model)" in summary_html(named)
    assert boundary_details(named) == f"int8 → float32 at {long_name} (inside the model) ← /fc/Gemm"

    # the same layers and kernels as the core finds for these two models
    core = profile_models(demo.session.model, run.int8, load_data(demo_assets().test, run.int8), runs=5,
                          warmup=1, latency_runs=0)
    assert [(l.node, l.float_kernels, l.int8_kernels) for l in core.layers] == \
           [(l.node, l.float_kernels, l.int8_kernels) for l in report.layers]

    # graph overlays: the fixed SQNR scale, the speed-up and the kernels
    scale = demo.graph.overlay()
    assert (scale.vmin, scale.vmax, scale.fixed) == (15.0, 35.0, True) and "SQNR" in scale.title
    assert (demo.graph.value_legend.low, demo.graph.value_legend.high) == ("≤15", "≥35")
    demo.results.set_metric("speedup")
    scale = demo.graph.overlay()
    assert scale.values == speedup_overlay(report) and scale.spacing == "log" and scale.middle() == pytest.approx(1.0)
    slowest = demo.graph.item_for_node(first.node)
    assert slowest.fill.red() > slowest.fill.green()
    demo.results.set_metric("kernel")
    assert demo.graph.overlay().values == kernel_overlay(report)
    assert [label for label, _ in demo.graph.value_legend.categories] == ["float kernel", "integer kernel"]
    marks = boundary_marks(report)
    assert ENTER_BADGE in demo.graph.item_for_node(next(iter(marks["Q"]))).badges
    assert LEAVE_BADGE in demo.graph.item_for_node(next(iter(marks["DQ"]))).badges

    # Run ▸ Profile int8 vs float measures again
    with qtbot.waitSignal(demo.int8.profiled, timeout=RUN_TIMEOUT_MS) as blocker:
        demo.profile_action.trigger()
        assert demo.results.tabs.currentWidget() is speed and not demo.profile_action.isEnabled()
    assert demo.session.profile is blocker.args[0] is not report
    assert demo.graph.overlay().values == kernel_overlay(blocker.args[0])


def test_keep_slower_layers_in_float_replaces_the_run(qtbot, demo: MainWindow, stem_slower) -> None:
    before = run_to_end(qtbot, demo)
    assert slower_in_int8(demo.session.profile) == ["/stem/conv/Conv"]
    with qtbot.waitSignal(demo.int8.kept_float, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(demo.results.speed.keep_button, Qt.MouseButton.LeftButton)
        assert demo.int8.keeping and not demo.run_action.isEnabled()
    outcome = blocker.args[0]
    run = demo.session.run
    assert run is not before and run.result.recipe.exclude == outcome.chosen.exclude
    assert demo.session.exclude == outcome.chosen.exclude
    listed = [demo.quantize_panel.float_list.item(i).text() for i in range(demo.quantize_panel.float_list.count())]
    assert listed == list(outcome.chosen.exclude)
    for name in outcome.kept_float:
        assert "FP32" in demo.graph.item_for_node(name).badges
    assert outcome.ratio_after <= outcome.ratio_before or "does not pay" in outcome.verdict()
    kept_nodes = run.float_tally.kept  # the one count of nodes kept in float every view shows
    assert len(kept_nodes) == len(outcome.kept_float)  # the run it started from kept none
    kept = f"Kept {fmt.count(len(kept_nodes), 'node')} in float" if kept_nodes else "Kept no node in float"
    assert demo.results.speed.notice.text().startswith(kept)
    notes = demo.results.notes.text()
    assert f"{fmt.count(len(kept_nodes), 'node')} kept in float" in notes and "(s)" not in notes
    reasons = {node.name: node.reason for node in run.result.float_nodes}
    assert {reasons[name] for name in outcome.kept_float} == {SLOWER_IN_INT8}  # not "on request": no one asked
    assert demo.session.profile is not None
    assert demo.results.speed.verdict.toolTip() == demo.session.profile.verdict(typographic=True)
    assert demo.results.speed.proxy.rowCount() == len(demo.session.profile.layers)
    assert run.result.output_path.is_file() and run.result.output_path != before.result.output_path
    assert demo.results.model.rows == run.layer_rows()


def test_layers_float_in_both_models_are_not_offered_to_keep_in_float(qtbot, demo: MainWindow) -> None:
    """After every layer is kept in float, float is timed against float: no layer is slower *in int8*."""
    run_to_end(qtbot, demo)
    profile = demo.session.profile
    speed = demo.results.speed
    assert speed.keep_button.isEnabled() == demo.keep_float_action.isEnabled() == bool(slower_in_int8(profile))
    kept = [replace(row, int8_kernels=tuple(f"{k} (float)" for k in row.float_kernels), integer=False,
                    integer_macs=0, int8_us=row.float_total_us + 1.0) for row in profile.layers]
    demo.session.set_profile(replace(profile, layers=kept))
    assert not speed.keep_button.isEnabled() and not demo.keep_float_action.isEnabled()
    assert speed.keep_button.toolTip() == "No layer is slower in int8: there is nothing to keep in float"
    demo.keep_slower_in_float()  # Run ▸ Keep slower layers in float: no round trip that keeps nothing
    assert not demo.int8.busy
    assert f"Slower in int8: 0 of {len(kept)} layers" in speed.summary.toPlainText()


def integer_column(window: MainWindow) -> dict[str, str]:
    """Layer -> its “int8 computes in” cell in the Speed table."""
    speed, column = window.results.speed, [key for _, key in COLUMNS].index("integer")
    return {speed.node_at_row(r): speed.proxy.index(r, column).data() for r in range(speed.proxy.rowCount())}


def test_layers_kept_in_float_are_not_called_float_islands(qtbot, demo: MainWindow, tmp_path: Path) -> None:
    demo.session.set_exclusions(["/fc/Gemm"])
    run_to_end(qtbot, demo)
    summary = demo.results.speed.summary.toPlainText().splitlines()
    assert "Kept in float: /fc/Gemm; no float islands" in summary
    profile = demo.session.profile  # with a float layer nobody asked for, each gets its line
    stem = replace(next(row for row in profile.layers if row.node == "/stem/conv/Conv"), integer=False,
                   int8_kernels=("Conv (float)",))
    with_island = replace(profile, layers=[stem if row.node == stem.node else row for row in profile.layers])
    tally = demo.session.run.float_tally
    assert float_layer_lines(with_island, tally) == ["Kept in float: /fc/Gemm", "Float islands: /stem/conv/Conv"]
    assert integer_column(demo)["/fc/Gemm"] == "float, kept"
    assert demo.exporter.export_report(tmp_path / "report.json")
    profile = json.loads((tmp_path / "report.json").read_text())["profile"]
    assert profile["kept_in_float"] == ["/fc/Gemm"] and profile["float_islands"] == []


def test_with_every_layer_kept_in_float_the_speed_tab_says_no_layer_computes_in_int8(qtbot, demo: MainWindow) -> None:
    """As after keeping the slower layers in float on a CPU where int8 pays for no layer."""
    demo.session.set_exclusions([node.name for node in demo.session.model.quantizable_nodes()])
    run_to_end(qtbot, demo)
    layers, kept = len(demo.session.profile.layers), len(demo.session.run.float_tally.kept)
    summary = demo.results.speed.summary.toPlainText()
    assert f"Kept in float: {kept} nodes (all {layers} layers)" in summary.splitlines()
    assert "island" not in summary.lower()
    assert set(integer_column(demo).values()) == {"float, kept"}
    verdict = demo.results.speed.verdict  # neither green nor red: float is timed against float
    assert verdict.text().startswith("No layer computes in int8: the int8 model takes ")
    assert BANNERS[None] in verdict.styleSheet()

ASCII_UNITS = re.compile(r"\d\s?(x|us)\b|->")
"""A terminal's units ("0.92x", "3.0 us", "1.65 -> 1.00"); the window writes ×, µs and →."""


def speed_texts(window: MainWindow) -> list[str]:
    """Every speed figure on screen: the summary table, the Speed tab's banners and summary, the run's outcome."""
    summary = window.results.summary
    cells = [summary.item(r, c).text() for r in range(summary.rowCount()) for c in range(2)]
    speed = window.results.speed
    return cells + [speed.notice.text(), speed.verdict.text(), speed.summary.toPlainText(),
                    window.quantize_panel.stage.text(), window.statusBar().currentMessage()]


def latencies_shown(window: MainWindow) -> set[tuple[str, str]]:
    """The (float32, int8) pairs shown as "Median latency": the summary table's row and the Speed tab's line."""
    summary = window.results.summary
    row = next(r for r in range(summary.rowCount()) if summary.verticalHeaderItem(r).text() == "Median latency")
    line = next(line for line in window.results.speed.summary.toPlainText().splitlines()
                if line.startswith("Median latency"))
    return {(summary.item(row, 0).text(), summary.item(row, 1).text()),
            tuple(re.findall(r"[\d.]+ (?:ms|µs)", line))}


def test_speed_figures_tell_one_story_after_keeping_slower_layers_in_float(qtbot, demo: MainWindow,
                                                                          monkeypatch, stem_slower) -> None:
    # the comparison times the models apart from the profile; on a model this small both round to the
    # same figures, so give the comparison's timing figures no profile can have
    monkeypatch.setattr(evaluate_module, "measure_latency", lambda *args, **kwargs: (9.0, 8.0))
    run_to_end(qtbot, demo)
    with qtbot.waitSignal(demo.int8.kept_float, timeout=RUN_TIMEOUT_MS) as blocker:
        demo.keep_slower_in_float()
    outcome, profile = blocker.args[0], demo.session.profile
    # one timing of the models shown: the summary table follows the profile the Speed tab shows
    assert latencies_shown(demo) == {fmt.latency_pair(*profile.latency_ms)}
    float_ms, int8_ms = profile.latency_ms
    assert demo.results.summary.item(SUMMARY_ROWS.index("Speed-up"), 1).text() == f"{float_ms / int8_ms:.2f}×"
    # the search's own timing is labelled as such, and leaves the verdict to the profile of the model shown
    notice = demo.results.speed.notice.text()
    assert "While choosing" in notice and "pay" not in notice
    assert f"{outcome.ratio_before:.2f}×" in notice and f"{outcome.ratio_after:.2f}×" in notice
    assert not [text for text in speed_texts(demo) if ASCII_UNITS.search(text)]

    with qtbot.waitSignal(demo.int8.profiled, timeout=RUN_TIMEOUT_MS):  # timing again moves every latency shown
        demo.profile_action.trigger()
    assert latencies_shown(demo) == {fmt.latency_pair(*demo.session.profile.latency_ms)}
    assert not [text for text in speed_texts(demo) if ASCII_UNITS.search(text)]


def test_the_exported_report_holds_the_latency_the_summary_shows(qtbot, demo: MainWindow, monkeypatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(evaluate_module, "measure_latency", lambda *args, **kwargs: (9.0, 8.0))  # as above
    run_to_end(qtbot, demo)
    profile = demo.session.profile
    assert demo.exporter.export_report(tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    latency = report["latency"]
    assert latency["timed_by"] == "profile" and (latency["float32_ms"], latency["int8_ms"]) == profile.latency_ms
    assert latencies_shown(demo) == {fmt.latency_pair(latency["float32_ms"], latency["int8_ms"])}
    assert demo.results.summary.item(SUMMARY_ROWS.index("Speed-up"), 1).text() == fmt.times(latency["speedup"])
    assert report["profile"]["latency_ms"] == {"float32": latency["float32_ms"], "int8": latency["int8_ms"]}
    # the comparison's own timing keeps its place and its meaning
    assert (report["evaluation"]["float32"]["latency_ms"], report["evaluation"]["int8"]["latency_ms"]) == (9.0, 8.0)


@pytest.mark.parametrize("slower", [
    # the worst case for the summary: one int8 layer left inside the model, between two generated names
    lambda layer: "GlobalAveragePool" not in layer.node,
    lambda layer: layer.node == "/stem/conv/Conv",  # float32 enters int8 after the first layer
], ids=["all-but-the-pooling", "only-the-stem"])
def test_the_speed_tab_stays_readable_at_the_default_size(qtbot, demo: MainWindow, decide_speed, slower) -> None:
    """After keeping the slower layers in float, the notice and the verdict leave the table its rows,
    and the summary beside it shows whole, without scrolling. Which layers int8 makes slower, and which
    candidate is fastest, depends on the machine, so the test decides: the one keeping most in float."""
    decide_speed(slower)
    assert (demo.width(), demo.height()) == DEFAULT_SIZE
    run_to_end(qtbot, demo)
    demo.results.show_speed()
    with qtbot.waitSignal(demo.int8.kept_float, timeout=RUN_TIMEOUT_MS):
        demo.keep_slower_in_float()
    speed = demo.results.speed
    qtbot.waitUntil(lambda: speed.notice.isVisible())
    line = speed.notice.fontMetrics().lineSpacing()
    for banner in (speed.notice, speed.verdict):
        assert banner.height() < 2 * line, banner.text()  # one line each
    assert speed.table.viewport().height() >= 5 * speed.table.rowHeight(0)
    assert speed.summary.verticalScrollBar().maximum() == 0, speed.summary.toPlainText()
    report = demo.session.profile  # the summary shortens long names; its tooltip has them whole
    inner = [b for b in report.boundaries if b.at == "inside the model"]
    assert inner and all(f" at {b.tensor} (inside the model) " in speed.summary.toolTip() for b in inner)
    assert "re-quantized, compared and profiled again" in speed.notice.toolTip().lower()


def test_cancelling_keep_in_float_keeps_the_run(qtbot, demo: MainWindow, stem_slower) -> None:
    before = run_to_end(qtbot, demo)
    demo.keep_slower_in_float()
    with qtbot.waitSignal(demo.int8.runner.cancelled, timeout=RUN_TIMEOUT_MS):
        demo.cancel_run()
    assert demo.session.run is before and demo.session.exclude == () and not demo.int8.keeping
    assert demo.run_action.isEnabled() and demo.quantize_panel.run_button.isEnabled()
    assert demo.quantize_panel.stage.text() == "Cancelled." and demo.statusBar().currentMessage() == "Cancelled."


def test_cancelling_profile_again_says_so_and_keeps_the_earlier_profile(qtbot, demo: MainWindow) -> None:
    """The Speed tab looks as it did before profiling again: only the status bar tells the job stopped."""
    run_to_end(qtbot, demo)
    earlier, speed = demo.session.profile, demo.results.speed
    demo.statusBar().clearMessage()
    demo.profile()
    assert speed.cancel_button.isEnabled()
    with qtbot.waitSignal(demo.int8.runner.cancelled, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(speed.cancel_button, Qt.MouseButton.LeftButton)
    assert demo.session.profile is earlier and speed.report is earlier and not demo.int8.busy
    assert demo.statusBar().currentMessage() == "Profiling cancelled: the Speed tab still shows the earlier profile."

    demo.profile()  # a new run stops the profile without a word: the status bar tells the run's progress
    with qtbot.waitSignal(demo.int8.runner.cancelled, timeout=RUN_TIMEOUT_MS):
        demo.start_run()
    assert demo.statusBar().currentMessage() == "Quantizing…"
    with qtbot.waitSignal(demo.run_finished, timeout=RUN_TIMEOUT_MS):
        pass


def outputs_of_keeping(monkeypatch) -> list[Path]:
    """Where keeping the slower layers in float writes: the search's choice, then the run made with it."""
    written: list[Path] = []
    keep, run = int8_actions_module.keep_slow_float, int8_actions_module.run_and_profile

    def kept(model, calibration, recipe, output, *args, **kwargs):
        written.append(output)
        return keep(model, calibration, recipe, output, *args, **kwargs)

    def ran(model, calibration, evaluation, recipe, output, *args, **kwargs):
        written.append(output)
        return run(model, calibration, evaluation, recipe, output, *args, **kwargs)

    monkeypatch.setattr(int8_actions_module, "keep_slow_float", kept)
    monkeypatch.setattr(int8_actions_module, "run_and_profile", ran)
    return written


def test_keeping_slower_layers_in_float_leaves_only_the_int8_file_shown(qtbot, demo: MainWindow, stem_slower,
                                                                         monkeypatch) -> None:
    """The search's own copy of its choice is never shown; cancelled, neither is the run made with it."""
    written = outputs_of_keeping(monkeypatch)
    before = run_to_end(qtbot, demo).result.output_path
    written_when_cancelled: list[bool] = []

    def cancel_once_compared(stage: str, *_args) -> None:
        if stage == "Comparing":
            written_when_cancelled.append(all(path.is_file() for path in written))
            demo.cancel_run()

    demo.int8.runner.progress.connect(cancel_once_compared)
    with qtbot.waitSignal(demo.int8.runner.cancelled, timeout=RUN_TIMEOUT_MS):
        demo.keep_slower_in_float()
    demo.int8.runner.progress.disconnect(cancel_once_compared)
    assert written_when_cancelled[0] and before.is_file() and not any(path.exists() for path in written)

    with qtbot.waitSignal(demo.int8.kept_float, timeout=RUN_TIMEOUT_MS):
        demo.keep_slower_in_float()
    search, shown = written[2:]
    assert demo.session.run.result.output_path == shown and shown.is_file()
    assert not search.exists() and not before.exists()


def test_no_model_opens_while_keeping_slower_layers_in_float(qtbot, demo: MainWindow, tmp_path: Path,
                                                             stem_slower) -> None:
    """Like a Quantize run: the job's outcome belongs to the model it re-quantizes, not to the next one."""
    before = run_to_end(qtbot, demo)
    other = save(small_cnn(), tmp_path / "cnn.onnx")
    demo.keep_slower_in_float()
    demo.open_model(other)
    assert not demo.loader.busy and demo.int8.keeping
    assert demo.errors.last_message == ("Wait for Run ▸ Keep slower layers in float to finish, or cancel it (Esc), "
                                        "before opening a model.")
    with qtbot.waitSignal(demo.int8.runner.cancelled, timeout=RUN_TIMEOUT_MS):
        demo.cancel_run()
    assert demo.session.model.path == demo_assets().model and demo.session.run is before
    with qtbot.waitSignal(demo.model_loaded, timeout=10_000):
        demo.open_model(other)
    assert demo.quantize_panel.stage.text() == "Ready."


def test_keeping_slower_layers_in_float_waits_for_a_model_being_opened(qtbot, demo: MainWindow,
                                                                       tmp_path: Path, stem_slower) -> None:
    run_to_end(qtbot, demo)
    with qtbot.waitSignal(demo.model_loaded, timeout=10_000):
        demo.open_model(save(small_cnn(), tmp_path / "cnn.onnx"))
        demo.keep_slower_in_float()
        assert not demo.int8.busy and not demo.int8.keeping
    qtbot.wait(200)  # a job cancelled by the new model would report it now
    assert demo.quantize_panel.stage.text() == "Ready." and demo.quantize_panel.run_button.isEnabled()


def test_overlay_scales() -> None:
    speed = OverlayScale({}, "", True, 0.25, 4.0, "log")
    assert speed.goodness(1.0) == pytest.approx(0.5) and speed.goodness(0.25) == 0.0 and speed.goodness(4.0) == 1.0
    assert speed.colour(0.1).name() == speed.colour(0.25).name()  # saturates
    cosine = OverlayScale({}, "", True, 0.98, 0.9998, "log_to_one", fixed=True)
    assert cosine.middle() == pytest.approx(0.998) and cosine.labels() == ("≤0.98", "0.998", "≥0.9998")
    kernel = OverlayScale({}, "", True, 0.0, 1.0, categories=(("float", "#ff0000"), ("integer", "#00ff00")))
    assert kernel.colour(1.0).name() == "#00ff00" and kernel.colour(0.0).name() == "#ff0000"


def test_latencies_of_a_small_model_show_the_difference_their_ratio_shows() -> None:
    """The demo runs in about 12 µs: three decimals of a millisecond showed 0.012 ms against 0.012 ms
    beside a speed-up of 1.04×."""
    assert (fmt.milliseconds(0.0125), fmt.milliseconds(0.0120)) == ("0.0125 ms", "0.0120 ms")
    assert fmt.milliseconds(0.00093) == "0.000930 ms"
    assert fmt.milliseconds(0.25) == "0.250 ms" and fmt.milliseconds(12.3454) == "12.345 ms"
    assert fmt.milliseconds(0.0) == "0.000 ms"



def test_every_column_of_the_per_layer_table_fits_at_the_default_size(qtbot, demo: MainWindow) -> None:
    """The error columns need no horizontal scrolling, and with the room the default size leaves the
    longest layer name shows whole (a name too long for the room is elided; the tooltip has it whole)."""
    assert (demo.width(), demo.height()) == DEFAULT_SIZE
    run_to_end(qtbot, demo)
    table = demo.results.table
    qtbot.waitUntil(lambda: table.model().rowCount() > 0)
    assert table.horizontalScrollBar().maximum() == 0
    names = [table.model().index(row, 0).data() for row in range(table.model().rowCount())]
    widest = max(names, key=table.fontMetrics().horizontalAdvance)
    assert table.sizeHintForIndex(table.model().index(names.index(widest), 0)).width() + 1 <= table.columnWidth(0)
    assert widest in table.model().index(names.index(widest), 0).data(Qt.ItemDataRole.ToolTipRole)



@pytest.fixture
def unknown_macs_profile(tmp_path: Path) -> ProfileReport:
    """A real profile with a layer whose MACs are unknown: mm2 follows an Inverse, which ONNX's shape inference
    cannot size (:func:`test_profile_macs.unknown_shape`), and is kept in float."""
    float_model = load_model(save(unknown_shape(), tmp_path / "float.onnx"))
    data = np.eye(4, dtype=np.float32)[None] + np.random.default_rng(2).random((4, 4, 4), dtype=np.float32) * 0.1
    np.savez(tmp_path / "data.npz", x=data)
    dataset = load_data(tmp_path / "data.npz", float_model)
    result = quantize_model(float_model, dataset, Recipe(exclude=("mm2",)), tmp_path / "int8.onnx")
    report = profile_models(float_model, load_model(result.output_path), dataset, runs=2, warmup=1, latency_runs=0,
                            threads=1)
    assert report.macs_unknown == ["mm2"] and report.integer_mac_share == 1.0
    return report


def test_the_speed_tab_says_which_macs_are_unknown(qtbot, unknown_macs_profile: ProfileReport) -> None:
    """mm2's MACs are unknown: its cell read 0, it sorted among the layers that compute nothing, and the summary
    said integer kernels ran 100% of the multiply-accumulates though mm2 runs in float."""
    report = unknown_macs_profile
    panel = SpeedPanel()
    qtbot.addWidget(panel)
    panel.resize(1100, 300)
    panel.show()
    panel.show_report(report)
    column = [key for _, key in COLUMNS].index("macs")

    def macs_column() -> dict[str, str]:
        return {panel.node_at_row(r): panel.proxy.index(r, column).data() for r in range(panel.proxy.rowCount())}

    shown = macs_column()
    assert shown["mm2"] == "?" and shown["mm1"] == f"{4 * 4 * 4:,}" and shown["inverse"] == "0"
    row = list(shown).index("mm2")
    assert "MACs unknown for: mm2" in panel.proxy.index(row, column).data(Qt.ItemDataRole.ToolTipRole)
    panel.table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    assert list(macs_column().values()) == ["64", "0", "?"]  # unknown apart, below the layers that compute nothing
    panel.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)
    assert panel.node_at_row(0) == "mm2" and panel.proxy.index(0, column).data(SORT_ROLE) == -1

    summary = panel.summary.toPlainText()
    assert "Integer kernels: 100% of the multiply-accumulates counted (unknown for mm2)" in summary.splitlines()
    assert all(op in TOOLTIPS["macs"] for op in ("Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN", "?"))
    assert "batch 1" not in TOOLTIPS["macs"]  # the profiled run's shapes are counted, whatever its batch


def test_int8_activations_say_which_layers_run_in_float(qtbot, demo: MainWindow, tmp_path: Path) -> None:
    demo.quantize_panel.activation_type.setCurrentText("int8")
    run = run_to_end(qtbot, demo)
    unfused = run.result.unfused_int8
    notes = demo.results.notes.text()
    if not unfused:  # a CPU whose kernels take int8 codes fuses them all
        assert "run in float" not in notes
        return
    assert f"int8 activations · so {fmt.count(len(unfused), 'layer')} run in float (hover for why) · " in notes
    assert any(note.startswith("With int8 activations") for note in demo.results.notes.toolTip().splitlines())
    assert "/stem/conv/Conv" in unfused
    assert demo.grab().save(str(tmp_path / "int8_activations.png"))
