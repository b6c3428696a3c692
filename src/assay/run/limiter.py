"""Adaptive concurrency per provider: halve on 429, creep back up after successes.

This is AIMD, as TCP does it: a 429 (or a ``Retry-After``) halves how many
requests may be in flight and pauses new ones until the server's stated time
has passed; every ``limit`` successes in a row add one slot back, up to the
ceiling the user asked for with ``-j``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["AdaptiveLimiter"]


class AdaptiveLimiter:
    def __init__(self, ceiling: int, *, floor: int = 1) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.limit = ceiling
        self.in_flight = 0
        self.paused_until = 0.0
        self.throttled = 0  # 429s seen, for the summary
        self._successes = 0
        self._cooldown_until = 0.0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot (and for any pause to end), hold it for one request."""
        async with self._changed:
            while True:
                wait = self.paused_until - time.monotonic()
                if wait > 0:
                    self._changed.release()
                    try:
                        await asyncio.sleep(wait)
                    finally:
                        await self._changed.acquire()
                    continue
                if self.in_flight < self.limit:
                    break
                await self._changed.wait()
            self.in_flight += 1
        try:
            yield
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()

    async def success(self) -> None:
        async with self._changed:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.ceiling:
                self.limit += 1
                self._successes = 0
                self._changed.notify_all()

    async def throttle(self, retry_after: float | None, backoff: float) -> None:
        """Slow down: halve the limit, pause for ``retry_after`` (else ``backoff``) seconds."""
        async with self._changed:
            self.throttled += 1
            self._successes = 0
            now = time.monotonic()
            # Requests already in flight get their 429s together: halve once per pause.
            if now >= self._cooldown_until:
                self.limit = max(self.floor, self.limit // 2)
            pause = retry_after if retry_after is not None else backoff
            self.paused_until = max(self.paused_until, now + pause)
            self._cooldown_until = max(self._cooldown_until, now + max(pause, 0.2))
