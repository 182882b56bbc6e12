"""A real HTTP server in a thread, for image sources and webhook receivers in tests.

    with serve_in_thread({"/a.jpg": Reply(body=jpeg, headers={"Content-Type": "image/jpeg"}),
                          "/moved": redirect("/a.jpg"),
                          "/slow": trickle(b"x" * 100, interval_s=0.2),
                          "/forever": endless()}) as server:
        requests.get(server.url("/a.jpg"))
        assert [r.path for r in server.requests] == ["/a.jpg"]

Routes map a path (with or without its query string) to a ``Reply`` or to a callable taking the
``RecordedRequest`` and returning a ``Reply``; a single callable may also serve every path.
Unknown paths answer 404. Every request that reaches the server is recorded (method, path,
headers, body) before it is answered, so a test can prove that nothing arrived.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import AF_INET6


@dataclass(frozen=True)
class Reply:
    """What the server answers for one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0  # wait this long before sending the status line
    trickle_interval_s: float = 0.0  # > 0: send the body trickle_chunk bytes at a time, pausing between
    trickle_chunk: int = 1
    endless_chunk: bytes = b""  # non-empty: after the body, send this chunk until the client hangs up


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # including the query string
    headers: dict[str, str]  # header names lower-cased
    body: bytes


Handler = Callable[[RecordedRequest], Reply]
Routes = Mapping[str, Reply | Handler] | Handler


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status=status, headers={"Location": location})


def trickle(body: bytes, interval_s: float, chunk: int = 1) -> Reply:
    """A body sent slowly, with a correct Content-Length: only a total deadline cuts it short."""
    return Reply(body=body, trickle_interval_s=interval_s, trickle_chunk=chunk)


def endless(chunk: bytes = b"\0" * 65536, content_type: str = "image/jpeg") -> Reply:
    """A body with no Content-Length that never ends: only a byte limit cuts it short."""
    return Reply(headers={"Content-Type": content_type}, endless_chunk=chunk)


class RunningServer:
    """The handle ``serve_in_thread`` yields."""

    def __init__(self, routes: Routes) -> None:
        self.base_url = ""  # set once the server has bound its port
        self._routes = routes
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self.stopping = threading.Event()

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def route(self, path: str, reply: Reply | Handler) -> None:
        """Add or replace a route while the server runs (e.g. one that needs ``base_url``)."""
        if not isinstance(self._routes, Mapping):
            raise TypeError("this server was started with a single handler, not a route map")
        with self._lock:
            self._routes = {**self._routes, path: reply}

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _reply_for(self, request: RecordedRequest) -> Reply:
        with self._lock:
            routes = self._routes
        if not isinstance(routes, Mapping):
            return routes(request)
        target = routes.get(request.path) or routes.get(request.path.split("?", 1)[0])
        if target is None:
            return Reply(status=404, body=b"not found")
        return target(request) if callable(target) else target


def _handler_class(server: RunningServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            server._record(request)
            try:
                self._send(server._reply_for(request))
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _send(self, reply: Reply) -> None:
            if reply.delay_s and server.stopping.wait(reply.delay_s):
                return
            self.send_response(reply.status)
            headers = {k.lower(): v for k, v in reply.headers.items()}
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.endless_chunk:
                self.send_header("Connection", "close")
                self.close_connection = True
            elif "content-length" not in headers:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if reply.trickle_interval_s > 0:
                for start in range(0, len(reply.body), reply.trickle_chunk):
                    self.wfile.write(reply.body[start : start + reply.trickle_chunk])
                    self.wfile.flush()
                    if server.stopping.wait(reply.trickle_interval_s):
                        return
            else:
                self.wfile.write(reply.body)
            while reply.endless_chunk and not server.stopping.is_set():
                self.wfile.write(reply.endless_chunk)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return _Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that drops its connection (a killed host, an aborted download) is expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Server6(_Server):
    address_family = AF_INET6


@contextmanager
def serve_in_thread(routes: Routes, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningServer]:
    """Serve ``routes`` on ``port`` of ``host`` (``"::1"`` for IPv6; port 0: a free one) until the block ends."""
    server_class = _Server6 if ":" in host else _Server
    running = RunningServer(routes)
    httpd = server_class((host, port), _handler_class(running))
    url_host = f"[{host}]" if ":" in host else host
    running.base_url = f"http://{url_host}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` until true or timeout (for asserting on requests a thread sends)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
