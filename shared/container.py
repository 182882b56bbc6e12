"""The dependencies of the use cases, built once per worker process from ``Settings``.

Every use case takes a ``Dependencies`` as its first argument, so its signature shows what it
needs and a test hands in fakes (``shared.memory``). Only ``shared.functions_adapter`` keeps one
per process; scripts and tests build their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass

import requests

from shared.errors import ConfigError
from shared.ports import CompletionCounter, MessageQueue, OutputStorage, RequestStore, WebhookPoster
from shared.settings import Settings
from shared.webhook import DeliveryResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dependencies:
    """What the use cases work with: settings, the database, queues, fan-in, outputs, outbound HTTP."""

    settings: Settings
    store: RequestStore
    # Delayed copies of image messages for retries (an output binding cannot delay a message).
    image_queue: MessageQueue
    notify_queue: MessageQueue
    # Written mostly by the functions' output bindings; delayed sends of ranges waiting for their
    # window (shared.fanout_window) go through this client. Health checks it too.
    fanout_queue: MessageQueue
    completion: CompletionCounter
    output: OutputStorage
    webhook: WebhookPoster
    # The SSRF-guarded session that downloads images.
    http: requests.Session

    def close(self) -> None:
        """Close what holds connections or threads (each at most once, errors ignored)."""
        for part in (self.image_queue, self.notify_queue, self.fanout_queue, self.store, self.http):
            with suppress(Exception):
                part.close()


class UnsignedWebhook:
    """Stands in for the sender when no WEBHOOK_SECRET is set: webhooks are never sent unsigned."""

    def send(self, url: str, payload: Mapping[str, object], delivery_id: str) -> DeliveryResult:
        raise ConfigError("WEBHOOK_SECRET is not set: webhooks are never sent unsigned")


def build_dependencies(settings: Settings) -> Dependencies:
    """Build the real clients (lazy connections) and make sure the database schema exists.

    Storage clients authenticate by key or by identity (``AzureWebJobsStorage`` or its ``__*``
    settings); a SQL Server connection string with no login of its own gets Entra tokens.
    """
    from shared.azure_storage import storage_account
    from shared.fanin import CompletionTracker
    from shared.outbound import build_session
    from shared.output_storage import build_output_storage
    from shared.queues import AzureQueue, app_queue_client
    from shared.redis_connection import redis_from_settings
    from shared.webhook import WebhookSender

    store = _store(settings)
    store.ensure_schema()
    session = build_session(settings)
    webhook: WebhookPoster = (
        WebhookSender(session, settings.webhook_secret, settings.webhook_timeout_s)
        if settings.webhook_secret
        else UnsignedWebhook()
    )
    account = storage_account(settings)
    return Dependencies(
        settings=settings,
        store=store,
        image_queue=AzureQueue(app_queue_client(account, settings.image_queue)),
        notify_queue=AzureQueue(app_queue_client(account, settings.notify_queue)),
        fanout_queue=AzureQueue(app_queue_client(account, settings.fanout_queue)),
        completion=CompletionTracker(redis_from_settings(settings), settings.completion_ttl_s),
        output=build_output_storage(settings, account),
        webhook=webhook,
        http=session,
    )


def _store(settings: Settings) -> RequestStore:
    from shared.credentials import MANAGED_IDENTITY, build_credential, sql_connection_names_auth
    from shared.database import sqlserver_connector
    from shared.store import Store

    connection_string = settings.sqlserver_connection_string
    if not connection_string or sql_connection_names_auth(connection_string):
        return Store.from_settings(settings)
    # No login in the connection string: each connection brings the app identity's Entra token.
    kind = MANAGED_IDENTITY if settings.running_in_azure and settings.azure_client_id else ""
    credential = build_credential(kind, settings.azure_client_id)
    return Store(*sqlserver_connector(
        connection_string,
        statement_timeout_s=settings.sqlserver_statement_timeout_s,
        retry_budget_s=settings.sqlserver_retry_budget_s,
        token_source=credential,
    ))
