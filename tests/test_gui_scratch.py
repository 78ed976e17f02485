"""The window's scratch folder removes a run's files once discarded and no longer held, and only its own."""

from __future__ import annotations

from pathlib import Path

from q8studio.gui.scratch import ScratchFolder


def test_a_discarded_file_goes_when_its_last_hold_ends_and_other_files_stay(tmp_path: Path) -> None:
    scratch = ScratchFolder()
    own = scratch.new_file("model")
    own.parent.mkdir()
    own.write_bytes(b"int8")
    users = tmp_path / "model.int8.onnx"  # say, a run a test made outside the window
    users.write_bytes(b"int8")
    with scratch.hold(own), scratch.hold(own):
        scratch.discard(own, users, None)
        assert own.is_file()
    assert not own.parent.exists() and users.is_file()
    scratch.cleanup()
