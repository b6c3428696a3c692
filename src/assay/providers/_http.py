"""Shared HTTP plumbing for hosted providers: retries, backoff, and error messages.

Retries use exponential backoff with full jitter, and honour ``Retry-After``
(seconds or an HTTP date) on 429 and 5xx. A request is only retried before
any of its output has reached the caller, so text is never duplicated.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, cast

from ..errors import (
    ConnectError,
    HTTPStatusError,
    ProviderError,
    StreamError,
    TimeoutError,
    UsageError,
)
from ..options import Option
from ..types import Final, ModelSpec, Request
from .base import Backend

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HTTP_OPTIONS",
    "RETRY_STATUSES",
    "HTTPBackend",
    "RetryPolicy",
    "error_message",
    "hosted_spec",
    "parse_json",
    "parse_retry_after",
    "sse_events",
    "translate",
]

HTTP_OPTIONS: tuple[Option, ...] = (
    Option("timeout", float, "Read timeout in seconds (default 300)", 0.001),
    Option("connect_timeout", float, "Connect timeout in seconds (default 10)", 0.001),
    Option("max_retries", int, "Retries on 429, 5xx and dropped connections (default 3)", 0),
)
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def hosted_spec(
    provider: str,
    name: str,
    *,
    base_url: str,
    default_base_url: str,
    key_name: str,
    context_length: int,
    description: str,
    attachment_types: tuple[str, ...] = (),
    attachment_limits: dict[str, int] | None = None,
) -> ModelSpec:
    """A hosted provider's built-in model: keyed, priced as the official API when it is one."""
    return ModelSpec(
        id=name,
        provider=provider,
        context_length=context_length,
        key_name=key_name,
        key_env=f"{key_name.upper()}_API_KEY",
        description=description,
        config={"base_url": base_url, "model": name, "official": base_url == default_base_url},
        attachment_types=attachment_types,
        attachment_limits=attachment_limits or {},
    )


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_message(body: bytes) -> str:
    """The human part of an error body: OpenAI-style ``error.message`` when present."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text[:300] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            err = err.get("message") or err
        if isinstance(err, list) and err and isinstance(err[0], dict):
            err = err[0].get("msg", err[0])
        return str(err)[:300]
    return text[:300]


def status_error(
    status: int, body: bytes, where: str, retry_after: float | None = None
) -> HTTPStatusError:
    return HTTPStatusError(f"{where} answered {status}: {error_message(body)}", status, retry_after)


def translate(exc: httpx.HTTPError, where: str, timeout: float | None = None) -> ProviderError:
    """Turn an httpx transport error into a one-line assay error."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return TimeoutError(f"timed out connecting to {where}")
    if isinstance(exc, httpx.TimeoutException):
        after = f" after {timeout:g}s" if timeout else ""
        return TimeoutError(f"timed out waiting for {where}{after} (raise it with -o timeout N)")
    if isinstance(exc, httpx.ConnectError):
        return ConnectError(f"cannot connect to {where}: is the server running?")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return ProviderError(f"connection to {where} broke: {exc}")
    return ProviderError(f"request to {where} failed: {exc}")


async def sse_events(resp: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as (event, data) pairs; ``event`` is "" when the server names none."""
    event, data = "", cast(list[str], [])
    async for line in resp.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", cast(list[str], [])
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield event, "\n".join(data)


def parse_json(data: str | bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        raise StreamError(f"malformed {what}: {text[:80]!r}") from None


StreamParser = Callable[["httpx.Response", str], AsyncIterator[str | Final]]
WholeParser = Callable[[bytes, str], Iterable[str | Final]]


class HTTPBackend(Backend):
    """A model behind an HTTP API: one connection pool, shared retries and error messages."""

    def __init__(
        self,
        base_url: str,
        model: str,
        key: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._key = key
        self._headers = dict(headers or {})
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.sleep = sleep
        self.rng = rng or random.Random()

    def auth_headers(self, key: str) -> dict[str, str]:
        """The headers that carry ``key``; each provider says how."""
        return {"Authorization": f"Bearer {key}"}

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            headers = {"Content-Type": "application/json", **self._headers}
            if self._key:
                if not self._key.isascii() or not self._key.isprintable():
                    raise UsageError("the API key holds characters that cannot be sent in a header")
                headers.update(self.auth_headers(self._key))
            # Plain http (a local server) needs no TLS: skip loading the CA bundle (~40 ms).
            plain = self.base_url.startswith("http://")
            from ._transport import ShardedTransport

            transport = self._transport or ShardedTransport(retries=1, verify=not plain)
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=headers, transport=transport
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(
        self,
        path: str,
        body: dict[str, Any],
        request: Request,
        read_stream: StreamParser,
        read_whole: WholeParser,
    ) -> AsyncIterator[str | Final]:
        """POST ``body``, retrying 429/5xx and dropped connections until text has been sent."""
        import httpx

        opts = request.options
        read = float(opts.get("timeout", 300.0))
        timeout = httpx.Timeout(read, connect=float(opts.get("connect_timeout", 10.0)))
        policy = RetryPolicy(max_retries=int(opts.get("max_retries", 3)))
        where = f"{self.base_url}{path.split('?')[0]}"
        client = self._get_client()
        attempt = 0
        while True:
            sent_text = False
            try:
                async with client.stream("POST", path, json=body, timeout=timeout) as resp:
                    if resp.status_code >= 400:
                        payload = await resp.aread()
                        after = parse_retry_after(resp.headers.get("retry-after"))
                        if resp.status_code in RETRY_STATUSES and attempt < policy.max_retries:
                            await self.sleep(policy.delay(attempt, after, self.rng))
                            attempt += 1
                            continue
                        raise status_error(resp.status_code, payload, where, after)
                    if request.stream:
                        async for item in read_stream(resp, where):
                            sent_text = sent_text or isinstance(item, str)
                            yield item
                    else:
                        for item in read_whole(await resp.aread(), where):
                            yield item
                    return
            except httpx.HTTPError as e:
                if sent_text:
                    raise StreamError(f"stream from {where} was cut off: {e}") from None
                if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)) and (
                    attempt < policy.max_retries
                ):
                    await self.sleep(policy.delay(attempt, None, self.rng))
                    attempt += 1
                    continue
                raise translate(e, where, read) from None
