"""Costs, checked against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import pytest

import assay
from assay.engine import log_store
from assay.errors import UsageError
from assay.prices import Price, cost, cost_from_price, price_for
from assay.registry import resolve
from assay.types import Usage


def spec(name: str):  # type: ignore[no-untyped-def]
    return resolve(name)[1]


def write_prices(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "prices.yaml").write_text(text)


def test_cost_from_price_counts_cached_reads_and_writes() -> None:
    price = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
    usage = Usage(
        input_tokens=10_000, cached_tokens=6_000, cache_write_tokens=2_000, output_tokens=1_000
    )
    # fresh 2,000 x $3 + read 6,000 x $0.30 + written 2,000 x $3.75 + out 1,000 x $15, per M
    expected = (2_000 * 3.0 + 6_000 * 0.3 + 2_000 * 3.75 + 1_000 * 15.0) / 1e6
    assert cost_from_price(price, usage) == pytest.approx(expected)
    assert cost_from_price(price, usage, batch_discount=0.5) == pytest.approx(expected / 2)


def test_user_prices_file_prices_every_logged_response(assay_home: Path) -> None:
    write_prices(assay_home, "echo:\n  input: 2.0\n  output: 10.0\n  cache_read: 0.5\n")
    response = assay.get_model("echo").prompt(
        "hi", input_tokens=1000, cached_tokens=400, output_tokens=200
    )
    # (600 x $2 + 400 x $0.50 + 200 x $10) / 1M
    assert response.cost == pytest.approx(0.0034)
    row = log_store().query(1)[0]
    assert row["cost_usd"] == pytest.approx(0.0034)
    assert row["price_source"].endswith("prices.yaml")


def test_local_models_are_free_unless_priced(assay_home: Path) -> None:
    assert cost(spec("smollm2"), Usage(input_tokens=10, output_tokens=10)) == (
        0.0,
        "free: runs on this machine",
    )
    write_prices(assay_home, "smollm2: {input: 1, output: 1}\n")
    assert cost(spec("smollm2"), Usage(input_tokens=10, output_tokens=10))[0] == pytest.approx(
        20 / 1e6
    )


def test_bundled_genai_prices_for_openai() -> None:
    # genai-prices 0.2.3 bundled data: gpt-4o-mini $0.15 in, $0.60 out, $0.075 cached, per M
    price = price_for(spec("gpt-4o-mini"))
    assert price is not None
    assert (price.input, price.output, price.cache_read) == (0.15, 0.6, 0.075)
    assert "genai-prices" in price.source and "bundled" in price.source
    dollars, _ = cost(
        spec("gpt-4o-mini"), Usage(input_tokens=1000, cached_tokens=200, output_tokens=500)
    )
    assert dollars == pytest.approx((800 * 0.15 + 200 * 0.075 + 500 * 0.6) / 1e6)
    batch, _ = cost(
        spec("gpt-4o-mini"), Usage(input_tokens=1_000_000, output_tokens=1_000_000), batch=True
    )
    assert batch == pytest.approx((0.15 + 0.6) / 2)


def test_unknown_price_is_none_not_a_guess(assay_home: Path) -> None:
    (assay_home).mkdir(parents=True, exist_ok=True)
    (assay_home / "models.yaml").write_text(
        "- alias: mystery\n  base_url: https://llm.example.com/v1\n  model: mystery-9000\n"
    )
    assert cost(spec("mystery"), Usage(input_tokens=5, output_tokens=5)) == (None, None)
    assert price_for(spec("mystery")) is None


def test_self_hosted_servers_are_free(assay_home: Path) -> None:
    (assay_home).mkdir(parents=True, exist_ok=True)
    (assay_home / "models.yaml").write_text(
        "- alias: mine\n  base_url: http://127.0.0.1:8000/v1\n  model: gpt-4o\n"
    )
    assert cost(spec("mine"), Usage(input_tokens=5, output_tokens=5))[0] == 0.0


def test_bad_prices_file_is_a_clear_error(assay_home: Path) -> None:
    write_prices(assay_home, "echo:\n  input: cheap\n  output: 1\n")
    with pytest.raises(UsageError, match="must be numbers"):
        price_for(spec("echo"))
    write_prices(assay_home, "echo:\n  input: 1\n")
    with pytest.raises(UsageError, match="needs 'input' and 'output'"):
        price_for(spec("echo"))
    # ...and a response is still logged, marked as not priced
    response = assay.get_model("echo").prompt("hi")
    assert response.cost is None
    assert log_store().query(1)[0]["price_source"].startswith("not priced:")
