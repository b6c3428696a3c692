"""``assay cost estimate`` as a library: price a job from counts or from its real inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError
from .prices import Price, cost_from_price, price_for
from .types import ModelSpec, Usage

__all__ = ["DEFAULT_OUTPUT_TOKENS", "estimate_counts", "estimate_files", "resolve_price"]

DEFAULT_OUTPUT_TOKENS = 100


def resolve_price(spec: ModelSpec, input_price: float | None, output_price: float | None) -> Price:
    """Prices given on the command line, else the model's known price; unknown is an error."""
    if (input_price is None) != (output_price is None):
        raise UsageError("give both --input-price and --output-price, or neither")
    if input_price is not None and output_price is not None:
        return Price(input_price, output_price, source="given on the command line")
    price = price_for(spec)
    if price is None:
        raise UsageError(
            f"no price is known for {spec.id}: give --input-price and --output-price"
            " ($ per million tokens), or add it to prices.yaml"
        )
    return price


def _money(value: float) -> str:
    return f"${value:g}"


def _price_line(price: Price) -> str:
    line = (
        f"prices: {_money(price.input)} per M input, {_money(price.output)} per M output "
        f"({price.source})"
    )
    return line + (f"; {price.note}" if price.note else "")


def _dollars(price: Price, input_tokens: int, output_tokens: int, batch: bool) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return cost_from_price(price, usage, batch_discount=0.5 if batch else 1.0)


def estimate_counts(
    spec: ModelSpec,
    price: Price,
    items: int,
    input_tokens: int,
    output_tokens: int,
    batch: bool = False,
) -> dict[str, Any]:
    assumptions = [
        _price_line(price),
        f"{input_tokens:,} input and {output_tokens:,} output tokens per item, as given",
    ]
    return _result(
        spec, price, batch, items, input_tokens * items, output_tokens * items, assumptions
    )


def _result(
    spec: ModelSpec,
    price: Price,
    batch: bool,
    items: int,
    input_tokens: int,
    output_tokens: int,
    assumptions: list[str],
    per_item: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    assumptions = [*assumptions, "no prompt caching"]
    if batch:
        assumptions.append("batch processing at half the standard rate")
    total = _dollars(price, input_tokens, output_tokens, batch)
    result: dict[str, Any] = {
        "model": spec.id,
        "batch": batch,
        "items": items,
        "input_tokens_per_item": round(input_tokens / items),
        "output_tokens_per_item": round(output_tokens / items),
        "cost_per_item_usd": total / items,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_usd": total,
        "assumptions": assumptions,
    }
    if per_item is not None:
        result["per_item"] = per_item
    return result


def estimate_files(
    spec: ModelSpec,
    price: Price,
    template: str,
    files: Sequence[Path],
    system: str | None,
    output_tokens: int | None,
    batch: bool = False,
) -> dict[str, Any]:
    """Count each file's prompt (and attachment) with the model's tokenizer and formulas."""
    from .attachments import Attachment
    from .estimate import count_attachment, count_text
    from .templates import render

    out = DEFAULT_OUTPUT_TOKENS if output_tokens is None else output_tokens
    per_item: list[dict[str, Any]] = []
    methods: set[str] = set()
    for path in files:
        attachment = Attachment.from_arg(str(path))
        values = {"path": str(path), "name": path.name}
        is_text = attachment.type.startswith("text/") or attachment.type == "application/json"
        if is_text:
            values["content"] = (attachment.content or b"").decode("utf-8", "replace")
        text = count_text(spec, render(template, values), system)
        methods.add(f"text: {text.method}")
        n = text.tokens
        if not is_text:
            extra = count_attachment(spec, attachment)
            methods.add(f"{attachment.type.split('/')[0]}s: {extra.method.split(';')[0]}")
            n += extra.tokens
        per_item.append(
            {
                "name": path.name,
                "input_tokens": n,
                "output_tokens": out,
                "cost_usd": _dollars(price, n, out, batch),
            }
        )
    total_in = sum(i["input_tokens"] for i in per_item)
    assumptions = [
        _price_line(price),
        *sorted(methods),
        (
            f"{out:,} output tokens per item, as given"
            if output_tokens is not None
            else f"{out:,} output tokens per item: an assumption (set --output-tokens)"
        ),
    ]
    return _result(
        spec, price, batch, len(per_item), total_in, out * len(per_item), assumptions, per_item
    )
