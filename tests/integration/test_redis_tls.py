"""Redis over TLS (rediss://, as Azure Cache for Redis serves on 6380) and Entra ID login.

Debian's redis-server on a TLS-only port with a test certificate stands in for Azure Cache for
Redis. For Entra ID, redis-entraid asks the managed-identity endpoint (a local stand-in speaking
the App Service protocol) for a token and logs in as the token's ``oid`` with the token as the
password, which is what Azure Cache for Redis accepts; here an ACL user with that name and
password plays the cache's access policy assignment.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from devtools.servers import (
    ServiceUnavailable,
    _spawn,
    _stop,
    free_port,
    in_ci,
    redis_server_binary,
    wait_for_port,
)
from shared.fanin import CompletionTracker
from shared.redis_connection import REDIS_RESOURCE, redis_from_settings
from shared.settings import Settings
from tests.integration.azure_fakes import (
    CLIENT_ID,
    IDENTITY_OBJECT_ID,
    IdentityEndpoint,
    TlsPair,
    identity_endpoint,
    tls_pair,
)

pytestmark = pytest.mark.integration


@dataclass
class TlsRedis:
    port: int
    tls: TlsPair

    def url(self, scheme: str = "rediss", ca: bool = True, user: str = "") -> str:
        query = f"?ssl_ca_certs={self.tls.cert}" if ca else ""
        userinfo = f"{user}@" if user else ""
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}/0{query}"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    directory = tmp_path_factory.mktemp("redis-tls")
    tls = tls_pair(directory / "tls")
    binary = redis_server_binary()
    port = free_port()
    try:
        if binary is None:
            raise ServiceUnavailable("redis-server not found (apt-get install redis-server)")
        proc = _spawn(
            [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.cert),
             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(directory)],
            directory, "redis.log",
        )  # fmt: skip
        wait_for_port(port, 15, proc)
    except ServiceUnavailable as exc:
        if in_ci():
            pytest.fail(f"required service unavailable in CI: {exc}")
        pytest.skip(str(exc))
    yield TlsRedis(port, tls)
    _stop(proc)


def settings_for(url: str, **extra: str) -> Settings:
    return Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REDIS_URL": url, **extra})


def test_rediss_url_talks_tls_and_the_fan_in_works_over_it(tls_redis: TlsRedis) -> None:
    client = redis_from_settings(settings_for(tls_redis.url()))
    try:
        assert client.ping()
        assert client.connection_pool.connection_class is redis.SSLConnection
        tracker = CompletionTracker(client, ttl_s=60)
        assert [tracker.record("req-tls", seq, 2, seed=set) for seq in (0, 1)] == [False, True]
    finally:
        client.close()


def test_the_tls_port_refuses_plain_redis(tls_redis: TlsRedis) -> None:
    client = redis_from_settings(settings_for(tls_redis.url("redis", ca=False)))
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


def test_an_untrusted_certificate_is_refused(tls_redis: TlsRedis) -> None:
    client = redis_from_settings(settings_for(tls_redis.url(ca=False)))  # the system CAs only
    with pytest.raises(redis.ConnectionError) as caught:
        client.ping()
    assert "certificate verify failed" in str(caught.value) or isinstance(caught.value.__cause__, ssl.SSLError)
    client.close()


@pytest.fixture()
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityEndpoint]:
    with identity_endpoint() as endpoint:
        monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
        monkeypatch.setenv("IDENTITY_HEADER", endpoint.header_secret)
        for key in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
            monkeypatch.delenv(key, raising=False)
        yield endpoint


def test_entra_id_login_with_the_managed_identitys_token(tls_redis: TlsRedis, identity: IdentityEndpoint) -> None:
    token = identity.token_for(REDIS_RESOURCE)
    admin = redis.Redis.from_url(tls_redis.url())
    admin.execute_command("ACL", "SETUSER", IDENTITY_OBJECT_ID, "on", f">{token}", "~*", "&*", "+@all")
    admin.execute_command("ACL", "SETUSER", "default", "off")  # from now on only the identity gets in
    try:
        # As the template writes it: the identity's object id as the user name, no password.
        url = tls_redis.url(user=IDENTITY_OBJECT_ID)
        client = redis_from_settings(settings_for(url, REDIS_CREDENTIAL="managedidentity", AZURE_CLIENT_ID=CLIENT_ID))
        try:
            assert client.ping()
            assert client.acl_whoami() == IDENTITY_OBJECT_ID
        finally:
            client.close()
        asked = identity.asked_for()
        assert asked and asked[-1]["client_id"] == [CLIENT_ID]
        assert asked[-1]["resource"][0].rstrip("/") == REDIS_RESOURCE.rstrip("/")
        anonymous = redis.Redis.from_url(tls_redis.url())
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
    finally:
        rescue = redis.Redis.from_url(tls_redis.url(), username=IDENTITY_OBJECT_ID, password=token)
        rescue.execute_command("ACL", "SETUSER", "default", "on")
        rescue.close()
        admin.close()
