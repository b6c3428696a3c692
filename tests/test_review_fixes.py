"""Regression tests for problems found in review of the hosted providers, prices and attachments."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import assay
from assay.attachments import Attachment, sniff
from assay.cli import cli
from assay.estimate import _openai_patches, image_tokens
from assay.prices import cost
from assay.providers.anthropic import AnthropicBackend, parse_anthropic_usage
from assay.registry import resolve
from assay.store.logs import LogRecord, LogStore, log_store
from assay.types import Message, Request, Usage


def spec(name: str):  # type: ignore[no-untyped-def]
    return resolve(name)[1]


def test_a_pricing_failure_never_loses_the_response(monkeypatch: pytest.MonkeyPatch) -> None:
    import assay.prices

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("cache_read_tokens (800) cannot exceed input_tokens (0)")

    monkeypatch.setattr(assay.prices, "cost", broken)
    response = assay.get_model("echo").prompt("still here")
    assert response.text() == "still here" and response.cost is None
    assert log_store().query(1)[0]["price_source"].startswith("not priced: cache_read_tokens")


def test_inconsistent_usage_is_clamped_not_an_error() -> None:
    dollars, _ = cost(
        spec("gpt-4o-mini"), Usage(input_tokens=0, cached_tokens=800, output_tokens=10)
    )
    assert dollars == pytest.approx(10 * 0.6 / 1e6)


@pytest.mark.parametrize(
    ("brand", "kind"),
    [
        (b"heic", "image/heic"),
        (b"avif", "image/avif"),
        (b"qt  ", "video/quicktime"),
        (b"isom", "video/mp4"),
        (b"M4A ", "audio/mp4"),
    ],
)
def test_iso_media_brands_are_told_apart(brand: bytes, kind: str) -> None:
    assert sniff(b"\x00\x00\x00\x18ftyp" + brand + b"\x00" * 12) == kind


def test_unknown_text_files_are_text(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("name: assay\nvalue: 3\n")
    assert Attachment.from_arg(str(config)).type in (
        "text/plain",
        "application/yaml",
        "application/x-yaml",
    )
    blob = tmp_path / "blob"
    blob.write_bytes(b"plain words, no extension")
    assert Attachment.from_arg(str(blob)).type == "text/plain"
    result = CliRunner().invoke(
        cli, ["cost", "estimate", "-m", "gpt-4o", "Read {{content}}", str(blob), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["items"] == 1


def test_stdin_attachment_only_once() -> None:
    result = CliRunner().invoke(
        cli,
        ["-m", "gpt-4o", "--key", "k", "-a", "-", "--at", "-", "image/png", "x"],
        input=b"\x89PNG\r\n\x1a\n",
    )
    assert result.exit_code == 2
    assert result.stderr == "assay: error: stdin can hold only one attachment: give '-' once\n"


def test_anthropic_later_usage_events_do_not_erase_cache_counts() -> None:
    usage = parse_anthropic_usage(
        {"input_tokens": 10, "cache_read_input_tokens": 5000, "output_tokens": 1}
    )
    parse_anthropic_usage(
        {"input_tokens": 10, "cache_read_input_tokens": None, "output_tokens": 20}, usage
    )
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (5010, 5000, 20)
    parse_anthropic_usage(None, usage)  # a null usage is ignored, not a crash
    assert usage.output_tokens == 20


def test_anthropic_caches_only_the_newest_attachments() -> None:
    png = Attachment(type="image/png", content=b"\x89PNG\r\n\x1a\n")
    turns = []
    for i in range(5):
        turns += [Message("user", f"look {i}", (png,)), Message("assistant", "ok")]
    body = AnthropicBackend("https://x", "m").body(
        Request(
            (Message("system", "sys"), *turns, Message("user", "and this", (png,))),
            {"cache": "both"},
        )
    )
    marks = json.dumps(body).count("cache_control")
    assert marks == 2  # the system prompt and the last message's image: within Anthropic's 4


def test_image_formulas_match_the_documented_examples() -> None:
    assert _openai_patches(1800, 2400) == 1452  # OpenAI's worked example
    assert _openai_patches(1024, 1024) == 1024
    tokens, _ = image_tokens(spec("claude-sonnet-4-5"), 1568, 1568)
    assert tokens == 1590  # scaled to ~1.15 MP, like 1092x1092
    assert image_tokens(spec("gpt-5"), 1024, 1024)[0] == 70 + 140 * 4
    assert image_tokens(spec("gpt-4o"), 1024, 1024)[0] == 85 + 170 * 4


def test_stats_counts_are_integers_and_deletes_drop_unused_attachments(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    png = Attachment(type="image/png", content=b"\x89PNG\r\n\x1a\nsecret")
    first = store.insert(
        LogRecord(model="m", provider="p", prompt="a", input_tokens=3, attachments=(png,))
    )
    second = store.insert(
        LogRecord(model="m", provider="p", prompt="b", input_tokens=4, attachments=(png,))
    )
    assert store.stats()[0]["input_tokens"] == 7 and isinstance(
        store.stats()[0]["input_tokens"], int
    )
    count = "SELECT COUNT(*) FROM attachments"
    store.delete([first])
    assert store.conn.execute(count).fetchone()[0] == 1  # still used by the second response
    store.delete([second])
    assert store.conn.execute(count).fetchone()[0] == 0


def test_hosted_apis_behind_a_local_proxy_still_cost_money(
    monkeypatch: pytest.MonkeyPatch, assay_home: Path
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:4000")
    dollars, source = cost(spec("claude-sonnet-4-5"), Usage(input_tokens=1000, output_tokens=0))
    assert dollars == pytest.approx(1000 * 3 / 1e6) and "Anthropic" in (source or "")
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "prices.yaml").write_text("echo: {input: -1, output: 1}\n")
    with pytest.raises(assay.AssayError, match="finite and not negative"):
        cost(spec("echo"), Usage(input_tokens=1))


def test_per_type_limits_and_empty_replies_in_history(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(6 * 1024 * 1024)
    with pytest.raises(assay.AssayError, match="at most 5,242,880 bytes"):
        assay.get_model("claude-sonnet-4-5", key="k").prompt(
            "x", attachments=[Attachment.from_arg(str(big))]
        )
    model = assay.get_model("echo")
    conversation = model.conversation()
    conversation.prompt("first", reply="").text()
    conversation.prompt("second").text()
    again = model.conversation(conversation.id)
    assert [m.content for m in again.messages] == ["second", "second"]
    assert [m.content for m in conversation.messages] == ["second", "second"]


def test_prices_update_refuses_an_empty_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from assay import prices

    def fake_get(url: str, **kwargs: object) -> httpx.Response:
        return httpx.Response(200, json=[], request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    with pytest.raises(assay.AssayError, match="returned no providers"):
        prices.update_prices("https://example.invalid/data.json")
    assert not prices.prices_data_path().exists()
