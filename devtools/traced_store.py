"""A real SQLite store whose every statement is reported to a callback (tests and benchmarks count them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.database import sqlite_connector
from shared.sql_dialect import DBAPIConnection
from shared.store import Store


def traced_sqlite_store(path: Path, on_statement: Callable[[str], object]) -> Store:
    """A ``Store`` on the SQLite file ``path``, schema applied, calling ``on_statement`` for each SQL statement."""
    connect, dialect = sqlite_connector(path)

    def traced_connect() -> DBAPIConnection:
        connection = connect()
        connection.set_trace_callback(on_statement)  # type: ignore[attr-defined]
        return connection

    store = Store(traced_connect, dialect)
    store.ensure_schema()
    return store
