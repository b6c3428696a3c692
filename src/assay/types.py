"""Plain data that flows between the API, the engine, providers and the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .attachments import Attachment

__all__ = ["Final", "Message", "ModelSpec", "Request", "Usage"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    attachments: tuple[Attachment, ...] = ()


@dataclass
class Usage:
    """Token counts, normalised across providers. ``None`` means the provider did not say.

    ``input_tokens`` is the whole input, cached parts included; ``cached_tokens``
    (read from a prompt cache) and ``cache_write_tokens`` are parts of it.
    ``output_tokens`` is the whole output, reasoning included; ``reasoning_tokens``
    is the part spent thinking.
    """

    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return {
            "input_tokens": self.input_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


@dataclass(frozen=True)
class Request:
    """What a backend is asked to do: messages in, text out."""

    messages: tuple[Message, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = True
    conversation_id: str | None = None
    completion: bool = False  # a raw text completion: no chat template

    @property
    def system(self) -> str | None:
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None


@dataclass
class Final:
    """The last item a backend yields: why it stopped, and the usage it reported."""

    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    resolved_model: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model a provider offers, as listed by ``assay models``."""

    id: str
    provider: str
    context_length: int | None = None
    key_name: str | None = None
    key_env: str | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    attachment_types: tuple[str, ...] = ()  # MIME types, or "image/*" style wildcards
    # Largest attachment in bytes, by MIME type, "image/*" wildcard, or "*" for any.
    attachment_limits: Mapping[str, int] = field(default_factory=dict)

    def accepts(self, kind: str) -> bool:
        """Whether this model takes attachments of MIME type ``kind``."""
        major = kind.split("/")[0]
        return kind in self.attachment_types or f"{major}/*" in self.attachment_types

    def limit_for(self, kind: str) -> int | None:
        """The size limit for an attachment of MIME type ``kind``, if there is one."""
        limits = self.attachment_limits
        return limits.get(kind, limits.get(kind.split("/")[0] + "/*", limits.get("*")))
