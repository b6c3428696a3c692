"""The OpenAI provider against a real server: llama-cpp-python's own, serving SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest

import assay
from assay.engine import log_store

from .conftest import declare

pytestmark = pytest.mark.slow


@pytest.fixture
def served(assay_home: Path, llama_server: str) -> assay.Model:
    declare(
        assay_home,
        f"""
- alias: served-smollm2
  base_url: {llama_server}
  model: smollm2
  context_length: 2048
  aliases: [served]
""",
    )
    return assay.get_model("served")


def test_streaming_chat_through_a_real_server(served: assay.Model) -> None:
    response = served.prompt(
        "What is the capital of France? One word.", temperature=0, max_tokens=12, seed=1
    )
    pieces = list(response)
    assert len(pieces) > 1
    text = "".join(pieces)
    assert "Paris" in text
    row = log_store().query(1)[0]
    assert row["provider"] == "openai" and row["model"] == "served-smollm2"
    assert row["response"] == text
    assert row["ttft_ms"] is not None and row["total_ms"] >= row["ttft_ms"]


def test_non_streaming_reports_usage(served: assay.Model) -> None:
    whole = served.prompt("Name a colour.", stream=False, temperature=0, max_tokens=12, seed=1)
    assert whole.text()
    assert whole.usage.input_tokens and whole.usage.input_tokens > 5
    assert whole.usage.output_tokens and 0 < whole.usage.output_tokens <= 12


def test_http_error_from_a_real_server_is_reported(assay_home: Path, llama_server: str) -> None:
    declare(
        assay_home,
        f"""
- alias: wrong-path
  base_url: {llama_server}/nowhere
""",
    )
    with pytest.raises(assay.ProviderError, match="answered 404"):
        assay.get_model("wrong-path").prompt("hi").text()
    assert log_store().query(1)[0]["error"].endswith("answered 404: Not Found")
