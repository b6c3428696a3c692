"""The ``assay`` command line: a thin layer that turns flags into library calls.

Command modules are imported only when their command runs, so ``assay
--help`` imports click and nothing heavy. ``assay PROMPT`` with no command
name runs ``assay prompt``, as ``llm`` does.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import __version__

__all__ = ["COMMANDS", "cli", "main"]

# name -> (module, attribute, short help). The short help is kept here so that
# `assay --help` need not import every command; a test checks it matches.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "prompt": ("prompt", "prompt", "Send a prompt to a model and stream the response."),
    "chat": ("chat", "chat", "Chat interactively with a model kept loaded in memory."),
    "logs": ("logs", "logs", "Show, search, count and delete logged responses."),
    "models": ("models", "models", "List models, set the default, and add GGUF files."),
    "aliases": ("aliases", "aliases", "Manage short names for models."),
    "keys": ("keys", "keys", "Manage API keys (stored with mode 0600)."),
    "prices": (
        "prices",
        "prices",
        "Show what models charge per million tokens, and where each price comes from.",
    ),
    "cost": ("cost", "cost", "Price a job before it runs."),
    "eval": (
        "eval",
        "eval_group",
        "Run eval suites (promptfoo-compatible YAML) and compare runs with paired tests.",
    ),
    "batch": (
        "batch",
        "batch",
        "Run one prompt template over many inputs: concurrent, resumable, within a budget.",
    ),
    "serve": (
        "serve",
        "serve",
        "Serve models over an OpenAI-compatible API, logging and pricing every call.",
    ),
    "completion": ("completion", "completion", "Print the shell completion script."),
}
DEFAULT_COMMAND = "prompt"


class AssayGroup(click.Group):
    """Lazy subcommands, a default command, and one-line errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        import importlib

        module = importlib.import_module(f"{__name__}.{entry[0]}")
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first is None:
            if not sys.stdin.isatty():
                args = [DEFAULT_COMMAND]
        elif first not in COMMANDS and first not in ("--help", "-h", "--version"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from ..errors import AssayError

        try:
            return super().invoke(ctx)
        except AssayError as e:
            if os.environ.get("ASSAY_DEBUG") == "1":
                raise
            click.echo(f"assay: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("assay: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            ctx.exit(141)


@click.group(
    cls=AssayGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=False,
)
@click.version_option(__version__, prog_name="assay")
def cli() -> None:
    """Prompt any model, log every response, and measure instead of guess.

    \b
    assay 'Name three colours'              the default model (bundled SmolLM2)
    cat notes.txt | assay 'summarise'       stdin and a prompt together
    assay -m gpt-4o-mini -s 'Be terse' hi   another model, a system prompt
    assay -c 'and another?'                 continue the last conversation
    assay logs -q colours                   search what was logged
    """


def main() -> None:
    """Console entry point: one line on stderr and a non-zero exit for every user error."""
    try:
        code = cli.main(prog_name="assay", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("assay: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())  # bare `assay` at a terminal: help, not an error
        sys.exit(0)
    except click.ClickException as e:
        hint = ""
        if isinstance(e, click.UsageError) and e.ctx is not None:
            hint = f" (see '{e.ctx.command_path} --help')"
        click.echo(f"assay: error: {e.format_message()}{hint}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:
        if os.environ.get("ASSAY_DEBUG") == "1":
            raise
        click.echo(
            f"assay: internal error: {type(e).__name__}: {e} (ASSAY_DEBUG=1 shows a traceback)",
            err=True,
        )
        sys.exit(70)
    sys.exit(code if isinstance(code, int) else 0)
