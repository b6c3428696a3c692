"""``assay cost estimate``: price a job before a cent is spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import echo_json, format_cost

__all__ = ["cost"]


@click.group()
def cost() -> None:
    """Price a job before it runs."""


def _n(value: float) -> str:
    return f"{value:,.0f}"


@cost.command(name="estimate")
@click.argument("template", required=False)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("-m", "--model", "model_id", help="Model id or alias.")
@click.option("-s", "--system", help="System prompt sent with every item.")
@click.option("--items", type=click.IntRange(min=1), help="How many items (counts form).")
@click.option("--input-tokens", type=click.IntRange(min=0), help="Input tokens per item.")
@click.option(
    "--output-tokens",
    type=click.IntRange(min=0),
    help="Output tokens per item (real-inputs form: default 100, an assumption).",
)
@click.option("--input-price", type=click.FloatRange(min=0), help="$ per million input tokens.")
@click.option("--output-price", type=click.FloatRange(min=0), help="$ per million output tokens.")
@click.option("--batch", is_flag=True, help="Price at the provider's batch rate.")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
def estimate(
    template: str | None,
    files: tuple[Path, ...],
    model_id: str | None,
    system: str | None,
    items: int | None,
    input_tokens: int | None,
    output_tokens: int | None,
    input_price: float | None,
    output_price: float | None,
    batch: bool,
    as_json: bool,
) -> None:
    """Estimate what a job will cost, from counts or from the real inputs.

    \b
    From counts:
      assay cost estimate -m gpt-4o-mini --items 68000 --input-tokens 260 --output-tokens 100
    From real inputs (images are attached, {{path}} {{name}} {{content}} are filled in):
      assay cost estimate -m gemini-2.5-flash 'Describe {{path}}' photos/*.jpg
    """
    from ..costing import estimate_counts, estimate_files, resolve_price
    from ..errors import UsageError
    from ..registry import resolve

    _, spec = resolve(model_id)
    price = resolve_price(spec, input_price, output_price)
    if template is None:
        if items is None or input_tokens is None or output_tokens is None:
            raise UsageError(
                "give --items, --input-tokens and --output-tokens, or a template and files"
            )
        result = estimate_counts(spec, price, items, input_tokens, output_tokens, batch)
    else:
        if not files:
            raise UsageError("give the files to estimate after the template")
        result = estimate_files(spec, price, template, files, system, output_tokens, batch)
    if as_json:
        echo_json(result)
        return
    _print(result)


def _print(r: dict[str, Any]) -> None:
    click.echo(f"Estimate for {r['model']}" + (" (batch)" if r["batch"] else ""))
    for item in r.get("per_item", [])[:20]:
        click.echo(
            f"  {item['name']}: {_n(item['input_tokens'])} input + "
            f"{_n(item['output_tokens'])} output tokens = {format_cost(item['cost_usd'])}"
        )
    if len(r.get("per_item", [])) > 20:
        click.echo(f"  ... and {len(r['per_item']) - 20} more")
    click.echo(f"  items:        {_n(r['items'])}")
    click.echo(
        f"  per item:     {_n(r['input_tokens_per_item'])} input + "
        f"{_n(r['output_tokens_per_item'])} output tokens = "
        f"{format_cost(r['cost_per_item_usd'])}"
    )
    click.echo(f"  total tokens: {_n(r['input_tokens'])} input, {_n(r['output_tokens'])} output")
    click.echo(f"  total:        {format_cost(r['total_usd'])}")
    click.echo("Assumptions:")
    for line in r["assumptions"]:
        click.echo(f"  - {line}")
