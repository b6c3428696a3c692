"""The response cache: one logged response per (model, options, messages), reused on a hit.

The key is a SHA-256 of the canonical JSON of its parts. Each part is hashed
on its own too and stored beside the key, so that ``--explain-cache`` can say
which part changed when a case misses: the options, the messages, or the model.

Options that change how a request is sent but not what the model answers
(timeouts, retries) are left out of the key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..store.logs import LogStore
from ..types import Request

__all__ = ["TRANSPORT_OPTIONS", "CacheHit", "CacheKey", "cache_key", "explain_miss", "lookup"]

TRANSPORT_OPTIONS = frozenset({"timeout", "connect_timeout", "max_retries"})


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    key: str
    model: str
    messages_key: str
    parts: dict[str, Any]  # each part's digest, for explaining a miss


def cache_key(model: str, request: Request, sample: int = 0) -> CacheKey:
    """The key for ``request`` on ``model``; ``sample`` tells repeats apart (``--repeat``)."""
    options = {k: v for k, v in request.options.items() if k not in TRANSPORT_OPTIONS}
    messages = [[m.role, m.content, [a.id for a in m.attachments]] for m in request.messages]
    parts: dict[str, Any] = {
        "model": model,
        "options": _digest(options),
        "messages": _digest(messages),
        "completion": request.completion,
        "sample": sample,
    }
    messages_key = str(parts["messages"])
    return CacheKey(_digest(parts), model, messages_key, {**parts, "options_raw": options})


@dataclass(frozen=True)
class CacheHit:
    response_id: int
    text: str
    row: dict[str, Any]


def lookup(store: LogStore, key: CacheKey) -> CacheHit | None:
    # Most lookups in a new job miss: check the index alone before reading a row.
    found = store._fetch("SELECT response_id FROM response_cache WHERE key = ?", (key.key,))
    if not found:
        return None
    rows = store._fetch("SELECT * FROM responses WHERE id = ?", (found[0][0],))
    if not rows:
        return None
    return CacheHit(rows[0]["id"], rows[0]["response"], dict(rows[0]))


def remember(conn: sqlite3.Connection, key: CacheKey, response_id: int) -> None:
    """Record a response under ``key``; call inside the transaction that logged it."""
    conn.execute(
        "INSERT OR REPLACE INTO response_cache"
        " (key, response_id, model, messages_key, parts_json, created_utc) VALUES (?,?,?,?,?,?)",
        (
            key.key,
            response_id,
            key.model,
            key.messages_key,
            json.dumps(key.parts, sort_keys=True),
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ),
    )


def explain_miss(store: LogStore, key: CacheKey) -> str:
    """Why ``key`` missed, in words: the nearest cached entry and the parts that differ."""
    rows = store._fetch(
        "SELECT parts_json FROM response_cache WHERE messages_key = ? LIMIT 20",
        (key.messages_key,),
    ) or store._fetch(
        "SELECT parts_json FROM response_cache WHERE model = ? ORDER BY rowid DESC LIMIT 1",
        (key.model,),
    )
    if not rows:
        return f"nothing cached yet for {key.model}"
    best: list[str] | None = None
    for (parts_json,) in rows:
        other = json.loads(parts_json)
        differ = [
            p
            for p in ("model", "messages", "options", "completion", "sample")
            if other.get(p) != key.parts.get(p)
        ]
        if best is None or len(differ) < len(best):
            best = differ
            if "options" in differ:
                old, new = other.get("options_raw", {}), key.parts["options_raw"]
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                best = [d if d != "options" else f"options ({', '.join(changed)})" for d in differ]
    assert best is not None
    if not best:
        return "cached, but the response it points to was deleted"
    if "messages" in best:
        return "no cached response for this prompt" + (f" on {key.model}" if len(best) == 1 else "")
    return "the prompt was cached with different " + ", ".join(best)
