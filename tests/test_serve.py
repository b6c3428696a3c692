"""`assay serve`, driven by the official `openai` client and by raw HTTP."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import declare

ASSAY = [sys.executable, "-m", "assay"]


class Served:
    def __init__(self, proc: subprocess.Popen[str], home: Path, url: str) -> None:
        self.proc, self.home, self.url = proc, home, url

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, **kwargs)  # type: ignore[arg-type]

    def rows(self) -> list[sqlite3.Row]:
        path = self.home / "logs.db"
        if not path.exists():  # the server creates it with its first log row
            return []
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute("SELECT * FROM responses ORDER BY id"))
        except sqlite3.OperationalError:  # being created right now
            return []


def start(home: Path, *args: str) -> Served:
    env = {**os.environ, "ASSAY_HOME": str(home)}
    proc = subprocess.Popen(
        [*ASSAY, "serve", "--port", "0", *args],
        env=env,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    state = home / "serve.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"assay serve exited: {proc.stderr.read() if proc.stderr else ''}")
        if state.exists():
            port = json.loads(state.read_text())["port"]
            url = f"http://127.0.0.1:{port}"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return Served(proc, home, url)
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("assay serve did not start")


def stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.terminate()
        served.proc.wait(30)


@pytest.fixture
def server(assay_home: Path) -> Iterator[Served]:
    served = start(assay_home)
    yield served
    stop(served)


def test_openai_client_lists_models_chats_and_streams_with_usage(server: Served) -> None:
    client = server.client()
    ids = {m.id for m in client.models.list()}
    assert {"smollm2", "echo", "gpt-4o-mini"} <= ids
    reply = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "hello there"},
        ],
        user="alice",
    )
    assert reply.choices[0].message.content == "hello there"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Assay-Tag": "nightly"},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    rows = server.rows()
    assert [(r["prompt"], r["user"], r["tag"]) for r in rows] == [
        ("hello there", "alice", None),
        ("one two three", None, "nightly"),
    ]
    assert rows[0]["system"] == "be kind" and rows[0]["cost_usd"] == 0


def test_errors_come_back_in_openai_shape(server: Served) -> None:
    client = server.client()
    with pytest.raises(openai.NotFoundError, match="unknown model 'nope'"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="option temperature must be at most 2"):
        client.chat.completions.create(
            model="echo", temperature=9, messages=[{"role": "user", "content": "x"}]
        )
    resp = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]["message"]
    resp = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "echo"})
    assert resp.status_code == 400 and "'messages' must be" in resp.json()["error"]["message"]
    resp = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={
            "model": "echo",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "temperature": "hot",
        },
    )
    assert resp.status_code == 400  # refused before the stream starts, not mid-stream
    assert "Traceback" not in resp.text


def test_the_bundled_model_chats_completes_and_embeds(server: Served) -> None:
    client = server.client()
    reply = client.chat.completions.create(
        model="smollm2",
        messages=[
            {"role": "user", "content": "What is the capital of France? Answer in one word."}
        ],
        temperature=0,
        max_tokens=20,
        seed=42,
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    text = client.completions.create(
        model="gemma3-270m", prompt="One, two, three, four,", max_tokens=3, temperature=0
    )
    assert text.choices[0].text.startswith(" five")
    vectors = client.embeddings.create(model="smollm2", input=["cat", "dog"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 576
    with pytest.raises(openai.BadRequestError, match="does not make embeddings"):
        client.embeddings.create(model="echo", input="x")
    status = httpx.get(f"{server.url}/assay/status").json()
    assert any(m["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") for m in status["loaded"])


def test_twenty_parallel_streams_each_logged_once(server: Served) -> None:
    client = server.client()
    results: dict[int, str] = {}

    def stream(i: int) -> None:
        chunks = client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": f"stream {i} a b c d"}],
            stream=True,
            user=f"u{i}",
            extra_body={"token_delay": 0.01},
        )
        results[i] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: f"stream {i} a b c d" for i in range(20)}
    rows = server.rows()
    assert sorted(r["user"] for r in rows) == sorted(f"u{i}" for i in range(20))
    assert all(r["error"] is None for r in rows)


def test_kill_9_mid_stream_loses_no_logged_row(server: Served) -> None:
    client = server.client()
    for i in range(3):
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": f"done {i}"}]
        )
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "slow " * 50}],
        stream=True,
        extra_body={"token_delay": 0.2},
    )
    next(iter(stream))
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    conn = sqlite3.connect(server.home / "logs.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    prompts = [r[0] for r in conn.execute("SELECT prompt FROM responses ORDER BY id")]
    assert prompts[:3] == ["done 0", "done 1", "done 2"]


def test_sigterm_lets_the_stream_finish_and_logs_it(server: Served) -> None:
    client = server.client()
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "a b c d e f"}],
        stream=True,
        extra_body={"token_delay": 0.1},
    )
    pieces = iter(stream)
    first = next(pieces)
    server.proc.send_signal(signal.SIGTERM)
    rest = list(pieces)
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "a b c d e f"
    assert server.proc.wait(30) == 0
    assert [r["response"] for r in server.rows()] == ["a b c d e f"]
    assert not (server.home / "serve.json").exists()


def test_proxies_an_upstream_server_and_logs_it(assay_home: Path, llama_server: str) -> None:
    declare(assay_home, f"- alias: upstream\n  base_url: {llama_server}\n  model: smollm2\n")
    served = start(assay_home)
    try:
        stream = served.client().chat.completions.create(
            model="upstream",
            messages=[{"role": "user", "content": "Say hello"}],
            max_tokens=6,
            temperature=0,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text
        (row,) = served.rows()
        assert row["provider"] == "openai" and row["model"] == "upstream"
        assert row["response"] == text
    finally:
        stop(served)


def test_api_key_and_body_limits(assay_home: Path) -> None:
    served = start(assay_home, "--api-key", "s3cret", "--max-body", "2048")
    try:
        with pytest.raises(openai.AuthenticationError):
            served.client().models.list()
        good = openai.OpenAI(base_url=f"{served.url}/v1", api_key="s3cret", max_retries=0)
        assert any(m.id == "echo" for m in good.models.list())
        resp = httpx.post(
            f"{served.url}/v1/chat/completions",
            headers={"Authorization": "Bearer s3cret"},
            json={"model": "echo", "messages": [{"role": "user", "content": "x" * 5000}]},
        )
        assert resp.status_code == 413
    finally:
        stop(served)


def test_refuses_other_interfaces_without_a_key(assay_home: Path) -> None:
    env = {**os.environ, "ASSAY_HOME": str(assay_home)}
    env.pop("ASSAY_SERVE_API_KEY", None)
    result = subprocess.run(
        [*ASSAY, "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("assay: error: serving on 0.0.0.0 needs --api-key")


def test_the_cli_uses_a_running_server_and_logs_once(server: Served) -> None:
    env = {**os.environ, "ASSAY_HOME": str(server.home)}
    for prompt in ("Say hi", "Say bye"):
        result = subprocess.run(
            [*ASSAY, "-m", "smollm2", "-o", "max_tokens", "4", prompt],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr
    rows = server.rows()
    assert [(r["prompt"], r["tag"]) for r in rows] == [("Say hi", "cli"), ("Say bye", "cli")]
    status = subprocess.run(
        [*ASSAY, "serve", "--status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert status.returncode == 0 and "SmolLM2-135M-Instruct.Q4_1.gguf" in status.stdout
    stop(server)
    status = subprocess.run(
        [*ASSAY, "serve", "--status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert status.returncode == 1 and "not running" in status.stdout
    # with no server, the CLI loads the model itself
    result = subprocess.run(
        [*ASSAY, "-m", "smollm2", "-o", "max_tokens", "2", "Hi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0 and server.rows()[-1]["tag"] is None


def test_idle_local_models_are_unloaded_after_keep_alive(assay_home: Path) -> None:
    served = start(assay_home, "--keep-alive", "1")
    try:
        served.client().chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
        assert httpx.get(f"{served.url}/assay/status").json()["loaded"]
        deadline = time.monotonic() + 15
        while httpx.get(f"{served.url}/assay/status").json()["loaded"]:
            assert time.monotonic() < deadline, "the idle model was never unloaded"
            time.sleep(0.5)
        # and it loads again on the next request
        again = served.client().chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
        assert again.choices[0].message.content
    finally:
        stop(served)


def test_extra_body_reaches_the_upstream(assay_home: Path, server: Served) -> None:
    """A declared upstream's extra_body fields are sent with every request (here: echo's
    scripted reply, through a second assay serve acting as the upstream)."""
    declare(
        assay_home,
        f"- alias: scripted\n  base_url: {server.url}/v1\n  model: echo\n"
        "  extra_body: {reply: from extra_body}\n",
    )
    import assay

    assert assay.get_model("scripted").prompt("anything").text() == "from extra_body"


def test_review_fixes_bad_requests_are_4xx_in_openai_shape(server: Served) -> None:
    def post(path: str, body: object, **headers: str) -> httpx.Response:
        return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)

    chat = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]}
    resp = post("/v1/chat/completions", {**chat, "threads": 5000})
    assert resp.status_code == 400 and "set by the server" in resp.json()["error"]["message"]
    resp = post("/v1/completions", {"model": "smollm2", "prompt": ""})
    assert resp.status_code == 400 and "the prompt is empty" in resp.json()["error"]["message"]
    resp = post("/v1/embeddings", {"model": "smollm2", "input": ""})
    assert resp.status_code == 400 and "empty" in resp.json()["error"]["message"]
    resp = post("/v1/embeddings", {"model": "smollm2", "input": "word " * 2000})
    assert resp.status_code == 400 and "tokens" in resp.json()["error"]["message"]
    resp = post(
        "/v1/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        **{"X-Assay-Conversation": "../../etc"},
    )
    assert resp.status_code == 400
    deep = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"[" * 100_000,
        headers={"Content-Type": "application/json"},
    )
    assert deep.status_code == 400 and "error" in deep.json()
    missing = httpx.get(f"{server.url}/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["message"]
    # aliases share one warm model
    ok = post(
        "/v1/chat/completions", {"model": "SmolLM2", "messages": chat["messages"], "max_tokens": 2}
    )
    assert ok.status_code == 200 and ok.json()["model"] == "smollm2"


def test_a_client_that_leaves_stops_the_generation(server: Served) -> None:
    import socket as socket_module

    body = json.dumps(
        {
            "model": "smollm2",
            "max_tokens": 400,
            "messages": [{"role": "user", "content": "Tell me a long story."}],
        }
    )
    host, port = server.url.removeprefix("http://").split(":")
    with socket_module.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        time.sleep(1)  # let it start, then hang up
    deadline = time.monotonic() + 60
    while not server.rows():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    (row,) = server.rows()
    assert row["error"] == "interrupted" and (row["output_tokens"] or 0) < 400
    # the CLI's route through the server hangs up too when its caller stops reading
    import assay

    os.environ["ASSAY_HOME"] = str(server.home)
    stream = iter(
        assay.get_model("smollm2", via_server=True).prompt(
            "Tell me another long story.", max_tokens=400
        )
    )
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    while len(server.rows()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert server.rows()[1]["error"] == "interrupted"


def test_ipv6_urls_are_bracketed() -> None:
    from assay.server.runtime import ServerInfo

    assert ServerInfo(1, "::1", 8080).url == "http://[::1]:8080"
    assert ServerInfo(1, "0.0.0.0", 8080).url == "http://127.0.0.1:8080"
