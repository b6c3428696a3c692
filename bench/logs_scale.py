"""B4, the log at scale: a million logged responses, then `assay logs stats` and a full-text
search, against `llm logs -q` on an llm database of the same size.

Targets: `assay logs stats` under 1 s; `assay logs -q WORD -n 10` under 100 ms (median).

Both databases get the same 1,000,000 synthetic rows (prompts and responses drawn from a
fixed vocabulary; the search word appears in about 1% of rows). assay's is written through
its own migrations; llm's is created by llm's own migrations and the rows go into its
`responses` table, which llm 0.36 still searches (rows from before its `turns` tables).
Databases are cached in --dir; pass --rebuild to make them again.

    .venv/bin/python bench/logs_scale.py [--rows 1000000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path

from _common import PEER_LLM, VENV_BIN, ensure_peer_llm, median, report, wall

WORD = "zebra"
VOCAB = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "model",
    "prompt",
    "answer",
    "token",
    "cost",
    "photo",
    "image",
    "describe",
    "summarise",
    "list",
    "three",
    "colours",
    "red",
    "green",
    "blue",
    "python",
    "sqlite",
    "search",
    "index",
    "budget",
    "batch",
    "eval",
    "arena",
    "local",
    "server",
    "stream",
    "latency",
    "cache",
    "retry",
    "error",
]
MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "smollm2", "echo")


def rows(n: int):  # type: ignore[no-untyped-def]
    rng = random.Random(42)
    start = time.time() - n * 30
    for i in range(n):
        prompt = " ".join(rng.choices(VOCAB, k=12))
        response = " ".join(rng.choices(VOCAB, k=40))
        if i % 100 == 7:
            response += f" {WORD}"
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * 30))
        yield (
            MODELS[i % len(MODELS)],
            prompt,
            response,
            12 + i % 50,
            40 + i % 90,
            200.0 + i % 1000,
            round((i % 7) * 0.0001, 6),
            when,
        )


def build_assay(path: Path, n: int) -> None:
    os.environ["ASSAY_HOME"] = str(path.parent)
    from assay.store import LogStore

    LogStore(path).close()  # migrations
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        conn.executemany(
            "INSERT INTO responses (model, provider, prompt, response, input_tokens,"
            " output_tokens, total_ms, cost_usd, datetime_utc) VALUES (?, 'bench', ?, ?, ?, ?,"
            " ?, ?, ?)",
            rows(n),
        )
    conn.close()


def build_llm(path: Path, n: int) -> None:
    python = PEER_LLM / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-c",
            "import sqlite_utils; from llm.migrations import migrate;"
            f"migrate(sqlite_utils.Database({str(path)!r}))",
        ],
        check=True,
    )
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")

    def llm_rows():  # type: ignore[no-untyped-def]
        for i, (model, prompt, response, tin, tout, ms, _, when) in enumerate(rows(n)):
            yield (f"{i:026d}", model, prompt, response, int(ms), when, tin, tout)

    with conn:
        conn.executemany(
            "INSERT INTO responses (id, model, prompt, response, duration_ms, datetime_utc,"
            " input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            llm_rows(),
        )
    conn.close()


def timed(cmd: list[str], env: dict[str, str], runs: int) -> float:
    wall(cmd, env)  # warm the page cache
    return median([wall(cmd, env) for _ in range(runs)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/assay-bench-b4"))
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    llm = ensure_peer_llm(with_smollm2=False)
    assay_dir, llm_dir = args.dir / f"assay-{args.rows}", args.dir / f"llm-{args.rows}"
    for d in (assay_dir, llm_dir):
        d.mkdir(parents=True, exist_ok=True)
    assay_db, llm_db = assay_dir / "logs.db", llm_dir / "logs.db"
    if args.rebuild:
        for db in (assay_db, llm_db):
            db.unlink(missing_ok=True)
    if not assay_db.exists():
        start = time.perf_counter()
        build_assay(assay_db, args.rows)
        print(f"built {assay_db} in {time.perf_counter() - start:.0f} s")
    if not llm_db.exists():
        start = time.perf_counter()
        build_llm(llm_db, args.rows)
        print(f"built {llm_db} in {time.perf_counter() - start:.0f} s")

    env_a = {**os.environ, "ASSAY_HOME": str(assay_dir)}
    env_l = {**os.environ, "LLM_USER_PATH": str(llm_dir)}
    assay = str(VENV_BIN / "assay")
    stats = timed([assay, "logs", "stats"], env_a, args.runs)
    search_a = timed([assay, "logs", "-q", WORD, "-n", "10"], env_a, args.runs)
    search_l = timed([str(llm), "logs", "-q", WORD, "-n", "10"], env_l, args.runs)
    help_a = timed([assay, "--help"], env_a, args.runs)

    os.environ["ASSAY_HOME"] = str(assay_dir)
    from assay.store import LogStore

    store = LogStore(assay_db)
    in_process = []
    for _ in range(args.runs):
        start = time.perf_counter()
        found = store.query(10, search=WORD)
        in_process.append(time.perf_counter() - start)
    assert len(found) == 10

    report(
        f"B4 logs at scale: {args.rows:,} rows, median of {args.runs} runs (wall, CLI)",
        [
            ("assay logs stats", f"{stats * 1000:.0f} ms  (target < 1000 ms)"),
            (
                "assay logs -q WORD -n 10",
                f"{search_a * 1000:.0f} ms  (target < 100 ms; "
                f"of which {help_a * 1000:.0f} ms is process start-up)",
            ),
            ("  the query alone, in-process", f"{median(in_process) * 1000:.2f} ms"),
            ("llm logs -q WORD -n 10", f"{search_l * 1000:.0f} ms"),
            ("assay / llm (search)", f"{search_a / search_l:.3f}"),
            ("verdict", "PASS" if stats < 1 and search_a < 0.1 else "FAIL"),
        ],
    )


if __name__ == "__main__":
    main()
