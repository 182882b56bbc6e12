"""Connections and transactions for the store: one connection per thread, retried transactions.

Methods are called from thread pools, and several processes share one SQLite file. Each thread
gets its own connection (a forked child opens its own); SQLite runs in WAL mode with a busy
timeout; a transient error (locked, busy, deadlock, lost connection) retries the whole
transaction with backoff a few times, then raises ``TransientFailure``.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shared.credentials import sql_token_attributes
from shared.errors import TransientFailure
from shared.sql_dialect import DBAPIConnection, DBAPICursor, Dialect, SQLiteDialect, TSQLDialect

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
SQLITE_BUSY_TIMEOUT_S = 5.0
SQLSERVER_LOGIN_TIMEOUT_S = 15

Connector = tuple[Callable[[], DBAPIConnection], Dialect]


def sqlite_connector(path: Path, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Connector:
    path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> DBAPIConnection:
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE) by the store.
        # check_same_thread=False only so close() can close every thread's connection.
        return sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)

    return connect, SQLiteDialect(int(busy_timeout_s * 1000))


def sqlserver_connector(connection_string: str, token_source: TokenCredential | None = None) -> Connector:
    """Connections to SQL Server; with ``token_source``, each logs in with a fresh Entra access token
    (for a connection string that names no authentication; see shared/credentials.py)."""

    def connect() -> DBAPIConnection:
        import pyodbc

        attrs_before = sql_token_attributes(token_source) if token_source is not None else None
        connection: DBAPIConnection = pyodbc.connect(
            connection_string, autocommit=False, timeout=SQLSERVER_LOGIN_TIMEOUT_S, attrs_before=attrs_before
        )
        return connection

    return connect, TSQLDialect()


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

    def _attempt(self, work: Callable[[DBAPICursor], T], write: bool) -> T:
        connection = self.connection()
        cursor = connection.cursor()
        try:
            if write and self.dialect.begin_write:
                cursor.execute(self.dialect.begin_write)
            result = work(cursor)
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

    def run(self, work: Callable[[DBAPICursor], T], *, write: bool) -> T:
        """Run ``work`` in one transaction, retrying it whole on transient errors."""
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
            try:
                return self._attempt(work, write)
            except Exception as exc:
                if not self.dialect.is_transient(exc):
                    raise
                self._discard_connection()
                if delay is None:
                    raise TransientFailure(f"database unavailable or busy ({type(exc).__name__})") from exc
                logger.warning(
                    "transient database error (%s), attempt %d: retrying", type(exc).__name__, attempt
                )
                time.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not security
        raise AssertionError("unreachable")

    def fetch_all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        def work(cursor: DBAPICursor) -> list[Any]:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

        return self.run(work, write=False)

    def update(self, sql: str, params: Sequence[Any]) -> bool:
        def work(cursor: DBAPICursor) -> bool:
            cursor.execute(sql, params)
            return cursor.rowcount > 0

        return self.run(work, write=True)


    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for connection in connections:
            try:
                connection.close()
            except Exception:
                logger.debug("closing a database connection failed", exc_info=True)
