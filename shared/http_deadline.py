"""One wall-clock deadline for a whole outbound request: connect, TLS, headers and body.

urllib3's timeouts apply to each socket operation, so a server that sends its status line and
headers one byte a second never trips a 3 s read timeout and can hold a worker for minutes. Here a
request runs inside ``total_deadline(seconds)``; every socket it uses (a new connection's, right
after the TCP connect and before TLS, or a pooled connection's when it is handed out) is watched,
and when the deadline passes the watchdog shuts the socket down. The blocked read in the
requesting thread then fails at once, and the caller sees ``scope.expired``.

One watchdog thread per process serves every deadline (a heap ordered by expiry): a timer thread
per request cost ~60-80 us of CPU to start and stop, and a start that waits for the new thread
to run, on every image download.

A duplicate of the socket's descriptor is what gets watched: shutting it down shuts the
connection down (shutdown acts on the socket, not the descriptor), and the duplicate stays valid
while the TLS layer replaces the original socket object. The pools are installed by the SSRF
guard's adapter (``install``), so no code path reaches the network without the watch.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

logger = logging.getLogger(__name__)

_current = threading.local()


class DeadlineScope:
    """The sockets of one request, shut down by the watchdog when the deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._closed = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []

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
            if self._closed:
                return  # the request ended in time
            self.expired = True
            watched = list(self._watched)
        for sock in watched:
            _shut(sock)

    def start(self) -> None:
        _watchdog.add(self, time.monotonic() + self.seconds)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()


class _Watchdog:
    """One thread that expires every scope at its deadline, in deadline order.

    A closed scope stays in the heap until its deadline passes (removing it would cost a search);
    expiring it then does nothing.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, DeadlineScope]] = []
        self._order = itertools.count()  # ties never compare scopes
        self._thread: threading.Thread | None = None

    def add(self, scope: DeadlineScope, when: float) -> None:
        with self._wake:
            heapq.heappush(self._heap, (when, next(self._order), scope))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadline-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is scope:  # earlier than what the thread sleeps towards
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, scope = heapq.heappop(self._heap)
            scope._expire()


_watchdog = _Watchdog()


def _new_watchdog_after_fork() -> None:
    """A forked child has no watchdog thread, and the parent's lock may have been held at the fork."""
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_new_watchdog_after_fork)


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
