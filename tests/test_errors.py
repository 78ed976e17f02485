"""The one-line reasons users read in place of the libraries' multi-line messages."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from q8studio.core.errors import first_line


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
