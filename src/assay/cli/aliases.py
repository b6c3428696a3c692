"""``assay aliases``: short names for models."""

from __future__ import annotations

import click

from ._common import echo_json

__all__ = ["aliases"]


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print aliases as JSON.")
@click.pass_context
def aliases(ctx: click.Context, as_json: bool) -> None:
    """Manage short names for models. With no subcommand, lists them."""
    if ctx.invoked_subcommand is not None:
        return
    from ..settings import Settings

    table = Settings().aliases
    if as_json:
        echo_json(table)
        return
    for alias, target in sorted(table.items()):
        click.echo(f"{alias}: {target}")


@aliases.command(name="set")
@click.argument("alias")
@click.argument("model")
def set_(alias: str, model: str) -> None:
    """Make ALIAS a name for MODEL."""
    from ..registry import resolve
    from ..settings import Settings

    settings = Settings()
    _, spec = resolve(model, settings)
    settings.aliases[alias] = spec.id
    settings.save()
    click.echo(f"{alias}: {spec.id}")


@aliases.command(name="remove")
@click.argument("alias")
def remove(alias: str) -> None:
    """Remove ALIAS."""
    from ..errors import UsageError
    from ..settings import Settings

    settings = Settings()
    if alias not in settings.aliases:
        raise UsageError(f"no alias {alias!r}")
    del settings.aliases[alias]
    settings.save()
