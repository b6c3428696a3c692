"""``assay keys``: API keys, stored with mode 0600. Environment variables win."""

from __future__ import annotations

import click

__all__ = ["keys"]


@click.group(invoke_without_command=True)
@click.pass_context
def keys(ctx: click.Context) -> None:
    """Manage API keys (stored with mode 0600).

    A key named NAME is also read from the environment variable NAME_API_KEY
    (OPENAI_API_KEY for openai), which takes precedence over the file.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@keys.command(name="set")
@click.argument("name")
@click.option("--value", help="The key (default: prompt for it, or read stdin).")
def set_(name: str, value: str | None) -> None:
    """Store the key called NAME."""
    import sys

    from ..keys import set_key

    if value is None:
        if sys.stdin.isatty():
            value = click.prompt("Enter key", hide_input=True)
        else:
            value = sys.stdin.readline()
    set_key(name, (value or "").strip())
    click.echo(f"key {name!r} saved")


@keys.command(name="get")
@click.argument("name")
def get(name: str) -> None:
    """Print the key called NAME."""
    from ..errors import MissingKeyError
    from ..keys import get_key

    value = get_key(name)
    if value is None:
        raise MissingKeyError(f"no key named {name!r}")
    click.echo(value)


@keys.command(name="list")
def list_() -> None:
    """List the names of stored keys."""
    from ..keys import list_keys

    for name in list_keys():
        click.echo(name)


@keys.command(name="path")
def path() -> None:
    """Print the path of the keys file."""
    from ..keys import keys_path

    click.echo(str(keys_path()))
