"""``assay batch`` as a library: one prompt template over many inputs, resumable.

    spec = BatchSpec(model="gpt-4o-mini", template="Describe {{path}}",
                     inputs="photos/", attachments=["{{path}}"])
    plan = plan_batch(spec)            # counts the inputs; nothing is sent
    print(estimate(plan)["total_usd"])
    job_id, summary = run(plan, concurrency=16, max_cost=2.0)

A job is found again by its spec: running the same spec a second time
resumes the unfinished job and skips every item already done.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import _sync
from ..api import AsyncModel, get_async_model
from ..attachments import Attachment
from ..errors import AssayError, UsageError
from ..run.jobs import JobStore
from ..run.pool import Result, Runner, Summary, Task
from ..store.logs import log_store
from ..templates import render
from .inputs import count_inputs, describe_source, read_inputs

__all__ = ["BatchPlan", "BatchSpec", "estimate", "plan_batch", "run", "tasks", "write_output"]

KIND = "batch"
SAMPLE_FOR_ESTIMATE = 500


@dataclass
class BatchSpec:
    """What decides a batch's results; two runs with equal specs are the same job."""

    model: str
    template: str
    inputs: str
    format: str | None = None
    system: str | None = None
    attachments: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchSpec:
        return cls(**{k: v for k, v in data.items() if k != "inputs_digest"})


@dataclass
class BatchPlan:
    spec: BatchSpec
    model: AsyncModel
    fmt: str
    what: list[str] | str
    total: int
    db: Path | str | None = None
    digest: str = ""  # what the inputs were: a changed directory or file is a new job

    def identity(self) -> dict[str, Any]:
        return {**self.spec.identity(), "inputs_digest": self.digest}


def plan_batch(spec: BatchSpec, db: Path | str | None = None) -> BatchPlan:
    """Resolve the model, read the inputs' shape and count them; check the template on item 0."""
    model = get_async_model(spec.model, db=db)
    spec.model = model.id
    spec.options = model.options(spec.options)
    spec.inputs = os.path.abspath(spec.inputs)  # a job resumes from any directory
    fmt, what = describe_source(spec.inputs, spec.format)
    spec.format = fmt
    plan = BatchPlan(spec, model, fmt, what, count_inputs(fmt, what), db, _digest(what))
    for _, fields, error in read_inputs(fmt, what):
        if error is None and fields is not None:
            _render_text(spec, fields)  # a template that names a missing field fails now, once
        break
    return plan


def _digest(what: list[str] | str) -> str:
    """Items are found again by position, so the inputs must not have changed: the file
    list for files, the size and modification time of a data file."""
    if isinstance(what, list):
        return hashlib.sha256("\n".join(what).encode()).hexdigest()[:16]
    stat = os.stat(what)
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _values(spec: BatchSpec, fields: dict[str, Any]) -> dict[str, Any]:
    if "path" in fields and "content" not in fields and "content" in spec.template:
        try:
            fields = {**fields, "content": Path(fields["path"]).read_text("utf-8", "replace")}
        except OSError as e:
            raise UsageError(f"cannot read {fields['path']}: {e.strerror}") from None
    return fields


def _render_text(spec: BatchSpec, fields: dict[str, Any]) -> tuple[str, str | None]:
    values = _values(spec, fields)
    system = render(spec.system, values) if spec.system else None
    return render(spec.template, values), system


def tasks(
    plan: BatchPlan,
    skip: set[int] | None = None,
    price: Callable[[str, int], float] | None = None,
) -> Iterator[Task]:
    """The plan's items as engine tasks, read lazily; a bad item becomes a failing task."""
    spec = plan.spec
    skip = skip or set()
    for index, fields, error in read_inputs(plan.fmt, plan.what):
        if index in skip:
            continue
        if error is not None or fields is None:
            yield Task(index, plan.model, "", error=error or "unreadable input")
            continue
        try:
            prompt, system = _render_text(spec, fields)
            paths = [render(a, fields).strip() for a in spec.attachments]
            # An empty value means "no attachment for this item", e.g. a blank CSV cell.
            attachments = tuple(Attachment.from_arg(p) for p in paths if p)
            plan.model.check_attachments(attachments)
        except AssayError as e:
            yield Task(index, plan.model, "", input=fields, error=str(e))
            continue
        task = Task(index, plan.model, prompt, system, attachments, spec.options, input=fields)
        if price is not None:
            task.estimate_usd = price(prompt + (system or ""), len(attachments))
        yield task


def _output_tokens(plan: BatchPlan) -> tuple[int, bool]:
    from ..costing import DEFAULT_OUTPUT_TOKENS

    given = plan.spec.options.get("max_tokens")
    return (int(given), True) if given is not None else (DEFAULT_OUTPUT_TOKENS, False)


def estimate(plan: BatchPlan, concurrency: int = 8, batch: bool = False) -> dict[str, Any]:
    """What the plan will cost and take: tokens counted on (a sample of) the real items."""
    from ..costing import _dollars
    from ..estimate import count_attachment, count_text
    from ..prices import price_for

    model = plan.model.spec
    out_tokens, given = _output_tokens(plan)
    counted, tokens, methods, bad = 0, 0, set(), 0
    for task in tasks(plan):
        if counted >= SAMPLE_FOR_ESTIMATE:
            break
        if task.error:
            bad += 1
            continue
        c = count_text(model, task.prompt, task.system)
        methods.add(c.method)
        tokens += c.tokens
        for a in task.attachments:
            extra = count_attachment(model, a)
            methods.add(f"{a.type.split('/')[0]}s: {extra.method.split(';')[0]}")
            tokens += extra.tokens
        counted += 1
    per_item_in = tokens / counted if counted else 0.0
    assumptions = sorted(methods)
    if counted < plan.total - bad:
        assumptions.append(f"input tokens: the average of the first {counted} items")
    assumptions.append(
        f"{out_tokens} output tokens per item"
        + (" (max_tokens: a ceiling)" if given else ", an assumption (set -o max_tokens N)")
    )
    price = price_for(model)
    result: dict[str, Any] = {
        "model": model.id,
        "items": plan.total,
        "input_tokens": round(per_item_in * plan.total),
        "output_tokens": out_tokens * plan.total,
        "total_usd": None,
        "seconds": None,
        "assumptions": assumptions,
    }
    if price is not None:
        result["total_usd"] = _dollars(
            price, round(per_item_in * plan.total), out_tokens * plan.total, batch
        )
        assumptions.insert(
            0, f"prices: ${price.input:g}/M input, ${price.output:g}/M output ({price.source})"
        )
    else:
        assumptions.insert(0, f"no price is known for {model.id} (add it to prices.yaml)")
    history = log_store(plan.db)._fetch(
        "SELECT total_ms FROM responses WHERE model = ? AND error IS NULL AND total_ms IS NOT NULL"
        " ORDER BY id DESC LIMIT 50",
        (model.id,),
    )
    if history:
        median_s = statistics.median(r[0] for r in history) / 1000
        result["seconds"] = plan.total * median_s / max(1, concurrency)
        assumptions.append(
            f"time: the median of this model's last {len(history)} logged responses"
            f" ({median_s:.2f} s), {concurrency} at a time"
        )
    else:
        assumptions.append("time: unknown, no response from this model is logged yet")
    return result


def _budget_price(plan: BatchPlan) -> Callable[[str, int], float] | None:
    """A quick per-item cost guess (4 characters a token) for reserving budget in flight."""
    from ..costing import _dollars
    from ..prices import price_for

    price = price_for(plan.model.spec)
    if price is None or (price.input == 0 and price.output == 0):
        return None
    out_tokens, _ = _output_tokens(plan)

    def guess(text: str, attachments: int) -> float:
        return _dollars(price, len(text) // 4 + 1 + 1000 * attachments, out_tokens, False)

    return guess


def find_job(plan: BatchPlan) -> dict[str, Any] | None:
    return JobStore(log_store(plan.db)).find(KIND, plan.identity())


def run(
    plan: BatchPlan,
    *,
    job_id: str | None = None,
    concurrency: int = 8,
    timeout: float | None = None,
    cache: bool = True,
    max_cost: float | None = None,
    max_attempts: int = 5,
    stream: bool = False,
    on_start: Callable[[str, int], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> tuple[str, Summary]:
    """Run (or resume) the plan's job; return its id and this run's summary."""
    jobs = JobStore(log_store(plan.db))
    if job_id is None:
        found = find_job(plan)
        job_id = (
            found["id"] if found else jobs.create(KIND, plan.identity(), plan.model.id, plan.total)
        )
    jobs.set_total(job_id, plan.total)
    done = jobs.done_indexes(job_id)
    spent = float(jobs.counts(job_id)["cost_usd"] or 0.0)
    if on_start is not None:
        on_start(job_id, len(done))
    runner = Runner(
        concurrency=concurrency,
        cache=cache,
        timeout=timeout,
        max_attempts=max_attempts,
        stream=stream,
        db=plan.db,
        tag=f"batch:{job_id}",
        max_cost=max_cost,
        spent=spent,
        finish=lambda conn, result: JobStore.record_item(conn, job_id, result),
        on_result=on_result,
    )
    jobs.set_status(job_id, "running")
    guess = _budget_price(plan) if max_cost is not None else None
    try:
        summary = _sync.run(runner.run(tasks(plan, done, guess)))
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "stopped"
        jobs.set_status(job_id, status, str(e) or type(e).__name__)
        raise
    counts = jobs.counts(job_id)
    if summary.stopped == "budget":
        jobs.set_status(job_id, "stopped", f"budget of ${max_cost:g} reached")
    elif counts["done"] >= plan.total:
        jobs.set_status(job_id, "done")
    else:
        jobs.set_status(job_id, "failed", f"{counts['failed']} item(s) failed")
    return job_id, summary


def plan_from_job(job: dict[str, Any], db: Path | str | None = None) -> BatchPlan:
    """The plan of an existing job; refused if its inputs have changed since it started."""
    data = json.loads(job["spec_json"])
    plan = plan_batch(BatchSpec.from_dict(data), db)
    if data.get("inputs_digest") not in (None, plan.digest):
        raise UsageError(
            f"the inputs of job {job['id']} ({plan.spec.inputs}) have changed since it started,"
            " so its items cannot be matched up: run the batch command again for a new job"
            " (answers already logged come from the cache)"
        )
    return plan


def write_output(job_id: str, path: Path, db: Path | str | None = None) -> int:
    """Write the job's items (in input order) to ``path``: ``.jsonl`` or ``.csv``."""
    import csv

    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".ndjson"):
        raise UsageError(f"--output must end in .jsonl or .csv, not {path.name}")
    jobs = JobStore(log_store(db))
    n = 0
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer: Any = None
            for row in jobs.items(job_id):
                record = {
                    "index": row["idx"],
                    "state": row["state"],
                    "input": row["input"],
                    "prompt": row["prompt"],
                    "response": row["response"] if row["state"] == "done" else None,
                    "error": row["error"],
                    "cached": bool(row["cached"]),
                    "cost_usd": row["cost_usd"],
                    "response_id": row["response_id"],
                }
                if suffix == ".csv":
                    if writer is None:
                        writer = csv.writer(f)
                        writer.writerow([k for k in record if k != "input"] + ["input"])
                    values = [v for k, v in record.items() if k != "input"]
                    writer.writerow([*values, json.dumps(record["input"])])
                else:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    return n
