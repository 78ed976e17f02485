"""The per-layer tables on real runs: names show whole where the table has the room, numbers and headers
always, nothing scrolls sideways; and the columns are measured once for each run, not at every layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QTableView

from builders import light_model, save, write_npz
from gui_actions import QUICK_SAMPLES, open_demo_window
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import load_model
from q8studio.core.recipe import Recipe
from q8studio.core.workflow import StudioRun, quantize_and_compare
from q8studio.gui import row_table
from q8studio.gui.main_window import DEFAULT_SIZE, MainWindow
from q8studio.gui.results_panel import COLUMNS, ResultsPanel
from q8studio.gui.speed_panel import COLUMNS as SPEED_COLUMNS
from q8studio.gui.speed_panel import SpeedTableModel

NAME_COLUMN = [key for _, key in COLUMNS].index("node")
SPEED_KEYS = [key for _, key in SPEED_COLUMNS]
SHORT_NAME_COLUMNS = [SPEED_KEYS.index(key) for key in ("op_type", "float_kernels", "int8_kernels")]
SHORT_NAME_CHARS = 20
"""Op types and kernel names up to this long show whole in the Speed tab at the common screen sizes."""
LAPTOP_SIZE = (1366, 768)
RUN_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> StudioRun:
    assets = demo_assets()
    model = load_model(assets.model)
    data = load_data(assets.test, model, samples=24)
    output = tmp_path_factory.mktemp("demo") / "demo.int8.onnx"
    return quantize_and_compare(model, data, None, Recipe(samples=24), output, latency_runs=1)


def shown(qtbot, run: StudioRun, width: int) -> ResultsPanel:
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.resize(width, 300)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_run(run)
    QApplication.processEvents()
    return panel


def cut_cells(table: QTableView, column: int) -> list[str]:
    """The cells of ``column`` Qt cannot show whole at its width (its size hint, grid line included)."""
    model, width = table.model(), table.horizontalHeader().sectionSize(column)
    return [str(model.index(row, column).data()) for row in range(model.rowCount())
            if table.sizeHintForIndex(model.index(row, column)).width() + 1 > width]


def fits_its_width(table: QTableView, names: set[int]) -> bool:
    """No sideways scrolling; every header and every cell but the ``names`` columns' whole."""
    header = table.horizontalHeader()
    others = [c for c in range(header.count()) if c not in names]
    return (table.horizontalScrollBar().maximum() == 0
            and all(header.sectionSize(c) >= header.sectionSizeHint(c) for c in range(header.count()))
            and not any(cut_cells(table, c) for c in others))


@pytest.mark.parametrize("width", [1400, 1920])
def test_layer_names_show_whole_when_the_table_has_the_room(qtbot, demo_run: StudioRun, width: int) -> None:
    """Names stopped at 30 characters beside empty space: "/block2/poin…ormalization"."""
    table = shown(qtbot, demo_run, width).table
    assert fits_its_width(table, {NAME_COLUMN})
    assert max(len(row.node) for row in demo_run.layer_rows()) > row_table.COLUMN_MAX_CHARS
    assert cut_cells(table, NAME_COLUMN) == []
    assert table.horizontalHeader().length() == table.viewport().width()  # no empty strip on the right


def test_a_narrow_table_cuts_only_the_names(qtbot, demo_run: StudioRun) -> None:
    table = shown(qtbot, demo_run, 1200).table
    assert fits_its_width(table, {NAME_COLUMN})
    assert cut_cells(table, NAME_COLUMN)
    narrowest = table.fontMetrics().averageCharWidth() * row_table.NAME_MIN_CHARS
    assert table.horizontalHeader().sectionSize(NAME_COLUMN) >= narrowest


@pytest.fixture(scope="module")
def densenet_run(tmp_path_factory: pytest.TempPathFactory) -> StudioRun:
    """onnx's light DenseNet-121 (1,746 nodes) with real weights, compared on two samples."""
    folder = tmp_path_factory.mktemp("densenet")
    model = load_model(save(light_model("densenet121"), folder / "densenet121.onnx"))
    images = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    data = load_data(write_npz(folder / "data.npz", **{model.input_specs()[0].name: images}), model)
    return quantize_and_compare(model, data, None, Recipe(), folder / "densenet121.int8.onnx", latency_runs=1)


def test_a_large_run_is_shown_without_measuring_its_rows_again_and_again(qtbot, monkeypatch,
                                                                        densenet_run: StudioRun) -> None:
    """Showing the run, selecting a layer and painting read about 100,000 cells (0.45 s): Qt sized the
    columns to their contents, measuring every row of each again at every layout. Measured once from
    the texts, a cell is read a few times at most, sorting included."""
    calls = 0
    read = row_table.RowTableModel.data

    def counted(model: row_table.RowTableModel, index, role=0):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return read(model, index, role)

    monkeypatch.setattr(row_table.RowTableModel, "data", counted)
    panel = shown(qtbot, densenet_run, 1400)
    rows = densenet_run.layer_rows()
    panel.select_node(rows[len(rows) // 2].node)
    panel.repaint()
    QApplication.processEvents()
    assert len(rows) > 300 and calls < 4 * len(rows) * len(COLUMNS)
    assert fits_its_width(panel.table, {NAME_COLUMN})


def demo_run_at(qtbot, tmp_path: Path, size: tuple[int, int]) -> MainWindow:
    """A window of ``size`` after a run of the demo (which profiles it), showing the Speed tab."""
    window = open_demo_window(qtbot, tmp_path, samples=QUICK_SAMPLES)
    window.resize(*size)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert window.session.profile is not None, window.results.speed.verdict.text()
    window.results.show_speed()
    table = window.results.speed.table
    qtbot.waitUntil(lambda: table.isVisible() and table.horizontalScrollBar().maximum() == 0, timeout=2000)
    return window


def fits_the_speed_table(table: QTableView) -> bool:
    return fits_its_width(table, {SPEED_KEYS.index(key) for key in SpeedTableModel.name_keys})


def cut_short_names(table: QTableView) -> list[str]:
    """The op types and kernel names of at most :data:`SHORT_NAME_CHARS` characters cut."""
    return [text for column in SHORT_NAME_COLUMNS for text in cut_cells(table, column) if len(text) <= SHORT_NAME_CHARS]


def one_line_high(table: QTableView) -> bool:
    return table.horizontalHeader().height() < 2 * table.fontMetrics().lineSpacing()


@pytest.mark.parametrize("size", [DEFAULT_SIZE, LAPTOP_SIZE], ids=["1400x900", "1366x768"])
def test_the_speed_table_shows_op_types_and_kernels_whole(qtbot, tmp_path: Path, size: tuple[int, int]) -> None:
    """At 1400x900 "GlobalAveragePool" showed as "Glo…ool" and "QLinearConv + QLinearAdd" as "QLinea…earAdd",
    while the number columns kept their one-line headers' width, some 280 pixels of blank. The headers
    now go on two lines, and the sort arrow's room stays in the sorted column."""
    table = demo_run_at(qtbot, tmp_path, size).results.speed.table
    assert fits_the_speed_table(table) and cut_short_names(table) == []
    if size == DEFAULT_SIZE:
        assert all(cut_cells(table, column) == [] for column in SHORT_NAME_COLUMNS)
    assert not one_line_high(table)
    assert table.textElideMode() == Qt.TextElideMode.ElideMiddle  # longer names keep their both ends

    table.sortByColumn(SPEED_KEYS.index("macs"), Qt.SortOrder.DescendingOrder)  # the sort arrow moves to MACs
    QApplication.processEvents()
    assert fits_the_speed_table(table) and cut_short_names(table) == []


def test_short_names_stay_whole_beside_long_kernel_names(qtbot, tmp_path: Path, decide_speed) -> None:
    """Kept in float, a layer's int8 kernels read "GlobalAveragePool (NCHWc) (float)": the long kernel
    names took the width of the op types, "GlobalAveragePool" showed as "Glo…ool", "MaxPool" as "Ma…ol"."""
    decide_speed(lambda layer: True)
    window = demo_run_at(qtbot, tmp_path, LAPTOP_SIZE)
    with qtbot.waitSignal(window.int8.kept_float, timeout=RUN_TIMEOUT_MS):
        window.keep_slower_in_float()
    table = window.results.speed.table
    int8_kernels = SPEED_KEYS.index("int8_kernels")
    qtbot.waitUntil(lambda: "(float)" in str(table.model().index(0, int8_kernels).data()), timeout=5000)
    assert fits_the_speed_table(table) and cut_short_names(table) == []
    assert cut_cells(table, int8_kernels)  # short of width: the long names give way


def test_headers_go_on_two_lines_only_when_the_names_need_the_width(qtbot, demo_run: StudioRun) -> None:
    """A second header line costs the table a row: a table wide enough for every name keeps one line."""
    wide = shown(qtbot, demo_run, 1920).table
    assert one_line_high(wide) and cut_cells(wide, NAME_COLUMN) == []
    narrow = shown(qtbot, demo_run, 1300).table  # one-line headers left the names 169 of 253 pixels
    assert fits_its_width(narrow, {NAME_COLUMN}) and cut_cells(narrow, NAME_COLUMN) == []
    assert not one_line_high(narrow)
