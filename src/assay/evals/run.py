"""Running a suite: every test x prompt x provider x repeat, through the shared engine.

Cases are generated lazily in a fixed order (so an interrupted run resumes by
index), rendered with Jinja (Nunjucks' ``{{var}}`` syntax), sent by
:class:`~assay.run.pool.Runner`, graded as they finish, and written to
``eval_results`` in the same transaction as their response and job item. Only
the cases in flight are held in memory.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _sync
from ..api import AsyncModel, get_async_model
from ..errors import AssayError, UsageError
from ..run.jobs import JobStore
from ..run.pool import Result, Runner, Summary, Task
from ..store.logs import log_store
from ..types import Message
from .asserts import Grader, Verdict
from .python_pool import PythonPool
from .suite import Prompt, ProviderRef, Suite, TestCase, load_suite

__all__ = ["EvalOptions", "EvalPlan", "plan_eval", "run_eval", "test_key"]

KIND = "eval"


@dataclass
class EvalOptions:
    repeat: int = 1
    concurrency: int = 8
    cache: bool = True
    explain_cache: bool = False
    judge: str | None = None
    embedding_model: str = "smollm2"
    timeout: float | None = None
    max_attempts: int = 5
    max_cost: float | None = None


@dataclass
class EvalPlan:
    suite: Suite
    models: list[AsyncModel]
    options: EvalOptions
    db: Path | str | None = None
    _templates: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return {
            "suite": str(self.suite.path.resolve()) if self.suite.path else None,
            "content": self.suite.fingerprint_data(),
            "models": [m.id for m in self.models],
            "repeat": self.options.repeat,
            "judge": self.options.judge,
            "embedding_model": self.options.embedding_model,
        }

    def total(self) -> int:
        tests = sum(1 for _ in self.suite.tests())
        return tests * len(self.suite.prompts) * len(self.models) * self.options.repeat


def test_key(test: TestCase) -> str:
    """Identifies a test across runs (for compare): its description and vars."""
    text = json.dumps([test.description, test.vars], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_for(ref: ProviderRef, db: Path | str | None) -> AsyncModel:
    if ref.base_url:
        from ..providers.openai import OpenAIProvider
        from ..types import ModelSpec

        spec = ModelSpec(
            id=ref.label,
            provider="openai",
            description=f"{ref.remote_model} at {ref.base_url}",
            config={"base_url": ref.base_url, "model": ref.remote_model, "official": False},
        )
        return AsyncModel(OpenAIProvider(), spec, db=db)
    return get_async_model(ref.model, db=db)


def plan_eval(
    suite: Suite | Path | str, options: EvalOptions | None = None, db: Path | str | None = None
) -> EvalPlan:
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    options = options or EvalOptions()
    if options.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    models = [_model_for(ref, db) for ref in suite.providers]
    for model, ref in zip(models, suite.providers, strict=True):
        model.options(ref.options)  # a bad option fails now, naming the model
    return EvalPlan(suite, models, options, db)


def _template(plan: EvalPlan, prompt: Prompt) -> Any:
    if prompt.label not in plan._templates:
        import jinja2

        env = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
        try:
            plan._templates[prompt.label] = env.from_string(prompt.template)
        except jinja2.TemplateSyntaxError as e:
            raise UsageError(f"prompt {prompt.label!r}, line {e.lineno}: {e.message}") from None
    return plan._templates[prompt.label]


def render(
    plan: EvalPlan, prompt: Prompt, test: TestCase
) -> tuple[str, str | None, tuple[Message, ...]]:
    """The prompt for one test: (last user message, system, earlier turns)."""
    import jinja2

    try:
        text = _template(plan, prompt).render(**test.vars)
    except jinja2.TemplateError as e:
        raise UsageError(f"prompt {prompt.label!r}: {e}") from None
    if not prompt.chat:
        return text, None, ()
    try:
        messages = json.loads(text)
    except ValueError as e:
        raise UsageError(f"prompt {prompt.label!r} is not JSON once rendered: {e}") from None
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    if not turns or turns[-1]["role"] != "user":
        raise UsageError(f"chat prompt {prompt.label!r} must end with a user message")
    history = tuple(Message(m["role"], str(m["content"])) for m in turns[:-1])
    return str(turns[-1]["content"]), system, history


@dataclass
class _Case:
    test: TestCase
    prompt: Prompt
    provider: ProviderRef
    repeat: int
    rendered: str


def cases(plan: EvalPlan, skip: set[int], pending: dict[int, _Case]) -> Iterator[Task]:
    idx = 0
    suite = plan.suite
    for test in suite.tests():
        for prompt in suite.prompts:
            for model, ref in zip(plan.models, suite.providers, strict=True):
                for r in range(plan.options.repeat):
                    index = idx
                    idx += 1
                    if index in skip:
                        continue
                    info = {
                        "test": test.index,
                        "prompt": prompt.label,
                        "provider": ref.label,
                        "repeat": r,
                    }
                    error = test.error
                    text, system = "", None
                    history: tuple[Message, ...] = ()
                    if error is None:
                        try:
                            text, system, history = render(plan, prompt, test)
                        except AssayError as e:
                            error = str(e)
                    pending[index] = _Case(test, prompt, ref, r, text)
                    yield Task(
                        index,
                        model,
                        text,
                        system,
                        options=dict(ref.options),
                        sample=r,
                        input=info,
                        error=error,
                        history=history,
                    )


def run_eval(
    plan: EvalPlan,
    *,
    job_id: str | None = None,
    on_start: Callable[[str, int, int], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> tuple[str, Summary]:
    """Run (or resume) the plan; return the run's id and the engine's summary."""
    jobs = JobStore(log_store(plan.db))
    total = plan.total()
    if job_id is None:
        identity = plan.identity()  # reads every test: once
        found = jobs.find(KIND, identity)
        if found is not None and found["status"] != "done":
            job_id = found["id"]
        else:
            job_id = jobs.create(KIND, identity, ",".join(m.id for m in plan.models), total)
    jobs.set_total(job_id, total)
    done = jobs.done_indexes(job_id)
    if on_start is not None:
        on_start(job_id, len(done), total)
    pending: dict[int, _Case] = {}
    verdicts: dict[int, Verdict] = {}
    opts = plan.options
    base = plan.suite.base
    python = PythonPool(size=min(4, opts.concurrency), cwd=base)
    judges: dict[str, AsyncModel] = {}
    embeddings: dict[str, list[float]] = {}
    runner: Runner

    async def ask(model_id: str, prompt: str) -> str:
        if model_id not in judges:
            judges[model_id] = get_async_model(model_id, db=plan.db)
        result = await runner.ask(Task(-1, judges[model_id], prompt))
        if not result.ok:
            raise AssayError(f"the judge {model_id} failed: {result.error}")
        return result.text

    async def embed(texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in embeddings]
        if missing:
            backend = get_async_model(opts.embedding_model, db=plan.db).backend()
            vectors, _ = await backend.embed(missing)
            if len(embeddings) > 10_000:
                embeddings.clear()
            embeddings.update(zip(missing, vectors, strict=True))
        return [embeddings[t] for t in texts]

    grader = Grader(ask=ask, embed=embed, python=python.run, judge=opts.judge, base=base)

    async def grade(result: Result) -> None:
        case = pending.get(result.task.index)
        if case is None:
            return
        out = result.outcome
        verdicts[result.task.index] = await grader.grade(
            case.test,
            result.text,
            error=None if result.ok else (result.error or "failed"),
            cost_usd=result.cost_usd,
            latency_ms=out.total_ms if out is not None else None,
            prompt=case.rendered,
        )

    def finish(conn: sqlite3.Connection, result: Result) -> None:
        JobStore.record_item(conn, job_id, result)
        index = result.task.index
        case = pending.pop(index, None)
        verdict = verdicts.pop(index, None)
        if case is None or verdict is None:
            return
        out = result.outcome
        usage = out.usage if out is not None else None
        conn.execute(
            "INSERT OR REPLACE INTO eval_results (job_id, idx, test_idx, test_key, description,"
            " vars_json, prompt_label, provider_label, repeat, pass, score, reason, grades_json,"
            " error, cached, cost_usd, latency_ms, input_tokens, output_tokens, response_id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job_id,
                index,
                case.test.index,
                test_key(case.test),
                case.test.description,
                json.dumps(case.test.vars, default=str),
                case.prompt.label,
                case.provider.label,
                case.repeat,
                int(verdict.passed),
                verdict.score,
                verdict.reason,
                json.dumps([g.to_dict() for g in verdict.grades]),
                None if result.ok else result.error,
                int(result.cached),
                result.cost_usd,
                out.total_ms if out is not None else None,
                usage.input_tokens if usage else None,
                usage.output_tokens if usage else None,
                result.response_id,
            ),
        )

    runner = Runner(
        concurrency=opts.concurrency,
        cache=opts.cache,
        explain_cache=opts.explain_cache,
        timeout=opts.timeout,
        max_attempts=opts.max_attempts,
        db=plan.db,
        tag=f"eval:{job_id}",
        max_cost=opts.max_cost,
        spent=float(jobs.counts(job_id)["cost_usd"] or 0.0),
        finish=finish,
        on_result=on_result,
        grade=grade,
    )
    jobs.set_status(job_id, "running")

    async def go() -> Summary:
        try:
            return await runner.run(cases(plan, done, pending))
        finally:
            await python.aclose()

    try:
        summary = _sync.run(go())
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "stopped"
        jobs.set_status(job_id, status, str(e) or type(e).__name__)
        raise
    counts = jobs.counts(job_id)
    if summary.stopped == "budget":
        jobs.set_status(job_id, "stopped", f"budget of ${opts.max_cost:g} reached")
    else:
        jobs.set_status(
            job_id, "done", f"{counts['failed']} case(s) errored" if counts["failed"] else None
        )
    return job_id, summary
