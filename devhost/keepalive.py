"""Keep-alive HTTP/1.1 connections to one host over ``http.client``, shared by threads.

The local host's queue client (``devhost.queue_rest``) sends every request through one of these: a
pooled connection saves a TCP (and TLS) handshake per request, and ``http.client`` alone costs less
CPU per request than urllib3 under it (measured with ``bench.queue_client_cost``).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

# The Storage SDK's defaults (azure.storage.queue._shared.constants CONNECTION_TIMEOUT, READ_TIMEOUT).
CONNECT_TIMEOUT_SECONDS = 20.0
READ_TIMEOUT_SECONDS = 60.0
# Idle connections kept per account (the threads that talk to it at once: pollers, renewers,
# completions, HTTP handlers); more are opened when needed and closed after use.
POOL_SIZE = 32
# Azurite closes a keep-alive connection after 5 s idle (``Keep-Alive: timeout=5``): one idle longer
# than this is closed instead of reused, so a request seldom meets a connection the server dropped.
MAX_IDLE_SECONDS = 4.0
# A reused connection the server closed while idle fails with these before any answer.
_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    data: bytes


class KeepAlivePool:
    """Keep-alive HTTP/1.1 connections to one host, each used by one request at a time."""

    def __init__(self, host: str, port: int | None, tls: ssl.SSLContext | None) -> None:
        self._host, self._port, self._tls = host, port, tls
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    def request(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> Response:
        connection = self._checkout()
        if connection is not None:
            try:
                return self._exchange(connection, method, target, body, headers)
            except _STALE_CONNECTION_ERRORS:
                pass  # dropped by the server while idle: the request never reached it; a new connection
        return self._exchange(self._connect(), method, target, body, headers)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _exchange(
        self, connection: http.client.HTTPConnection, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> Response:
        try:
            connection.request(method, target, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._checkin(connection)
        return Response(response.status, response.reason, response.headers, data)

    def _checkout(self) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                connection, idle_since = self._idle.pop()
                if now - idle_since < MAX_IDLE_SECONDS:
                    return connection
                connection.close()
        return None

    def _checkin(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self._tls is not None:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=CONNECT_TIMEOUT_SECONDS, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT_SECONDS)
        connection.connect()
        if connection.sock is not None:
            connection.sock.settimeout(READ_TIMEOUT_SECONDS)
        return connection


def tls_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """Verified TLS with the CA bundle requests (the SDK's transport) would use: REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE, else certifi's. Read once here rather than on every request as requests does."""
    bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
    if not bundle:
        try:
            import certifi  # a dependency of requests, so present wherever the SDK was

            bundle = certifi.where()
        except ImportError:
            bundle = None
    return ssl.create_default_context(cafile=bundle)
