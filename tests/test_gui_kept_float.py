"""One selection and one count across the window's panels.

The per-layer table lists the model's input like a layer: clicking its row shows the input in every
panel, as clicking a layer shows the layer. After Keep slower layers in float, every panel counts the
nodes kept in float the same way, and the nodes the quantizer left in float are not called kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui_actions import QUICK_SAMPLES, RUN_TIMEOUT_MS, click_graph_node, open_demo_window, run_to_end, tree_rows
from q8studio.core.evaluate import INPUT_OP
from q8studio.gui import formatting as fmt
from q8studio.gui.main_window import MainWindow
from q8studio.gui.results_panel import OP_COLUMN
from q8studio.gui.speed_panel import COLUMNS, KEPT_FLOAT

FLATTEN = "/flatten/Flatten"


@pytest.fixture
def demo(qtbot, tmp_path: Path) -> MainWindow:
    window = open_demo_window(qtbot, tmp_path, samples=QUICK_SAMPLES)
    return window


def click_input_row(qtbot, window: MainWindow) -> int:
    """A real mouse click on the per-layer table's row of the model input; its row number."""
    table, proxy = window.results.table, window.results.proxy
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, OP_COLUMN).data() == INPUT_OP)
    table.scrollTo(proxy.index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualRect(proxy.index(row, 0)).center())
    return row


def settled(qtbot, window: MainWindow) -> None:
    """The Node dock's numbers and the float-vs-int8 values of what is selected have arrived (a runner is
    busy from its start until the slot delivering its result, which starts the comparison, has run)."""
    qtbot.waitUntil(lambda: not window.inspect.busy and not window.probe.busy, timeout=20_000)


def test_clicking_the_input_row_shows_the_input_in_every_panel(qtbot, demo: MainWindow) -> None:
    """The row was highlighted while the graph, the Node dock and the plots stayed on the node selected before."""
    run = run_to_end(qtbot, demo)
    click_graph_node(qtbot, demo, "/fc/Gemm")
    settled(qtbot, demo)
    name = demo.session.model.graph.inputs[0]
    row = click_input_row(qtbot, demo)
    settled(qtbot, demo)
    assert demo.results.table.currentIndex().row() == row and demo.results.node_at_row(row) == name
    assert "/fc/Gemm" not in demo.inspector.title.text() and name in demo.inspector.title.text()
    assert demo.graph.selected_node() is None and not demo.graph.item_for_node("/fc/Gemm").selected
    assert not demo.results.speed.table.selectionModel().selectedRows()  # no layer computes the input
    session = demo.session
    assert (session.selected, session.selected_input, session.selection) == (None, name, name)
    rows = tree_rows(demo.inspector.tree)
    stats = run.result.stats[name]
    assert rows["Model input"]["Read by"] == "Conv /stem/conv/Conv"
    assert rows["Quantization"]["Observed range"] == fmt.value_range(stats.min, stats.max)
    error = next(layer for layer in run.comparison.errors.layers if layer.tensor == name)
    assert rows["Quantization"]["SQNR"] == fmt.decibels(error.sqnr_db)
    histograms = demo.histograms
    assert "no weights" in histograms.weight_header.text() and "Gemm" not in histograms.weight_header.text()
    assert histograms.activation_header.text().startswith(f"<b>{name}</b>")
    edges, counts = histograms.activation_hist.xData, histograms.activation_hist.yData
    assert counts.sum() > 0 and edges[0] <= stats.min and edges[-1] >= stats.max
    assert run.result.recipe.method in histograms.method_lines  # its clipping range, and the other methods'
    assert histograms.int8_header.text().startswith(f"<b>{name}</b> on ")

    click_graph_node(qtbot, demo, "/fc/Gemm")  # and back to a node
    settled(qtbot, demo)
    assert (session.selected, session.selected_input) == ("/fc/Gemm", None)
    assert demo.graph.selected_node() == "/fc/Gemm" and "Gemm" in demo.inspector.title.text()


def test_a_new_run_keeps_showing_the_selected_input(qtbot, demo: MainWindow) -> None:
    """A new run redraws what is selected: the input stays shown, and the Node dock keeps agreeing."""
    run_to_end(qtbot, demo)
    name = demo.session.model.graph.inputs[0]
    click_input_row(qtbot, demo)
    run_to_end(qtbot, demo)
    settled(qtbot, demo)
    assert demo.results.node_at_row(demo.results.table.currentIndex().row()) == name
    assert name in demo.inspector.title.text() and demo.histograms.int8_header.text().startswith(f"<b>{name}</b>")
    assert demo.session.selected_input == name and demo.graph.selected_node() is None


def integer_column(window: MainWindow) -> dict[str, str]:
    speed, column = window.results.speed, [key for _, key in COLUMNS].index("integer")
    return {speed.node_at_row(r): speed.proxy.index(r, column).data() for r in range(speed.proxy.rowCount())}


def test_every_panel_counts_the_nodes_kept_in_float_alike(qtbot, demo: MainWindow, decide_speed) -> None:
    """Keep slower layers in float keeps every layer but the Flatten, which the quantizer then leaves in float
    by itself: the notice and the Quantize panel counted 17 nodes (9 layers), the Speed tab "all 10 layers"
    with the Flatten "float, kept", the notes on the run 18 nodes; and the notice called them all slower."""
    decide_speed(lambda layer: layer.node != FLATTEN)  # as one machine had it; the search keeps the most it can
    run_to_end(qtbot, demo)
    with qtbot.waitSignal(demo.int8.kept_float, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(demo.results.speed.keep_button, Qt.MouseButton.LeftButton)
    run, profile = demo.session.run, demo.session.profile
    tally = run.float_tally
    assert [node.name for node in tally.left] == [FLATTEN]  # nobody asked for it: the quantizer left it so
    kept = fmt.count(len(tally.kept), "node")
    listed = demo.quantize_panel.float_list.count()
    assert listed == len(tally.kept) == len(demo.session.exclude)

    notice = demo.results.speed.notice.text()
    assert notice.startswith(f"Kept {kept} in float, the fastest of ")
    assert "slower" not in notice  # the search may keep layers a profile showed faster
    assert demo.quantize_panel.stage.text() == f"Done: kept {kept} in float; see Results ▸ Speed."
    summary = demo.results.speed.summary.toPlainText().splitlines()
    assert f"Kept in float: {kept} ({fmt.count(len(profile.kept_in_float), 'layer')})" in summary
    assert f"Left in float: {FLATTEN}" in summary
    notes = demo.results.notes.text()
    assert f"{kept} kept in float, 1 left in float by the quantizer (hover for why)" in notes

    column = integer_column(demo)
    assert column[FLATTEN] == "float"
    assert {name for name, text in column.items() if text == KEPT_FLOAT} == {layer.node for layer in profile.kept_in_float}
    click_graph_node(qtbot, demo, FLATTEN)
    settled(qtbot, demo)
    quantization = tree_rows(demo.inspector.tree)["Quantization"]
    assert "Kept in float" not in quantization and "left in float by the quantizer" in quantization["Left in float"]


def test_a_search_after_a_node_kept_by_hand_counts_what_it_added_and_all(qtbot, demo: MainWindow, stem_slower) -> None:
    """The notice counts what the search added, and says the count every other panel shows."""
    demo.session.set_exclusions(["/fc/Gemm"])
    run_to_end(qtbot, demo)
    with qtbot.waitSignal(demo.int8.kept_float, timeout=RUN_TIMEOUT_MS):
        demo.keep_slower_in_float()
    kept = demo.session.run.float_tally.kept_names
    added = [name for name in kept if name != "/fc/Gemm"]
    assert "/fc/Gemm" in kept and "/stem/conv/Conv" in added
    notice = demo.results.speed.notice.text()
    assert notice.startswith(f"Kept {fmt.count(len(added), 'node')} in float, {len(kept)} in all, the fastest of ")
    assert f"{fmt.count(len(kept), 'node')} kept in float" in demo.results.notes.text()
    summary = demo.results.speed.summary.toPlainText().splitlines()
    assert f"Kept in float: {', '.join(kept)}; no float islands" in summary  # few enough to be named
