"""The OpenAI-compatible provider's error paths, through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from assay.errors import ConnectError, HTTPStatusError, StreamError, TimeoutError
from assay.providers._http import RetryPolicy, parse_retry_after
from assay.providers.openai import OpenAIBackend
from assay.types import Final, Message, Request

Handler = Callable[[httpx.Request], httpx.Response]


def sse(*chunks: dict | str) -> bytes:
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    return "".join(lines).encode()


def delta(text: str, finish: str | None = None) -> dict:
    return {
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


GOOD_STREAM = sse(
    delta("Hel"),
    delta("lo", "stop"),
    {
        "model": "m",
        "choices": [],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    },
    "[DONE]",
)


def run(handler: Handler, stream: bool = True, **options: object) -> tuple[list, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def go() -> list:
        backend = OpenAIBackend(
            "http://test/v1",
            "m",
            "sk-secret-key-123",
            transport=httpx.MockTransport(handler),
            sleep=sleep,
            rng=random.Random(0),
        )
        request = Request((Message("user", "hi"),), options, stream)
        try:
            return [item async for item in backend.generate(request)]
        finally:
            await backend.aclose()

    return asyncio.run(go()), sleeps


def test_stream_text_usage_cached_and_reasoning_tokens() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer sk-secret-key-123"
        return httpx.Response(200, content=GOOD_STREAM)

    items, _ = run(handler, temperature=0.5, max_tokens=10, reasoning_effort="low")
    assert items[:2] == ["Hel", "lo"]
    final = items[-1]
    assert isinstance(final, Final)
    assert final.finish_reason == "stop"
    assert (
        final.usage.input_tokens,
        final.usage.cached_tokens,
        final.usage.output_tokens,
        final.usage.reasoning_tokens,
    ) == (9, 4, 2, 1)
    body = seen[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.5 and body["max_tokens"] == 10
    assert body["reasoning_effort"] == "low"
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_non_streaming_response() -> None:
    payload = {
        "model": "m-2024",
        "choices": [{"message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    items, _ = run(lambda r: httpx.Response(200, json=payload), stream=False)
    assert items[0] == "Hi!"
    assert items[1].resolved_model == "m-2024" and items[1].usage.output_tokens == 2


def test_429_with_retry_after_is_retried_after_that_delay() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(
                429, headers={"Retry-After": "7"}, json={"error": {"message": "slow down"}}
            )
        return httpx.Response(200, content=GOOD_STREAM)

    items, sleeps = run(handler)
    assert len(calls) == 3
    assert sleeps == [7.0, 7.0]
    assert items[0] == "Hel"


def test_500_is_retried_with_jittered_exponential_backoff_then_fails() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, json={"error": {"message": "kaput"}})

    with pytest.raises(HTTPStatusError, match="answered 500: kaput") as info:
        run(handler, max_retries=3)
    assert info.value.status_code == 500
    assert len(calls) == 4


def test_backoff_is_exponential_with_full_jitter() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503) if len(calls) <= 3 else httpx.Response(200, content=GOOD_STREAM)

    items, sleeps = run(handler)
    assert items[0] == "Hel"
    policy, rng = RetryPolicy(), random.Random(0)  # the same seed run() gives the backend
    assert sleeps == [policy.delay(i, None, rng) for i in range(3)]
    assert all(0 <= s <= policy.base_delay * 2**i for i, s in enumerate(sleeps))
    assert len(set(sleeps)) == 3


def test_4xx_is_not_retried_and_the_key_is_redacted() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(401, json={"error": {"message": "bad key sk-secret-key-123"}})

    from assay.errors import register_secret

    register_secret("sk-secret-key-123")
    with pytest.raises(HTTPStatusError) as info:
        run(handler)
    assert len(calls) == 1
    assert "sk-secret-key-123" not in str(info.value)
    assert "answered 401" in str(info.value)


def test_stream_cut_mid_way_is_a_stream_error() -> None:
    class Cut(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield sse(delta("partial "))
            raise httpx.RemoteProtocolError("peer closed connection")

    with pytest.raises(StreamError, match="cut off"):
        run(lambda r: httpx.Response(200, stream=Cut()))


def test_stream_that_ends_early_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="ended before"):
        run(lambda r: httpx.Response(200, content=sse(delta("half"))))


def test_invalid_json_chunk_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="malformed stream chunk"):
        run(lambda r: httpx.Response(200, content=b"data: {not json\n\n"))


def test_invalid_json_body_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="malformed response"):
        run(lambda r: httpx.Response(200, content=b"<html>"), stream=False)


def test_connect_error_and_timeout() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(ConnectError, match="is the server running"):
        run(refuse)
    with pytest.raises(TimeoutError, match="after 2s"):
        run(slow, timeout=2)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 < (parse_retry_after(format_datetime(when, usegmt=True)) or 0) <= 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert RetryPolicy().delay(0, 500, random.Random()) == 60.0  # capped


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": [None]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": "nope"},
    ],
)
def test_chunks_of_the_wrong_shape_are_stream_errors(chunk: dict) -> None:
    with pytest.raises(StreamError, match="malformed stream chunk"):
        run(lambda r: httpx.Response(200, content=sse(chunk, "[DONE]")))


def test_lenient_where_the_format_allows_it() -> None:
    parts = {
        "choices": [
            {"delta": {"content": [{"type": "text", "text": "Hi"}]}, "finish_reason": "stop"}
        ],
        "error": None,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens_details": 5},
    }
    items, _ = run(lambda r: httpx.Response(200, content=sse(parts, "[DONE]")))
    assert items[0] == "Hi"
    assert items[1].usage.input_tokens == 1 and items[1].usage.cached_tokens is None
