"""``assay models``: list models, set the default, add GGUF files, show options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import echo_json, print_table

__all__ = ["models"]


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List models, set the default, and add GGUF files.

    With no subcommand, lists every model with its provider, context length
    and whether its key is set. The default model is marked with *.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..keys import get_key
    from ..registry import all_models
    from ..settings import Settings

    settings = Settings()
    default = settings.aliases.get(settings.default_model, settings.default_model)
    aliases: dict[str, list[str]] = {}
    for alias, target in settings.aliases.items():
        aliases.setdefault(target, []).append(alias)
    rows: list[dict[str, Any]] = []
    for _, spec in all_models():
        key_state = "-"
        if spec.key_name:
            found = get_key(spec.key_name, spec.key_env)
            key_state = "set" if found else f"missing ({spec.key_name})"
        rows.append(
            {
                "id": spec.id,
                "provider": spec.provider,
                "context_length": spec.context_length,
                "key": key_state,
                "aliases": [*spec.aliases, *aliases.get(spec.id, [])],
                "default": spec.id == default,
                "description": spec.description,
            }
        )
    if as_json:
        echo_json(rows)
        return
    header = ("", "model", "provider", "context", "key", "aliases")
    table = [header] + [
        (
            "*" if r["default"] else "",
            r["id"],
            r["provider"],
            str(r["context_length"] or "-"),
            r["key"],
            ", ".join(r["aliases"]),
        )
        for r in rows
    ]
    print_table(table, align="llllll")


@models.command(name="default")
@click.argument("name", required=False)
def default(name: str | None) -> None:
    """Show the default model, or set it to NAME."""
    from ..registry import resolve
    from ..settings import Settings

    settings = Settings()
    if name is None:
        click.echo(settings.default_model)
        return
    _, spec = resolve(name, settings)  # unknown names are an error, not a silent setting
    settings.default_model = name
    settings.save()
    click.echo(f"default model: {name}" + (f" ({spec.id})" if spec.id != name else ""))


@models.command(name="add-gguf")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="The model id to use with -m.")
def add_gguf(path: Path, name: str) -> None:
    """Add a local GGUF file as a model."""
    from ..providers.local import add_gguf as add

    spec = add(path, name)
    ctx = f", context {spec.context_length}" if spec.context_length else ""
    click.echo(f"added {spec.id}: {spec.description}{ctx}")


@models.command(name="options")
@click.argument("name", required=False)
def options(name: str | None) -> None:
    """List the -o options a model accepts."""
    from ..registry import resolve

    provider, spec = resolve(name)
    click.echo(f"{spec.id} ({provider.name}) accepts:")
    for option in provider.options:
        click.echo(f"  {option.name:<18} {option.type.__name__:<6} {option.help}")
