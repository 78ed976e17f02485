"""Run the next item's inference while the current one's results are handled.

onnxruntime releases the GIL while it runs a model; numpy's statistics and error sums run in
the calling thread meanwhile, so the two overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def for_each_prefetched(
    run: Callable[[Item], Result], items: Iterable[Item], handle: Callable[[Item, Result], None]
) -> None:
    """``handle(item, run(item))`` for each item in order, ``run`` of the next item computing in a
    worker thread meanwhile. Items are drawn in the calling thread.

    Two items' results at most are alive at once, whatever the number of items: the one being
    handled is dropped before the run after the next one starts. (A generator could not promise
    that: its caller keeps the previous result until the next one arrives; the third batch of
    SqueezeNet's activations cost 5% of the calibration pass.)
    """
    source = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="q8studio-prefetch") as runner:

        def submit() -> tuple[Item, Future[Result]] | None:
            item = next(source, _END)
            return None if item is _END else (item, runner.submit(run, item))

        pending = submit()
        while pending is not None:
            item, future = pending
            result = future.result()
            pending = submit()
            handle(item, result)
            del item, result


_END = object()
