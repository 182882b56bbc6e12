"""Blob output storage against a real Azurite: private container, SAS URLs, content type, overwrite, recreation."""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.blob_urls import SasUrls
from shared.errors import DependencyMissing
from shared.output_storage import BlobOutputStorage

pytestmark = pytest.mark.integration


@pytest.fixture()
def container_name(azurite):
    name = f"out-{uuid.uuid4().hex[:12]}"
    yield name
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with contextlib.suppress(ResourceNotFoundError):
        service.delete_container(name)


def test_put_creates_a_private_container_and_the_sas_url_serves_the_bytes(azurite, container_name) -> None:
    storage = BlobOutputStorage.from_connection_string(azurite.connection_string, container_name)
    bare = storage.put("req-1/00000.jpg", b"\xff\xd8jpeg\xff\xd9", "image/jpeg")
    assert bare.endswith(f"/{container_name}/req-1/00000.jpg")  # what the database keeps
    url = storage.presentable(bare)  # what a client is handed: with a fresh read-only SAS
    assert url.startswith(bare + "?") and "sp=r&" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"\xff\xd8jpeg\xff\xd9"
    assert response.headers["Content-Type"] == "image/jpeg"
    assert requests.get(bare, timeout=10).status_code in (403, 404)  # the container is private
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert service.get_container_client(container_name).get_container_properties().public_access is None
    listing = requests.get(bare.rsplit("/", 2)[0] + "?restype=container&comp=list", timeout=10)
    assert listing.status_code in (403, 404)


def test_a_retry_overwrites_the_same_blob(azurite, container_name) -> None:
    storage = BlobOutputStorage.from_connection_string(azurite.connection_string, container_name)
    first = storage.put("req-1/00001.webp", b"first", "image/webp")
    second = storage.put("req-1/00001.webp", b"second try", "image/webp")
    assert first == second
    assert requests.get(storage.presentable(second), timeout=10).content == b"second try"
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        container_name
    )
    assert [b.name for b in container.list_blobs()] == ["req-1/00001.webp"]


def test_an_existing_container_is_reused_and_a_vanished_one_recreated(azurite, container_name) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(container_name)
    storage = BlobOutputStorage(
        service.get_container_client(container_name), SasUrls(service, container_name, timedelta(minutes=5)),
        create_container=True,
    )
    storage.put("req-1/00000.jpg", b"a", "image/jpeg")
    service.delete_container(container_name)
    url = storage.put("req-1/00001.jpg", b"b", "image/jpeg")
    assert requests.get(storage.presentable(url), timeout=10).content == b"b"


def test_unsafe_names_never_reach_the_service(azurite, container_name) -> None:
    storage = BlobOutputStorage.from_connection_string(azurite.connection_string, container_name)
    with pytest.raises(ValueError):
        storage.put("../other-container/x.jpg", b"x", "image/jpeg")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert container_name not in [c.name for c in service.list_containers()]


def test_without_leave_to_create_it_a_missing_container_is_a_dependency_missing(azurite, container_name) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    urls = SasUrls(service, container_name, timedelta(minutes=5))
    storage = BlobOutputStorage(service.get_container_client(container_name), urls)
    with pytest.raises(DependencyMissing, match=f"output container '{container_name}' does not exist"):
        storage.put("req-1/00000.jpg", b"x", "image/jpeg")
    with pytest.raises(DependencyMissing):
        storage.check()
    assert container_name not in [c.name for c in service.list_containers()]


def test_only_our_own_unsigned_urls_are_signed(azurite, container_name) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    urls = SasUrls(service, container_name, timedelta(minutes=5))
    ours = f"{service.url.rstrip('/')}/{container_name}/req%201/00000.jpg"
    assert urls.presentable(ours).startswith(ours + "?")
    for foreign in (f"{service.url.rstrip('/')}/other/req/00000.jpg", ours + "?sv=already-signed",
                    "file:///tmp/x.jpg", "https://cdn.example.com/x.jpg"):
        assert urls.presentable(foreign) == foreign
