"""The Python API: models, responses and conversations, async first with sync twins.

import assay
model = assay.get_model("smollm2")
response = model.prompt("Name a colour", temperature=0)
for piece in response:        # streams
    print(piece, end="")
print(response.usage)

async_model = assay.get_async_model("smollm2")
text = await async_model.prompt("hi").text()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _sync
from .attachments import Attachment
from .engine import Execution, Outcome
from .errors import AssayError, MissingKeyError, UsageError
from .keys import env_var_for, get_key
from .options import validate_options
from .providers.base import Backend, Provider
from .registry import resolve
from .store.logs import log_store, new_id
from .types import Message, ModelSpec, Request, Usage

__all__ = [
    "AsyncConversation",
    "AsyncModel",
    "AsyncResponse",
    "Call",
    "Conversation",
    "Model",
    "Response",
    "get_async_model",
    "get_model",
]


@dataclass(frozen=True)
class Call:
    """How a prompt was asked: the caller's ``user`` and tag, and raw completion mode."""

    user: str | None = None
    tag: str | None = None
    completion: bool = False


class AsyncModel:
    """A model, ready to prompt. The backend (a loaded GGUF, an HTTP pool) opens on first use."""

    def __init__(
        self,
        provider: Provider,
        spec: ModelSpec,
        *,
        key: str | None = None,
        db: Path | str | None = None,
    ) -> None:
        self.provider = provider
        self.spec = spec
        self.db = db
        self._key = key
        self._backend: Backend | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.id} ({self.spec.provider})>"

    def key(self) -> str | None:
        """The API key this model will use; raises MissingKeyError if it needs one and has none."""
        name = self.spec.key_name
        if not name:
            return None
        key = self._key or get_key(name, self.spec.key_env)
        if not key:
            env = self.spec.key_env or env_var_for(name)
            raise MissingKeyError(
                f"model {self.spec.id} needs the {name!r} key: set {env} or run"
                f" 'assay keys set {name}'"
            )
        return key

    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self.provider.open(self.spec, self.key())
        return self._backend

    def options(self, given: dict[str, Any] | list[tuple[str, Any]]) -> dict[str, Any]:
        """Validate and coerce options for this model (raises OptionError)."""
        return validate_options(given, self.provider.options, self.spec.id)

    def prompt(
        self,
        prompt: str,
        *,
        system: str | None = None,
        attachments: Sequence[Attachment] = (),
        stream: bool = True,
        log: bool = True,
        conversation: AsyncConversation | None = None,
        call: Call | None = None,
        **options: Any,
    ) -> AsyncResponse:
        """Prompt the model. ``call`` carries who asked and how (``assay serve`` sets it)."""
        execution = self._execution(
            prompt, system, attachments, stream, log, conversation, options, call or Call()
        )
        return AsyncResponse(execution, conversation)

    def check_attachments(self, attachments: Sequence[Attachment]) -> None:
        """Refuse, before anything is sent, attachments this model cannot take."""
        from .registry import all_models

        spec = self.spec
        for a in attachments:
            if not spec.accepts(a.type):
                able = [s.id for _, s in all_models() if s.accepts(a.type)]
                hint = f"; models that can: {', '.join(able)}" if able else "; no model can"
                raise UsageError(f"{spec.id} cannot take {a.type} attachments{hint}")
            limit = spec.limit_for(a.type)
            if limit is not None and a.size is not None and a.size > limit:
                raise UsageError(
                    f"{a.name} is {a.size:,} bytes; {spec.id} takes attachments of at most"
                    f" {limit:,} bytes"
                )

    def conversation(self, conversation_id: str | None = None) -> AsyncConversation:
        return AsyncConversation(self, conversation_id)

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()
            self._backend = None

    def _execution(
        self,
        prompt: str,
        system: str | None,
        attachments: Sequence[Attachment],
        stream: bool,
        log: bool,
        conversation: AsyncConversation | None,
        options: dict[str, Any],
        call: Call,
    ) -> Execution:
        validated = self.options(options)
        self.check_attachments(attachments)
        messages: list[Message] = []
        if conversation is not None:
            system = system if system is not None else conversation.system
        if system:
            messages.append(Message("system", system))
        if conversation is not None:
            messages.extend(conversation.messages)
        messages.append(Message("user", prompt, tuple(attachments)))
        conversation_id = conversation.id if conversation is not None else new_id()
        request = Request(tuple(messages), validated, stream, conversation_id, call.completion)
        return Execution(
            self.backend(),
            self.spec,
            request,
            prompt=prompt,
            log=log,
            db=self.db,
            conversation_id=conversation_id,
            user=call.user,
            tag=call.tag,
        )


class _ResponseBase:
    def __init__(self, execution: Execution, conversation: Any) -> None:
        self._execution = execution
        self._conversation = conversation
        self._added = False  # added to its conversation yet

    @property
    def model(self) -> str:
        return self._execution.spec.id

    @property
    def prompt(self) -> str:
        return self._execution.prompt

    @property
    def conversation_id(self) -> str | None:
        return self._execution.conversation_id

    def _done(self) -> Outcome:
        if self._execution.outcome.error and self._execution.done:
            raise AssayError(self._execution.outcome.error)
        out = self._execution.outcome
        if self._conversation is not None and not self._added:
            self._added = True
            request = self._execution.request
            self._conversation.add(request.system, request.messages[-1], out.text)
        return out

    def to_dict(self, outcome: Outcome) -> dict[str, Any]:
        return {
            "id": outcome.log_id,
            "model": self.model,
            "resolved_model": outcome.resolved_model,
            "conversation_id": self.conversation_id,
            "prompt": self.prompt,
            "system": self._execution.request.system,
            "options": dict(self._execution.request.options),
            "attachments": [
                {"type": a.type, "path": a.path, "url": a.url, "size": a.size, "id": a.id}
                for a in self._execution.request.messages[-1].attachments
            ],
            "text": outcome.text,
            "usage": outcome.usage.to_dict(),
            "cost_usd": outcome.cost_usd,
            "price_source": outcome.price_source,
            "finish_reason": outcome.finish_reason,
            "ttft_ms": outcome.ttft_ms,
            "total_ms": outcome.total_ms,
            "tokens_per_s": outcome.tokens_per_s,
        }


class AsyncResponse(_ResponseBase):
    """A response that streams on ``async for`` and completes on ``await .text()``."""

    async def __aiter__(self) -> AsyncIterator[str]:
        if self._execution.done:
            yield self._done().text
            return
        async for piece in self._execution.stream():
            yield piece
        self._done()

    async def outcome(self) -> Outcome:
        if not self._execution.done:
            await self._execution.run()
        return self._done()

    async def text(self) -> str:
        return (await self.outcome()).text

    async def usage(self) -> Usage:
        return (await self.outcome()).usage

    async def cost(self) -> float | None:
        return (await self.outcome()).cost_usd

    async def json(self) -> dict[str, Any]:
        return self.to_dict(await self.outcome())


class Response(_ResponseBase):
    """A response that streams on iteration and completes on ``.text()`` or ``.usage``."""

    def __iter__(self) -> Iterator[str]:
        if self._execution.done:
            yield self._done().text
            return
        yield from _sync.iterate(self._execution.stream())
        self._done()

    def outcome(self) -> Outcome:
        if not self._execution.done:
            _sync.run(self._execution.run())
        return self._done()

    def text(self) -> str:
        return self.outcome().text

    @property
    def usage(self) -> Usage:
        return self.outcome().usage

    @property
    def id(self) -> int | None:
        """The log row id (None when not logged)."""
        return self.outcome().log_id

    @property
    def cost(self) -> float | None:
        """Dollars this response cost (None when no price is known)."""
        return self.outcome().cost_usd

    def json(self) -> dict[str, Any]:
        return self.to_dict(self.outcome())


class AsyncConversation:
    """A chain of prompts that each see the earlier turns."""

    def __init__(self, model: AsyncModel, conversation_id: str | None = None) -> None:
        self.model = model
        self.id = conversation_id or new_id()
        self.system: str | None = None
        self.messages: list[Message] = []
        if conversation_id is not None:
            found = log_store(model.db).conversation(conversation_id)
            if found is None:
                raise AssayError(f"no conversation with id {conversation_id!r} in the logs")
            _, self.system, self.messages = found

    def add(self, system: str | None, prompt: Message, text: str) -> None:
        self.system = system or self.system
        if text:  # an empty reply would be an empty message, which some APIs refuse
            self.messages += [prompt, Message("assistant", text)]

    def prompt(self, prompt: str, *, system: str | None = None, **kwargs: Any) -> AsyncResponse:
        return self.model.prompt(prompt, system=system, conversation=self, **kwargs)


class Conversation(AsyncConversation):
    """The sync twin of :class:`AsyncConversation`."""

    def __init__(self, model: Model, conversation_id: str | None = None) -> None:
        super().__init__(model.async_model, conversation_id)
        self.sync_model = model

    def prompt(self, prompt: str, *, system: str | None = None, **kwargs: Any) -> Response:  # type: ignore[override]
        return self.sync_model.prompt(prompt, system=system, conversation=self, **kwargs)


class Model:
    """The sync twin of :class:`AsyncModel`; everything runs on one background loop."""

    def __init__(self, async_model: AsyncModel) -> None:
        self.async_model = async_model

    @property
    def id(self) -> str:
        return self.async_model.id

    @property
    def spec(self) -> ModelSpec:
        return self.async_model.spec

    def __repr__(self) -> str:
        return f"<Model {self.id} ({self.spec.provider})>"

    def prompt(
        self,
        prompt: str,
        *,
        system: str | None = None,
        attachments: Sequence[Attachment] = (),
        stream: bool = True,
        log: bool = True,
        conversation: AsyncConversation | None = None,
        call: Call | None = None,
        **options: Any,
    ) -> Response:
        execution = self.async_model._execution(
            prompt, system, attachments, stream, log, conversation, options, call or Call()
        )
        return Response(execution, conversation)

    def conversation(self, conversation_id: str | None = None) -> Conversation:
        return Conversation(self, conversation_id)

    def close(self) -> None:
        _sync.run(self.async_model.aclose())


def get_async_model(
    name: str | None = None,
    *,
    key: str | None = None,
    db: Path | str | None = None,
    via_server: bool = False,
) -> AsyncModel:
    """The model called ``name`` (an id or alias), or the default model.

    With ``via_server``, a local model is prompted through a running ``assay serve``
    (which keeps it loaded and logs the call) when there is one.
    """
    provider, spec = resolve(name)
    model = AsyncModel(provider, spec, key=key, db=db)
    if via_server and spec.provider == "local":
        from .server.client import ServedBackend
        from .server.runtime import running_server

        info = running_server()
        if info is not None:
            model._backend = ServedBackend(info, spec.id)
    return model


def get_model(
    name: str | None = None,
    *,
    key: str | None = None,
    db: Path | str | None = None,
    via_server: bool = False,
) -> Model:
    """The sync twin of :func:`get_async_model`."""
    return Model(get_async_model(name, key=key, db=db, via_server=via_server))
