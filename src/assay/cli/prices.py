"""``assay prices``: what each model charges per million tokens, and where the figure comes from."""

from __future__ import annotations

from typing import Any

import click

from ._common import echo_json, print_table

__all__ = ["prices"]


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:g}"


@click.group(invoke_without_command=True)
@click.option("-m", "--model", "model_id", help="Only this model.")
@click.option("--json", "as_json", is_flag=True, help="Print prices as JSON.")
@click.pass_context
def prices(ctx: click.Context, model_id: str | None, as_json: bool) -> None:
    """Show what models charge per million tokens, and where each price comes from.

    Prices come from your prices.yaml, then genai-prices' data (bundled, or
    downloaded by 'assay prices update'). Local models are free unless priced.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..prices import price_for
    from ..registry import all_models, resolve

    specs = [resolve(model_id)[1]] if model_id else [s for _, s in all_models()]
    rows: list[dict[str, Any]] = []
    for spec in specs:
        price = price_for(spec)
        source = "unknown: add it to prices.yaml"
        if price is not None:
            source = price.source + (f"; {price.note}" if price.note else "")
        rows.append(
            {
                "model": spec.id,
                "input_per_m": price.input if price else None,
                "output_per_m": price.output if price else None,
                "cache_read_per_m": price.cache_read if price else None,
                "cache_write_per_m": price.cache_write if price else None,
                "source": source,
            }
        )
    if as_json:
        echo_json(rows)
        return
    header = ("model", "input/M", "output/M", "cached/M", "cache write/M", "source")
    table = [header] + [
        (
            r["model"],
            _money(r["input_per_m"]),
            _money(r["output_per_m"]),
            _money(r["cache_read_per_m"]),
            _money(r["cache_write_per_m"]),
            r["source"],
        )
        for r in rows
    ]
    print_table(table, align="lrrrrl")


@prices.command(name="update")
@click.option("--url", default=None, help="Where to download genai-prices data from.")
def update(url: str | None) -> None:
    """Download the latest genai-prices data (the only time assay fetches prices)."""
    from ..prices import DATA_URL, prices_data_path, update_prices

    count = update_prices(url or DATA_URL)
    click.echo(f"saved prices for {count} providers to {prices_data_path()}")
