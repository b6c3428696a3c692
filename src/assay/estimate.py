"""Count tokens before a job runs: text with the model's own tokenizer where there is one,
images with each provider's documented formula, the rest by stated approximation.

Every count carries a ``method`` string, so an estimate can say how it was made.
"""

from __future__ import annotations

import atexit
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .attachments import Attachment
from .errors import UsageError
from .types import ModelSpec

__all__ = ["Count", "count_attachment", "count_text", "image_tokens"]

CHARS_PER_TOKEN = 4
OPENAI_CHAT_OVERHEAD = 7  # per request with one user message: OpenAI's cookbook count


@dataclass
class Count:
    tokens: int
    method: str


def _openai_encoding(model: str) -> tuple[Any, str]:
    import bpe_openai

    name = (
        "cl100k_base"
        if model.startswith(("gpt-4-", "gpt-3.5")) or model == "gpt-4"
        else ("o200k_base")
    )
    return bpe_openai.get_encoding(name), name


@lru_cache(maxsize=4)
def _gguf_vocab(path: str) -> Any:
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):
        vocab = Llama(model_path=path, vocab_only=True, verbose=False)
    atexit.register(vocab.close)  # llama_cpp's own __del__ fails at interpreter shutdown
    return vocab


def count_text(spec: ModelSpec, text: str, system: str | None = None) -> Count:
    """Input tokens of a one-message prompt, with the model's tokenizer where there is one."""
    if spec.provider == "openai" and spec.config.get("official"):
        encoding, name = _openai_encoding(str(spec.config.get("model") or spec.id))
        n = len(encoding.encode(text)) + (len(encoding.encode(system)) + 4 if system else 0)
        return Count(
            n + OPENAI_CHAT_OVERHEAD,
            f"{name} tokenizer (tiktoken-compatible) + {OPENAI_CHAT_OVERHEAD} chat tokens",
        )
    if spec.provider == "local":
        from .providers.local import LocalBackend, _Renderer
        from .types import Message

        path = LocalBackend(spec)._path()
        vocab = _gguf_vocab(str(path))
        messages = ((Message("system", system),) if system else ()) + (Message("user", text),)
        tokens = _Renderer(vocab).tokens(messages)
        return Count(
            len(tokens), f"the model's own GGUF tokenizer ({path.name}), chat template included"
        )
    if spec.provider == "echo":
        from .providers.echo import count_tokens

        return Count(count_tokens(f"{system or ''}\n{text}"), "the echo model's own count: words")
    n = math.ceil(len(text) / CHARS_PER_TOKEN) + (
        math.ceil(len(system) / CHARS_PER_TOKEN) if system else 0
    )
    return Count(
        n,
        f"approximate: 1 token per {CHARS_PER_TOKEN} characters (no offline "
        f"tokenizer for {spec.provider})",
    )


# OpenAI's vision guide: tile-priced models (base, per 512 px tile), and patch-priced models
# (32 px patches, at most 1536, times a factor). Dated names match by prefix.
_OPENAI_PATCHES = {
    "gpt-4.1-mini": 1.62,
    "gpt-4.1-nano": 2.46,
    "o4-mini": 1.72,
    "gpt-5-mini": 1.62,
    "gpt-5-nano": 2.46,
}
_OPENAI_TILES = {
    "gpt-4o-mini": (2833, 5667),
    "gpt-5": (70, 140),
    "o1": (75, 150),
    "o3": (75, 150),
    "gpt-4o": (85, 170),
    "gpt-4.1": (85, 170),
    "gpt-4.5": (85, 170),
}
ANTHROPIC_MAX_PIXELS = 1092 * 1092  # about 1.15 megapixels: larger images are scaled down


def _by_prefix(model: str, table: dict[str, Any]) -> Any:
    for name in sorted(table, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return table[name]
    return None


def _openai_patches(width: int, height: int) -> int:
    """OpenAI's patch count, with its documented rescale when over 1536 patches."""

    def up(x: float) -> int:
        return math.ceil(x - 1e-9)

    n = up(width / 32) * up(height / 32)
    if n <= 1536:
        return n
    r = math.sqrt(32 * 32 * 1536 / (width * height))
    w_p, h_p = width * r / 32, height * r / 32
    r *= min(math.floor(w_p) / w_p, math.floor(h_p) / h_p)
    return min(1536, up(width * r / 32) * up(height * r / 32))


def image_tokens(spec: ModelSpec, width: int, height: int) -> tuple[int, str]:
    """Tokens one image costs as input, by the provider's documented formula."""
    model = str(spec.config.get("model") or spec.id)
    if spec.provider == "anthropic":
        scale = min(1.0, 1568 / max(width, height))
        scale = min(scale, math.sqrt(ANTHROPIC_MAX_PIXELS / (width * height)))
        w, h = width * scale, height * scale
        return math.ceil(w * h / 750), (
            "Anthropic: width x height / 750, after scaling to <= 1568 px and ~1.15 MP"
        )
    if spec.provider == "gemini":
        if width <= 384 and height <= 384:
            return 258, "Gemini: 258 tokens for an image up to 384x384"
        tiles = math.ceil(width / 768) * math.ceil(height / 768)
        return tiles * 258, "Gemini: 258 tokens per 768x768 tile"
    if spec.provider == "openai":
        factor = _by_prefix(model, _OPENAI_PATCHES)
        if factor is not None:
            return math.ceil(_openai_patches(width, height) * factor), (
                f"OpenAI: 32 px patches (max 1536) x {factor}"
            )
        base, per_tile = _by_prefix(model, _OPENAI_TILES) or (85, 170)
        scale = min(1.0, 2048 / max(width, height))
        w, h = width * scale, height * scale
        short = min(w, h)
        if short > 768:
            w, h = w * 768 / short, h * 768 / short
        tiles = math.ceil(w / 512) * math.ceil(h / 512)
        return base + per_tile * tiles, (
            f"OpenAI: {base} + {per_tile} per 512 px tile (high detail)"
        )
    raise UsageError(f"{spec.id} does not take images, so they cannot be priced for it")


def count_attachment(spec: ModelSpec, attachment: Attachment) -> Count:
    kind = attachment.type
    if not spec.accepts(kind):
        raise UsageError(f"{spec.id} cannot take {kind} attachments ({attachment.name})")
    if kind.startswith("image/"):
        from PIL import Image, UnidentifiedImageError

        Image.MAX_IMAGE_PIXELS = None  # only the header is read: no decompression bomb here
        try:
            with Image.open(Path(attachment.path or "")) as image:
                width, height = image.size
        except (OSError, UnidentifiedImageError) as e:
            raise UsageError(f"cannot read image {attachment.name}: {e}") from None
        n, method = image_tokens(spec, width, height)
        return Count(n, f"{method}; {attachment.name} is {width}x{height}")
    if kind == "application/pdf":
        pages = max(
            1,
            (attachment.content or b"").count(b"/Type /Page")
            - ((attachment.content or b"").count(b"/Type /Pages")),
        )
        per_page = 258 if spec.provider == "gemini" else 1500
        how = (
            "Gemini: 258 tokens per page"
            if per_page == 258
            else ("approximate: 1,500 tokens per page")
        )
        return Count(pages * per_page, f"{how}; {attachment.name} has {pages} page(s)")
    if kind.startswith("audio/") and spec.provider == "gemini":
        seconds = _wav_seconds(attachment.content or b"")
        if seconds is None:
            raise UsageError(f"cannot tell how long {attachment.name} is: only WAV is measured")
        return Count(
            math.ceil(seconds * 32),
            f"Gemini: 32 tokens per second of audio; {attachment.name} is {seconds:.1f} s",
        )
    raise UsageError(f"no token formula for {kind} on {spec.id}")


def _wav_seconds(data: bytes) -> float | None:
    import io
    import wave

    try:
        with wave.open(io.BytesIO(data)) as w:
            return float(w.getnframes()) / float(w.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError):
        return None
