"""``anthropic``: Claude models over the Messages API (plain httpx; see docs/architecture.md).

Wire format, from Anthropic's documentation:

- ``POST {base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``;
- ``system`` is a top-level field; ``max_tokens`` is required;
- images and PDFs are content blocks with a base64 (or URL) ``source``;
- ``cache_control: {"type": "ephemeral"}`` marks a block for prompt caching;
- ``thinking: {"type": "enabled", "budget_tokens": N}`` turns on extended thinking;
- streaming sends named events: ``message_start`` (input usage), ``content_block_delta``
  (``text_delta``, ``thinking_delta``), ``message_delta`` (stop reason, output usage),
  ``message_stop``, ``ping`` and ``error``.

Usage is normalised: Anthropic's ``input_tokens`` excludes cache reads and writes;
assay's ``input_tokens`` is their sum.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import OptionError, ProviderError, StreamError, UsageError
from ..options import COMMON_OPTIONS, Option
from ..types import Final, Message, ModelSpec, Request, Usage
from ._http import HTTP_OPTIONS, HTTPBackend, hosted_spec, parse_json, sse_events
from .base import Backend, Provider

if TYPE_CHECKING:
    import httpx

    from ..attachments import Attachment

__all__ = ["ANTHROPIC_MODELS", "AnthropicBackend", "AnthropicProvider", "parse_anthropic_usage"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
ANTHROPIC_MODELS = (
    "claude-opus-4-1",
    "claude-opus-4-0",
    "claude-sonnet-4-5",
    "claude-sonnet-4-0",
    "claude-haiku-4-5",
    "claude-3-7-sonnet-latest",
    "claude-3-5-haiku-latest",
)
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_EPHEMERAL = {"type": "ephemeral"}


def parse_anthropic_usage(data: Any, into: Usage | None = None) -> Usage:
    """Messages API ``usage``: cache reads and writes are added into the input total."""
    usage = into or Usage()
    if not isinstance(data, dict):
        return usage

    def count(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    # Later events (message_delta) may repeat some fields, or send them as null: keep what
    # an earlier event said unless this one says something new.
    read, written = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    if read is not None:
        usage.cached_tokens = read
    if written is not None:
        usage.cache_write_tokens = written
    fresh = count("input_tokens")
    if fresh is not None:
        usage.input_tokens = fresh + (usage.cached_tokens or 0) + (usage.cache_write_tokens or 0)
    if count("output_tokens") is not None:
        usage.output_tokens = count("output_tokens")
    return usage


def anthropic_block(a: Attachment) -> dict[str, Any]:
    if a.type in IMAGE_TYPES:
        kind = "image"
    elif a.type == "application/pdf":
        kind = "document"
    else:
        raise UsageError(f"the Anthropic API has no way to send {a.type} attachments")
    if a.content is None and a.url:
        return {"type": kind, "source": {"type": "url", "url": a.url}}
    return {"type": kind, "source": {"type": "base64", "media_type": a.type, "data": a.base64()}}


class AnthropicBackend(HTTPBackend):
    """Messages API: ``POST {base_url}/v1/messages``."""

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": API_VERSION}

    def _message(self, m: Message, cache_attachments: bool) -> dict[str, Any]:
        if not m.attachments:
            return {"role": m.role, "content": m.content}
        blocks = [anthropic_block(a) for a in m.attachments]
        if cache_attachments:
            blocks[-1]["cache_control"] = _EPHEMERAL
        if m.content:
            blocks.append({"type": "text", "text": m.content})
        return {"role": m.role, "content": blocks}

    def body(self, request: Request) -> dict[str, Any]:
        opts = request.options
        cache = opts.get("cache", "none")
        budget = opts.get("thinking_budget")
        max_tokens = opts.get("max_tokens") or (DEFAULT_MAX_TOKENS + (budget or 0))
        if budget is not None and max_tokens <= budget:
            raise OptionError(f"max_tokens ({max_tokens}) must be above thinking_budget ({budget})")
        last_attached = next((m for m in reversed(request.messages) if m.attachments), None)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": [
                # Anthropic allows four cache breakpoints: mark only the newest attachments.
                self._message(m, cache in ("attachments", "both") and m is last_attached)
                for m in request.messages
                if m.role != "system"
            ],
            "stream": request.stream,
        }
        if request.system:
            if cache in ("system", "both"):
                body["system"] = [
                    {"type": "text", "text": request.system, "cache_control": _EPHEMERAL}
                ]
            else:
                body["system"] = request.system
        for ours, theirs in (
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("top_k", "top_k"),
            ("stop", "stop_sequences"),
        ):
            if ours in opts:
                body[theirs] = opts[ours]
        if budget is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return body

    def generate(self, request: Request) -> AsyncIterator[str | Final]:
        return self.post(
            "/v1/messages", self.body(request), request, self._read_stream, self._read_whole
        )

    async def _read_stream(self, resp: httpx.Response, where: str) -> AsyncIterator[str | Final]:
        final = Final(usage=Usage())
        stopped = False
        async for event, data in sse_events(resp):
            payload = parse_json(data, f"stream event from {where}")
            if not isinstance(payload, dict):
                raise StreamError(f"malformed stream event from {where}: {data[:80]!r}")
            kind = payload.get("type", event)
            try:
                if kind == "message_start":
                    message = payload["message"]
                    final.resolved_model = message.get("model")
                    parse_anthropic_usage(message.get("usage"), final.usage)
                elif kind == "content_block_delta":
                    delta = payload["delta"]
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield str(delta["text"])
                elif kind == "message_delta":
                    final.finish_reason = payload.get("delta", {}).get("stop_reason")
                    parse_anthropic_usage(payload.get("usage") or {}, final.usage)
                elif kind == "message_stop":
                    stopped = True
                    break
                elif kind == "error":
                    err = payload.get("error") or {}
                    message = err.get("message", err) if isinstance(err, dict) else err
                    raise ProviderError(f"{where} reported an error mid-stream: {message}")
            except (KeyError, TypeError, AttributeError) as e:
                raise StreamError(f"malformed stream event from {where}: {e}") from None
        if not stopped:
            raise StreamError(f"stream from {where} ended before the response was complete")
        yield final

    def _read_whole(self, payload: bytes, where: str) -> Iterable[str | Final]:
        data = parse_json(payload, f"response from {where}")
        try:
            text = "".join(b["text"] for b in data["content"] if b.get("type") == "text")
        except (KeyError, TypeError, AttributeError):
            raise StreamError(f"malformed response from {where}: {payload[:80]!r}") from None
        if text:
            yield text
        yield Final(
            finish_reason=data.get("stop_reason"),
            usage=parse_anthropic_usage(data.get("usage")),
            resolved_model=data.get("model"),
        )


class AnthropicProvider(Provider):
    name = "anthropic"
    options = (
        *COMMON_OPTIONS,
        Option("top_k", int, "Sample from the k most likely tokens", 0),
        Option(
            "cache",
            str,
            "Prompt caching: mark the system prompt and/or attachments",
            choices=("none", "system", "attachments", "both"),
        ),
        Option("thinking_budget", int, "Extended thinking: most tokens to think with", 1024),
        *HTTP_OPTIONS,
    )

    def models(self) -> Iterable[ModelSpec]:
        base_url = os.environ.get("ANTHROPIC_BASE_URL", DEFAULT_BASE_URL)
        for name in ANTHROPIC_MODELS:
            yield hosted_spec(
                self.name,
                name,
                base_url=base_url,
                default_base_url=DEFAULT_BASE_URL,
                key_name="anthropic",
                context_length=200_000,
                description="Anthropic",
                attachment_types=(*IMAGE_TYPES, "application/pdf"),
                attachment_limits={"image/*": 5 * 1024 * 1024, "*": 32 * 1024 * 1024},
            )

    def open(self, spec: ModelSpec, key: str | None) -> Backend:
        return AnthropicBackend(spec.config["base_url"], spec.config["model"], key)
