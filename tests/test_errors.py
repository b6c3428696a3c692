"""Every user-facing failure is one line on stderr and a non-zero exit, never a traceback.

These run the real ``assay`` executable against a small fault-injecting HTTP
server started by the test on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import declare, free_port

ASSAY = [sys.executable, "-m", "assay"]


class Faults(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        fault = self.path.split("/")[1]
        if fault == "hang":
            time.sleep(3)
        if fault in ("500", "429", "400"):
            body = json.dumps({"error": {"message": f"injected {fault}"}}).encode()
            self.send_response(int(fault))
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if fault == "cut":
            self.send_header("Content-Length", "100000")
        else:
            self.send_header("Content-Length", "30")
        self.end_headers()
        if fault == "malformed":
            self.wfile.write(b"data: {this is not json}\n\n".ljust(30))
        elif fault == "cut":
            chunk = {"choices": [{"delta": {"content": "partial "}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True
        else:
            self.wfile.write(b"data: [DONE]\n\n".ljust(30))


@pytest.fixture(scope="module")
def fault_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Faults)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def faulty(assay_home: Path, fault_server: str) -> Path:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    entries = [
        f"- {{alias: {name}, base_url: '{fault_server}/{name}/v1'}}"
        for name in ("hang", "500", "429", "400", "malformed", "cut")
    ]
    entries.append(f"- {{alias: dead, base_url: '{dead}'}}")
    declare(assay_home, "\n".join(entries) + "\n")
    return assay_home


def assay(*args: str, stdin: bytes | None = b"") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ASSAY_DEBUG"}
    return subprocess.run(
        [*ASSAY, *args],
        input=None if stdin is None else stdin.decode("latin1"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], pattern: str, code: int) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("assay: error: ")
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "pattern", "code"),
    [
        (["-m", "nosuchmodel", "hi"], "unknown model 'nosuchmodel'", 2),
        (["-m", "gpt-4o-mini", "hi"], "needs the 'openai' key", 3),
        (["-m", "dead", "hi"], "is the server running?", 6),
        (
            ["-m", "hang", "-o", "timeout", "0.5", "-o", "max_retries", "0", "hi"],
            "timed out waiting for",
            6,
        ),
        (["-m", "500", "-o", "max_retries", "1", "hi"], "answered 500: injected 500", 6),
        (["-m", "429", "-o", "max_retries", "1", "hi"], "answered 429: injected 429", 6),
        (["-m", "400", "hi"], "answered 400: injected 400", 6),
        (["-m", "malformed", "hi"], "malformed stream chunk", 6),
        (["-m", "cut", "hi"], "was cut off", 6),
        (["-m", "echo", "-o", "max_tokens", "many", "hi"], "option max_tokens must be an int", 2),
        (["-m", "echo", "-o", "colour", "red", "hi"], "has no option 'colour'", 2),
        (["-m", "echo", "--nope", "hi"], "No such option '--nope'", 2),
        (["logs", "-n", "x"], "'x' is not a valid integer", 2),
    ],
)
def test_failures_are_one_clear_line(
    faulty: Path, args: list[str], pattern: str, code: int
) -> None:
    assert_one_line(assay(*args), pattern, code)


def test_unreadable_stdin(faulty: Path) -> None:
    result = subprocess.run(
        [*ASSAY, "-m", "echo"], input=b"\xff\xfe\x00", capture_output=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.decode() == "assay: error: cannot read stdin: not UTF-8 text (byte 0)\n"


def test_bad_models_yaml_names_file_and_line(assay_home: Path) -> None:
    declare(assay_home, "- alias: ok\n  base_url: http://x\n\tbad: tab\n")
    assert_one_line(assay("-m", "echo", "hi"), "models.yaml:3: invalid YAML", 2)
    declare(assay_home, "- alias: ok\n  base_url: http://x\n  colour: red\n")
    assert_one_line(assay("-m", "echo", "hi"), "models.yaml:1: unsupported field 'colour'", 2)


def test_corrupt_log_database(assay_home: Path) -> None:
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "logs.db").write_bytes(b"garbage" * 1000)
    assert_one_line(assay("-m", "echo", "hi"), "file is not a database", 5)


def test_a_cut_stream_keeps_the_partial_response_in_the_log(faulty: Path) -> None:
    assay("-m", "cut", "hi")
    rows = json.loads(assay("logs", "--json").stdout)
    assert rows[-1]["response"] == "partial " and "cut off" in rows[-1]["error"]


def test_debug_shows_the_traceback(faulty: Path) -> None:
    env = {**os.environ, "ASSAY_DEBUG": "1"}
    result = subprocess.run(
        [*ASSAY, "-m", "nosuchmodel", "hi"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_ctrl_c_mid_stream_logs_the_partial_response(assay_home: Path) -> None:
    import signal

    proc = subprocess.Popen(
        [*ASSAY, "-m", "echo", "-o", "token_delay", "0.3", "one two three four five six"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.read(4) == "one "  # the stream has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err == "assay: interrupted\n"
    rows = json.loads(assay("logs", "--json").stdout)
    assert rows[-1]["error"] == "interrupted"
    assert rows[-1]["response"].startswith("one ")
    assert rows[-1]["response"] != "one two three four five six"


@pytest.mark.parametrize(
    ("yaml_text", "pattern"),
    [
        ("- alias: a\n  base_url: http://x\n  aliases: fx\n", "'aliases' must be a list"),
        ("- alias: a\n  base_url: http://x\n  headers: [a]\n", "'headers' must be a mapping"),
        ("- alias: a\n  base_url: http://x\n  context_length: big\n", "'context_length' must"),
    ],
)
def test_wrong_types_in_models_yaml(assay_home: Path, yaml_text: str, pattern: str) -> None:
    declare(assay_home, yaml_text)
    assert_one_line(assay("-m", "echo", "hi"), pattern, 2)


def test_bad_settings_and_home(assay_home: Path, tmp_path: Path) -> None:
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "settings.json").write_text('{"aliases": []}')
    assert_one_line(assay("-m", "echo", "hi"), "'aliases' must be a JSON object", 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env = {**os.environ, "ASSAY_HOME": str(blocker)}
    result = subprocess.run(
        [*ASSAY, "-m", "echo", "hi"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert_one_line(result, "cannot use", 2)
