"""Connections and transactions for the store: one connection per thread, retried transactions.

Methods are called from thread pools, and several processes share one SQLite file. Each thread
gets its own connection (a forked child opens its own); SQLite runs in WAL mode with a busy
timeout; a transient error (locked, busy, deadlock, lost connection) retries the whole
transaction with the dialect's backoff until its time budget is spent, then raises
``TransientFailure``.

A lost commit acknowledgement: when ``commit()`` itself fails, the transaction may or may not
have been committed. The retry then first runs the caller's ``committed`` check (if given), which
recognises the work's own committed result (a row with this call's own timestamp, id or marker),
so a retried claim or insert does not mistake its own success for someone else's.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shared.credentials import sql_token_attributes
from shared.errors import ConfigError, TransientFailure
from shared.sql_dialect import (
    SQLSERVER_RETRY_BUDGET_S,
    SQLSERVER_STATEMENT_TIMEOUT_S,
    DBAPIConnection,
    DBAPICursor,
    Dialect,
    RetryPolicy,
    SQLiteDialect,
    TSQLDialect,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]

SQLITE_BUSY_TIMEOUT_S = 5.0
SQLSERVER_LOGIN_TIMEOUT_S = 15

Connector = tuple[Callable[[], DBAPIConnection], Dialect]


SQLITE_MIN_VERSION = (3, 35)  # UPDATE ... RETURNING (the store's per-image record)


def sqlite_connector(
    path: Path, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S, retry_policy: RetryPolicy | None = None
) -> Connector:
    if sqlite3.sqlite_version_info < SQLITE_MIN_VERSION:
        raise ConfigError(f"SQLite {sqlite3.sqlite_version} is too old: the store needs 3.35 or newer (RETURNING)")
    path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> DBAPIConnection:
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE) by the store.
        # check_same_thread=False only so close() can close every thread's connection.
        return sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)

    return connect, SQLiteDialect(int(busy_timeout_s * 1000), retry_policy)


def sqlserver_connector(
    connection_string: str,
    statement_timeout_s: int = SQLSERVER_STATEMENT_TIMEOUT_S,
    retry_budget_s: float = SQLSERVER_RETRY_BUDGET_S,
    token_source: TokenCredential | None = None,
) -> Connector:
    """Connections to SQL Server; with ``token_source``, each logs in with a fresh Entra access token
    (for a connection string that names no authentication; see shared/credentials.py)."""

    def connect() -> DBAPIConnection:
        import pyodbc

        attrs_before = sql_token_attributes(token_source) if token_source is not None else None
        connection: DBAPIConnection = pyodbc.connect(
            connection_string, autocommit=False, timeout=SQLSERVER_LOGIN_TIMEOUT_S, attrs_before=attrs_before
        )
        return connection

    return connect, TSQLDialect(statement_timeout_s, retry_budget_s)


def rows_of(cursor: DBAPICursor) -> list[Row]:
    """The cursor's remaining rows, each as a mapping from column name (or alias) to value."""
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class _Attempt:
    commit_sent: bool = False


class Database:
    """Per-thread connections over a connection factory, and transactions retried when transient."""

    def __init__(self, connect: Callable[[], DBAPIConnection], dialect: Dialect) -> None:
        self._connect = connect
        self.dialect = dialect
        self._lock = threading.Lock()
        self._reset_connections()

    def _reset_connections(self) -> None:
        self._local = threading.local()
        self._connections: list[DBAPIConnection] = []
        self._pid = os.getpid()

    def connection(self) -> DBAPIConnection:
        if self._pid != os.getpid():  # a forked child must not use its parent's connections
            with self._lock:
                self._reset_connections()
        connection: DBAPIConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
            self.dialect.prepare_connection(connection)
        return connection

    def _discard_connection(self) -> None:
        connection = self._local.__dict__.pop("connection", None)
        if connection is None:
            return
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
        try:
            connection.close()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            logger.debug("closing a discarded database connection failed", exc_info=True)

    def _attempt(
        self,
        work: Callable[[DBAPICursor], T],
        write: bool,
        committed: Callable[[DBAPICursor], T | None] | None,
        state: _Attempt,
    ) -> T:
        connection = self.connection()
        cursor = connection.cursor()
        try:
            if write and self.dialect.begin_write:
                cursor.execute(self.dialect.begin_write)
            found = committed(cursor) if committed is not None else None
            result = work(cursor) if found is None else found
            state.commit_sent = True
            connection.commit()
            return result
        except BaseException:
            try:
                connection.rollback()
            except Exception:
                self._discard_connection()
            raise
        finally:
            cursor.close()

    def run(
        self,
        work: Callable[[DBAPICursor], T],
        *,
        write: bool,
        committed: Callable[[DBAPICursor], T | None] | None = None,
    ) -> T:
        """Run ``work`` in one transaction, retrying it whole on transient errors.

        ``committed`` (for writes that must know their own result) is run before ``work`` on a
        retry after a failed commit: a non-None answer means the earlier attempt did commit, and
        is returned instead of running ``work`` again.
        """
        delays = self.dialect.retry_policy.delays()
        commit_unknown = False
        attempt = 0
        while True:
            attempt += 1
            state = _Attempt()
            try:
                return self._attempt(work, write, committed if commit_unknown else None, state)
            except Exception as exc:
                if not self.dialect.is_transient(exc):
                    raise
                commit_unknown = commit_unknown or state.commit_sent
                self._discard_connection()
                delay = next(delays, None)
                if delay is None:
                    raise TransientFailure(f"database unavailable or busy ({type(exc).__name__})") from exc
                logger.warning(
                    "transient database error (%s), attempt %d: retrying in %.2f s",
                    type(exc).__name__, attempt, delay,
                )  # fmt: skip
                time.sleep(delay * random.uniform(0.75, 1.25))  # noqa: S311 - jitter, not security

    def fetch_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        def work(cursor: DBAPICursor) -> list[Row]:
            cursor.execute(sql, params)
            return rows_of(cursor)

        return self.run(work, write=False)

    def update(
        self, sql: str, params: Sequence[Any], committed: Callable[[DBAPICursor], bool | None] | None = None
    ) -> bool:
        def work(cursor: DBAPICursor) -> bool:
            cursor.execute(sql, params)
            return cursor.rowcount > 0

        return self.run(work, write=True, committed=committed)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for connection in connections:
            try:
                connection.close()
            except Exception:
                logger.debug("closing a database connection failed", exc_info=True)
