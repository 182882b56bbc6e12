"""A storage connection string's queue endpoint and credential, and Shared Key request signing.

Parsing follows the SDK's ``parse_connection_str`` (azure-storage-queue ``_shared/base_client.py``) for
the queue service; signing follows "Authorize with Shared Key" (learn.microsoft.com/rest/api/
storageservices/authorize-with-shared-key) as the SDK's ``SharedKeyCredentialPolicy`` implements it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from devhost.settings import DEV_ACCOUNT, DEV_ACCOUNT_KEY

DEV_QUEUE_ENDPOINT = "http://127.0.0.1:10001/devstoreaccount1"
DEFAULT_ENDPOINT_SUFFIX = "core.windows.net"
# The standard headers in the order the string to sign lists them.
SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


class ConnectionStringError(ValueError):
    """A storage connection string cannot be used (says what is wrong, never shows the value)."""


@dataclass(frozen=True)
class QueueAccount:
    """Where an account's queue service is and how requests to it are authorized."""

    endpoint: str  # scheme://host[:port][/path], without a trailing slash
    account_name: str
    account_key: bytes = field(default=b"", repr=False)  # Shared Key when set
    sas_query: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # else a SAS, when set

    @classmethod
    def from_connection_string(cls, connection_string: str) -> QueueAccount:
        pairs = [part.split("=", 1) for part in connection_string.strip().rstrip(";").split(";")]
        if any(len(pair) != 2 for pair in pairs):
            raise ConnectionStringError("the storage connection string is blank or malformed")
        settings = {key.strip().upper(): value.strip() for key, value in pairs}
        if settings.get("USEDEVELOPMENTSTORAGE", "").lower() == "true":
            return cls(DEV_QUEUE_ENDPOINT, DEV_ACCOUNT, _decode_key(DEV_ACCOUNT_KEY))
        account = settings.get("ACCOUNTNAME", "")
        endpoint = settings.get("QUEUEENDPOINT", "")
        if not endpoint:
            if not account:
                raise ConnectionStringError("the storage connection string has neither QueueEndpoint nor AccountName")
            protocol = settings.get("DEFAULTENDPOINTSPROTOCOL", "https")
            endpoint = f"{protocol}://{account}.queue.{settings.get('ENDPOINTSUFFIX', DEFAULT_ENDPOINT_SUFFIX)}"
        parts = urlsplit(endpoint)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConnectionStringError("the storage connection string's queue endpoint is not an http(s) URL")
        base = f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"
        key = settings.get("ACCOUNTKEY", "")
        if account and key:  # the SDK signs only with both; otherwise a SAS, or anonymous requests
            return cls(base, account, _decode_key(key))
        sas = settings.get("SHAREDACCESSSIGNATURE", "") or parts.query
        return cls(base, account, b"", tuple(parse_qsl(sas.lstrip("?"), keep_blank_values=True)))


class SharedKeySigner:
    """The ``Authorization: SharedKey <account>:<signature>`` header (Blob, Queue and File services)."""

    def __init__(self, account_name: str, account_key: bytes) -> None:
        self.account_name = account_name
        self._key = account_key

    def string_to_sign(
        self, method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str]
    ) -> str:
        """``path`` as sent (percent-encoded), ``query`` values decoded, header names in any case."""
        lowered = {name.lower(): value for name, value in headers.items() if value}
        if lowered.get("content-length") == "0":
            del lowered["content-length"]  # version 2015-02-21 and later: a zero length signs as ""
        standard = "".join(lowered.get(name, "") + "\n" for name in SIGNED_HEADERS)
        # Names are lowercase ASCII here, so sorting them is the documented lexicographic order.
        canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in sorted(lowered) if name.startswith("x-ms-"))
        canonical_query = "".join(f"\n{name.lower()}:{value}" for name, value in sorted(query))
        return f"{method}\n{standard}{canonical_headers}/{self.account_name}{path}{canonical_query}"

    def authorization(
        self, method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str]
    ) -> str:
        text = self.string_to_sign(method, path, query, headers)
        digest = hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).digest()
        return f"SharedKey {self.account_name}:{base64.b64encode(digest).decode('ascii')}"


def _decode_key(key: str) -> bytes:
    try:
        return base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConnectionStringError("the storage connection string's AccountKey is not base64") from exc
