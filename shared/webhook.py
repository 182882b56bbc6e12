"""Signing, verifying and sending the completion webhook.

A delivery is a POST of compact UTF-8 JSON with three headers:

    X-Imgpipe-Timestamp  unix seconds when it was signed
    X-Imgpipe-Delivery   the delivery id, stable across retries of one request's notification
    X-Imgpipe-Signature  "v2=" + hex HMAC-SHA256(receiver key, f"{timestamp}.{delivery id}." + body)

The timestamp lets a receiver reject a replay outside a short window; the delivery id, signed
too, lets it drop a duplicate inside the window (a captured delivery re-sent under a new id no
longer verifies). Each receiver URL has its own key, derived from WEBHOOK_SECRET by
``receiver_key``: one receiver's key cannot sign for another (several tenants of one webhook host
included, hence the URL's path and not only its origin). An operator gives a receiver its key with
``python -m shared.webhook_keys <webhook URL>``. Redirects are not followed: a POST turned into a
GET by a 301/302 would "succeed" without delivering anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import requests

from shared.errors import ConfigError, UrlRefused
from shared.http_deadline import total_deadline

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Imgpipe-Signature"
TIMESTAMP_HEADER = "X-Imgpipe-Timestamp"
DELIVERY_HEADER = "X-Imgpipe-Delivery"
SIGNATURE_VERSION = "v2"
_KEY_LABEL = b"imgpipe webhook receiver key v2\n"
USER_AGENT = "imgpipe-webhook/2"
DEFAULT_TOLERANCE_S = 300

# Statuses worth another try besides every 5xx: the receiver is busy or timed out reading us.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class DeliveryVerdict(StrEnum):
    """What an attempt to deliver means for the next step."""

    DELIVERED = "delivered"  # the receiver answered 2xx
    RETRY = "retry"  # transient: 5xx, 408, 425, 429, timeout, connection error
    GIVE_UP = "give_up"  # permanent: other 4xx, a redirect, a refused or malformed URL


@dataclass(frozen=True)
class DeliveryResult:
    verdict: DeliveryVerdict
    status_code: int | None
    error: str | None


def canonical_receiver_url(url: str) -> str:
    """``url`` as its key is derived from: scheme and host lower-cased, port explicit, path kept.

    The query and fragment are left out: they carry tokens that receivers rotate, and a tenant
    of a shared webhook host is told apart by its path.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if scheme == "https" else 80)
    return urlunsplit((scheme, f"{host}:{port}", parts.path or "/", "", ""))


def receiver_key(secret: str, url: str) -> str:
    """The signing key of the receiver at ``url``: hex HMAC-SHA256(WEBHOOK_SECRET, label + URL)."""
    if not secret:
        raise ConfigError("WEBHOOK_SECRET is not set: no receiver key can be derived")
    message = _KEY_LABEL + canonical_receiver_url(url).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(key: str, timestamp: int, delivery_id: str, body: bytes) -> str:
    """The signature header value for ``body`` delivered as ``delivery_id`` at ``timestamp``."""
    signed = f"{timestamp}.{delivery_id}.".encode() + body
    digest = hmac.new(key.encode("utf-8"), signed, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


def signed_headers(key: str, body: bytes, delivery_id: str, now: float) -> dict[str, str]:
    """Timestamp, signature and delivery id headers for one attempt, signed with the receiver's key."""
    timestamp = int(now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(key, timestamp, delivery_id, body),
        DELIVERY_HEADER: delivery_id,
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def verify(key: str, headers: Mapping[str, str], body: bytes, now: float,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """True iff ``body`` and its delivery id were signed with ``key`` within ``tolerance_s`` of ``now``.

    ``key`` is the receiver's key (``receiver_key``). Header names match case-insensitively. The
    signature header may list several comma-separated signatures (e.g. during a key rotation);
    one match is enough.
    """
    raw_timestamp = _header(headers, TIMESTAMP_HEADER)
    raw_signatures = _header(headers, SIGNATURE_HEADER)
    delivery_id = _header(headers, DELIVERY_HEADER)
    if not key or raw_timestamp is None or raw_signatures is None or not delivery_id:
        return False
    raw_timestamp = raw_timestamp.strip()
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or "." in delivery_id:
        return False
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(key, timestamp, delivery_id, body).encode("ascii")
    matched = False
    for candidate in raw_signatures.split(","):
        # Compare every candidate, without stopping early, in constant time each.
        matched |= hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace"))
    return matched


def encode_body(payload: Mapping[str, object]) -> bytes:
    """Compact UTF-8 JSON, exactly the bytes that are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def redact_url(url: str) -> str:
    """Scheme, host, port and path of ``url``: credentials, query and fragment may carry tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class WebhookSender:
    """Signs and POSTs payloads through an injected (SSRF-hardened) session; never raises for HTTP."""

    def __init__(self, session: requests.Session, secret: str, timeout_s: float) -> None:
        if not secret:
            raise ConfigError("WEBHOOK_SECRET is not set: webhooks are never sent unsigned")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._session = session
        self._secret = secret
        self._timeout_s = timeout_s

    def send(self, url: str, payload: Mapping[str, object], delivery_id: str) -> DeliveryResult:
        """POST ``payload`` to ``url`` once and classify the outcome."""
        body = encode_body(payload)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            **signed_headers(receiver_key(self._secret, url), body, delivery_id, time.time()),
        }
        where = redact_url(url)
        timed_out = f"timed out after {self._timeout_s:g}s"
        try:
            # One deadline for connect, TLS, the request and the answer's headers: an answer that
            # trickles in after it is not a delivery (and the claim expiry assumes sends end in time).
            # stream=True: the receiver's body is never read, so a huge answer costs nothing.
            with total_deadline(self._timeout_s) as scope, self._session.post(
                url, data=body, headers=headers, timeout=self._timeout_s, allow_redirects=False, stream=True
            ) as response:
                status = response.status_code
        except UrlRefused as exc:
            return self._give_up(where, delivery_id, self._scrub(str(exc), url))
        except requests.Timeout:
            return self._retry(where, delivery_id, None, timed_out)
        except requests.ConnectionError as exc:
            if scope.expired:
                return self._retry(where, delivery_id, None, timed_out)
            return self._retry(where, delivery_id, None, f"connection failed ({type(exc).__name__})")
        except requests.RequestException as exc:
            # Invalid URL, refused address (requests-hardened's InvalidIPAddress), too many redirects.
            return self._give_up(where, delivery_id, f"not sent ({type(exc).__name__})")
        if 200 <= status < 300:
            logger.info("Webhook %s delivered to %s: HTTP %d", delivery_id, where, status)
            return DeliveryResult(DeliveryVerdict.DELIVERED, status, None)
        if status >= 500 or status in _RETRYABLE_4XX:
            return self._retry(where, delivery_id, status, f"HTTP {status}")
        if 300 <= status < 400:
            return self._give_up(where, delivery_id, f"HTTP {status}: redirects are not followed", status)
        return self._give_up(where, delivery_id, f"HTTP {status}", status)

    def _scrub(self, text: str, url: str) -> str:
        return text.replace(self._secret, "***").replace(url, redact_url(url))

    @staticmethod
    def _retry(where: str, delivery_id: str, status: int | None, error: str) -> DeliveryResult:
        logger.warning("Webhook %s to %s will be retried: %s", delivery_id, where, error)
        return DeliveryResult(DeliveryVerdict.RETRY, status, error)

    @staticmethod
    def _give_up(where: str, delivery_id: str, error: str, status: int | None = None) -> DeliveryResult:
        logger.warning("Webhook %s to %s given up: %s", delivery_id, where, error)
        return DeliveryResult(DeliveryVerdict.GIVE_UP, status, error)


def retry_delay_s(attempt: int, base_s: float, cap_s: float = 3600, *,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential with jitter.

    The delay is drawn from [d/2, d] with d = base_s * 2**(attempt-1), then capped at ``cap_s``:
    each range starts where the previous one ended, so successive delays never shrink, while
    concurrent retries still spread out.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must not be negative")
    ceiling = base_s * 2.0 ** min(attempt - 1, 64)
    draw = (rng or random).uniform(0.5, 1.0)  # jitter, not cryptography
    return min(cap_s, ceiling * draw)
