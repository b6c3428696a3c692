"""Reading and writing log rows."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..attachments import Attachment
from ..types import Message
from .db import connect, store_error, write

__all__ = ["LogRecord", "LogStore", "insert_record", "log_store", "new_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A ULID: 26 characters that sort by creation time."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@dataclass
class LogRecord:
    """One response, as stored in the ``responses`` table."""

    model: str
    provider: str
    prompt: str
    response: str = ""
    system: str | None = None
    conversation_id: str | None = None
    resolved_model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    price_source: str | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_per_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    attachments: tuple[Attachment, ...] = ()
    user: str | None = None
    tag: str | None = None
    datetime_utc: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    )


_TOTALS = """
    SUM(responses) AS responses, CAST(SUM(input_tokens) AS INTEGER) AS input_tokens,
    CAST(SUM(cached_tokens) AS INTEGER) AS cached_tokens,
    CAST(SUM(cache_write_tokens) AS INTEGER) AS cache_write_tokens,
    CAST(SUM(output_tokens) AS INTEGER) AS output_tokens,
    CAST(SUM(reasoning_tokens) AS INTEGER) AS reasoning_tokens,
    SUM(total_ms) / 1000.0 AS total_s, SUM(ttft_ms) / NULLIF(SUM(ttft_n), 0) AS avg_ttft_ms,
    SUM(tokens_per_s) / NULLIF(SUM(tps_n), 0) AS avg_tokens_per_s, SUM(errors) AS errors,
    CASE WHEN SUM(priced) > 0 THEN SUM(cost_usd) END AS cost_usd,
    SUM(responses) - SUM(priced) AS unpriced
"""


def insert_record(
    conn: sqlite3.Connection,
    record: LogRecord,
    also: Callable[[sqlite3.Connection, int], None] | None = None,
) -> int:
    """Insert ``record`` inside the caller's transaction; return the response id."""
    row = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "attachments"}
    row["options_json"] = json.dumps(row.pop("options"), sort_keys=True)
    columns = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    if record.conversation_id:
        conn.execute(
            "INSERT OR IGNORE INTO conversations (id, model, created_utc) VALUES (?, ?, ?)",
            (record.conversation_id, record.model, record.datetime_utc),
        )
    cur = conn.execute(f"INSERT INTO responses ({columns}) VALUES ({marks})", row)
    response_id = cur.lastrowid
    assert response_id is not None
    for position, a in enumerate(record.attachments):
        conn.execute(
            "INSERT OR IGNORE INTO attachments (id, type, path, url, size, content)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (a.id, a.type, a.path, a.url, a.size, a.content),
        )
        conn.execute(
            "INSERT INTO response_attachments (response_id, attachment_id, position)"
            " VALUES (?, ?, ?)",
            (response_id, a.id, position),
        )
    if also is not None:
        also(conn, response_id)
    return response_id


def fts_query(text: str) -> str:
    """Each word as a quoted FTS5 phrase, so user input can never be FTS syntax."""
    words = re.findall(r"\w+", text)
    return " ".join('"' + w + '"' for w in words)


class LogStore:
    """The responses and conversations tables behind one connection."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.conn = connect(path)
        self.path = str(path) if path else self.conn.execute("PRAGMA database_list").fetchone()[2]
        # One connection, shared by the threads of this process: take turns on it.
        self._lock = threading.RLock()

    def close(self) -> None:
        self.conn.close()

    def insert(
        self, record: LogRecord, also: Callable[[sqlite3.Connection, int], None] | None = None
    ) -> int:
        """Write one response (and its conversation, the first time); return its id.

        ``also(conn, response_id)`` runs inside the same transaction, so that a job's
        record of the item commits together with the response, or not at all.
        """
        try:
            with self._lock, write(self.conn) as conn:
                return insert_record(conn, record, also)
        except sqlite3.Error as e:
            raise store_error(self.path, e) from None

    def query(
        self,
        limit: int | None = 3,
        *,
        model: str | None = None,
        search: str | None = None,
        conversation_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest matching rows, returned oldest first (as a transcript reads)."""
        where: list[str] = []
        args: list[Any] = []
        sql = "SELECT r.* FROM responses r"
        order = "r.id"
        if search:
            # FTS drives the query, newest match first, so LIMIT stops the scan early.
            sql = "SELECT r.* FROM responses_fts f JOIN responses r ON r.id = f.rowid"
            where.append("responses_fts MATCH ?")
            args.append(fts_query(search) or '""')
            order = "f.rowid"
        if model:
            where.append("(r.model = ? OR r.resolved_model = ?)")
            args += [model, model]
        if conversation_id:
            where.append("r.conversation_id = ?")
            args.append(conversation_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order} DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            with self._lock:
                rows = [dict(r) for r in self.conn.execute(sql, args)]
        except sqlite3.Error as e:
            raise store_error(self.path, e) from None
        for r in rows:
            r["options"] = json.loads(r.pop("options_json") or "{}")
            r["attachments"] = []
        by_id = {r["id"]: r for r in rows}
        if by_id:
            marks = ",".join("?" * len(by_id))
            for a in self._fetch(
                "SELECT ra.response_id, a.id, a.type, a.path, a.url, a.size"
                " FROM response_attachments ra JOIN attachments a ON a.id = ra.attachment_id"
                f" WHERE ra.response_id IN ({marks}) ORDER BY ra.response_id, ra.position",
                tuple(by_id),
            ):
                info = {k: a[k] for k in ("id", "type", "path", "url", "size")}
                by_id[a["response_id"]]["attachments"].append(info)
        rows.reverse()
        return rows

    def delete(self, ids: list[int]) -> list[int]:
        """Delete responses by id; return the ids that existed."""
        try:
            with self._lock, write(self.conn) as conn:
                found = [
                    i
                    for i in ids
                    if conn.execute("SELECT 1 FROM responses WHERE id = ?", (i,)).fetchone()
                ]
                conn.executemany("DELETE FROM responses WHERE id = ?", [(i,) for i in found])
                conn.execute(
                    "DELETE FROM attachments WHERE id NOT IN"
                    " (SELECT attachment_id FROM response_attachments)"
                )
                conn.execute(
                    "DELETE FROM conversations WHERE id NOT IN"
                    " (SELECT conversation_id FROM responses"
                    "  WHERE conversation_id IS NOT NULL)"
                )
        except sqlite3.Error as e:
            raise store_error(self.path, e) from None
        return found

    def stats(self) -> list[dict[str, Any]]:
        """Count, tokens, time and cost per model (from the per-day totals table)."""
        return [
            dict(r)
            for r in self._fetch(f"""
            SELECT model, {_TOTALS} FROM stats_daily GROUP BY model HAVING SUM(responses) > 0
            ORDER BY responses DESC, model
        """)
        ]

    def stats_by_day(self) -> list[dict[str, Any]]:
        """Count, tokens and cost per UTC day and model, oldest day first."""
        return [
            dict(r)
            for r in self._fetch(f"""
            SELECT day, model, {_TOTALS} FROM stats_daily GROUP BY day, model
            HAVING SUM(responses) > 0 ORDER BY day, model
        """)
        ]

    def latest_conversation_id(self) -> str | None:
        row = self._fetch(
            "SELECT conversation_id FROM responses WHERE conversation_id IS NOT NULL"
            " ORDER BY id DESC LIMIT 1"
        )
        return row[0][0] if row else None

    def conversation(self, conversation_id: str) -> tuple[str, str | None, list[Message]] | None:
        """The model, latest system prompt and message history of a conversation, or None."""
        head = self._fetch("SELECT model FROM conversations WHERE id = ?", (conversation_id,))
        if not head:
            return None
        messages: list[Message] = []
        system: str | None = None
        for r in self._fetch(
            "SELECT id, prompt, response, system FROM responses"
            " WHERE conversation_id = ? AND error IS NULL AND response != '' ORDER BY id",
            (conversation_id,),
        ):
            attached = tuple(
                Attachment(type=a["type"], content=a["content"], path=a["path"], url=a["url"])
                for a in self._fetch(
                    "SELECT a.* FROM response_attachments ra JOIN attachments a"
                    " ON a.id = ra.attachment_id WHERE ra.response_id = ? ORDER BY ra.position",
                    (r["id"],),
                )
            )
            messages += [
                Message("user", r["prompt"], attached),
                Message("assistant", r["response"]),
            ]
            system = r["system"] or system
        return head[0]["model"], system, messages

    def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return list(self.conn.execute(sql, args))
        except sqlite3.Error as e:
            raise store_error(self.path, e) from None


_stores: dict[str, LogStore] = {}
_stores_lock = threading.Lock()


def log_store(path: Path | str | None = None) -> LogStore:
    """One shared store per database file and process."""
    from .db import db_path

    key = str(path or db_path())
    with _stores_lock:
        if key not in _stores:
            _stores[key] = LogStore(key)
        return _stores[key]
