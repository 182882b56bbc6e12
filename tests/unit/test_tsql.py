"""The T-SQL side without a server: every statement the store can send parses as T-SQL and compares
request ids as VARCHAR (no CONVERT_IMPLICIT of a column), the migration chain parses, is guarded and
sets its session options, and ends in the same tables, columns and indexes as the SQLite chain."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from shared import migrate
from shared import store_sql as store_module
from shared.errors import ConfigError
from shared.models import DeliveryAttempt, ImageOutcome, ProductRow
from shared.options import CompressionOptions, OutputFormat
from shared.sql_dialect import ODBC_SQL_DRIVER_NAME, RetryPolicy, TSQLDialect, is_microsoft_driver
from shared.store import Store

LATEST = migrate.latest_version("tsql")


class RecordingCursor:
    """Answers the schema-version check with ``version``; records everything else."""

    def __init__(self, connection: RecordingConnection) -> None:
        self.connection = connection
        self.rowcount = 1
        self.fast_executemany = False
        self.description: list[tuple[str, ...]] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        self.connection.log.append(sql)
        self.description, self._rows = None, []
        if sql == TSQLDialect.schema_version_exists:
            self.description, self._rows = [("present",)], [(1,)]
        elif sql.startswith("SELECT MAX(version) AS version FROM schema_version"):
            self.description, self._rows = [("version",)], [(self.connection.version,)]
        elif sql == store_module.SELECT_REQUEST:  # a finished request whose counts are behind: recounted
            now = datetime(2024, 1, 1)
            row = {"status": "Processing", "webhook_url": None, "products": 1, "images": 2, "created_at": now,
                   "updated_at": now, "completed_at": None, "fanout_completed_at": None, "done_images": 0,
                   "failed_images": 0, "skipped_images": 0, "repeated_images": 0, "any_pending": 0}  # fmt: skip
            self.description, self._rows = [(name,) for name in row], [tuple(row.values())]

    def executemany(self, sql: str, seq_of_parameters: Any) -> None:
        list(seq_of_parameters)
        self.connection.log.append(sql)

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def close(self) -> None:
        pass


class RecordingConnection:
    def __init__(
        self, driver: str = "libmsodbcsql-18.3.so.2.1", version: int = LATEST, lose_commits: bool = False
    ) -> None:
        self.lose_commits = lose_commits  # the first commit after each write statement is "lost"
        self.lost: set[str] = set()
        self.log: list[str] = []
        self.driver = driver
        self.version = version
        self.timeout = 0
        self.cursors: list[RecordingCursor] = []

    def cursor(self) -> RecordingCursor:
        self.cursors.append(RecordingCursor(self))
        return self.cursors[-1]

    def getinfo(self, kind: int) -> str:
        assert kind == ODBC_SQL_DRIVER_NAME
        return self.driver

    def commit(self) -> None:
        last = self.log[-1] if self.log else ""
        if self.lose_commits and last.startswith(("INSERT", "UPDATE", "DELETE")) and last not in self.lost:
            self.lost.add(last)
            raise ConnectionError("08S01", "[08S01] [Microsoft][ODBC Driver 18 for SQL Server]TCP Provider:"
                                  " Error code 0x2746 (10054) (SQLEndTran)")  # fmt: skip

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
    store.create_request(rid, [mug], None, "k", upload_sha256="0" * 64, release_key_older_than=now,
                         options=CompressionOptions(quality=70, format=OutputFormat.WEBP))
    store.image_state(rid, 2)
    store.request_options(rid)
    store.alias_seqs(rid, 0)
    store.cancel_request(rid)
    store.find_by_idempotency_key("k")
    store.find_keyed_request("k")
    store.get_request(rid)
    store.pending_tasks(rid, 0, 2)
    store.pending_tasks(rid, 0, 2, unmarked_only=True)
    store.mark_enqueued_range(rid, 0, 2)
    store.mark_fanout_complete_if_done(rid)
    store.stalled_fanouts(now, limit=10)
    store.mark_fanin_reseed(rid)
    store.fanin_reseed_needed(rid)
    store.finish_delivery_attempt(rid, 1, 200, None, True)
    store.release_delivery_claim(rid, 2)
    store.take_over_delivery_claim(rid, 1, "sending", now)
    store.image_status(rid, 0)
    store.mark_started(rid, 0)
    store.record_done(rid, 0, ImageOutcome("https://o.example/0.jpg", 10, 5, 1, 1, "JPEG", 50, 1, 1, 1))
    store.record_done(rid, 2, ImageOutcome("https://o.example/2.jpg", 10, 5, 1, 1, "JPEG", 50, 1, 1, 1),
                      has_repeats=False)  # fmt: skip
    store.note_retry(rid, 1, "HTTP 503", now)
    store.record_failed(rid, 1, "gone")
    store.terminal_seqs(rid)
    store.complete_request(rid)
    store.list_images(rid)
    store.record_delivery_attempt(DeliveryAttempt(rid, "d", 1, now, "https://h.example/", 200, None, True))
    store.delivery_attempts(rid)
    store.close()


def recorded_tsql() -> tuple[RecordingConnection, list[str]]:
    """Every statement, including the checks a retry after a lost commit runs first."""
    connection = RecordingConnection(lose_commits=True)
    exercise_every_method(Store(lambda: connection, TSQLDialect(retry_policy=RetryPolicy(0, 0, 1))))
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
    assert len(templates) >= 20
    for name, template in templates.items():
        assert template.split("{")[0] in sent, f"{name} was never sent"
    assert any(sql.startswith("SELECT TOP (10) ") for sql in statements)


def test_request_ids_are_compared_as_varchar_so_the_key_column_is_never_converted() -> None:
    """pyodbc binds str as NVARCHAR, which outranks CHAR: a bare ``request_id = ?`` would convert
    the column (CONVERT_IMPLICIT) and scan. Every comparison must cast the parameter instead."""
    _, statements = recorded_tsql()
    compared = 0
    for sql in set(statements):
        for eq in sqlglot.parse_one(sql, read="tsql").find_all(exp.EQ):
            column, value = (eq.left, eq.right) if isinstance(eq.left, exp.Column) else (eq.right, eq.left)
            if not (isinstance(column, exp.Column) and column.name == "request_id"):
                continue
            if isinstance(value, exp.Column):
                continue  # a join between two CHAR(36) columns
            assert isinstance(value, exp.Cast) and value.to.this == exp.DataType.Type.VARCHAR, sql
            assert isinstance(value.this, exp.Placeholder), sql
            compared += 1
    assert compared >= 20


class CommitCountingConnection(RecordingConnection):
    def __init__(self) -> None:
        super().__init__()
        self.commits = 0

    def commit(self) -> None:
        self.commits += 1


def test_a_normal_image_is_seven_round_trips_on_sql_server() -> None:
    """Each statement and each commit is one round trip to SQL Server: image_state (one SELECT),
    mark_started, and record_done whose counts' UPDATE answers the fan-in re-seed mark (OUTPUT)."""
    connection = CommitCountingConnection()
    store = Store(lambda: connection, TSQLDialect())
    rid = "00000000-0000-0000-0000-000000000001"
    store.get_request(rid)  # connects (session options) first
    connection.log, connection.commits = [], 0
    store.image_state(rid, 0)
    store.mark_started(rid, 0)
    store.record_done(rid, 0, ImageOutcome("https://o.example/0.jpg", 10, 5, 1, 1, "JPEG", 50, 1, 1, 1),
                      has_repeats=False)  # fmt: skip
    assert [sql.split()[0] for sql in connection.log] == ["SELECT", "UPDATE", "UPDATE", "UPDATE"]
    assert " OUTPUT inserted.fanin_reseed_at WHERE " in connection.log[-1]
    assert len(connection.log) + connection.commits == 7


def test_no_statement_takes_range_locks_or_merges() -> None:
    _, statements = recorded_tsql()
    for sql in statements:
        assert "HOLDLOCK" not in sql.upper() and "SERIALIZABLE" not in sql.upper(), sql
        assert not sql.upper().startswith("MERGE"), sql
    assert not any(sql.startswith(("CREATE", "ALTER", "IF ")) for sql in statements), "DDL at run time"


@pytest.mark.parametrize(
    ("driver", "fast"),
    [
        ("libmsodbcsql-18.3.so.2.1", True),  # Debian/Ubuntu packages of ODBC Driver 18
        ("libmsodbcsql-17.10.so.6.1", True),
        ("/opt/microsoft/msodbcsql18/lib64/libmsodbcsql-18.4.so.1.1", True),
        ("msodbcsql18.dll", True),
        ("MSODBCSQL17.DLL", True),
        ("libmsodbcsql.18.dylib", True),
        ("sqlncli11.dll", True),
        ("libtdsodbc.so", False),  # FreeTDS
        ("/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so", False),
        ("libsqlite3odbc.so", False),  # fast_executemany segfaults here (FACTS.md)
        ("libsqliteodbc.so", False),
        ("sqlite3odbc.so", False),  # what SQLGetInfo answers for it here
        ("SQLSRV32.DLL", False),
        ("", False),
    ],
)
def test_fast_executemany_only_for_microsofts_driver(driver: str, fast: bool) -> None:
    assert is_microsoft_driver(driver) is fast
    connection = RecordingConnection(driver=driver)
    exercise_every_method(Store(lambda: connection, TSQLDialect()))
    assert any(cursor.fast_executemany for cursor in connection.cursors) is fast


def test_statement_timeout_is_set_on_every_connection() -> None:
    connection = RecordingConnection()
    store = Store(lambda: connection, TSQLDialect(statement_timeout_s=17))
    store.get_request("00000000-0000-0000-0000-000000000001")
    assert connection.timeout == 17  # pyodbc's query timeout (connect(timeout=) is login only)
    assert "SET XACT_ABORT ON" in connection.log


def test_app_refuses_a_database_behind_this_build_without_changing_it() -> None:
    behind = RecordingConnection(version=LATEST - 1)
    with pytest.raises(ConfigError, match="python -m shared.migrate"):
        Store(lambda: behind, TSQLDialect()).ensure_schema()
    assert not any("CREATE" in sql or "ALTER" in sql or "INSERT" in sql for sql in behind.log)
    current = RecordingConnection(version=LATEST)
    Store(lambda: current, TSQLDialect()).ensure_schema()


# -- the migration chain --------------------------------------------------------------------------


def tsql_batches() -> list[tuple[str, str]]:
    return [(m.path.name, batch) for m in migrate.migrations("tsql") for batch in m.statements(TSQLDialect())]


def test_both_dialects_have_the_same_numbered_chain() -> None:
    tsql = [(m.version, m.name) for m in migrate.migrations("tsql")]
    sqlite = [(m.version, m.name) for m in migrate.migrations("sqlite")]
    assert tsql == sqlite and len(tsql) >= 4


def test_every_tsql_migration_parses_and_every_change_is_guarded() -> None:
    for name, batch in tsql_batches():
        parsed = sqlglot.parse(batch, read="tsql")
        for statement in parsed:
            assert statement is not None and not isinstance(statement, exp.Command), f"{name}: {batch[:80]}"
            if statement.find(exp.Create, exp.Alter, exp.Drop):
                assert isinstance(statement, exp.IfBlock), f"{name}: not guarded, so not re-runnable: {batch[:80]}"


def test_every_tsql_migration_sets_its_session_options_first() -> None:
    for migration in migrate.migrations("tsql"):
        first = migration.statements(TSQLDialect())[0]
        options = {s.sql(dialect="tsql").upper() for s in sqlglot.parse(first, read="tsql") if s is not None}
        for option in ("SET QUOTED_IDENTIFIER ON", "SET ANSI_NULLS ON", "SET ANSI_PADDING ON",
                       "SET ANSI_WARNINGS ON", "SET ARITHABORT ON", "SET CONCAT_NULL_YIELDS_NULL ON"):  # fmt: skip
            assert option in options, f"{migration.path.name} lacks {option}"


def test_the_sqlcmd_script_is_the_chain_and_records_each_version() -> None:
    script = migrate.tsql_script()
    batches = TSQLDialect().split_script(script)
    assert len(batches) == len(tsql_batches()) + LATEST
    for version in range(1, LATEST + 1):
        assert f"WHERE version = {version})" in script
    for batch in batches:
        assert all(not isinstance(s, exp.Command) for s in sqlglot.parse(batch, read="tsql"))


def test_schema_sql_is_the_generated_chain() -> None:
    """infra's post-provision hook applies schema.sql with sqlcmd: it must be the current chain."""
    committed = (Path(migrate.MIGRATIONS_DIR).parent / "schema.sql").read_text(encoding="utf-8")
    assert committed == migrate.tsql_script(), "regenerate: python -m shared.migrate --script > schema.sql"


def tsql_final_schema() -> tuple[dict[str, list[str]], set[str]]:
    tables: dict[str, list[str]] = {}
    indexes: set[str] = set()
    for _, batch in tsql_batches():
        for statement in sqlglot.parse(batch, read="tsql"):
            create = statement.find(exp.Create) if statement else None
            alter = statement.find(exp.Alter) if statement else None
            if create is not None and str(create.args.get("kind")).upper() == "TABLE":
                schema = create.this
                tables[schema.this.name.lower()] = [c.name for c in schema.expressions if isinstance(c, exp.ColumnDef)]
            elif create is not None and str(create.args.get("kind")).upper().endswith("INDEX"):
                indexes.add(create.this.this.name.lower())
            elif alter is not None:
                added = [a.name for a in alter.args.get("actions") or () if isinstance(a, exp.ColumnDef)]
                tables[alter.this.name.lower()] += added
    return tables, indexes


def test_tsql_and_sqlite_chains_end_in_the_same_tables_columns_and_indexes(tmp_path: Path) -> None:
    store = Store.for_sqlite(tmp_path / "chain.sqlite3")
    store.ensure_schema()
    store.close()
    with sqlite3.connect(tmp_path / "chain.sqlite3") as check:
        names = [r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        sqlite_tables = {n: [c[1] for c in check.execute(f"PRAGMA table_info({n})")] for n in names}
        sqlite_indexes = {
            r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
    tsql_tables, tsql_indexes = tsql_final_schema()
    assert tsql_tables == sqlite_tables
    assert tsql_indexes == sqlite_indexes == {
        "ux_requests_idempotency_key", "ix_requests_fanout_pending", "ix_images_request_status",
        "ix_image_aliases_leader", "ix_images_unenqueued",
    }  # fmt: skip
