"""The execution engine: run one request on a backend, time it, and log it.

Every caller (the Python API, the CLI, later batch, eval and arena) goes
through :class:`Execution`, so timing, usage and logging are measured the
same way everywhere:

- ``ttft_ms``: from sending the request to the first text piece;
- ``total_ms``: from sending the request to the final item;
- ``tokens_per_s``: decode speed, ``(output_tokens - 1) / (total - ttft)``.

A response that fails or is interrupted part-way is still logged, with the
text received so far and the error, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AssayError
from .providers.base import Backend
from .store.logs import LogRecord, log_store
from .types import Final, ModelSpec, Request, Usage

__all__ = ["Execution", "Outcome", "log_store"]


@dataclass
class Outcome:
    """Everything measured about one response."""

    text: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    resolved_model: str | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_per_s: float | None = None
    error: str | None = None
    log_id: int | None = None
    cost_usd: float | None = None
    price_source: str | None = None


class Execution:
    """One request on one backend: stream it, measure it, log it once."""

    def __init__(
        self,
        backend: Backend,
        spec: ModelSpec,
        request: Request,
        *,
        prompt: str,
        conversation_id: str | None,
        log: bool,
        db: Path | str | None = None,
        user: str | None = None,
        tag: str | None = None,
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.request = request
        self.prompt = prompt
        self.conversation_id = conversation_id
        self.log = log and not backend.logs_responses
        self.db = db
        self.user = user
        self.tag = tag
        self.outcome = Outcome()
        self.started = False
        self.done = False
        self._pieces: list[str] = []

    async def stream(self) -> AsyncIterator[str]:
        """Yield text pieces as they arrive; log the response when it ends, however it ends."""
        if self.started:
            raise AssayError("this response is already being read, or has been read")
        self.started = True
        out = self.outcome
        final = Final()
        start = time.perf_counter()
        items: AsyncIterator[str | Final] | None = None
        try:
            await self.backend.warm(self.request)  # loading weights is not time to first token
            start = time.perf_counter()
            items = self.backend.generate(self.request)
            async for item in items:
                if isinstance(item, Final):
                    final = item
                    continue
                if out.ttft_ms is None:
                    out.ttft_ms = (time.perf_counter() - start) * 1000
                self._pieces.append(item)
                yield item
        except (Exception, asyncio.CancelledError, KeyboardInterrupt, GeneratorExit) as e:
            if isinstance(e, AssayError):
                out.error = str(e)
            elif isinstance(e, Exception):
                out.error = f"{type(e).__name__}: {e}"
            else:
                out.error = "interrupted"
            self._finish(start, final)
            raise
        finally:
            if items is not None:
                # At interpreter exit the loop may be closing this generator itself.
                with contextlib.suppress(RuntimeError):
                    await items.aclose()  # type: ignore[attr-defined]
        self._finish(start, final)

    async def run(self) -> Outcome:
        async for _ in self.stream():
            pass
        return self.outcome

    def _finish(self, start: float, final: Final) -> None:
        out = self.outcome
        out.total_ms = (time.perf_counter() - start) * 1000
        out.text = "".join(self._pieces)
        out.usage = final.usage
        if out.error:
            out.finish_reason = "interrupted" if out.error == "interrupted" else "error"
        else:
            out.finish_reason = final.finish_reason
        out.resolved_model = final.resolved_model
        n = final.usage.output_tokens
        if n and n > 1 and out.ttft_ms is not None and out.total_ms > out.ttft_ms:
            out.tokens_per_s = (n - 1) / ((out.total_ms - out.ttft_ms) / 1000)
        self._price()
        self.done = True
        if self.log:
            out.log_id = log_store(self.db).insert(self.record())

    def _price(self) -> None:
        out = self.outcome
        if out.usage.input_tokens is None and out.usage.output_tokens is None:
            return
        from .prices import cost

        try:
            out.cost_usd, out.price_source = cost(self.spec, out.usage)
        except Exception as e:  # pricing must never lose the response or its log row
            out.price_source = f"not priced: {e}"

    def record(self) -> LogRecord:
        out = self.outcome
        options: dict[str, Any] = dict(self.request.options)
        return LogRecord(
            model=self.spec.id,
            provider=self.spec.provider,
            resolved_model=out.resolved_model,
            prompt=self.prompt,
            system=self.request.system,
            conversation_id=self.conversation_id,
            options=options,
            response=out.text,
            ttft_ms=out.ttft_ms,
            total_ms=out.total_ms,
            tokens_per_s=out.tokens_per_s,
            finish_reason=out.finish_reason,
            error=out.error,
            input_tokens=out.usage.input_tokens,
            cached_tokens=out.usage.cached_tokens,
            output_tokens=out.usage.output_tokens,
            reasoning_tokens=out.usage.reasoning_tokens,
            cache_write_tokens=out.usage.cache_write_tokens,
            attachments=self.request.messages[-1].attachments if self.request.messages else (),
            user=self.user,
            tag=self.tag,
            cost_usd=out.cost_usd,
            price_source=out.price_source,
        )
