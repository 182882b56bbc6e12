"""Options shared by every Azure Storage client the app builds (queues and blobs)."""

from __future__ import annotations

from typing import Any

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.queue import ExponentialRetry
from requests.adapters import HTTPAdapter


def storage_client_options(pool_size: int) -> dict[str, Any]:
    """Client options for Azure Storage: short retries, and a connection pool as wide as our sends.

    The SDK's default retry waits 15 s, 18 s, then 24 s, which stalled a whole job for 17 s after
    a storage blip; the queue redelivers anyway, so fail fast. Its default pool of 10 connections
    made 32 concurrent sends discard and reopen connections.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return {
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1),
        "transport": RequestsTransport(session=session, session_owner=True),
    }
