"""Queues and blobs with no account key anywhere: Azurite with OAuth over HTTPS, and the real
azure-identity ManagedIdentityCredential fed test tokens by a local managed-identity endpoint.

The settings are the identity-based ones the Bicep template sets in Azure
(AzureWebJobsStorage__blobServiceUri/__queueServiceUri, __credential=managedidentity, __clientId);
the output URLs are user-delegation SAS URLs, fetched anonymously from Azurite.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.queue import QueueClient

from devtools.servers import ServiceUnavailable, in_ci
from shared import queues
from shared.azure_storage import storage_account
from shared.container import Dependencies, build_dependencies
from shared.health import CheckStatus, HealthMonitor, dependency_checks
from shared.queues import app_queue_client
from shared.settings import Settings
from tests.integration.azure_fakes import (
    CLIENT_ID,
    IdentityEndpoint,
    OAuthAzurite,
    TlsPair,
    fake_jwt,
    identity_endpoint,
    tls_pair,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsPair:
    return tls_pair(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory: pytest.TempPathFactory, tls: TlsPair) -> Iterator[OAuthAzurite]:
    server = OAuthAzurite(location=tmp_path_factory.mktemp("azurite-oauth"), tls=tls)
    try:
        server.start()
    except ServiceUnavailable as exc:
        if in_ci():
            pytest.fail(f"required service unavailable in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture()
def identity() -> Iterator[IdentityEndpoint]:
    with identity_endpoint() as endpoint:
        yield endpoint


@pytest.fixture()
def app_env(
    oauth_azurite: OAuthAzurite, tls: TlsPair, identity: IdentityEndpoint, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage__blobServiceUri": oauth_azurite.blob_service_uri,
        "AzureWebJobsStorage__queueServiceUri": oauth_azurite.queue_service_uri,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "IMAGE_QUEUE_NAME": f"img-{tag}",
        "NOTIFY_QUEUE_NAME": f"ntf-{tag}",
        "OUTPUT_STORAGE": "blob",
        "OUTPUT_CONTAINER": f"out-{tag}",
        "OUTPUT_URL_MODE": "sas",
        "OUTPUT_SAS_TTL_SECONDS": "600",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        # The managed-identity endpoint of an App Service / Functions instance, and trust in the
        # test certificate (the SDK's requests transport honours REQUESTS_CA_BUNDLE).
        "IDENTITY_ENDPOINT": identity.url,
        "IDENTITY_HEADER": identity.header_secret,
        "REQUESTS_CA_BUNDLE": str(tls.cert),
    }
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    for key in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env


@pytest.fixture()
def deps(app_env: dict[str, str]) -> Iterator[Dependencies]:
    """The app's real dependency container, built from the identity-based settings."""
    built = build_dependencies(Settings.from_env())
    yield built
    built.close()


def _no_account_key_anywhere(env: dict[str, str], settings: Settings) -> None:
    assert "AzureWebJobsStorage" not in env
    assert not any("AccountKey" in value or "SharedAccessSignature" in value for value in env.values())
    assert settings.storage_connection_string == ""
    assert storage_account(settings).uses_identity


def test_queue_send_and_receive_with_a_managed_identity_token(app_env, deps: Dependencies, identity) -> None:
    _no_account_key_anywhere(app_env, deps.settings)
    queue = app_queue_client(storage_account(deps.settings), deps.settings.image_queue)
    queues.ensure_queue(queue)
    deps.image_queue.send({"request_id": "r-1", "seq": 0})
    received = queue.receive_message(visibility_timeout=30)
    assert received is not None and json.loads(received.content) == {"request_id": "r-1", "seq": 0}
    # The token came from the managed-identity endpoint, for Storage, for the configured identity.
    asked = identity.asked_for()
    assert asked and all(q["client_id"] == [CLIENT_ID] for q in asked)
    assert {q["resource"][0].rstrip("/") for q in asked} == {"https://storage.azure.com"}


def test_azurite_really_checks_the_token(app_env: dict[str, str], oauth_azurite: OAuthAzurite) -> None:
    class WrongAudience:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(fake_jwt(audience="https://vault.azure.net"), 2**31 - 1)

    client = QueueClient(oauth_azurite.queue_service_uri, "anything", credential=WrongAudience())
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as caught:
        client.create_queue()
    assert caught.value.status_code in (401, 403)


def test_outputs_are_private_and_served_through_a_read_only_user_delegation_sas(
    app_env: dict[str, str], deps: Dependencies, tls: TlsPair
) -> None:
    _no_account_key_anywhere(app_env, deps.settings)
    storage = deps.output
    storage.prepare()
    recorded = storage.put("req-1/00000.jpg", b"\xff\xd8compressed\xff\xd9", "image/jpeg")
    url = storage.presentable(recorded)
    bare, _, sas = url.partition("?")
    assert bare == recorded
    assert "skoid=" in sas and "sp=r" in sas.split("&")  # signed by a user-delegation key, read only
    fetched = requests.get(url, verify=str(tls.cert), timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == b"\xff\xd8compressed\xff\xd9"
    assert fetched.headers["Content-Type"] == "image/jpeg"
    # The same blob without the SAS is refused: the container is private.
    assert requests.get(bare, verify=str(tls.cert), timeout=10).status_code in (401, 403, 404)
    # The SAS grants reading only.
    overwrite = requests.put(
        url, data=b"replaced", headers={"x-ms-blob-type": "BlockBlob"}, verify=str(tls.cert), timeout=10
    )
    assert overwrite.status_code == 403
    # A SAS whose permissions were edited no longer matches its signature.
    widened = url.replace("sp=r&", "sp=rw&")
    assert widened != url
    assert requests.get(widened, verify=str(tls.cert), timeout=10).status_code == 403


def test_health_reports_each_dependency_and_names_a_missing_queue(
    app_env: dict[str, str], redis_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    settings = Settings.from_env()
    account = storage_account(settings)
    image_queue = app_queue_client(account, settings.image_queue)
    others = (app_queue_client(account, settings.notify_queue), app_queue_client(account, settings.fanout_queue))
    for queue in (image_queue, *others):
        queue.create_queue()
    deps = build_dependencies(settings)
    deps.output.prepare()
    monitor = HealthMonitor(dependency_checks(deps), cache_s=0)
    try:
        report = monitor.report()
        assert report.healthy, report.as_dict()
        image_check = f"queue:{settings.image_queue}"
        assert {check.name for check in report.checks} == {
            "database", "redis", image_check, f"queue:{settings.notify_queue}", f"queue:{settings.fanout_queue}",
            "output_storage",
        }
        image_queue.delete_queue()
        report = monitor.report()
        assert not report.healthy
        failed = {check.name: check for check in report.checks if check.status is not CheckStatus.OK}
        assert list(failed) == [image_check]
        expected = f"queue '{settings.image_queue}' does not exist (create it with the deployment)"
        assert failed[image_check].reason == expected
    finally:
        monitor.close()
        deps.close()
