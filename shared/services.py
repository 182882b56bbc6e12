"""Per-process clients, built once on first use and reused by every invocation.

Building a client per invocation costs connections and TLS handshakes; building them at import
time breaks tests and start-up when a setting is missing. So each is made lazily, once, under a
lock, and ``reset()`` drops them (tests, or after the settings changed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    import redis
    import requests
    from azure.storage.queue import QueueClient

    from shared.fanin import CompletionTracker
    from shared.output_storage import OutputStorage
    from shared.store import Store
    from shared.webhook import WebhookSender

T = TypeVar("T")

_lock = threading.RLock()
_cache: dict[str, Any] = {}


def _once(name: str, build: Callable[[], T]) -> T:
    try:
        return _cache[name]  # type: ignore[no-any-return]
    except KeyError:
        pass
    with _lock:
        if name not in _cache:
            _cache[name] = build()
        return _cache[name]  # type: ignore[no-any-return]


def reset() -> None:
    """Forget every client (closing what can be closed) and the settings."""
    with _lock:
        for value in _cache.values():
            close = getattr(value, "close", None) or getattr(value, "shutdown", None)
            if callable(close):
                close()
        _cache.clear()
        get_settings.cache_clear()


def settings() -> Settings:
    return get_settings()


def store() -> Store:
    def build() -> Store:
        from shared.store import Store

        built = Store.from_settings(get_settings())
        built.ensure_schema()
        return built

    return _once("store", build)


def redis_client() -> redis.Redis:
    def build() -> redis.Redis:
        import redis as redis_lib

        return redis_lib.Redis.from_url(
            get_settings().redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )

    return _once("redis", build)


def completion_tracker() -> CompletionTracker:
    def build() -> CompletionTracker:
        from shared.fanin import CompletionTracker

        return CompletionTracker(redis_client(), get_settings().completion_ttl_s)

    return _once("tracker", build)


def image_queue() -> QueueClient:
    from shared.queues import queue_client

    current = get_settings()
    return _once("image_queue", lambda: queue_client(current.storage_connection_string, current.image_queue))


def notify_queue() -> QueueClient:
    from shared.queues import queue_client

    current = get_settings()
    return _once("notify_queue", lambda: queue_client(current.storage_connection_string, current.notify_queue))


def send_executor() -> ThreadPoolExecutor:
    from shared.queues import SEND_CONCURRENCY

    return _once("executor", lambda: ThreadPoolExecutor(SEND_CONCURRENCY, thread_name_prefix="fanout"))


def http_session() -> requests.Session:
    def build() -> requests.Session:
        from shared.outbound import build_session

        return build_session(get_settings())

    return _once("http_session", build)


def output_storage() -> OutputStorage:
    def build() -> OutputStorage:
        from shared.output_storage import build_output_storage

        return build_output_storage(get_settings())

    return _once("output_storage", build)


def webhook_sender() -> WebhookSender:
    def build() -> WebhookSender:
        from shared.webhook import WebhookSender

        current = get_settings()
        return WebhookSender(http_session(), current.webhook_secret, current.webhook_timeout_s)

    return _once("webhook_sender", build)
