"""`assay batch` and the shared engine, against a real `assay serve` behind a fault proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from assay.run.limiter import AdaptiveLimiter

from .conftest import declare
from .test_serve import Served, start, stop

ASSAY = [sys.executable, "-m", "assay"]


class FaultProxy(BaseHTTPRequestHandler):
    """Forwards to ``upstream``; answers a share of requests with 429, 500 or a cut body."""

    protocol_version = "HTTP/1.1"
    upstream = ""
    rate = 0.0
    rng = random.Random(7)
    lock = threading.Lock()
    counts: dict[str, int] = {}  # noqa: RUF012 - shared by design

    def log_message(self, *args: object) -> None:
        pass

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            roll = self.rng.random()
        fault = None
        if roll < self.rate:
            fault = ("429", "500", "cut")[int(roll / self.rate * 3)]
        if fault in ("429", "500"):
            self._count(fault)
            payload = json.dumps({"error": {"message": f"injected {fault}"}}).encode()
            self.send_response(int(fault))
            self.send_header("Content-Type", "application/json")
            if fault == "429":
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        resp = httpx.post(
            self.upstream + self.path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        data = resp.content
        self.send_response(resp.status_code)
        self.send_header("Content-Type", resp.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "cut":  # half the body, then hang up: a cut stream or a truncated JSON body
            self._count("cut")
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._count("ok")
        self.wfile.write(data)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start(tmp_path_factory.mktemp("server-home"))
    yield served
    stop(served)


@pytest.fixture
def proxy(upstream: Served) -> Iterator[type[FaultProxy]]:
    handler = type("Proxy", (FaultProxy,), {"upstream": upstream.url, "counts": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()


def assay(
    *args: str,
    stdin: str | None = None,
    timeout: float = 300,
    env_extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ASSAY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env_extra or {})},
    )


def db(home: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(home / "logs.db")
    conn.row_factory = sqlite3.Row
    return conn


def write_jsonl(path: Path, n: int, prefix: str = "item") -> Path:
    path.write_text("".join(json.dumps({"n": i, "text": f"{prefix} {i}"}) + "\n" for i in range(n)))
    return path


def test_a_thousand_items_through_faults_are_each_done_exactly_once(
    assay_home: Path, proxy: type[FaultProxy], tmp_path: Path
) -> None:
    proxy.rate = 0.2
    declare(assay_home, f"- {{alias: flaky, base_url: '{proxy.url}/v1', model: echo}}\n")  # type: ignore[attr-defined]
    inputs = write_jsonl(tmp_path / "in.jsonl", 1000)
    out = tmp_path / "out.jsonl"
    result = assay(
        "batch",
        "-m",
        "flaky",
        "{{text}}",
        "--inputs",
        str(inputs),
        "-j",
        "16",
        "--stream",
        "--retries",
        "20",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    faults = {k: v for k, v in proxy.counts.items() if k != "ok"}
    assert all(faults.get(k, 0) > 10 for k in ("429", "500", "cut")), proxy.counts
    conn = db(assay_home)
    items = conn.execute("SELECT state, COUNT(*) FROM job_items GROUP BY state").fetchall()
    assert [tuple(r) for r in items] == [("done", 1000)]
    ok = conn.execute(
        "SELECT prompt, response FROM responses WHERE error IS NULL AND tag LIKE 'batch:%'"
    ).fetchall()
    assert len(ok) == 1000
    assert len({r["prompt"] for r in ok}) == 1000
    assert all(r["prompt"] == r["response"] for r in ok)
    # Failed attempts were retried, not logged as extra responses.
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1000
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(1000))
    assert all(line["response"] == f"item {line['index']}" for line in lines)


def test_non_streaming_through_faults_and_the_summary_as_json(
    assay_home: Path, proxy: type[FaultProxy], tmp_path: Path
) -> None:
    proxy.rate = 0.3
    declare(assay_home, f"- {{alias: flaky, base_url: '{proxy.url}/v1', model: echo}}\n")  # type: ignore[attr-defined]
    inputs = write_jsonl(tmp_path / "in.jsonl", 200)
    result = assay(
        "batch",
        "-m",
        "flaky",
        "{{text}}",
        "-i",
        str(inputs),
        "-j",
        "8",
        "--retries",
        "20",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "done" and summary["done"] == 200 and summary["failed"] == 0
    assert summary["this_run"]["throttled"] > 0  # the 429s reached the limiter


def test_kill_9_then_resume_loses_nothing_and_sends_nothing_twice(
    assay_home: Path, upstream: Served, tmp_path: Path
) -> None:
    declare(
        assay_home,
        f"- {{alias: slow, base_url: '{upstream.url}/v1', model: echo,"
        " extra_body: {delay: 0.03}}\n",
    )
    inputs = write_jsonl(tmp_path / "in.jsonl", 300, prefix="kill")
    args = [*ASSAY, "batch", "-m", "slow", "{{text}}", "-i", str(inputs), "-j", "4", "-q"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 60:
        time.sleep(0.2)
        if (assay_home / "logs.db").exists():
            with contextlib.suppress(sqlite3.OperationalError):
                done = db(assay_home).execute("SELECT COUNT(*) FROM job_items").fetchone()[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = db(assay_home)
    before = {
        r[0]
        for r in conn.execute(
            "SELECT r.prompt FROM job_items i JOIN responses r ON r.id = i.response_id"
        )
    }
    assert 60 <= len(before) < 300
    job = conn.execute("SELECT id, status FROM jobs").fetchone()
    assert job["status"] == "running"  # killed: it never got to say otherwise

    result = assay("batch", "-m", "slow", "{{text}}", "-i", str(inputs), "-j", "4")
    assert result.returncode == 0, result.stderr
    assert f"resuming job {job['id']}: {len(before)} of 300 already done" in result.stderr
    conn = db(assay_home)
    assert conn.execute("SELECT COUNT(*) FROM job_items WHERE state = 'done'").fetchone()[0] == 300
    prompts = [r[0] for r in conn.execute("SELECT prompt FROM responses WHERE error IS NULL")]
    assert len(prompts) == len(set(prompts)) == 300
    # The server saw each item that was logged before the kill exactly once.
    served = db(upstream.home)
    counts = dict(
        served.execute(
            "SELECT prompt, COUNT(*) FROM responses WHERE prompt LIKE 'kill %' GROUP BY prompt"
        ).fetchall()
    )
    assert all(counts[p] == 1 for p in before)
    assert set(counts) == {f"kill {i}" for i in range(300)}


def test_the_budget_stops_cleanly_and_resume_finishes(assay_home: Path, tmp_path: Path) -> None:
    assay_home.mkdir(parents=True, exist_ok=True)
    # echo counts words as tokens: "{{text}}" is 2 input tokens, and echoes 2 output tokens.
    (assay_home / "prices.yaml").write_text("echo: {input: 100000, output: 400000}\n")
    inputs = write_jsonl(tmp_path / "in.jsonl", 100)
    # Each item costs 2 * 0.1 + 2 * 0.4 = $1.00.
    result = assay(
        "batch",
        "-m",
        "echo",
        "{{text}}",
        "-i",
        str(inputs),
        "-j",
        "4",
        "--max-cost",
        "10",
        "-o",
        "max_tokens",
        "2",
        "--json",
    )
    assert result.returncode == 8, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "stopped" and summary["this_run"]["stopped"] == "budget"
    assert 5 <= summary["done"] <= 10
    assert summary["cost_usd"] == pytest.approx(summary["done"] * 1.0)
    assert summary["cost_usd"] <= 10
    again = assay("batch", "resume", summary["job"], "--max-cost", "1000", "--json")
    assert again.returncode == 0, again.stderr
    final = json.loads(again.stdout)
    assert final["done"] == 100 and final["cost_usd"] == pytest.approx(100.0)
    assert final["this_run"]["done"] == 100 - summary["done"]


def test_bad_inputs_fail_alone_and_the_rest_proceed(assay_home: Path, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "pic.png")
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        "text,file\n"
        "one,\n"
        f"two,{tmp_path / 'missing.png'}\n"
        f"three,{tmp_path / 'pic.png'}\n"
        "four,x,extra\n"
        "five,\n"
    )
    out = tmp_path / "out.csv"
    result = assay(
        "batch",
        "-m",
        "echo",
        "say {{text}}",
        "-i",
        str(csv_path),
        "-a",
        "{{file}}",
        "--output",
        str(out),
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    status = json.loads(assay("batch", "status", "--json").stdout)
    assert status["done"] == 2 and status["failed"] == 3
    errors = {f["idx"]: f["error"] for f in status["failures"]}
    assert "missing.png does not exist" in errors[1]
    assert "echo cannot take image/png" in errors[2]
    assert "line 5: 3 fields where the header has 2" in errors[3]
    text = out.read_text()
    assert "say one" in text and "say five" in text


def test_dry_run_sends_nothing(assay_home: Path, tmp_path: Path) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", 30)
    result = assay("batch", "-m", "echo", "Q: {{text}}", "-i", str(inputs), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Q: item 0" in result.stdout and "... and 10 more" in result.stdout
    assert "Estimate for 30 items on echo" in result.stderr
    assert (
        not (assay_home / "logs.db").exists()
        or not db(assay_home).execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    )


def test_duplicates_and_reruns_come_from_the_cache(assay_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("same\nsame\nother\nsame\n")
    first = assay("batch", "-m", "echo", "{{input}}", "-i", str(path), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["cached"] == 2  # "same" sent once
    conn = db(assay_home)
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2
    other = assay("batch", "-m", "echo", "{{input}}!", "-i", str(path), "--json")
    assert json.loads(other.stdout)["cached"] == 2  # a new template: a new job, new prompts
    fresh = assay("batch", "-m", "echo", "{{input}}", "-i", str(path), "--no-cache", "--json")
    assert json.loads(fresh.stdout)["this_run"]["done"] == 0  # same job, already done


def test_stdin_inputs_resume_from_a_saved_copy(assay_home: Path) -> None:
    first = assay("batch", "-m", "echo", "{{input}}", "-i", "-", "--json", stdin="a\nb\n")
    job = json.loads(first.stdout)["job"]
    again = assay("batch", "-m", "echo", "{{input}}", "-i", "-", "--json", stdin="a\nb\n")
    assert json.loads(again.stdout)["job"] == job
    listed = assay("batch", "list", "--json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{{text}}", "-i", "nope.jsonl"], "no such input file or directory: /"),
        (["{{missing}}", "-i", "IN"], "the template uses {{missing}}, which is not set"),
        (["{{text}}", "-i", "IN", "-m", "nosuch"], "unknown model"),
        (["{{text}}", "-i", "IN", "--output", "x.txt"], "--output must end in .jsonl or .csv"),
    ],
)
def test_bad_commands_are_one_line(
    assay_home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", 3)
    args = [str(inputs) if a == "IN" else a for a in args]
    result = assay("batch", *(["-m", "echo"] if "-m" not in args else []), *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr.lower() or message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 8


def test_the_limiter_halves_on_429_and_ramps_back_up() -> None:
    async def scenario() -> list[int]:
        limiter = AdaptiveLimiter(8)
        seen = [limiter.limit]
        await limiter.throttle(0.01, 0.01)
        seen.append(limiter.limit)
        await limiter.throttle(0.01, 0.01)  # in the same pause: not halved again
        seen.append(limiter.limit)
        await asyncio.sleep(0.25)
        await limiter.throttle(None, 0.01)
        seen.append(limiter.limit)
        for _ in range(2):  # a full window of successes at 2 in flight: one more slot
            await limiter.success()
        seen.append(limiter.limit)
        for _ in range(3):
            await limiter.success()
        seen.append(limiter.limit)
        return seen

    assert asyncio.run(scenario()) == [8, 4, 4, 2, 3, 4]


def test_the_limiter_never_lets_more_than_the_limit_in() -> None:
    async def scenario() -> int:
        limiter = AdaptiveLimiter(3)
        peak = 0

        async def one() -> None:
            nonlocal peak
            async with limiter.slot():
                peak = max(peak, limiter.in_flight)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(one() for _ in range(20)))
        return peak

    assert asyncio.run(scenario()) == 3


def test_directory_and_glob_inputs_fill_path_name_and_content(
    assay_home: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("alpha")
    (notes / "b.md").write_text("beta")
    (notes / ".hidden").write_text("never")
    out = tmp_path / "out.jsonl"
    result = assay(
        "batch", "-m", "echo", "{{name}}: {{content}}", "-i", str(notes), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["response"] for line in out.read_text().splitlines()] == [
        "a.txt: alpha",
        "b.md: beta",
    ]
    result = assay("batch", "-m", "echo", "{{stem}}", "-i", str(notes / "*.txt"), "--json")
    assert json.loads(result.stdout)["total"] == 1


def test_a_terminal_gets_a_progress_bar(assay_home: Path, tmp_path: Path) -> None:
    import pty

    inputs = write_jsonl(tmp_path / "in.jsonl", 50)
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the terminal
        os.execv(sys.executable, [*ASSAY, "batch", "-m", "echo", "{{text}}", "-i", str(inputs)])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "50/50" in text and "ETA" in text and "/s" in text


def test_a_dead_server_stops_the_job_with_one_line_and_it_resumes_later(
    assay_home: Path, tmp_path: Path, upstream: Served
) -> None:
    from .conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    declare(assay_home, f"- {{alias: later, base_url: '{dead}', model: echo}}\n")
    inputs = write_jsonl(tmp_path / "in.jsonl", 5)
    result = assay("batch", "-m", "later", "{{text}}", "-i", str(inputs), "--retries", "1", "-q")
    assert result.returncode == 6
    assert result.stderr.strip().startswith("assay: error: cannot connect to")
    assert len(result.stderr.strip().splitlines()) == 1
    status = json.loads(assay("batch", "status", "--json").stdout)
    assert status["status"] == "stopped" and status["done"] == 0
    declare(assay_home, f"- {{alias: later, base_url: '{upstream.url}/v1', model: echo}}\n")
    again = assay("batch", "resume", status["id"], "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["done"] == 5


def test_the_cache_explains_a_miss(assay_home: Path) -> None:
    import assay as lib
    from assay import _sync
    from assay.run.pool import Runner, Task

    model = lib.get_async_model("echo")
    notes: list[str | None] = []

    def run(**options: object) -> None:
        runner = Runner(explain_cache=True, on_result=lambda r: notes.append(r.cache_note))
        _sync.run(runner.run([Task(0, model, "hello", options=dict(options))]))

    run(temperature=0)
    run(temperature=0)  # a hit: no note
    run(temperature=1)
    assert notes == [
        "nothing cached yet for echo",
        None,
        "the prompt was cached with different options (temperature)",
    ]


def test_a_job_whose_inputs_changed_is_not_resumed_by_position(
    assay_home: Path, tmp_path: Path
) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", 3)
    first = json.loads(assay("batch", "-m", "echo", "{{text}}", "-i", str(inputs), "--json").stdout)
    time.sleep(0.01)
    write_jsonl(inputs, 4)  # an item added: positions may have moved
    second = json.loads(
        assay("batch", "-m", "echo", "{{text}}", "-i", str(inputs), "--json").stdout
    )
    assert second["job"] != first["job"] and second["done"] == 4 and second["cached"] == 3
    stale = assay("batch", "resume", first["job"])
    assert stale.returncode == 2
    assert "have changed since it started" in stale.stderr


def test_a_provider_batch_must_fit_the_budget_before_it_is_sent(
    assay_home: Path, tmp_path: Path
) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", 3)
    assay_home.mkdir(parents=True, exist_ok=True)
    (assay_home / "prices.yaml").write_text("gpt-4o-mini: {input: 1000000, output: 1000000}\n")
    result = assay(
        "batch",
        "-m",
        "gpt-4o-mini",
        "{{text}}",
        "-i",
        str(inputs),
        "--provider-batch",
        "--max-cost",
        "1",
        env_extra={"OPENAI_API_KEY": "sk-x"},
    )
    assert result.returncode == 2
    assert "a provider batch cannot stop part-way" in result.stderr
