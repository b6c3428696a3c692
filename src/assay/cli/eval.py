"""``assay eval``: run a promptfoo-style suite, summarise it with intervals, compare runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import DefaultRunGroup, echo_json, engine_options, format_cost, print_table
from ._progress import Progress

__all__ = ["eval_group"]

EXIT_BELOW_THRESHOLD = 1
EXIT_BUDGET = 8


@click.group(name="eval", cls=DefaultRunGroup)
def eval_group() -> None:
    """Run eval suites (promptfoo-compatible YAML) and compare runs with paired tests.

    \b
      assay eval promptfooconfig.yaml -j 8 --repeat 3 --output report.html
      assay eval compare RUN_A RUN_B
      assay eval list | assay eval show RUN --output results.xml
    """


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _print_summary(run_id: str, show_flaky: bool) -> float:
    from ..evals.results import flaky, summary

    groups = summary(run_id)
    rows = [
        [
            "PROMPT",
            "PROVIDER",
            "PASSED",
            "PASS RATE (95% CI)",
            "SCORE (95% CI)",
            "COST",
            "TOKENS IN/OUT",
        ]
    ]
    for g in groups:
        rows.append(
            [
                g.prompt[:40],
                g.provider,
                f"{g.passed}/{g.n}",
                f"{_pct(g.pass_rate)} ({_pct(g.pass_low)}-{_pct(g.pass_high)})",
                f"{g.score:.3f} ({g.score_low:.3f}-{g.score_high:.3f})",
                format_cost(g.cost_usd),
                f"{g.input_tokens}/{g.output_tokens}",
            ]
        )
    print_table(rows, "llrrrrr")
    total = sum(g.n for g in groups)
    passed = sum(g.passed for g in groups)
    rate = passed / total if total else 0.0
    cached = sum(g.cached for g in groups)
    errors = sum(g.errors for g in groups)
    click.echo(
        f"run {run_id}: {passed}/{total} passed ({_pct(rate)}),"
        f" {cached} from the cache, {errors} errored,"
        f" {format_cost(sum(g.cost_usd for g in groups))}"
    )
    if show_flaky:
        unstable = flaky(run_id)
        click.echo(f"{len(unstable)} flaky case(s): passed in some repeats, failed in others")
        for f in unstable[:20]:
            name = f["description"] or f"test {f['test_idx']}"
            click.echo(
                f"  {name} | {f['prompt_label']} | {f['provider_label']}:"
                f" passed {f['passed']} of {f['runs']}"
            )
    return rate


_outputs = click.option(
    "--output",
    "outputs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Write results: .json, .jsonl, .csv, .xml (JUnit) or .html. Repeatable.",
)


@eval_group.command(name="run")
@click.argument("suite", type=click.Path(dir_okay=False, path_type=Path))
@engine_options("case")
@click.option(
    "--repeat",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Run every case N times, to measure variance and find flaky cases.",
)
@click.option("--explain-cache", is_flag=True, help="Say why each case missed the cache.")
@click.option("--judge", help="Model for llm-rubric (unless a test names its own).")
@click.option(
    "--embedding-model",
    default="smollm2",
    show_default=True,
    help="Model for `similar` assertions.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    help="Exit 1 if the overall pass rate is below this (for CI).",
)
@_outputs
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress.")
def run_cmd(
    suite: Path,
    concurrency: int,
    repeat: int,
    no_cache: bool,
    explain_cache: bool,
    judge: str | None,
    embedding_model: str,
    threshold: float | None,
    outputs: tuple[Path, ...],
    attempt_timeout: float | None,
    retries: int,
    max_cost: float | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run SUITE: every test x prompt x provider (x --repeat), graded, stored, summarised.

    An interrupted run resumes: run the same command again. Exit status: 0, or 1
    below --threshold; 2 for a bad suite (with its file and line).
    """
    from ..evals.results import export, summary
    from ..evals.run import EvalOptions, plan_eval, run_eval

    options = EvalOptions(
        repeat=repeat,
        concurrency=concurrency,
        cache=not no_cache,
        explain_cache=explain_cache,
        judge=judge,
        embedding_model=embedding_model,
        timeout=attempt_timeout,
        max_attempts=retries + 1,
        max_cost=max_cost,
    )
    for out in outputs:  # a bad --output is an error before anything is sent
        if out.suffix.lower() not in (".json", ".jsonl", ".csv", ".xml", ".html"):
            raise click.BadParameter(
                f"{out.name}: use .json, .jsonl, .csv, .xml or .html", param_hint="--output"
            )
    plan = plan_eval(suite, options)
    progress = Progress(0, quiet or as_json, label="eval", noun="run")
    misses: dict[str, int] = {}

    def start(run_id: str, already: int, total: int) -> None:
        progress.total = total
        progress.begin(run_id, already)

    def on_result(result: Any) -> None:
        progress.update(result)
        if result.cache_note:
            misses[result.cache_note] = misses.get(result.cache_note, 0) + 1

    try:
        run_id, run_summary = run_eval(plan, on_start=start, on_result=on_result)
    finally:
        progress.end()
    for out in outputs:
        n = export(run_id, out)
        if not as_json:
            click.echo(f"wrote {n} cases to {out}", err=True)
    if as_json:
        from ..evals.results import flaky

        groups = summary(run_id)
        total = sum(g.n for g in groups)
        rate = sum(g.passed for g in groups) / total if total else 0.0
        echo_json(
            {
                "run": run_id,
                "pass_rate": rate,
                "groups": [g.to_dict() for g in groups],
                "flaky": flaky(run_id),
                "cache_misses": misses,
                "seconds": round(run_summary.seconds, 3),
            }
        )
    else:
        rate = _print_summary(run_id, repeat > 1)
        if explain_cache:
            for why, n in sorted(misses.items(), key=lambda kv: -kv[1]):
                click.echo(f"  cache miss x{n}: {why}")
    if run_summary.stopped == "budget":
        click.echo(
            "stopped at the budget: raise --max-cost and run the suite again to resume", err=True
        )
        raise click.exceptions.Exit(EXIT_BUDGET)
    if threshold is not None and rate < threshold:
        click.echo(f"pass rate {_pct(rate)} is below the threshold {_pct(threshold)}", err=True)
        raise click.exceptions.Exit(EXIT_BELOW_THRESHOLD)


@eval_group.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def compare(run_a: str, run_b: str, as_json: bool) -> None:
    """Compare two runs case by case: McNemar's exact test and a paired bootstrap."""
    from ..evals.results import compare as compare_runs
    from ..run.jobs import JobStore
    from ..store.logs import log_store

    jobs = JobStore(log_store())
    a, b = jobs.get(run_a, "eval")["id"], jobs.get(run_b, "eval")["id"]
    rows = compare_runs(a, b)
    if as_json:
        echo_json({"run_a": a, "run_b": b, "groups": rows})
        return
    click.echo(f"A = {a}, B = {b}")
    for r in rows:
        delta = (r["pass_rate_b"] - r["pass_rate_a"]) * 100
        verdict = "SIGNIFICANT" if r["significant"] else "not significant"
        click.echo(
            f"{r['prompt'][:40]} | {r['provider']}: pass {_pct(r['pass_rate_a'])} ->"
            f" {_pct(r['pass_rate_b'])} ({delta:+.1f} pts; {r['passed_only_in_a']} passed only"
            f" in A, {r['passed_only_in_b']} only in B; McNemar exact p={r['mcnemar_p']:.3g});"
            f" score {r['score_diff']:+.3f} (95% CI {r['score_diff_low']:+.3f} to"
            f" {r['score_diff_high']:+.3f}, p={r['score_p']:.3g}) over {r['pairs']} pairs:"
            f" {verdict} at 0.05"
        )


@eval_group.command(name="list")
@click.option("-n", "--count", default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_cmd(count: int, as_json: bool) -> None:
    """List eval runs, newest first."""
    import json

    from ..run.jobs import JobStore
    from ..store.logs import log_store

    runs = JobStore(log_store()).recent("eval", count)
    if as_json:
        echo_json(
            [
                {k: v for k, v in r.items() if k not in ("spec_json", "provider_batch_json")}
                for r in runs
            ]
        )
        return
    if not runs:
        click.echo("no eval runs yet")
        return
    rows = [["RUN", "STATUS", "SUITE", "MODELS", "CASES", "CREATED"]]
    for r in runs:
        spec = json.loads(r["spec_json"])
        rows.append(
            [
                r["id"],
                r["status"],
                Path(spec.get("suite") or "-").name,
                r["model"],
                f"{r['done'] + r['failed']}/{r['total']}",
                r["created_utc"],
            ]
        )
    print_table(rows, "llllrl")


@eval_group.command()
@click.argument("run_id", metavar="RUN", default="last")
@_outputs
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def show(run_id: str, outputs: tuple[Path, ...], as_json: bool) -> None:
    """Summarise RUN (default: the newest) again, and export it."""
    from ..evals.results import export, flaky, summary
    from ..run.jobs import JobStore
    from ..store.logs import log_store

    rid = JobStore(log_store()).get(run_id, "eval")["id"]
    for out in outputs:
        click.echo(f"wrote {export(rid, out)} cases to {out}", err=True)
    if as_json:
        echo_json({"run": rid, "groups": [g.to_dict() for g in summary(rid)], "flaky": flaky(rid)})
        return
    _print_summary(rid, True)
