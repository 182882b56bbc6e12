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
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

    from shared.azure_storage import StorageAccount
    from shared.fanin import CompletionTracker
    from shared.health import HealthMonitor
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


def app_credential() -> TokenCredential:
    """The app's Entra credential (AZURE_CLIENT_ID's managed identity, else the default chain)."""
    from shared.credentials import MANAGED_IDENTITY, build_credential

    current = get_settings()
    kind = MANAGED_IDENTITY if current.running_in_azure and current.azure_client_id else ""
    return _once("credential", lambda: build_credential(kind, current.azure_client_id))


def storage_account() -> StorageAccount:
    def build() -> StorageAccount:
        from shared.azure_storage import StorageAccount
        from shared.credentials import build_credential

        current = get_settings()
        identity = current.storage_identity
        if identity is None:
            return StorageAccount(connection_string=current.storage_connection_string)
        return StorageAccount(identity=identity, credential=build_credential(identity.credential, identity.client_id))

    return _once("storage_account", build)


def store() -> Store:
    def build() -> Store:
        from shared.credentials import sql_connection_names_auth
        from shared.database import sqlserver_connector
        from shared.store import Store

        current = get_settings()
        connection_string = current.sqlserver_connection_string
        if connection_string and not sql_connection_names_auth(connection_string):
            # No login in the connection string: bring the app identity's Entra token.
            built = Store(*sqlserver_connector(connection_string, token_source=app_credential()))
        else:
            built = Store.from_settings(current)
        built.ensure_schema()
        return built

    return _once("store", build)


def redis_client() -> redis.Redis:
    def build() -> redis.Redis:
        from shared.redis_connection import redis_from_settings

        return redis_from_settings(get_settings())

    return _once("redis", build)


def completion_tracker() -> CompletionTracker:
    def build() -> CompletionTracker:
        from shared.fanin import CompletionTracker

        return CompletionTracker(redis_client(), get_settings().completion_ttl_s)

    return _once("tracker", build)


def image_queue() -> QueueClient:
    from shared.queues import app_queue_client

    current = get_settings()
    return _once("image_queue", lambda: app_queue_client(storage_account(), current.image_queue))


def notify_queue() -> QueueClient:
    from shared.queues import app_queue_client

    current = get_settings()
    return _once("notify_queue", lambda: app_queue_client(storage_account(), current.notify_queue))


def health_monitor() -> HealthMonitor:
    def build() -> HealthMonitor:
        from shared.health import HealthMonitor, dependency_checks

        return HealthMonitor(dependency_checks(store(), redis_client(), [image_queue(), notify_queue()],
                                               output_storage()))

    return _once("health", build)


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

        return build_output_storage(get_settings(), storage_account())

    return _once("output_storage", build)


def webhook_sender() -> WebhookSender:
    def build() -> WebhookSender:
        from shared.webhook import WebhookSender

        current = get_settings()
        return WebhookSender(http_session(), current.webhook_secret, current.webhook_timeout_s)

    return _once("webhook_sender", build)
