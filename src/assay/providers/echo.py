"""``echo``: a deterministic fake model, registered like any other provider.

It answers with the last user message (or the ``reply`` option), one word at
a time, with settable delays and token counts. Use it for tests and
benchmarks about the engine rather than the model.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable

from ..errors import ProviderError
from ..options import COMMON_OPTIONS, Option
from ..types import Final, ModelSpec, Request, Usage
from .base import Backend, Provider

__all__ = ["EchoBackend", "EchoProvider"]

_WORD = re.compile(r"\S+\s*|\s+")


def count_tokens(text: str) -> int:
    """The echo model's token count: whitespace-separated words."""
    return len(text.split())


class EchoBackend(Backend):
    async def generate(self, request: Request) -> AsyncIterator[str | Final]:
        opts = request.options
        users = [m for m in request.messages if m.role == "user"]
        text = opts.get("reply")
        if text is None:
            text = users[-1].content if users else ""
        pieces = _WORD.findall(text)
        max_tokens = opts.get("max_tokens")
        finish = "stop"
        if max_tokens is not None and len(pieces) > max_tokens:
            pieces, finish = pieces[:max_tokens], "length"
        if opts.get("delay"):
            await asyncio.sleep(opts["delay"])
        if opts.get("fail"):
            raise ProviderError(opts["fail"])
        token_delay = opts.get("token_delay") or 0.0
        for i, piece in enumerate(pieces):
            if token_delay and i:
                await asyncio.sleep(token_delay)
            yield piece
        prompt_text = "\n".join(m.content for m in request.messages)
        usage = Usage(
            input_tokens=opts.get("input_tokens", count_tokens(prompt_text)),
            cached_tokens=opts.get("cached_tokens"),
            output_tokens=opts.get("output_tokens", count_tokens("".join(pieces))),
            reasoning_tokens=opts.get("reasoning_tokens"),
        )
        yield Final(finish_reason=finish, usage=usage, resolved_model="echo")


class EchoProvider(Provider):
    name = "echo"
    options = (
        *COMMON_OPTIONS,
        Option("reply", str, "Answer with this text instead of the prompt"),
        Option("delay", float, "Seconds to wait before the first token", 0),
        Option("token_delay", float, "Seconds to wait between tokens", 0),
        Option("input_tokens", int, "Report this many input tokens", 0),
        Option("cached_tokens", int, "Report this many cached input tokens", 0),
        Option("output_tokens", int, "Report this many output tokens", 0),
        Option("reasoning_tokens", int, "Report this many reasoning tokens", 0),
        Option("fail", str, "Fail with this error message instead of answering"),
    )

    def models(self) -> Iterable[ModelSpec]:
        yield ModelSpec(
            id="echo",
            provider=self.name,
            context_length=None,
            description="Deterministic fake: answers with the prompt",
        )

    def open(self, spec: ModelSpec, key: str | None) -> Backend:
        return EchoBackend()
