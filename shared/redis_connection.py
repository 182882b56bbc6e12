"""The Redis client: TLS from the URL, and an Entra ID login when asked for.

Azure Cache for Redis opens only its TLS port (6380) by default: ``REDIS_URL=rediss://<name>
.redis.cache.windows.net:6380/0`` selects TLS with certificate and host name checks (redis-py's
defaults for ``rediss://``). With ``REDIS_CREDENTIAL=managedidentity`` the client logs in with an
Entra ID token of the identity ``AZURE_CLIENT_ID`` names (redis-entraid, maintained by Redis: the
user name is the token's ``oid``, the password the token; it renews the token and
re-authenticates open connections) instead of an access key. The template writes the identity's
object id as the URL's user name; redis-py refuses a user name next to a credential provider, and
the provider names the same principal, so it is dropped from the URL here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from shared.settings import Settings

REDIS_SCOPE = "https://redis.azure.com/.default"
REDIS_RESOURCE = "https://redis.azure.com/"
SOCKET_TIMEOUT_S = 5


def entra_credential_provider(client_id: str) -> Any:
    """A redis-py credential provider that logs in as the managed identity ``client_id``
    (the default Azure credential chain when it is empty)."""
    from redis_entraid.cred_provider import (
        ManagedIdentityIdType,
        ManagedIdentityType,
        create_from_default_azure_credential,
        create_from_managed_identity,
    )

    if client_id:
        return create_from_managed_identity(
            identity_type=ManagedIdentityType.USER_ASSIGNED,
            resource=REDIS_RESOURCE,
            id_type=ManagedIdentityIdType.CLIENT_ID,
            id_value=client_id,
        )
    return create_from_default_azure_credential((REDIS_SCOPE,))


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redis_from_settings(settings: Settings) -> redis.Redis:
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
        "health_check_interval": 30,
    }
    url = str(settings.redis_url)
    if settings.redis_credential == "managedidentity":
        options["credential_provider"] = entra_credential_provider(settings.azure_client_id)
        url = without_credentials(url)
    return redis.Redis.from_url(url, **options)
