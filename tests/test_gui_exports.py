"""File ▸ Export in the window: what an export refuses to write over, and how it says so."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from gui_actions import QUICK_SAMPLES, open_demo_window
from q8studio.gui.main_window import MainWindow

RUN_TIMEOUT_MS = 60_000


@pytest.fixture
def demo_run(qtbot, tmp_path: Path) -> MainWindow:
    """The demo opened and run once, on 120 of its calibration samples to keep the test short."""
    window = open_demo_window(qtbot, tmp_path, samples=QUICK_SAMPLES)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    return window


def test_a_report_or_recipe_never_replaces_the_int8_model_just_exported(demo_run: MainWindow, tmp_path: Path) -> None:
    exporter, errors = demo_run.exporter, demo_run.errors
    model = tmp_path / "demo.int8.onnx"
    assert exporter.export_model(model)
    exported = model.read_bytes()
    for what, export in (("the report", exporter.export_report), ("the recipe", exporter.save_recipe)):
        assert not export(model)
        assert errors.last_message == (f"Refusing to write {what} over the int8 model you exported ({model}); "
                                       "choose another path.")
        assert model.read_bytes() == exported
        errors.close()
    assert exporter.export_model(model) and onnx.load(str(model)).graph.node  # exported again, over itself
    assert exporter.export_report(tmp_path / "demo.report.json")


def test_an_export_refused_names_what_it_writes_inside_a_capitalised_sentence(demo_run: MainWindow,
                                                                             tmp_path: Path) -> None:
    assert not demo_run.exporter.export_model(tmp_path)
    assert demo_run.errors.last_message == (f"Cannot write the int8 model {tmp_path}: it is a folder; give the path "
                                            "of a file.")
    assert not demo_run.exporter.export_report(Path("/dev/null"))
    assert demo_run.errors.last_message == ("Cannot write the report /dev/null: it is not a regular file (a device or "
                                            "a pipe); give the path of a file.")
    demo_run.errors.close()
