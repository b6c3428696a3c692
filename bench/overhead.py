"""B3, per-call overhead: 200 short prompts through assay's Python API (logging on) to an
OpenAI-compatible server, against raw httpx calls to the same server.

The server is llama-cpp-python's own (`python -m llama_cpp.server`) serving SmolLM2,
asked for one token per call. Both clients stream, keep one connection pool, and
send the same body, always the same prompt (so the server's work per call is constant
and small); calls alternate so both see the same server and machine load.
Overhead = median(assay call) - median(raw call).

Target: at most 5 ms added per call (median), logging included.

    .venv/bin/python bench/overhead.py [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import httpx

from _common import median, report

ROOT_TESTS = os.path.join(os.path.dirname(__file__), "..", "tests")


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    sys.path.insert(0, ROOT_TESTS)
    from assay.providers.local import smollm2_path
    from conftest import start_llama_server  # the same helper the tests use

    return start_llama_server(smollm2_path(), n_ctx=1024)


def raw_call(client: httpx.Client, body: dict) -> str:
    text = []
    with client.stream("POST", "/chat/completions", json=body) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                for choice in json.loads(line[5:])["choices"]:
                    text.append(choice["delta"].get("content") or "")
    return "".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    proc, base = start_server()
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ["ASSAY_HOME"] = home
            with open(os.path.join(home, "models.yaml"), "w") as f:
                f.write(f"- alias: served\n  base_url: {base}\n  model: smollm2\n")
            import assay

            model = assay.get_model("served")
            options = {"max_tokens": 1, "temperature": 0}
            body = {
                "model": "smollm2",
                "stream": True,
                "stream_options": {"include_usage": True},
                **options,
            }
            client = httpx.Client(base_url=base, timeout=60)
            for i in range(5):  # warm both paths: connections, imports, the server's cache
                model.prompt(f"Say {i}", **options).text()
                raw_call(client, {**body, "messages": [{"role": "user", "content": f"Say {i}"}]})
            a_times, r_times = [], []
            for i in range(args.calls):
                # One fixed prompt: the server's prompt cache then makes its own work the
                # same small amount on every call, so what differs is the client.
                prompt = "Say hi"
                messages = [{"role": "user", "content": prompt}]
                order = ["assay", "raw"] if i % 2 == 0 else ["raw", "assay"]
                for name in order:
                    start = time.perf_counter()
                    if name == "assay":
                        model.prompt(prompt, **options).text()
                        a_times.append(time.perf_counter() - start)
                    else:
                        raw_call(client, {**body, "messages": messages})
                        r_times.append(time.perf_counter() - start)
            logged = assay.LogStore(os.path.join(home, "logs.db")).stats()[0]["responses"]
    finally:
        proc.terminate()
        proc.wait(10)
    a, r = median(a_times) * 1000, median(r_times) * 1000
    report(
        f"B3 per-call overhead, {args.calls} calls to llama_cpp.server (SmolLM2, 1 token)",
        [
            ("assay API (logged)", f"{a:.2f} ms median  ({logged} rows logged)"),
            ("raw httpx", f"{r:.2f} ms median"),
            ("added per call", f"{a - r:.2f} ms  (target <= 5 ms)"),
            ("assay / raw", f"{a / r:.3f}"),
            ("verdict", "PASS" if a - r <= 5 else "FAIL"),
        ],
    )


if __name__ == "__main__":
    main()
