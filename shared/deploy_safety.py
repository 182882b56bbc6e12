"""Refusing development defaults when running in Azure.

The local defaults (SQLite, a folder for outputs, Azurite, a loopback Redis, the development
webhook secret, a loopback allowlist) make ``make run`` work with no setup; deployed, each of them
silently loses data or opens a hole. When ``WEBSITE_INSTANCE_ID`` is set (App Service and Functions
set it on every instance) the settings are checked here, and every problem is reported in one
``ConfigError``, so one deployment round fixes them all.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.settings import Settings

# The WEBHOOK_SECRET of local.settings.json: anyone who read this repository knows it.
DEVELOPMENT_WEBHOOK_SECRET = "local-development-secret-change-me"  # noqa: S105 - a known public value, refused
# An app setting whose Key Vault reference did not resolve keeps the reference text as its value.
KEY_VAULT_REFERENCE_PREFIX = "@microsoft.keyvault("
AZURITE_ACCOUNT = "devstoreaccount1"
# Ranges an allowlist must not open in Azure: the instance itself, and the metadata/identity
# endpoints on link-local addresses.
REFUSED_NETWORKS = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _storage_problems(settings: Settings) -> list[str]:
    if settings.storage_identity is not None:
        uris = (settings.storage_identity.blob_service_uri, settings.storage_identity.queue_service_uri)
        if any(_is_loopback_host(urlsplit(uri).hostname) for uri in uris):
            return ["AzureWebJobsStorage__*ServiceUri points at a loopback address (Azurite)"]
        return []
    text = settings.storage_connection_string
    endpoints = [
        part.split("=", 1)[1] for part in text.split(";") if part.lower().split("=", 1)[0].endswith("endpoint")
    ]
    if AZURITE_ACCOUNT in text or any(_is_loopback_host(urlsplit(url).hostname) for url in endpoints):
        return ["AzureWebJobsStorage is the Azurite emulator (UseDevelopmentStorage or devstoreaccount1)"]
    return []


def _redis_problems(settings: Settings) -> list[str]:
    parts = urlsplit(settings.redis_url)
    problems = []
    if _is_loopback_host(parts.hostname):
        problems.append("REDIS_URL points at a loopback Redis")
    elif parts.scheme != "rediss":
        problems.append("REDIS_URL is not TLS: use rediss://<name>.redis.cache.windows.net:6380/0")
    if not parts.password and settings.redis_credential != "managedidentity":
        problems.append("REDIS_URL has no password: set REDIS_CREDENTIAL=managedidentity (Entra ID) or put a key in it")
    return problems


def _sql_problems(settings: Settings) -> list[str]:
    text = settings.sqlserver_connection_string
    if not text:
        return ["SQLSERVER_CONNECTION_STRING is not set: the app would use a local SQLite file"]
    keys = {part.split("=", 1)[0].strip().lower(): part.split("=", 1)[1].strip()
            for part in text.split(";") if "=" in part}  # fmt: skip
    if keys.get("authentication", "").lower() == "activedirectorymsi" and settings.azure_client_id and not keys.get(
        "uid"
    ):
        return ["SQLSERVER_CONNECTION_STRING uses ActiveDirectoryMsi without UID=<client id of the identity>"]
    return []


def _webhook_problems(settings: Settings) -> list[str]:
    secret = settings.webhook_secret
    if not secret:
        return ["WEBHOOK_SECRET is not set: webhooks could not be signed"]
    if secret == DEVELOPMENT_WEBHOOK_SECRET:
        return ["WEBHOOK_SECRET is the development secret from local.settings.json"]
    if secret.lower().startswith(KEY_VAULT_REFERENCE_PREFIX):
        return ["WEBHOOK_SECRET is an unresolved Key Vault reference (check the identity's access to the vault)"]
    return []


def _allowlist_problems(settings: Settings) -> list[str]:
    opened = [str(n) for n in settings.outbound_allowlist if any(n.overlaps(r) for r in REFUSED_NETWORKS)]
    if opened:
        return [f"OUTBOUND_ALLOWLIST opens loopback or link-local addresses ({', '.join(opened)})"]
    return []


def development_defaults(settings: Settings) -> list[str]:
    """Every development default in ``settings`` that must not reach Azure, one line each."""
    problems = [
        *_sql_problems(settings),
        *_storage_problems(settings),
        *_redis_problems(settings),
        *_webhook_problems(settings),
        *_allowlist_problems(settings),
    ]
    if settings.output_storage != "blob":
        # Local outputs are file:// paths of one instance's disk, shown to clients and lost with it.
        problems.append("OUTPUT_STORAGE is 'local': outputs would stay on an instance's disk (set OUTPUT_STORAGE=blob)")
    return problems


def refuse_development_defaults(settings: Settings) -> None:
    """Raise one ConfigError listing every development default found."""
    problems = development_defaults(settings)
    if problems:
        raise ConfigError(
            "running in Azure (WEBSITE_INSTANCE_ID is set) with development settings:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
