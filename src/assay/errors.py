"""Errors that assay reports to people.

Every error a user can cause (a bad flag, a missing key, a dead server) is an
``AssayError``. The CLI prints ``str(error)`` as one line on stderr and exits
with ``error.exit_code``; anything else is a bug and shows a traceback only
when ``ASSAY_DEBUG=1``.

    AssayError
    ├── UsageError           bad input: unknown option value, unreadable stdin (exit 2)
    │   └── OptionError
    ├── UnknownModelError    no provider offers that model id or alias (exit 2)
    ├── MissingKeyError      the model needs a key that is not set (exit 3)
    ├── ModelLoadError       a local model file is missing or corrupt (exit 4)
    ├── StoreError           the log database cannot be opened or written (exit 5)
    └── ProviderError        the model server failed us (exit 6)
        ├── ConnectError     nothing listens at base_url
        ├── TimeoutError     connect or read timed out
        ├── HTTPStatusError  4xx or 5xx after retries
        └── StreamError      malformed or truncated response
"""

from __future__ import annotations

import re

__all__ = [
    "AssayError",
    "ConnectError",
    "HTTPStatusError",
    "MissingKeyError",
    "ModelLoadError",
    "OptionError",
    "ProviderError",
    "StoreError",
    "StreamError",
    "TimeoutError",
    "UnknownModelError",
    "UsageError",
    "redact",
]

_secrets: set[str] = set()
_BEARER = re.compile(r"(Bearer|x-api-key:?|key=)\s*[A-Za-z0-9._\-]{8,}", re.IGNORECASE)


def register_secret(value: str) -> None:
    """Remember a key value so that it is scrubbed from every error message."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """Remove known key values and bearer tokens from ``text``."""
    for secret in _secrets:
        text = text.replace(secret, "[REDACTED]")
    return _BEARER.sub(lambda m: f"{m.group(1)} [REDACTED]", text)


class AssayError(Exception):
    """Base class: an error with a one-line message meant for a person."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        one_line = " ".join(redact(str(message)).split())
        super().__init__(one_line)


class UsageError(AssayError):
    """The user gave input assay cannot use."""

    exit_code = 2


class OptionError(UsageError):
    """An ``-o key value`` option is unknown or has a bad value."""


class UnknownModelError(AssayError):
    """No provider offers the requested model."""

    exit_code = 2


class MissingKeyError(AssayError):
    """The model needs an API key that is not configured."""

    exit_code = 3


class ModelLoadError(AssayError):
    """A local model could not be found or loaded."""

    exit_code = 4


class StoreError(AssayError):
    """The log database could not be opened or written."""

    exit_code = 5


class ProviderError(AssayError):
    """The model or its server failed."""

    exit_code = 6


class ConnectError(ProviderError):
    """Could not connect to the model server."""


class TimeoutError(ProviderError):
    """The model server did not answer in time."""


class HTTPStatusError(ProviderError):
    """The model server answered with a 4xx or 5xx status."""

    def __init__(self, message: str, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after  # seconds, from a Retry-After header


class StreamError(ProviderError):
    """The model server sent a malformed or truncated response."""
