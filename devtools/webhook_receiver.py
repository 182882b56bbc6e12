"""A webhook receiver as a consuming service would write it: verify, de-duplicate, answer.

It checks the HMAC signature with its own key (derived from the server's secret and its URL, as
``python -m shared.webhook_keys <url>`` prints it) and rejects deliveries whose timestamp is outside the replay window,
keeps the first body per delivery id, and can be told to fail or hang first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from devtools.http_servers import RecordedRequest, Reply, RunningServer, serve_in_thread
from shared.webhook import DELIVERY_HEADER, receiver_key, verify


@dataclass
class WebhookReceiver:
    secret: str
    tolerance_s: int = 300
    # Statuses to answer in turn before answering 200; "hang" sleeps past the sender's timeout.
    script: list[int | str] = field(default_factory=list)
    hang_s: float = 3.0
    server: RunningServer | None = None
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # delivery id -> payload
    deliveries: list[str] = field(default_factory=list)  # delivery ids of accepted posts, with repeats
    rejected: list[str] = field(default_factory=list)
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url("/hook")

    def handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.attempts += 1
            step = self.script.pop(0) if self.script else 200
        if step == "hang":
            return Reply(status=200, delay_s=self.hang_s)
        if step != 200:
            return Reply(status=int(step), body=b"scripted failure")
        key = receiver_key(self.secret, self.url)
        if not verify(key, request.headers, request.body, time.time(), self.tolerance_s):
            with self._lock:
                self.rejected.append(request.headers.get(DELIVERY_HEADER.lower(), ""))
            return Reply(status=401, body=b"bad signature")
        delivery_id = request.headers[DELIVERY_HEADER.lower()]
        with self._lock:
            self.deliveries.append(delivery_id)
            self.accepted.setdefault(delivery_id, json.loads(request.body))
        return Reply(status=200, body=b"ok")

    def wait_for_delivery(self, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self.accepted:
                    return next(iter(self.accepted.values()))
            time.sleep(0.1)
        raise TimeoutError(f"no webhook delivered within {timeout_s}s ({self.attempts} attempts)")


@contextmanager
def running_receiver(secret: str, **options: Any) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=secret, **options)
    with serve_in_thread({"/hook": receiver.handle}) as server:
        receiver.server = server
        yield receiver
