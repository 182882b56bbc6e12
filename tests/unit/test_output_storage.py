"""Local output storage: atomic writes, overwrite on retry, URLs, and unsafe names."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pytest

from shared.errors import TransientFailure
from shared.output_storage import BlobOutputStorage, LocalOutputStorage, build_output_storage
from shared.settings import Secret, Settings

UNSAFE_NAMES = [
    "",
    "/abs/00000.jpg",
    "../escape.jpg",
    "req/../../escape.jpg",
    "req//00000.jpg",
    "req/./x.jpg",
    "req\\00000.jpg",
    "req/00000.jpg/",
    "nul\0.jpg",
]


def test_put_writes_the_file_and_returns_a_file_uri_to_it(tmp_path) -> None:
    storage = LocalOutputStorage(tmp_path)
    url = storage.put("req-1/00000.jpg", b"jpeg bytes", "image/jpeg")
    assert url.startswith("file://")
    path = Path(url2pathname(urlsplit(url).path))
    assert path == tmp_path / "req-1" / "00000.jpg"
    assert path.read_bytes() == b"jpeg bytes"


def test_put_again_overwrites_so_a_retry_leaves_one_file(tmp_path) -> None:
    storage = LocalOutputStorage(tmp_path)
    storage.put("req-1/00003.webp", b"first", "image/webp")
    storage.put("req-1/00003.webp", b"second", "image/webp")
    assert sorted(p.name for p in (tmp_path / "req-1").iterdir()) == ["00003.webp"]
    assert (tmp_path / "req-1" / "00003.webp").read_bytes() == b"second"


def test_public_base_url_is_joined_and_quoted(tmp_path) -> None:
    storage = LocalOutputStorage(tmp_path, public_base_url="https://cdn.example.com/out/")
    url = storage.put("req 1/00000.jpg", b"x", "image/jpeg")
    assert url == "https://cdn.example.com/out/req%201/00000.jpg"
    assert unquote(urlsplit(url).path) == "/out/req 1/00000.jpg"


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_temporary(tmp_path, monkeypatch) -> None:
    storage = LocalOutputStorage(tmp_path)
    storage.put("req-1/00000.jpg", b"complete old output", "image/jpeg")

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(TransientFailure, match="No space left"):
        storage.put("req-1/00000.jpg", b"new output that never lands", "image/jpeg")
    assert [p.name for p in (tmp_path / "req-1").iterdir()] == ["00000.jpg"]
    assert (tmp_path / "req-1" / "00000.jpg").read_bytes() == b"complete old output"


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_names_are_refused_before_anything_is_written(tmp_path, name) -> None:
    storage = LocalOutputStorage(tmp_path / "out")
    with pytest.raises(ValueError, match="unsafe output name"):
        storage.put(name, b"x", "image/jpeg")
    assert list(tmp_path.rglob("*")) == []


def test_build_output_storage_picks_the_backend(tmp_path) -> None:
    local = build_output_storage(Settings(storage_connection_string=Secret("x"), output_dir=tmp_path))
    assert isinstance(local, LocalOutputStorage)
    blob = build_output_storage(
        Settings(
            storage_connection_string=Secret(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"
            ),
            output_storage="blob",
        )
    )
    assert isinstance(blob, BlobOutputStorage)


class RefusingContainer:
    """A container client whose account refuses public access, as new storage accounts do."""

    container_name = "processed-images"

    def __init__(self) -> None:
        self.create_calls: list[dict[str, object]] = []

    def get_blob_client(self, name: str) -> RefusingContainer:
        return self

    def upload_blob(self, *args: object, **kwargs: object) -> None:
        from azure.core.exceptions import HttpResponseError

        error = HttpResponseError(message="Public access is not permitted on this storage account.")
        error.status_code = 409
        error.error_code = "PublicAccessNotPermitted"
        raise error

    def create_container(self, **kwargs: object) -> None:
        self.create_calls.append(kwargs)
        self.upload_blob()


class NoUrls:
    def recorded_url(self, name: str, blob_url: str) -> str:
        raise AssertionError("no URL for a blob that was not stored")

    def presentable(self, recorded_url: str) -> str:
        raise AssertionError("no URL for a blob that was not stored")


def test_public_access_not_permitted_is_permanent_never_transient() -> None:
    from shared.errors import PermanentFailure

    storage = BlobOutputStorage(RefusingContainer(), NoUrls())  # type: ignore[arg-type]
    with pytest.raises(PermanentFailure, match="PublicAccessNotPermitted") as caught:
        storage.put("req-1/00000.jpg", b"x", "image/jpeg")
    assert not isinstance(caught.value, TransientFailure)
    with pytest.raises(PermanentFailure):
        storage.prepare()


def test_the_container_is_never_created_with_public_access() -> None:
    container = RefusingContainer()
    storage = BlobOutputStorage(container, NoUrls())  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017
        storage.prepare()
    assert container.create_calls == [{}]  # no public_access argument at all


def test_public_mode_records_the_configured_base_url() -> None:
    from shared.blob_urls import PublicBaseUrls

    urls = PublicBaseUrls("https://cdn.example.com/outputs/")
    recorded = urls.recorded_url("req 1/00000.jpg", "https://acct.blob.core.windows.net/c/req%201/00000.jpg")
    assert recorded == "https://cdn.example.com/outputs/req%201/00000.jpg"
    assert urls.presentable(recorded) == recorded


def test_a_local_output_is_durable_under_its_final_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An output recorded as done must survive a crash: the file's data and, after the rename, its folder
    entry are both flushed to disk (fsync of the file alone does not cover the new name)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    LocalOutputStorage(tmp_path).put("req/00001.jpg", b"jpeg", "image/jpeg")
    folder = str((tmp_path / "req").resolve())
    assert synced[-1] == folder, synced
    assert any(path.startswith(folder + "/.00001.jpg.") for path in synced[:-1]), synced
