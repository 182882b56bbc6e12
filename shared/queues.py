"""Azure Storage queue messages: JSON bodies, base64 on the wire.

The Functions host decodes queue messages as base64 by default and moves a plain-text message
straight to ``-poison``, so every client here encodes with ``TextBase64EncodePolicy``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.azure_storage import StorageAccount, storage_client_options
from shared.errors import DependencyMissing, MalformedMessage, PermanentFailure, TransientFailure

logger = logging.getLogger(__name__)

# Connections a client keeps open (its pool). The app's own sends are few (notify retries): the
# image and fan-out messages leave through the functions' output bindings, written by the host.
SEND_CONCURRENCY = 32
# The queue's own limit is 64 KiB after base64 (48,000 characters accepted); ours are small.
MAX_MESSAGE_CHARS = 48_000


def queue_client(connection_string: str, queue_name: str) -> QueueClient:
    return QueueClient.from_connection_string(
        connection_string,
        queue_name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
        **storage_client_options(SEND_CONCURRENCY),
    )


def app_queue_client(account: StorageAccount, queue_name: str) -> QueueClient:
    """A queue client by key or by identity, encoding messages the way the Functions host reads them."""
    return account.queue_client(
        queue_name,
        pool_size=SEND_CONCURRENCY,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def missing_queue(client: QueueClient) -> DependencyMissing:
    return DependencyMissing(f"queue '{client.queue_name}' does not exist (create it with the deployment)")


def require_queue(client: QueueClient) -> None:
    """Raise DependencyMissing unless the queue exists; other storage errors are transient.

    In Azure the queues are created by the deployment and the app's identity may not create them;
    a missing queue must answer 503 with its reason, never accept work it cannot enqueue.
    """
    try:
        client.get_queue_properties()
    except ResourceNotFoundError:
        raise missing_queue(client) from None
    except AzureError as exc:
        raise TransientFailure(f"could not reach queue {client.queue_name}: {type(exc).__name__}") from exc


def ensure_queue(client: QueueClient) -> None:
    with suppress(ResourceExistsError):
        client.create_queue()


def encode(payload: Mapping[str, object]) -> str:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_MESSAGE_CHARS:
        raise PermanentFailure(f"queue message of {len(text)} characters is over the limit")
    return text


def decode(text: str) -> dict[str, Any]:
    """Parse a message body; a body that is not a JSON object can never succeed: ``MalformedMessage``."""
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedMessage("queue message is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedMessage("queue message is not a JSON object")
    return value


def send(client: QueueClient, payload: Mapping[str, object], *, delay_s: float = 0) -> None:
    try:
        client.send_message(encode(payload), visibility_timeout=int(delay_s) or None)
    except ResourceNotFoundError:
        raise missing_queue(client) from None
    except AzureError as exc:
        raise TransientFailure(f"could not send to queue {client.queue_name}: {type(exc).__name__}") from exc


class AzureQueue:
    """A ``MessageQueue`` over one Azure Storage queue."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client

    @property
    def name(self) -> str:
        return str(self._client.queue_name)

    def send(self, payload: Mapping[str, object], *, delay_s: float = 0) -> None:
        send(self._client, payload, delay_s=delay_s)

    def check(self) -> None:
        require_queue(self._client)

    def close(self) -> None:
        self._client.close()
