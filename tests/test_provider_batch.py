"""`--provider-batch` against a local fake of OpenAI's Batch API and Anthropic's Message Batches.

The fake answers with the documented shapes in tests/fixtures/openai_batch and
tests/fixtures/anthropic_batch, filling in ids, custom_ids and text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
ASSAY = [sys.executable, "-m", "assay"]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class FakeBatches(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: dict[str, Any] = {}  # noqa: RUF012 - one fake per test

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, data: Any, status: int = 200, jsonl: bool = False) -> None:
        if jsonl:
            body = "".join(json.dumps(line) + "\n" for line in data).encode()
        else:
            body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _polled(self) -> bool:
        self.state["polls"] = self.state.get("polls", 0) + 1
        return self.state["polls"] >= 2  # in progress once, then finished

    def do_POST(self) -> None:
        raw = self._body()
        self.state.setdefault("auth", []).append(
            self.headers.get("Authorization") or self.headers.get("x-api-key")
        )
        if self.path == "/v1/files":
            assert b'name="purpose"' in raw and b"batch" in raw
            start = raw.index(b"\r\n\r\n", raw.index(b'filename="')) + 4
            content = raw[start : raw.index(b"\r\n--", start)]
            self.state["requests"] = [json.loads(line) for line in content.splitlines()]
            self._send(fixture("openai_batch/file_object.json"))
        elif self.path == "/v1/batches":
            body = json.loads(raw)
            assert body["endpoint"] == "/v1/chat/completions"
            assert body["completion_window"] == "24h"
            assert body["input_file_id"] == "file-abc123"
            self._send(fixture("openai_batch/batch_validating.json"))
        elif self.path == "/v1/messages/batches":
            self.state["requests"] = json.loads(raw)["requests"]
            self._send(fixture("anthropic_batch/batch_in_progress.json"))
        else:
            self._send({"error": {"message": "not found"}}, 404)

    def do_GET(self) -> None:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        requests = self.state.get("requests", [])
        if self.path == "/v1/batches/batch_abc123":
            done = self._polled()
            name = "batch_completed.json" if done else "batch_validating.json"
            self._send(fixture(f"openai_batch/{name}"))
        elif self.path == "/v1/files/file-cvaTdG/content":
            lines = []
            for r in requests:
                if "FAIL" in json.dumps(r):
                    continue
                line = fixture("openai_batch/output_line.json")
                line["custom_id"] = r["custom_id"]
                text = "echo: " + r["body"]["messages"][-1]["content"]
                line["response"]["body"]["choices"][0]["message"]["content"] = text
                lines.append(line)
            self._send(lines, jsonl=True)
        elif self.path == "/v1/files/file-HOWS94/content":
            lines = []
            for r in requests:
                if "FAIL" in json.dumps(r):
                    line = fixture("openai_batch/error_line.json")
                    line["custom_id"] = r["custom_id"]
                    lines.append(line)
            self._send(lines, jsonl=True)
        elif self.path == "/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF":
            if self._polled():
                data = fixture("anthropic_batch/batch_ended.json")
                data["results_url"] = f"{base}/v1/messages/batches/{data['id']}/results"
            else:
                data = fixture("anthropic_batch/batch_in_progress.json")
            self._send(data)
        elif self.path.endswith("/results"):
            lines = []
            for r in requests:
                if "FAIL" in json.dumps(r):
                    line = fixture("anthropic_batch/result_errored.json")
                else:
                    line = fixture("anthropic_batch/result_succeeded.json")
                    content = r["params"]["messages"][-1]["content"]
                    text = "echo: " + (content if isinstance(content, str) else content[0]["text"])
                    line["result"]["message"]["content"][0]["text"] = text
                line["custom_id"] = r["custom_id"]
                lines.append(line)
            self._send(lines, jsonl=True)
        else:
            self._send({"error": {"message": f"not found: {self.path}"}}, 404)


@pytest.fixture
def fake() -> Iterator[tuple[str, dict[str, Any]]]:
    handler = type("Fake", (FakeBatches,), {"state": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.state
    server.shutdown()


def run(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ASSAY_HOME": str(home), "ASSAY_BATCH_POLL": "0.05", **env}
    return subprocess.run([*ASSAY, *args], capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.parametrize(
    ("model", "env_var", "key_var", "base_suffix"),
    [
        ("gpt-4o-mini", "OPENAI_BASE_URL", "OPENAI_API_KEY", "/v1"),
        ("claude-sonnet-4-5", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", ""),
    ],
)
def test_provider_batch_submits_polls_and_collects_at_half_price(
    assay_home: Path,
    tmp_path: Path,
    fake: tuple[str, dict[str, Any]],
    model: str,
    env_var: str,
    key_var: str,
    base_suffix: str,
) -> None:
    url, state = fake
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "prices.yaml").write_text(f"{model}: {{input: 1000000, output: 2000000}}\n")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"q": q}) + "\n" for q in ("one", "two", "FAIL", "four")))
    env = {env_var: url + base_suffix, key_var: "sk-test-secret-123456"}
    result = run(
        assay_home,
        env,
        "batch",
        "-m",
        model,
        "Say {{q}}",
        "-i",
        str(inputs),
        "--provider-batch",
        "--json",
        "-o",
        "max_tokens",
        "50",
    )
    assert result.returncode == 1, result.stderr  # one item failed at the provider
    summary = json.loads(result.stdout)
    assert summary["done"] == 3 and summary["failed"] == 1
    assert len(state["requests"]) == 4
    assert {r["custom_id"] for r in state["requests"]} == {f"item-{i}" for i in range(4)}
    first = state["requests"][0]
    body = first.get("body") or first.get("params")
    assert body["model"] == model and body["max_tokens"] == 50 and "stream" not in body
    assert all("sk-test-secret-123456" in (a or "") for a in state["auth"])
    failure = summary["failures"][0]
    assert failure["idx"] == 2 and failure["error"]
    import sqlite3

    conn = sqlite3.connect(assay_home / "logs.db")
    rows = conn.execute(
        "SELECT prompt, response, input_tokens, output_tokens, cost_usd, price_source"
        " FROM responses WHERE error IS NULL ORDER BY prompt"
    ).fetchall()
    failed = conn.execute("SELECT prompt, error FROM responses WHERE error IS NOT NULL").fetchall()
    assert [r[0] for r in failed] == ["Say FAIL"] and failed[0][1]
    assert [r[0] for r in rows] == ["Say four", "Say one", "Say two"]
    assert all(r[1] == "echo: " + r[0] for r in rows)
    for _, _, inp, out, cost, source in rows:
        assert cost == pytest.approx((inp * 1.0 + out * 2.0) / 2)  # half the standard rate
        assert "batch rate" in source
    job = json.loads(run(assay_home, env, "batch", "status", "--json").stdout)
    assert json.loads(job["provider_batch_json"])["collected"] is True
    # The failed item can be resubmitted; the done ones are not sent again.
    state["polls"] = 0
    again = run(assay_home, env, "batch", "resume", summary["job"], "--json")
    assert len(state["requests"]) == 1 and state["requests"][0]["custom_id"] == "item-2"
    assert json.loads(again.stdout)["done"] == 3


def test_provider_batch_can_be_left_and_resumed(
    assay_home: Path, tmp_path: Path, fake: tuple[str, dict[str, Any]]
) -> None:
    url, state = fake
    inputs = tmp_path / "in.txt"
    inputs.write_text("a\nb\n")
    env = {
        "OPENAI_BASE_URL": url + "/v1",
        "OPENAI_API_KEY": "sk-test-key-abcdef",
        "ASSAY_BATCH_POLL": "30",
    }
    args = [
        *ASSAY,
        "batch",
        "-m",
        "gpt-4o-mini",
        "{{input}}",
        "-i",
        str(inputs),
        "--provider-batch",
        "-q",
    ]
    proc = subprocess.Popen(
        args,
        env={**os.environ, "ASSAY_HOME": str(assay_home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    import time

    deadline = time.monotonic() + 60
    while "requests" not in state and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.kill()  # left while the provider works on it
    proc.wait()
    sent = list(state["requests"])
    result = run(
        assay_home, {**env, "ASSAY_BATCH_POLL": "0.05"}, "batch", "resume", "last", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert state["requests"] == sent  # polled the same batch, not submitted again
    assert json.loads(result.stdout)["done"] == 2


def test_provider_batch_refuses_local_models(assay_home: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.txt"
    inputs.write_text("a\n")
    result = run(
        assay_home, {}, "batch", "-m", "echo", "{{input}}", "-i", str(inputs), "--provider-batch"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "assay: error: --provider-batch needs an OpenAI or Anthropic model, not echo"
    )
