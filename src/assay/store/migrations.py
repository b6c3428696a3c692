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


_STAT_SUMS = (
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_ms",
    "cost_usd",
)


def _stats_change(row: str, sign: str) -> str:
    """An UPSERT that adds (sign '+') or removes (sign '-') one response's figures."""
    sums = ", ".join(f"{sign}coalesce({row}.{c}, 0)" for c in _STAT_SUMS)
    updates = ", ".join(
        f"{c} = {c} + excluded.{c}"
        for c in (
            "responses",
            *_STAT_SUMS,
            "ttft_ms",
            "ttft_n",
            "tokens_per_s",
            "tps_n",
            "errors",
            "priced",
        )
    )
    return f"""
        INSERT INTO stats_daily (day, model, responses, {", ".join(_STAT_SUMS)}, ttft_ms, ttft_n,
                                 tokens_per_s, tps_n, errors, priced)
        VALUES (substr({row}.datetime_utc, 1, 10), {row}.model, {sign}1, {sums},
                {sign}coalesce({row}.ttft_ms, 0), {sign}({row}.ttft_ms IS NOT NULL),
                {sign}coalesce({row}.tokens_per_s, 0), {sign}({row}.tokens_per_s IS NOT NULL),
                {sign}({row}.error IS NOT NULL), {sign}({row}.cost_usd IS NOT NULL))
        ON CONFLICT (day, model) DO UPDATE SET {updates};"""


@migration
def m005_stats_daily(conn: sqlite3.Connection) -> None:
    """Totals per day and model, kept by triggers, so stats stay instant at millions of rows."""
    columns = ", ".join(f"{c} REAL NOT NULL DEFAULT 0" for c in _STAT_SUMS)
    _run(
        conn,
        f"""
        CREATE TABLE stats_daily (
            day TEXT NOT NULL,
            model TEXT NOT NULL,
            responses INTEGER NOT NULL DEFAULT 0,
            {columns},
            ttft_ms REAL NOT NULL DEFAULT 0,
            ttft_n INTEGER NOT NULL DEFAULT 0,
            tokens_per_s REAL NOT NULL DEFAULT 0,
            tps_n INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            priced INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, model)
        )""",
        f"CREATE TRIGGER stats_ai AFTER INSERT ON responses BEGIN {_stats_change('new', '+')} END",
        f"CREATE TRIGGER stats_ad AFTER DELETE ON responses BEGIN {_stats_change('old', '-')} END",
        f"""CREATE TRIGGER stats_au AFTER UPDATE ON responses BEGIN
            {_stats_change("old", "-")} {_stats_change("new", "+")} END""",
        f"""
        INSERT INTO stats_daily (day, model, responses, {", ".join(_STAT_SUMS)}, ttft_ms, ttft_n,
                                 tokens_per_s, tps_n, errors, priced)
        SELECT substr(datetime_utc, 1, 10), model, COUNT(*),
               {", ".join(f"coalesce(SUM({c}), 0)" for c in _STAT_SUMS)},
               coalesce(SUM(ttft_ms), 0), COUNT(ttft_ms), coalesce(SUM(tokens_per_s), 0),
               COUNT(tokens_per_s), SUM(error IS NOT NULL), COUNT(cost_usd)
        FROM responses GROUP BY 1, 2""",
    )


@migration
def m006_caller(conn: sqlite3.Connection) -> None:
    """Who asked: the OpenAI ``user`` field and an ``X-Assay-Tag`` header, via ``assay serve``."""
    _run(
        conn,
        "ALTER TABLE responses ADD COLUMN user TEXT",
        "ALTER TABLE responses ADD COLUMN tag TEXT",
    )


@migration
def m007_cache_and_jobs(conn: sqlite3.Connection) -> None:
    """The response cache, and jobs (batch, eval) with the state of every item."""
    _run(
        conn,
        """
        CREATE TABLE response_cache (
            key TEXT PRIMARY KEY,
            response_id INTEGER NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            messages_key TEXT NOT NULL,
            parts_json TEXT NOT NULL,
            created_utc TEXT NOT NULL
        )""",
        "CREATE INDEX response_cache_messages ON response_cache(messages_key)",
        "CREATE INDEX response_cache_response ON response_cache(response_id)",
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            model TEXT NOT NULL,
            spec_json TEXT NOT NULL,
            total INTEGER,
            status TEXT NOT NULL,
            detail TEXT,
            provider_batch_json TEXT,
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL
        )""",
        "CREATE INDEX jobs_fingerprint ON jobs(fingerprint)",
        """
        CREATE TABLE job_items (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            state TEXT NOT NULL,
            input_json TEXT,
            response_id INTEGER REFERENCES responses(id) ON DELETE SET NULL,
            cached INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            error TEXT,
            finished_utc TEXT NOT NULL,
            PRIMARY KEY (job_id, idx)
        ) WITHOUT ROWID""",
        "CREATE INDEX job_items_response ON job_items(response_id)",
    )


@migration
def m008_eval_results(conn: sqlite3.Connection) -> None:
    """Eval results: one row per case (test x prompt x provider x repeat), graded."""
    _run(
        conn,
        """
        CREATE TABLE eval_results (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            test_idx INTEGER NOT NULL,
            test_key TEXT NOT NULL,
            description TEXT,
            vars_json TEXT NOT NULL,
            prompt_label TEXT NOT NULL,
            provider_label TEXT NOT NULL,
            repeat INTEGER NOT NULL,
            pass INTEGER NOT NULL,
            score REAL NOT NULL,
            reason TEXT,
            grades_json TEXT NOT NULL,
            error TEXT,
            cached INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            latency_ms REAL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            response_id INTEGER REFERENCES responses(id) ON DELETE SET NULL,
            PRIMARY KEY (job_id, idx)
        ) WITHOUT ROWID""",
        "CREATE INDEX eval_results_group ON eval_results(job_id, prompt_label, provider_label)",
        "CREATE INDEX eval_results_response ON eval_results(response_id)",
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
