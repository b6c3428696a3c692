"""``assay logs``: show, search, count and delete logged responses."""

from __future__ import annotations

from typing import Any

import click

from ._common import echo_json, format_cost, format_usage, print_table

__all__ = ["logs"]


def _store() -> Any:
    from ..store.logs import log_store

    return log_store()


def _render(row: dict[str, Any]) -> str:
    head = f"# {row['datetime_utc']}  id {row['id']}  {row['model']}"
    if row["resolved_model"] and row["resolved_model"] != row["model"]:
        head += f" ({row['resolved_model']})"
    if row["conversation_id"]:
        head += f"  conversation {row['conversation_id']}"
    parts = [head, "", "## Prompt", "", row["prompt"], ""]
    if row["system"]:
        parts += ["## System", "", row["system"], ""]
    if row.get("attachments"):
        parts += ["## Attachments", ""]
        for a in row["attachments"]:
            size = f", {a['size']:,} bytes" if a["size"] is not None else ""
            parts.append(f"- {a['path'] or a['url']} ({a['type']}{size}, sha256 {a['id'][:12]})")
        parts.append("")
    parts += ["## Response", "", row["response"], ""]
    if row["error"]:
        parts += [f"Error: {row['error']}", ""]
    facts = [format_usage(row)]
    if row["total_ms"] is not None:
        facts.append(f"{row['total_ms']:.0f} ms")
    if row["ttft_ms"] is not None:
        facts.append(f"first token {row['ttft_ms']:.0f} ms")
    if row["tokens_per_s"]:
        facts.append(f"{row['tokens_per_s']:.1f} tokens/s")
    if row["cost_usd"] is not None:
        facts.append(format_cost(row["cost_usd"]))
    parts.append("_" + " · ".join(facts) + "_\n")
    return "\n".join(parts)


@click.group(invoke_without_command=True)
@click.option(
    "-n",
    "--count",
    "count",
    type=int,
    default=3,
    show_default=True,
    help="How many responses to show; 0 for all.",
)
@click.option("-m", "--model", help="Only responses from this model.")
@click.option("-q", "--query", "search", help="Full-text search over prompts and responses.")
@click.option("-c", "--current", is_flag=True, help="Only the most recent conversation.")
@click.option("--cid", "--conversation", "cid", help="Only this conversation.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
@click.pass_context
def logs(
    ctx: click.Context,
    count: int,
    model: str | None,
    search: str | None,
    current: bool,
    cid: str | None,
    as_json: bool,
) -> None:
    """Show, search, count and delete logged responses.

    With no subcommand, shows the newest responses, oldest first.
    """
    if ctx.invoked_subcommand is not None:
        return
    if count < 0:
        raise click.BadParameter("must be 0 or more", param_hint="-n")
    store = _store()
    if current and not cid:
        cid = store.latest_conversation_id()
        if cid is None:
            return
    rows = store.query(count or None, model=model, search=search, conversation_id=cid)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(_render(row))


@logs.command(name="path")
def path() -> None:
    """Print the path of the log database."""
    from ..store.db import db_path

    click.echo(str(db_path()))


@logs.command(name="rm")
@click.argument("ids", nargs=-1, required=True, type=int)
def rm(ids: tuple[int, ...]) -> None:
    """Delete logged responses by id."""
    deleted = _store().delete(list(ids))
    missing = [i for i in ids if i not in deleted]
    click.echo(f"deleted {len(deleted)} response{'s' if len(deleted) != 1 else ''}")
    if missing:
        click.echo(f"assay: error: no response with id {', '.join(map(str, missing))}", err=True)
        raise SystemExit(1)


def _cost_cell(row: dict[str, Any]) -> str:
    text = format_cost(row["cost_usd"]) if row["cost_usd"] is not None else "-"
    return text + (f" ({row['unpriced']} unpriced)" if row.get("unpriced") else "")


@logs.command(name="stats")
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON.")
def stats(as_json: bool) -> None:
    """Count, tokens, time and cost per model, and cost per day."""
    store = _store()
    rows = store.stats()
    days = store.stats_by_day()
    if as_json:
        echo_json({"models": rows, "days": days})
        return
    if not rows:
        click.echo("no responses logged yet")
        return
    header = ("model", "responses", "input", "output", "total s", "tokens/s", "errors", "cost")
    print_table(
        [header]
        + [
            (
                r["model"],
                str(r["responses"]),
                str(r["input_tokens"] or 0),
                str(r["output_tokens"] or 0),
                f"{r['total_s'] or 0:.1f}",
                f"{r['avg_tokens_per_s']:.1f}" if r["avg_tokens_per_s"] else "-",
                str(r["errors"]),
                _cost_cell(r),
            )
            for r in rows
        ]
    )
    click.echo()
    print_table(
        [("day (UTC)", "model", "responses", "input", "output", "cost")]
        + [
            (
                d["day"],
                d["model"],
                str(d["responses"]),
                str(d["input_tokens"] or 0),
                str(d["output_tokens"] or 0),
                _cost_cell(d),
            )
            for d in days
        ]
    )
