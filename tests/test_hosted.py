"""Anthropic and Gemini wire formats, checked against fixtures written from their docs.

The fixtures live in tests/fixtures/ (see its README). Tests marked ``live`` call
the real APIs and run only when the key is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import httpx
import pytest

import assay
from assay.attachments import Attachment
from assay.errors import HTTPStatusError, ProviderError
from assay.prices import cost
from assay.providers.anthropic import AnthropicBackend
from assay.providers.gemini import GeminiBackend
from assay.registry import resolve
from assay.types import Final, Message, Request

FIXTURES = Path(__file__).parent / "fixtures"
# Read before the autouse fixture clears *_API_KEY from the environment of each test.
LIVE_KEYS = {
    k: os.environ.get(k) for k in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY")
}
PNG = Attachment(type="image/png", content=b"\x89PNG\r\n\x1a\n", path="/tmp/x.png")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def run(backend_cls, handler, request: Request, model: str) -> tuple[list, list[httpx.Request]]:  # type: ignore[no-untyped-def]
    seen: list[httpx.Request] = []

    def record(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    async def no_sleep(_: float) -> None:
        pass

    async def go() -> list:
        backend = backend_cls(
            "https://api.test",
            model,
            "test-key-123456",
            transport=httpx.MockTransport(record),
            sleep=no_sleep,
            rng=random.Random(0),
        )
        try:
            return [item async for item in backend.generate(request)]
        finally:
            await backend.aclose()

    return asyncio.run(go()), seen


def request(*messages: Message, stream: bool = True, **options: object) -> Request:
    return Request(tuple(messages), options, stream)


# --- Anthropic -----------------------------------------------------------------------------


def test_anthropic_request_body_matches_the_documented_shape() -> None:
    req = request(
        Message("system", "You are a careful art critic."),
        Message("user", "Describe this image.", (PNG,)),
        max_tokens=3000,
        cache="both",
        thinking_budget=2048,
    )
    items, seen = run(
        AnthropicBackend,
        lambda r: httpx.Response(200, content=fixture("anthropic/messages_stream.sse")),
        req,
        "claude-sonnet-4-5",
    )
    sent = seen[0]
    assert sent.url == "https://api.test/v1/messages"
    assert sent.headers["x-api-key"] == "test-key-123456"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(sent.content) == json.loads(fixture("anthropic/image_cached_request.json"))
    assert items[:2] == ["Hello", "!"]


def test_anthropic_stream_usage_counts_cache_reads_and_writes() -> None:
    items, _ = run(
        AnthropicBackend,
        lambda r: httpx.Response(200, content=fixture("anthropic/messages_stream.sse")),
        request(Message("user", "Hi")),
        "claude-sonnet-4-5",
    )
    final = items[-1]
    assert isinstance(final, Final)
    assert final.finish_reason == "end_turn"
    assert final.resolved_model == "claude-sonnet-4-5-20250929"
    u = final.usage
    # input_tokens is the whole input: 25 fresh + 3000 read + 1200 written
    assert (u.input_tokens, u.cached_tokens, u.cache_write_tokens, u.output_tokens) == (
        4225,
        3000,
        1200,
        15,
    )


def test_anthropic_thinking_is_not_part_of_the_answer() -> None:
    items, _ = run(
        AnthropicBackend,
        lambda r: httpx.Response(200, content=fixture("anthropic/thinking_stream.sse")),
        request(Message("user", "2+2?"), thinking_budget=1024),
        "claude-sonnet-4-5",
    )
    assert items[:-1] == ["4"]
    assert items[-1].usage.output_tokens == 120


def test_anthropic_non_streaming_response() -> None:
    items, _ = run(
        AnthropicBackend,
        lambda r: httpx.Response(200, content=fixture("anthropic/messages_response.json")),
        request(Message("user", "Hi"), stream=False),
        "claude-sonnet-4-5",
    )
    assert items[0] == "Hi! My name is Claude."
    assert items[1].usage.input_tokens == 2095 and items[1].usage.output_tokens == 503


def test_anthropic_mid_stream_error_and_overloaded_retry() -> None:
    with pytest.raises(ProviderError, match="Overloaded"):
        run(
            AnthropicBackend,
            lambda r: httpx.Response(200, content=fixture("anthropic/error_stream.sse")),
            request(Message("user", "Hi")),
            "claude-sonnet-4-5",
        )
    calls = []

    def overloaded_then_ok(r: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(529, content=fixture("anthropic/overloaded_error.json"))
        return httpx.Response(200, content=fixture("anthropic/messages_stream.sse"))

    items, _ = run(
        AnthropicBackend, overloaded_then_ok, request(Message("user", "Hi")), "claude-sonnet-4-5"
    )
    assert len(calls) == 2 and items[0] == "Hello"
    with pytest.raises(HTTPStatusError, match="answered 529: Overloaded"):
        run(
            AnthropicBackend,
            lambda r: httpx.Response(529, content=fixture("anthropic/overloaded_error.json")),
            request(Message("user", "Hi"), max_retries=0),
            "claude-sonnet-4-5",
        )


def test_anthropic_thinking_budget_must_fit_in_max_tokens() -> None:
    with pytest.raises(assay.OptionError, match="must be above thinking_budget"):
        AnthropicBackend("https://x", "m").body(
            request(Message("user", "x"), max_tokens=1000, thinking_budget=2000)
        )


def test_anthropic_cost_with_cache_writes() -> None:
    spec = resolve("claude-sonnet-4-5")[1]
    dollars, source = cost(
        spec,
        assay.Usage(
            input_tokens=4225, cached_tokens=3000, cache_write_tokens=1200, output_tokens=15
        ),
    )
    # genai-prices 0.2.3: Sonnet 4.5 $3 in, $15 out, $0.30 cache read, $3.75 cache write per M
    expected = (25 * 3 + 3000 * 0.30 + 1200 * 3.75 + 15 * 15) / 1e6
    assert dollars == pytest.approx(expected)
    assert "Anthropic" in (source or "")


# --- Gemini --------------------------------------------------------------------------------


def test_gemini_request_body_matches_the_documented_shape() -> None:
    req = request(
        Message("system", "Be brief."),
        Message("user", "Describe this image.", (PNG,)),
        temperature=0.0,
        max_tokens=100,
        thinking_budget=0,
    )
    items, seen = run(
        GeminiBackend,
        lambda r: httpx.Response(200, content=fixture("gemini/stream.sse")),
        req,
        "gemini-2.5-flash",
    )
    sent = seen[0]
    assert str(sent.url) == (
        "https://api.test/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert sent.headers["x-goog-api-key"] == "test-key-123456"
    assert "key=" not in str(sent.url)
    assert json.loads(sent.content) == json.loads(fixture("gemini/image_request.json"))
    assert "".join(i for i in items if isinstance(i, str)) == "The image shows a red square."


def test_gemini_stream_usage_includes_thinking_tokens() -> None:
    items, _ = run(
        GeminiBackend,
        lambda r: httpx.Response(200, content=fixture("gemini/stream.sse")),
        request(Message("user", "x")),
        "gemini-2.5-flash",
    )
    u = items[-1].usage
    assert (u.input_tokens, u.cached_tokens, u.output_tokens, u.reasoning_tokens) == (
        260,
        200,
        122,
        30,
    )
    assert items[-1].finish_reason == "stop"


def test_gemini_thought_parts_are_not_part_of_the_answer() -> None:
    items, _ = run(
        GeminiBackend,
        lambda r: httpx.Response(200, content=fixture("gemini/thought_parts_stream.sse")),
        request(Message("user", "x")),
        "gemini-2.5-pro",
    )
    assert items[:-1] == ["Four."]
    assert items[-1].usage.reasoning_tokens == 64 and items[-1].usage.output_tokens == 66


def test_gemini_non_streaming_and_errors() -> None:
    items, seen = run(
        GeminiBackend,
        lambda r: httpx.Response(200, content=fixture("gemini/generate_response.json")),
        request(Message("user", "Hi"), stream=False),
        "gemini-2.0-flash",
    )
    assert str(seen[0].url).endswith("/v1beta/models/gemini-2.0-flash:generateContent")
    assert items[0] == "Hello there." and items[1].usage.output_tokens == 3
    with pytest.raises(HTTPStatusError, match="answered 400: API key not valid"):
        run(
            GeminiBackend,
            lambda r: httpx.Response(400, content=fixture("gemini/error_invalid_argument.json")),
            request(Message("user", "Hi")),
            "gemini-2.0-flash",
        )


def test_hosted_models_refuse_attachments_they_cannot_take(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 20)
    audio = Attachment.from_arg(str(wav))
    assert audio.type == "audio/wav"
    with pytest.raises(assay.AssayError, match=r"cannot take audio/wav.*gemini-2\.5-pro"):
        assay.get_model("claude-sonnet-4-5", key="k").prompt("x", attachments=[audio])


# --- live ----------------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.skipif(not LIVE_KEYS["ANTHROPIC_API_KEY"], reason="ANTHROPIC_API_KEY not set")
def test_live_anthropic() -> None:
    response = assay.get_model("claude-haiku-4-5", key=LIVE_KEYS["ANTHROPIC_API_KEY"]).prompt(
        "Reply with the single word: pong", max_tokens=10
    )
    assert "pong" in response.text().lower()
    assert response.usage.input_tokens and response.cost is not None


@pytest.mark.live
@pytest.mark.skipif(not LIVE_KEYS["GEMINI_API_KEY"], reason="GEMINI_API_KEY not set")
def test_live_gemini() -> None:
    response = assay.get_model("gemini-2.5-flash-lite", key=LIVE_KEYS["GEMINI_API_KEY"]).prompt(
        "Reply with the single word: pong", max_tokens=10
    )
    assert "pong" in response.text().lower()
    assert response.usage.input_tokens and response.cost is not None


@pytest.mark.live
@pytest.mark.skipif(not LIVE_KEYS["OPENAI_API_KEY"], reason="OPENAI_API_KEY not set")
def test_live_openai() -> None:
    response = assay.get_model("gpt-4o-mini", key=LIVE_KEYS["OPENAI_API_KEY"]).prompt(
        "Reply with the single word: pong", max_tokens=10
    )
    assert "pong" in response.text().lower()
    assert response.cost is not None
