"""Running ``assay serve``: binding, the state file, status, and finding a running server.

A running server writes ``serve.json`` (pid, host, port) into the user directory and
removes it when it stops. ``assay -m smollm2 'hi'`` reads it to send local prompts to the
warm server instead of loading the model in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..settings import user_dir, write_atomic

__all__ = [
    "ServerInfo",
    "run",
    "running_server",
    "server_status",
    "state_path",
]


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    host: str
    port: int

    @property
    def connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        return f"http://{host}:{self.port}"


def state_path() -> Path:
    return user_dir() / "serve.json"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_server(check: bool = True) -> ServerInfo | None:
    """The ``assay serve`` running for this user directory, if it answers."""
    path = state_path()
    try:
        data = json.loads(path.read_text())
        info = ServerInfo(int(data["pid"]), str(data["host"]), int(data["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(info.pid):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    if check and not _answers(info):
        return None
    return info


def _answers(info: ServerInfo) -> bool:
    """A quick ``GET /health`` with the standard library (httpx would build a TLS context)."""
    import http.client

    conn = http.client.HTTPConnection(info.connect_host, info.port, timeout=0.5)
    try:
        conn.request("GET", "/health")
        return bool(json.loads(conn.getresponse().read()).get("server") == "assay")
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def server_status(api_key: str | None = None) -> dict[str, Any] | None:
    info = running_server()
    if info is None:
        return None
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    resp = httpx.get(f"{info.url}/assay/status", headers=headers, timeout=5)
    if resp.status_code == 401:
        raise UsageError("the server wants its API key: pass --api-key or set ASSAY_SERVE_API_KEY")
    data: dict[str, Any] = resp.json()
    data["url"] = info.url
    return data


def run(
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key: str | None = None,
    keep_alive: float = 300.0,
    max_body: int = 32 * 1024 * 1024,
    log_level: str = "warning",
) -> None:
    """Serve until SIGINT or SIGTERM; in-flight requests finish, and their logs are written."""
    import uvicorn

    from .app import create_app

    if not is_loopback(host) and not api_key:
        raise UsageError(
            f"serving on {host} needs --api-key (or ASSAY_SERVE_API_KEY): "
            "anyone who can reach it could spend your keys"
        )
    other = running_server()
    if other is not None:
        raise UsageError(f"assay serve is already running at {other.url} (pid {other.pid})")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it, keep-alive requests wait ~40 ms on
    # Nagle's algorithm meeting the client's delayed ACK (uvicorn sets it only on sockets
    # it creates itself).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(api_key, keep_alive, max_body),
        log_level=log_level,
        timeout_graceful_shutdown=30,
        access_log=False,
    )
    server = _server_class()(config)
    path = state_path()
    write_atomic(
        path,
        json.dumps({"pid": os.getpid(), "host": host, "port": bound_port, "started": time.time()}),
    )
    url = ServerInfo(os.getpid(), host, bound_port).url
    print(f"assay serve: listening on {url}/v1 (pid {os.getpid()})", flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, but a SIGTERM or SIGINT ends with a clean exit (status 0) after the
        in-flight requests finish, rather than re-raising the signal at the very end,
        which would skip the clean-up that follows."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {
                sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server
