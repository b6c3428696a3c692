"""The provider interface: one small async contract every model source implements.

A *provider* lists the models it offers and opens a *backend* for one of them.
A backend turns a :class:`~assay.types.Request` into an async stream of text
pieces followed by one :class:`~assay.types.Final`. Everything else (timing,
logging, conversations, the sync API) lives above this line, in the engine.

Third-party packages add providers by exposing a ``Provider`` subclass under
the ``assay.providers`` entry-point group, which is how the built-ins are
registered too. Import heavy SDKs inside ``open()`` or the backend, never at
module level, so that ``assay --help`` stays instant.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from typing import ClassVar

from ..options import COMMON_OPTIONS, Option
from ..types import Final, ModelSpec, Request

__all__ = ["Backend", "Provider"]


class Backend(ABC):
    """An opened model, ready to generate. May hold a loaded model or an HTTP pool."""

    #: True when the other end logs every response itself (a running ``assay serve``),
    #: so the engine must not log it a second time.
    logs_responses: bool = False

    @abstractmethod
    def generate(self, request: Request) -> AsyncIterator[str | Final]:
        """Yield text pieces as they arrive, then exactly one ``Final``."""

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embedding vectors for ``texts`` and the input tokens read, where the model can."""
        from ..errors import UsageError

        raise UsageError("this model does not make embeddings")

    async def warm(self, request: Request) -> None:  # noqa: B027 - optional hook
        """Get ready for ``request`` (load weights, say) before the clock starts."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release connections or memory."""


class Provider(ABC):
    """A source of models: local GGUF files, an OpenAI-compatible server, a fake."""

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = COMMON_OPTIONS

    @abstractmethod
    def models(self) -> Iterable[ModelSpec]:
        """The models this provider offers right now (cheap: no loading, no network)."""

    @abstractmethod
    def open(self, spec: ModelSpec, key: str | None) -> Backend:
        """A backend for ``spec``; ``key`` is its API key when it needs one."""
