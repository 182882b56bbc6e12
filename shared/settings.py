"""One frozen settings object, read once from the environment.

Every setting the app reads is listed in ``local.settings.json`` with its local default; the
defaults below are the production defaults (closed where security is concerned).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.credentials import StorageIdentity
from shared.errors import ConfigError
from shared.retry_policy import RetrySchedule
from shared.urls import ALLOWED_SCHEMES

# Azurite's well-known development account (public, the same in every Azurite). The local host
# (devhost/settings.py) keeps its own copy: it is app-agnostic and never imports shared/.
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={AZURITE_ACCOUNT_KEY};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


class Secret(str):
    """A string that never shows itself in ``repr`` (so not in logs or error messages)."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


NO_SECRET = Secret("")
DEFAULT_REDIS_URL = Secret("redis://127.0.0.1:6379/0")
# How output URLs are made for a Blob container that is private: a read-only SAS, or a base URL
# (a CDN or another front) joined with the blob name.
OUTPUT_URL_MODES = ("sas", "public")
DEFAULT_OUTPUT_SAS_TTL_S = 24 * 3600
# A user-delegation key (what signs a SAS without an account key) lives at most 7 days, and a SAS
# must expire before its key: one hour is kept for reusing a key across many SAS.
MAX_OUTPUT_SAS_TTL_S = 7 * 24 * 3600 - 3600


def expand_storage_connection_string(value: str) -> str:
    """Expand ``UseDevelopmentStorage=true`` to Azurite's full connection string.

    Older SDKs reject the shorthand, so every client is built from the expanded form.
    """
    if value.strip().rstrip(";").lower() == "usedevelopmentstorage=true":
        return AZURITE_CONNECTION_STRING
    return value


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = env.get(name, "").strip()
    networks = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _optional_http_url(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw:
        parts = urlsplit(raw)
        if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
            raise ConfigError(f"{name} must be an absolute http(s) URL")
    return raw


def _redis_credential(env: Mapping[str, str]) -> str:
    value = _text(env, "REDIS_CREDENTIAL", "").lower()
    if value not in {"", "managedidentity"}:
        raise ConfigError(f"REDIS_CREDENTIAL must be 'managedidentity' or empty, got {value!r}")
    return value


def _claim_expiry(env: Mapping[str, str]) -> float:
    expiry = _float(env, "WEBHOOK_CLAIM_EXPIRY_SECONDS", _default("webhook_claim_expiry_s"))
    timeout = _float(env, "WEBHOOK_TIMEOUT_SECONDS", _default("webhook_timeout_s"), minimum=0.1)
    if expiry < 2 * timeout:  # a live sender must never look dead
        raise ConfigError("WEBHOOK_CLAIM_EXPIRY_SECONDS must be at least twice WEBHOOK_TIMEOUT_SECONDS")
    return expiry


def _schedule(env: Mapping[str, str], name: str) -> RetrySchedule:
    raw = env.get(name, "").strip()
    if not raw:
        return _default("image_retry_schedule")  # type: ignore[no-any-return]
    if raw.lower() == "none":  # only the host's immediate redelivery (MAX_DEQUEUE_COUNT)
        return RetrySchedule(())
    try:
        return RetrySchedule.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {exc}") from None


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment (see ``local.settings.json``)."""

    # Storage account for queues and blobs; UseDevelopmentStorage=true is expanded to Azurite.
    storage_connection_string: Secret
    image_queue: str = "image-jobs"
    notify_queue: str = "notify-jobs"
    fanout_queue: str = "fanout-jobs"
    # Database: a SQL Server ODBC connection string selects SQL Server, else SQLite at sqlite_path.
    sqlserver_connection_string: Secret = NO_SECRET
    sqlite_path: Path = Path(".data/imgpipe.sqlite3")
    # SQL Server: a statement running longer is cancelled (and its transaction rolled back);
    # transient errors are retried with backoff (5 s growing to 60 s) for at most this long.
    sqlserver_statement_timeout_s: int = 30
    sqlserver_retry_budget_s: float = 120.0
    redis_url: Secret = DEFAULT_REDIS_URL
    # Output storage: "local" (a folder) or "blob" (a container of the storage account).
    output_storage: str = "local"
    output_dir: Path = Path("processed_images")
    output_public_base_url: str = ""
    output_container: str = "processed-images"
    # Compression.
    jpeg_quality: int = 50
    size_target_ratio: float = 0.0  # 0 = off; e.g. 0.5 searches the quality for <= 50% of input bytes
    max_image_pixels: int = 50_000_000
    max_image_bytes: int = 30 * 1024 * 1024
    # Outbound HTTP (images and webhooks).
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    max_redirects: int = 5
    outbound_allowlist: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=())
    # Webhook.
    default_webhook_url: str = ""
    webhook_secret: Secret = NO_SECRET
    webhook_timeout_s: float = 10.0
    webhook_max_attempts: int = 8
    webhook_retry_base_s: float = 5.0
    # A delivery claimed longer ago than this, and still unfinished, was left by a dead sender.
    webhook_claim_expiry_s: float = 90.0
    # Client-controlled limits on an upload.
    max_csv_bytes: int = 20 * 1024 * 1024
    max_products: int = 10_000
    max_urls_per_row: int = 20
    # Must equal host.json extensions.queues.maxDequeueCount: the last attempt records Failed.
    max_dequeue_count: int = 5
    # Delays before each retry of an image whose download failed transiently (shared.retry_policy).
    image_retry_schedule: RetrySchedule = field(default=RetrySchedule())
    # Fan-in state in Redis expires this long after the last write.
    completion_ttl_s: int = 7 * 24 * 3600
    # Staged fan-out: image messages one invocation sends, and sub-ranges a range splits into.
    fanout_leaf_size: int = 100
    fanout_branching: int = 16
    # A fan-out that marked no image and finished none for this long is restarted by the timer sweep.
    fanout_stale_after_s: float = 300.0
    # Image messages a request may have ahead of its processing (handed out, not finished); 0 is
    # unlimited. Bounds one request's share of the FIFO image queue so later requests interleave.
    # 10,000 outlasts scaled-out processing: 100 instances x (batchSize 16 + newBatchThreshold 8)
    # in flight is 2,400, plus ~3 s of refill at that rate. local.settings.json sets 1,000 (Azurite).
    fanout_window: int = 10_000
    # An Idempotency-Key names its upload for this long after the upload; later it starts a new request.
    idempotency_key_ttl_s: int = 24 * 3600
    # --- Azure (shared/credentials.py, shared/deploy_safety.py) ------------------------------
    # Identity-based storage access (AzureWebJobsStorage__*); storage_connection_string is then "".
    storage_identity: StorageIdentity | None = None
    # The user-assigned identity for SQL tokens, Redis Entra ID and Application Insights.
    azure_client_id: str = ""
    # Blob output URLs: "sas" (read-only user-delegation or service SAS) or "public" (base URL).
    output_url_mode: str = "sas"
    output_sas_ttl_s: int = DEFAULT_OUTPUT_SAS_TTL_S
    # Redis: "managedidentity" logs in with an Entra ID token instead of a password in REDIS_URL.
    redis_credential: str = ""
    # Telemetry: OpenTelemetry to Azure Monitor when the connection string is set.
    appinsights_connection_string: Secret = NO_SECRET
    appinsights_authentication_string: str = ""
    # WEBSITE_INSTANCE_ID is set: development defaults are refused.
    running_in_azure: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        storage = env.get("AzureWebJobsStorage", "").strip()
        storage_identity = None if storage else StorageIdentity.from_env(env)
        if not storage and storage_identity is None:
            raise ConfigError(
                "AzureWebJobsStorage is not set (a connection string), nor AzureWebJobsStorage__accountName "
                "or AzureWebJobsStorage__blobServiceUri + __queueServiceUri (identity-based)"
            )
        output_storage = _text(env, "OUTPUT_STORAGE", _default("output_storage")).lower()
        if output_storage not in {"local", "blob"}:
            raise ConfigError(f"OUTPUT_STORAGE must be 'local' or 'blob', got {output_storage!r}")
        quality = _int(env, "JPEG_QUALITY", _default("jpeg_quality"), minimum=1)
        if quality > 95:
            raise ConfigError(f"JPEG_QUALITY must be at most 95, got {quality}")
        ratio = _float(env, "SIZE_TARGET_RATIO", _default("size_target_ratio"))
        if ratio >= 1.0:
            raise ConfigError(f"SIZE_TARGET_RATIO must be below 1 (0 turns it off), got {ratio}")
        url_mode = _text(env, "OUTPUT_URL_MODE", _default("output_url_mode")).lower()
        if url_mode not in OUTPUT_URL_MODES:
            raise ConfigError(f"OUTPUT_URL_MODE must be 'sas' or 'public', got {url_mode!r}")
        public_base_url = _optional_http_url(env, "OUTPUT_PUBLIC_BASE_URL")
        if output_storage == "blob" and url_mode == "public" and not public_base_url:
            raise ConfigError("OUTPUT_URL_MODE=public needs OUTPUT_PUBLIC_BASE_URL (the CDN or front of the container)")
        sas_ttl = _int(env, "OUTPUT_SAS_TTL_SECONDS", _default("output_sas_ttl_s"), minimum=60)
        if sas_ttl > MAX_OUTPUT_SAS_TTL_S:
            raise ConfigError(
                f"OUTPUT_SAS_TTL_SECONDS must be at most {MAX_OUTPUT_SAS_TTL_S} (7 days less 1 hour), got {sas_ttl}"
            )
        settings = cls(
            storage_connection_string=Secret(expand_storage_connection_string(storage)),
            image_queue=_text(env, "IMAGE_QUEUE_NAME", _default("image_queue")),
            notify_queue=_text(env, "NOTIFY_QUEUE_NAME", _default("notify_queue")),
            sqlserver_connection_string=Secret(env.get("SQLSERVER_CONNECTION_STRING", "").strip()),
            sqlite_path=Path(_text(env, "SQLITE_PATH", str(_default("sqlite_path")))),
            sqlserver_statement_timeout_s=_int(
                env, "SQLSERVER_STATEMENT_TIMEOUT_SECONDS", _default("sqlserver_statement_timeout_s"), minimum=1
            ),
            sqlserver_retry_budget_s=_float(
                env, "SQLSERVER_RETRY_BUDGET_SECONDS", _default("sqlserver_retry_budget_s")
            ),
            redis_url=Secret(_text(env, "REDIS_URL", DEFAULT_REDIS_URL)),
            output_storage=output_storage,
            output_dir=Path(_text(env, "OUTPUT_DIR", str(_default("output_dir")))),
            output_public_base_url=public_base_url,
            output_container=_text(env, "OUTPUT_CONTAINER", _default("output_container")),
            jpeg_quality=quality,
            size_target_ratio=ratio,
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", _default("max_image_pixels"), minimum=1),
            max_image_bytes=_int(env, "MAX_IMAGE_BYTES", _default("max_image_bytes"), minimum=1),
            connect_timeout_s=_float(
                env, "OUTBOUND_CONNECT_TIMEOUT_SECONDS", _default("connect_timeout_s"), minimum=0.1
            ),
            read_timeout_s=_float(env, "OUTBOUND_READ_TIMEOUT_SECONDS", _default("read_timeout_s"), minimum=0.1),
            max_redirects=_int(env, "OUTBOUND_MAX_REDIRECTS", _default("max_redirects")),
            outbound_allowlist=_networks(env, "OUTBOUND_ALLOWLIST"),
            default_webhook_url=_optional_http_url(env, "DEFAULT_WEBHOOK_URL"),
            webhook_secret=Secret(env.get("WEBHOOK_SECRET", "").strip()),
            webhook_timeout_s=_float(env, "WEBHOOK_TIMEOUT_SECONDS", _default("webhook_timeout_s"), minimum=0.1),
            webhook_max_attempts=_int(env, "WEBHOOK_MAX_ATTEMPTS", _default("webhook_max_attempts"), minimum=1),
            webhook_retry_base_s=_float(env, "WEBHOOK_RETRY_BASE_SECONDS", _default("webhook_retry_base_s")),
            webhook_claim_expiry_s=_claim_expiry(env),
            max_csv_bytes=_int(env, "MAX_CSV_BYTES", _default("max_csv_bytes"), minimum=1),
            max_products=_int(env, "MAX_PRODUCTS", _default("max_products"), minimum=1),
            max_urls_per_row=_int(env, "MAX_URLS_PER_ROW", _default("max_urls_per_row"), minimum=1),
            max_dequeue_count=_int(env, "MAX_DEQUEUE_COUNT", _default("max_dequeue_count"), minimum=1),
            image_retry_schedule=_schedule(env, "IMAGE_RETRY_DELAYS_SECONDS"),
            completion_ttl_s=_int(env, "COMPLETION_TTL_SECONDS", _default("completion_ttl_s"), minimum=60),
            fanout_queue=_text(env, "FANOUT_QUEUE_NAME", _default("fanout_queue")),
            fanout_leaf_size=_int(env, "FANOUT_LEAF_SIZE", _default("fanout_leaf_size"), minimum=1),
            fanout_branching=_int(env, "FANOUT_BRANCHING", _default("fanout_branching"), minimum=2),
            fanout_stale_after_s=_float(env, "FANOUT_STALE_AFTER_SECONDS", _default("fanout_stale_after_s")),
            fanout_window=_int(env, "FANOUT_WINDOW", _default("fanout_window"), minimum=0),
            idempotency_key_ttl_s=_int(
                env, "IDEMPOTENCY_KEY_TTL_SECONDS", _default("idempotency_key_ttl_s"), minimum=1
            ),
            storage_identity=storage_identity,
            azure_client_id=_text(env, "AZURE_CLIENT_ID", ""),
            output_url_mode=url_mode,
            output_sas_ttl_s=sas_ttl,
            redis_credential=_redis_credential(env),
            appinsights_connection_string=Secret(env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()),
            appinsights_authentication_string=_text(env, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""),
            running_in_azure=bool(env.get("WEBSITE_INSTANCE_ID", "").strip()),
        )
        if settings.running_in_azure:
            from shared.deploy_safety import refuse_development_defaults

            refuse_development_defaults(settings)
        return settings


def _default(name: str) -> Any:
    """A field's default, written once on ``Settings`` below and read here by ``from_env``."""
    return Settings.__dataclass_fields__[name].default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use (not at import, so tests can set the env)."""
    return Settings.from_env()
