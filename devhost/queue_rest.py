"""A minimal Azure Storage queue client for the local host's hot path, over keep-alive connections.

Why not the SDK here: measured on the 2-core dev machine (``python -m bench.queue_client_cost``), the
Python SDK (azure-storage-queue over azure-core and requests) spends ~1.5-2 ms of client CPU per send,
visibility update or delete, in its policy pipeline, requests' per-request environment lookups and
urllib3; the host makes one send per fanned-out image and one delete per invocation. The same REST
calls over ``http.client``, signed and parsed here, cost about a quarter of that. Only what the host
needs is here: create a queue, send, receive, update visibility, delete.

Errors form a small tree (the listener tells a missing queue from any other failure)::

    QueueRequestError             a queue request failed
    ├── QueueConnectionError      no HTTP answer (refused, reset, timed out), after the retries
    ├── QueueReplyError           a success answer that is not the XML expected
    └── QueueHttpError            the service answered with an error status (.status, .error_code)
        ├── QueueResourceNotFound     404: the queue or the message does not exist
        └── QueueResourceExists       409: e.g. the queue exists with other metadata
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import formatdate, parsedate_tz
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from devhost.keepalive import KeepAlivePool, Response, tls_context
from devhost.storage_auth import QueueAccount, SharedKeySigner

logger = logging.getLogger(__name__)

# The version azure-storage-queue 12.18 (requirements.txt) sends.
API_VERSION = "2026-10-06"
# Short retries, as the host configured the SDK (ExponentialRetry(initial_backoff=1, increment_base=2,
# retry_total=2)): the listener has its own backoff, and the SDK's default waits (15 s, 18 s, 24 s)
# stalled every function for ~17 s after a storage restart. Each delay is drawn from 0.5x-1.5x of it.
RETRY_DELAYS_SECONDS = (1.0, 3.0)
# What the SDK's StorageRetryPolicy retries: 408 and 5xx but 501 and 505.
RETRIED_STATUSES = frozenset({408, 500, 502, 503, 504})
_XML_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"


class QueueRequestError(Exception):
    """A queue request failed."""


class QueueConnectionError(QueueRequestError):
    """No HTTP answer (connection refused or reset, timeout, TLS failure), after the retries."""


class QueueReplyError(QueueRequestError):
    """A success answer whose body is not the XML expected."""


class QueueHttpError(QueueRequestError):
    """The service answered with an error status."""

    def __init__(self, status: int, error_code: str, message: str = "") -> None:
        super().__init__(f"{status} {error_code}: {message}" if message else f"{status} {error_code}")
        self.status = status
        self.error_code = error_code


class QueueResourceNotFound(QueueHttpError):
    """404: the queue (QueueNotFound) or the message (MessageNotFound) does not exist."""


class QueueResourceExists(QueueHttpError):
    """409: the resource exists (QueueAlreadyExists: the queue exists with other metadata)."""


@dataclass(frozen=True)
class ReceivedMessage:
    """A received message with the values and types the SDK's ``QueueMessage`` gives."""

    id: str
    content: str
    pop_receipt: str
    dequeue_count: int | None
    inserted_on: datetime | None
    expires_on: datetime | None
    next_visible_on: datetime | None


class QueueService:
    """One account's queue service: its connections and the request signer. Thread-safe."""

    def __init__(self, account: QueueAccount, environ: Mapping[str, str] | None = None) -> None:
        self.account = account
        parts = urlsplit(account.endpoint)
        self._path = parts.path
        self._pool = KeepAlivePool(
            parts.hostname or "",
            parts.port,
            tls_context(os.environ if environ is None else environ) if parts.scheme == "https" else None,
        )
        self._signer = SharedKeySigner(account.account_name, account.account_key) if account.account_key else None
        self._date_lock = threading.Lock()
        self._date_second = -1
        self._date_text = ""

    @classmethod
    def from_connection_string(cls, connection_string: str) -> QueueService:
        return cls(QueueAccount.from_connection_string(connection_string))

    def queue(self, queue_name: str) -> RestQueue:
        return RestQueue(self, queue_name)

    def close(self) -> None:
        self._pool.close()

    def request(self, method: str, resource: str, query: Sequence[tuple[str, str]] = (), body: bytes = b"") -> Response:
        """Send one request, retried as ``RETRY_DELAYS_SECONDS`` says; an error status raises."""
        path = self._path + resource
        query = [*query, *self.account.sas_query]
        target = path + ("?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query) if query else "")
        for attempt in range(len(RETRY_DELAYS_SECONDS) + 1):
            last = attempt == len(RETRY_DELAYS_SECONDS)
            headers = self._headers(method, path, query, body)
            try:
                response = self._pool.request(method, target, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                if last:
                    raise QueueConnectionError(f"{method} {resource}: {type(exc).__name__}: {exc}") from exc
                self._wait_before_retry(attempt, type(exc).__name__, method, resource)
                continue
            if response.status < 300:
                return response
            if response.status in RETRIED_STATUSES and not last:
                self._wait_before_retry(attempt, f"status {response.status}", method, resource)
                continue
            raise _http_error(response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _headers(self, method: str, path: str, query: Sequence[tuple[str, str]], body: bytes) -> dict[str, str]:
        headers = {"x-ms-version": API_VERSION, "x-ms-date": self._date()}
        if body:
            headers["Content-Type"] = "application/xml"
            headers["Content-Length"] = str(len(body))
        if self._signer is not None:
            headers["Authorization"] = self._signer.authorization(method, path, query, headers)
        return headers

    def _date(self) -> str:
        """The RFC 1123 date, formatted once a second: every request in that second shares it."""
        second = int(time.time())
        with self._date_lock:
            if second != self._date_second:
                self._date_second, self._date_text = second, formatdate(second, usegmt=True)
            return self._date_text

    @staticmethod
    def _wait_before_retry(attempt: int, reason: str, method: str, resource: str) -> None:
        delay = RETRY_DELAYS_SECONDS[attempt] * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not a secret
        logger.debug("%s %s failed (%s); retrying in %.1fs", method, resource, reason, delay)
        time.sleep(delay)


class RestQueue:
    """One queue's operations, named and behaving as the SDK's ``QueueClient`` methods."""

    def __init__(self, service: QueueService, queue_name: str) -> None:
        self.service = service
        self.queue_name = queue_name
        self._resource = "/" + quote(queue_name, safe="")
        self._messages = self._resource + "/messages"

    def create_queue(self) -> None:
        """Create the queue; one that exists with the same (no) metadata is no error (201 or 204)."""
        self.service.request("PUT", self._resource)

    def send_message(self, content: str) -> None:
        """Send ``content`` as the message text, as is (encoded already as the binding wants it)."""
        xml = f"{_XML_DECLARATION}<QueueMessage><MessageText>{escape(content)}</MessageText></QueueMessage>"
        self.service.request("POST", self._messages, body=xml.encode("utf-8"))

    def receive_messages(self, max_messages: int, visibility_timeout: int) -> list[ReceivedMessage]:
        query = [("numofmessages", str(max_messages)), ("visibilitytimeout", str(visibility_timeout))]
        data = self.service.request("GET", self._messages, query).data
        try:
            return parse_messages(data)
        except (ElementTree.ParseError, ValueError) as exc:
            raise QueueReplyError(f"receiving from '{self.queue_name}': unreadable reply: {exc}") from exc

    def update_visibility(self, message_id: str, pop_receipt: str, visibility_timeout: int) -> str:
        """Hide the message for ``visibility_timeout`` more seconds (0: visible now); the new pop receipt."""
        query = [("popreceipt", pop_receipt), ("visibilitytimeout", str(visibility_timeout))]
        response = self.service.request("PUT", f"{self._messages}/{quote(message_id, safe='')}", query)
        return response.headers.get("x-ms-popreceipt") or pop_receipt

    def delete_message(self, message_id: str, pop_receipt: str) -> None:
        query = [("popreceipt", pop_receipt)]
        self.service.request("DELETE", f"{self._messages}/{quote(message_id, safe='')}", query)


def parse_messages(xml: bytes) -> list[ReceivedMessage]:
    """A ``QueueMessagesList`` reply, typed as the SDK types it (times as aware datetimes)."""
    messages = []
    # The reply of the storage service the app is configured with, trusted as the SDK trusts it (it
    # parses with ElementTree too); the stdlib's expat also limits entity expansion.
    for element in ElementTree.fromstring(xml):  # noqa: S314
        fields = {child.tag: child.text for child in element}
        count = fields.get("DequeueCount")
        messages.append(
            ReceivedMessage(
                id=fields.get("MessageId") or "",
                content=fields.get("MessageText") or "",
                pop_receipt=fields.get("PopReceipt") or "",
                dequeue_count=int(count) if count else None,
                inserted_on=parse_rfc1123(fields.get("InsertionTime")),
                expires_on=parse_rfc1123(fields.get("ExpirationTime")),
                next_visible_on=parse_rfc1123(fields.get("TimeNextVisible")),
            )
        )
    return messages


def parse_rfc1123(text: str | None) -> datetime | None:
    """As the SDK's ``Deserializer.deserialize_rfc``: aware, at the offset given (GMT: ``timezone.utc``)."""
    parsed = parsedate_tz(text) if text else None
    if parsed is None:
        return None
    return datetime(*parsed[:6], tzinfo=timezone(timedelta(seconds=parsed[9] or 0)))


def _http_error(response: Response) -> QueueHttpError:
    code = response.headers.get("x-ms-error-code") or ""
    message = ""
    try:
        root = ElementTree.fromstring(response.data) if response.data else None  # noqa: S314 - as above
    except ElementTree.ParseError:
        root = None
    if root is not None:
        code = code or (root.findtext("Code") or "")
        message = (root.findtext("Message") or "").split("\n", 1)[0]
    kind: type[QueueHttpError] = QueueHttpError
    if response.status == 404:
        kind = QueueResourceNotFound
    elif response.status == 409:
        kind = QueueResourceExists
    return kind(response.status, code or response.reason, message)
