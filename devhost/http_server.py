"""The HTTP trigger: a threaded HTTP/1.1 server that routes requests to functions.

Keys are not enforced unless asked (as Core Tools runs locally); with enforcement a non-anonymous
function needs the key in the ``x-functions-key`` header or the ``code`` query parameter.

Throttles as host.json ``extensions.http`` (the http section of the host.json reference,
MicrosoftDocs/azure-docs ``includes/functions-host-json-http.md``): at most ``maxOutstandingRequests``
function requests held (queued or running; one more is a 429 at once) and at most
``maxConcurrentRequests`` running (the rest wait their turn); both unbounded when unset or -1. The
listen backlog is Kestrel's (512), not Python's 5, so a burst of connections is queued by the kernel
instead of reset.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from devhost.invocation import HttpRequestData, HttpResponseData, InvocationRequest
from devhost.logs import HTTP_REASON, InvocationLog
from devhost.queue_io import QueueClients
from devhost.routing import Router
from devhost.workers import WorkerCrashed, WorkerPool

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 100 * 1024 * 1024
LISTEN_BACKLOG = 512  # Kestrel's SocketTransportOptions.Backlog default
_EMPTY = HttpResponseData(500, [], b"")


@dataclass(frozen=True)
class HttpOptions:
    port: int
    enforce_keys: bool
    function_key: str | None
    function_timeout: float | None  # None: unbounded (functionTimeout -1)
    queue_encoding: str
    bind_host: str = "127.0.0.1"
    max_concurrent_requests: int | None = None  # None: unbounded
    max_outstanding_requests: int | None = None


class HttpFrontend:
    """Everything between a parsed request and the response, without any socket code."""

    def __init__(self, router: Router, pool: WorkerPool, clients: QueueClients, options: HttpOptions) -> None:
        self.router = router
        self._pool = pool
        self._clients = clients
        self._options = options
        self._active = 0
        self._changed = threading.Condition()
        self.stopping = False
        self._outstanding = 0
        self._running = (
            threading.BoundedSemaphore(options.max_concurrent_requests) if options.max_concurrent_requests else None
        )

    def admit(self) -> bool:
        """Count a function request in, or refuse it (429) when maxOutstandingRequests are already held."""
        with self._changed:
            limit = self._options.max_outstanding_requests
            if limit is not None and self._outstanding >= limit:
                return False
            self._outstanding += 1
            return True

    def release(self) -> None:
        with self._changed:
            self._outstanding -= 1

    def wait_idle(self, deadline: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._active == 0, timeout=max(0.0, deadline - time.monotonic()))

    def authorized(self, auth_level: str, headers: dict[str, str], params: dict[str, str]) -> bool:
        if not self._options.enforce_keys or auth_level == "anonymous":
            return True
        expected = self._options.function_key or ""
        given = headers.get("x-functions-key") or params.get("code") or ""
        return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())

    def invoke(self, function_name: str, request: HttpRequestData) -> HttpResponseData:
        with self._changed:
            self._active += 1
        try:
            if self._running is None:
                return self._invoke(function_name, request)
            with self._running:  # beyond maxConcurrentRequests a request waits here, queued
                return self._invoke(function_name, request)
        finally:
            with self._changed:
                self._active -= 1
                self._changed.notify_all()

    def _invoke(self, function_name: str, request: HttpRequestData) -> HttpResponseData:
        invocation_id = str(uuid.uuid4())
        log = InvocationLog(function_name, invocation_id, HTTP_REASON)
        future = self._pool.submit(InvocationRequest(invocation_id, function_name, request))
        try:
            result = future.result()  # the pool enforces functionTimeout (FunctionTimeout is a WorkerCrashed)
        except WorkerCrashed as exc:
            log.finished(False, str(exc))
            return _EMPTY
        if not result.succeeded:
            log.finished(False, result.error)
            return _EMPTY
        route = next(r for r in self.router.routes if r.spec.name == function_name)
        try:
            self._clients.write_outputs(route.spec.outputs, result.queue_outputs, self._options.queue_encoding)
        except Exception:
            log.finished(False, "writing an output binding failed:\n" + traceback.format_exc())
            return _EMPTY
        log.finished(True)
        return result.http_response or HttpResponseData(204, [], b"")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def _handle(self) -> None:
        frontend = self.server.frontend
        if frontend.stopping:
            self._reply(HttpResponseData(503, [], b""), close=True)
            return
        split = urlsplit(self.path)
        match = frontend.router.match(self.command, split.path)
        if match.route is None:
            self._reply(HttpResponseData(404, [], b""), close=True)
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        trigger = match.route.spec.trigger
        if not frontend.authorized(str(trigger.get("authLevel") or "function").lower(), headers, params):
            self._reply(HttpResponseData(401, [], b""), close=True)
            return
        if not frontend.admit():
            self._reply(HttpResponseData(429, [], b""), close=True)
            return
        try:
            body = self._read_body()
            if body is None:
                self._reply(HttpResponseData(413, [], b""), close=True)
                return
            host = self.headers.get("Host") or f"localhost:{self.server.server_address[1]}"
            url = f"http://{host}{self.path}"
            request = HttpRequestData(self.command, url, headers, params, match.route_params, body)
            response = frontend.invoke(match.route.spec.name, request)
        finally:
            frontend.release()
        self._reply(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Any other method (TRACE, PROPFIND, ...) is routed too, so it is answered as the real host
        # does (a function without ``methods`` takes it, else 404), never 501 from the base class.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds the limit."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _reply(self, response: HttpResponseData, close: bool = False) -> None:
        self.send_response(response.status_code)
        for name, value in response.headers:
            if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], frontend: HttpFrontend) -> None:
        self.frontend = frontend
        super().__init__(address, _Handler)


class HttpServer:
    def __init__(self, frontend: HttpFrontend, options: HttpOptions) -> None:
        self.frontend = frontend
        self._server = _Server((options.bind_host, options.port), frontend)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop_accepting(self) -> None:
        self.frontend.stopping = True
        self._server.shutdown()
        self._server.server_close()
