"""The SQLite log store: every prompt and response, searchable."""

from .db import connect, db_path
from .logs import LogRecord, LogStore
from .migrations import MIGRATIONS, migrate

__all__ = ["MIGRATIONS", "LogRecord", "LogStore", "connect", "db_path", "migrate"]
