"""The data path fields: a long path shows where it starts and the file's name, cut in the middle."""

from __future__ import annotations

from pathlib import Path

from q8studio.gui.data_field import DataField

LONG = Path("/home/someone/projects/vision/calibration-sets/imagenet-subset/2026-11/calib_500.npz")


def test_a_long_path_is_elided_in_the_middle_and_kept_whole(qtbot) -> None:
    """Scrolled to its end, a field showed "…et/2026-11/calib_500.npz": not which data set it was."""
    field = DataField("choose calibration data", optional=False)
    qtbot.addWidget(field)
    field.resize(420, 30)  # about the dock at its default width
    field.show()
    field.set_path(LONG)

    text, edit = field.edit.text(), field.edit
    assert text.startswith("/home/") and text.endswith("calib_500.npz") and "…" in text
    assert edit.fontMetrics().horizontalAdvance(text) <= edit.contentsRect().width()
    assert field.path() == LONG and edit.toolTip() == str(LONG)

    field.resize(200, 30)  # too little room for the name: all of it is cut in the middle
    text = field.edit.text()
    assert text.startswith("/h") and text.endswith("npz") and "…" in text and "calib_500" not in text
    assert edit.fontMetrics().horizontalAdvance(text) <= edit.contentsRect().width()

    field.resize(1600, 30)  # room for all of it
    assert field.edit.text() == str(LONG) and field.path() == LONG
    field.set_path(None)
    assert field.edit.text() == "" and field.path() is None and field.edit.placeholderText() == "choose calibration data"
