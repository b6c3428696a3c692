"""B2, local decode: tokens/s of `assay -m smollm2` for a 256-token generation, against
llama-cpp-python called directly on the same GGUF with the same settings.

Both sides render the same prompt with the GGUF's chat template, sample greedily
(temperature 0, seed 1) with the same threads and context, ignore nothing, and are
measured the same way: (tokens - 1) / (time of last token - time of first token).
Runs alternate between the two so that both see the same machine load.

Target: assay at least 0.95x of direct.

    .venv/bin/python bench/local_decode.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import VENV_BIN, median, report

PROMPT = (
    "Write a long, detailed story about a lighthouse keeper who finds a message in a "
    "bottle. Describe the sea, the weather and every step of the journey."
)
TOKENS = 256
THREADS = os.cpu_count() or 1
N_CTX = 4096

DIRECT = r"""
import json, sys, time
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from assay.providers.local import smollm2_path
prompt, tokens, threads, n_ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(str(smollm2_path()), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
            verbose=False)
text = lambda t: llm._model.token_get_text(t)
fmt = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], text(llm.token_eos()),
                          text(llm.token_bos()))
rendered = fmt(messages=[{"role": "user", "content": prompt}]).prompt
llm.set_seed(1)
stamps = []
for chunk in llm.create_completion(rendered, max_tokens=tokens, temperature=0, stream=True):
    if chunk["choices"][0]["text"] or chunk["choices"][0]["finish_reason"] is None:
        stamps.append(time.perf_counter())
n = len(stamps)
print(json.dumps({"tokens": n, "tokens_per_s": (n - 1) / (stamps[-1] - stamps[0])}))
"""


def run_assay(home: str) -> dict:
    out = subprocess.run(
        [
            str(VENV_BIN / "assay"),
            "-m",
            "smollm2",
            "--json",
            "--no-log",
            "-o",
            "max_tokens",
            str(TOKENS),
            "-o",
            "temperature",
            "0",
            "-o",
            "seed",
            "1",
            "-o",
            "threads",
            str(THREADS),
            "-o",
            "n_ctx",
            str(N_CTX),
            PROMPT,
        ],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "ASSAY_HOME": home},
    ).stdout
    data = json.loads(out)
    return {"tokens": data["usage"]["output_tokens"], "tokens_per_s": data["tokens_per_s"]}


def run_direct() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", DIRECT, PROMPT, str(TOKENS), str(THREADS), str(N_CTX)],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    a_rates, d_rates, counts = [], [], set()
    with tempfile.TemporaryDirectory() as home:
        for i in range(args.runs):
            pair = [("assay", lambda: run_assay(home)), ("direct", run_direct)]
            for name, fn in pair if i % 2 == 0 else reversed(pair):
                result = fn()
                counts.add((name, result["tokens"]))
                (a_rates if name == "assay" else d_rates).append(result["tokens_per_s"])
                time.sleep(0.2)
    a, d = median(a_rates), median(d_rates)
    report(
        f"B2 local decode, SmolLM2 Q4_1, {THREADS} threads, median of {args.runs} runs",
        [
            ("tokens generated", ", ".join(f"{n}={t}" for n, t in sorted(counts))),
            ("assay", f"{a:.1f} tokens/s  (runs: {', '.join(f'{x:.1f}' for x in a_rates)})"),
            (
                "llama-cpp-python",
                f"{d:.1f} tokens/s  (runs: {', '.join(f'{x:.1f}' for x in d_rates)})",
            ),
            ("assay / direct", f"{a / d:.3f}  (target >= 0.95)"),
            ("verdict", "PASS" if a / d >= 0.95 else "FAIL"),
        ],
    )


if __name__ == "__main__":
    main()
