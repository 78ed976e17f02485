"""The per-layer tables on real runs: names show whole where the table has the room, numbers and headers
always, nothing scrolls sideways; and the columns are measured once for each run, not at every layout."""

from __future__ import annotations


import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QTableView

from builders import light_model, save, write_npz
from q8studio.core.data import load_data
from q8studio.core.demo import demo_assets
from q8studio.core.model import load_model
from q8studio.core.recipe import Recipe
from q8studio.core.workflow import StudioRun, quantize_and_compare
from q8studio.gui import row_table
from q8studio.gui.results_panel import COLUMNS, ResultsPanel

NAME_COLUMN = [key for _, key in COLUMNS].index("node")


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


def fits_its_width(table: QTableView) -> bool:
    """No sideways scrolling; every header and every cell but the names whole."""
    header = table.horizontalHeader()
    others = [c for c in range(header.count()) if c != NAME_COLUMN]
    return (table.horizontalScrollBar().maximum() == 0
            and all(header.sectionSize(c) >= header.sectionSizeHint(c) for c in range(header.count()))
            and not any(cut_cells(table, c) for c in others))


@pytest.mark.parametrize("width", [1400, 1920])
def test_layer_names_show_whole_when_the_table_has_the_room(qtbot, demo_run: StudioRun, width: int) -> None:
    """Names stopped at 30 characters beside empty space: "/block2/poin…ormalization"."""
    table = shown(qtbot, demo_run, width).table
    assert fits_its_width(table)
    assert max(len(row.node) for row in demo_run.layer_rows()) > row_table.COLUMN_MAX_CHARS
    assert cut_cells(table, NAME_COLUMN) == []


def test_a_narrow_table_cuts_only_the_names(qtbot, demo_run: StudioRun) -> None:
    table = shown(qtbot, demo_run, 1200).table
    assert fits_its_width(table)
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
    assert fits_its_width(panel.table)
