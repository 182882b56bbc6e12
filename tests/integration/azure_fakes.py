"""Offline stand-ins for Azure's identity plumbing: a TLS pair, test tokens, an identity endpoint,
and Azurite with OAuth over HTTPS.

- ``tls_pair`` makes a self-signed certificate for 127.0.0.1 (Azurite's OAuth needs HTTPS; Redis's
  TLS port too).
- ``fake_jwt`` makes an unsigned token with the claims Azurite's ``--oauth basic`` checks
  (node_modules/azurite/dist/src/blob/authentication/BlobTokenAuthenticator.js: nbf/exp/iat, an
  ``iss`` under https://sts.windows.net/, an ``aud`` of https://storage.azure.com; the signature is
  not checked) plus ``oid``/``tid``, which Azurite's Get User Delegation Key derives the key from.
- ``IdentityEndpoint`` answers the App Service managed-identity protocol (``IDENTITY_ENDPOINT`` +
  ``IDENTITY_HEADER``, api-version 2019-08-01), so the real ``ManagedIdentityCredential`` of
  azure-identity gets its token the way it does on a Functions instance.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from devtools.http_servers import RecordedRequest, Reply, serve_in_thread
from devtools.servers import Azurite

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
IDENTITY_OBJECT_ID = "5f0c8e3a-1b7d-4c55-9e8b-3b0e3f2a9d10"
CLIENT_ID = "0d9b4e31-6f1c-4b9a-8a57-2f4e1c3d5b6a"
STORAGE_AUDIENCE = "https://storage.azure.com"


@dataclass(frozen=True)
class TlsPair:
    cert: Path
    key: Path


def tls_pair(directory: Path) -> TlsPair:
    """A self-signed certificate (its own CA) for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgpipe test 127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pair = TlsPair(directory / "cert.pem", directory / "key.pem")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pair


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def fake_jwt(audience: str = STORAGE_AUDIENCE, lifetime_s: int = 3600, **claims: object) -> str:
    """An unsigned JWT shaped like an Entra ID access token."""
    now = int(time.time())
    payload = {
        "aud": audience, "iss": f"https://sts.windows.net/{TENANT_ID}/", "iat": now - 60, "nbf": now - 60,
        "exp": now + lifetime_s, "oid": IDENTITY_OBJECT_ID, "tid": TENANT_ID, "appid": CLIENT_ID,
        **claims,
    }  # fmt: skip
    header = {"alg": "HS256", "typ": "JWT"}
    signature = _b64url(b"not-checked-by-azurite-basic-oauth")
    return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}.{signature}"


@dataclass
class IdentityEndpoint:
    """The App Service managed-identity endpoint, answering tokens for any resource it is asked."""

    header_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)  # one token per audience, handed out again

    def token_for(self, audience: str) -> str:
        audience = audience.rstrip("/")
        if audience not in self.tokens:
            self.tokens[audience] = fake_jwt(audience=audience)
        return self.tokens[audience]

    def handle(self, request: RecordedRequest) -> Reply:
        self.requests.append(request)
        if request.headers.get("x-identity-header") != self.header_secret:
            return Reply(status=401, body=b'{"error":"bad identity header"}')
        query = parse_qs(urlsplit(request.path).query)
        resource = query.get("resource", [""])[0]
        token = self.token_for(resource)
        body = {
            "access_token": token, "expires_on": str(int(time.time()) + 3600), "resource": resource,
            "token_type": "Bearer", "client_id": query.get("client_id", [""])[0],
        }  # fmt: skip
        return Reply(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

    def asked_for(self) -> list[dict[str, list[str]]]:
        return [parse_qs(urlsplit(r.path).query) for r in self.requests]


@contextmanager
def identity_endpoint() -> Iterator[IdentityEndpoint]:
    endpoint = IdentityEndpoint()
    with serve_in_thread(endpoint.handle) as server:
        endpoint.url = server.url("/msi/token")
        yield endpoint


@dataclass(kw_only=True)
class OAuthAzurite(Azurite):
    """Azurite over HTTPS with ``--oauth basic``: bearer tokens are accepted and checked."""

    tls: TlsPair

    @property
    def blob_service_uri(self) -> str:
        return f"https://127.0.0.1:{self.blob_port}/devstoreaccount1"

    @property
    def queue_service_uri(self) -> str:
        return f"https://127.0.0.1:{self.queue_port}/devstoreaccount1"

    def extra_arguments(self) -> list[str]:
        return ["--oauth", "basic", "--cert", str(self.tls.cert), "--key", str(self.tls.key)]
