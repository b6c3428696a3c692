"""The shared execution engine for many prompts: batch, eval and arena all run through it.

:class:`Runner` takes an iterable of :class:`Task` and runs them with

- bounded concurrency (``-j``) and an :class:`AdaptiveLimiter` per provider
  endpoint, which halves on 429 and ramps back up after successes;
- retries with full jitter on 429, 5xx, dropped connections, cut streams and
  per-item timeouts (the HTTP layer's own retries are switched off, so that
  the limiter hears every 429);
- the response cache, on by default, which also de-duplicates identical tasks
  in flight at the same time;
- an optional budget: no task starts once what was spent plus what is in
  flight would pass it.

Each finished task is written to SQLite as it finishes, inside one
transaction with whatever the caller records about it (``finish``), so a
``kill -9`` loses at most the tasks in flight, and never records a response
without its job row or the other way round. Nothing about finished tasks is
kept in memory: a 100,000-task run holds only the tasks in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import AsyncModel, Call
from ..attachments import Attachment
from ..engine import Execution, Outcome
from ..errors import (
    AssayError,
    ConnectError,
    HTTPStatusError,
    ProviderError,
    StoreError,
)
from ..errors import TimeoutError as AssayTimeout
from ..providers._http import RETRY_STATUSES
from ..store.logs import LogStore, insert_record, log_store
from ..types import Message
from .cache import CacheKey, cache_key, explain_miss, lookup, remember
from .limiter import AdaptiveLimiter
from .writer import Writer

__all__ = ["Result", "Runner", "Summary", "Task"]


@dataclass
class Task:
    """One prompt to run. ``error`` marks an input that could not be read: it fails unsent."""

    index: int
    model: AsyncModel
    prompt: str
    system: str | None = None
    attachments: tuple[Attachment, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    sample: int = 0  # tells repeats of the same prompt apart in the cache
    input: dict[str, Any] | None = None
    error: str | None = None
    estimate_usd: float = 0.0  # reserved against the budget while in flight
    history: tuple[Message, ...] = ()  # earlier chat turns, before ``prompt``
    internal: bool = False  # a call made while grading (a judge): no job item of its own


@dataclass
class Result:
    task: Task
    ok: bool
    text: str = ""
    response_id: int | None = None
    cached: bool = False
    cost_usd: float | None = None
    attempts: int = 0
    error: str | None = None
    outcome: Outcome | None = None  # measured now; for a cache hit, read back from the log
    cache_note: str | None = None  # why it missed the cache, with explain_cache
    work: Callable[[sqlite3.Connection], None] | None = field(default=None, repr=False)
    done: Callable[[], None] | None = field(default=None, repr=False)


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    cached: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    throttled: int = 0
    stopped: str | None = None  # why the run stopped before the end: "budget"
    errors: dict[str, int] = field(default_factory=dict)  # reason -> count


def _outcome_from_row(row: dict[str, Any]) -> Outcome:
    from ..types import Usage

    out = Outcome(
        text=row["response"],
        finish_reason=row["finish_reason"],
        resolved_model=row["resolved_model"],
        ttft_ms=row["ttft_ms"],
        total_ms=row["total_ms"],
        tokens_per_s=row["tokens_per_s"],
        log_id=row["id"],
        cost_usd=row["cost_usd"],
        price_source=row["price_source"],
    )
    out.usage = Usage(
        **{
            k: row[k]
            for k in ("input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens")
        }
    )
    return out


def _identity(model: AsyncModel) -> str:
    """The model in the cache key: its id, and for an endpoint its URL and remote name, so
    that one alias pointed at another server or model never reads the old answers."""
    config = model.spec.config
    if config.get("base_url"):
        return f"{model.spec.id}|{config['base_url']}|{config.get('model', '')}"
    return model.spec.id


class _Retry(Exception):
    def __init__(self, error: AssayError, throttle: bool, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.throttle = throttle
        self.retry_after = retry_after


class Runner:
    """Run many tasks concurrently; see the module docstring."""

    def __init__(
        self,
        *,
        concurrency: int = 8,
        cache: bool = True,
        explain_cache: bool = False,
        timeout: float | None = None,
        max_attempts: int = 5,
        stream: bool = False,
        db: Path | str | None = None,
        tag: str | None = None,
        max_cost: float | None = None,
        spent: float = 0.0,
        finish: Callable[[sqlite3.Connection, Result], None] | None = None,
        on_result: Callable[[Result], None] | None = None,
        grade: Callable[[Result], Awaitable[None]] | None = None,
        base_delay: float = 0.25,
        max_delay: float = 20.0,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.cache = cache
        self.explain_cache = explain_cache
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.stream = stream
        self.store: LogStore = log_store(db)
        self.tag = tag
        self.max_cost = max_cost
        self.spent = spent
        self.finish = finish
        self.on_result = on_result
        self.grade = grade
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.summary = Summary()
        self._reserved = 0.0
        self._limiters: dict[tuple[str, str], AdaptiveLimiter] = {}
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._stop = False
        self._rng = random.Random()

    # -- public ---------------------------------------------------------------

    async def run(self, tasks: Iterable[Task]) -> Summary:
        """Run every task (until the budget stops it); return the summary."""
        start = time.perf_counter()
        queue: asyncio.Queue[Task | None] = asyncio.Queue(maxsize=self.concurrency * 2)

        async def produce() -> None:
            for task in tasks:
                if self._stop:
                    break
                await queue.put(task)
            for _ in range(self.concurrency):
                await queue.put(None)

        self._writer = Writer(self.store)
        self._loop = asyncio.get_running_loop()
        producer = asyncio.ensure_future(produce())
        workers = [asyncio.ensure_future(self._worker(queue)) for _ in range(self.concurrency)]
        try:
            done, _ = await asyncio.wait([producer, *workers], return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        except BaseException:
            await self._stop_all(producer, workers)
            with contextlib.suppress(StoreError):  # never hide what is already on its way out
                self._writer.close()
            raise
        else:
            await self._stop_all(producer, workers)
            self._writer.close()  # everything finished is now written
        finally:
            self.summary.seconds = time.perf_counter() - start
            self.summary.throttled = sum(lim.throttled for lim in self._limiters.values())
        return self.summary

    # -- internals ------------------------------------------------------------

    @staticmethod
    async def _stop_all(
        producer: asyncio.Future[None], workers: Sequence[asyncio.Future[None]]
    ) -> None:
        for t in [producer, *workers]:
            t.cancel()
        await asyncio.gather(producer, *workers, return_exceptions=True)

    async def _worker(self, queue: asyncio.Queue[Task | None]) -> None:
        while True:
            task = await queue.get()
            if task is None:
                return
            if self._stop:
                continue
            if self.max_cost is not None and (
                self.spent + self._reserved + task.estimate_usd > self.max_cost
            ):
                self._stop = True
                self.summary.stopped = "budget"
                continue
            self._reserved += task.estimate_usd
            try:
                result = await self._one(task)
                if self.grade is not None:
                    await self.grade(result)  # before writing: the grade goes in with it
                self._submit(result)
            finally:
                self._reserved -= task.estimate_usd
            self._account(result)

    def _submit(self, result: Result) -> None:
        if result.work is not None:
            self._writer.submit(result.work, result.done)
        elif result.done is not None:
            result.done()
        result.work = result.done = None

    async def ask(self, task: Task) -> Result:
        """Run one task now, outside the queue (a judge's call while grading): cached,
        limited, retried and logged like any other, with no job item of its own."""
        task.internal = True
        result = await self._one(task)
        self._submit(result)
        if result.cost_usd and not result.cached:
            self.summary.cost_usd += result.cost_usd
            self.spent += result.cost_usd
        return result

    def _account(self, result: Result) -> None:
        s = self.summary
        if result.ok:
            s.done += 1
            s.cached += result.cached
        else:
            s.failed += 1
            reason = (result.error or "unknown error")[:120]
            s.errors[reason] = s.errors.get(reason, 0) + 1
        if result.cost_usd and not result.cached:
            s.cost_usd += result.cost_usd
            self.spent += result.cost_usd
        if self.on_result is not None:
            self.on_result(result)

    def _limiter(self, model: AsyncModel) -> AdaptiveLimiter:
        where = (model.spec.provider, str(model.spec.config.get("base_url", model.spec.id)))
        if where not in self._limiters:
            self._limiters[where] = AdaptiveLimiter(self.concurrency)
        return self._limiters[where]

    def _execution(self, task: Task, options: dict[str, Any]) -> Execution:
        conversation = None
        if task.history:
            conversation = task.model.conversation()
            conversation.messages = list(task.history)
        return task.model._execution(
            task.prompt,
            task.system,
            task.attachments,
            self.stream,
            False,
            conversation,
            options,
            Call(tag=self.tag),
        )

    def _send_options(self, task: Task) -> dict[str, Any]:
        # The engine retries, so that the limiter hears every 429: the HTTP layer must not.
        if any(o.name == "max_retries" for o in task.model.provider.options):
            return {**task.options, "max_retries": 0}
        return task.options

    async def _one(self, task: Task) -> Result:
        if task.error is not None:
            return self._record_unsent(Result(task, ok=False, error=task.error))
        try:
            execution = self._execution(task, self._send_options(task))
        except AssayError as e:  # a bad option, an attachment this model cannot take
            return self._record_unsent(Result(task, ok=False, error=str(e)))
        key = cache_key(_identity(task.model), execution.request, task.sample)
        note = None
        if self.cache:
            while key.key in self._inflight:  # an identical task is running: share its answer
                await asyncio.shield(self._inflight[key.key])
            hit = lookup(self.store, key)
            if hit is not None:
                result = Result(task, ok=True, text=hit.text, response_id=hit.response_id)
                result.cached, result.outcome = True, _outcome_from_row(hit.row)
                result.cost_usd = hit.row["cost_usd"]
                return self._record_unsent(result)
            if self.explain_cache:
                note = explain_miss(self.store, key)
            self._inflight[key.key] = self._loop.create_future()
        handed_over = False
        try:
            result = await self._send(task, execution, key)
            result.cache_note = note
            handed_over = result.ok and self.cache
            return result
        finally:
            if not handed_over:  # nothing will be cached: let any twin run for itself
                self._release(key.key)

    def _release(self, key: str) -> None:
        future = self._inflight.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def _send(self, task: Task, execution: Execution, key: CacheKey) -> Result:
        limiter = self._limiter(task.model)
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:  # an Execution runs once: a retry needs a new one
                execution = self._execution(task, self._send_options(task))
            try:
                async with limiter.slot():
                    await self._attempt(execution)
            except _Retry as r:
                if attempt >= self.max_attempts:
                    if isinstance(r.error, ConnectError) and self.summary.done == 0:
                        raise r.error from None  # nothing is listening: stop, resumably
                    return self._record_sent(task, execution, key, attempt, str(r.error))
                backoff = self._rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
                if r.throttle:
                    await limiter.throttle(r.retry_after, backoff)
                else:
                    await asyncio.sleep(backoff)
                continue
            except AssayError as e:  # not worth retrying: a 400, a model that will not load
                if isinstance(e, StoreError):
                    raise
                return self._record_sent(task, execution, key, attempt, str(e))
            await limiter.success()
            return self._record_sent(task, execution, key, attempt, None)

    async def _attempt(self, execution: Execution) -> None:
        try:
            if self.timeout is None:
                await execution.run()
            else:
                await asyncio.wait_for(execution.run(), self.timeout)
        except asyncio.TimeoutError:
            error = AssayTimeout(f"no answer within {self.timeout:g}s")
            execution.outcome.error = str(error)
            raise _Retry(error, False, None) from None
        except HTTPStatusError as e:
            if e.status_code in RETRY_STATUSES:
                raise _Retry(e, e.status_code == 429, e.retry_after) from None
            raise
        except StoreError:
            raise
        except ProviderError as e:  # connection refused or broken, a cut or malformed stream
            raise _Retry(e, False, None) from None

    def _record_sent(
        self, task: Task, execution: Execution, key: CacheKey, attempts: int, error: str | None
    ) -> Result:
        out = execution.outcome
        if error is not None and not out.error:
            out.error = error
        result = Result(
            task,
            ok=error is None,
            text=out.text,
            attempts=attempts,
            error=error,
            outcome=out,
            cost_usd=out.cost_usd,
        )
        record = execution.record()
        if "max_retries" not in task.options:  # the engine's own setting, not the user's
            record.options.pop("max_retries", None)
        cache = result.ok and self.cache

        def work(conn: sqlite3.Connection) -> None:
            def also(conn: sqlite3.Connection, response_id: int) -> None:
                result.response_id = out.log_id = response_id
                if cache:
                    remember(conn, key, response_id)
                if self.finish is not None and not task.internal:
                    self.finish(conn, result)

            insert_record(conn, record, also)

        done = None
        if cache:

            def done() -> None:  # the cache entry is committed: twins may read it now
                self._release(key.key)

        result.work, result.done = work, done
        return result

    def _record_unsent(self, result: Result) -> Result:
        result.attempts = 0
        finish = self.finish
        if finish is not None and not result.task.internal:
            result.work = lambda conn: finish(conn, result)
        return result
