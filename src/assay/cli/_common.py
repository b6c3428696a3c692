"""Helpers shared by the command modules: reading input and printing results."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import UsageError

__all__ = ["echo_json", "format_usage", "read_stdin"]


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


def format_usage(usage: dict[str, Any]) -> str:
    parts = [f"{usage.get('input_tokens') or 0} input"]
    if usage.get("cached_tokens"):
        parts.append(f"{usage['cached_tokens']} cached")
    parts.append(f"{usage.get('output_tokens') or 0} output")
    if usage.get("reasoning_tokens"):
        parts.append(f"{usage['reasoning_tokens']} reasoning")
    return ", ".join(parts) + " tokens"


def stdout_isatty() -> bool:
    return sys.stdout.isatty()
