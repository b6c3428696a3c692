"""Run the async core from synchronous code, on one background event loop.

One loop for every sync call in the process means HTTP connection pools and
loaded models are shared, and the sync API works even where the caller has a
running loop of its own (a notebook).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["iterate", "run"]

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()
_closed = False


def _get_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _closed:
            raise RuntimeError("assay's event loop has shut down")
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="assay-loop", daemon=True).start()
            atexit.register(_shutdown, loop)
            _loop = loop
        return _loop


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """At exit: cancel what is still running (so it logs what it has), then stop the loop."""
    global _closed

    async def cancel_all() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.shutdown_asyncgens()

    with _lock:
        _closed = True
    with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
        asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for its result."""
    future = asyncio.run_coroutine_threadsafe(coro, _get_loop())
    try:
        return future.result()
    except KeyboardInterrupt:
        # Let the task see the cancellation (and log what it has) before we unwind.
        # wait() returns once the task has really finished: a cancelled future only
        # counts as done after the loop has run the task's cleanup.
        future.cancel()
        concurrent.futures.wait([future], timeout=5)
        raise


def iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """Step an async iterator from sync code, one item per round trip."""
    sentinel: Any = object()

    async def step() -> Any:
        try:
            return await agen.__anext__()
        except StopAsyncIteration:
            return sentinel

    try:
        while (item := run(step())) is not sentinel:
            yield item
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None and not _closed and not sys.is_finalizing():
            run(aclose())
