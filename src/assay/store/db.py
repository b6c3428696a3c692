"""Opening the log database: WAL, a busy timeout, and migrations.

WAL lets readers and one writer work at once; the busy timeout plus
``BEGIN IMMEDIATE`` for every write makes parallel writers queue instead of
failing with "database is locked" (simonw/llm#789).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError
from ..settings import user_dir

__all__ = ["BUSY_TIMEOUT_MS", "connect", "db_path", "store_error", "write"]

BUSY_TIMEOUT_MS = 60_000


def db_path() -> Path:
    return user_dir() / "logs.db"


def store_error(path: Path | str, exc: sqlite3.Error) -> StoreError:
    message = str(exc)
    if "disk is full" in message or "disk I/O" in message:
        message += " (free some disk space; nothing already logged was lost)"
    return StoreError(f"log database {path}: {message}")


def connect(path: Path | str | None = None, *, migrate_schema: bool = True) -> sqlite3.Connection:
    """An autocommit connection with WAL and a busy timeout, migrated to the latest schema."""
    from .migrations import migrate

    path = path or db_path()
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if migrate_schema:
            migrate(conn)
    except sqlite3.Error as e:
        raise store_error(path, e) from None
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the lock up front (``BEGIN IMMEDIATE``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
