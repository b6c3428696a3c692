"""`assay cost estimate` and `assay prices`, checked against hand-computed values."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from assay import prices
from assay.cli import cli


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, (result.output, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_the_68000_photo_example_costs_168() -> None:
    out = run(
        "cost",
        "estimate",
        "-m",
        "gemini-1.5-flash-8b",
        "--items",
        "68000",
        "--input-tokens",
        "260",
        "--output-tokens",
        "100",
        "--input-price",
        "0.0375",
        "--output-price",
        "0.15",
    )
    assert "total:        $1.68\n" in out
    assert "17,680,000 input, 6,800,000 output" in out
    assert "given on the command line" in out
    data = json.loads(
        run(
            "cost",
            "estimate",
            "-m",
            "gemini-1.5-flash-8b",
            "--items",
            "68000",
            "--input-tokens",
            "260",
            "--output-tokens",
            "100",
            "--input-price",
            "0.0375",
            "--output-price",
            "0.15",
            "--json",
        )
    )
    # 68,000 x (260 x 0.0375 + 100 x 0.15) / 1M = 1.683
    assert data["total_usd"] == pytest.approx(1.683)


def test_estimate_from_counts_with_known_prices_and_batch() -> None:
    data = json.loads(
        run(
            "cost",
            "estimate",
            "-m",
            "gpt-4o-mini",
            "--items",
            "1000",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "500",
            "--json",
        )
    )
    # genai-prices 0.2.3: $0.15 in, $0.60 out per M
    assert data["total_usd"] == pytest.approx(1000 * (1000 * 0.15 + 500 * 0.6) / 1e6)
    batch = json.loads(
        run(
            "cost",
            "estimate",
            "-m",
            "gpt-4o-mini",
            "--items",
            "1000",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "500",
            "--batch",
            "--json",
        )
    )
    assert batch["total_usd"] == pytest.approx(data["total_usd"] / 2)


def test_estimate_from_real_images_uses_each_providers_formula(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (1024, 1024), (10, 200, 30)).save(photo)
    small = tmp_path / "small.png"
    Image.new("RGB", (300, 200), (10, 200, 30)).save(small)
    files = [str(photo), str(small)]
    price = ["--input-price", "1", "--output-price", "2", "--output-tokens", "10", "--json"]
    gpt = json.loads(run("cost", "estimate", "-m", "gpt-4o", "Describe {{name}}", *files, *price))
    # 1024x1024 -> 768x768 -> 4 tiles: 85 + 4 x 170 = 765; 300x200 -> 1 tile: 255
    text = [i["input_tokens"] for i in gpt["per_item"]]
    assert text[0] - 765 == text[1] - 255 and text[0] - 765 > 7  # same text part both times
    gemini = json.loads(
        run("cost", "estimate", "-m", "gemini-2.5-flash", "Describe {{name}}", *files, *price)
    )
    g = [i["input_tokens"] for i in gemini["per_item"]]
    # 1024x1024 -> 2x2 tiles of 768 = 4 x 258; 300x200 -> 258; text ~ len/4
    assert g[0] - 4 * 258 == g[1] - 258
    claude = json.loads(
        run("cost", "estimate", "-m", "claude-sonnet-4-5", "Describe {{name}}", *files, *price)
    )
    c = [i["input_tokens"] for i in claude["per_item"]]
    assert c[0] - 1399 == c[1] - 80  # ceil(1024*1024/750), ceil(300*200/750)
    assert claude["total_usd"] == pytest.approx((sum(c) * 1 + 20 * 2) / 1e6)
    assert any("approximate" in a for a in claude["assumptions"])


def test_estimate_counts_local_text_with_the_gguf_tokenizer(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("The quick brown fox jumps over the lazy dog.")
    data = json.loads(
        run("cost", "estimate", "-m", "smollm2", "Summarise: {{content}}", str(note), "--json")
    )
    assert any("GGUF tokenizer" in a for a in data["assumptions"])
    import assay

    real = assay.get_model("smollm2").prompt(
        "Summarise: The quick brown fox jumps over the lazy dog.", max_tokens=1, log=False
    )
    assert data["per_item"][0]["input_tokens"] == real.usage.input_tokens
    assert data["total_usd"] == 0


def test_estimate_errors_are_clear(tmp_path: Path, assay_home: Path) -> None:
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "models.yaml").write_text(
        "- alias: mystery\n  base_url: https://llm.example.com/v1\n"
    )
    assert "no price is known for mystery" in run(
        "cost",
        "estimate",
        "-m",
        "mystery",
        "--items",
        "1",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
        code=2,
    )
    assert "give both --input-price and --output-price" in run(
        "cost",
        "estimate",
        "-m",
        "gpt-4o",
        "--items",
        "1",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
        "--input-price",
        "1",
        code=2,
    )
    assert "does not exist" in run(
        "cost", "estimate", "-m", "gpt-4o", "x {{path}}", str(tmp_path / "missing.png"), code=2
    )
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert "cannot read image a.png" in run(
        "cost", "estimate", "-m", "gpt-4o", "{{path}}", str(tmp_path / "a.png"), code=2
    )
    assert "{{nope}}" in run(
        "cost", "estimate", "-m", "gpt-4o", "{{nope}}", str(tmp_path / "a.png"), code=2
    )
    assert "smollm2 cannot take image/png" in run(
        "cost", "estimate", "-m", "smollm2", "{{path}}", str(tmp_path / "a.png"), code=2
    )


def test_prices_command_shows_price_and_source(assay_home: Path) -> None:
    out = run("prices", "-m", "gpt-4o-mini")
    assert "$0.15" in out and "$0.6" in out and "genai-prices" in out
    rows = json.loads(run("prices", "--json"))
    by_model = {r["model"]: r for r in rows}
    assert by_model["smollm2"]["input_per_m"] == 0
    assert by_model["claude-sonnet-4-5"]["cache_write_per_m"] == 3.75
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "prices.yaml").write_text("gpt-4o-mini: {input: 1, output: 2}\n")
    assert "prices.yaml" in run("prices", "-m", "gpt-4o-mini")


@pytest.fixture
def price_server() -> Iterator[str]:
    raw = [
        {
            "id": "openai",
            "name": "OpenAI",
            "api_pattern": "https://api\\.openai\\.com",
            "models": [
                {
                    "id": "gpt-4o-mini",
                    "match": {"equals": "gpt-4o-mini"},
                    "prices": {"input_mtok": 9, "output_mtok": 99},
                }
            ],
        }
    ]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(raw if self.path == "/data.json" else {"not": "a list"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_prices_update_downloads_only_when_asked(
    price_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genai_prices import data_snapshot

    monkeypatch.setattr(prices, "_installed", None)
    try:
        assert "saved prices for 1 providers" in run(
            "prices", "update", "--url", f"{price_server}/data.json"
        )
        assert prices.prices_data_path().exists()
        out = run("prices", "-m", "gpt-4o-mini")
        assert "$9" in out and "$99" in out and "updated data" in out
        assert "did not return genai-prices data" in run(
            "prices", "update", "--url", f"{price_server}/other", code=2
        )
        assert "cannot download prices" in run(
            "prices", "update", "--url", "http://127.0.0.1:9/x", code=6
        )
    finally:
        data_snapshot.set_custom_snapshot(None)
