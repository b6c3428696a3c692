"""The SQLite log store: migrations, search, deletion, stats and parallel writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from assay.errors import StoreError
from assay.store import MIGRATIONS, LogRecord, LogStore, connect, migrate

EXPECTED_COLUMNS = {
    "id",
    "conversation_id",
    "model",
    "provider",
    "resolved_model",
    "prompt",
    "system",
    "options_json",
    "response",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "ttft_ms",
    "total_ms",
    "tokens_per_s",
    "finish_reason",
    "error",
    "datetime_utc",
    "cache_write_tokens",
    "price_source",
    "user",
    "tag",
}


def test_migrating_a_blank_database_gives_the_schema(tmp_path: Path) -> None:
    conn = connect(tmp_path / "blank.db")
    applied = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert applied == [name for name, _ in MIGRATIONS]
    assert applied == sorted(applied)  # named and ordered
    columns = {r[1] for r in conn.execute("PRAGMA table_info(responses)")}
    assert columns == EXPECTED_COLUMNS
    conv_columns = {r[1] for r in conn.execute("PRAGMA table_info(conversations)")}
    assert conv_columns == {"id", "name", "model", "created_utc"}
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"responses_fts", "responses_ai", "responses_ad", "responses_au"} <= names
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert migrate(conn) == []  # idempotent


def _record(i: int, **kw: object) -> LogRecord:
    fields: dict = {
        "model": "echo",
        "provider": "echo",
        "prompt": f"prompt {i}",
        "response": f"response {i}",
        "input_tokens": 2,
        "output_tokens": 3,
        "total_ms": 10.0,
    }
    fields.update(kw)
    return LogRecord(**fields)


def test_full_text_search_finds_prompts_and_responses(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    store.insert(_record(1, prompt="the quick brown fox", response="jumps"))
    store.insert(_record(2, prompt="lazy dog", response="sleeps under the fox tree"))
    store.insert(_record(3, prompt="nothing here", response="at all"))
    assert [r["prompt"] for r in store.query(10, search="fox")] == [
        "the quick brown fox",
        "lazy dog",
    ]
    assert [r["prompt"] for r in store.query(10, search="sleeps")] == ["lazy dog"]
    # FTS syntax in user input is quoted away, never an error
    assert len(store.query(10, search='"(fox*')) == 2
    assert store.query(10, search="fox NOT dog") == []  # every word must match
    assert store.query(10, search="zebra") == []


def test_delete_removes_rows_and_their_search_entries(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    ids = [store.insert(_record(i, conversation_id="c1")) for i in range(3)]
    assert store.delete([ids[0], 999]) == [ids[0]]
    assert [r["id"] for r in store.query(None)] == ids[1:]
    assert store.query(10, search="0") == []
    store.delete(ids[1:])
    assert store.conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0


def test_stats_per_model(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    for i in range(3):
        store.insert(_record(i))
    store.insert(_record(9, model="other", input_tokens=5, output_tokens=None, error="boom"))
    stats = {r["model"]: r for r in store.stats()}
    assert stats["echo"]["responses"] == 3
    assert stats["echo"]["input_tokens"] == 6
    assert stats["echo"]["output_tokens"] == 9
    assert stats["echo"]["total_s"] == pytest.approx(0.03)
    assert stats["other"]["errors"] == 1


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        LogStore(path)


def _writer(path: str, worker: int, rows: int) -> None:
    store = LogStore(path)
    for i in range(rows):
        store.insert(_record(i, prompt=f"w{worker} r{i}", conversation_id=f"conv-{worker}"))
    store.close()


def test_eight_processes_logging_at_once_lose_no_row(tmp_path: Path) -> None:
    path = str(tmp_path / "logs.db")  # a blank database: the writers race to migrate it too
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 50)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    conn = sqlite3.connect(path)
    prompts = {r[0] for r in conn.execute("SELECT prompt FROM responses")}
    assert prompts == {f"w{w} r{i}" for w in range(8) for i in range(50)}
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 400
    assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 8


def test_a_full_disk_is_a_clear_error_and_keeps_earlier_rows(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    store.insert(_record(1))
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
    with pytest.raises(StoreError, match=r"full.*nothing already logged was lost"):
        store.insert(_record(2, response="x" * 100_000))
    assert [r["prompt"] for r in store.query(None)] == ["prompt 1"]


def test_search_with_a_filter_finds_old_matches(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    store.insert(_record(0, model="old", prompt="fox"))
    for i in range(1500):
        store.insert(_record(i, prompt="fox again"))
    found = store.query(3, search="fox", model="old")
    assert [r["model"] for r in found] == ["old"]
    assert len(store.query(3, search="fox")) == 3


def test_stats_totals_follow_inserts_and_deletes(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    ids = [
        store.insert(_record(i, cost_usd=0.5 if i else None, ttft_ms=100.0 * (i + 1)))
        for i in range(4)
    ]
    store.delete(ids[:2])
    (echo,) = store.stats()
    assert echo["responses"] == 2 and echo["input_tokens"] == 4
    assert echo["cost_usd"] == pytest.approx(1.0) and echo["unpriced"] == 0
    assert echo["avg_ttft_ms"] == pytest.approx(350.0)
    store.delete(ids[2:])
    assert store.stats() == [] and store.stats_by_day() == []


def test_the_stats_migration_backfills_existing_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = connect(path, migrate_schema=False)
    from assay.store.migrations import applied

    applied(conn)
    for name, fn in MIGRATIONS[:4]:  # a database from before the stats table
        fn(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    for i in range(3):
        conn.execute(
            "INSERT INTO responses (model, provider, prompt, input_tokens,"
            " datetime_utc) VALUES ('m', 'p', ?, 10, '2026-01-0' || ?)",
            (f"p{i}", i + 1),
        )
    conn.close()
    store = LogStore(path)
    assert store.stats()[0]["responses"] == 3 and store.stats()[0]["input_tokens"] == 30
    assert [d["day"] for d in store.stats_by_day()] == ["2026-01-01", "2026-01-02", "2026-01-03"]
