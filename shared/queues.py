"""Azure Storage queue messages: JSON bodies, base64 on the wire, concurrent sends.

The Functions host decodes queue messages as base64 by default and moves a plain-text message
straight to ``-poison``, so every client here encodes with ``TextBase64EncodePolicy``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.azure_storage import StorageAccount, storage_client_options
from shared.errors import DependencyMissing, MalformedMessage, PermanentFailure, TransientFailure

logger = logging.getLogger(__name__)

# Sends in flight at once: Azurite and the client each spend 1-3 ms of CPU a send, so beyond a
# few dozen the extra threads only queue up.
SEND_CONCURRENCY = 32
# The queue's own limit is 64 KiB after base64; our messages are a few hundred bytes.
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


class ConcurrentSender:
    """Sends many messages to one queue with a bounded number in flight.

    ``on_sent`` is called (from the calling thread) with the keys of the messages that were sent,
    in batches, so the caller can mark them durably; a failed send stops the fan-out with
    ``TransientFailure`` after the in-flight sends settle, leaving the unsent ones unmarked.
    """

    def __init__(self, client: QueueClient, executor: ThreadPoolExecutor, *, batch: int = 500) -> None:
        self._client = client
        self._executor = executor
        self._batch = batch

    def send_all(
        self,
        items: Sequence[tuple[int, Mapping[str, object]]],
        on_sent: Callable[[list[int]], None],
    ) -> int:
        pending: dict[Future[None], int] = {}
        sent: list[int] = []
        failure: BaseException | None = None
        queue = iter(items)
        exhausted = False
        total = 0
        while pending or not exhausted:
            while not exhausted and failure is None and len(pending) < SEND_CONCURRENCY:
                try:
                    key, payload = next(queue)
                except StopIteration:
                    exhausted = True
                    break
                pending[self._executor.submit(send, self._client, payload)] = key
            if failure is not None and not pending:
                break
            if not pending:
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                key = pending.pop(future)
                exc = future.exception()
                if exc is None:
                    sent.append(key)
                elif failure is None:
                    failure = exc
            if len(sent) >= self._batch:
                on_sent(sent)
                total += len(sent)
                sent = []
        if sent:
            on_sent(sent)
            total += len(sent)
        if failure is not None:
            logger.warning("fan-out to %s stopped after %d sends: %s", self._client.queue_name, total, failure)
            if isinstance(failure, TransientFailure | PermanentFailure):
                raise failure
            raise TransientFailure("queue send failed") from failure
        return total


class AzureQueue:
    """A ``MessageQueue`` over one Azure Storage queue; bulk sends share one thread pool."""

    def __init__(self, client: QueueClient, executor: ThreadPoolExecutor) -> None:
        self._client = client
        self._executor = executor

    @property
    def name(self) -> str:
        return str(self._client.queue_name)

    def send(self, payload: Mapping[str, object], *, delay_s: float = 0) -> None:
        send(self._client, payload, delay_s=delay_s)

    def check(self) -> None:
        require_queue(self._client)

    def send_all(self, items: Sequence[tuple[int, Mapping[str, object]]], on_sent: Callable[[list[int]], None]) -> int:
        return ConcurrentSender(self._client, self._executor).send_all(items, on_sent)

    def close(self) -> None:
        self._client.close()
        self._executor.shutdown()  # shared by the queues of one container; a second call is a no-op
