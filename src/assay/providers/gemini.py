"""``gemini``: Google's Gemini models over the Generative Language REST API (plain httpx).

Wire format, from Google's documentation:

- ``POST {base}/v1beta/models/{model}:generateContent`` and
  ``:streamGenerateContent?alt=sse`` (server-sent events, one ``GenerateContentResponse``
  per event), key in the ``x-goog-api-key`` header;
- ``contents`` of ``{"role": "user"|"model", "parts": [...]}``; a top-level
  ``systemInstruction``; files inline as ``{"inline_data": {"mime_type", "data"}}``;
- ``generationConfig`` with ``temperature``, ``maxOutputTokens``, ``topP``, ``topK``,
  ``stopSequences``, ``seed`` and ``thinkingConfig.thinkingBudget``;
- ``usageMetadata`` with ``promptTokenCount`` (cached part included),
  ``cachedContentTokenCount``, ``candidatesTokenCount`` and ``thoughtsTokenCount``.

Usage is normalised: assay's ``output_tokens`` is candidates plus thoughts, and
``reasoning_tokens`` the thoughts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import StreamError, UsageError
from ..options import COMMON_OPTIONS, Option
from ..types import Final, Message, ModelSpec, Request, Usage
from ._http import HTTP_OPTIONS, HTTPBackend, hosted_spec, parse_json, sse_events
from .base import Backend, Provider

if TYPE_CHECKING:
    import httpx

__all__ = ["GEMINI_MODELS", "GeminiBackend", "GeminiProvider", "parse_gemini_usage"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
GEMINI_MODELS = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-1.5-flash-8b",
)
ACCEPTS = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/heic",
    "image/heif",
    "application/pdf",
    "audio/wav",
    "audio/mpeg",
    "audio/flac",
    "audio/ogg",
    "audio/aac",
    "audio/mp4",
    "video/mp4",
    "video/webm",
)
_CONFIG = (
    ("temperature", "temperature"),
    ("max_tokens", "maxOutputTokens"),
    ("top_p", "topP"),
    ("top_k", "topK"),
    ("stop", "stopSequences"),
    ("seed", "seed"),
)


def parse_gemini_usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()

    def count(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    candidates, thoughts = count("candidatesTokenCount"), count("thoughtsTokenCount")
    output = (
        None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    )
    return Usage(
        input_tokens=count("promptTokenCount"),
        cached_tokens=count("cachedContentTokenCount"),
        output_tokens=output,
        reasoning_tokens=thoughts,
    )


def gemini_content(m: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for a in m.attachments:
        if a.content is None:
            raise UsageError(f"Gemini needs {a.url} inline: download it and attach the file")
        parts.append({"inline_data": {"mime_type": a.type, "data": a.base64()}})
    if m.content or not parts:
        parts.append({"text": m.content})
    return {"role": "model" if m.role == "assistant" else "user", "parts": parts}


class GeminiBackend(HTTPBackend):
    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def body(self, request: Request) -> dict[str, Any]:
        opts = request.options
        body: dict[str, Any] = {
            "contents": [gemini_content(m) for m in request.messages if m.role != "system"]
        }
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        config = {theirs: opts[ours] for ours, theirs in _CONFIG if ours in opts}
        if "thinking_budget" in opts:
            config["thinkingConfig"] = {"thinkingBudget": opts["thinking_budget"]}
        if config:
            body["generationConfig"] = config
        return body

    def generate(self, request: Request) -> AsyncIterator[str | Final]:
        action = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        path = f"/v1beta/models/{self.model}:{action}"
        return self.post(path, self.body(request), request, self._read_stream, self._read_whole)

    @staticmethod
    def _parse(data: Any, final: Final) -> list[str]:
        """Text of one GenerateContentResponse; usage and finish reason go into ``final``."""
        if not isinstance(data, dict):
            raise TypeError("response is not an object")
        if data.get("usageMetadata"):
            final.usage = parse_gemini_usage(data["usageMetadata"])
        if isinstance(data.get("modelVersion"), str):
            final.resolved_model = data["modelVersion"]
        pieces: list[str] = []
        for candidate in data.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if isinstance(part.get("text"), str) and not part.get("thought"):
                    pieces.append(part["text"])
            if candidate.get("finishReason"):
                final.finish_reason = str(candidate["finishReason"]).lower()
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            final.finish_reason = f"blocked: {blocked}".lower()
        return pieces

    async def _read_stream(self, resp: httpx.Response, where: str) -> AsyncIterator[str | Final]:
        final = Final()
        seen = False
        async for _, data in sse_events(resp):
            chunk = parse_json(data, f"stream chunk from {where}")
            try:
                pieces = self._parse(chunk, final)
            except (TypeError, AttributeError) as e:
                raise StreamError(f"malformed stream chunk from {where}: {e}") from None
            seen = True
            for piece in pieces:
                yield piece
        if not seen or final.finish_reason is None:
            raise StreamError(f"stream from {where} ended before the response was complete")
        yield final

    def _read_whole(self, payload: bytes, where: str) -> Iterable[str | Final]:
        final = Final()
        try:
            pieces = self._parse(parse_json(payload, f"response from {where}"), final)
        except (TypeError, AttributeError) as e:
            raise StreamError(f"malformed response from {where}: {e}") from None
        if pieces:
            yield "".join(pieces)
        yield final


class GeminiProvider(Provider):
    name = "gemini"
    options = (
        *COMMON_OPTIONS,
        Option("top_k", int, "Sample from the k most likely tokens", 0),
        Option("thinking_budget", int, "Tokens the model may think with (0 turns it off)", 0),
        *HTTP_OPTIONS,
    )

    def models(self) -> Iterable[ModelSpec]:
        base_url = os.environ.get("GEMINI_BASE_URL", DEFAULT_BASE_URL)
        for name in GEMINI_MODELS:
            yield hosted_spec(
                self.name,
                name,
                base_url=base_url,
                default_base_url=DEFAULT_BASE_URL,
                key_name="gemini",
                context_length=1_048_576,
                description="Google Gemini",
                attachment_types=ACCEPTS,
                # inline data: 20 MB per request after base64, so about 15 MB of file
                attachment_limits={"*": 15 * 1024 * 1024},
            )

    def open(self, spec: ModelSpec, key: str | None) -> Backend:
        return GeminiBackend(spec.config["base_url"], spec.config["model"], key)
