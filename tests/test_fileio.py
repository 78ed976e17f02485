"""Atomic writes: a failed write leaves nothing behind, not a partial file nor the folders made for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from q8studio.core.errors import Q8Error
from q8studio.core.fileio import atomic_path, check_outputs


def test_a_failed_write_removes_the_folders_it_made(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "kept" / "new" / "deeper" / "x.onnx") as staging:
            staging.write_bytes(b"half")
            raise RuntimeError("the run failed")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and not list((tmp_path / "kept").iterdir())


def test_a_failed_write_keeps_a_made_folder_something_else_wrote_to(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "new" / "x.onnx") as staging:
            (tmp_path / "new" / "other.txt").write_text("not ours")
            staging.write_bytes(b"half")
            raise RuntimeError("the run failed")
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["other.txt"]


def test_a_write_replaces_the_target_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "a" / "x.txt"
    with atomic_path(target) as staging:
        staging.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new" and list(target.parent.iterdir()) == [target]


def test_a_symbolic_link_is_followed_and_kept(tmp_path: Path) -> None:
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    with atomic_path(tmp_path / "link.json") as staging:
        staging.write_text("new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"


def test_a_pipe_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A pipe stands for devices too: a test must never risk replacing a real /dev file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(Q8Error, match="not a regular file"):
        with atomic_path(fifo) as staging:
            staging.write_text("never")
    assert fifo.is_fifo() and [p.name for p in tmp_path.iterdir()] == ["fifo"]


def test_a_write_the_system_refuses_is_one_line() -> None:
    with pytest.raises(Q8Error, match=r"^Cannot write .*x\.json: .*\.$"):
        with atomic_path(Path("/proc/x.json")) as staging:
            staging.write_text("never")


@pytest.mark.parametrize("outputs, expected", [
    (lambda d: {"the int8 model": d}, "Cannot write the int8 model {d}: it is a folder; give the path of a file."),
    (lambda d: {"the report": d / "fifo"},
     "Cannot write the report {d}/fifo: it is not a regular file (a device or a pipe); give the path of a file."),
    (lambda d: {"the report": d / "r.json", "the recipe": d / "r.json"},
     "Both the report and the recipe name the same file {d}/r.json; give each its own."),
    (lambda d: {"the report": Path("-")},
     "Cannot write the report -: q8studio writes files, not standard output; give a file name."),
])
def test_a_refused_output_is_a_sentence_with_its_label_left_as_given(tmp_path: Path, outputs, expected) -> None:
    """The window names outputs in lower case ("the int8 model"): they sit inside the sentence, never start it."""
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(Q8Error) as raised:
        check_outputs(outputs(tmp_path), {})
    assert str(raised.value) == expected.format(d=tmp_path)
