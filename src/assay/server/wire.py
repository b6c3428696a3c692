"""The OpenAI wire format on the server side: requests in, responses and stream chunks out."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from ..attachments import Attachment, sniff
from ..errors import UsageError
from ..types import Message, Usage

__all__ = ["ChatRequest", "chunk", "completion_body", "parse_chat", "usage_body"]

# OpenAI request fields assay maps onto model options; other documented fields that only
# tune sampling further are passed through when the model accepts them.
_OPTION_FIELDS = (
    "temperature",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "reasoning_effort",
    "top_k",
    "min_p",
    "repeat_penalty",
)
_IGNORED = {
    "model",
    "messages",
    "prompt",
    "stream",
    "stream_options",
    "user",
    "n",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "service_tier",
    "store",
    "metadata",
    "max_tokens",
    "max_completion_tokens",
    "input",
    "encoding_format",
    "dimensions",
    "echo",
    "suffix",
    "best_of",
}


class ChatRequest:
    """A chat or completion request, in assay's terms."""

    def __init__(
        self,
        model: str,
        prompt: str,
        attachments: tuple[Attachment, ...],
        system: str | None,
        history: list[Message],
        options: dict[str, Any],
        stream: bool,
        include_usage: bool,
        user: str | None,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.attachments = attachments
        self.system = system
        self.history = history
        self.options = options
        self.stream = stream
        self.include_usage = include_usage
        self.user = user


def _text_and_attachments(content: Any, where: str) -> tuple[str, tuple[Attachment, ...]]:
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise UsageError(f"{where}.content must be a string or a list of parts")
    texts: list[str] = []
    attachments: list[Attachment] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            attachments.append(_image(str(part["image_url"].get("url", "")), f"{where}[{i}]"))
        else:
            raise UsageError(f"{where}.content[{i}]: unsupported part type {kind!r}")
    return "\n".join(texts), tuple(attachments)


def _image(url: str, where: str) -> Attachment:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: the image data is not valid base64") from None
        kind = header[5:].split(";")[0] or sniff(content) or "application/octet-stream"
        return Attachment(type=kind, content=content)
    if url.startswith(("http://", "https://")):
        return Attachment.from_arg(url)
    raise UsageError(f"{where}: image_url must be a data: or http(s) URL")


def _common(body: Any) -> tuple[str, dict[str, Any], bool, bool, str | None]:
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UsageError("'model' is required and must be a string")
    if body.get("n") not in (None, 1):
        raise UsageError("only n=1 is supported")
    options = {k: body[k] for k in _OPTION_FIELDS if body.get(k) is not None}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        options["max_tokens"] = limit
    unknown = sorted(set(body) - _IGNORED - set(_OPTION_FIELDS))
    options.update({k: body[k] for k in unknown})  # the model's own check names bad ones
    stream = bool(body.get("stream", False))
    stream_options = body.get("stream_options") or {}
    include_usage = bool(isinstance(stream_options, dict) and stream_options.get("include_usage"))
    user = body.get("user") if isinstance(body.get("user"), str) else None
    return model, options, stream, include_usage, user


def parse_chat(body: Any) -> ChatRequest:
    """``POST /v1/chat/completions``: the last user message is the prompt; the rest history."""
    model, options, stream, include_usage, user = _common(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise UsageError("'messages' must be a non-empty list")
    system_parts: list[str] = []
    turns: list[Message] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
        ):
            raise UsageError(f"messages[{i}] needs a role of system, user or assistant")
        text, attached = _text_and_attachments(m.get("content"), f"messages[{i}]")
        if m["role"] in ("system", "developer"):
            system_parts.append(text)
        else:
            turns.append(Message(m["role"], text, attached))
    if not turns or turns[-1].role != "user":
        raise UsageError("the last message must come from the user")
    last = turns.pop()
    return ChatRequest(
        model,
        last.content,
        last.attachments,
        "\n\n".join(system_parts) or None,
        turns,
        options,
        stream,
        include_usage,
        user,
    )


def parse_completion(body: Any) -> ChatRequest:
    """``POST /v1/completions``: a raw prompt string."""
    model, options, stream, include_usage, user = _common(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise UsageError("'prompt' must be a string")
    return ChatRequest(model, prompt, (), None, [], options, stream, include_usage, user)


def usage_body(usage: Usage) -> dict[str, Any]:
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    body: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cached_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def chunk(
    rid: str,
    model: str,
    created: int,
    *,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
    usage: Usage | None = None,
    completion: bool = False,
) -> str:
    """One server-sent event of a streamed chat completion (or text completion)."""
    if completion:
        choices = [] if usage else [{"index": 0, "text": text or "", "finish_reason": finish}]
        body: dict[str, Any] = {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
        }
    else:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        body = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }
    if usage is not None:
        body["usage"] = usage_body(usage)
    return f"data: {json.dumps(body)}\n\n"


def completion_body(
    rid: str, model: str, text: str, finish: str | None, usage: Usage, completion: bool = False
) -> dict[str, Any]:
    if completion:
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish}
        kind = "text_completion"
    else:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }
        kind = "chat.completion"
    return {
        "id": rid,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_body(usage),
    }
