"""B7, evals: the same 500-case promptfoo-format suite, run by assay and by promptfoo.

Both run against the same `assay serve` (the echo model over HTTP, declared in the
suite as `openai:chat:echo` with `config.apiBaseUrl`) at the same concurrency
(16), with their caches off: promptfoo with `--no-cache`, assay with a fresh
ASSAY_HOME every run. Each case has three assertions (contains, regex,
not-icontains). Targets:

- wall time: assay at most 0.5x promptfoo's;
- a re-run, fully cached: under 2 s for the 500 cases;
- a 100,000-case suite on the in-process echo model: peak RSS under 300 MB.

promptfoo is the npm package (0.120.8, the newest that runs on Node 20; see
PEERS.md), installed in /tmp/peer-pf:

    mkdir -p /tmp/peer-pf && cd /tmp/peer-pf && npm init -y && npm install promptfoo@0.120.8
    .venv/bin/python bench/eval_vs_promptfoo.py [--runs 5] [--cases 500] [--big 100000]
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

import yaml

from _common import VENV_BIN, median, report, start_assay_serve

PROMPTFOO = Path(os.environ.get("ASSAY_PEER_PROMPTFOO", "/tmp/peer-pf/node_modules/.bin/promptfoo"))


def suite(path: Path, url: str | None, cases: int, tests_file: Path | None = None) -> Path:
    provider: object = (
        {"id": "openai:chat:echo", "config": {"apiBaseUrl": f"{url}/v1"}} if url else "echo"
    )
    data: dict[str, object] = {
        "description": "B7",
        "prompts": ["Tell me about {{topic}}"],
        "providers": [provider],
    }
    if tests_file is not None:
        data["tests"] = f"file://{tests_file.name}"
    else:
        data["tests"] = [
            {
                "vars": {"topic": f"item {i}"},
                "assert": [
                    {"type": "contains", "value": f"item {i}"},
                    {"type": "regex", "value": r"\d+"},
                    {"type": "not-icontains", "value": "banana"},
                ],
            }
            for i in range(cases)
        ]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd,
        env=env,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    if not PROMPTFOO.exists():
        sys.exit(f"promptfoo is not installed at {PROMPTFOO}: see this script's docstring")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_big:
            tests = root / "big.jsonl"
            with open(tests, "w") as f:
                for i in range(args.big):
                    f.write(
                        json.dumps(
                            {
                                "vars": {"topic": f"item {i}"},
                                "assert": [{"type": "contains", "value": f"item {i}"}],
                            }
                        )
                        + "\n"
                    )
            big = suite(root / "big.yaml", None, 0, tests)
            env = {**os.environ, "ASSAY_HOME": str(root / "big-home")}
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            seconds = timed(
                [str(VENV_BIN / "assay"), "eval", str(big), "-j", "16", "-q"], env, root
            )
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            note = "" if rss > before else " (not measurable: an earlier child used more)"
            report(
                f"B7 memory: {args.big:,}-case suite on echo",
                [
                    ("assay eval peak RSS", f"{rss / 1024:.0f} MB{note} (target < 300 MB)"),
                    ("time", f"{seconds:.1f} s ({args.big / seconds:.0f} cases/s)"),
                ],
            )
        server_home = root / "server"
        server_home.mkdir()
        proc, url = start_assay_serve(server_home)
        try:
            path = suite(root / "suite.yaml", url, args.cases)
            assay_s, pf_s, cached_s = [], [], []
            for i in range(args.runs):
                home = root / f"assay-{i}"
                env = {**os.environ, "ASSAY_HOME": str(home)}
                cmd = [str(VENV_BIN / "assay"), "eval", str(path), "-j", "16", "-q"]
                assay_s.append(timed(cmd, env, root))
                cached_s.append(timed(cmd, env, root))  # the same suite again: all cached
                pf_env = {
                    **os.environ,
                    "PROMPTFOO_DISABLE_TELEMETRY": "1",
                    "PROMPTFOO_DISABLE_UPDATE": "1",
                    "OPENAI_API_KEY": "unused",
                    "PROMPTFOO_CONFIG_DIR": str(root / f"pf-{i}"),
                }
                pf_s.append(
                    timed(
                        [
                            str(PROMPTFOO),
                            "eval",
                            "-c",
                            str(path),
                            "--no-cache",
                            "-j",
                            "16",
                            "--no-progress-bar",
                            "--no-table",
                        ],
                        pf_env,
                        root,
                    )
                )
        finally:
            proc.terminate()
            proc.wait(30)
        a, p, c = median(assay_s), median(pf_s), median(cached_s)
        report(
            f"B7: {args.cases}-case suite, echo over HTTP, -j 16 (median of {args.runs})",
            [
                ("assay eval", f"{a:.2f} s  runs " + ", ".join(f"{x:.2f}" for x in assay_s)),
                (
                    "promptfoo eval --no-cache",
                    f"{p:.2f} s  runs " + ", ".join(f"{x:.2f}" for x in pf_s),
                ),
                ("ratio", f"{a / p:.2f}x promptfoo's wall time (target <= 0.5)"),
                (
                    "assay re-run, all cached",
                    f"{c:.2f} s  runs "
                    + ", ".join(f"{x:.2f}" for x in cached_s)
                    + " (target < 2 s)",
                ),
            ],
        )


if __name__ == "__main__":
    main()
