"""Shared fixtures: an isolated user directory for every test, and real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assay import registry
from assay.store import logs as store_logs

ROOT = Path(__file__).resolve().parent.parent
_KEY_VARS = [v for v in os.environ if v.endswith("_API_KEY") or v.startswith("ASSAY_")]


@pytest.fixture(autouse=True)
def assay_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own ASSAY_HOME and no API keys from the environment."""
    home = tmp_path / "assay-home"
    for var in _KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("ASSAY_HOME", str(home))
    registry.providers.cache_clear()
    yield home
    with store_logs._stores_lock:
        for store in store_logs._stores.values():
            store.close()
        store_logs._stores.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from assay.providers.local import smollm2_path

    return smollm2_path()


def start_llama_server(model: Path, n_ctx: int = 2048) -> tuple[subprocess.Popen[bytes], str]:
    """Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1; return it and its base URL.

    ``--interrupt_requests False``: otherwise a new streaming request cuts off the running one.
    """
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            "--interrupt_requests",
            "False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for(f"{base}/models", proc)
    except BaseException:
        proc.kill()
        raise
    return proc, base


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server, serving SmolLM2 on 127.0.0.1."""
    proc, base = start_llama_server(smollm2_path)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def declare(home: Path, text: str) -> None:
    """Write ``models.yaml`` in the test's user directory."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "models.yaml").write_text(text)
