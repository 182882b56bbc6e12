"""Idempotency keys: scoped to the caller, bound to the upload, expiring.

A key names an upload only within its caller's scope, so two clients that happen to pick the
same key never meet. The caller is what the Functions host tells the worker about the request:

- With App Service Authentication (Easy Auth) in front, the ``x-ms-client-principal-idp`` and
  ``x-ms-client-principal-id`` headers name the signed-in identity (App Service sets them and
  external requests cannot; Microsoft Learn, "Work with user identities in Azure App Service
  authentication").
- With function keys (``authLevel: function``, this app's setting) the worker is told nothing
  about who called: the host copies every request header and query parameter into the RPC
  message (Azure/azure-functions-host, ``GrpcMessageConversionExtensions.ToRpcHttp``), and the
  claims identity it adds (key name, auth level) is not exposed by the Python library's
  ``HttpRequest``. So the caller is the key presented, in ``x-functions-key`` or ``?code=``.

Both parts, when present, are folded with the client's key into one SHA-256 digest, and only the
digest is stored: neither the function key nor the client's key is kept. Without Easy Auth a
client can send the principal headers itself; that only narrows its own scope (the function key
it presents is part of the scope too), and the upload binding below still holds. Clients that share one
function key (and no identity) share a scope; the binding to the upload still keeps them apart:
reusing a key with a different upload is refused (HTTP 422), and the same key with the same upload
answers the request that upload already made, whose content the caller evidently has.
A function key that is rotated starts a new scope (keys used before the rotation are not found).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

# Versioned so that a change to how digests are made cannot match a digest made the old way.
_KEY_DOMAIN = b"imgpipe-idempotency-key-v1\0"
_UPLOAD_DOMAIN = b"imgpipe-idempotency-upload-v1\0"

PRINCIPAL_IDP_HEADER = "x-ms-client-principal-idp"
PRINCIPAL_ID_HEADER = "x-ms-client-principal-id"
FUNCTION_KEY_HEADER = "x-functions-key"
FUNCTION_KEY_PARAM = "code"


@dataclass(frozen=True)
class Caller:
    """Who made a request, as far as the host tells the worker; secret-free in ``repr``."""

    principal: str = ""  # "<idp>/<id>" from Easy Auth, or ""
    key_sha256: str = ""  # SHA-256 of the function key presented, or ""

    @property
    def scope(self) -> str:
        return f"principal={self.principal}\nkey={self.key_sha256}"


ANONYMOUS = Caller()


def caller_of(headers: Mapping[str, str], params: Mapping[str, str]) -> Caller:
    """The caller of an HTTP request from its headers (case-insensitive) and query parameters."""
    lowered = {name.lower(): value for name, value in headers.items()}
    principal_id = lowered.get(PRINCIPAL_ID_HEADER, "").strip()
    principal = f"{lowered.get(PRINCIPAL_IDP_HEADER, '').strip()}/{principal_id}" if principal_id else ""
    key = lowered.get(FUNCTION_KEY_HEADER) or params.get(FUNCTION_KEY_PARAM) or ""
    key_sha256 = hashlib.sha256(key.encode("utf-8")).hexdigest() if key else ""
    return Caller(principal=principal, key_sha256=key_sha256)


def scoped_key(caller: Caller, key: str) -> str:
    """What the database stores for ``key`` sent by ``caller``: a 64-hex-digit digest."""
    digest = hashlib.sha256(_KEY_DOMAIN)
    digest.update(caller.scope.encode("utf-8"))
    digest.update(b"\0")
    digest.update(key.encode("utf-8"))
    return digest.hexdigest()


def upload_fingerprint(upload: Any, *, exclude: frozenset[str] = frozenset({"idempotency_key", "caller"})) -> str:
    """SHA-256 of everything an upload asks for: the CSV bytes and every option (a dataclass's fields).

    Every field but ``exclude`` counts, so an option added to the upload later is bound too.
    """
    digest = hashlib.sha256(_UPLOAD_DOMAIN)
    options: dict[str, Any] = {}
    for field in fields(upload):
        if field.name in exclude:
            continue
        value = getattr(upload, field.name)
        if isinstance(value, bytes):
            options[field.name] = {"sha256": hashlib.sha256(value).hexdigest(), "length": len(value)}
        else:
            options[field.name] = value
    digest.update(json.dumps(options, sort_keys=True, default=str, ensure_ascii=True).encode("ascii"))
    return digest.hexdigest()


@dataclass(frozen=True)
class KeyedRequest:
    """The request a scoped key names, with what it needs to decide a replay."""

    request_id: str
    upload_sha256: str | None  # None for a request stored before uploads were fingerprinted
    created_at: datetime


def expired(keyed: KeyedRequest, ttl_s: float, now: datetime | None = None) -> bool:
    created = keyed.created_at if keyed.created_at.tzinfo else keyed.created_at.replace(tzinfo=UTC)
    return (now or datetime.now(UTC)) - created >= timedelta(seconds=ttl_s)
