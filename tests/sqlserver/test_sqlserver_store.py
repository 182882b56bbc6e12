r"""The store's tests against a live SQL Server through pyodbc (skipped unless configured).

Start a throw-away SQL Server 2022 (Developer edition, needs ~2 GB RAM) with:

    docker run -d --name imgpipe-mssql -e ACCEPT_EULA=Y -e MSSQL_SA_PASSWORD='Imgpipe-test-1' \
        -p 1433:1433 mcr.microsoft.com/mssql/server:2022-latest

then, with Microsoft's ODBC Driver 18 for SQL Server installed on the client:

    DRIVER='Driver={ODBC Driver 18 for SQL Server};Server=127.0.0.1,1433;TrustServerCertificate=yes'
    export TEST_SQLSERVER_CONNECTION_STRING="$DRIVER;UID=sa;PWD=Imgpipe-test-1"
    .venv/bin/python -m pytest -m sqlserver tests/sqlserver

The suite creates the database ``imgpipe_test`` if missing, applies schema.sql, and EMPTIES the
imgpipe tables in that database before each test: never point it at a database you care about.
Every test of tests/unit/test_store.py that is not SQLite-specific runs here unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shared.sql_dialect import TSQLDialect
from shared.store import Store
from tests.unit import test_store as generic

CONNECTION_ENV = "TEST_SQLSERVER_CONNECTION_STRING"
DATABASE = "imgpipe_test"

pytestmark = [
    pytest.mark.sqlserver,
    pytest.mark.skipif(not os.environ.get(CONNECTION_ENV), reason=f"{CONNECTION_ENV} is not set"),
]


@pytest.fixture(scope="module")
def sqlserver_connection_string() -> str:
    import pyodbc

    base = os.environ[CONNECTION_ENV].rstrip(";")
    with pyodbc.connect(base, autocommit=True, timeout=15) as admin:
        admin.execute(f"IF DB_ID(N'{DATABASE}') IS NULL CREATE DATABASE {DATABASE}")
    return f"{base};Database={DATABASE}"


@pytest.fixture
def store(sqlserver_connection_string: str) -> Iterator[Store]:
    import pyodbc

    built = Store.for_sqlserver(sqlserver_connection_string)
    assert isinstance(built.dialect, TSQLDialect)
    built.ensure_schema()
    with pyodbc.connect(sqlserver_connection_string, autocommit=True, timeout=15) as cleaner:
        for table in ("webhook_deliveries", "images", "products", "requests"):  # children first
            cleaner.execute(f"DELETE FROM {table}")
    yield built
    built.close()


# The same test functions, collected again here so they use this module's ``store`` fixture.
globals().update(
    {name: test for name, test in vars(generic).items() if name.startswith("test_") and "sqlite" not in name}
)
