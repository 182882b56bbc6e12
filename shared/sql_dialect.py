"""What differs between SQLite and SQL Server (T-SQL), and nothing else.

``shared.store`` writes generic SQL with ``?`` parameters (both sqlite3 and pyodbc use the qmark
style); a ``Dialect`` supplies the DDL, row limits, insert-if-absent, datetime conversion,
connection set-up and the classification of driver errors.

Why a small hand-written dialect rather than SQLAlchemy Core: the store issues about twenty fixed
statements, all plain enough to be portable; a dependency of SQLAlchemy's size (and its pool, its
own thread rules and engine configuration) would be more to learn, deploy and configure than the
~40 lines that actually differ. The T-SQL text is checked instead by parsing every statement with
sqlglot (tests/unit/test_tsql.py) and by the live SQL Server suite (tests/sqlserver/).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# SQLGetInfo's InfoType for the driver's file name (sql.h); named here so that nothing but a real
# connection needs pyodbc, whose import fails where the unixODBC driver manager is not installed.
ODBC_SQL_DRIVER_NAME = 6

SCHEMA_SQL_PATH = Path(__file__).resolve().parent.parent / "schema.sql"


class DBAPICursor(Protocol):
    """The part of a PEP 249 cursor the store uses (sqlite3 and pyodbc both fit)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def close(self) -> None: ...


class DBAPIConnection(Protocol):
    """The part of a PEP 249 connection the store uses."""

    def cursor(self) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


SQLITE_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS request_options (
    request_id TEXT NOT NULL PRIMARY KEY REFERENCES requests (request_id),
    quality INTEGER,
    size_target REAL,
    format TEXT,
    max_dimension INTEGER
);
CREATE TABLE IF NOT EXISTS image_aliases (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    leader_seq INTEGER NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX IF NOT EXISTS ix_image_aliases_leader
    ON image_aliases (request_id, leader_seq);
"""


def split_sqlite_script(script: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in script.split(";") if part.strip())


def split_tsql_batches(script: str) -> tuple[str, ...]:
    """Split a T-SQL script on its ``GO`` lines (a client-side separator, not T-SQL)."""
    batches = re.split(r"^\s*GO\s*$", script, flags=re.IGNORECASE | re.MULTILINE)
    cleaned = ("\n".join(ln for ln in b.splitlines() if not ln.strip().startswith("--")) for b in batches)
    return tuple(batch.strip() for batch in cleaned if batch.strip())


def _to_utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
    return moment.astimezone(UTC).replace(tzinfo=None)


class Dialect:
    """The base: what both dialects share. Subclasses override what differs."""

    name = "generic"
    # Run before the first statement of a write transaction (None: the driver opens one itself).
    begin_write: str | None = None

    def schema_statements(self) -> tuple[str, ...]:
        raise NotImplementedError

    def prepare_connection(self, connection: DBAPIConnection) -> None:
        """Per-connection settings, run once after connecting."""

    def prepare_bulk(self, cursor: DBAPICursor, connection: DBAPIConnection) -> None:
        """Tune a cursor before a large ``executemany``."""

    def select_first(self, limit: int, rest: str) -> str:
        """``SELECT`` the first ``limit`` rows; ``rest`` is the query after the word SELECT."""
        raise NotImplementedError

    def insert_if_absent(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        """An INSERT of one row (parameters in ``columns`` order) that does nothing if the key exists."""
        raise NotImplementedError

    def to_db(self, moment: datetime | None) -> Any:
        raise NotImplementedError

    def from_db(self, value: Any) -> datetime | None:
        if value is None:
            return None
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def is_transient(self, exc: BaseException) -> bool:
        """Whether retrying the whole transaction may succeed (lock, deadlock, lost connection)."""
        return False

    def is_unique_violation(self, exc: BaseException) -> bool:
        return False

    def is_already_exists(self, exc: BaseException) -> bool:
        """Whether a DDL error means another process created the object first."""
        return False


class SQLiteDialect(Dialect):
    name = "sqlite"
    # Take the write lock up front: a deferred transaction that reads then writes can fail with
    # SQLITE_BUSY without waiting when another connection wrote in between (WAL snapshots).
    begin_write = "BEGIN IMMEDIATE"

    def __init__(self, busy_timeout_ms: int = 5000) -> None:
        self.busy_timeout_ms = busy_timeout_ms

    def schema_statements(self) -> tuple[str, ...]:
        return split_sqlite_script(SQLITE_SCHEMA)

    def prepare_connection(self, connection: DBAPIConnection) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL; far fewer fsyncs
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def select_first(self, limit: int, rest: str) -> str:
        return f"SELECT {rest} LIMIT {int(limit)}"

    def insert_if_absent(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        marks = ", ".join("?" for _ in columns)
        # Identifiers come from the store's constants, never from input.
        return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608

    def to_db(self, moment: datetime | None) -> Any:
        # Fixed-width text, so comparisons in SQL order the same as the instants.
        return None if moment is None else _to_utc_naive(moment).strftime("%Y-%m-%d %H:%M:%S.%f")

    def is_transient(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "unique" in str(exc).lower()


# SQL Server error numbers worth a retry: deadlock victim, lock timeout, and Azure SQL's
# documented transient ones (failover, throttling, service busy).
_TSQL_TRANSIENT_NUMBERS = frozenset(
    {1205, 1222, 4060, 4221, 10928, 10929, 40197, 40501, 40613, 49918, 49919, 49920}
)
_TSQL_TRANSIENT_STATES = frozenset({"08S01", "08001", "08004", "08007", "HYT00", "HYT01", "40001"})


def _odbc_state_and_numbers(exc: BaseException) -> tuple[str, set[int]]:
    state = str(exc.args[0]) if exc.args else ""
    message = " ".join(str(arg) for arg in exc.args[1:])
    numbers = {int(found) for found in re.findall(r"\((\d{3,6})\)", message)}
    return state, numbers


class TSQLDialect(Dialect):
    name = "tsql"

    def __init__(self, schema_path: Path = SCHEMA_SQL_PATH) -> None:
        self.schema_path = schema_path

    def schema_statements(self) -> tuple[str, ...]:
        return split_tsql_batches(self.schema_path.read_text(encoding="utf-8"))

    def prepare_bulk(self, cursor: DBAPICursor, connection: DBAPIConnection) -> None:
        # fast_executemany sends parameter arrays in one round trip. Only Microsoft's driver
        # supports it: other ODBC drivers (SQLite's, FreeTDS) misbehave or crash the process.
        getinfo = getattr(connection, "getinfo", None)
        if getinfo is None:
            return
        driver = str(getinfo(ODBC_SQL_DRIVER_NAME)).lower()
        if driver.startswith("msodbcsql") or "sqlncli" in driver:
            cursor.fast_executemany = True  # type: ignore[attr-defined]

    def select_first(self, limit: int, rest: str) -> str:
        return f"SELECT TOP ({int(limit)}) {rest}"

    def insert_if_absent(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        # HOLDLOCK makes the existence check and the insert one atomic step under concurrency.
        selected = ", ".join(f"? AS {column}" for column in columns)
        matched = " AND ".join(f"target.{key} = source.{key}" for key in keys)
        names = ", ".join(columns)
        values = ", ".join(f"source.{column}" for column in columns)
        return (
            f"MERGE INTO {table} WITH (HOLDLOCK) AS target USING (SELECT {selected}) AS source "  # noqa: S608
            f"ON {matched} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values});"
        )

    def to_db(self, moment: datetime | None) -> Any:
        return None if moment is None else _to_utc_naive(moment)

    def is_transient(self, exc: BaseException) -> bool:
        state, numbers = _odbc_state_and_numbers(exc)
        return state in _TSQL_TRANSIENT_STATES or bool(numbers & _TSQL_TRANSIENT_NUMBERS)

    def is_unique_violation(self, exc: BaseException) -> bool:
        _, numbers = _odbc_state_and_numbers(exc)
        return bool(numbers & {2601, 2627})

    def is_already_exists(self, exc: BaseException) -> bool:
        _, numbers = _odbc_state_and_numbers(exc)
        return bool(numbers & {2714, 1913})
