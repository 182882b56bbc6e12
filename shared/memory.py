"""In-memory stand-ins for the ports, for tests that run without servers (dramatiq's StubBroker idea).

Each keeps what it was given in plain attributes a test reads (``MemoryQueue.sent``), and can be
told to fail the way the real one does (``MemoryQueue.fail_after``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.container import Dependencies, UnsignedWebhook
from shared.errors import DependencyMissing, TransientFailure
from shared.output_storage import check_name
from shared.ports import RequestStore, WebhookPoster
from shared.queues import encode
from shared.settings import Settings
from shared.webhook import DeliveryResult, DeliveryVerdict


class MemoryQueue:
    """A ``MessageQueue`` that keeps the decoded messages it was sent, with their delays."""

    def __init__(self, name: str = "memory", *, fail_after: int | None = None) -> None:
        self._name = name
        self.sent: list[dict[str, Any]] = []
        self.delays: list[float] = []
        # Sends succeed until ``sent`` holds this many; later ones raise TransientFailure.
        self.fail_after = fail_after
        # True: the queue does not exist (a deployment without it); checks and sends say so.
        self.missing = False

    @property
    def name(self) -> str:
        return self._name

    def check(self) -> None:
        if self.missing:
            raise DependencyMissing(f"queue '{self._name}' does not exist (create it with the deployment)")

    def send(self, payload: Mapping[str, object], *, delay_s: float = 0) -> None:
        self.check()
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise TransientFailure(f"could not send to queue {self._name}: ServiceRequestError")
        self.sent.append(json.loads(encode(payload)))  # encoded as on the wire: the size check applies
        self.delays.append(delay_s)

    def close(self) -> None:
        pass


class MemoryCompletionCounter:
    """A ``CompletionCounter`` with the same contract as the Redis one, counted in a dict."""

    def __init__(self) -> None:
        self.done: dict[str, set[int]] = {}
        self.fired: dict[str, int] = {}

    def record(
        self, request_id: str, seq: int, total: int, seed: Callable[[], Iterable[int]], *, reseed: bool = False
    ) -> bool:
        if request_id not in self.done or reseed:
            self.done.setdefault(request_id, set()).update(seed())
        finished = self.done[request_id]
        finished.add(seq)
        if len(finished) < total:
            return False
        return self.fired.setdefault(request_id, seq) == seq

    def ping(self) -> None:
        pass


@dataclass
class MemoryOutputStorage:
    """An ``OutputStorage`` that keeps each output's bytes by name."""

    base_url: str = "memory://outputs/"
    files: dict[str, bytes] = field(default_factory=dict)

    def put(self, name: str, data: bytes, content_type: str) -> str:
        self.files[check_name(name)] = data
        return self.base_url + name

    def prepare(self) -> None:
        pass

    def check(self) -> None:
        pass

    def presentable(self, recorded_url: str) -> str:
        return recorded_url


@dataclass
class RecordingWebhook:
    """A ``WebhookPoster`` that records each post and answers with ``verdict``."""

    verdict: DeliveryVerdict = DeliveryVerdict.DELIVERED
    posts: list[tuple[str, Mapping[str, object], str]] = field(default_factory=list)

    def send(self, url: str, payload: Mapping[str, object], delivery_id: str) -> DeliveryResult:
        self.posts.append((url, payload, delivery_id))
        status = 200 if self.verdict is DeliveryVerdict.DELIVERED else 503
        return DeliveryResult(self.verdict, status, None if status == 200 else f"HTTP {status}")


def memory_dependencies(
    settings: Settings, store: RequestStore, *, webhook: WebhookPoster | None = None
) -> Dependencies:
    """Dependencies over ``store`` with in-memory queues, fan-in and outputs; no server is needed.

    Without ``webhook``, posting behaves as with no WEBHOOK_SECRET: it is refused, never sent.
    """
    return Dependencies(
        settings=settings,
        store=store,
        image_queue=MemoryQueue(settings.image_queue),
        notify_queue=MemoryQueue(settings.notify_queue),
        fanout_queue=MemoryQueue(settings.fanout_queue),
        completion=MemoryCompletionCounter(),
        output=MemoryOutputStorage(),
        webhook=webhook if webhook is not None else UnsignedWebhook(),
        http=requests.Session(),
    )
