"""The CLI's side of a running ``assay serve``: send a local model's prompt to the warm server.

Plain ``http.client`` in a worker thread rather than httpx: a one-shot CLI call would
spend more time importing httpx and setting up its async client than the request takes.
The server logs the call, so this backend tells the engine not to log it again.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..errors import ConnectError, ProviderError, StreamError, UnknownModelError, UsageError
from ..providers._threads import stream_from_thread
from ..providers.base import Backend
from ..types import Final, Request
from .runtime import ServerInfo

__all__ = ["ServedBackend"]


class ServedBackend(Backend):
    logs_responses = True

    def __init__(self, info: ServerInfo, model: str) -> None:
        self.info = info
        self.model = model
        self.api_key = os.environ.get("ASSAY_SERVE_API_KEY")

    def body(self, request: Request) -> dict[str, Any]:
        from ..providers.openai import openai_message

        return {
            "model": self.model,
            "messages": [openai_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            **request.options,
        }

    def headers(self, request: Request) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "X-Assay-Tag": "cli"}
        if request.conversation_id:
            headers["X-Assay-Conversation"] = request.conversation_id
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def generate(self, request: Request) -> AsyncIterator[str | Final]:
        conns: list[http.client.HTTPConnection] = []

        def hang_up() -> None:
            # An abandoned stream: close the socket so the server stops generating.
            for conn in conns:
                if conn.sock is not None:
                    with contextlib.suppress(OSError):
                        conn.sock.shutdown(socket.SHUT_RDWR)

        return stream_from_thread(
            lambda stop: self._exchange(request, conns), "assay-served", hang_up
        )

    def _exchange(
        self, request: Request, conns: list[http.client.HTTPConnection]
    ) -> Iterator[str | Final]:
        from ..providers.openai import OpenAIBackend

        where = f"{self.info.url}/v1/chat/completions"
        timeout = float(request.options.get("timeout", 300))
        conn = http.client.HTTPConnection(self.info.connect_host, self.info.port, timeout=timeout)
        conns.append(conn)
        try:
            conn.request(
                "POST",
                "/v1/chat/completions",
                json.dumps(self.body(request)),
                self.headers(request),
            )
            resp = conn.getresponse()
            if resp.status >= 400:
                raise _error(resp.status, resp.read(), where)
            final = Final()
            for raw in resp:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    yield final
                    return
                chunk = json.loads(data)
                if chunk.get("error"):
                    raise ProviderError(f"assay serve: {chunk['error'].get('message')}")
                yield from OpenAIBackend._parse_chunk(chunk, final)
            raise StreamError(f"the stream from {where} ended early")
        except (OSError, http.client.HTTPException) as e:
            raise ConnectError(f"lost assay serve at {self.info.url}: {e}") from None
        except ValueError as e:
            raise StreamError(f"malformed stream chunk from {where}: {e}") from None
        finally:
            conn.close()


def _error(status: int, payload: bytes, where: str) -> Exception:
    try:
        message = str(json.loads(payload)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = payload.decode("utf-8", "replace")[:200]
    if status == 404:
        return UnknownModelError(message)
    if status == 401:
        return UsageError(
            f"assay serve wants its API key: set ASSAY_SERVE_API_KEY, or use "
            f"--no-server ({message})"
        )
    if status in (400, 413):
        return UsageError(message)
    return ProviderError(f"{where} answered {status}: {message}")
