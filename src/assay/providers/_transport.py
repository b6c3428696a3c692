"""An httpx transport that gives every in-flight request a pool of its own.

httpcore's connection pool re-examines every connection (a ``poll()`` each)
whenever a request starts or ends, so its cost per request grows with the
number of connections: at 16 requests in flight that was half the client's
CPU (measured in bench/batch_throughput.py). Here each request borrows an idle
one-connection pool, which has only itself to examine, and gives it back when
its response is closed. Keep-alive is unchanged: a pool keeps its connection
open between the requests it serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ShardedTransport"]


class _Returning(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, **transport_options: Any) -> None:
        self._options = transport_options
        self._idle: list[httpx.AsyncHTTPTransport] = []
        self._all: list[httpx.AsyncHTTPTransport] = []

    def _borrow(self) -> httpx.AsyncHTTPTransport:
        if self._idle:
            return self._idle.pop()  # the most recently used: its connection is warm
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        transport = httpx.AsyncHTTPTransport(limits=limits, **self._options)
        self._all.append(transport)
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._borrow()
        try:
            response = await transport.handle_async_request(request)
        except BaseException:
            self._idle.append(transport)
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _Returning(stream, lambda: self._idle.append(transport))
        return response

    async def aclose(self) -> None:
        for transport in self._all:
            await transport.aclose()
        self._all.clear()
        self._idle.clear()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
