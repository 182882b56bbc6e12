"""The SQLite migration chain: a fresh database, an upgrade from the schema as it was before
versioned migrations (with and without ``fanin_reseed_at``), re-runs, and concurrent migrators."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from shared import migrate
from shared.database import Database, sqlite_connector
from shared.models import ImageOutcome, ImageStatus, ProductRow
from shared.store import Store

# The SQLite DDL that Store.ensure_schema ran before migrations existed (commit c82df00,
# shared/sql_dialect.py SQLITE_SCHEMA), kept verbatim as the starting point of the upgrade.
LEGACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,
    webhook_url TEXT,
    idempotency_key TEXT,
    products INTEGER NOT NULL,
    images INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    fanout_completed_at TEXT,
    fanin_reseed_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_requests_idempotency_key
    ON requests (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_requests_fanout_pending
    ON requests (created_at) WHERE fanout_completed_at IS NULL;
CREATE TABLE IF NOT EXISTS products (
    request_id TEXT NOT NULL REFERENCES requests (request_id),
    serial INTEGER NOT NULL,
    line INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (request_id, serial)
);
CREATE TABLE IF NOT EXISTS images (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    serial INTEGER NOT NULL,
    url_index INTEGER NOT NULL,
    input_url TEXT NOT NULL,
    status TEXT NOT NULL,
    output_url TEXT,
    error TEXT,
    bytes_in INTEGER,
    bytes_out INTEGER,
    width INTEGER,
    height INTEGER,
    format TEXT,
    quality INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    download_ms INTEGER,
    process_ms INTEGER,
    store_ms INTEGER,
    PRIMARY KEY (request_id, seq),
    FOREIGN KEY (request_id, serial) REFERENCES products (request_id, serial)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    request_id TEXT NOT NULL REFERENCES requests (request_id),
    attempt INTEGER NOT NULL,
    delivery_id TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    succeeded INTEGER NOT NULL,
    PRIMARY KEY (request_id, attempt)
);
"""
BEFORE_FANIN_RESEED = LEGACY_SCHEMA.replace(
    "    fanout_completed_at TEXT,\n    fanin_reseed_at TEXT\n", "    fanout_completed_at TEXT\n"
)
assert BEFORE_FANIN_RESEED != LEGACY_SCHEMA
LATEST = migrate.latest_version("sqlite")


def legacy_database(path: Path, schema: str, request_id: str) -> None:
    """A database as the old build left it: its tables, one request with one done and one pending image."""
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        now = "2024-01-01 00:00:00.000000"
        db.execute(
            "INSERT INTO requests (request_id, status, products, images, created_at, updated_at)"
            " VALUES (?, 'Processing', 1, 3, ?, ?)",
            (request_id, now, now),
        )
        db.execute("INSERT INTO products VALUES (?, 7, 2, 'Mug')", (request_id,))
        for seq, status in enumerate(("Done", "Failed", "Pending")):
            db.execute(
                "INSERT INTO images (request_id, seq, serial, url_index, input_url, status)"
                " VALUES (?, ?, 7, ?, 'https://a.example/x.jpg', ?)",
                (request_id, seq, seq, status),
            )
    db.close()


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    db.close()
    return found


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        found = [row[0] for row in db.execute("SELECT version FROM schema_version ORDER BY version")]
    db.close()
    return found


def test_a_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    store = Store.for_sqlite(path)
    store.ensure_schema()
    assert versions(path) == list(range(1, LATEST + 1))
    assert {"fanin_reseed_at", "done_images", "failed_images"} <= set(columns(path, "requests"))
    store.ensure_schema()  # a second start applies nothing
    assert store.migrate() == []
    store.close()


def test_upgrade_from_the_schema_before_migrations_keeps_and_counts_the_data(tmp_path: Path) -> None:
    for schema in (LEGACY_SCHEMA, BEFORE_FANIN_RESEED):
        path = tmp_path / f"legacy-{len(schema)}.sqlite3"
        request_id = str(uuid.uuid4())
        legacy_database(path, schema, request_id)
        store = Store.for_sqlite(path)
        store.ensure_schema()
        assert versions(path) == list(range(1, LATEST + 1))
        record = store.get_request(request_id)
        assert record is not None and (record.images, record.done, record.failed) == (3, 1, 1)  # backfilled
        store.mark_fanin_reseed(request_id)  # the column the old schema may lack
        assert store.fanin_reseed_needed(request_id)
        outcome = ImageOutcome("https://out.example/2.jpg", 1, 1, 1, 1, "JPEG", 50, 0, 0, 0)
        assert store.record_done(request_id, 2, outcome).changed
        assert store.complete_request(request_id)
        record = store.get_request(request_id)
        assert record is not None and (record.done, record.failed) == (2, 1)
        assert [i.status for i in store.list_images(request_id)] == [ImageStatus.DONE, ImageStatus.FAILED,
                                                                     ImageStatus.DONE]  # fmt: skip
        store.close()


def test_a_migration_re_run_after_its_change_landed_but_not_its_version(tmp_path: Path) -> None:
    path = tmp_path / "half.sqlite3"
    store = Store.for_sqlite(path)
    store.ensure_schema()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM schema_version WHERE version >= 2")  # as if it died before recording
    db.close()
    assert store.migrate() == list(range(2, LATEST + 1))
    assert columns(path, "requests").count("fanin_reseed_at") == 1
    store.close()


def test_concurrent_migrators_apply_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite3"
    applied: list[list[int]] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        db = Database(*sqlite_connector(path))
        barrier.wait()
        applied.append(migrate.migrate(db))
        db.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v for run in applied for v in run) == list(range(1, LATEST + 1))
    assert versions(path) == list(range(1, LATEST + 1))


def test_counts_are_kept_with_each_image_and_read_without_counting(tmp_path: Path) -> None:
    store = Store.for_sqlite(tmp_path / "counts.sqlite3")
    store.ensure_schema()
    request_id = str(uuid.uuid4())
    store.create_request(request_id, [ProductRow(2, 1, "Mug", ("https://a/1", "https://a/2", "https://a/3"))],
                         None, None)  # fmt: skip
    outcome = ImageOutcome("https://out.example/0.jpg", 1, 1, 1, 1, "JPEG", 50, 0, 0, 0)
    store.record_done(request_id, 0, outcome)
    store.record_done(request_id, 0, outcome)  # a redelivery counts nothing
    store.record_failed(request_id, 1, "gone")
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed) == (1, 1)
    store.close()
    with sqlite3.connect(tmp_path / "counts.sqlite3") as db:
        plan = " ".join(str(row) for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM images WHERE request_id = CAST(? AS VARCHAR(36))"
            " AND status = 'Pending'", (request_id,)))  # fmt: skip
    db.close()
    assert "ix_images_request_status" in plan, plan


def test_the_migrate_command_checks_applies_and_prints_the_tsql_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("SQLITE_PATH", str(path))
    monkeypatch.delenv("SQLSERVER_CONNECTION_STRING", raising=False)
    assert migrate.main(["--check"]) == 1  # nothing applied yet
    assert migrate.main([]) == 0
    assert versions(path) == list(range(1, LATEST + 1))
    assert migrate.main(["--check"]) == 0
    capsys.readouterr()
    assert migrate.main(["--script"]) == 0
    script = capsys.readouterr().out
    assert script.count("INSERT INTO dbo.schema_version") == LATEST and "SET QUOTED_IDENTIFIER ON" in script


def test_images_finished_by_an_older_build_after_the_migration_are_counted(tmp_path: Path) -> None:
    """Between migration 0004 and the new deployment, the old build finishes images without
    keeping the counts; once the last image is finished the counts are repaired, so notify's
    "all finished?" check still passes and the webhook is sent."""
    path = tmp_path / "window.sqlite3"
    store = Store.for_sqlite(path)
    store.ensure_schema()
    request_id = str(uuid.uuid4())
    store.create_request(request_id, [ProductRow(2, 1, "Mug", ("https://a/1", "https://a/2", "https://a/3"))],
                         None, None)  # fmt: skip
    outcome = ImageOutcome("https://out.example/0.jpg", 1, 1, 1, 1, "JPEG", 50, 0, 0, 0)
    store.record_done(request_id, 0, outcome)
    with sqlite3.connect(path) as old_build:  # the old build's RECORD_DONE / RECORD_FAILED
        old_build.execute("UPDATE images SET status = 'Done' WHERE request_id = ? AND seq = 1", (request_id,))
    old_build.close()
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed) == (1, 0)  # seq 2 still pending: no recount
    with sqlite3.connect(path) as old_build:
        old_build.execute("UPDATE images SET status = 'Failed' WHERE request_id = ? AND seq = 2", (request_id,))
    old_build.close()
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed, record.images) == (2, 1, 3)
    store.close()
