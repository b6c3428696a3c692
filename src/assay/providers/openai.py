"""``openai``: OpenAI and every OpenAI-compatible server, over the Chat Completions API.

Plain httpx rather than the ``openai`` SDK: it is one small wire format, httpx
imports in a fraction of the time, and retries, timeouts and error messages
stay the same across every hosted provider.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..declared import declared_models
from ..errors import ProviderError, StreamError, UsageError
from ..options import COMMON_OPTIONS, Option
from ..types import Final, ModelSpec, Request, Usage
from .base import Backend, Provider

if TYPE_CHECKING:
    import httpx

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


def _text(value: Any) -> str:
    """Message content: a string, or a list of text parts; anything else is malformed."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        return "".join(p["text"] for p in value if isinstance(p, dict) and "text" in p)
    raise TypeError(f"content is {type(value).__name__}")


class OpenAIBackend(Backend):
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

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            headers = {"Content-Type": "application/json", **self._headers}
            if self._key:
                if not self._key.isascii() or not self._key.isprintable():
                    raise UsageError("the API key holds characters that cannot be sent in a header")
                headers["Authorization"] = f"Bearer {self._key}"
            transport = self._transport or httpx.AsyncHTTPTransport(retries=1)
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                transport=transport,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def body(self, request: Request) -> dict[str, Any]:
        opts = request.options
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": request.stream,
        }
        if request.stream:
            body["stream_options"] = {"include_usage": True}
        body.update({k: opts[k] for k in _PASSTHROUGH if k in opts})
        if opts.get("json_object"):
            body["response_format"] = {"type": "json_object"}
        return body

    async def generate(self, request: Request) -> AsyncIterator[str | Final]:
        import httpx

        from ._http import RETRY_STATUSES, RetryPolicy, parse_retry_after, status_error, translate

        opts = request.options
        read = float(opts.get("timeout", 300.0))
        timeout = httpx.Timeout(read, connect=float(opts.get("connect_timeout", 10.0)))
        policy = RetryPolicy(max_retries=int(opts.get("max_retries", 3)))
        where = f"{self.base_url}/chat/completions"
        client = self._get_client()
        body = self.body(request)
        attempt = 0
        while True:
            sent_text = False
            try:
                async with client.stream(
                    "POST", "/chat/completions", json=body, timeout=timeout
                ) as resp:
                    if resp.status_code >= 400:
                        payload = await resp.aread()
                        if resp.status_code in RETRY_STATUSES and attempt < policy.max_retries:
                            after = parse_retry_after(resp.headers.get("retry-after"))
                            await self.sleep(policy.delay(attempt, after, self.rng))
                            attempt += 1
                            continue
                        raise status_error(resp.status_code, payload, where)
                    if request.stream:
                        async for item in self._read_stream(resp, where):
                            sent_text = sent_text or isinstance(item, str)
                            yield item
                    else:
                        for item in self._read_whole(await resp.aread(), where):
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

    async def _read_stream(self, resp: httpx.Response, where: str) -> AsyncIterator[str | Final]:
        final = Final()
        done = False
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise StreamError(f"malformed stream chunk from {where}: {data[:80]!r}") from None
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
        Option("timeout", float, "Read timeout in seconds (default 300)", 0.001),
        Option("connect_timeout", float, "Connect timeout in seconds (default 10)", 0.001),
        Option("max_retries", int, "Retries on 429, 5xx and dropped connections (default 3)", 0),
    )

    def models(self) -> Iterable[ModelSpec]:
        base_url = os.environ.get("OPENAI_BASE_URL", DEFAULT_BASE_URL)
        for name, ctx in OPENAI_MODELS.items():
            yield ModelSpec(
                id=name,
                provider=self.name,
                context_length=ctx,
                key_name="openai",
                key_env="OPENAI_API_KEY",
                description="OpenAI",
                config={
                    "base_url": base_url,
                    "model": name,
                    "official": base_url == DEFAULT_BASE_URL,
                },
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
                config={
                    "base_url": entry["base_url"],
                    "model": entry.get("model") or entry["alias"],
                    "headers": entry.get("headers") or {},
                },
            )

    def open(self, spec: ModelSpec, key: str | None) -> Backend:
        return OpenAIBackend(
            spec.config["base_url"], spec.config["model"], key, headers=spec.config.get("headers")
        )
