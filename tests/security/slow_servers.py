"""A loopback server that answers one byte at a time, status line and headers included.

``http.server`` writes its status line and headers in one go, so it cannot show a client that waits
for headers forever. This one reads the request, then sends ``response`` byte by byte with a pause,
and notes how many bytes it had sent when the client hung up: a client with a real total deadline
hangs up long before the end.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class TrickleServer:
    url: str
    response: bytes
    interval_s: float
    sent_when_client_left: list[int] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _client_left(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _serve(server: TrickleServer, conn: socket.socket, stop: threading.Event) -> None:
    with conn:
        server.requests.append(_read_request(conn))
        sent = 0
        try:
            for byte in server.response:
                if stop.is_set() or _client_left(conn):
                    break
                conn.sendall(bytes([byte]))
                sent += 1
                time.sleep(server.interval_s)
        except OSError:
            pass
        server.sent_when_client_left.append(sent)


@contextmanager
def trickling_server(response: bytes, interval_s: float) -> Iterator[TrickleServer]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    server = TrickleServer(f"http://127.0.0.1:{listener.getsockname()[1]}", response, interval_s)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=_serve, args=(server, conn, stop), daemon=True)
            workers.append(worker)
            worker.start()

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        stop.set()
        acceptor.join()
        for worker in workers:
            worker.join()
        listener.close()
