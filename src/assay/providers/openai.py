"""``openai``: OpenAI and every OpenAI-compatible server, over the Chat Completions API.

Plain httpx rather than the ``openai`` SDK: it is one small wire format, httpx
imports in a fraction of the time, and retries, timeouts and error messages
stay the same across every hosted provider.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..declared import declared_models
from ..errors import ProviderError, StreamError, UsageError
from ..options import COMMON_OPTIONS, Option
from ..types import Final, Message, ModelSpec, Request, Usage
from ._http import HTTP_OPTIONS, HTTPBackend, hosted_spec, parse_json, sse_events
from .base import Backend, Provider

if TYPE_CHECKING:
    import httpx

    from ..attachments import Attachment

__all__ = ["OPENAI_MODELS", "OpenAIBackend", "OpenAIProvider", "parse_usage"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_MODELS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5-nano": 400_000,
}
# Options sent to the server as they are.
_PASSTHROUGH = (
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "reasoning_effort",
)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_usage(data: Any) -> Usage:
    """Chat Completions ``usage``, with cached and reasoning tokens when reported."""
    data = _dict(data)
    return Usage(
        input_tokens=_count(data.get("prompt_tokens")),
        cached_tokens=_count(_dict(data.get("prompt_tokens_details")).get("cached_tokens")),
        output_tokens=_count(data.get("completion_tokens")),
        reasoning_tokens=_count(
            _dict(data.get("completion_tokens_details")).get("reasoning_tokens")
        ),
    )


_AUDIO_FORMATS = {"audio/wav": "wav", "audio/mpeg": "mp3"}
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
VISION_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
)


def openai_part(a: Attachment) -> dict[str, Any]:
    """One attachment as a Chat Completions content part (OpenAI's documented shapes)."""
    if a.type.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": a.url or a.data_uri()}}
    if a.type in _AUDIO_FORMATS:
        return {
            "type": "input_audio",
            "input_audio": {"data": a.base64(), "format": _AUDIO_FORMATS[a.type]},
        }
    if a.type == "application/pdf":
        return {"type": "file", "file": {"filename": a.name, "file_data": a.data_uri()}}
    raise UsageError(f"the OpenAI API has no way to send {a.type} attachments")


def openai_message(m: Message) -> dict[str, Any]:
    if not m.attachments:
        return {"role": m.role, "content": m.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
    return {"role": m.role, "content": parts + [openai_part(a) for a in m.attachments]}


def _text(value: Any) -> str:
    """Message content: a string, or a list of text parts; anything else is malformed."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        return "".join(p["text"] for p in value if isinstance(p, dict) and "text" in p)
    raise TypeError(f"content is {type(value).__name__}")


class OpenAIBackend(HTTPBackend):
    """Chat Completions: ``POST {base_url}/chat/completions``."""

    #: Fields added to every request body (``extra_body`` in models.yaml), for server-specific
    #: parameters such as vLLM's ``top_k`` or ``chat_template_kwargs``.
    extra_body: dict[str, Any] = {}  # noqa: RUF012 - replaced per instance, never mutated

    def body(self, request: Request) -> dict[str, Any]:
        opts = request.options
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [openai_message(m) for m in request.messages],
            "stream": request.stream,
        }
        if request.stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra_body)
        body.update({k: opts[k] for k in _PASSTHROUGH if k in opts})
        if opts.get("json_object"):
            body["response_format"] = {"type": "json_object"}
        return body

    def generate(self, request: Request) -> AsyncIterator[str | Final]:
        return self.post(
            "/chat/completions", self.body(request), request, self._read_stream, self._read_whole
        )

    async def _read_stream(self, resp: httpx.Response, where: str) -> AsyncIterator[str | Final]:
        final = Final()
        done = False
        async for _, data in sse_events(resp):
            if data.strip() == "[DONE]":
                done = True
                break
            chunk = parse_json(data, f"stream chunk from {where}")
            if not isinstance(chunk, dict):
                raise StreamError(f"malformed stream chunk from {where}: {data[:80]!r}")
            if chunk.get("error"):
                err = chunk["error"]
                message = err.get("message", err) if isinstance(err, dict) else err
                raise ProviderError(f"{where} reported an error mid-stream: {message}")
            try:
                pieces = self._parse_chunk(chunk, final)
            except (TypeError, AttributeError, KeyError) as e:
                raise StreamError(f"malformed stream chunk from {where}: {e}") from None
            for piece in pieces:
                yield piece
        if not done and final.finish_reason is None:
            raise StreamError(f"stream from {where} ended before the response was complete")
        yield final

    @staticmethod
    def _parse_chunk(chunk: dict[str, Any], final: Final) -> list[str]:
        """Text pieces of one stream chunk; usage, model and finish reason go into ``final``."""
        if chunk.get("usage"):
            final.usage = parse_usage(chunk["usage"])
        if isinstance(chunk.get("model"), str):
            final.resolved_model = chunk["model"]
        pieces = []
        for choice in chunk.get("choices") or []:
            text = _text(_dict(choice.get("delta")).get("content"))
            if text:
                pieces.append(text)
            if choice.get("finish_reason"):
                final.finish_reason = str(choice["finish_reason"])
        return pieces

    def _read_whole(self, payload: bytes, where: str) -> Iterable[str | Final]:
        try:
            data = json.loads(payload)
            choice = data["choices"][0]
            text = _text(choice["message"].get("content"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise StreamError(f"malformed response from {where}: {payload[:80]!r}") from None
        if text:
            yield text
        yield Final(
            finish_reason=choice.get("finish_reason"),
            usage=parse_usage(data.get("usage")),
            resolved_model=data.get("model"),
        )


class OpenAIProvider(Provider):
    name = "openai"
    options = (
        *COMMON_OPTIONS,
        Option("frequency_penalty", float, "Penalise tokens by how often they appeared", -2, 2),
        Option("presence_penalty", float, "Penalise tokens that appeared at all", -2, 2),
        Option(
            "reasoning_effort",
            str,
            "Reasoning models: how hard to think",
            choices=("minimal", "low", "medium", "high"),
        ),
        Option("json_object", bool, "Ask for a JSON object (response_format)"),
        *HTTP_OPTIONS,
    )

    def models(self) -> Iterable[ModelSpec]:
        base_url = os.environ.get("OPENAI_BASE_URL", DEFAULT_BASE_URL)
        for name, ctx in OPENAI_MODELS.items():
            yield hosted_spec(
                self.name,
                name,
                base_url=base_url,
                default_base_url=DEFAULT_BASE_URL,
                key_name="openai",
                context_length=ctx,
                description="OpenAI",
                attachment_types=(*IMAGE_TYPES, "application/pdf") if name in VISION_MODELS else (),
                attachment_limits={"image/*": 20 * 1024 * 1024, "*": 32 * 1024 * 1024},
            )
        for entry in declared_models(self.name):
            if not entry.get("base_url"):
                raise UsageError(f"{entry['_where']}: model {entry['alias']!r} needs a base_url")
            yield ModelSpec(
                id=entry["alias"],
                provider=self.name,
                context_length=entry.get("context_length"),
                key_name=entry.get("key_name"),
                key_env=entry.get("key_env"),
                aliases=tuple(entry.get("aliases") or ()),
                description=entry.get("description") or entry["base_url"],
                attachment_types=tuple(entry.get("attachments") or ()),
                config={
                    "base_url": entry["base_url"],
                    "model": entry.get("model") or entry["alias"],
                    "headers": entry.get("headers") or {},
                    "extra_body": entry.get("extra_body") or {},
                },
            )

    def open(self, spec: ModelSpec, key: str | None) -> Backend:
        backend = OpenAIBackend(
            spec.config["base_url"], spec.config["model"], key, headers=spec.config.get("headers")
        )
        backend.extra_body = dict(spec.config.get("extra_body") or {})
        return backend
