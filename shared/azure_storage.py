"""Azure Storage clients for queues and blobs: shared options, and key- or identity-based access."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import ExponentialRetry, QueueClient
from requests.adapters import HTTPAdapter

from shared.credentials import StorageIdentity

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from shared.settings import Settings


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


class StorageAccount:
    """Builds the app's queue and blob clients for one storage account, by key or by identity.

    With a connection string the clients authenticate with its account key (Azurite locally);
    with ``StorageIdentity`` they take ``credential`` (an azure-identity credential, built once
    per process), and no key exists anywhere. Clients are cheap to make but share nothing, so the
    dependency container keeps the ones it reuses.
    """

    def __init__(
        self,
        connection_string: str = "",
        identity: StorageIdentity | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        if bool(connection_string) == (identity is not None):
            raise ValueError("give either a connection string or an identity-based configuration")
        if identity is not None and credential is None:
            raise ValueError("identity-based storage access needs a credential")
        self._connection_string = connection_string
        self._identity = identity
        self._credential = credential

    @property
    def uses_identity(self) -> bool:
        return self._identity is not None

    def queue_client(self, queue_name: str, *, pool_size: int, **options: Any) -> QueueClient:
        options = {**storage_client_options(pool_size), **options}
        if self._identity is None:
            return QueueClient.from_connection_string(self._connection_string, queue_name, **options)
        return QueueClient(self._identity.queue_service_uri, queue_name, credential=self._credential, **options)

    def blob_service_client(self, *, pool_size: int) -> BlobServiceClient:
        options = storage_client_options(pool_size)
        if self._identity is None:
            return BlobServiceClient.from_connection_string(self._connection_string, **options)
        return BlobServiceClient(self._identity.blob_service_uri, credential=self._credential, **options)

    def container_client(self, container_name: str, *, pool_size: int) -> ContainerClient:
        return self.blob_service_client(pool_size=pool_size).get_container_client(container_name)


def storage_account(settings: Settings) -> StorageAccount:
    """The app's storage account: by connection string, or by identity with the credential its
    settings name (built here, once per container)."""
    identity = settings.storage_identity
    if identity is None:
        return StorageAccount(connection_string=settings.storage_connection_string)
    from shared.credentials import build_credential

    return StorageAccount(identity=identity, credential=build_credential(identity.credential, identity.client_id))
