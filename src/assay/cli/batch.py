"""``assay batch``: one prompt template over thousands of inputs, resumable, within a budget."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ._common import DefaultRunGroup, echo_json, engine_options, format_cost, print_table
from ._progress import Progress

__all__ = ["batch"]

EXIT_FAILED_ITEMS = 1
EXIT_BUDGET = 8


@click.group(cls=DefaultRunGroup)
def batch() -> None:
    """Run one prompt template over many inputs: concurrent, resumable, within a budget.

    \b
      assay batch -m gpt-4o-mini 'Describe {{name}}' --inputs photos/ -a '{{path}}'
      assay batch -m echo 'Summarise: {{text}}' --inputs data.jsonl -o out.jsonl
      assay batch list | assay batch status JOB | assay batch resume JOB

    Running the same command again resumes the unfinished job: items already
    done are skipped, and never sent twice.
    """


def _print_estimate(est: dict[str, Any]) -> None:
    click.echo(f"Estimate for {est['items']:,} items on {est['model']}:", err=True)
    cost = est["total_usd"]
    click.echo(
        f"  {est['input_tokens']:,} input + {est['output_tokens']:,} output tokens,"
        f" {format_cost(cost) if cost is not None else 'cost unknown'}",
        err=True,
    )
    if est["seconds"] is not None:
        click.echo(f"  about {_duration(est['seconds'])}", err=True)
    for line in est["assumptions"]:
        click.echo(f"  - {line}", err=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _finish(job_id: str, summary: Any, output: Path | None, as_json: bool, quiet: bool) -> None:
    from ..batch.job import write_output
    from ..run.jobs import JobStore
    from ..store.logs import log_store

    jobs = JobStore(log_store())
    job = jobs.get(job_id)
    counts = jobs.counts(job_id)
    written = write_output(job_id, output) if output is not None else None
    failures = jobs.failures(job_id)
    if as_json:
        echo_json(
            {
                "job": job_id,
                "status": job["status"],
                "total": job["total"],
                **counts,
                "this_run": {
                    "done": summary.done,
                    "failed": summary.failed,
                    "cached": summary.cached,
                    "cost_usd": summary.cost_usd,
                    "seconds": round(summary.seconds, 3),
                    "throttled": summary.throttled,
                    "stopped": summary.stopped,
                },
                "failures": failures,
                "output": str(output) if output else None,
            }
        )
    elif not quiet:
        rate = (summary.done + summary.failed) / summary.seconds if summary.seconds else 0.0
        click.echo(
            f"job {job_id} {job['status']}: {counts['done']} of {job['total']} done,"
            f" {counts['failed']} failed, {counts['cached']} from the cache;"
            f" this run {summary.done + summary.failed} items in {summary.seconds:.1f} s"
            f" ({rate:.1f}/s), {format_cost(summary.cost_usd)}"
            + (f", {summary.throttled} rate-limited" if summary.throttled else ""),
            err=True,
        )
        for reason, n in sorted(summary.errors.items(), key=lambda kv: -kv[1])[:5]:
            click.echo(f"  {n} failed: {reason}", err=True)
        if summary.stopped == "budget":
            click.echo(
                f"stopped at the budget: raise --max-cost and run 'assay batch resume {job_id}'",
                err=True,
            )
        elif counts["failed"]:
            click.echo(f"retry the failed items with 'assay batch resume {job_id}'", err=True)
        if written is not None:
            click.echo(f"wrote {written} items to {output}", err=True)
    if summary.stopped == "budget":
        raise click.exceptions.Exit(EXIT_BUDGET)
    if counts["failed"]:
        raise click.exceptions.Exit(EXIT_FAILED_ITEMS)


_run_options = [
    engine_options("item"),
    click.option(
        "--stream", is_flag=True, help="Stream each response (records time to first token)."
    ),
    click.option(
        "--output",
        "output",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Also write the results to out.jsonl or out.csv.",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    click.option("-q", "--quiet", is_flag=True, help="No estimate, progress or summary."),
]


def run_options(fn: Any) -> Any:
    for option in reversed(_run_options):
        fn = option(fn)
    return fn


@batch.command(name="run")
@click.argument("template")
@click.option(
    "--inputs",
    "-i",
    "inputs",
    required=True,
    help="A directory, a glob ('photos/*.jpg'), data.csv, data.jsonl, or - for stdin.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["files", "csv", "jsonl", "lines"]),
    help="How to read --inputs (default: from its name or first line).",
)
@click.option("-m", "--model", "model_id", help="Model id or alias (default: the default model).")
@click.option("-s", "--system", help="System prompt (a template too).")
@click.option(
    "-a",
    "--attachment",
    "attachments",
    multiple=True,
    help="Attach a file per item; a template such as '{{path}}'. Repeatable.",
)
@click.option(
    "-o",
    "--option",
    "options",
    type=(str, str),
    multiple=True,
    help="A model option, as for a single prompt: -o temperature 0.",
)
@click.option("--dry-run", is_flag=True, help="Show the rendered prompts and the estimate only.")
@click.option(
    "--provider-batch",
    is_flag=True,
    help="Use the provider's batch API (OpenAI, Anthropic): half price, up to 24 h.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before a job over $1.")
@run_options
def run_cmd(
    template: str,
    inputs: str,
    fmt: str | None,
    model_id: str | None,
    system: str | None,
    attachments: tuple[str, ...],
    options: tuple[tuple[str, str], ...],
    dry_run: bool,
    provider_batch: bool,
    yes: bool,
    **run: Any,
) -> None:
    """Run TEMPLATE over every input; {{field}} names an input's field.

    \b
    Fields: files give {{path}} {{name}} {{stem}} {{content}}; CSV gives its
    columns; JSONL the keys of each object ({{value}} if not an object);
    plain lines give {{input}}.

    Exit status: 0 all done, 1 some items failed, 8 stopped at --max-cost.
    """
    from ..batch.inputs import spool_stdin
    from ..batch.job import BatchSpec, estimate, find_job, plan_batch, tasks

    if inputs == "-":
        inputs = str(spool_stdin())
    spec = BatchSpec(
        model=model_id or "",
        template=template,
        inputs=inputs,
        format=fmt,
        system=system,
        attachments=list(attachments),
        options=dict(options),
    )
    if not model_id:
        from ..registry import resolve

        spec.model = resolve(None)[1].id
    plan = plan_batch(spec)
    if provider_batch:
        from ..batch.provider import check_provider_batch

        check_provider_batch(plan)
    if dry_run:
        for shown, task in enumerate(tasks(plan)):
            if shown >= 20:
                click.echo(f"... and {plan.total - shown} more")
                break
            if task.error:
                click.echo(f"--- item {task.index}: cannot run: {task.error}")
            else:
                click.echo(f"--- item {task.index}")
                if task.system:
                    click.echo(f"[system] {task.system}")
                click.echo(task.prompt)
                for a in task.attachments:
                    click.echo(f"[attachment] {a.name} ({a.type})")
        dry = estimate(plan, run["concurrency"], batch=provider_batch)
        if run["as_json"]:
            echo_json(dry)
        else:
            _print_estimate(dry)
        return
    found = find_job(plan)
    if found and found["provider_batch_json"] and not provider_batch:
        import json

        if not json.loads(found["provider_batch_json"]).get("collected"):
            provider_batch = True  # its items are with the provider: never send them twice
            if not run["quiet"]:
                click.echo(
                    f"job {found['id']} has a provider batch under way: collecting it", err=True
                )
    est: dict[str, Any] | None = None  # tokenizing a sample of the items: at most once
    if provider_batch and run["max_cost"] is not None:
        est = estimate(plan, run["concurrency"], batch=True)
        if est["total_usd"] is None or est["total_usd"] > run["max_cost"]:
            from ..errors import UsageError

            raise UsageError(
                "a provider batch cannot stop part-way: its estimate"
                f" ({format_cost(est['total_usd'])}) must be within --max-cost"
                f" ({format_cost(run['max_cost'])})"
            )
    if found and found["status"] == "done":
        if not run["quiet"]:
            click.echo(f"job {found['id']} is already done: nothing to send", err=True)
        _execute(plan, found["id"], provider_batch, yes=True, **run)
        return
    if not run["quiet"] and not found:
        est = est or estimate(plan, run["concurrency"], batch=provider_batch)
        _print_estimate(est)
        _confirm(est, run["max_cost"], yes)
    _execute(plan, found["id"] if found else None, provider_batch, yes=yes, **run)


def _confirm(est: dict[str, Any], max_cost: float | None, yes: bool) -> None:
    cost = est["total_usd"]
    if yes or cost is None or cost <= 1.0 or max_cost is not None or not sys.stdin.isatty():
        return
    if not click.confirm(f"This may cost {format_cost(cost)}. Go ahead?", err=True):
        raise click.exceptions.Exit(1)


def _execute(
    plan: Any,
    job_id: str | None,
    provider_batch: bool,
    *,
    yes: bool,
    concurrency: int,
    max_cost: float | None,
    attempt_timeout: float | None,
    retries: int,
    no_cache: bool,
    stream: bool,
    output: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    from ..batch.job import run

    if provider_batch:
        from ..batch.provider import run_provider_batch

        say = None if quiet or as_json else (lambda line: click.echo(line, err=True))
        job_id, summary = run_provider_batch(plan, job_id=job_id, say=say)
        _finish(job_id, summary, output, as_json, quiet)
        return
    progress = Progress(plan.total, quiet or as_json)
    try:
        job_id, summary = run(
            plan,
            job_id=job_id,
            concurrency=concurrency,
            timeout=attempt_timeout,
            cache=not no_cache,
            max_cost=max_cost,
            max_attempts=retries + 1,
            stream=stream,
            on_start=progress.begin,
            on_result=progress.update,
        )
    finally:
        progress.end()
    _finish(job_id, summary, output, as_json, quiet)


@batch.command()
@click.argument("job_id", metavar="JOB")
@run_options
def resume(job_id: str, **run: Any) -> None:
    """Carry on with JOB (an id, a prefix of one, or 'last'): done items are skipped."""
    from ..batch.job import plan_from_job
    from ..run.jobs import JobStore
    from ..store.logs import log_store

    job = JobStore(log_store()).get(job_id, "batch")
    plan = plan_from_job(job)
    provider_batch = job["provider_batch_json"] is not None
    _execute(plan, job["id"], provider_batch, yes=True, **run)


@batch.command()
@click.argument("job_id", metavar="JOB", default="last")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(job_id: str, as_json: bool) -> None:
    """Show where JOB stands (default: the newest job)."""
    import json

    from ..run.jobs import JobStore
    from ..store.logs import log_store

    jobs = JobStore(log_store())
    job = jobs.get(job_id, "batch")
    counts = jobs.counts(job["id"])
    spec = json.loads(job["spec_json"])
    failures = jobs.failures(job["id"])
    if as_json:
        echo_json(
            {
                **{k: v for k, v in job.items() if k != "spec_json"},
                "spec": spec,
                **counts,
                "failures": failures,
            }
        )
        return
    total = job["total"] or 0
    left = total - counts["done"]
    click.echo(f"job {job['id']} ({job['status']}{': ' + job['detail'] if job['detail'] else ''})")
    click.echo(f"  model:    {job['model']}")
    click.echo(f"  template: {spec['template']}")
    click.echo(f"  inputs:   {spec['inputs']}")
    click.echo(
        f"  items:    {counts['done']} of {total} done, {counts['failed']} failed, {left} to go,"
        f" {counts['cached']} from the cache"
    )
    click.echo(f"  cost:     {format_cost(counts['cost_usd'])}")
    if job["provider_batch_json"]:
        info = json.loads(job["provider_batch_json"])
        click.echo(f"  provider batch: {info.get('id')} ({info.get('status')})")
    for f in failures:
        click.echo(f"  item {f['idx']} failed: {f['error']}")


@batch.command(name="list")
@click.option("-n", "--count", default=20, show_default=True, help="How many jobs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_cmd(count: int, as_json: bool) -> None:
    """List batch jobs, newest first."""
    from ..run.jobs import JobStore
    from ..store.logs import log_store

    jobs = JobStore(log_store()).recent("batch", count)
    if as_json:
        echo_json([{k: v for k, v in j.items() if k != "spec_json"} for j in jobs])
        return
    if not jobs:
        click.echo("no batch jobs yet")
        return
    rows = [["JOB", "STATUS", "MODEL", "DONE", "FAILED", "COST", "CREATED"]]
    for j in jobs:
        rows.append(
            [
                j["id"],
                j["status"],
                j["model"],
                f"{j['done']}/{j['total']}",
                str(j["failed"]),
                format_cost(j["cost_usd"]),
                j["created_utc"],
            ]
        )
    print_table(rows, "lllrrrl")
