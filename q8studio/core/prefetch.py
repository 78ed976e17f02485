"""Run the next item's inference while the caller works on the current one's results.

onnxruntime releases the GIL while it runs a model; numpy's statistics and error sums run in
the calling thread meanwhile, so the two overlap. Memory stays bounded whatever the number of
items: at most three items' results are alive at once (the caller's, the next, the one computing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def prefetched(run: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[tuple[Item, Result]]:
    """``(item, run(item))`` for each item in order, ``run`` of the next item computing in a worker
    thread while the caller handles the current one. Items are drawn in the calling thread."""
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
            yield item, result


_END = object()
