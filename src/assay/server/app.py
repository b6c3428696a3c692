"""``assay serve``: an OpenAI-compatible ASGI app over assay's models and engine.

Every request goes through the same engine as the CLI, so it is logged and priced
the same way, with the caller's ``user`` field and ``X-Assay-Tag`` header recorded.
Local models stay loaded between requests (unloaded after ``keep_alive`` idle
seconds) and requests to one local model take turns in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..api import AsyncConversation, AsyncModel, Call, get_async_model
from ..errors import (
    AssayError,
    HTTPStatusError,
    MissingKeyError,
    ModelLoadError,
    ProviderError,
    StoreError,
    UnknownModelError,
    UsageError,
)
from ..registry import all_models
from ..store.logs import new_id
from .wire import ChatRequest, chunk, completion_body, parse_chat, parse_completion

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 32 * 1024 * 1024
_CONVERSATION_ID = re.compile(r"[0-9A-Z]{26}")
# Load-time settings of a local model are the server's to choose, not each request's:
# a request could otherwise start thousands of threads or load many copies of a model.
SERVER_ONLY_OPTIONS = ("threads", "n_ctx")


def error(
    status: int, message: str, kind: str = "invalid_request_error", code: str | None = None
) -> JSONResponse:
    """OpenAI's error shape."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
    )


def error_for(e: AssayError) -> JSONResponse:
    if isinstance(e, UnknownModelError):
        return error(404, str(e), code="model_not_found")
    if isinstance(e, HTTPStatusError):
        status = e.status_code if e.status_code in (400, 401, 403, 404, 408, 429) else 502
        return error(status, str(e), "upstream_error")
    if isinstance(e, ProviderError):
        return error(502, str(e), "upstream_error")
    if isinstance(e, (MissingKeyError, ModelLoadError, StoreError)):
        return error(500, str(e), "server_error")
    return error(400, str(e))


class Server:
    """State shared by the handlers: warm models, per-model queues, counters."""

    def __init__(self, api_key: str | None, keep_alive: float, max_body: int) -> None:
        self.api_key = api_key
        self.keep_alive = keep_alive
        self.max_body = max_body
        self.models: dict[str, AsyncModel] = {}
        self.names: dict[str, str] = {}  # what clients call a model -> its id
        self.started = time.time()
        self.requests = 0
        self.in_flight = 0

    def model(self, name: str) -> AsyncModel:
        """One warm model (and one queue) per model, whatever alias the client used."""
        if name not in self.names:
            from ..registry import resolve

            self.names[name] = resolve(name)[1].id
        model_id = self.names[name]
        if model_id not in self.models:
            self.models[model_id] = get_async_model(model_id)
        return self.models[model_id]

    def authorised(self, request: Request) -> bool:
        if not self.api_key:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.api_key}".encode())

    async def body(self, request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise _TooBig()
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > self.max_body:
                raise _TooBig()
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as e:
            raise UsageError(f"the request body is not valid JSON: {e}") from None


class _TooBig(Exception):
    pass


def create_app(
    api_key: str | None = None, keep_alive: float = 300.0, max_body: int = MAX_BODY_BYTES
) -> Starlette:
    state = Server(api_key, keep_alive, max_body)

    async def guarded(request: Request, handler: Any) -> Response:
        if not state.authorised(request):
            return error(
                401,
                "missing or wrong API key: send 'Authorization: Bearer KEY'",
                code="invalid_api_key",
            )
        state.requests += 1
        state.in_flight += 1
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except _TooBig:
            return error(413, f"the request body is over {state.max_body:,} bytes")
        except AssayError as e:
            return error_for(e)
        except Exception as e:  # a bug: still answer in OpenAI's shape, never a bare 500
            return error(500, f"internal error: {type(e).__name__}: {e}", "server_error")
        finally:
            state.in_flight -= 1

    async def list_models(request: Request) -> Response:
        async def handler(_: Request) -> Response:
            data = [
                {"id": s.id, "object": "model", "created": 0, "owned_by": s.provider}
                for _, s in all_models()
            ]
            return JSONResponse({"object": "list", "data": data})

        return await guarded(request, handler)

    async def chat(request: Request) -> Response:
        return await guarded(request, lambda r: respond(r, parse_chat, completion=False))

    async def completions(request: Request) -> Response:
        return await guarded(request, lambda r: respond(r, parse_completion, completion=True))

    async def respond(request: Request, parse: Any, completion: bool) -> Response:
        req: ChatRequest = parse(await state.body(request))
        refused = [name for name in SERVER_ONLY_OPTIONS if name in req.options]
        if refused:
            raise UsageError(f"{refused[0]!r} is set by the server, not per request")
        model = state.model(req.model)
        conversation = AsyncConversation(model)
        cid = request.headers.get("x-assay-conversation")
        if cid:
            if not _CONVERSATION_ID.fullmatch(cid):
                raise UsageError(
                    "X-Assay-Conversation must be a conversation id (26 letters/digits)"
                )
            conversation.id = cid
        conversation.system = req.system
        conversation.messages = list(req.history)
        call = Call(user=req.user, tag=request.headers.get("x-assay-tag"), completion=completion)
        response = model.prompt(
            req.prompt,
            attachments=req.attachments,
            stream=req.stream,
            conversation=conversation,
            call=call,
            **req.options,
        )
        rid = ("cmpl-" if completion else "chatcmpl-") + new_id()
        if not req.stream:
            # Stop generating (and free the model) if the client goes away while it waits.
            task = asyncio.ensure_future(response.outcome())
            while not task.done():
                await asyncio.wait({task}, timeout=0.25)
                if not task.done() and await request.is_disconnected():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, AssayError):
                        await task
                    return Response(status_code=499)
            outcome = task.result()
            body = completion_body(
                rid, model.id, outcome.text, outcome.finish_reason, outcome.usage, completion
            )
            return JSONResponse(body)

        created = int(time.time())
        pieces = response.__aiter__()
        # Wait for the first piece before answering, so that a failure up to there (an
        # upstream 429, a bad option) gets its real HTTP status rather than a broken stream.
        first = await anext(pieces, None)

        async def events() -> AsyncIterator[str]:
            try:
                if not completion:
                    yield chunk(rid, model.id, created, role=True, text="")
                if first is not None:
                    yield chunk(rid, model.id, created, text=first, completion=completion)
                async for piece in pieces:
                    yield chunk(rid, model.id, created, text=piece, completion=completion)
                outcome = await response.outcome()
                finish = outcome.finish_reason or "stop"
                yield chunk(rid, model.id, created, finish=finish, completion=completion)
                if req.include_usage:
                    yield chunk(rid, model.id, created, usage=outcome.usage, completion=completion)
                yield "data: [DONE]\n\n"
            except Exception as e:  # headers are gone: report it in the stream, OpenAI-style
                reply = (
                    error_for(e)
                    if isinstance(e, AssayError)
                    else error(500, f"internal error: {type(e).__name__}: {e}", "server_error")
                )
                yield f"data: {json.dumps(json.loads(bytes(reply.body)))}\n\n"
            finally:
                await pieces.aclose()  # type: ignore[attr-defined]

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def embeddings(request: Request) -> Response:
        async def handler(r: Request) -> Response:
            body = await state.body(r)
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                raise UsageError("'model' is required and must be a string")
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else texts
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise UsageError("'input' must be a string or a list of strings")
            model = state.model(body["model"])
            vectors, tokens = await model.backend().embed(texts)
            return JSONResponse(
                {
                    "object": "list",
                    "model": model.id,
                    "data": [
                        {"object": "embedding", "index": i, "embedding": v}
                        for i, v in enumerate(vectors)
                    ],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )

        return await guarded(request, handler)

    async def status(request: Request) -> Response:
        async def handler(_: Request) -> Response:
            from ..providers.local import loaded_models

            return JSONResponse(
                {
                    "pid": os.getpid(),
                    "uptime_s": round(time.time() - state.started, 1),
                    "requests": state.requests,
                    "in_flight": state.in_flight,
                    "keep_alive_s": state.keep_alive,
                    "loaded": loaded_models(),
                    "models_in_use": sorted(state.models),
                }
            )

        return await guarded(request, handler)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "server": "assay"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from ..providers.local import unload_idle

        async def sweep() -> None:
            while True:
                await asyncio.sleep(max(1.0, min(30.0, state.keep_alive / 2)))
                await asyncio.to_thread(unload_idle, state.keep_alive)

        task = asyncio.create_task(sweep())
        try:
            yield
        finally:
            task.cancel()
            for model in state.models.values():
                with contextlib.suppress(Exception):
                    await model.aclose()

    routes = [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/assay/status", status, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return error(status, f"{request.method} {request.url.path}: {getattr(exc, 'detail', exc)}")

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: http_error, 405: http_error}
    )
    app.state.assay = state
    return app
