"""Attachments: images, PDFs and audio sent along with a prompt.

The type is sniffed from the content's magic bytes (the extension is only a
fallback), ``--at PATH TYPE`` overrides it. Attachments are stored once per
content hash in the log database and linked to every response that used them.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import UsageError

__all__ = ["Attachment", "sniff"]

# (offset, magic bytes, MIME type), checked in order.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"\xff\xf3", "audio/mpeg"),
    (0, b"\xff\xf2", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"OggS", "audio/ogg"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_ALIASES = {
    "image/jpg": "image/jpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
}


_FTYP = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"avif": "image/avif",
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
    b"isom": "video/mp4",
    b"iso2": "video/mp4",
    b"mp41": "video/mp4",
    b"mp42": "video/mp4",
    b"avc1": "video/mp4",
    b"dash": "video/mp4",
}


def sniff(data: bytes) -> str | None:
    """The MIME type of ``data`` from its first bytes, or None if unknown."""
    if data[:4] == b"RIFF" and data[8:12] in _RIFF:
        return _RIFF[data[8:12]]
    if data[4:8] == b"ftyp":  # ISO media: the brand says whether it is HEIC, AVIF, MP4...
        return _FTYP.get(data[8:12])
    for offset, magic, kind in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return kind
    return None


def _is_text(data: bytes) -> bool:
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start > 65530  # a character cut in half at the end of the sample
    return b"\x00" not in data[:65536]


def normalise_type(kind: str) -> str:
    kind = kind.strip().lower()
    return _ALIASES.get(kind, kind)


@dataclass(frozen=True)
class Attachment:
    """A file, URL or stdin payload with its MIME type."""

    type: str
    content: bytes | None = field(default=None, repr=False)
    path: str | None = None
    url: str | None = None

    @property
    def id(self) -> str:
        """SHA-256 of the content (or of the URL, when the content was not fetched)."""
        payload = self.content if self.content is not None else (self.url or "").encode()
        return hashlib.sha256(payload).hexdigest()

    @property
    def size(self) -> int | None:
        return len(self.content) if self.content is not None else None

    @property
    def name(self) -> str:
        if self.path:
            return Path(self.path).name
        if self.url:
            return Path(urlsplit(self.url).path).name or "attachment"
        return "attachment"

    def base64(self) -> str:
        if self.content is None:
            raise UsageError(f"{self.url} must be downloaded before it can be sent inline")
        return base64.b64encode(self.content).decode("ascii")

    def data_uri(self) -> str:
        return f"data:{self.type};base64,{self.base64()}"

    @classmethod
    def from_arg(cls, value: str, kind: str | None = None) -> Attachment:
        """A PATH, an http(s) URL, or ``-`` for stdin; ``kind`` overrides the sniffed type."""
        if value.startswith(("http://", "https://")):
            guessed = kind or mimetypes.guess_type(urlsplit(value).path)[0]
            if not guessed:
                raise UsageError(f"cannot tell the type of {value}: give it with --at URL TYPE")
            return cls(type=normalise_type(guessed), url=value)
        if value == "-":
            stdin = sys.stdin
            if stdin is None or stdin.isatty():
                raise UsageError("-a - reads the attachment from stdin, but nothing is piped in")
            try:
                content = stdin.buffer.read()
            except (OSError, ValueError) as e:
                raise UsageError(f"cannot read stdin: {e}") from None
            path = None
        else:
            try:
                content = Path(value).expanduser().read_bytes()
            except FileNotFoundError:
                raise UsageError(f"attachment {value} does not exist") from None
            except OSError as e:
                raise UsageError(f"cannot read attachment {value}: {e.strerror or e}") from None
            path = str(Path(value).expanduser().resolve())
        found = kind or sniff(content) or (mimetypes.guess_type(value)[0] if path else None)
        if not found and _is_text(content):
            found = "text/plain"
        if not found:
            raise UsageError(f"cannot tell the type of {value}: give it with --at {value} TYPE")
        return cls(type=normalise_type(found), content=content, path=path)
