"""URLs a client can fetch for a blob in a private container: a read-only SAS, or a public base URL.

The output container is private (new storage accounts forbid public access, and the app never
asks for it). Two steps: ``recorded_url`` is what the database keeps for an output (the bare blob
URL, or the public base URL), and ``presentable`` turns a recorded URL into one a client can fetch
at the moment it is handed out (status answers, the output CSV, the webhook), so a SAS is always
fresh and its lifetime can stay short.

A SAS is signed by the account key when the app has one (a connection string, e.g. Azurite), else
by a user-delegation key obtained with the app's Entra identity (which needs the "Storage Blob
Delegator" action, included in Storage Blob Data Contributor/Owner). One delegation key signs
many SAS: it is reused while it outlives any SAS signed now, and renewed after that.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote, unquote

from azure.storage.blob import BlobSasPermissions, BlobServiceClient, UserDelegationKey, generate_blob_sas

# Tolerates clocks a little behind ours (a SAS is refused before its start time).
CLOCK_SKEW = timedelta(minutes=5)
# A user-delegation key lives at most 7 days; asking for a SAS lifetime plus this lets one key
# sign SAS for this long before a new one is needed.
KEY_REUSE = timedelta(hours=1)
MAX_KEY_LIFETIME = timedelta(days=7)


class BlobUrls(Protocol):
    def recorded_url(self, name: str, blob_url: str) -> str:
        """The URL to keep for blob ``name`` (whose bare URL is ``blob_url``)."""
        ...

    def presentable(self, recorded_url: str) -> str:
        """A URL a client can fetch now for ``recorded_url`` (unchanged if it is not ours to sign)."""
        ...


class PublicBaseUrls:
    """``<base>/<name>``: a CDN or front door that serves the container (configured outside the app)."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url.rstrip("/")

    def recorded_url(self, name: str, blob_url: str) -> str:
        return f"{self._base_url}/{quote(name)}"

    def presentable(self, recorded_url: str) -> str:
        return recorded_url


class SasUrls:
    """``<blob url>?<read-only SAS>`` valid for ``ttl`` from when it is handed out, signed by the
    account key or a user-delegation key."""

    def __init__(self, service: BlobServiceClient, container: str, ttl: timedelta) -> None:
        if ttl + KEY_REUSE > MAX_KEY_LIFETIME:
            raise ValueError("a SAS lifetime over 7 days less an hour cannot be signed by a user-delegation key")
        self._service = service
        self._container = container
        self._prefix = f"{service.get_container_client(container).url.rstrip('/')}/"
        self._ttl = ttl
        self._account_key: str | None = getattr(service.credential, "account_key", None)
        self._delegation_key: UserDelegationKey | None = None
        self._key_expiry = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def recorded_url(self, name: str, blob_url: str) -> str:
        return blob_url

    def presentable(self, recorded_url: str) -> str:
        if not recorded_url.startswith(self._prefix) or "?" in recorded_url:
            return recorded_url  # another container's, or signed already (recorded by an older version)
        return self.signed(unquote(recorded_url[len(self._prefix):]), recorded_url)

    def signed(self, name: str, blob_url: str) -> str:
        now = datetime.now(UTC)
        expiry = now + self._ttl
        sas = generate_blob_sas(
            account_name=str(self._service.account_name),
            container_name=self._container,
            blob_name=name,
            account_key=self._account_key,
            user_delegation_key=None if self._account_key else self._user_delegation_key(now, expiry),
            permission=BlobSasPermissions(read=True),
            start=now - CLOCK_SKEW,
            expiry=expiry,
        )
        return f"{blob_url}?{sas}"

    def _user_delegation_key(self, now: datetime, sas_expiry: datetime) -> UserDelegationKey:
        with self._lock:
            if self._delegation_key is None or self._key_expiry < sas_expiry:
                key_expiry = min(now + self._ttl + KEY_REUSE, now + MAX_KEY_LIFETIME)
                self._delegation_key = self._service.get_user_delegation_key(now - CLOCK_SKEW, key_expiry)
                self._key_expiry = key_expiry
            return self._delegation_key
