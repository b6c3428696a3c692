"""B8, batch throughput and memory.

1. 2,000 short prompts to the `echo` model served over HTTP by `assay serve`, at
   concurrency 16, three ways, each as its own process:
   - `assay batch` (logging every response to SQLite, resumable, cached);
   - a raw asyncio + httpx client at the same concurrency (no logging at all);
   - `llm` in a shell loop, one process per prompt. It is timed on the first
     `--llm-items` prompts and scaled to 2,000 (it takes ~1 s a prompt).
   Targets: at least 8x faster than llm, and at least 0.9x the raw client's throughput.
   Shown for an instant upstream and for one that answers after 50 ms (the echo
   model's `delay` option): with an instant upstream, client and server fight over
   this machine's two cores, so any client CPU shows as lost throughput.
2. A 100,000-line JSONL input on the in-process `echo` model: peak RSS of the
   `assay batch` process. Target: under 200 MB.

    .venv/bin/python bench/batch_throughput.py [--runs 3] [--items 2000] [--big 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import VENV_BIN, ensure_peer_llm, median, report, start_assay_serve

RAW_CLIENT = r"""
import asyncio, json, sys, time
import httpx

async def main(url, model, n, concurrency, delay):
    queue = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def worker():
            while not queue.empty():
                i = queue.get_nowait()
                body = {"model": model, "messages": [{"role": "user", "content": f"item {i}"}]}
                if delay:
                    body["delay"] = delay
                r = await client.post("/chat/completions", json=body)
                r.raise_for_status()
                r.json()["choices"][0]["message"]["content"]
        await asyncio.gather(*(worker() for _ in range(concurrency)))

url, model = sys.argv[1], sys.argv[2]
asyncio.run(main(url, model, int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def client_home(root: Path, url: str, delay: float) -> Path:
    home = Path(tempfile.mkdtemp(dir=root))
    extra = f", extra_body: {{delay: {delay}}}" if delay else ""
    (home / "models.yaml").write_text(
        f"- {{alias: served-echo, base_url: '{url}/v1', model: echo{extra}}}\n"
    )
    return home


def throughput(root: Path, url: str, items: int, runs: int, delay: float, llm_items: int) -> dict:
    inputs = root / "in.jsonl"
    inputs.write_text("".join(json.dumps({"text": f"item {i}"}) + "\n" for i in range(items)))
    raw_script = root / "raw_client.py"
    raw_script.write_text(RAW_CLIENT)
    assay_s, raw_s = [], []
    for _ in range(runs):
        home = client_home(root, url, delay)  # a fresh log DB each run: no cache hits
        env = {**os.environ, "ASSAY_HOME": str(home)}
        cmd = [
            str(VENV_BIN / "assay"),
            "batch",
            "-m",
            "served-echo",
            "{{text}}",
            "-i",
            str(inputs),
            "-j",
            "16",
            "-q",
        ]
        assay_s.append(timed(cmd, env))
        raw_cmd = [
            sys.executable,
            str(raw_script),
            f"{url}/v1",
            "echo",
            str(items),
            "16",
            str(delay),
        ]
        raw_s.append(timed(raw_cmd, env))
    llm = ensure_peer_llm(with_smollm2=False)
    llm_home = Path(tempfile.mkdtemp(dir=root))
    (llm_home / "extra-openai-models.yaml").write_text(
        f"- model_id: served-echo\n  model_name: echo\n  api_base: '{url}/v1'\n"
    )
    env = {**os.environ, "LLM_USER_PATH": str(llm_home), "OPENAI_API_KEY": "unused"}
    # llm cannot send the echo model's `delay`, so its loop runs against an instant upstream:
    # a head start for the peer.
    loop = (
        f'for i in $(seq 0 {llm_items - 1}); do "{llm}" -m served-echo "item $i" >/dev/null; done'
    )
    llm_s = timed(["bash", "-c", loop], env) * items / llm_items
    return {
        "assay": median(assay_s),
        "raw": median(raw_s),
        "llm": llm_s,
        "assay_runs": assay_s,
        "raw_runs": raw_s,
    }


def peak_rss(root: Path, big: int) -> float:
    path = root / "big.jsonl"
    with open(path, "w") as f:
        for i in range(big):
            f.write(json.dumps({"text": f"line {i} of the big input"}) + "\n")
    home = Path(tempfile.mkdtemp(dir=root))
    env = {**os.environ, "ASSAY_HOME": str(home)}
    cmd = [
        str(VENV_BIN / "assay"),
        "batch",
        "-m",
        "echo",
        "{{text}}",
        "-i",
        str(path),
        "-j",
        "16",
        "-q",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after <= before:
        print("  (peak RSS not measurable: an earlier child used more)", file=sys.stderr)
    print(f"  {big:,} items in {seconds:.1f} s ({big / seconds:.0f}/s)")
    return after / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--llm-items", type=int, default=50)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_big:
            # First, so that the other children's RSS cannot hide it.
            rss = peak_rss(root, args.big)
            report(
                f"B8 memory: {args.big:,}-line JSONL on echo",
                [("assay batch peak RSS", f"{rss:.0f} MB (target < 200 MB)")],
            )
        server_home = root / "server"
        server_home.mkdir()
        proc, url = start_assay_serve(server_home)
        try:
            for delay in (0.0, 0.05):
                r = throughput(root, url, args.items, args.runs, delay, args.llm_items)
                per_s = {k: args.items / r[k] for k in ("assay", "raw", "llm")}
                report(
                    f"B8 throughput: {args.items} prompts, -j 16, upstream delay {delay * 1000:.0f}"
                    f" ms (median of {args.runs})",
                    [
                        (
                            "assay batch",
                            f"{r['assay']:.2f} s, {per_s['assay']:.0f}/s  runs "
                            + ", ".join(f"{x:.2f}" for x in r["assay_runs"]),
                        ),
                        (
                            "raw asyncio + httpx",
                            f"{r['raw']:.2f} s, {per_s['raw']:.0f}/s  runs "
                            + ", ".join(f"{x:.2f}" for x in r["raw_runs"]),
                        ),
                        ("llm shell loop", f"{r['llm']:.1f} s (scaled from {args.llm_items})"),
                        (
                            "assay vs raw",
                            f"{per_s['assay'] / per_s['raw']:.2f}x throughput (target >= 0.9)",
                        ),
                        ("assay vs llm", f"{r['llm'] / r['assay']:.1f}x faster (target >= 8)"),
                    ],
                )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
