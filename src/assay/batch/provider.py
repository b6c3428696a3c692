"""``--provider-batch``: OpenAI's Batch API and Anthropic's Message Batches, at half price.

Both take a file of requests, work through it within 24 hours, and hand back a
file of results keyed by ``custom_id`` (ours is ``item-<index>``). The flow is
the same for both, and each step is recorded on the job, so that it can be
left at any point and picked up with ``assay batch resume JOB``:

1. submit the items not yet done (OpenAI: upload a JSONL file, then create the
   batch; Anthropic: one POST with every request) and store the batch id;
2. poll until the batch ends (every ``ASSAY_BATCH_POLL`` seconds, default 30);
3. fetch the results and log each one as a response priced at the batch rate,
   in the same transaction as its job item.

Formats: https://platform.openai.com/docs/api-reference/batch and
https://docs.anthropic.com/en/api/creating-message-batches.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from .. import _sync
from ..api import Call
from ..engine import Execution
from ..errors import UsageError
from ..prices import cost as price_cost
from ..providers._http import HTTPBackend, parse_json, status_error, translate
from ..run.jobs import JobStore
from ..run.pool import Result, Summary, Task
from ..store.db import store_error, write
from ..store.logs import log_store
from ..types import Final
from .job import KIND, BatchPlan, find_job, tasks

__all__ = ["TERMINAL", "check_provider_batch", "run_provider_batch"]

TERMINAL = {"completed", "failed", "expired", "cancelled", "ended"}
MAX_REQUESTS = {"openai": 50_000, "anthropic": 100_000}  # per batch, as documented


def _poll_seconds() -> float:
    try:
        return float(os.environ.get("ASSAY_BATCH_POLL", "30"))
    except ValueError:
        raise UsageError("ASSAY_BATCH_POLL must be a number of seconds") from None


class _Api:
    """The provider's batch endpoints, on the model backend's own HTTP client."""

    def __init__(self, backend: HTTPBackend, provider: str) -> None:
        self.backend = backend
        self.provider = provider
        self.client = backend._get_client()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        where = path if path.startswith("http") else f"{self.backend.base_url}{path}"
        try:
            resp = await self.client.request(method, path, timeout=120, **kwargs)
        except httpx.HTTPError as e:
            raise translate(e, where) from None
        if resp.status_code >= 400:
            raise status_error(resp.status_code, resp.content, where)
        return resp

    async def submit(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        if self.provider == "anthropic":
            resp = await self.call("POST", "/v1/messages/batches", json={"requests": lines})
            return _normal(parse_json(resp.content, "batch"), self.provider)
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        boundary = f"assay-{os.urandom(8).hex()}"
        form = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
                ' filename="assay-batch.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        upload = await self.call(
            "POST",
            "/files",
            content=form,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        file_id = parse_json(upload.content, "file upload")["id"]
        resp = await self.call(
            "POST",
            "/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        return _normal(parse_json(resp.content, "batch"), self.provider)

    async def status(self, batch_id: str) -> dict[str, Any]:
        path = (
            f"/v1/messages/batches/{batch_id}"
            if self.provider == "anthropic"
            else f"/batches/{batch_id}"
        )
        return _normal(parse_json((await self.call("GET", path)).content, "batch"), self.provider)

    async def results(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        if self.provider == "anthropic":
            urls = [info["results_url"]] if info.get("results_url") else []
        else:
            urls = [
                f"/files/{info[k]}/content"
                for k in ("output_file_id", "error_file_id")
                if info.get(k)
            ]
        for url in urls:
            resp = await self.call("GET", url)
            for raw in resp.content.splitlines():
                if raw.strip():
                    lines.append(parse_json(raw, "batch result"))
        return lines


def _normal(data: dict[str, Any], provider: str) -> dict[str, Any]:
    """The fields of a batch object that we keep, the same for both providers."""
    if provider == "anthropic":
        return {
            "provider": provider,
            "id": data["id"],
            "status": data.get("processing_status"),
            "results_url": data.get("results_url"),
            "counts": data.get("request_counts"),
        }
    return {
        "provider": provider,
        "id": data["id"],
        "status": data.get("status"),
        "output_file_id": data.get("output_file_id"),
        "error_file_id": data.get("error_file_id"),
        "counts": data.get("request_counts"),
        "errors": data.get("errors"),
    }


def _request_line(api: _Api, task: Task, execution: Execution) -> dict[str, Any]:
    body = api.backend.body(execution.request)  # type: ignore[attr-defined]
    body.pop("stream", None)
    body.pop("stream_options", None)
    custom_id = f"item-{task.index}"
    if api.provider == "anthropic":
        return {"custom_id": custom_id, "params": body}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _parse_result(api: _Api, line: dict[str, Any]) -> tuple[str, Final | None, str | None]:
    """Text, usage and error of one result line."""
    if api.provider == "anthropic":
        result = line.get("result") or {}
        kind = result.get("type")
        if kind != "succeeded":
            error = (result.get("error") or {}).get("error") or {}
            return "", None, f"{kind}: {error.get('message', kind)}"
        payload = json.dumps(result["message"]).encode()
    else:
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code", 200) >= 400:
            error = line.get("error") or (response.get("body") or {}).get("error") or {}
            return "", None, f"{response.get('status_code', 'error')}: {error.get('message')}"
        payload = json.dumps(response["body"]).encode()
    text, final = "", Final()
    for item in api.backend._read_whole(payload, "batch result"):  # type: ignore[attr-defined]
        if isinstance(item, Final):
            final = item
        else:
            text += item
    return text, final, None


def run_provider_batch(
    plan: BatchPlan, *, job_id: str | None = None, say: Callable[[str], None] | None = None
) -> tuple[str, Summary]:
    """Submit (or keep polling) the plan's provider batch, then collect; ``say`` hears progress."""
    return _sync.run(_run(plan, job_id, say or (lambda _: None)))


def check_provider_batch(plan: BatchPlan) -> None:
    """Refuse, before anything is estimated or sent, a model with no batch API."""
    if plan.model.spec.provider not in ("openai", "anthropic"):
        raise UsageError(
            f"--provider-batch needs an OpenAI or Anthropic model, not {plan.model.spec.id}"
        )


async def _run(
    plan: BatchPlan, job_id: str | None, say: Callable[[str], None]
) -> tuple[str, Summary]:
    spec = plan.model.spec
    check_provider_batch(plan)
    backend = plan.model.backend()
    assert isinstance(backend, HTTPBackend)
    api = _Api(backend, spec.provider)
    store = log_store(plan.db)
    jobs = JobStore(store)
    if job_id is None:
        found = find_job(plan)
        job_id = found["id"] if found else jobs.create(KIND, plan.identity(), spec.id, plan.total)
    job = jobs.get(job_id)
    summary = Summary()
    start = time.perf_counter()
    info = json.loads(job["provider_batch_json"]) if job["provider_batch_json"] else None
    pending: dict[str, tuple[Task, Execution]] = {}

    done = jobs.done_indexes(job_id)
    for task in tasks(plan, done):
        if task.error is not None:
            _record(store, job_id, Result(task, ok=False, error=task.error), None, summary)
            continue
        execution = task.model._execution(
            task.prompt,
            task.system,
            task.attachments,
            False,
            False,
            None,
            task.options,
            Call(tag=f"batch:{job_id}"),
        )
        pending[f"item-{task.index}"] = (task, execution)
    if info is None or (info.get("status") in TERMINAL and info.get("collected")):
        limit = MAX_REQUESTS[spec.provider]
        if len(pending) > limit:
            raise UsageError(
                f"{len(pending):,} items is more than one {spec.provider} batch takes"
                f" ({limit:,}): split the input"
            )
        if not pending:
            jobs.set_status(job_id, "done" if jobs.counts(job_id)["failed"] == 0 else "failed")
            return job_id, summary
        info = await api.submit([_request_line(api, t, e) for t, e in pending.values()])
        jobs.set_provider_batch(job_id, info)
        jobs.set_status(job_id, "submitted", f"{spec.provider} batch {info['id']}")
        say(f"submitted {len(pending)} items as {spec.provider} batch {info['id']}")
    interval = _poll_seconds()
    while info.get("status") not in TERMINAL:
        await asyncio.sleep(interval)
        info = await api.status(info["id"])
        jobs.set_provider_batch(job_id, info)
        say(f"batch {info['id']}: {info.get('status')} {info.get('counts') or ''}")
    for line in await api.results(info):
        entry = pending.get(str(line.get("custom_id")))
        if entry is None:
            continue  # done already, or not ours
        task, execution = entry
        text, final, error = _parse_result(api, line)
        _record(
            store,
            job_id,
            Result(task, ok=error is None, text=text, error=error, attempts=1),
            (execution, final),
            summary,
        )
        del pending[str(line.get("custom_id"))]
    for task, _ in pending.values():  # no result line: the batch failed, expired or was cancelled
        why = f"the {spec.provider} batch ended {info.get('status')} without this item"
        _record(store, job_id, Result(task, ok=False, error=why), None, summary)
    info["collected"] = True
    jobs.set_provider_batch(job_id, info)
    counts = jobs.counts(job_id)
    jobs.set_status(job_id, "done" if counts["done"] >= plan.total else "failed")
    summary.seconds = time.perf_counter() - start
    return job_id, summary


def _record(
    store: Any,
    job_id: str,
    result: Result,
    sent: tuple[Execution, Final | None] | None,
    summary: Summary,
) -> None:
    if result.ok:
        summary.done += 1
    else:
        summary.failed += 1
        reason = (result.error or "")[:120]
        summary.errors[reason] = summary.errors.get(reason, 0) + 1
    if sent is None:
        try:
            with store._lock, write(store.conn) as conn:
                JobStore.record_item(conn, job_id, result)
        except sqlite3.Error as e:
            raise store_error(store.path, e) from None
        return
    execution, final = sent
    out = execution.outcome
    out.text = result.text
    out.error = result.error
    if final is not None:
        out.usage = final.usage
        out.finish_reason = final.finish_reason
        out.resolved_model = final.resolved_model
        try:
            out.cost_usd, source = price_cost(execution.spec, final.usage, batch=True)
            out.price_source = f"{source} (batch rate)" if source else None
        except Exception as e:  # pricing never loses a result
            out.price_source = f"not priced: {e}"
    else:
        out.finish_reason = "error"
    result.cost_usd = out.cost_usd
    summary.cost_usd += out.cost_usd or 0.0
    record = execution.record()

    def also(conn: sqlite3.Connection, response_id: int) -> None:
        result.response_id = response_id
        JobStore.record_item(conn, job_id, result)

    store.insert(record, also)
