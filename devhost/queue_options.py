"""The queue trigger's options, from host.json ``extensions.queues`` (Storage extension 5.x defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devhost.queue_io import ENCODINGS
from devhost.settings import SettingsError, cpu_count, env_float, lookup, parse_int, parse_timespan, section

MIN_POLLING_INTERVAL = 0.1
# Locally (Development environment) the host caps the empty-queue backoff at 2 s instead of 1 min.
LOCAL_MAX_POLLING_INTERVAL = 2.0
# The real host leases a message for 10 minutes and renews the lease while the function runs.
DEFAULT_LEASE_SECONDS = 600.0
MAX_BATCH_SIZE = 32


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int
    new_batch_threshold: int
    max_polling_interval: float
    visibility_timeout: float  # delay before a failed message is visible again
    max_dequeue_count: int
    message_encoding: str
    lease_seconds: float  # invisibility while an invocation runs, renewed at half-time

    @property
    def max_in_flight(self) -> int:
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any], environ: Mapping[str, str]) -> QueueOptions:
        queues = section(host_json, "extensions", "queues")
        batch_size = parse_int(lookup(queues, "batchSize", 16), "extensions.queues.batchSize")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise SettingsError(f"extensions.queues.batchSize must be 1..{MAX_BATCH_SIZE}, got {batch_size}")
        threshold_raw = lookup(queues, "newBatchThreshold")
        threshold = (
            parse_int(threshold_raw, "extensions.queues.newBatchThreshold")
            if threshold_raw is not None
            else (batch_size // 2) * cpu_count()
        )
        max_polling = max(
            MIN_POLLING_INTERVAL,
            parse_timespan(
                lookup(queues, "maxPollingInterval", LOCAL_MAX_POLLING_INTERVAL),
                "extensions.queues.maxPollingInterval",
            ),
        )
        encoding = str(lookup(queues, "messageEncoding", "base64")).lower()
        if encoding not in ENCODINGS:
            raise SettingsError(f"extensions.queues.messageEncoding must be base64 or none, got {encoding!r}")
        lease = env_float(environ, "DEVHOST_QUEUE_VISIBILITY_SECONDS", DEFAULT_LEASE_SECONDS)
        if lease < 1:
            raise SettingsError("DEVHOST_QUEUE_VISIBILITY_SECONDS must be at least 1")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=max(0, threshold),
            max_polling_interval=max_polling,
            visibility_timeout=parse_timespan(
                lookup(queues, "visibilityTimeout", 0), "extensions.queues.visibilityTimeout"
            ),
            max_dequeue_count=parse_int(lookup(queues, "maxDequeueCount", 5), "extensions.queues.maxDequeueCount"),
            message_encoding=encoding,
            lease_seconds=lease,
        )
