"""The T-SQL side without a server: every statement the store can send parses as T-SQL, schema.sql
parses, and schema.sql defines the same tables, columns, keys and indexes as the SQLite DDL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlglot
from sqlglot import exp

from shared import store_sql as store_module
from shared.models import DeliveryAttempt, ImageOutcome, ProductRow
from shared.options import CompressionOptions, OutputFormat
from shared.sql_dialect import (
    ODBC_SQL_DRIVER_NAME,
    SCHEMA_SQL_PATH,
    SQLITE_SCHEMA,
    TSQLDialect,
    split_sqlite_script,
    split_tsql_batches,
)
from shared.store import Store


class RecordingCursor:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.rowcount = 1
        self.fast_executemany = False

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        self.log.append(sql)

    def executemany(self, sql: str, seq_of_parameters: Any) -> None:
        list(seq_of_parameters)
        self.log.append(sql)

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class RecordingConnection:
    def __init__(self, driver: str = "msodbcsql18.dll") -> None:
        self.log: list[str] = []
        self.driver = driver
        self.cursors: list[RecordingCursor] = []

    def cursor(self) -> RecordingCursor:
        self.cursors.append(RecordingCursor(self.log))
        return self.cursors[-1]

    def getinfo(self, kind: int) -> str:
        assert kind == ODBC_SQL_DRIVER_NAME
        return self.driver

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def exercise_every_method(store: Store) -> None:
    """Call every public Store method once, so every statement it can send is sent."""
    rid = "00000000-0000-0000-0000-000000000001"
    now = datetime.now(UTC)
    store.ensure_schema()
    mug = ProductRow(2, 1, "Mug", ("https://a.example/1", "https://a.example/2", "https://a.example/1"))
    store.create_request(rid, [mug], None, "k", CompressionOptions(quality=70, format=OutputFormat.WEBP))
    store.image_state(rid, 2)
    store.request_options(rid)
    store.alias_seqs(rid, 0)
    store.cancel_request(rid)
    store.find_by_idempotency_key("k")
    store.get_request(rid)
    store.unenqueued_tasks(rid)
    store.mark_enqueued(rid, [0, 1])
    store.mark_fanout_complete(rid)
    store.stale_fanouts(now, limit=10)
    store.mark_fanin_reseed(rid)
    store.fanin_reseed_needed(rid)
    store.finish_delivery_attempt(rid, 1, 200, None, True)
    store.release_delivery_claim(rid, 2)
    store.take_over_delivery_claim(rid, 1, "sending", now)
    store.image_status(rid, 0)
    store.mark_started(rid, 0)
    store.record_done(rid, 0, ImageOutcome("https://o.example/0.jpg", 10, 5, 1, 1, "JPEG", 50, 1, 1, 1))
    store.record_failed(rid, 1, "gone")
    store.terminal_seqs(rid)
    store.complete_request(rid)
    store.list_images(rid)
    store.record_delivery_attempt(DeliveryAttempt(rid, "d", 1, now, "https://h.example/", 200, None, True))
    store.delivery_attempts(rid)
    store.close()


def recorded_tsql() -> tuple[RecordingConnection, list[str]]:
    connection = RecordingConnection()
    exercise_every_method(Store(lambda: connection, TSQLDialect()))
    return connection, connection.log


def test_every_statement_the_store_sends_parses_as_tsql() -> None:
    _, statements = recorded_tsql()
    for sql in set(statements):
        parsed = sqlglot.parse_one(sql, read="tsql")
        assert not isinstance(parsed, exp.Command), f"sqlglot fell back to an unparsed command: {sql}"


def test_the_recording_covers_every_statement_template() -> None:
    _, statements = recorded_tsql()
    sent = "\n".join(statements)
    templates = {
        name: value
        for name, value in vars(store_module).items()
        if name.isupper() and isinstance(value, str) and ("?" in value or "SELECT" in value)
    }
    assert len(templates) >= 15
    for name, template in templates.items():
        assert template.split("{")[0] in sent, f"{name} was never sent"
    assert any(sql.startswith("MERGE INTO webhook_deliveries") for sql in statements)
    assert any(sql.startswith("SELECT TOP (10) ") for sql in statements)


def test_fast_executemany_only_for_microsofts_driver() -> None:
    connection, _ = recorded_tsql()
    assert any(cursor.fast_executemany for cursor in connection.cursors)
    sqlite_odbc = RecordingConnection(driver="libsqlite3odbc.so")
    exercise_every_method(Store(lambda: sqlite_odbc, TSQLDialect()))
    assert not any(cursor.fast_executemany for cursor in sqlite_odbc.cursors)


def test_schema_sql_parses_into_guarded_statements() -> None:
    batches = split_tsql_batches(SCHEMA_SQL_PATH.read_text(encoding="utf-8"))
    assert len(batches) >= 6
    for batch in batches:
        parsed = sqlglot.parse_one(batch, read="tsql")
        assert isinstance(parsed, exp.IfBlock), f"not guarded by IF, so not re-runnable: {batch[:60]}"
        assert isinstance(parsed.find(exp.Create), exp.Create)


def describe(statements: Sequence[exp.Expression]) -> dict[str, dict[str, object]]:
    """Tables and indexes, reduced to what both dialects must agree on."""
    found: dict[str, dict[str, object]] = {}
    for statement in statements:
        create = statement.find(exp.Create)
        assert create is not None
        kind = str(create.args.get("kind")).upper()
        if kind == "TABLE":
            schema = create.this
            columns = [c for c in schema.expressions if isinstance(c, exp.ColumnDef)]
            primary = [c.name for c in columns if c.find(exp.PrimaryKeyColumnConstraint)]
            not_null = [c.find(exp.NotNullColumnConstraint) for c in columns]  # T-SQL "NULL" is allow_null
            for key in schema.find_all(exp.PrimaryKey):
                primary += [part.find(exp.Identifier).name for part in key.expressions]
            found[f"table {schema.this.name.lower()}"] = {
                "columns": [c.name for c in columns],
                "not null": [c.name for c, n in zip(columns, not_null) if n and not n.args.get("allow_null")],
                "primary key": primary,
            }
        else:
            index = create.this
            found[f"index {index.this.name.lower()}"] = {
                "unique": bool(create.args.get("unique")),
                "table": index.args["table"].name.lower(),
                "columns": [col.name for col in index.find(exp.IndexParameters).args["columns"]],
                "where": index.find(exp.Where).sql(dialect="sqlite") if index.find(exp.Where) else None,
            }
    return found


def test_schema_sql_and_sqlite_ddl_define_the_same_tables() -> None:
    tsql = describe(
        [sqlglot.parse_one(b, read="tsql") for b in split_tsql_batches(SCHEMA_SQL_PATH.read_text("utf-8"))]
    )
    sqlite = describe([sqlglot.parse_one(s, read="sqlite") for s in split_sqlite_script(SQLITE_SCHEMA)])
    assert set(tsql) == set(sqlite) == {
        "table requests", "table products", "table images", "table webhook_deliveries",
        "index ux_requests_idempotency_key", "index ix_requests_fanout_pending",
        "table request_options", "table image_aliases", "index ix_image_aliases_leader",
    }  # fmt: skip
    for name in tsql:
        assert tsql[name] == sqlite[name], name
    assert tsql["table images"]["primary key"] == ["request_id", "seq"]
