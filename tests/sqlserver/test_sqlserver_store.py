r"""The store's tests against a live SQL Server through pyodbc (skipped unless configured).

Start a throw-away SQL Server 2022 (Developer edition, needs ~2 GB RAM) with:

    docker run -d --name imgpipe-mssql -e ACCEPT_EULA=Y -e MSSQL_SA_PASSWORD='Imgpipe-test-1' \
        -p 1433:1433 mcr.microsoft.com/mssql/server:2022-latest

then, with Microsoft's ODBC Driver 18 for SQL Server installed on the client:

    DRIVER='Driver={ODBC Driver 18 for SQL Server};Server=127.0.0.1,1433;TrustServerCertificate=yes'
    export TEST_SQLSERVER_CONNECTION_STRING="$DRIVER;UID=sa;PWD=Imgpipe-test-1"
    .venv/bin/python -m pytest -m sqlserver tests/sqlserver

The suite creates the database ``imgpipe_test`` if missing with READ_COMMITTED_SNAPSHOT ON (Azure
SQL Database's default), applies the migrations with ``Store.migrate``, and EMPTIES the imgpipe
tables in that database before each test: never point it at a database you care about. It also
drops and re-creates ``imgpipe_test_upgrade`` for the upgrade test. Every test of
tests/unit/test_store.py that is not SQLite-specific runs here unchanged (concurrent completions
and webhook claims from several connections among them); the plan tests below assert that the hot
statements seek: no CONVERT_IMPLICIT of a column and no scan of ``images``.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import migrate
from shared import store_sql as sql
from shared.models import DeliveryAttempt, ImageOutcome
from shared.sql_dialect import TSQLDialect
from shared.store import Store
from tests.unit import test_store as generic

CONNECTION_ENV = "TEST_SQLSERVER_CONNECTION_STRING"
DATABASE = "imgpipe_test"
UPGRADE_DATABASE = "imgpipe_test_upgrade"
SHOWPLAN = "{http://schemas.microsoft.com/sqlserver/2004/07/showplan}"
TABLES = ("webhook_deliveries", "images", "products", "requests")  # children first

pytestmark = [
    pytest.mark.sqlserver,
    pytest.mark.skipif(not os.environ.get(CONNECTION_ENV), reason=f"{CONNECTION_ENV} is not set"),
]


def admin() -> Any:
    import pyodbc

    return pyodbc.connect(os.environ[CONNECTION_ENV].rstrip(";"), autocommit=True, timeout=15)


def fresh_database(name: str, *, drop: bool) -> str:
    with admin() as server:
        if drop:
            server.execute(f"IF DB_ID(N'{name}') IS NOT NULL DROP DATABASE {name}")
        server.execute(f"IF DB_ID(N'{name}') IS NULL CREATE DATABASE {name}")
        server.execute(f"ALTER DATABASE {name} SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE")
        on = server.execute("SELECT is_read_committed_snapshot_on FROM sys.databases WHERE name = ?", name)
        assert on.fetchone()[0] == 1
    return f"{os.environ[CONNECTION_ENV].rstrip(';')};Database={name}"


@pytest.fixture(scope="module")
def sqlserver_connection_string() -> str:
    connection_string = fresh_database(DATABASE, drop=False)
    migrator = Store.for_sqlserver(connection_string, statement_timeout_s=0)
    migrator.migrate()
    migrator.close()
    return connection_string


def empty_tables(connection_string: str) -> None:
    import pyodbc

    with pyodbc.connect(connection_string, autocommit=True, timeout=15) as cleaner:
        for table in TABLES:
            cleaner.execute(f"DELETE FROM {table}")


@pytest.fixture
def store(sqlserver_connection_string: str) -> Iterator[Store]:
    built = Store.for_sqlserver(sqlserver_connection_string, retry_budget_s=10)
    assert isinstance(built.dialect, TSQLDialect)
    built.ensure_schema()  # the version check only: the app needs no DDL rights
    empty_tables(sqlserver_connection_string)
    yield built
    built.close()


# The same test functions, collected again here so they use this module's ``store`` fixture.
globals().update(
    {name: test for name, test in vars(generic).items() if name.startswith("test_") and "sqlite" not in name}
)


def test_keys_are_binary_collated_and_char(sqlserver_connection_string: str) -> None:
    import pyodbc

    with pyodbc.connect(sqlserver_connection_string, autocommit=True, timeout=15) as db:
        rows = db.execute(
            "SELECT OBJECT_NAME(object_id), name, collation_name, TYPE_NAME(system_type_id) FROM sys.columns"
            " WHERE name IN ('request_id', 'idempotency_key') AND OBJECT_SCHEMA_NAME(object_id) = 'dbo'"
        ).fetchall()
    found = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    for table in TABLES:
        assert found[(table, "request_id")] == ("Latin1_General_100_BIN2", "char")
    assert found[("requests", "idempotency_key")] == ("Latin1_General_100_BIN2", "nvarchar")


def test_several_stores_complete_one_request_concurrently(sqlserver_connection_string: str) -> None:
    """Four Store objects (own connections each) race for every image and for the completion."""
    empty_tables(sqlserver_connection_string)
    stores = [Store.for_sqlserver(sqlserver_connection_string, retry_budget_s=30) for _ in range(4)]
    request_id = str(uuid.uuid4())
    stores[0].create_request(request_id, generic.products(20, 5), "https://hooks.example/", None)
    changed: list[int] = []
    completions: list[bool] = []
    claims: list[bool] = []
    barrier = threading.Barrier(4)

    def worker(store: Store, index: int) -> None:
        barrier.wait()
        for seq in range(100):
            if store.record_done(request_id, seq, generic.outcome(seq)).changed:
                changed.append(seq)
        completions.append(store.complete_request(request_id))
        claims.append(store.record_delivery_attempt(DeliveryAttempt(
            request_id, "d", 1, datetime.now(UTC), "https://hooks.example/", None, "sending", False)))  # fmt: skip

    threads = [threading.Thread(target=worker, args=(s, i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(changed) == list(range(100))
    assert completions.count(True) == 1 and claims.count(True) == 1
    record = stores[0].get_request(request_id)
    assert record is not None and (record.done, record.failed) == (100, 0)
    for store in stores:
        store.close()


# -- query plans of the hot statements ---------------------------------------------------------------

HOT = {
    "SELECT_REQUEST": sql.SELECT_REQUEST, "SELECT_IMAGE_STATUS": sql.SELECT_IMAGE_STATUS,
    "SELECT_IMAGE_STATE": sql.SELECT_IMAGE_STATE,
    "MARK_STARTED": sql.MARK_STARTED, "RECORD_DONE": sql.RECORD_DONE, "RECORD_FAILED": sql.RECORD_FAILED,
    "COUNT_FINISHED_IMAGE": sql.COUNT_FINISHED_IMAGE, "COMPLETE_REQUEST": sql.COMPLETE_REQUEST,
    "SELECT_TERMINAL": sql.SELECT_TERMINAL, "SELECT_PENDING_RANGE": sql.SELECT_PENDING_RANGE,
    "MARK_ENQUEUED_RANGE": sql.MARK_ENQUEUED_RANGE, "ANY_UNENQUEUED": sql.ANY_UNENQUEUED,
    "SELECT_IMAGES": sql.SELECT_IMAGES,
    "SELECT_DELIVERIES": sql.SELECT_DELIVERIES, "SELECT_BY_KEY": sql.SELECT_BY_KEY,
}  # fmt: skip
SCANS = {"Table Scan", "Clustered Index Scan", "Index Scan"}
COLUMN_CONVERTED = re.compile(r"CONVERT_IMPLICIT\([^,]+,\[[^\]]+\]\.\[dbo\]\.\[(\w+)\]\.\[(\w+)\]")


def cached_plan(db: Any, statement: str) -> str:
    fragment = statement.split("?")[0].split("{")[0]
    rows = db.execute(
        "SELECT CAST(qp.query_plan AS NVARCHAR(MAX)) FROM sys.dm_exec_query_stats qs"
        " CROSS APPLY sys.dm_exec_sql_text(qs.sql_handle) st"
        " CROSS APPLY sys.dm_exec_query_plan(qs.plan_handle) qp"
        " WHERE st.text LIKE ? AND st.text NOT LIKE '%dm_exec_query_stats%'",
        f"%{fragment}%",
    ).fetchall()
    assert rows, f"no cached plan for: {fragment}"
    return str(rows[0][0])


def test_hot_statements_seek_without_converting_a_column(sqlserver_connection_string: str) -> None:
    empty_tables(sqlserver_connection_string)
    store = Store.for_sqlserver(sqlserver_connection_string)
    outcome = ImageOutcome("https://out.example/x.jpg", 1, 1, 1, 1, "JPEG", 50, 0, 0, 0)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for request_id in ids:  # enough rows that a scan would be a choice, not a necessity
        store.create_request(request_id, generic.products(100, 20), None, f"key-{request_id}")
    with admin() as server:
        server.execute(f"USE {DATABASE}")
        server.execute("UPDATE STATISTICS dbo.images; UPDATE STATISTICS dbo.requests")
        server.execute("ALTER DATABASE SCOPED CONFIGURATION CLEAR PROCEDURE_CACHE")
    target = ids[2]
    store.find_by_idempotency_key(f"key-{target}")
    store.pending_tasks(target, 0, 100)
    store.mark_enqueued_range(target, 0, 100)
    store.mark_fanout_complete_if_done(target)
    store.image_status(target, 0)
    store.image_state(target, 0)
    store.mark_started(target, 0)
    store.record_done(target, 0, outcome)
    store.record_failed(target, 1, "gone")
    store.get_request(target)
    store.terminal_seqs(target)
    store.complete_request(target)
    store.list_images(target)
    store.delivery_attempts(target)
    store.close()
    with admin() as server:
        server.execute(f"USE {DATABASE}")
        for name, statement in HOT.items():
            plan = cached_plan(server, statement)
            converted = COLUMN_CONVERTED.findall(plan)
            assert not converted, f"{name} converts columns {converted}"
            for op in ET.fromstring(plan).iter(f"{SHOWPLAN}RelOp"):
                if op.get("PhysicalOp") in SCANS:
                    tables = {o.get("Table") for o in op.iter(f"{SHOWPLAN}Object")}
                    assert "[images]" not in tables, f"{name} scans images ({op.get('PhysicalOp')})"


# -- upgrade -------------------------------------------------------------------------------------------------


def test_upgrade_from_the_schema_before_migrations() -> None:
    """Build the old schema (0001 + 0002, default collation, no schema_version row), store data,
    then migrate: keys become binary-collated, counts are backfilled, the app accepts it."""
    import pyodbc

    connection_string = fresh_database(UPGRADE_DATABASE, drop=True)
    request_id = str(uuid.uuid4())
    with pyodbc.connect(connection_string, autocommit=True, timeout=15) as db:
        for migration in migrate.migrations("tsql")[:2]:
            for batch in migration.statements(TSQLDialect()):
                db.execute(batch)
        db.execute("DROP TABLE dbo.schema_version")  # the old schema.sql had none
        now = datetime(2024, 1, 1)
        db.execute("INSERT INTO requests (request_id, status, products, images, created_at, updated_at)"
                   " VALUES (?, 'Processing', 1, 2, ?, ?)", request_id, now, now)  # fmt: skip
        db.execute("INSERT INTO products VALUES (?, 1, 2, N'Mug')", request_id)
        db.execute("INSERT INTO images (request_id, seq, serial, url_index, input_url, status)"
                   " VALUES (?, 0, 1, 0, N'https://a/0', 'Done'), (?, 1, 1, 1, N'https://a/1', 'Pending')",
                   request_id, request_id)  # fmt: skip
    store = Store.for_sqlserver(connection_string, statement_timeout_s=0)
    with pytest.raises(Exception, match="python -m shared.migrate"):
        store.ensure_schema()
    assert store.migrate() == list(range(1, migrate.latest_version("tsql") + 1))
    store.ensure_schema()
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed) == (1, 0)
    assert store.record_failed(request_id, 1, "gone").changed and store.complete_request(request_id)
    assert store.migrate() == []
    store.close()
    with admin() as server:
        server.execute(f"DROP DATABASE {UPGRADE_DATABASE}")


def test_the_sqlcmd_script_runs_twice(sqlserver_connection_string: str) -> None:
    import pyodbc

    with pyodbc.connect(sqlserver_connection_string, autocommit=True, timeout=60) as db:
        for _ in range(2):
            for batch in TSQLDialect().split_script(migrate.tsql_script()):
                db.execute(batch)
        assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == migrate.latest_version("tsql")
