"""Write docs/cli.md from the commands' own --help text (run after changing a command).

.venv/bin/python scripts/cli_docs.py          # rewrite docs/cli.md
.venv/bin/python scripts/cli_docs.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from assay.cli import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def walk(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()) -> list[tuple]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += walk(command, ctx, (*prefix, name))
    return found


def render() -> str:
    parts = [
        "# Command reference",
        "",
        "Generated from `--help` by `scripts/cli_docs.py`; a test keeps it current.",
        "",
    ]
    for path in [(), *walk(cli, click.Context(cli))]:
        result = CliRunner().invoke(cli, [*path, "--help"], prog_name="assay", terminal_width=100)
        title = " ".join(("assay", *path))
        parts += [f"## {title}", "", "```", result.output.rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if DOC.read_text() == text else 1)
    DOC.write_text(text)
