"""Silencing the root logger for onnxruntime's tools, from threads whose blocks overlap."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from q8studio.core.quietlog import quiet_root_logger


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)
    yield root
    root.setLevel(before)


def test_blocks_that_overlap_without_nesting_give_the_root_logger_its_level_back(root: logging.Logger) -> None:
    """A quantization (ERROR) and a pre-processing (CRITICAL) in two threads, the first ending first."""
    quantizing, preprocessing = quiet_root_logger(logging.ERROR), quiet_root_logger(logging.CRITICAL)
    quantizing.__enter__()
    assert root.level == logging.ERROR
    preprocessing.__enter__()
    assert root.level == logging.CRITICAL
    quantizing.__exit__(None, None, None)
    assert root.level == logging.CRITICAL  # the pre-processing still runs: still quiet
    preprocessing.__exit__(None, None, None)
    assert root.level == logging.WARNING


def test_a_level_above_the_one_asked_for_is_kept_and_an_error_still_restores(root: logging.Logger) -> None:
    root.setLevel(logging.CRITICAL)
    with quiet_root_logger(logging.ERROR):
        assert root.level == logging.CRITICAL
    root.setLevel(logging.INFO)
    with pytest.raises(RuntimeError), quiet_root_logger(logging.ERROR):
        raise RuntimeError("the tool failed")
    assert root.level == logging.INFO


def test_threads_entering_and_leaving_at_once_leave_the_level_as_it_was(root: logging.Logger) -> None:
    start = threading.Barrier(8)

    def work(level: int) -> None:
        start.wait()
        for _ in range(200):
            with quiet_root_logger(level):
                assert root.level >= level

    threads = [threading.Thread(target=work, args=(logging.ERROR + i % 2 * 10,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert root.level == logging.WARNING
