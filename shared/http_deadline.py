"""One wall-clock deadline for a whole outbound request: connect, TLS, headers and body.

urllib3's timeouts apply to each socket operation, so a server that sends its status line and
headers one byte a second never trips a 3 s read timeout and can hold a worker for minutes. Here a
request runs inside ``total_deadline(seconds)``; every socket it uses (a new connection's, right
after the TCP connect and before TLS, or a pooled connection's when it is handed out) is watched,
and when the deadline passes a timer shuts the socket down. The blocked read in the requesting
thread then fails at once, and the caller sees ``scope.expired``.

A duplicate of the socket's descriptor is what gets watched: shutting it down shuts the
connection down (shutdown acts on the socket, not the descriptor), and the duplicate stays valid
while the TLS layer replaces the original socket object. The pools are installed by the SSRF
guard's adapter (``install``), so no code path reaches the network without the watch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

logger = logging.getLogger(__name__)

_current = threading.local()


class DeadlineScope:
    """The sockets of one request and the timer that shuts them down at the deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        try:
            duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return  # already closed: nothing left to hold up
        with self._lock:
            self._watched.append(duplicate)
            expired = self.expired
        if expired:
            _shut(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            watched = list(self._watched)
        for sock in watched:
            _shut(sock)

    def start(self) -> None:
        self._timer.start()

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def total_deadline(seconds: float) -> Iterator[DeadlineScope]:
    """Run the requests made in this block (in this thread) under one deadline of ``seconds``."""
    outer = getattr(_current, "scope", None)
    scope = DeadlineScope(seconds)
    _current.scope = scope
    scope.start()
    try:
        yield scope
    finally:
        _current.scope = outer
        scope.close()


def _watch_current(sock: socket.socket | None) -> None:
    scope: DeadlineScope | None = getattr(_current, "scope", None)
    if scope is not None:
        scope.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_current(sock)
        return sock


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_current(sock)  # before the TLS handshake, which a server can trickle too
        return sock


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _watch_current(getattr(conn, "sock", None))  # kept alive; a new one is watched as it connects
        return conn


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _watch_current(getattr(conn, "sock", None))
        return conn


def install(pool_manager: PoolManager) -> None:
    """Make ``pool_manager`` build pools whose connections are watched by the current deadline."""
    pool_manager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}
