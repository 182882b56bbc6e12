"""Passwordless access: where the storage account is, and which Entra ID credential reaches it.

The storage account is named the way the Functions host names it, so one set of app settings
serves both the host's triggers and the app's own clients:

- ``AzureWebJobsStorage`` holds a connection string (account key; Azurite locally), or
- ``AzureWebJobsStorage__blobServiceUri`` + ``__queueServiceUri`` (or ``__accountName``, which
  implies ``https://<name>.{blob,queue}.core.windows.net``) select identity-based access, with
  ``__credential=managedidentity`` + ``__clientId`` naming a user-assigned managed identity;
  without ``__credential`` the app uses ``DefaultAzureCredential`` (``az login`` on a laptop).

The SQL helpers pack an Entra access token the way the Microsoft ODBC driver takes it
(``SQL_COPT_SS_ACCESS_TOKEN``), for a connection string that names no authentication itself.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared.errors import ConfigError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

STORAGE_SETTING = "AzureWebJobsStorage"
MANAGED_IDENTITY = "managedidentity"
# The ODBC connection attribute that takes an access token (msodbcsql.h).
SQL_COPT_SS_ACCESS_TOKEN = 1256
SQL_TOKEN_SCOPE = "https://database.windows.net/.default"  # noqa: S105 - a scope, not a secret
# Connection-string keys that already say how to log in; with none of them the app brings a token.
SQL_AUTH_KEYS = frozenset({"authentication", "uid", "user id", "user", "pwd", "password", "trusted_connection"})


@dataclass(frozen=True)
class StorageIdentity:
    """Identity-based access to a storage account (no key anywhere)."""

    blob_service_uri: str
    queue_service_uri: str
    credential: str = ""  # "managedidentity", or "" for DefaultAzureCredential
    client_id: str = ""  # a user-assigned identity's client id

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = STORAGE_SETTING) -> StorageIdentity | None:
        """The identity-based settings under ``prefix``, or None when there are none."""

        def get(suffix: str) -> str:
            return env.get(f"{prefix}__{suffix}", "").strip()

        account, blob_uri, queue_uri = get("accountName"), get("blobServiceUri"), get("queueServiceUri")
        credential, client_id = get("credential").lower(), get("clientId")
        if not (account or blob_uri or queue_uri):
            if credential or client_id:
                raise ConfigError(
                    f"{prefix}__credential/__clientId are set but neither {prefix}__accountName nor "
                    f"{prefix}__blobServiceUri and __queueServiceUri say which storage account"
                )
            return None
        if account:
            blob_uri = blob_uri or f"https://{account}.blob.core.windows.net"
            queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
        missing = [name for name, value in (("blobServiceUri", blob_uri), ("queueServiceUri", queue_uri)) if not value]
        if missing:
            raise ConfigError(f"{prefix}: identity-based access needs " + " and ".join(f"__{m}" for m in missing))
        for name, uri in (("blobServiceUri", blob_uri), ("queueServiceUri", queue_uri)):
            parts = urlsplit(uri)
            if parts.scheme != "https" or not parts.hostname:
                # Entra tokens are never sent over plain HTTP (the SDK refuses, and so do we, earlier).
                raise ConfigError(f"{prefix}__{name} must be an https:// URL, got {uri!r}")
        if credential not in {"", MANAGED_IDENTITY}:
            raise ConfigError(f"{prefix}__credential must be 'managedidentity' or unset, got {credential!r}")
        return cls(blob_uri.rstrip("/"), queue_uri.rstrip("/"), credential, client_id)


def build_credential(kind: str = "", client_id: str = "") -> TokenCredential:
    """The credential named by ``__credential``/``__clientId``; DefaultAzureCredential otherwise.

    Build one per process and reuse it: each caches its tokens until shortly before they expire.
    """
    if kind == MANAGED_IDENTITY:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id or None)
    from azure.identity import DefaultAzureCredential

    # managed_identity_client_id=None lets DefaultAzureCredential read AZURE_CLIENT_ID itself.
    return DefaultAzureCredential(managed_identity_client_id=client_id or None)


def sql_connection_names_auth(connection_string: str) -> bool:
    """Whether an ODBC connection string already says how to log in (password, MSI, Windows...)."""
    keys = {part.split("=", 1)[0].strip().lower() for part in connection_string.split(";") if "=" in part}
    return bool(keys & SQL_AUTH_KEYS)


def pack_sql_access_token(token: str) -> bytes:
    """An access token as ``SQL_COPT_SS_ACCESS_TOKEN`` wants it: a 4-byte little-endian length,
    then the token in UTF-16-LE (the ODBC driver's ACCESSTOKEN structure)."""
    encoded = token.encode("utf-16-le")
    return struct.pack(f"<I{len(encoded)}s", len(encoded), encoded)


def sql_token_attributes(credential: TokenCredential) -> dict[int, bytes]:
    """``attrs_before`` for ``pyodbc.connect``: a fresh (or cached, still valid) Entra token."""
    token = credential.get_token(SQL_TOKEN_SCOPE).token
    return {SQL_COPT_SS_ACCESS_TOKEN: pack_sql_access_token(token)}
