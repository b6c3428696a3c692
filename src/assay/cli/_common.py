"""Helpers shared by the command modules: reading input and printing results."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ..errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DefaultRunGroup",
    "echo_json",
    "engine_options",
    "format_cost",
    "format_usage",
    "print_table",
    "read_stdin",
]


def engine_options(noun: str) -> Callable[[F], F]:
    """The shared engine's flags, for every command that runs on it (batch, eval)."""
    options = [
        click.option(
            "-j",
            "--concurrency",
            type=click.IntRange(1, 1024),
            default=8,
            show_default=True,
            help="Requests in flight at once (lowered on 429s, raised again after).",
        ),
        click.option(
            "--max-cost", type=click.FloatRange(min=0), help="Stop cleanly at this many $."
        ),
        click.option(
            "--timeout",
            "attempt_timeout",
            type=click.FloatRange(min=0.001),
            help=f"Seconds allowed per {noun} attempt.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(0, 50),
            default=4,
            show_default=True,
            help=f"Retries per {noun} on 429, 5xx, timeouts and dropped connections.",
        ),
        click.option(
            "--no-cache", is_flag=True, help=f"Send every {noun}, even ones answered before."
        ),
    ]

    def apply(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


class DefaultRunGroup(click.Group):
    """A group whose ``run`` subcommand is implied: ``assay batch T`` is ``assay batch run T``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def read_stdin() -> str:
    """Piped stdin as text, or "" when stdin is a terminal or empty."""
    stream = sys.stdin
    try:
        if stream is None or stream.isatty():
            return ""
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read stdin: {e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"cannot read stdin: not UTF-8 text (byte {e.start})") from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def format_cost(dollars: float | None) -> str:
    """``$0.000024``: enough significant digits for a fraction of a cent."""
    if dollars is None:
        return "cost unknown"
    if dollars == 0:
        return "$0"
    if dollars >= 1:
        return f"${dollars:,.2f}"
    return f"${dollars:.6f}" if dollars >= 1e-6 else f"${dollars:.2g}"


def format_usage(usage: dict[str, Any], cost: float | str | None = "") -> str:
    """``260 input, 92 output tokens, $0.000024``."""
    parts = [f"{usage.get('input_tokens') or 0} input"]
    if usage.get("cached_tokens"):
        parts.append(f"{usage['cached_tokens']} cached")
    if usage.get("cache_write_tokens"):
        parts.append(f"{usage['cache_write_tokens']} cache-write")
    parts.append(f"{usage.get('output_tokens') or 0} output")
    if usage.get("reasoning_tokens"):
        parts.append(f"{usage['reasoning_tokens']} reasoning")
    text = ", ".join(parts) + " tokens"
    if cost != "":
        text += ", " + format_cost(cost if not isinstance(cost, str) else None)
    return text


def print_table(rows: Sequence[Sequence[str]], align: str = "") -> None:
    """Columns padded to fit; ``align`` has an "l" or "r" per column (default: first l, rest r)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    align = align or "l" + "r" * (len(widths) - 1)
    for row in rows:
        cells = (
            cell.rjust(width) if how == "r" else cell.ljust(width)
            for cell, width, how in zip(row, widths, align, strict=True)
        )
        click.echo("  ".join(cells).rstrip())
