"""The Help menu: the int8 questions guide, whose pointers into the window must stay true, and About."""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime
import pyqtgraph
import PySide6
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

import q8studio
from gui_actions import open_demo_window
from q8studio.cli.parser import parse_command_line
from q8studio.gui.help import GuideWindow, guide_markdown
from q8studio.gui.main_window import MainWindow
from q8studio.gui.overlays import OVERLAYS

QUESTIONS = ("float32 or int8", "one layer computed in integers", "outside the calibrated range",
             "Why did my accuracy drop", "Post-training quantization or quantization-aware training",
             "plug quantization into my existing model")


def _plain(text: str) -> str:
    return text.replace("&", "").replace("…", "").strip()


def _menu_actions(window: MainWindow) -> dict[tuple[str, str], object]:
    """(menu, item) -> action, as a user reads them in the menu bar."""
    found = {}
    for menu_action in window.menuBar().actions():
        for action in menu_action.menu().actions():
            if action.text():
                found[(_plain(menu_action.text()), _plain(action.text()))] = action
    return found


def test_the_guide_answers_each_question_users_come_with() -> None:
    headings = re.findall(r"^## (.+)$", guide_markdown(), flags=re.MULTILINE)
    for question in QUESTIONS:
        assert any(question in heading for heading in headings), question


def test_the_menus_the_guide_points_to_exist(qtbot, tmp_path) -> None:
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    pointers = re.findall(r"([A-Z][a-z]+) ▸ ([A-Za-z0-9 ]+[a-z0-9])", guide_markdown())
    assert len(pointers) >= 2
    actions = _menu_actions(window)
    for menu, item in pointers:
        assert (menu, item) in actions, f"{menu} ▸ {item}"
    colour_by = re.search(r'"Colour graph by: (\w+)"', guide_markdown()).group(1)
    assert any(overlay.label.startswith(colour_by) for overlay in OVERLAYS.values())


def test_the_tabs_and_panels_the_guide_names_are_in_the_window(qtbot, tmp_path) -> None:
    window = open_demo_window(qtbot, tmp_path)
    histogram_tabs = {window.histograms.tabs.tabText(i) for i in range(window.histograms.tabs.count())}
    beside_node = {dock.windowTitle() for dock in window.tabifiedDockWidgets(window.docks["inspector"])}
    docks = {dock.windowTitle() for dock in window.docks.values()}
    results_tabs = {window.results.tabs.tabText(i) for i in range(window.results.tabs.count())}
    named = re.findall(r"\*\*([^*]+)\*\* (tab|table)", guide_markdown())
    assert {name for name, _ in named} >= {"Activation", "Explain", "Float vs int8", "Results", "Methods"}
    for name, _ in named:
        assert name in histogram_tabs | beside_node | docks | results_tabs, name
    assert "Explain" in beside_node  # "the Explain tab (beside Node)"


def test_the_command_lines_in_the_guide_parse() -> None:
    commands = re.findall(r"`q8studio ([^`]+)`", guide_markdown())
    assert {line.split()[0] for line in commands} >= {"profile", "explain", "quantize"}
    for line in commands:
        parse_command_line(line.split())  # an unknown option exits


def test_help_opens_one_guide_window_from_the_menu_and_the_start_page(qtbot, tmp_path) -> None:
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    action = _menu_actions(window)[("Help", "int8 questions")]
    action.trigger()
    guide = window.findChild(GuideWindow)
    assert guide is not None and guide.isVisible() and not guide.isModal()
    text = guide.browser.toPlainText()
    assert all(question in text for question in QUESTIONS) and "**" not in text  # rendered, not raw markdown
    guide.close()
    link = window.start_page.guide_link
    assert link.isVisible() and 'href="guide"' in link.text()
    link.linkActivated.emit("guide")  # what a click on the link sends
    assert guide.isVisible() and window.findChildren(GuideWindow) == [guide]


def test_about_names_the_versions_running(qtbot, tmp_path) -> None:
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    _menu_actions(window)[("Help", "About q8studio")].trigger()
    box = window.findChild(QMessageBox)
    assert box is not None and box.isVisible()
    for version in (q8studio.__version__, onnxruntime.__version__, onnx.__version__, np.__version__,
                    PySide6.__version__, pyqtgraph.__version__):
        assert version in box.text()
    box.close()
