"""The command line, through click's CliRunner, on the echo model."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from assay.cli import COMMANDS, cli
from assay.engine import log_store

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, input: str | bytes | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, (result.output, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_prompt_streams_and_logs() -> None:
    assert run("-m", "echo", "hello world") == "hello world\n"
    row = log_store().query(1)[0]
    assert row["prompt"] == "hello world" and row["model"] == "echo"


def test_stdin_and_argument_are_combined() -> None:
    assert run("-m", "echo", "summarise", input="notes line\n") == "notes line\n\nsummarise\n"
    assert run("-m", "echo", input="only stdin\n") == "only stdin\n"


def test_explicit_prompt_command_and_system_and_options() -> None:
    out = run("prompt", "-m", "echo", "-s", "be brief", "-o", "reply", "scripted", "x")
    assert out == "scripted\n"
    row = log_store().query(1)[0]
    assert row["system"] == "be brief" and row["options"] == {"reply": "scripted"}


def test_json_usage_no_stream_and_no_log() -> None:
    data = json.loads(run("-m", "echo", "--json", "a b c"))
    assert data["text"] == "a b c"
    assert data["usage"]["output_tokens"] == 3
    assert data["id"] == log_store().query(1)[0]["id"]
    result = CliRunner().invoke(cli, ["-m", "echo", "-u", "--no-stream", "--no-log", "x y"])
    assert result.stdout == "x y\n"
    assert result.stderr == "2 input, 2 output tokens, $0\n"
    assert len(log_store().query(None)) == 1


def test_continue_conversation() -> None:
    run("-m", "echo", "first")
    cid = log_store().query(1)[0]["conversation_id"]
    run("-c", "second")  # model comes from the conversation
    run("--cid", cid, "third")
    rows = log_store().query(None, conversation_id=cid)
    assert [r["prompt"] for r in rows] == ["first", "second", "third"]
    assert all(r["model"] == "echo" for r in rows)


def test_logs_list_search_json_and_filters() -> None:
    for word in ("alpha", "beta", "gamma", "delta"):
        run("-m", "echo", f"word {word}")
    out = run("logs")
    assert "word beta" in out and "word alpha" not in out  # newest three
    assert "## Prompt" in out and "## Response" in out
    rows = json.loads(run("logs", "--json", "-n", "0"))
    assert [r["prompt"] for r in rows] == ["word alpha", "word beta", "word gamma", "word delta"]
    rows = json.loads(run("logs", "-q", "gamma", "--json"))
    assert [r["prompt"] for r in rows] == ["word gamma"]
    assert json.loads(run("logs", "-m", "smollm2", "--json")) == []
    cid = rows[0]["conversation_id"]
    assert [r["prompt"] for r in json.loads(run("logs", "--cid", cid, "--json"))] == ["word gamma"]
    assert [r["prompt"] for r in json.loads(run("logs", "-c", "--json"))] == ["word delta"]


def test_logs_path_rm_and_stats() -> None:
    run("-m", "echo", "one")
    run("-m", "echo", "two")
    assert run("logs", "path").strip().endswith("logs.db")
    first = log_store().query(None)[0]["id"]
    assert run("logs", "rm", str(first)) == "deleted 1 response\n"
    assert [r["prompt"] for r in log_store().query(None)] == ["two"]
    assert "no response with id 999" in run("logs", "rm", "999", code=1)
    stats = json.loads(run("logs", "stats", "--json"))
    assert stats["models"][0]["model"] == "echo" and stats["models"][0]["responses"] == 1
    assert stats["models"][0]["cost_usd"] == 0
    assert stats["days"][0]["responses"] == 1 and len(stats["days"][0]["day"]) == 10
    table = run("logs", "stats")
    assert table.splitlines()[0].split()[:2] == ["model", "responses"]
    assert table.splitlines()[1].split()[:2] == ["echo", "1"]


def test_models_list_default_and_options() -> None:
    out = run("models")
    lines = {
        line.split()[0] if not line.startswith("*") else line.split()[1]: line
        for line in out.splitlines()[1:]
    }
    assert lines["smollm2"].startswith("*")
    assert "8192" in lines["smollm2"] and "local" in lines["smollm2"]
    assert "missing (openai)" in lines["gpt-4o-mini"]
    data = json.loads(run("models", "--json"))
    assert {"echo", "smollm2", "gemma3-270m"} <= {m["id"] for m in data}
    assert run("models", "default") == "smollm2\n"
    run("models", "default", "echo")
    assert run("models", "default") == "echo\n"
    assert run("hi") == "hi\n"  # the default model is now echo
    assert "unknown model 'nope'" in run("models", "default", "nope", code=2)
    assert "reply" in run("models", "options", "echo")


def test_keys_file_is_private_and_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    run("keys", "set", "openai", "--value", "sk-from-file")
    path = Path(run("keys", "path").strip())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run("keys", "get", "openai") == "sk-from-file\n"
    assert run("keys", "list") == "openai\n"
    run("keys", "set", "groq", input="gsk-from-stdin\n")
    assert run("keys", "get", "groq") == "gsk-from-stdin\n"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert run("keys", "get", "openai") == "sk-from-env\n"
    assert "set" in next(line for line in run("models").splitlines() if "gpt-4o-mini " in line)
    assert "no key named 'nope'" in run("keys", "get", "nope", code=3)


def test_aliases() -> None:
    run("aliases", "set", "e", "echo")
    assert run("aliases") == "e: echo\n"
    assert run("-m", "e", "via alias") == "via alias\n"
    run("aliases", "remove", "e")
    assert run("aliases") == ""


def test_completion_scripts() -> None:
    assert "_ASSAY_COMPLETE=bash_complete" in run("completion", "bash")
    assert "compdef" in run("completion", "zsh")


def test_bad_input_is_one_line_and_nonzero() -> None:
    err = run("-m", "nope", "hi", code=2)
    assert err.startswith("assay: error: unknown model 'nope'") and err.count("\n") == 1
    err = run("-m", "echo", "-o", "temperature", "hot", "hi", code=2)
    assert err == "assay: error: option temperature must be a float, got 'hot'\n"
    err = run("-m", "gpt-4o-mini", "hi", code=3)
    assert "needs the 'openai' key: set OPENAI_API_KEY" in err and err.count("\n") == 1
    err = run("-m", "echo", input=b"\xff\xfe bad bytes", code=2)
    assert err == "assay: error: cannot read stdin: not UTF-8 text (byte 0)\n"
    assert "no prompt given" in run("-m", "echo", input="", code=2)


def _all_commands(group: click.Group, ctx: click.Context, prefix: str = "") -> list[tuple]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _all_commands(command, ctx, f"{prefix}{name} ")
    return found


def test_every_command_has_help_and_is_documented() -> None:
    ctx = click.Context(cli)
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import cli_docs
    finally:
        sys.path.pop(0)
    assert cli_docs.render() == (ROOT / "docs" / "cli.md").read_text(), (
        "docs/cli.md is stale: run .venv/bin/python scripts/cli_docs.py"
    )
    commands = _all_commands(cli, ctx)
    assert len(commands) >= 19
    for path, command in commands:
        assert command.help, f"{path} has no help"
        assert f"assay {path}" in docs, f"'assay {path}' is not in the docs"
        result = CliRunner().invoke(cli, [*path.split(), "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, path


def test_static_short_help_matches_the_commands() -> None:
    ctx = click.Context(cli)
    for name, (_, _, short) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=200) == short


def test_help_does_not_import_heavy_modules() -> None:
    import subprocess

    code = (
        "import sys, assay.cli; from click.testing import CliRunner;"
        "CliRunner().invoke(assay.cli.cli, ['--help']);"
        "print(sorted(m for m in ('httpx','llama_cpp','numpy','yaml','sqlite3','openai')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
    ).stdout
    assert out.strip() == "[]"


def test_chat_keeps_one_conversation_and_takes_multiline_input() -> None:
    script = "hello there\n!multi\nline one\nline two\n!end\n!help\nexit\n"
    out = run("chat", "-m", "echo", input=script)
    assert "Chatting with echo" in out
    assert "hello there" in out and "line one\nline two" in out and "!multi" in out
    rows = log_store().query(None)
    assert [r["prompt"] for r in rows] == ["hello there", "line one\nline two"]
    assert len({r["conversation_id"] for r in rows}) == 1


def test_chat_survives_failed_turns() -> None:
    result = CliRunner().invoke(
        cli, ["chat", "-m", "echo", "-o", "fail", "model fell over"], input="first\nsecond\n"
    )
    assert result.exit_code == 0
    assert result.stderr == "assay: error: model fell over\n" * 2
    assert [r["error"] for r in log_store().query(None)] == ["model fell over"] * 2


def test_usage_line_shows_the_cost(assay_home: Path) -> None:
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "prices.yaml").write_text("echo: {input: 0.0375, output: 0.15}\n")
    result = CliRunner().invoke(
        cli, ["-m", "echo", "-u", "-o", "input_tokens", "260", "-o", "output_tokens", "92", "hi"]
    )
    # (260 x 0.0375 + 92 x 0.15) / 1M = 0.00002355
    assert result.stderr == "260 input, 92 output tokens, $0.000024\n"


def test_attachments_are_refused_checked_and_logged(tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    err = run("-m", "echo", "-a", str(image), "look", code=2)
    assert err.startswith("assay: error: echo cannot take image/png attachments; models that")
    assert "gpt-4o" in err and err.count("\n") == 1
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(21 * 1024 * 1024)
    err = run("-m", "gemini-2.5-flash", "--key", "k", "-a", str(big), "x", code=2)
    assert "big.png is 22,020,096 bytes; gemini-2.5-flash takes attachments of at most" in err
    err = run("-m", "gpt-4o", "--key", "k", "--at", str(image), "nonsense/type", "x", code=2)
    assert "gpt-4o cannot take nonsense/type attachments; no model can" in err
    assert "does not exist" in run("-m", "gpt-4o", "-a", str(tmp_path / "nope.png"), "x", code=2)


def test_logs_show_attachments(tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    from assay.attachments import Attachment
    from assay.store.logs import LogRecord

    attachment = Attachment.from_arg(str(image))
    log_store().insert(
        LogRecord(model="m", provider="p", prompt="look", attachments=(attachment, attachment))
    )
    out = run("logs")
    assert "## Attachments" in out and f"{image} (image/png, 24 bytes" in out
    rows = json.loads(run("logs", "--json"))
    assert [a["id"] for a in rows[0]["attachments"]] == [attachment.id] * 2
    count = log_store().conn.execute("SELECT COUNT(*) FROM attachments").fetchone()[0]
    assert count == 1  # stored once, linked twice
