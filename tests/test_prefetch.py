"""for_each_prefetched: the next item's work overlaps the handling of this one, in order, and failures surface."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from q8studio.core.prefetch import for_each_prefetched


def _collect(run, items) -> list:
    seen: list = []
    for_each_prefetched(run, items, lambda item, result: seen.append((item, result)))
    return seen


def test_handles_each_item_with_its_result_in_order() -> None:
    assert _collect(lambda x: x * x, range(5)) == [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]
    assert _collect(lambda x: x, []) == []


def test_the_next_item_runs_while_this_one_is_handled() -> None:
    started = {i: threading.Event() for i in range(3)}

    def run(i: int) -> int:
        started[i].set()
        return i

    def handle(item: int, _: int) -> None:
        if item + 1 in started:  # would time out if the next run waited for this handler
            assert started[item + 1].wait(timeout=10)

    for_each_prefetched(run, range(3), handle)


class _Activations:
    """Stands for one batch's model outputs."""


def test_at_most_two_results_are_alive_at_once() -> None:
    """Each handler waits until the next run has counted the live results: the most overlap there is."""
    alive: weakref.WeakSet[_Activations] = weakref.WeakSet()
    counted = {i: threading.Event() for i in range(6)}
    most = 0

    def run(i: int) -> _Activations:
        nonlocal most
        gc.collect()
        result = _Activations()
        alive.add(result)
        most = max(most, len(alive))
        counted[i].set()
        return result

    def handle(item: int, _: _Activations) -> None:
        if item + 1 in counted:
            assert counted[item + 1].wait(timeout=10)

    for_each_prefetched(run, range(6), handle)
    assert most == 2


def test_a_failing_run_raises_after_the_earlier_items_were_handled() -> None:
    def run(i: int) -> int:
        if i == 2:
            raise ValueError("bad batch")
        return i

    seen: list[int] = []
    with pytest.raises(ValueError, match="bad batch"):
        for_each_prefetched(run, range(5), lambda item, _: seen.append(item))
    assert seen == [0, 1]
