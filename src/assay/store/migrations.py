"""Named, ordered schema migrations, recorded in the ``_migrations`` table.

Append new migrations to the end; never edit or reorder applied ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["MIGRATIONS", "migrate"]

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def _run(conn: sqlite3.Connection, *statements: str) -> None:
    # Not executescript(): it would COMMIT the BEGIN IMMEDIATE that migrate() holds.
    for statement in statements:
        conn.execute(statement)


@migration
def m001_conversations_and_responses(conn: sqlite3.Connection) -> None:
    _run(
        conn,
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            name TEXT,
            model TEXT NOT NULL,
            created_utc TEXT NOT NULL
        )""",
        """
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id TEXT REFERENCES conversations(id) ON DELETE SET NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            resolved_model TEXT,
            prompt TEXT NOT NULL,
            system TEXT,
            options_json TEXT NOT NULL DEFAULT '{}',
            response TEXT NOT NULL DEFAULT '',
            input_tokens INTEGER,
            cached_tokens INTEGER,
            output_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost_usd REAL,
            ttft_ms REAL,
            total_ms REAL,
            tokens_per_s REAL,
            finish_reason TEXT,
            error TEXT,
            datetime_utc TEXT NOT NULL
        )""",
        "CREATE INDEX responses_conversation ON responses(conversation_id, id)",
        "CREATE INDEX responses_model ON responses(model)",
        "CREATE INDEX responses_datetime ON responses(datetime_utc)",
    )


@migration
def m002_responses_fts(conn: sqlite3.Connection) -> None:
    _run(
        conn,
        """
        CREATE VIRTUAL TABLE responses_fts USING fts5(
            prompt, response, content='responses', content_rowid='id'
        )""",
        """
        CREATE TRIGGER responses_ai AFTER INSERT ON responses BEGIN
            INSERT INTO responses_fts(rowid, prompt, response)
            VALUES (new.id, new.prompt, new.response);
        END""",
        """
        CREATE TRIGGER responses_ad AFTER DELETE ON responses BEGIN
            INSERT INTO responses_fts(responses_fts, rowid, prompt, response)
            VALUES ('delete', old.id, old.prompt, old.response);
        END""",
        """
        CREATE TRIGGER responses_au AFTER UPDATE OF prompt, response ON responses BEGIN
            INSERT INTO responses_fts(responses_fts, rowid, prompt, response)
            VALUES ('delete', old.id, old.prompt, old.response);
            INSERT INTO responses_fts(rowid, prompt, response)
            VALUES (new.id, new.prompt, new.response);
        END""",
    )


@migration
def m003_cache_writes_and_cost_by_day(conn: sqlite3.Connection) -> None:
    _run(
        conn,
        "ALTER TABLE responses ADD COLUMN cache_write_tokens INTEGER",
        "ALTER TABLE responses ADD COLUMN price_source TEXT",
    )


@migration
def m004_attachments(conn: sqlite3.Connection) -> None:
    _run(
        conn,
        """
        CREATE TABLE attachments (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            path TEXT,
            url TEXT,
            size INTEGER,
            content BLOB
        )""",
        """
        CREATE TABLE response_attachments (
            response_id INTEGER NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            attachment_id TEXT NOT NULL REFERENCES attachments(id),
            position INTEGER NOT NULL,
            PRIMARY KEY (response_id, attachment_id, position)
        )""",
        "CREATE INDEX response_attachments_attachment ON response_attachments(attachment_id)",
    )


def applied(conn: sqlite3.Connection) -> list[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)"
    )
    return [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return their names."""
    names = [name for name, _ in MIGRATIONS]
    if applied(conn) == names:
        return []
    done: list[str] = []
    for name, fn in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")  # re-check under the lock: another process may have won
        try:
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                (name, datetime.now(timezone.utc).isoformat(timespec="seconds")),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done
