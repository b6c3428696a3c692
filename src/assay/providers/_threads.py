"""Run blocking producers (llama.cpp, a stdlib HTTP read) in a thread, consumed as async streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

__all__ = ["stream_from_thread"]

T = TypeVar("T")


async def stream_from_thread(
    produce: Callable[[threading.Event], Iterator[T]],
    name: str,
    on_stop: Callable[[], None] | None = None,
) -> AsyncIterator[T]:
    """Items from ``produce(stop)``, run in its own thread, as they come.

    When the consumer stops early (or fails), ``stop`` is set, ``on_stop`` runs (to
    interrupt a blocking read, say), and the thread is waited for before returning, so
    nothing it uses is freed under it. Exceptions in the thread are raised here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()
    done = object()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the consumer's loop is gone: stop quietly
            stop.set()

    def work() -> None:
        try:
            for item in produce(stop):
                put(item)
                if stop.is_set():
                    break
        except BaseException as e:  # handed to the consumer, re-raised there
            if not stop.is_set():
                put(e)
        finally:
            put(done)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if on_stop is not None:
            on_stop()
        while thread.is_alive():  # polled, not to_thread: at exit the executor is gone
            await asyncio.sleep(0.005)
