"""A fast image source for the benchmarks: every file of one directory, served from memory.

Runs in its own process (``python -m bench.photo_server DIR --port-file FILE``) so its CPU and GIL
are not the benchmark driver's: a ``ThreadingHTTPServer`` answering ``GET /<name>`` with the bytes
read once at start-up, keep-alive on, no logging. It writes its port to ``--port-file`` once it
listens, and ``/__count`` answers how many images it has served (to check the pipeline really
downloaded each one).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


def _handler(files: dict[str, bytes], served: _Counter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the pipeline's session reuses connections

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.split("?", 1)[0].lstrip("/")
            if name == "__count":
                body, content_type = str(served.value).encode(), "text/plain"
            else:
                found = files.get(name)
                if found is None:
                    self.send_error(404)
                    return
                body, content_type = found, "image/jpeg" if not name.endswith(".png") else "image/png"
                served.add()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up on a keep-alive connection is normal here, not worth a traceback


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.photo_server", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    files = {p.name: p.read_bytes() for p in sorted(args.directory.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    server = _Server(("127.0.0.1", 0), _handler(files, _Counter()))
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)  # atomically: the parent never reads a half-written port
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
