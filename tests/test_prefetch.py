"""prefetched: the next item's work overlaps the caller's, in order, and failures surface."""

from __future__ import annotations

import threading

import pytest

from q8studio.core.prefetch import prefetched


def test_yields_each_item_with_its_result_in_order() -> None:
    assert list(prefetched(lambda x: x * x, range(5))) == [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]
    assert list(prefetched(lambda x: x, [])) == []


def test_the_next_item_runs_while_the_caller_handles_the_current_one() -> None:
    started = {i: threading.Event() for i in range(3)}

    def run(i: int) -> int:
        started[i].set()
        return i

    for item, _ in prefetched(run, range(3)):
        if item + 1 in started:  # would time out if the next run waited for this loop body
            assert started[item + 1].wait(timeout=10)


def test_a_failing_run_raises_at_its_item_after_the_earlier_ones() -> None:
    def run(i: int) -> int:
        if i == 2:
            raise ValueError("bad batch")
        return i

    seen = []
    with pytest.raises(ValueError, match="bad batch"):
        for item, _ in prefetched(run, range(5)):
            seen.append(item)
    assert seen == [0, 1]
