"""The one-line reasons users read in place of the libraries' multi-line messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from builders import write_npz
from q8studio.core.errors import Q8Error, first_line
from test_session import GATHER_FAILED, token_embedding


def test_first_line_finishes_a_sentence_broken_around_a_node() -> None:
    """onnx's checker breaks its message for nodes out of order around the node it names."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    nodes = [helper.make_node("Relu", ["t"], ["y"], name="second"), helper.make_node("Relu", ["x"], ["t"], name="first")]
    with pytest.raises(onnx.checker.ValidationError) as raised:
        onnx.checker.check_model(helper.make_model(helper.make_graph(nodes, "g", [x], [y])))
    line = first_line(raised.value)
    assert "\n" not in line
    assert line.startswith("Nodes in a graph must be topologically sorted") and "second" in line
    assert line.endswith("is not output of any previous nodes.")


@pytest.mark.parametrize("message, expected", [
    ("Bad thing.\nTraceback (most recent call last):\n  File x", "Bad thing."),
    ("Load failed\nDetails follow", "Load failed"),
    ("Load failed\nbecause of x.\nMore", "Load failed because of x."),
    ("", "ValueError"),
    ("a:\nb:\nc:\nd:\ne.", "a: b: c: d:"),
])
def test_first_line_keeps_one_sentence(message: str, expected: str) -> None:
    assert first_line(ValueError(message)) == expected


def test_a_user_error_keeps_its_details_apart_from_its_sentence() -> None:
    error = Q8Error("The model failed.", details="[ONNXRuntimeError] : 1 : FAIL : ...")
    assert str(error) == "The model failed." and error.details == "[ONNXRuntimeError] : 1 : FAIL : ..."
    assert Q8Error("Plain.").details == ""


def test_the_error_dialog_shows_one_line_and_folds_the_rest_into_its_details(qtbot) -> None:
    from PySide6.QtWidgets import QWidget

    from q8studio.gui.errors import ErrorReporter

    parent = QWidget()
    qtbot.addWidget(parent)
    errors = ErrorReporter(parent)
    errors.show("Unexpected error: Fail: [ONNXRuntimeError] went wrong\n  at line 3\n", "Traceback ...")
    assert errors.dialog.text() == errors.last_message == "Unexpected error: Fail: [ONNXRuntimeError] went wrong"
    assert errors.dialog.detailedText() == "at line 3\n\nTraceback ..."
    errors.show("One line.")
    assert errors.dialog.text() == "One line." and errors.dialog.detailedText() == ""
    errors.close()


def test_a_run_onnx_runtime_refuses_gets_a_dialog_whose_text_names_the_model_and_node(qtbot, tmp_path: Path) -> None:
    from PySide6.QtCore import QSettings

    from q8studio.gui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model_loaded, timeout=10_000):
        window.open_model(token_embedding(tmp_path / "ids.onnx"))
    data = write_npz(tmp_path / "ids.npz", x=np.zeros((40, 16), np.float32), ids=np.full(40, 500, np.int64))
    assert window.quantize_panel.set_calibration(data)
    with qtbot.waitSignal(window.run_ended, timeout=60_000) as ended:
        window.start_run()
    text = window.errors.dialog.text()
    assert ended.args == ["failed"] and text.startswith(GATHER_FAILED) and "idx=500" in text
    assert "\n" not in text and "[ONNXRuntimeError]" not in text and "Status Message" not in text
    assert "[ONNXRuntimeError]" in window.errors.dialog.detailedText()  # the runtime's own words, folded away
    window.errors.close()


@pytest.mark.parametrize("key, expected", [("x_scale", "no entry 'x_scale'"), ("", "no entry ''")])
def test_a_key_error_says_it_is_a_missing_entry(key: str, expected: str) -> None:
    """A KeyError's message is the bare key: onnxruntime's symbolic shape inference fails on a Loop
    whose optional input is empty with KeyError(''), which read as "failed ('')"."""
    with pytest.raises(KeyError) as raised:
        {}[key]
    assert first_line(raised.value) == expected
