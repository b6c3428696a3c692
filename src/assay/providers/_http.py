"""Shared HTTP plumbing for hosted providers: retries, backoff, and error messages.

Retries use exponential backoff with full jitter, and honour ``Retry-After``
(seconds or an HTTP date) on 429 and 5xx. A request is only retried before
any of its output has reached the caller, so text is never duplicated.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ..errors import ConnectError, HTTPStatusError, ProviderError, TimeoutError

__all__ = ["RETRY_STATUSES", "RetryPolicy", "error_message", "parse_retry_after", "translate"]

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


def status_error(status: int, body: bytes, where: str) -> HTTPStatusError:
    return HTTPStatusError(f"{where} answered {status}: {error_message(body)}", status)


def translate(exc: httpx.HTTPError, where: str, timeout: float | None = None) -> ProviderError:
    """Turn an httpx transport error into a one-line assay error."""
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
