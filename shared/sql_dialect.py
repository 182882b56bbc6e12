"""What differs between SQLite and SQL Server (T-SQL), and nothing else.

``shared.store`` writes generic SQL with ``?`` parameters (both sqlite3 and pyodbc use the qmark
style); a ``Dialect`` supplies the migration scripts' file suffix and batch splitting, row limits,
datetime conversion, connection set-up, the retry policy, and the classification of driver errors.

Why a small hand-written layer rather than SQLAlchemy Core (+ Alembic): the store sends about
twenty fixed statements that are portable as written; what SQL Server needs from them (varchar
parameters against CHAR keys, binary collations, no range locks, a statement timeout, error
numbers from the driver) is a handful of decisions that SQLAlchemy would not make for us either:
its ``mssql+pyodbc`` dialect also binds Python ``str`` as NVARCHAR, leaves collations to the DDL
and retries to the application. The layer stays small enough to read in one sitting and is
checked by parsing every statement and every migration with sqlglot's T-SQL parser
(tests/unit/test_tsql.py) and by the live SQL Server suite (tests/sqlserver/), which asserts the
hot statements' plans seek without CONVERT_IMPLICIT.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

# SQLGetInfo's InfoType for the driver's file name (sql.h); named here so that nothing but a real
# connection needs pyodbc, whose import fails where the unixODBC driver manager is not installed.
ODBC_SQL_DRIVER_NAME = 6

SQLSERVER_STATEMENT_TIMEOUT_S = 30
SQLSERVER_RETRY_BUDGET_S = 120.0


class DBAPICursor(Protocol):
    """The part of a PEP 249 cursor the store uses (sqlite3 and pyodbc both fit)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

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


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for transient errors: ``first_delay_s`` doubling up to ``max_delay_s``, retried
    until the next wait would take the total waited past ``budget_s``."""

    first_delay_s: float
    max_delay_s: float
    budget_s: float

    def delays(self) -> Iterator[float]:
        delay, waited = max(self.first_delay_s, 0.001), 0.0  # a zero delay must not retry forever
        while waited + delay <= self.budget_s:
            yield delay
            waited += delay
            delay = max(min(delay * 2, self.max_delay_s), 0.001)


def split_sqlite_script(script: str) -> tuple[str, ...]:
    lines = (line for line in script.splitlines() if not line.strip().startswith("--"))
    return tuple(part.strip() for part in "\n".join(lines).split(";") if part.strip())


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
    # A query whose column ``present`` is 1 when the schema_version table exists, else 0.
    schema_version_exists: str = ""
    # Run first in each migration's transaction, so two migrators never apply the same step.
    migration_lock: str | None = None
    retry_policy = RetryPolicy(first_delay_s=0.05, max_delay_s=1.6, budget_s=5.0)

    def split_script(self, script: str) -> tuple[str, ...]:
        raise NotImplementedError

    def prepare_connection(self, connection: DBAPIConnection) -> None:
        """Per-connection settings, run once after connecting."""

    def prepare_bulk(self, cursor: DBAPICursor, connection: DBAPIConnection) -> None:
        """Tune a cursor before a large ``executemany``."""

    def select_first(self, limit: int, rest: str) -> str:
        """``SELECT`` the first ``limit`` rows; ``rest`` is the query after the word SELECT."""
        raise NotImplementedError

    def returning(self, update: str, column: str) -> str:
        """``update`` (an UPDATE with ``{output}`` before WHERE, ``{returning}`` at the end) that also
        answers ``column`` of each changed row as updated: one statement, one round trip."""
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
        """Whether a migration statement failed only because its change is already there."""
        return False


class SQLiteDialect(Dialect):
    name = "sqlite"
    # Take the write lock up front: a deferred transaction that reads then writes can fail with
    # SQLITE_BUSY without waiting when another connection wrote in between (WAL snapshots).
    begin_write = "BEGIN IMMEDIATE"
    schema_version_exists = (
        "SELECT COUNT(*) AS present FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )

    def __init__(self, busy_timeout_ms: int = 5000, retry_policy: RetryPolicy | None = None) -> None:
        self.busy_timeout_ms = busy_timeout_ms
        if retry_policy is not None:
            self.retry_policy = retry_policy

    def split_script(self, script: str) -> tuple[str, ...]:
        return split_sqlite_script(script)

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

    def returning(self, update: str, column: str) -> str:
        return update.format(output="", returning=f" RETURNING {column}")  # SQLite 3.35+

    def to_db(self, moment: datetime | None) -> Any:
        # Fixed-width text, so comparisons in SQL order the same as the instants.
        return None if moment is None else _to_utc_naive(moment).strftime("%Y-%m-%d %H:%M:%S.%f")

    def is_transient(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)

    def is_unique_violation(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, sqlite3.IntegrityError) and ("unique" in text or "primary key" in text)

    def is_already_exists(self, exc: BaseException) -> bool:
        # SQLite has no ADD COLUMN IF NOT EXISTS; a re-run migration meets its own column.
        return isinstance(exc, sqlite3.OperationalError) and "duplicate column name" in str(exc).lower()


# SQL Server error numbers worth a retry: the baseline list of Microsoft's own client
# (dotnet/SqlClient, SqlConfigurableRetryFactory: deadlock, lock resources, Azure SQL failover,
# throttling and busy service, connection drops) plus 64 and 20 (connection lost during login,
# and SSL negotiation) that Microsoft's transient-fault guidance for Azure SQL lists.
TSQL_TRANSIENT_NUMBERS = frozenset({
    20, 64, 233, 997, 1204, 1205, 1222, 4060, 4221, 10053, 10054, 10060, 10928, 10929,
    40143, 40197, 40501, 40540, 40613, 49918, 49919, 49920,
})  # fmt: skip
# ODBC SQLSTATEs of a lost or refused connection, a timeout, and a serialization failure.
TSQL_TRANSIENT_STATES = frozenset({"08S01", "08001", "08004", "08007", "HYT00", "HYT01", "40001"})
TSQL_UNIQUE_NUMBERS = frozenset({2601, 2627})

# pyodbc formats each ODBC diagnostic record as "[SQLSTATE] message (native) (SQLFunction)" for
# the first and "; [SQLSTATE] message (native)" for the rest (pyodbc src/errors.cpp), so a native
# error number is a parenthesised integer right before " (SQLxxx)", "; [" or the end. Digits
# inside the message text (a duplicate key value "(40613)") are not.
_NATIVE_ERROR = re.compile(r"\((-?\d+)\)(?=\s\(SQL\w+\)(?:;|$)|;\s\[|$)")
_MICROSOFT_DRIVER = re.compile(r"^(?:lib)?(?:msodbcsql|sqlncli)", re.IGNORECASE)


def odbc_state_and_numbers(exc: BaseException) -> tuple[str, frozenset[int]]:
    """The SQLSTATE and the native error numbers a pyodbc error carries."""
    state = str(exc.args[0]) if exc.args else ""
    message = str(exc.args[1]) if len(exc.args) > 1 else ""
    return state, frozenset(int(found) for found in _NATIVE_ERROR.findall(message.rstrip()))


def is_microsoft_driver(driver_file: str) -> bool:
    """Whether an ODBC driver file name (SQLGetInfo SQL_DRIVER_NAME) is Microsoft's SQL Server driver.

    Linux ``libmsodbcsql-18.3.so.2.1``, Windows ``msodbcsql18.dll``, macOS ``libmsodbcsql.18.dylib``
    and the old Native Client ``sqlncli11.dll`` are; FreeTDS ``libtdsodbc.so`` and SQLite's
    ``libsqlite3odbc.so`` are not (fast_executemany crashes the latter: FACTS.md).
    """
    name = re.split(r"[\\/]", driver_file.strip())[-1]
    return bool(_MICROSOFT_DRIVER.match(name))


class TSQLDialect(Dialect):
    name = "tsql"
    schema_version_exists = (
        "SELECT CASE WHEN OBJECT_ID(N'dbo.schema_version', N'U') IS NULL THEN 0 ELSE 1 END AS present"
    )
    # Serialises migrators; released with the migration's transaction.
    migration_lock = (
        "EXEC sp_getapplock @Resource = N'imgpipe-migrate', @LockMode = N'Exclusive',"
        " @LockOwner = N'Transaction', @LockTimeout = 60000"
    )

    def __init__(
        self,
        statement_timeout_s: int = SQLSERVER_STATEMENT_TIMEOUT_S,
        retry_budget_s: float = SQLSERVER_RETRY_BUDGET_S,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.statement_timeout_s = statement_timeout_s
        # Microsoft's guidance for Azure SQL: wait at least 5 s before the first retry and grow
        # the wait up to about a minute (a failover or reconfiguration takes that long).
        self.retry_policy = retry_policy or RetryPolicy(first_delay_s=5.0, max_delay_s=60.0, budget_s=retry_budget_s)

    def split_script(self, script: str) -> tuple[str, ...]:
        return split_tsql_batches(script)

    def prepare_connection(self, connection: DBAPIConnection) -> None:
        # pyodbc's connect(timeout=) is the login timeout only; Connection.timeout is the query
        # timeout every cursor inherits (SQL_ATTR_QUERY_TIMEOUT), so a blocked statement ends.
        connection.timeout = self.statement_timeout_s  # type: ignore[attr-defined]
        cursor = connection.cursor()
        try:
            # A timeout or a client-side cancel then rolls the whole transaction back instead
            # of leaving it open with its locks on a pooled connection.
            cursor.execute("SET XACT_ABORT ON")
        finally:
            cursor.close()
        connection.commit()

    def prepare_bulk(self, cursor: DBAPICursor, connection: DBAPIConnection) -> None:
        # fast_executemany sends parameter arrays in one round trip; only Microsoft's driver
        # supports it (other ODBC drivers misbehave, SQLite's crashes the process).
        getinfo = getattr(connection, "getinfo", None)
        if getinfo is not None and is_microsoft_driver(str(getinfo(ODBC_SQL_DRIVER_NAME))):
            cursor.fast_executemany = True  # type: ignore[attr-defined]

    def select_first(self, limit: int, rest: str) -> str:
        return f"SELECT TOP ({int(limit)}) {rest}"

    def returning(self, update: str, column: str) -> str:
        return update.format(output=f" OUTPUT inserted.{column}", returning="")

    def to_db(self, moment: datetime | None) -> Any:
        return None if moment is None else _to_utc_naive(moment)

    def is_transient(self, exc: BaseException) -> bool:
        state, numbers = odbc_state_and_numbers(exc)
        return state in TSQL_TRANSIENT_STATES or bool(numbers & TSQL_TRANSIENT_NUMBERS)

    def is_unique_violation(self, exc: BaseException) -> bool:
        _, numbers = odbc_state_and_numbers(exc)
        return bool(numbers & TSQL_UNIQUE_NUMBERS)
