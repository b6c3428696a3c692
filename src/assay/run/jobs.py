"""Jobs and their items in SQLite: what makes a batch or an eval resumable.

A job is identified by a fingerprint of everything that decides its results
(the model, the template, the options, the inputs). Running the same command
again finds the unfinished job with that fingerprint and carries on. Each item
gets a row in ``job_items`` when it finishes, written in the same transaction
as its response, so the table always says exactly which items are done.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from ..errors import UsageError
from ..store.db import store_error, write
from ..store.logs import LogStore, new_id
from .pool import Result

__all__ = ["JobStore", "fingerprint"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fingerprint(kind: str, spec: dict[str, Any]) -> str:
    text = json.dumps([kind, spec], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class JobStore:
    def __init__(self, store: LogStore) -> None:
        self.store = store

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store._fetch(sql, args)]

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            with self.store._lock, write(self.store.conn) as conn:
                conn.execute(sql, args)
        except sqlite3.Error as e:
            raise store_error(self.store.path, e) from None

    def create(self, kind: str, spec: dict[str, Any], model: str, total: int | None) -> str:
        job_id = new_id()
        now = _now()
        self._write(
            "INSERT INTO jobs (id, kind, fingerprint, model, spec_json, total, status,"
            " created_utc, updated_utc) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (job_id, kind, fingerprint(kind, spec), model, json.dumps(spec), total, now, now),
        )
        return job_id

    def find(self, kind: str, spec: dict[str, Any]) -> dict[str, Any] | None:
        """The newest job of this kind with this exact spec, if any."""
        rows = self._rows(
            "SELECT * FROM jobs WHERE fingerprint = ? ORDER BY created_utc DESC, id DESC LIMIT 1",
            (fingerprint(kind, spec),),
        )
        return rows[0] if rows else None

    def get(self, job_id: str, kind: str | None = None) -> dict[str, Any]:
        """A job by id or unique id prefix (or ``last``); raises UsageError if there is none."""
        if job_id == "last":
            rows = self._rows(
                "SELECT * FROM jobs WHERE (? IS NULL OR kind = ?) ORDER BY id DESC LIMIT 1",
                (kind, kind),
            )
        else:
            rows = self._rows(
                "SELECT * FROM jobs WHERE id LIKE ? AND (? IS NULL OR kind = ?) LIMIT 2",
                (job_id.upper() + "%", kind, kind),
            )
        if not rows:
            raise UsageError(
                f"no {kind or ''} job {job_id!r}: see 'assay batch list'".replace("  ", " ")
            )
        if len(rows) > 1:
            raise UsageError(f"{job_id!r} matches more than one job: give more of its id")
        return rows[0]

    def recent(self, kind: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        jobs = self._rows(
            "SELECT * FROM jobs WHERE (? IS NULL OR kind = ?) ORDER BY id DESC LIMIT ?",
            (kind, kind, limit),
        )
        for job in jobs:
            job.update(self.counts(job["id"]))
        return jobs

    def set_status(self, job_id: str, status: str, detail: str | None = None) -> None:
        self._write(
            "UPDATE jobs SET status = ?, detail = ?, updated_utc = ? WHERE id = ?",
            (status, detail, _now(), job_id),
        )

    def set_total(self, job_id: str, total: int) -> None:
        self._write("UPDATE jobs SET total = ? WHERE id = ?", (total, job_id))

    def set_provider_batch(self, job_id: str, info: dict[str, Any] | None) -> None:
        self._write(
            "UPDATE jobs SET provider_batch_json = ?, updated_utc = ? WHERE id = ?",
            (json.dumps(info) if info is not None else None, _now(), job_id),
        )

    def done_indexes(self, job_id: str) -> set[int]:
        rows = self._rows(
            "SELECT idx FROM job_items WHERE job_id = ? AND state = 'done'", (job_id,)
        )
        return {r["idx"] for r in rows}

    def counts(self, job_id: str) -> dict[str, Any]:
        row = self._rows(
            "SELECT COUNT(*) FILTER (WHERE state = 'done') AS done,"
            " COUNT(*) FILTER (WHERE state = 'failed') AS failed,"
            " COUNT(*) FILTER (WHERE cached) AS cached,"
            " COALESCE(SUM(cost_usd) FILTER (WHERE NOT cached), 0) AS cost_usd"
            " FROM job_items WHERE job_id = ?",
            (job_id,),
        )[0]
        return row

    def failures(self, job_id: str, limit: int = 20) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT idx, error FROM job_items WHERE job_id = ? AND state = 'failed'"
            " ORDER BY idx LIMIT ?",
            (job_id, limit),
        )

    @staticmethod
    def record_item(conn: sqlite3.Connection, job_id: str, result: Result) -> None:
        """Record how ``result``'s item ended; call inside the transaction that logged it."""
        conn.execute(
            "INSERT OR REPLACE INTO job_items (job_id, idx, state, input_json, response_id,"
            " cached, attempts, cost_usd, error, finished_utc) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                job_id,
                result.task.index,
                "done" if result.ok else "failed",
                json.dumps(result.task.input) if result.task.input is not None else None,
                result.response_id,
                int(result.cached),
                result.attempts,
                result.cost_usd,
                result.error,
                _now(),
            ),
        )

    def items(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every recorded item in input order, with its response, streamed from the database."""
        sql = (
            "SELECT i.idx, i.state, i.input_json, i.cached, i.attempts, i.cost_usd, i.error,"
            " i.response_id, r.prompt, r.response, r.input_tokens, r.output_tokens, r.total_ms"
            " FROM job_items i LEFT JOIN responses r ON r.id = i.response_id"
            " WHERE i.job_id = ? ORDER BY i.idx"
        )
        last = -1
        while True:  # in pages, so the shared connection is never held for long
            page = self._rows(
                sql.replace("WHERE i.job_id = ?", "WHERE i.job_id = ? AND i.idx > ?")
                + " LIMIT 1000",
                (job_id, last),
            )
            if not page:
                return
            for row in page:
                row["input"] = json.loads(row.pop("input_json") or "null")
                yield row
            last = page[-1]["idx"]
