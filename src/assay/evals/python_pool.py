"""Python assertions in worker processes with time and memory limits.

Each worker is ``python -I`` (no user site, no environment-driven imports) with
an address-space limit (``ASSAY_PYTHON_MEMORY_MB``, default 1024) and no core
files, kept alive across assertions so that a suite of thousands does not pay
a process start each. An assertion that runs past ``ASSAY_PYTHON_TIMEOUT``
seconds (default 10) has its worker killed and fails with a timeout; the next
assertion gets a fresh worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["PythonPool"]

WORKER = Path(__file__).with_name("_pyworker.py")


def _limits(memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class PythonPool:
    def __init__(self, size: int = 2, cwd: Path | None = None) -> None:
        self.size = max(1, size)
        self.cwd = cwd
        try:
            self.timeout = float(os.environ.get("ASSAY_PYTHON_TIMEOUT", "10"))
            self.memory_mb = int(os.environ.get("ASSAY_PYTHON_MEMORY_MB", "1024"))
        except ValueError:
            raise UsageError(
                "ASSAY_PYTHON_TIMEOUT must be seconds and ASSAY_PYTHON_MEMORY_MB a whole number"
            ) from None
        self._idle: asyncio.Queue[asyncio.subprocess.Process | None] | None = None

    async def _start(self) -> asyncio.subprocess.Process:
        memory = self.memory_mb
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            str(WORKER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=self.cwd,
            preexec_fn=lambda: _limits(memory),
            limit=1 << 24,
        )

    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self.size):
                self._idle.put_nowait(None)  # started on first use
        proc = await self._idle.get()
        try:
            if proc is None or proc.returncode is not None:
                proc = await self._start()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            await proc.stdin.drain()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), self.timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                proc = None
                return {"error": f"timed out after {self.timeout:g}s"}
            if not line:
                await proc.wait()
                code = proc.returncode
                proc = None
                return {"error": f"the assertion's process died (exit {code}; out of memory?)"}
            try:
                answer: dict[str, Any] = json.loads(line)
            except ValueError:  # out of step with its answers: never reuse it
                proc.kill()
                await proc.wait()
                proc = None
                return {"error": "the assertion's process answered garbage"}
            return answer
        finally:
            self._idle.put_nowait(proc)

    async def aclose(self) -> None:
        if self._idle is None:
            return
        while not self._idle.empty():
            proc = self._idle.get_nowait()
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
