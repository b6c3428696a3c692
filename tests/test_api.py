"""The Python API, on the deterministic echo provider."""

from __future__ import annotations

import asyncio
import importlib

import pytest

import assay
from assay.engine import log_store
from assay.errors import AssayError, OptionError, UnknownModelError


def test_all_is_complete_and_importable() -> None:
    public = {n for n in dir(assay) if not n.startswith("_")} | {"__version__"}
    assert set(assay.__all__) == public
    for name in assay.__all__:
        assert getattr(assay, name) is not None, name
    # every name the package re-exports really exists in the module it names
    for name, module in assay._EXPORTS.items():
        assert hasattr(importlib.import_module(f"assay.{module}"), name)


def test_prompt_text_usage_and_log() -> None:
    model = assay.get_model("echo")
    response = model.prompt("hello brave new world")
    assert response.text() == "hello brave new world"
    assert response.usage.input_tokens == 4
    assert response.usage.output_tokens == 4
    row = log_store().query(1)[0]
    assert row["id"] == response.id
    assert row["prompt"] == "hello brave new world"
    assert row["response"] == "hello brave new world"
    assert row["provider"] == "echo"
    assert row["output_tokens"] == 4
    assert row["total_ms"] is not None and row["ttft_ms"] is not None


def test_streaming_yields_pieces_in_order() -> None:
    pieces = list(assay.get_model("echo").prompt("one two three"))
    assert pieces == ["one ", "two ", "three"]


def test_options_are_validated_and_applied() -> None:
    model = assay.get_model("echo")
    response = model.prompt("ignored", reply="scripted answer", output_tokens=7, max_tokens="5")
    assert response.text() == "scripted answer"
    assert response.usage.output_tokens == 7
    with pytest.raises(OptionError, match="temperature"):
        model.prompt("x", temperature="hot")
    with pytest.raises(OptionError, match="no option 'colour'"):
        model.prompt("x", colour="red")
    with pytest.raises(OptionError, match="at most 2"):
        model.prompt("x", temperature=5)


def test_max_tokens_truncates_with_finish_reason() -> None:
    response = assay.get_model("echo").prompt("a b c d e", max_tokens=2)
    assert response.text() == "a b "
    assert response.json()["finish_reason"] == "length"


def test_no_log_writes_nothing() -> None:
    assay.get_model("echo").prompt("secret", log=False).text()
    assert log_store().query(None) == []


def test_system_prompt_is_sent_and_logged() -> None:
    response = assay.get_model("echo").prompt("hi", system="be brief")
    response.text()
    assert log_store().query(1)[0]["system"] == "be brief"


def test_conversation_carries_history() -> None:
    model = assay.get_model("echo")
    conversation = model.conversation()
    conversation.prompt("first", system="sys").text()
    second = conversation.prompt("second")
    assert second.text() == "second"
    # the second request saw the system prompt and the first exchange
    request = second._execution.request
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    rows = log_store().query(None, conversation_id=conversation.id)
    assert [r["prompt"] for r in rows] == ["first", "second"]
    # a conversation can be reloaded from the logs by id
    again = model.conversation(conversation.id)
    assert [m.content for m in again.messages] == ["first", "first", "second", "second"]


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError, match=r"did you mean.*echo"):
        assay.get_model("ecko")


def test_aliases_and_default_model(assay_home) -> None:  # type: ignore[no-untyped-def]
    from assay.settings import Settings

    settings = Settings()
    settings.aliases["e"] = "echo"
    settings.default_model = "e"
    settings.save()
    assert assay.get_model().id == "echo"
    assert assay.get_model("e").id == "echo"


def test_async_twins() -> None:
    async def go() -> tuple[str, list[str], int | None]:
        model = assay.get_async_model("echo")
        text = await model.prompt("async hello").text()
        pieces = [p async for p in model.prompt("x y")]
        conv = model.conversation()
        await conv.prompt("one").text()
        usage = await conv.prompt("two").usage()
        await model.aclose()
        return text, pieces, usage.input_tokens

    text, pieces, input_tokens = asyncio.run(go())
    assert text == "async hello"
    assert pieces == ["x ", "y"]
    assert input_tokens == 3  # "one", "one", "two": the history is part of the input


def test_consumed_response_cannot_run_twice_but_replays_text() -> None:
    response = assay.get_model("echo").prompt("again")
    assert list(response) == ["again"]
    assert list(response) == ["again"]
    assert response.text() == "again"
    assert len(log_store().query(None)) == 1


def test_interrupted_stream_is_still_logged() -> None:
    response = assay.get_model("echo").prompt("a b c d e f")
    stream = iter(response)
    assert next(stream) == "a "
    stream.close()  # the caller walks away mid-stream
    row = log_store().query(1)[0]
    assert row["response"] == "a "
    assert row["error"] == "interrupted"


def test_error_response_is_logged_and_raised() -> None:
    model = assay.get_model("echo")
    backend = model.async_model.backend()

    async def broken(request):  # type: ignore[no-untyped-def]
        yield "partial "
        raise AssayError("upstream fell over")

    backend.generate = broken  # type: ignore[method-assign]
    with pytest.raises(AssayError, match="fell over"):
        model.prompt("x").text()
    row = log_store().query(1)[0]
    assert row["response"] == "partial "
    assert row["error"] == "upstream fell over"
    assert row["finish_reason"] == "error"


def test_threads_sharing_the_log_store_lose_no_row() -> None:
    import threading

    model = assay.get_model("echo")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                asyncio.run(assay.get_async_model("echo").prompt(f"t{n} p{i}").text())
                model.prompt(f"s{n} p{i}").text()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(log_store().query(None)) == 800


def test_a_response_cannot_be_read_twice_at_once() -> None:
    async def go() -> list[object]:
        response = assay.get_async_model("echo").prompt("a b c", token_delay=0.01)
        return await asyncio.gather(response.text(), response.text(), return_exceptions=True)

    results = asyncio.run(go())
    assert results[0] == "a b c"
    assert isinstance(results[1], AssayError)
    assert [r["response"] for r in log_store().query(None)] == ["a b c"]


def test_a_continued_conversation_keeps_its_system_prompt() -> None:
    model = assay.get_model("echo")
    first = model.prompt("hi", system="be terse")
    first.text()
    again = model.conversation(first.conversation_id)
    assert again.system == "be terse"
    second = again.prompt("more")
    second.text()
    assert second.json()["system"] == "be terse"


def test_empty_stop_sequence_is_rejected() -> None:
    with pytest.raises(OptionError, match="stop"):
        assay.get_model("echo").prompt("x", stop="")
