"""Run ▸ Compare clipping methods and the Methods tab, on the demo, as a user drives them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui_actions import QUICK_SAMPLES, RUN_TIMEOUT_MS, open_demo_window, run_to_end
from q8studio.core.clipping import METHODS
from q8studio.gui import formatting as fmt
from q8studio.gui.main_window import MainWindow
from q8studio.gui.methods_panel import BEST_MARK, COLUMNS, INVITATION

COMPARE_TIMEOUT_MS = 3 * RUN_TIMEOUT_MS
METHOD, INT8_TOP1 = 0, 1


def compare(qtbot, window: MainWindow) -> list[str]:
    """Run ▸ Compare clipping methods to the end; the stages its progress named."""
    stages: list[str] = []
    window.methods.runner.progress.connect(lambda stage, *_: stages.append(stage))
    with qtbot.waitSignal(window.methods.compared, timeout=COMPARE_TIMEOUT_MS):
        window.methods_action.trigger()
    return stages


def cell(window: MainWindow, row: int, column: int) -> str:
    panel = window.results.methods
    return str(panel.proxy.index(row, column).data())


@pytest.fixture
def compared(qtbot, tmp_path: Path) -> tuple[MainWindow, list[str]]:
    """The demo window after a run and a comparison of every method with the run's settings."""
    window = open_demo_window(qtbot, tmp_path, QUICK_SAMPLES)
    run_to_end(qtbot, window)
    return window, compare(qtbot, window)


def test_the_comparison_shows_every_method_and_agrees_with_the_run_it_reused(compared) -> None:
    window, stages = compared
    panel, run = window.results.methods, window.session.run
    comparison = panel.comparison
    assert window.results.tabs.currentWidget() is panel
    assert [cell(window, row, METHOD).removesuffix(BEST_MARK) for row in range(len(METHODS))] == list(METHODS)
    # the run's statistics fit: no method calibrated again
    assert not any("Calibrating" in stage for stage in stages)
    assert any("Reusing the previous run's calibration statistics" in stage for stage in stages)
    # the run's own method, settings and data give the run's figures
    assert comparison.float_top1 == run.comparison.float32.top1
    same = next(score for score in comparison.scores if score.method == run.result.recipe.method)
    assert same.int8_top1 == run.comparison.int8.top1
    assert cell(window, METHODS.index(same.method), INT8_TOP1) == fmt.percent(same.int8_top1)
    # the best is marked, selected, named in the verdict, offered by Use
    best = comparison.best.method
    assert [cell(window, row, METHOD).endswith(BEST_MARK) for row in range(len(METHODS))] == [
        method == best for method in METHODS]
    assert panel.selected_method() == best
    assert f"<b>{best}</b>" in panel.verdict.text()
    assert panel.use_button.text() == f"Use {best}" and panel.use_button.isEnabled()
    assert f"compared on {comparison.samples} samples of test.npz" in panel.details.text()
    assert best in window.statusBar().currentMessage()


def test_the_window_report_takes_the_comparison_along(compared, tmp_path: Path) -> None:
    window, _ = compared
    comparison = window.results.methods.comparison
    assert window.exporter.export_report(tmp_path / "report.json")
    methods = json.loads((tmp_path / "report.json").read_text())["methods"]
    assert methods["best"] == comparison.best.method
    assert [m["method"] for m in methods["methods"]] == list(METHODS)
    assert [m["int8_top1"] for m in methods["methods"]] == [score.int8_top1 for score in comparison.scores]
    assert methods["recipe"]["granularity"] == window.quantize_panel.recipe().granularity


def test_a_row_shows_its_worst_layer_and_use_sets_the_method(qtbot, compared) -> None:
    window, _ = compared
    panel = window.results.methods
    row = METHODS.index("entropy")
    index = panel.proxy.index(row, COLUMNS.index(("Worst layer", "node")))
    rect = panel.table.visualRect(index)
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    entropy = next(score for score in panel.comparison.scores if score.method == "entropy")
    assert window.session.selection == entropy.worst_layer.node  # the graph and histograms show it
    assert panel.use_button.text() == "Use entropy"
    panel.use_button.click()
    assert window.quantize_panel.method.currentText() == "entropy"
    assert "entropy" in window.statusBar().currentMessage()

    ema = panel.table.visualRect(panel.proxy.index(METHODS.index("ema"), METHOD)).center()
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=ema)  # a double click's first press
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=ema)
    assert window.quantize_panel.method.currentText() == "ema"
    assert window.quantize_panel.recipe().method == "ema"


def test_comparing_without_a_run_calibrates_once_esc_cancels_and_profiles_wait(qtbot, tmp_path: Path) -> None:
    window = open_demo_window(qtbot, tmp_path, QUICK_SAMPLES)
    stages = compare(qtbot, window)
    calibrations = [stage for stage in stages if "Calibrating" in stage]
    assert calibrations and all(stage.startswith(f"{METHODS[0]} (1 of {len(METHODS)})") for stage in calibrations)
    assert window.results.methods.comparison is not None

    run_to_end(qtbot, window)
    window.methods_action.trigger()
    assert window.methods.busy and window.cancel_action.isEnabled()
    assert not window.methods_action.isEnabled() and not window.results.methods.compare_button.isEnabled()
    # its timings would disturb a profile's, and the other way round
    assert not window.profile_action.isEnabled() and not window.results.speed.profile_button.isEnabled()
    with qtbot.waitSignal(window.methods.runner.cancelled, timeout=COMPARE_TIMEOUT_MS):
        window.cancel_run()
    assert not window.methods.busy and window.methods_action.isEnabled() and window.profile_action.isEnabled()
    assert "cancelled" in window.statusBar().currentMessage()
    window.profile()
    assert window.int8.busy and not window.methods_action.isEnabled()
    window.compare_methods()
    assert not window.methods.busy
    with qtbot.waitSignal(window.int8.profiled, timeout=RUN_TIMEOUT_MS):
        pass


def test_a_run_supersedes_a_comparison(qtbot, tmp_path: Path) -> None:
    window = open_demo_window(qtbot, tmp_path, QUICK_SAMPLES)
    window.methods_action.trigger()
    assert window.methods.busy
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    qtbot.waitUntil(lambda: not window.methods.busy, timeout=RUN_TIMEOUT_MS)
    assert window.results.methods.comparison is None
    assert "cancelled" not in window.statusBar().currentMessage()


def test_a_new_model_clears_the_comparison_and_bad_settings_say_why(qtbot, compared) -> None:
    window, _ = compared
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_demo()
    panel = window.results.methods
    assert panel.comparison is None and panel.model.rowCount() == 0 and window.session.methods is None
    assert panel.verdict.text() == INVITATION and not panel.use_button.isEnabled()

    window.quantize_panel.calibration.set_path(None)
    window.methods_action.trigger()
    assert not window.methods.busy
    assert window.errors.last_message.startswith("Choose calibration data first")
