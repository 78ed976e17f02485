"""How the window shares its space at common screen sizes: the docks grow with the window until the
user sizes them, and the result tables fit their width with no horizontal scroll bar."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QScrollArea

from gui_actions import QUICK_SAMPLES, drag_dock_separator
from q8studio.core.clipping import METHODS
from q8studio.gui.main_window import DEFAULT_SIZE, MainWindow
from q8studio.gui.row_table import ColumnWidths, shared_widths
from q8studio.gui.speed_panel import COLUMNS as SPEED_COLUMNS

RUN_TIMEOUT_MS = 60_000
SCREENS = [(1366, 768), (1920, 1080), (2560, 1440)]


def window_at(qtbot, settings_path: Path, size: tuple[int, int]) -> MainWindow:
    """A window opened at ``size`` (as the saved geometry or the window manager would), showing the demo."""
    window = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_demo()
    window.quantize_panel.samples.setValue(QUICK_SAMPLES)
    qtbot.waitUntil(lambda: window.docks["inspector"].isVisible())
    return window


def shares(window: MainWindow) -> dict[str, float]:
    """Each area's share of the window's width (the results: of its height)."""
    width, height = window.width(), window.height()
    return {"quantize": window.docks["quantize"].width() / width, "inspector": window.docks["inspector"].width() / width,
            "graph": window.graph.width() / width, "results": window.docks["results"].height() / height}


def shared_sensibly(window: MainWindow) -> bool:
    share = shares(window)
    return (share["inspector"] >= 0.3 and share["quantize"] >= 0.18 and share["graph"] >= 0.38
            and share["results"] >= 0.25)


@pytest.mark.parametrize("size", SCREENS, ids=[f"{w}x{h}" for w, h in SCREENS])
def test_the_docks_share_a_window_of_any_size(qtbot, tmp_path: Path, size: tuple[int, int]) -> None:
    """At 2560x1440 the docks kept their 1400-pixel widths and the graph took every pixel more."""
    window = window_at(qtbot, tmp_path / "settings.ini", size)
    qtbot.waitUntil(lambda: shared_sensibly(window), timeout=2000)


def test_the_docks_follow_the_window_until_the_user_sizes_one(qtbot, tmp_path: Path) -> None:
    window = window_at(qtbot, tmp_path / "settings.ini", DEFAULT_SIZE)
    window.resize(2560, 1440)  # maximised on a large screen
    qtbot.waitUntil(lambda: shared_sensibly(window), timeout=2000)
    inspector = window.docks["inspector"]
    before = inspector.width()
    drag_dock_separator(qtbot, window, inspector, 100)
    qtbot.waitUntil(lambda: inspector.width() == before - 100, timeout=2000)
    window.resize(1920, 1080)
    qtbot.wait(100)
    assert inspector.width() == before - 100  # the user's width, not a share of the window


def test_a_saved_layout_wins_and_follows_the_window_only_if_the_user_never_sized_a_dock(qtbot,
                                                                                      tmp_path: Path) -> None:
    sized, untouched = tmp_path / "sized.ini", tmp_path / "untouched.ini"
    first = window_at(qtbot, sized, DEFAULT_SIZE)
    drag_dock_separator(qtbot, first, first.docks["inspector"], 100)
    qtbot.waitUntil(lambda: first.docks["inspector"].width() < 400, timeout=2000)
    width = first.docks["inspector"].width()
    first.close()
    window_at(qtbot, untouched, DEFAULT_SIZE).close()

    again = window_at(qtbot, sized, DEFAULT_SIZE)  # restored, then sized as a user would
    again.resize(2560, 1440)
    qtbot.wait(100)
    assert again.docks["inspector"].width() == width
    follows = window_at(qtbot, untouched, DEFAULT_SIZE)
    follows.resize(2560, 1440)
    qtbot.waitUntil(lambda: shared_sensibly(follows), timeout=2000)


def profiled(qtbot, window: MainWindow) -> None:
    """A run, then Run ▸ Profile int8 vs float, which shows the Speed tab."""
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    before, speed = window.session.profile, window.results.speed
    window.profile()
    assert window.int8.busy, "Profile did not start"
    try:
        qtbot.waitUntil(lambda: not window.int8.busy, timeout=RUN_TIMEOUT_MS)
    except qtbot.TimeoutError:
        pytest.fail(f"Profiling still running after {RUN_TIMEOUT_MS} ms, at: {speed.job_progress.stage.text()}")
    assert window.session.profile is not before, f"Profiling ended without a profile: {speed.notice.text()}"
    assert window.results.tabs.currentWidget() is speed


@pytest.mark.parametrize("size", [DEFAULT_SIZE, (1366, 768)], ids=["default", "1366x768"])
def test_the_speed_table_fits_its_width_and_shows_its_numbers_whole(qtbot, tmp_path: Path,
                                                                     size: tuple[int, int]) -> None:
    """At 1400x900 its ten columns scrolled sideways. Numbers and headers are never cut; names are
    elided only where they are long, the row's tooltip has them whole."""
    window = window_at(qtbot, tmp_path / "settings.ini", size)
    profiled(qtbot, window)
    speed = window.results.speed
    table, header, model = speed.table, speed.table.horizontalHeader(), speed.proxy
    qtbot.waitUntil(lambda: table.horizontalScrollBar().maximum() == 0, timeout=2000)
    assert all(header.sectionSize(c) >= header.sectionSizeHint(c) for c in range(header.count()))  # headers whole
    for column, (_, key) in enumerate(SPEED_COLUMNS):
        if key not in speed.model.name_keys:
            assert header.sectionSize(column) >= table.sizeHintForColumn(column), key
    layers = [model.index(row, 0).data() for row in range(model.rowCount())]
    padding = table.sizeHintForIndex(model.index(0, 0)).width() - table.fontMetrics().horizontalAdvance(layers[0])
    whole = [name for name in layers if table.fontMetrics().horizontalAdvance(name) + padding <= header.sectionSize(0)]
    assert len(whole) >= 0.75 * len(layers)
    tip = model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
    keys = [key for _, key in SPEED_COLUMNS]
    kernels = [model.index(0, keys.index(key)).data() for key in ("float_kernels", "int8_kernels")]
    assert layers[0] in tip and all(f"kernel: {text}" in tip for text in kernels)


def test_the_float32_int8_figures_stay_whole_on_a_laptop_screen(qtbot, tmp_path: Path) -> None:
    window = window_at(qtbot, tmp_path / "settings.ini", (1366, 768))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    summary = window.results.summary
    qtbot.waitUntil(lambda: summary.isVisible())
    assert summary.verticalScrollBar().maximum() == 0 and summary.horizontalScrollBar().maximum() == 0
    assert window.results.table.horizontalScrollBar().maximum() == 0


def test_every_clipping_method_shows_without_scrolling_on_a_laptop_screen(qtbot, tmp_path: Path) -> None:
    """At 1366x768 the Methods tab's five rows needed two pixels of a vertical scroll bar."""
    window = window_at(qtbot, tmp_path / "settings.ini", (1366, 768))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    with qtbot.waitSignal(window.methods.compared, timeout=3 * RUN_TIMEOUT_MS):
        window.methods_action.trigger()
    table = window.results.methods.table
    assert table.model().rowCount() == len(METHODS)
    qtbot.waitUntil(lambda: table.isVisible() and table.verticalScrollBar().maximum() == 0
                    and table.horizontalScrollBar().maximum() == 0, timeout=2000)


def test_the_node_docks_plots_leave_the_property_tree_room_on_a_laptop_screen(qtbot, tmp_path: Path) -> None:
    """At 1366x768 the clipping methods' legend took a row each: the histograms needed 387 pixels, the
    property tree kept three rows, and the plot's axis still slid under the legend."""
    window = window_at(qtbot, tmp_path / "settings.ini", (1366, 768))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    panel = window.histograms
    panel.tabs.setCurrentIndex(1)
    window.session.select("/stem/conv/Conv")
    qtbot.waitUntil(lambda: panel.activation_plot.isVisible() and "minmax" in panel.method_legend.text(),
                    timeout=10_000)
    qtbot.wait(50)
    legend, plot, header = panel.method_legend, panel.activation_plot, panel.activation_header
    assert legend.height() <= 3 * legend.fontMetrics().lineSpacing()  # five methods in three rows
    assert panel.minimumSizeHint().height() <= 345 and panel.height() <= 345
    assert plot.geometry().bottom() < legend.geometry().top()  # the axis whole, above the legend
    assert header.height() >= header.heightForWidth(header.width())  # the wrapped header whole
    assert window.inspector.height() > 100


def test_narrow_columns_keep_their_width_and_the_widest_share_the_rest() -> None:
    assert shared_widths([50, 300, 200], 1000, [40, 40, 40]) == [50, 300, 200]
    assert shared_widths([50, 300, 200], 350, [40, 40, 40]) == [50, 150, 150]
    assert shared_widths([50, 300, 200], 100, [40, 60, 60]) == [40, 60, 60]  # never below the fewest
    widths = ColumnWidths(others=500, fewest=[40, 40], typical=[150, 60], whole=[180, 200])
    assert widths.fitted(700) == [140, 60]  # short of even the typical widths: the widest gives way
    assert widths.fitted(500 + 150 + 60 + 40) == [170, 80]  # the typical widths first, then toward the whole
    assert widths.fitted(1000) == [300, 200]  # names whole, and the first takes what is left: no empty strip


def test_the_data_and_the_recipe_show_without_scrolling_at_the_default_size(qtbot, tmp_path: Path) -> None:
    """With the preview between them, the settings showed no more than the clipping method."""
    window = window_at(qtbot, tmp_path / "settings.ini", DEFAULT_SIZE)
    panel = window.quantize_panel
    viewport = panel.findChild(QScrollArea).viewport()
    for widget in (panel.calibration, panel.evaluation, panel.samples, panel.method, panel.histogram_values,
                   panel.granularity, panel.activation_type, panel.symmetric):
        assert widget.isVisible()
        assert widget.mapTo(viewport, QPoint(0, widget.height())).y() <= viewport.height(), widget
