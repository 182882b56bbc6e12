"""The HTTP trigger: a threaded HTTP/1.1 server that routes requests to functions.

Keys are not enforced unless asked (as Core Tools runs locally); with enforcement a non-anonymous
function needs the key in the ``x-functions-key`` header or the ``code`` query parameter.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
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
_EMPTY = HttpResponseData(500, [], b"")


@dataclass(frozen=True)
class HttpOptions:
    port: int
    enforce_keys: bool
    function_key: str | None
    function_timeout: float
    queue_encoding: str
    bind_host: str = "127.0.0.1"


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
            result = future.result(timeout=self._options.function_timeout)
        except FutureTimeout:
            log.finished(False, f"Timeout value of {self._options.function_timeout:.0f}s was exceeded")
            return _EMPTY
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
        if not match.method_allowed:
            allowed = ", ".join(sorted(match.route.methods or ()))
            self._reply(HttpResponseData(405, [("Allow", allowed)], b""), close=True)
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
        body = self._read_body()
        if body is None:
            self._reply(HttpResponseData(413, [], b""), close=True)
            return
        host = self.headers.get("Host") or f"localhost:{self.server.server_address[1]}"
        request = HttpRequestData(self.command, f"http://{host}{self.path}", headers, params, match.route_params, body)
        self._reply(frontend.invoke(match.route.spec.name, request))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Any other method (TRACE, PROPFIND, ...) is routed too, so it is answered 404 or 405 as
        # the real host does, never 501 from the base class.
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
