"""The bundled models, run for real through llama-cpp-python."""

from __future__ import annotations

from pathlib import Path

import pytest

import assay
from assay.engine import log_store
from assay.errors import ModelLoadError, UsageError

pytestmark = pytest.mark.slow
GREEDY = {"temperature": 0, "seed": 42}


def test_smollm2_is_the_default_and_answers_deterministically() -> None:
    model = assay.get_model()
    assert model.id == "smollm2"
    first = model.prompt(
        "What is the capital of France? Answer in one word.", max_tokens=20, **GREEDY
    )
    second = model.prompt(
        "What is the capital of France? Answer in one word.", max_tokens=20, **GREEDY
    )
    text = first.text()
    assert "Paris" in text
    assert second.text() == text
    usage = first.usage
    assert usage.input_tokens and usage.input_tokens > 10
    assert usage.output_tokens and 0 < usage.output_tokens <= 20
    # the second identical prompt reused the KV cache for all but the last prompt token
    assert second.usage.cached_tokens == usage.input_tokens - 1
    row = log_store().query(1)[0]
    assert row["provider"] == "local" and row["output_tokens"] == second.usage.output_tokens
    assert row["tokens_per_s"] and row["tokens_per_s"] > 0


def test_streaming_matches_the_whole_text_and_max_tokens_stops() -> None:
    model = assay.get_model("smollm2")
    response = model.prompt("Count from one to twenty in words.", max_tokens=8, **GREEDY)
    pieces = list(response)
    assert len(pieces) > 1
    assert "".join(pieces) == response.text()
    assert response.usage.output_tokens == 8
    assert response.json()["finish_reason"] == "length"


def test_stop_sequences_cut_the_text() -> None:
    model = assay.get_model("smollm2")
    full = model.prompt("List three fruits, one per line.", max_tokens=40, **GREEDY).text()
    assert "\n" in full.strip()
    cut = model.prompt(
        "List three fruits, one per line.", max_tokens=40, stop="\\n", **GREEDY
    ).text()
    assert "\n" not in cut
    assert full.startswith(cut)


def test_system_prompt_and_conversation_use_the_chat_template() -> None:
    model = assay.get_model("smollm2")
    conversation = model.conversation()
    first = conversation.prompt(
        "My name is Zorblax.", system="You are terse.", max_tokens=20, **GREEDY
    )
    first.text()
    answer = conversation.prompt("What is my name?", max_tokens=20, **GREEDY)
    answer.text()
    first_in, first_out = first.usage.input_tokens or 0, first.usage.output_tokens or 0
    # the second turn's prompt holds the first exchange, rendered by the ChatML template
    assert (answer.usage.input_tokens or 0) > first_in + first_out
    # and the KV cache reused the whole first prompt
    assert (answer.usage.cached_tokens or 0) >= first_in - 1


def test_prompt_longer_than_the_context_is_a_clear_error() -> None:
    model = assay.get_model("smollm2")
    with pytest.raises(UsageError, match="context of 64"):
        model.prompt("word " * 200, n_ctx=64).text()


def test_gemma3_base_model_completes_text(assay_home: Path) -> None:
    model = assay.get_model("gemma3-270m")
    text = model.prompt("One, two, three, four,", max_tokens=4, **GREEDY).text()
    assert text.startswith(" five")
    assert (assay_home / "models" / "gemma-3-270m-q4_k_m.gguf").stat().st_size > 200_000_000


def test_add_gguf_registers_a_file(smollm2_path: Path) -> None:
    from assay.providers.local import add_gguf

    spec = add_gguf(smollm2_path, "mine")
    assert spec.context_length == 8192
    model = assay.get_model("mine")
    assert model.prompt("Say hi", max_tokens=3, **GREEDY).usage.output_tokens == 3


def test_corrupt_gguf_is_a_clear_error(tmp_path: Path) -> None:
    from assay.providers.local import add_gguf

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    with pytest.raises(ModelLoadError, match="not a valid GGUF"):
        add_gguf(bad, "bad")
    bad.write_bytes(b"nope")
    with pytest.raises(ModelLoadError, match="bad magic"):
        add_gguf(bad, "bad")
    with pytest.raises(ModelLoadError, match="cannot read"):
        add_gguf(tmp_path / "missing.gguf", "bad")


def test_leaving_mid_stream_then_exiting_is_clean(tmp_path: Path) -> None:
    """The worker thread must be out of llama.cpp before the model is freed at exit."""
    import subprocess
    import sys

    script = (
        "import assay\n"
        "r = assay.get_model('smollm2').prompt('Tell me a long story.', max_tokens=200)\n"
        "for piece in r:\n"
        "    break\n"
        "it = iter(assay.get_model('smollm2').prompt('Another story.', max_tokens=200))\n"
        "next(it)\n"  # left open at exit
    )
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
