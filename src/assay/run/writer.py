"""Group commit: finished items are written to SQLite a group per transaction.

A transaction per item costs a few hundred microseconds of the event loop's
time (``BEGIN IMMEDIATE``, the WAL append, ``COMMIT``); at hundreds of items a
second that is a large share of a core. The writer collects the work queued
since its last commit and writes it in one transaction, at most
``interval`` seconds later or as soon as ``max_group`` items are waiting. It
runs on the event loop's own thread: a separate writer thread was measured
slower, as it fought the loop for the GIL.

Each unit of work still commits whole or not at all: a response is never
written without its job row. A ``kill -9`` loses at most the last
``interval`` of finished items, which are then sent again on resume; none of
them had been logged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

from ..errors import StoreError
from ..store.db import store_error, write
from ..store.logs import LogStore

__all__ = ["Writer"]

Work = Callable[[sqlite3.Connection], None]
Done = Callable[[], None]


class Writer:
    def __init__(self, store: LogStore, interval: float = 0.05, max_group: int = 256) -> None:
        self.store = store
        self.interval = interval
        self.max_group = max_group
        self.error: StoreError | None = None
        self._pending: list[tuple[Work, Done | None]] = []
        self._timer: asyncio.TimerHandle | None = None

    def submit(self, work: Work, done: Done | None = None) -> None:
        """Queue ``work`` (run inside a write transaction); ``done`` runs after it commits."""
        if self.error is not None:
            raise self.error
        self._pending.append((work, done))
        if len(self._pending) >= self.max_group:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._pending = self._pending, []
        if not group or self.error is not None:
            return
        try:
            with self.store._lock, write(self.store.conn) as conn:
                for work, _ in group:
                    work(conn)
        except sqlite3.Error as e:
            self.error = store_error(self.store.path, e)
        except Exception as e:  # a bug in a caller's work: stop writing, and say so
            self.error = StoreError(f"log database {self.store.path}: {type(e).__name__}: {e}")
        # Even when the write failed: whoever waits on these items must wake up (and,
        # finding nothing cached, will try for itself, or stop at the next submit).
        for _, done in group:
            if done is not None:
                done()

    def close(self) -> None:
        """Write everything queued; raise the first write error if there was one."""
        self.flush()
        if self.error is not None:
            raise self.error
