"""Storage queue plumbing shared by the trigger listener and the output binding.

Messages are read and written as raw text; base64 is done here so an undecodable body can be told
apart from a transport error. The requests go through ``devhost.queue_rest`` rather than the SDK: it
costs a quarter of the SDK's client CPU per operation (see that module).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping

from devhost.discovery import Binding, FunctionLoadError
from devhost.queue_rest import QueueResourceExists, QueueResourceNotFound, QueueService, RestQueue
from devhost.queue_watcher import SharedQueueWatcher
from devhost.settings import resolve_setting_name

logger = logging.getLogger(__name__)
DEFAULT_CONNECTION = "AzureWebJobsStorage"
BASE64 = "base64"
NONE = "none"
ENCODINGS = {BASE64, NONE}
POISON_SUFFIX = "-poison"
_STRIP_BASE64_WHITESPACE = str.maketrans("", "", " \t\r\n")


def encode(message: str | bytes, encoding: str) -> str:
    raw = message.encode("utf-8") if isinstance(message, str) else message
    if encoding == BASE64:
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8")


def decode(text: str, encoding: str) -> bytes | None:
    """The message body as bytes, or None when it is not valid in ``encoding``."""
    if encoding == NONE:
        return text.encode("utf-8")
    try:
        # .NET's Convert.FromBase64String (what the SDK decodes with) skips whitespace inside the text.
        compact = text.translate(_STRIP_BASE64_WHITESPACE)
        return base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


class QueueClients:
    """One queue service (connection pool) per connection setting; never exposes the connection string."""

    def __init__(self, environ: Mapping[str, str], watcher: SharedQueueWatcher | None = None) -> None:
        self._environ = environ
        # Told of every message written through an output binding or to a poison queue (wake-on-output).
        self.watcher = watcher or SharedQueueWatcher()
        self._services: dict[str, QueueService] = {}
        self._created: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def check(self, function: str, binding: Binding) -> None:
        """Fail start-up when a binding's connection setting is missing."""
        setting = connection_setting(binding)
        if resolve_setting_name(setting, self._environ) is None:
            raise FunctionLoadError(
                f"function '{function}', binding '{binding.name}': storage connection setting '{setting}' is not set"
            )
        if not str(binding.get("queueName") or ""):
            raise FunctionLoadError(f"function '{function}', binding '{binding.name}': 'queueName' is required")

    def queue(self, setting: str, queue_name: str) -> RestQueue:
        with self._lock:
            service = self._services.get(setting)
            if service is None:
                value = resolve_setting_name(setting, self._environ)
                if value is None:
                    raise FunctionLoadError(f"storage connection setting '{setting}' is not set")
                service = QueueService.from_connection_string(value)
                self._services[setting] = service
        return service.queue(queue_name.lower())

    def close(self) -> None:
        with self._lock:
            services, self._services = list(self._services.values()), {}
        for service in services:
            service.close()

    def write_outputs(
        self, bindings: Iterable[Binding], outputs: Mapping[str, list[str | bytes]], encoding: str
    ) -> None:
        """Write a succeeded invocation's queue output bindings (never called on failure)."""
        for binding in bindings:
            messages = outputs.get(binding.name)
            if binding.type == "queue" and messages:
                self.send(connection_setting(binding), str(binding.get("queueName")), messages, encoding)

    def send(self, setting: str, queue_name: str, messages: list[str | bytes], encoding: str) -> None:
        """Write output messages, creating the queue on first use (as the output binding does)."""
        client = self.queue(setting, queue_name)
        self._ensure(setting, client)
        for message in messages:
            try:
                client.send_message(encode(message, encoding))
            except QueueResourceNotFound:
                self._created.discard((setting, client.queue_name))
                self._ensure(setting, client)
                client.send_message(encode(message, encoding))
            self.watcher.notify(client.queue_name)

    def send_raw(self, setting: str, queue_name: str, text: str) -> None:
        client = self.queue(setting, queue_name)
        self._ensure(setting, client)
        client.send_message(text)
        self.watcher.notify(client.queue_name)

    def _ensure(self, setting: str, client: RestQueue) -> None:
        key = (setting, client.queue_name)
        if key in self._created:
            return
        with contextlib.suppress(QueueResourceExists):
            client.create_queue()
        self._created.add(key)


def connection_setting(binding: Binding) -> str:
    return str(binding.get("connection") or DEFAULT_CONNECTION)
